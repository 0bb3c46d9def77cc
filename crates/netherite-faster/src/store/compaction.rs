//! Compaction: reclaiming the oldest part of the log, a bounded slice per round.
//!
//! A round scans forward from `begin`, copies every live record it meets to the tail (the
//! index then points at the copy), and moves `begin` past what it scanned. Dead records
//! (older versions, tombstones, records whose key was deleted) are simply left behind: every
//! older version of a key lies below its newest record, so once `begin` passes a tombstone,
//! nothing it hid is left either.
//!
//! A round scans at most `bytes_max` bytes of address space, except that it always takes the
//! first step (one record, one pad or one snapshot region) so it makes progress even when that
//! step alone is larger. It scans only the read-only part of the log: the mutable region is
//! where updates happen in place, and copying from it would be wasted work.
//!
//! Moving `begin` lets the device reclaim space, but only below the `begin` of the two newest
//! checkpoints, since recovery may need either of them.

use super::address::Address;
use super::index::KeyHash;
use super::kv::Store;
use super::record::RecordRef;
use super::scan::LogCursor;
use crate::Error;

/// What one compaction round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Bytes of address space the round moved `begin` across.
    pub scanned_bytes: u64,
    /// Live records copied to the tail.
    pub copied_records: u64,
    /// The new `begin`.
    pub begin: Address,
}

impl Store {
    /// Runs one compaction round over at most `bytes_max` bytes from `begin` (see the module
    /// docs for the one exception). A round with nothing read-only to scan does nothing.
    pub async fn compact(&mut self, bytes_max: u64) -> Result<CompactionReport, Error> {
        let regions = self.log.regions();
        let start = regions.begin;
        let mut cursor = LogCursor::new(start, regions.read_only);
        let mut report = CompactionReport {
            begin: start,
            ..CompactionReport::default()
        };
        let mut first = true;
        while let Some(step) = cursor.next(&self.log).await? {
            if !first && step.next.get() - start.get() > bytes_max {
                report.begin = step.address;
                break;
            }
            first = false;
            report.begin = step.next;
            if let Some(bytes) = step.record
                && self.copy_if_live(&bytes, step.address).await?
            {
                report.copied_records += 1;
            }
        }
        report.scanned_bytes = report.begin.get() - start.get();
        self.log.set_begin(report.begin);
        self.reclaim().await;
        tracing::debug!(
            begin = %report.begin,
            scanned = report.scanned_bytes,
            copied = report.copied_records,
            "store compaction round"
        );
        Ok(report)
    }

    /// Copies the record `bytes` (found at `address`) to the tail if it is live.
    async fn copy_if_live(&mut self, bytes: &[u8], address: Address) -> Result<bool, Error> {
        let record = RecordRef::new(bytes).expect("a step holds its whole record");
        if !self.is_live(&record, address).await? {
            return Ok(false);
        }
        let (slot, head) = self.slot_for(KeyHash::of(record.key())).await?;
        self.append(slot, head, record.key(), Some(record.value()))
            .await?;
        Ok(true)
    }
}
