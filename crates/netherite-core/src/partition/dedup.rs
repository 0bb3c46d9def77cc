//! Tracked object: deduplication of messages from other partitions and of client requests.
//!
//! Every batch from another partition carries its origin's stamp (commit position,
//! sub-position); stamps from one origin only grow, so anything at or below the highest stamp
//! applied is a duplicate. (The engine sends an origin's batches for one destination in the
//! order they were produced; see [`super::SendMessages`].)
//!
//! Clients number their requests, but a client may have several requests in flight, and sends
//! to one partition may interleave, so its numbers can arrive out of order. The partition
//! therefore remembers, per client, the highest number seen and which of the
//! [`CLIENT_SEQ_LAG_MAX`] numbers below it were seen: a number seen before is a retry, any other
//! is new. A number further behind than that is taken as a retry, so a client keeps fewer
//! requests than that in flight. A retry gets its answer again when that answer is still kept
//! (the last few per client); otherwise it is ignored.
//!
//! Client records are bounded: past `clients_max`, the client seen least recently is forgotten.
//! A retry from a forgotten client is taken as a new request.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::response::ClientResponse;
use crate::ids::{ClientId, CommitPosition, PartitionId, RequestSeq};
use crate::time::Timestamp;

/// How far below the highest sequence number seen from a client a request may arrive and still
/// count as new (limit `client_seq_lag_max`): a client keeps fewer requests in flight.
pub const CLIENT_SEQ_LAG_MAX: u64 = 1024;

/// The words of the bitmap of [`SeenSeqs`].
const SEEN_WORDS: usize = (CLIENT_SEQ_LAG_MAX / 64) as usize;

/// What the partition remembers to drop duplicates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Dedup {
    origins: BTreeMap<PartitionId, (CommitPosition, u32)>,
    clients: BTreeMap<ClientId, ClientRecord>,
}

/// What is remembered of one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ClientRecord {
    seen: SeenSeqs,
    last_seen: Timestamp,
    kept: VecDeque<KeptResponse>,
}

/// The sequence numbers seen from one client: the highest, and a bitmap of those below it.
///
/// ```text
///   highest - CLIENT_SEQ_LAG_MAX  ...  highest - 2   highest - 1   highest
///   bit CLIENT_SEQ_LAG_MAX - 1    ...  bit 1         bit 0         (always seen)
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SeenSeqs {
    highest: RequestSeq,
    below: [u64; SEEN_WORDS],
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

    /// Classifies a client request; a new one is recorded as seen.
    pub(crate) fn accept_request(
        &mut self,
        client: ClientId,
        seq: RequestSeq,
        now: Timestamp,
        clients_max: usize,
    ) -> Freshness {
        if let Some(record) = self.clients.get_mut(&client) {
            if !record.seen.record(seq) {
                let kept = record.kept.iter().find(|k| k.seq == seq);
                return kept.cloned().map_or(Freshness::Seen, Freshness::Answered);
            }
            record.last_seen = now;
            return Freshness::New;
        }

        let record = ClientRecord {
            seen: SeenSeqs::starting_at(seq),
            last_seen: now,
            kept: VecDeque::new(),
        };
        self.clients.insert(client, record);
        self.forget_beyond(clients_max, client);
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

    /// Forgets the least recently seen clients until at most `max` remain, never `newest`:
    /// event times come from whichever node owns the partition and may step back after a
    /// move, and the client that just arrived must still get its answer kept.
    fn forget_beyond(&mut self, max: usize, newest: ClientId) {
        while self.clients.len() > max {
            let oldest = self
                .clients
                .iter()
                .filter(|(id, _)| **id != newest)
                .min_by_key(|(id, r)| (r.last_seen, **id));
            let Some((&id, _)) = oldest else {
                return;
            };
            self.clients.remove(&id);
        }
    }
}

impl SeenSeqs {
    /// The numbers seen after the first request, `first`.
    fn starting_at(first: RequestSeq) -> SeenSeqs {
        SeenSeqs {
            highest: first,
            below: [0; SEEN_WORDS],
        }
    }

    /// Records `seq`; returns whether it is new. One too far below the highest counts as seen.
    fn record(&mut self, seq: RequestSeq) -> bool {
        if seq > self.highest {
            let by = seq.0 - self.highest.0;
            self.shift_up(by);
            self.set(by - 1);
            self.highest = seq;
            return true;
        }
        let lag = self.highest.0 - seq.0;
        if lag == 0 || lag > CLIENT_SEQ_LAG_MAX {
            return false;
        }
        let bit = lag - 1;
        let new = !self.is_set(bit);
        self.set(bit);
        new
    }

    /// Moves every bit `by` places up (further below a higher `highest`); bits pushed past
    /// the window are forgotten.
    fn shift_up(&mut self, by: u64) {
        let words = usize::try_from(by / 64).unwrap_or(SEEN_WORDS);
        let bits = (by % 64) as u32;
        let old = self.below;
        let word = |i: usize| i.checked_sub(words).map_or(0, |from| old[from]);
        for i in 0..SEEN_WORDS {
            let carried = match (bits, i.checked_sub(1)) {
                (0, _) | (_, None) => 0,
                (bits, Some(lower)) => word(lower) >> (64 - bits),
            };
            self.below[i] = (word(i) << bits) | carried;
        }
    }

    fn set(&mut self, bit: u64) {
        if bit < CLIENT_SEQ_LAG_MAX {
            self.below[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn is_set(&self, bit: u64) -> bool {
        self.below[(bit / 64) as usize] & (1 << (bit % 64)) != 0
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

    /// Requests of one client that arrive out of order are each new once; a repeat of any of
    /// them is a retry, and so is one too far below the highest.
    #[test]
    fn out_of_order_requests_count_once_each() {
        let mut dedup = Dedup::default();
        let mut accept =
            |seq| dedup.accept_request(ClientId(1), RequestSeq(seq), Timestamp::EPOCH, 9);

        for seq in [5, 3, 4, 6] {
            assert_eq!(accept(seq), Freshness::New, "first {seq}");
        }
        for seq in [3, 4, 5, 6] {
            assert_eq!(accept(seq), Freshness::Seen, "again {seq}");
        }
        assert_eq!(accept(2), Freshness::New);
        assert_eq!(accept(6 + CLIENT_SEQ_LAG_MAX + 1), Freshness::New);
        assert_eq!(accept(1), Freshness::Seen, "too far below the highest");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The bitmap window answers like a plain set of every number seen, for numbers within
        /// the window; below it, everything counts as seen.
        #[test]
        fn seen_numbers_match_a_set(seqs in proptest::collection::vec(0u64..2_500, 1..200)) {
            let mut seen = SeenSeqs::starting_at(RequestSeq(seqs[0]));
            let mut model = std::collections::BTreeSet::from([seqs[0]]);
            for &seq in &seqs[1..] {
                let highest = *model.last().expect("not empty");
                let in_window = seq > highest || highest - seq <= CLIENT_SEQ_LAG_MAX;
                let expected = in_window && !model.contains(&seq);
                proptest::prop_assert_eq!(seen.record(RequestSeq(seq)), expected, "seq {}", seq);
                model.insert(seq);
            }
        }
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

    /// A clock that stepped back (the partition moved to a node whose clock is behind) does
    /// not make the newest client the one forgotten.
    #[test]
    fn newest_client_is_kept_even_with_an_older_time() {
        let mut dedup = Dedup::default();
        for client in [1, 2] {
            let now = Timestamp::new(100, 0);
            dedup.accept_request(ClientId(client), RequestSeq(1), now, 2);
        }
        let earlier = Timestamp::new(50, 0);
        dedup.accept_request(ClientId(3), RequestSeq(1), earlier, 2);

        let retry = dedup.accept_request(ClientId(3), RequestSeq(1), earlier, 2);
        assert_eq!(retry, Freshness::Seen);
    }
}
