//! Tracked object: deduplication of messages from other partitions and of client requests.
//!
//! Every batch from another partition carries its origin's stamp (commit position,
//! sub-position); stamps from one origin only grow, so anything at or below the highest stamp
//! applied is a duplicate. Clients number their requests the same way: a request at or below a
//! client's highest sequence number is a retry. A retry gets its answer again when that answer
//! is still kept (the last few per client); otherwise it is ignored.
//!
//! Client records are bounded: past `clients_max`, the client seen least recently is forgotten.
//! A retry from a forgotten client is taken as a new request.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::response::ClientResponse;
use crate::ids::{ClientId, CommitPosition, PartitionId, RequestSeq};
use crate::time::Timestamp;

/// What the partition remembers to drop duplicates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Dedup {
    origins: BTreeMap<PartitionId, (CommitPosition, u32)>,
    clients: BTreeMap<ClientId, ClientRecord>,
}

/// What is remembered of one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ClientRecord {
    highest: RequestSeq,
    last_seen: Timestamp,
    kept: VecDeque<KeptResponse>,
}

/// An answer kept for retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeptResponse {
    /// The request answered.
    pub(crate) seq: RequestSeq,
    /// The position the answer depends on.
    pub(crate) after: CommitPosition,
    /// The answer.
    pub(crate) response: ClientResponse,
}

/// How a client request relates to what came before.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Freshness {
    /// Never seen: apply it.
    New,
    /// A retry whose answer is kept: answer again.
    Answered(KeptResponse),
    /// A retry whose answer is gone or not given yet: ignore it.
    Seen,
}

impl Dedup {
    /// Whether the batch stamped (`position`, `sub`) from `origin` is new; records it if so.
    pub(crate) fn accept_batch(
        &mut self,
        origin: PartitionId,
        position: CommitPosition,
        sub: u32,
    ) -> bool {
        let stamp = (position, sub);
        if self
            .origins
            .get(&origin)
            .is_some_and(|highest| stamp <= *highest)
        {
            return false;
        }
        self.origins.insert(origin, stamp);
        true
    }

    /// Classifies a client request; a new one is recorded as the client's highest.
    pub(crate) fn accept_request(
        &mut self,
        client: ClientId,
        seq: RequestSeq,
        now: Timestamp,
        clients_max: usize,
    ) -> Freshness {
        if let Some(record) = self.clients.get_mut(&client) {
            if seq <= record.highest {
                let kept = record.kept.iter().find(|k| k.seq == seq);
                return kept.cloned().map_or(Freshness::Seen, Freshness::Answered);
            }
            record.highest = seq;
            record.last_seen = now;
            return Freshness::New;
        }

        let record = ClientRecord {
            highest: seq,
            last_seen: now,
            kept: VecDeque::new(),
        };
        self.clients.insert(client, record);
        self.forget_beyond(clients_max);
        Freshness::New
    }

    /// Keeps `response` for retries of `seq`, at most `kept_max` per client.
    pub(crate) fn keep(&mut self, client: ClientId, response: KeptResponse, kept_max: usize) {
        let Some(record) = self.clients.get_mut(&client) else {
            return;
        };
        record.kept.push_back(response);
        while record.kept.len() > kept_max {
            record.kept.pop_front();
        }
    }

    /// Forgets the least recently seen clients until at most `max` remain.
    fn forget_beyond(&mut self, max: usize) {
        while self.clients.len() > max {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(id, r)| (r.last_seen, **id));
            let Some((&id, _)) = oldest else {
                return;
            };
            self.clients.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps from one origin must grow; other origins are independent.
    #[test]
    fn batches_at_or_below_the_highest_stamp_are_duplicates() {
        let mut dedup = Dedup::default();
        let (a, b) = (PartitionId(1), PartitionId(2));

        assert!(dedup.accept_batch(a, CommitPosition(5), 1));
        assert!(!dedup.accept_batch(a, CommitPosition(5), 1));
        assert!(!dedup.accept_batch(a, CommitPosition(5), 0));
        assert!(!dedup.accept_batch(a, CommitPosition(4), 9));
        assert!(dedup.accept_batch(a, CommitPosition(5), 2));
        assert!(dedup.accept_batch(b, CommitPosition(1), 0));
    }

    /// A retry gets the kept answer; one whose answer was dropped is merely seen.
    #[test]
    fn retries_get_kept_answers_while_they_last() {
        let mut dedup = Dedup::default();
        let client = ClientId(7);
        let now = Timestamp::EPOCH;
        for seq in 1..=3 {
            let fresh = dedup.accept_request(client, RequestSeq(seq), now, 10);
            assert_eq!(fresh, Freshness::New);
            let kept = KeptResponse {
                seq: RequestSeq(seq),
                after: CommitPosition(seq),
                response: ClientResponse::Accepted,
            };
            dedup.keep(client, kept, 2);
        }

        let retry = dedup.accept_request(client, RequestSeq(3), now, 10);
        assert!(matches!(retry, Freshness::Answered(k) if k.after == CommitPosition(3)));
        let too_old = dedup.accept_request(client, RequestSeq(1), now, 10);
        assert_eq!(too_old, Freshness::Seen);
    }

    /// Past the bound, the client seen least recently is forgotten.
    #[test]
    fn least_recent_client_is_forgotten() {
        let mut dedup = Dedup::default();
        for (client, secs) in [(1, 10), (2, 5), (3, 20)] {
            let now = Timestamp::new(secs, 0);
            dedup.accept_request(ClientId(client), RequestSeq(1), now, 2);
        }

        let forgotten = dedup.accept_request(ClientId(2), RequestSeq(1), Timestamp::EPOCH, 2);
        assert_eq!(forgotten, Freshness::New);
    }
}
