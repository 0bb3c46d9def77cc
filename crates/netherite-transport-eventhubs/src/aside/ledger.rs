//! When a blob of stored-aside payloads may be deleted.
//!
//! A blob holds the large payloads of one send, and each of them has a reference in the
//! queue, in send order. The blob is needed until every one of those references has been
//! processed. The transport learns "processed" from `discard_before(partition, before)`: the
//! engine calls it once a checkpoint covers every event below `before`, and promises never to
//! read below it again (rule 8 of the contract). So the ledger remembers, for each blob whose
//! last reference a reader has met, that reference's position; a discard deletes the blobs
//! whose last reference lies below the discard point, since every earlier reference of the
//! same blob lies below it too.
//!
//! What the ledger cannot see is swept by age instead: blobs whose last reference was
//! processed before a crash (the ledger lives in memory), and blobs of a send that failed
//! between its events (the sender retries with a new blob, and the old one's last reference
//! never arrives). [`Sweep`] deletes a partition's blobs older than the retention, which must
//! exceed the event hub's own: by then every reference to them has expired with its event.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use netherite_core::{InputPosition, PartitionId};

use super::Reference;

/// The most finished blobs remembered per partition; past it the oldest is left to the sweep.
pub(crate) const TRACKED_BLOBS_MAX: usize = 4096;

/// The blobs whose last reference a reader met, by partition: blob name to that position.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    finished: BTreeMap<PartitionId, BTreeMap<String, InputPosition>>,
}

impl Ledger {
    /// Notes that a reader met `reference` at `position` in `partition`'s queue.
    pub(crate) fn note(
        &mut self,
        partition: PartitionId,
        reference: &Reference,
        position: InputPosition,
    ) {
        if !reference.is_last() {
            return;
        }
        let blobs = self.finished.entry(partition).or_default();
        blobs.insert(reference.blob.clone(), position);
        if blobs.len() > TRACKED_BLOBS_MAX {
            let oldest = blobs
                .iter()
                .min_by_key(|(_, p)| **p)
                .map(|(b, _)| b.clone());
            if let Some(blob) = oldest {
                tracing::debug!(partition = %partition, blob,
                    "too many blobs to track; left to the sweep");
                blobs.remove(&blob);
            }
        }
    }

    /// The blobs of `partition` that every reference of lies below `before`, forgotten here:
    /// the caller deletes them.
    pub(crate) fn take_deletable(
        &mut self,
        partition: PartitionId,
        before: InputPosition,
    ) -> Vec<String> {
        let Some(blobs) = self.finished.get_mut(&partition) else {
            return Vec::new();
        };
        let done: Vec<String> = blobs
            .iter()
            .filter(|(_, last)| **last < before)
            .map(|(blob, _)| blob.clone())
            .collect();
        for blob in &done {
            blobs.remove(blob);
        }
        done
    }
}

/// When a partition's blobs are swept by age.
#[derive(Debug)]
pub(crate) struct Sweep {
    retention: Duration,
    interval: Duration,
    last: BTreeMap<PartitionId, SystemTime>,
}

impl Sweep {
    /// Sweeps blobs older than `retention`, each partition at most once per `interval`.
    pub(crate) fn new(retention: Duration, interval: Duration) -> Sweep {
        Sweep {
            retention,
            interval,
            last: BTreeMap::new(),
        }
    }

    /// Whether `partition` is due for a sweep at `now`; if so, counts it as swept.
    pub(crate) fn due(&mut self, partition: PartitionId, now: SystemTime) -> bool {
        let due = self.last.get(&partition).is_none_or(|last| {
            now.duration_since(*last)
                .is_ok_and(|since| since >= self.interval)
        });
        if due {
            self.last.insert(partition, now);
        }
        due
    }

    /// Whether a blob last written at `written` is past the retention at `now`.
    pub(crate) fn expired(&self, written: SystemTime, now: SystemTime) -> bool {
        now.duration_since(written)
            .is_ok_and(|age| age >= self.retention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(blob: &str, entry: u32, entries: u32) -> Reference {
        Reference {
            blob: blob.into(),
            entry,
            entries,
            offset: 0,
            length: 1,
        }
    }

    /// A blob with three references becomes deletable only when the discard point passes its
    /// last reference: not after the first two, not at the last one's own position.
    #[test]
    fn a_blob_is_deletable_once_its_last_reference_is_discarded() {
        let (p, mut ledger) = (PartitionId(2), Ledger::default());
        ledger.note(p, &reference("b", 0, 3), InputPosition(10));
        ledger.note(p, &reference("b", 1, 3), InputPosition(12));
        assert!(ledger.take_deletable(p, InputPosition(100)).is_empty());

        ledger.note(p, &reference("b", 2, 3), InputPosition(15));
        assert!(ledger.take_deletable(p, InputPosition(13)).is_empty());
        assert!(ledger.take_deletable(p, InputPosition(15)).is_empty());
        assert_eq!(ledger.take_deletable(p, InputPosition(16)), vec!["b"]);
        assert!(ledger.take_deletable(p, InputPosition(16)).is_empty());
    }

    /// Partitions keep their own books; a redelivered last reference counts once.
    #[test]
    fn partitions_are_kept_apart() {
        let mut ledger = Ledger::default();
        ledger.note(PartitionId(0), &reference("a", 0, 1), InputPosition(5));
        ledger.note(PartitionId(0), &reference("a", 0, 1), InputPosition(5));
        ledger.note(PartitionId(1), &reference("b", 0, 1), InputPosition(5));
        assert_eq!(
            ledger.take_deletable(PartitionId(0), InputPosition(9)),
            vec!["a"]
        );
        assert_eq!(
            ledger.take_deletable(PartitionId(1), InputPosition(9)),
            vec!["b"]
        );
    }

    /// Past the tracking limit the oldest blob is forgotten (the sweep deletes it), so memory
    /// stays bounded on a node that reads but never discards.
    #[test]
    fn the_ledger_is_bounded() {
        let (p, mut ledger) = (PartitionId(0), Ledger::default());
        for i in 0..=TRACKED_BLOBS_MAX as u64 {
            ledger.note(p, &reference(&format!("b{i}"), 0, 1), InputPosition(i));
        }
        let all = ledger.take_deletable(p, InputPosition(u64::MAX));
        assert_eq!(all.len(), TRACKED_BLOBS_MAX);
        assert!(!all.contains(&"b0".to_string()));
    }

    /// A partition is swept at most once per interval, and only blobs past the retention go.
    #[test]
    fn sweeps_are_spaced_and_spare_young_blobs() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut sweep = Sweep::new(Duration::from_secs(100), Duration::from_secs(10));
        assert!(sweep.due(PartitionId(0), t0));
        assert!(!sweep.due(PartitionId(0), t0 + Duration::from_secs(9)));
        assert!(sweep.due(PartitionId(1), t0));
        assert!(sweep.due(PartitionId(0), t0 + Duration::from_secs(10)));

        assert!(!sweep.expired(t0, t0 + Duration::from_secs(99)));
        assert!(sweep.expired(t0, t0 + Duration::from_secs(100)));
        assert!(!sweep.expired(t0 + Duration::from_secs(5), t0));
    }
}
