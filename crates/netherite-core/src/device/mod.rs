//! The `LogDevice` contract: the byte space under a partition's commit log and store log.
//!
//! A device is deliberately dumb: aligned writes, reads, a flush barrier, truncation of the
//! front, and an ownership fence. Everything above it (record framing, group commit, torn-tail
//! detection, checkpoints) lives in `netherite-faster`, written once for every backend. What a
//! backend must get right is the list of rules on [`LogDevice`], and the conformance suite
//! (feature `testing`) checks them.
//!
//! [`MemoryDisk`] is the in-memory backend. It is a real backend (the engine can run on it)
//! and carries seeded fault knobs ([`DeviceFaults`]): torn writes at a crash, failed flushes,
//! corrupted reads.

use std::fmt;

use async_trait::async_trait;

use crate::Error;

#[cfg(feature = "testing")]
pub mod conformance;
mod faults;
mod memory;

pub use faults::DeviceFaults;
pub(crate) use faults::FaultRng;
pub use memory::{DEVICE_BYTES_MAX, MemoryDevice, MemoryDisk};

/// A flat, append-mostly byte space holding one partition's log, opened by one owner.
///
/// ```text
///  0            truncated              durable                  size
///  |             point                  point                    |
///  +-------------+----------------------+------------------------+- - - - - -
///  | reclaimed   | durable: survives    | written, readable, may | past the end:
///  | reads fail  | any crash            | be lost or torn in a   | reads fail
///  |             |                      | crash until a flush    |
///  +-------------+----------------------+------------------------+- - - - - -
/// ```
///
/// Rules every implementation keeps:
///
/// 1. **Alignment.** [`alignment`](Self::alignment) is a power of two that never changes. A
///    write's offset and length are multiples of it, or the write fails with
///    [`Error::InvalidArgument`] and changes nothing; so does a write whose end would pass
///    `u64::MAX`. Reads take any offset and length.
/// 2. **Read your writes.** Once `write` returns `Ok`, `read` returns those bytes until they
///    are overwritten, flushed or not. Bytes never written below [`size`](Self::size) read as
///    zeros. Writes may overwrite earlier ones (a log rewrites its last, partly filled page).
/// 3. **Size.** `size()` is the end of the highest write that completed. Reading past it, or
///    below the truncation point, fails with [`Error::InvalidArgument`].
/// 4. **Durability.** A write is durable once a [`flush`](Self::flush) *called after the write
///    returned* has returned `Ok`. Nothing else promises durability: a backend may persist
///    sooner, but no caller may count on it.
/// 5. **Failed flush.** When a flush fails, none of the writes since the last good flush may
///    be assumed durable. They stay readable, and a later flush that succeeds covers them.
/// 6. **Crash.** After a crash and a reopen, every durable byte reads as written and `size()`
///    is at least the durable point. Above it, each sector (`alignment` bytes) of a write that
///    was not yet durable reads as written, as zeros, or as what it held before: a write may
///    be torn at any sector boundary. Readers find the real end by checking records
///    ([`crate::codec`]), never by trusting the tail.
/// 7. **Truncation.** [`truncate_before(t)`](Self::truncate_before) lets the space below `t`
///    be reclaimed; from then on reads and writes below `t` fail with
///    [`Error::InvalidArgument`]. The point never moves back: a smaller `t` is a no-op. A `t`
///    past `size()` is an [`Error::InvalidArgument`].
/// 8. **Ownership.** A handle belongs to the owner that opened it. When a new owner opens the
///    same device, every older handle is fenced: its writes, flushes and truncations fail with
///    [`Error::Fenced`] and change nothing (its reads may fail too). [`release`](Self::release)
///    gives ownership up at once, so the next owner need not wait for a lease to run out.
/// 9. **Concurrency.** Writes to disjoint ranges may run at the same time. Overlapping writes
///    in flight together leave the range an unspecified mix of their sectors. A flush covers
///    the writes that completed before it was called; one still in flight may be left out.
/// 10. **Errors.** [`Error::InvalidArgument`]: the call broke a rule and changed nothing; do not
///     retry. [`Error::Fenced`]: another node owns the partition; stop it. [`Error::Io`]: the
///     operation failed and may succeed if retried; after a failed write the range holds
///     unspecified bytes until rewritten. [`Error::LimitExceeded`]: the device is full.
///     No input makes an implementation panic.
#[async_trait]
pub trait LogDevice: Send + Sync + fmt::Debug {
    /// The write granularity in bytes: a power of two, e.g. 512 for page blobs, 4096 for files.
    fn alignment(&self) -> u64;

    /// The end of the written region: the end of the highest completed write (rule 3).
    fn size(&self) -> u64;

    /// Writes `bytes` at `offset`; both are multiples of the alignment (rule 1). The data is
    /// readable at once and durable after the next flush (rule 4).
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error>;

    /// Reads `len` bytes at `offset`, flushed or not (rule 2).
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error>;

    /// The durability barrier: on `Ok`, every write that completed before the call is durable.
    async fn flush(&self) -> Result<(), Error>;

    /// Lets the space below `offset` be reclaimed; reads and writes there fail afterwards.
    async fn truncate_before(&self, offset: u64) -> Result<(), Error>;

    /// Gives up ownership: this handle is fenced from now on and a new owner may open at once.
    async fn release(&self) -> Result<(), Error>;
}

/// Checks a write's offset and length against the alignment (rule 1), for implementations.
pub fn check_aligned(
    operation: &'static str,
    alignment: u64,
    offset: u64,
    len: u64,
) -> Result<(), Error> {
    if !offset.is_multiple_of(alignment) || !len.is_multiple_of(alignment) {
        return Err(Error::InvalidArgument {
            operation,
            reason: format!("offset {offset} or length {len} is not a multiple of {alignment}"),
        });
    }
    Ok(())
}

/// Checks that `[offset, offset + len)` lies inside `[start, size)` (rules 3 and 7), for
/// implementations.
pub fn check_range(
    operation: &'static str,
    start: u64,
    size: u64,
    offset: u64,
    len: u64,
) -> Result<(), Error> {
    let end = offset.checked_add(len);
    let reason = if offset < start {
        format!("offset {offset} is below the truncation point {start}")
    } else if end.is_none_or(|end| end > size) {
        format!("range {offset}+{len} ends past the size {size}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument { operation, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_check_names_the_rule() {
        assert!(check_aligned("write", 512, 1024, 512).is_ok());
        assert!(check_aligned("write", 512, 0, 0).is_ok());
        for (offset, len) in [(1, 512), (512, 100), (u64::MAX, 512)] {
            let error = check_aligned("write", 512, offset, len).unwrap_err();
            assert!(matches!(
                error,
                Error::InvalidArgument {
                    operation: "write",
                    ..
                }
            ));
        }
    }

    #[test]
    fn range_check_refuses_below_start_past_size_and_overflow() {
        assert!(check_range("read", 100, 200, 100, 100).is_ok());
        assert!(check_range("read", 100, 200, 200, 0).is_ok());
        for (offset, len) in [(99, 1), (150, 51), (u64::MAX, 2)] {
            let error = check_range("read", 100, 200, offset, len).unwrap_err();
            assert!(matches!(
                error,
                Error::InvalidArgument {
                    operation: "read",
                    ..
                }
            ));
        }
    }
}
