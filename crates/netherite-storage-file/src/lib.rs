//! A [`LogDevice`] over segment files in a local directory: a local disk, or a Kubernetes
//! persistent volume.
//!
//! One directory holds one partition's device: fixed-size segment files named by index (64
//! MiB by default), a small metadata file with the layout and the truncation point, and a
//! lock file (unless a lease fences the device). The main decisions:
//!
//! - **Positional, buffered writes.** A write lands in the page cache with `pwrite`, split at
//!   segment boundaries; a flush is `fdatasync` of every segment written since the last
//!   flush, plus an fsync of the directory when a segment file was created. Writes are
//!   aligned (4 KiB by default) so no two writes share a sector.
//! - **The size is recovered, not stored.** It is the end of the highest segment file, so a
//!   write needs no metadata update; only truncation rewrites the metadata, atomically.
//! - **Two ownership fences.** By default ([`FileDevice::open`]) the kernel's exclusive lock on
//!   the lock file keeps a second owner out, in this process or another, and is dropped when
//!   the owner releases, drops its handle or dies; but an owner that is only stopped keeps it
//!   forever. For nodes sharing a directory (a persistent volume), [`FileDevice::open_leased`]
//!   fences with a [`Lease`] instead: one lease file per partition whose epoch every device
//!   operation checks under a shared lock on that file, so an owner paused past its lease
//!   that wakes up late is refused once another node took over.
//! - **A failed `fdatasync` poisons the handle**: every later flush fails until a reopen,
//!   because the kernel may have dropped the pages that failed (see `segments`). So does a
//!   flush that finds a file or the directory deleted or moved from under the handle: writes
//!   there succeed, but a reopen would not find them.
//! - **No holes**: before a segment above the highest file is created, every one below it is
//!   made to exist at full length, durably. A missing or short segment below the highest is
//!   then damage, and the open refuses with the file's name instead of reading zeros.
//! - **Errors name the file and offset**; a full disk is the contract's `LimitExceeded`, and
//!   also logged with the path. See [`Error`].
//!
//! [`disk_probe`] measures the raw disk (fdatasync rate, sequential bandwidth) with plain
//! files, so benchmarks can print the ceiling next to their own figures. Feature `testing`
//! adds `testing::FileFixture`, which runs the core's conformance suite on temporary
//! directories.
//!
//! # Limitations
//!
//! - One file handle stays open per segment touched between the truncation point and the end,
//!   so a device that keeps more than about a thousand segments (64 GiB at the default size)
//!   alive needs a higher open-file limit.
//! - Writes go through the page cache (no `O_DIRECT`): a flush writes back what the kernel
//!   holds, and the bytes are copied once into it.
//! - On a copy-on-write file system (btrfs, ZFS) even truncation needs free blocks, so a full
//!   disk there needs an operator to make room.
//! - Durability across a power cut rests on `fdatasync` and the disk honouring it; the tests
//!   can kill processes but cannot cut the power.
//! - A lease needs roughly synchronised clocks (skew only makes a takeover early, which the
//!   epoch keeps safe) and a file system whose `flock` is coherent across the nodes sharing
//!   the directory; on a network file system, unflushed bytes of a fenced owner may still be
//!   written back from its page cache after a takeover. See [`Lease`].
//! - The highest segment file cut short cannot be told from a crash that lost the end of the
//!   device: the size is recovered from the files, not stored. The layers above tell from
//!   their own records (a store checkpoint names where its snapshot ends; a commit log's
//!   batches vouch for the ones before them).
//!
//! [`LogDevice`]: netherite_core::device::LogDevice

mod device;
mod error;
mod fence;
mod layout;
mod lease;
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
pub use lease::{Acquired, LEASE_OWNER_BYTES_MAX, Lease};
pub use options::{ALIGNMENT_DEFAULT, FileDeviceOptions, SEGMENT_BYTES_DEFAULT};
pub use probe::{DiskProbe, ProbeOptions, disk_probe, probe_device};
pub use segments::syncs_total;
