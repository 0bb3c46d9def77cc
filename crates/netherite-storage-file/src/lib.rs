//! A [`LogDevice`] over segment files in a local directory: a local disk, or a Kubernetes
//! persistent volume.
//!
//! One directory holds one partition's device: fixed-size segment files named by index (64
//! MiB by default), a small metadata file with the layout and the truncation point, and a
//! lock file. The main decisions:
//!
//! - **Positional, buffered writes.** A write lands in the page cache with `pwrite`, split at
//!   segment boundaries; [`flush`](LogDevice::flush) is `fdatasync` of every segment written
//!   since the last flush, plus an fsync of the directory when a segment file was created.
//!   Writes are aligned (4 KiB by default) so no two writes share a sector.
//! - **The size is recovered, not stored.** It is the end of the highest segment file, so a
//!   write needs no metadata update; only truncation rewrites the metadata, atomically.
//! - **A file lock is the ownership fence.** The kernel's exclusive lock on the lock file keeps
//!   a second owner out, in this process or another, and is dropped when the owner releases,
//!   drops its handle or dies.
//! - **A failed `fdatasync` poisons the handle**: every later flush fails until a reopen,
//!   because the kernel may have dropped the pages that failed (see `segments`).
//! - **Errors name the file and offset**; a full disk is the contract's `LimitExceeded`, and
//!   also logged with the path. See [`Error`].
//!
//! [`disk_probe`] measures the raw disk (fdatasync rate, sequential bandwidth) with plain
//! files, so benchmarks can print the ceiling next to their own figures.
//!
//! [`LogDevice`]: netherite_core::device::LogDevice

mod device;
mod error;
mod layout;
mod lock;
mod meta;
mod open;
mod options;
mod probe;
mod segments;
#[cfg(feature = "testing")]
pub mod testing;

pub use device::FileDevice;
pub use error::Error;
pub use options::{ALIGNMENT_DEFAULT, FileDeviceOptions, SEGMENT_BYTES_DEFAULT};
pub use probe::{DiskProbe, ProbeOptions, disk_probe, probe_device};
