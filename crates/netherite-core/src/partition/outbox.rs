//! Tracked object: the outbox, batches sent to other partitions and not yet confirmed.
//!
//! A batch is filed under the commit position of the event that produced it and kept until
//! the destination confirms it holds it durably, so recovery can send it again. Receivers drop
//! what they already have by its stamp, so resending is always safe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::effect::SendMessages;
use crate::ids::{CommitPosition, PartitionId};
use crate::model::TaskMessage;

/// The unconfirmed batches of a partition, by producing position.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Outbox {
    batches: BTreeMap<CommitPosition, Vec<OutboxBatch>>,
}

/// One batch for one destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OutboxBatch {
    destination: PartitionId,
    sub_position: u32,
    messages: Vec<TaskMessage>,
}

impl Outbox {
    /// Files the batch described by `send`.
    pub(crate) fn insert(&mut self, send: &SendMessages) {
        let batch = OutboxBatch {
            destination: send.destination,
            sub_position: send.sub_position,
            messages: send.messages.clone(),
        };
        self.batches
            .entry(send.origin_position)
            .or_default()
            .push(batch);
    }

    /// Drops every batch for `destination` produced at or before `upto`.
    pub(crate) fn confirm(&mut self, destination: PartitionId, upto: CommitPosition) {
        for batches in self.batches.range_mut(..=upto).map(|(_, b)| b) {
            batches.retain(|b| b.destination != destination);
        }
        self.batches.retain(|_, b| !b.is_empty());
    }

    /// Every unconfirmed batch as the effect that sends it, in position order.
    pub(crate) fn resend(&self, origin: PartitionId) -> Vec<SendMessages> {
        let all = self
            .batches
            .iter()
            .flat_map(|(at, b)| b.iter().map(move |b| (at, b)));
        all.map(|(at, batch)| SendMessages {
            after: *at,
            destination: batch.destination,
            origin,
            origin_position: *at,
            sub_position: batch.sub_position,
            messages: batch.messages.clone(),
        })
        .collect()
    }

    /// How many batches wait for confirmation.
    pub(crate) fn len(&self) -> usize {
        self.batches.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(at: u64, destination: u32, sub_position: u32) -> SendMessages {
        SendMessages {
            after: CommitPosition(at),
            destination: PartitionId(destination),
            origin: PartitionId(0),
            origin_position: CommitPosition(at),
            sub_position,
            messages: Vec::new(),
        }
    }

    /// A confirmation covers earlier batches of its destination only.
    #[test]
    fn confirm_is_cumulative_per_destination() {
        let mut outbox = Outbox::default();
        for s in [send(1, 1, 0), send(1, 2, 1), send(2, 1, 0), send(3, 1, 0)] {
            outbox.insert(&s);
        }

        outbox.confirm(PartitionId(1), CommitPosition(2));

        assert_eq!(
            outbox.resend(PartitionId(0)),
            vec![send(1, 2, 1), send(3, 1, 0)]
        );
    }
}
