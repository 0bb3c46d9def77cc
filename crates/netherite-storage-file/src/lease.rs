//! The lease fence: ownership of a partition shared by several nodes through one directory (a
//! persistent volume), proven by an epoch that every device operation checks.
//!
//! A directory lock (see `lock`) is held for the owner's whole tenure, so a stopped owner
//! (SIGSTOP, a frozen VM) keeps the partition forever. A lease instead runs out: its file
//! records who holds it, under which epoch, and until when. A node takes it over once it is
//! released or expired, and bumps the epoch. Expiry alone is not the fence, though: an owner
//! paused past its lease may wake up and write at any moment. What keeps it out is that every
//! operation of a leased device first reads the file and checks that the epoch is still its own.
//! The clock does not enter that check: an owner whose lease ran out goes on writing until
//! another node actually takes over, since until then nobody else can write.
//!
//! The kernel's `flock` on the lease file makes that check and the operation one step:
//!
//! ```text
//!   owner, every operation:   lock shared ── read: epoch ours? ── work ── unlock
//!   acquire, renew, release:  lock exclusive ── read ── write the record ── unlock
//! ```
//!
//! A takeover waits for the operations in flight, and an operation waits for a takeover in
//! flight. An owner stopped in the middle of an operation holds its shared lock, so the
//! takeover waits until it resumes and finishes (late, but safe); an owner stopped between
//! operations finds the epoch moved at its next one and is refused with
//! [`Error::LeaseLost`]. The record is never cached: each operation reads it again.
//!
//! A `flock` belongs to an open file, not to a thread, and one unlock ends it for every user
//! of that file. So concurrent operations never share one: each takes a file of its own from
//! a small pool, opened on the lease file. Inside the process a read-write lock hands out the
//! turns as well, so that a renewal is not starved by operations that keep overlapping (the
//! kernel lets new shared locks in while an exclusive one waits).
//!
//! Expiry is by wall clock, so the nodes need roughly synchronised clocks. Skew moves a
//! takeover by as much as the clocks differ: earlier when the next owner's clock is ahead,
//! which is as safe as any takeover (the old owner is fenced by the epoch, whatever its clock
//! says), and later when the old owner's clock was ahead, which only delays the partition.
//!
//! # The lease file
//!
//! ```text
//!  0       8         12      20                28          30                   252      256
//!  +-------+---------+-------+-----------------+-----------+--------------------+--------+
//!  | magic | version | epoch | expires_unix_ms | owner_len | owner, zero-padded | crc32c |
//!  +-------+---------+-------+-----------------+-----------+--------------------+--------+
//! ```
//!
//! Integers are little-endian; the checksum covers the 252 bytes before it. An empty file is a
//! lease never taken (epoch 0); `expires_unix_ms` 0 is a released one. The record is rewritten
//! in place, never renamed over: the locks belong to the file itself, and a new file would
//! have none. It fits in one sector, which disks write whole, so a crash leaves the old record
//! or the new one. Anything else is refused as [`Error::Corrupt`], never taken for a free
//! lease. A lease file that is deleted or replaced while an owner holds it fences that owner
//! ([`Error::Gone`]): the new file's epochs start again and would say nothing about the old
//! ones. That makes deleting a corrupt lease file safe: whoever held the old one is out.
//!
//! # Limitations
//!
//! - The fence is as good as `flock` on the file system under it: it must keep the locks of
//!   all the nodes sharing the directory coherent (a local file system, NFSv4, CephFS).
//! - An owner stopped while holding the lease file's lock (inside an operation or a renewal)
//!   holds up the next owner's takeover until it resumes or dies.
//! - On a network file system, bytes an owner wrote but never flushed may be written back from
//!   its machine's page cache after a takeover (the kernel writes them back whatever the
//!   process does, paused or not), over what the next owner wrote; the fence covers the write
//!   call, not the write-back. On one machine the page cache is shared, so there this cannot
//!   happen. TODO: writes that reach the file before they return (`O_DSYNC`) on leased
//!   devices, before nodes on several machines share a network file system.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// The longest owner name a lease file holds, in bytes.
pub const LEASE_OWNER_BYTES_MAX: usize = CRC_AT - OWNER_AT;

/// Idle files kept open on the lease file for later operations; more are closed.
const POOL_FILES_MAX: usize = 16;

const MAGIC: &[u8; 8] = b"NTHRLEAS";
const VERSION: u32 = 1;
const RECORD_LEN: usize = 256;
const OWNER_LEN_AT: usize = 28;
const OWNER_AT: usize = 30;
const CRC_AT: usize = RECORD_LEN - 4;

/// A lease on a partition: the right to write its devices for as long as the lease file keeps
/// this owner's epoch.
///
/// One lease covers every device of a partition ([`FileDevice::open_leased`]). Its holder
/// [`renew`](Lease::renew)s it well within the ttl and [`release`](Lease::release)s it once
/// every device is released, so the next owner need not wait. Dropping it without a release
/// leaves it to expire, as a crash would. Every call blocks on file I/O and, during another
/// node's takeover, on the lease file's lock: run them on a blocking thread.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use netherite_core::device::LogDevice;
/// use netherite_storage_file::{Acquired, FileDevice, FileDeviceOptions, Lease};
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// let volume = tempfile::tempdir()?;
/// let path = volume.path().join("p0/LEASE");
/// let ttl = Duration::from_secs(10);
/// let Acquired::Taken(lease) = Lease::acquire(&path, "node-a", ttl)? else {
///     panic!("a lease never taken is free");
/// };
/// assert_eq!(lease.epoch(), 1);
///
/// // While node-a holds it, node-b is told whom to wait for.
/// let Acquired::Held { owner, .. } = Lease::acquire(&path, "node-b", ttl)? else {
///     panic!("the lease is held");
/// };
/// assert_eq!(owner, "node-a");
///
/// let lease = Arc::new(lease);
/// let options = FileDeviceOptions::default();
/// let log = FileDevice::open_leased(volume.path().join("p0/log"), options, lease.clone()).await?;
/// log.write(0, &[7; 4096]).await?;
/// log.release().await?;
/// lease.release()?;
///
/// // Released, it passes to node-b at once, under the next epoch.
/// let Acquired::Taken(next) = Lease::acquire(&path, "node-b", ttl)? else {
///     panic!("a released lease is free");
/// };
/// assert_eq!(next.epoch(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`FileDevice::open_leased`]: crate::FileDevice::open_leased
pub struct Lease {
    path: PathBuf,
    owner: String,
    epoch: u64,
    ttl: Duration,
    /// The lease file taken (device, inode): if the path names another file, the lease is gone.
    file_id: (u64, u64),
    /// Set by `release`; every later operation is refused.
    released: AtomicBool,
    /// Set when an operation first finds the lease lost, so that the warning is logged once.
    lost: AtomicBool,
    /// Idle files open on the lease file (see the module docs for why there are several).
    files: Mutex<Vec<File>>,
    /// Operations take a read turn, renewal and release the write turn.
    turns: RwLock<()>,
}

/// What [`Lease::acquire`] found.
#[derive(Debug)]
pub enum Acquired {
    /// The lease was free, released, expired or already this owner's: it is now this owner's,
    /// under a new epoch.
    Taken(Lease),
    /// Another owner holds the lease; try again once `expires_in` has passed.
    Held {
        /// The holder's name.
        owner: String,
        /// The holder's epoch.
        epoch: u64,
        /// How long the lease runs unless renewed.
        expires_in: Duration,
    },
}

impl Lease {
    /// Takes the lease at `path` for `owner` for `ttl`, if it is free (never taken, released
    /// or expired) or already held under the same owner name; creates the file and its parent
    /// directories if needed. Otherwise returns [`Acquired::Held`] so that the caller can wait
    /// and retry. The new record is durable before this returns.
    ///
    /// Fails with [`Error::InvalidOptions`] for an empty owner name or one longer than
    /// [`LEASE_OWNER_BYTES_MAX`], and with [`Error::Corrupt`] if the file holds anything but a
    /// lease record. Blocks while another process holds the file's lock.
    pub fn acquire(path: &Path, owner: &str, ttl: Duration) -> Result<Acquired, Error> {
        check_owner_name(owner)?;
        let file = open_or_create(path)?;
        let file_id = identity(path, file.metadata())?;

        // A look under the shared lock first: a node waiting for a held lease polls it, and
        // the exclusive lock would hold up the owner's device operations at every poll.
        let looked = LockedFile::lock(file, path, Mode::Shared)?;
        let seen = read_record(path, looked.file())?;
        if let Some(held) = held(path, &seen, owner) {
            return Ok(held);
        }
        let file = match looked.unlock() {
            Some(file) => file,
            None => open_or_create(path)?,
        };

        let locked = LockedFile::lock(file, path, Mode::Exclusive)?;
        let found = read_record(path, locked.file())?;
        if let Some(held) = held(path, &found, owner) {
            return Ok(held);
        }
        let taken = found.next(path, owner, expiry(now_unix_ms(), ttl))?;
        write_record(path, locked.file(), &taken)?;
        sync(path, locked.file())?;
        let file = locked.unlock();
        log_taken(path, &found, &taken);
        let lease = Lease::new(path, taken, ttl, file_id);
        lease.put_back(file);
        Ok(Acquired::Taken(lease))
    }

    fn new(path: &Path, record: Record, ttl: Duration, file_id: (u64, u64)) -> Lease {
        Lease {
            path: path.to_path_buf(),
            owner: record.owner,
            epoch: record.epoch,
            ttl,
            file_id,
            released: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            files: Mutex::default(),
            turns: RwLock::new(()),
        }
    }

    /// Extends the lease to `ttl` from now. Fails with [`Error::LeaseLost`] if another owner
    /// took it over, and with [`Error::LeaseReleased`] after [`release`](Lease::release).
    ///
    /// The new expiry is not synced: a renewal lost in a crash only lets the next owner in
    /// sooner, which the epoch check keeps safe.
    pub fn renew(&self) -> Result<(), Error> {
        let _turn = self.turns.write().unwrap_or_else(PoisonError::into_inner);
        let locked = LockedFile::lock(self.take_file()?, &self.path, Mode::Exclusive)?;
        let renewed = self.check_holder("renew", locked.file()).and_then(|()| {
            let record = self.record(expiry(now_unix_ms(), self.ttl));
            write_record(&self.path, locked.file(), &record)
        });
        self.put_back(locked.unlock());
        if renewed.is_ok() {
            tracing::trace!(path = %self.path.display(), epoch = self.epoch, "lease renewed");
        }
        renewed
    }

    /// Gives the lease up: marks it expired in the file, durably, so that the next owner
    /// takes over at once, and refuses every later operation under it. Waits for the
    /// operations in flight. Idempotent; a lease another owner took over already is left
    /// alone. On an error the handle is released all the same, and the lease expires with its
    /// ttl.
    pub fn release(&self) -> Result<(), Error> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _turn = self.turns.write().unwrap_or_else(PoisonError::into_inner);
        let locked = LockedFile::lock(self.take_file()?, &self.path, Mode::Exclusive)?;
        let released = self.mark_released(locked.file());
        self.put_back(locked.unlock());
        released
    }

    /// Writes expiry 0 under this owner's epoch, unless another owner holds the lease now.
    fn mark_released(&self, file: &File) -> Result<(), Error> {
        let found = self.current(file)?;
        if !self.holds(&found) {
            let path = self.path.display();
            tracing::info!(path = %path, epoch = self.epoch, holder_epoch = found.epoch,
                "lease was taken over before its release");
            return Ok(());
        }
        write_record(&self.path, file, &self.record(0))?;
        sync(&self.path, file)?;
        tracing::info!(path = %self.path.display(), epoch = self.epoch, "lease released");
        Ok(())
    }

    /// The epoch this owner took the lease under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The owner's name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long the lease runs after each acquire or renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Runs `work` while the lease is this owner's, and keeps it so until `work` is done: a
    /// takeover waits for it. Fails without running `work` if the lease was lost or released.
    pub(crate) fn guard<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _turn = self.turns.read().unwrap_or_else(PoisonError::into_inner);
        let locked = LockedFile::lock(self.take_file()?, &self.path, Mode::Shared)?;
        let result = self
            .check_holder(operation, locked.file())
            .and_then(|()| work());
        self.put_back(locked.unlock());
        result
    }

    /// Checks, under the file's lock, that the lease is still this owner's.
    fn check_holder(&self, operation: &'static str, file: &File) -> Result<(), Error> {
        if self.released.load(Ordering::Acquire) {
            return Err(Error::LeaseReleased {
                operation,
                path: self.path.clone(),
            });
        }
        let found = self.current(file)?;
        if self.holds(&found) {
            return Ok(());
        }
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::warn!(path = %self.path.display(), epoch = self.epoch,
                holder_epoch = found.epoch, holder = found.owner, operation, "lease lost");
        }
        Err(Error::LeaseLost {
            operation,
            path: self.path.clone(),
            epoch: self.epoch,
            holder_epoch: found.epoch,
            holder: found.owner,
        })
    }

    /// The record in the lease file, after checking that the path still names that file.
    fn current(&self, file: &File) -> Result<Record, Error> {
        if identity(&self.path, fs::metadata(&self.path))? != self.file_id {
            return Err(self.gone("the lease file was replaced"));
        }
        read_record(&self.path, file)
    }

    fn holds(&self, record: &Record) -> bool {
        record.epoch == self.epoch && record.owner == self.owner
    }

    fn record(&self, expires_unix_ms: u64) -> Record {
        Record {
            epoch: self.epoch,
            owner: self.owner.clone(),
            expires_unix_ms,
        }
    }

    fn gone(&self, reason: &str) -> Error {
        Error::Gone {
            path: self.path.clone(),
            reason: format!("{reason} while this owner held epoch {}", self.epoch),
        }
    }

    /// An idle file on the lease file, or a new one; either way the very file this lease took.
    fn take_file(&self) -> Result<File, Error> {
        let idle = self.lock_files().pop();
        if let Some(file) = idle {
            return Ok(file);
        }
        let opened = OpenOptions::new().read(true).write(true).open(&self.path);
        let file = match opened {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(self.gone("the lease file was deleted"));
            }
            Err(error) => return Err(Error::io("open", &self.path, 0, error)),
        };
        if identity(&self.path, file.metadata())? != self.file_id {
            return Err(self.gone("the lease file was replaced"));
        }
        Ok(file)
    }

    /// Keeps an unlocked file for a later operation, unless enough are idle already.
    fn put_back(&self, file: Option<File>) {
        let mut files = self.lock_files();
        if files.len() < POOL_FILES_MAX {
            files.extend(file);
        }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, Vec<File>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("path", &self.path)
            .field("owner", &self.owner)
            .field("epoch", &self.epoch)
            .field("ttl", &self.ttl)
            .field("released", &self.released.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What [`Lease::acquire`] answers when `found` is another owner's live lease; `None` when
/// `owner` may take it.
fn held(path: &Path, found: &Record, owner: &str) -> Option<Acquired> {
    let now = now_unix_ms();
    if found.is_free_for(owner, now) {
        return None;
    }
    tracing::debug!(path = %path.display(), holder = found.owner, "lease is held");
    // Held means unexpired: `expires_unix_ms` is past `now`.
    Some(Acquired::Held {
        expires_in: Duration::from_millis(found.expires_unix_ms - now),
        owner: found.owner.clone(),
        epoch: found.epoch,
    })
}

fn check_owner_name(owner: &str) -> Result<(), Error> {
    if owner.is_empty() || owner.len() > LEASE_OWNER_BYTES_MAX {
        return Err(Error::InvalidOptions(format!(
            "a lease owner name holds 1 to {LEASE_OWNER_BYTES_MAX} bytes, {owner:?} holds {}",
            owner.len()
        )));
    }
    Ok(())
}

/// Opens the lease file for reading and writing; creates it, durably, if it is missing.
fn open_or_create(path: &Path) -> Result<File, Error> {
    let open = |create| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
    };
    match open(false) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        opened => return opened.map_err(|source| Error::io("open", path, 0, source)),
    }

    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::open::create_dir(parent)?;
    let file = open(true).map_err(|source| Error::io("create", path, 0, source))?;
    crate::layout::sync_dir(parent)?;
    Ok(file)
}

/// The (device, inode) pair of a file's metadata; a missing file has none, so it is gone.
fn identity(path: &Path, metadata: io::Result<fs::Metadata>) -> Result<(u64, u64), Error> {
    match metadata {
        Ok(metadata) => Ok((metadata.dev(), metadata.ino())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(Error::Gone {
            path: path.to_path_buf(),
            reason: "the lease file was deleted".into(),
        }),
        Err(error) => Err(Error::io("stat", path, 0, error)),
    }
}

fn sync(path: &Path, file: &File) -> Result<(), Error> {
    crate::segments::count_sync();
    file.sync_data()
        .map_err(|source| Error::io("fdatasync", path, 0, source))
}

fn log_taken(path: &Path, previous: &Record, taken: &Record) {
    tracing::info!(
        path = %path.display(),
        owner = taken.owner,
        epoch = taken.epoch,
        previous_owner = previous.owner,
        previous_expires_unix_ms = previous.expires_unix_ms,
        "lease taken"
    );
}

/// Milliseconds since the Unix epoch by the wall clock; 0 for a clock set before 1970.
fn now_unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, millis)
}

fn expiry(now: u64, ttl: Duration) -> u64 {
    now.saturating_add(millis(ttl))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The lease file's lock taken in a mode.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Shared,
    Exclusive,
}

/// A file on the lease file while this process holds its lock. Dropping it closes the file,
/// which ends the lock too.
struct LockedFile<'p> {
    file: File,
    path: &'p Path,
}

impl<'p> LockedFile<'p> {
    /// Locks `file`, waiting for a conflicting holder to let go (a signal may cut the wait
    /// short; it then goes on).
    fn lock(file: File, path: &'p Path, mode: Mode) -> Result<LockedFile<'p>, Error> {
        loop {
            let locked = match mode {
                Mode::Shared => file.lock_shared(),
                Mode::Exclusive => file.lock(),
            };
            match locked {
                Ok(()) => return Ok(LockedFile { file, path }),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::io("lock", path, 0, source)),
            }
        }
    }

    fn file(&self) -> &File {
        &self.file
    }

    /// Unlocks, handing the file back for reuse; when unlocking fails the file is closed
    /// instead, which ends the lock all the same.
    fn unlock(self) -> Option<File> {
        match self.file.unlock() {
            Ok(()) => Some(self.file),
            Err(error) => {
                let path = self.path.display();
                tracing::warn!(path = %path, %error, "cannot unlock the lease file; closing it");
                None
            }
        }
    }
}

/// What the lease file records.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    /// Bumped by every takeover; 0 for a lease never taken.
    epoch: u64,
    /// The holder's name; empty for a lease never taken.
    owner: String,
    /// When the lease runs out, by the wall clock; 0 once released.
    expires_unix_ms: u64,
}

impl Record {
    /// The record of a lease never taken: an empty file.
    const NEVER_TAKEN: Record = Record {
        epoch: 0,
        owner: String::new(),
        expires_unix_ms: 0,
    };

    /// Whether `owner` may take the lease at wall-clock time `now`.
    fn is_free_for(&self, owner: &str, now: u64) -> bool {
        self.epoch == 0 || self.expires_unix_ms <= now || self.owner == owner
    }

    /// The record that makes `owner` the holder under the next epoch.
    fn next(&self, path: &Path, owner: &str, expires_unix_ms: u64) -> Result<Record, Error> {
        let epoch = self.epoch.checked_add(1).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            offset: 12,
            reason: "the epoch cannot grow any further".into(),
        })?;
        Ok(Record {
            epoch,
            owner: owner.to_string(),
            expires_unix_ms,
        })
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let owner = self.owner.as_bytes();
        let mut bytes = [0u8; RECORD_LEN];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.epoch.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.expires_unix_ms.to_le_bytes());
        // The owner name was checked against LEASE_OWNER_BYTES_MAX, which fits in a u16.
        bytes[OWNER_LEN_AT..OWNER_AT].copy_from_slice(&(owner.len() as u16).to_le_bytes());
        bytes[OWNER_AT..OWNER_AT + owner.len()].copy_from_slice(owner);
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Record, Error> {
        let corrupt = |offset: usize, reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if bytes.is_empty() {
            return Ok(Record::NEVER_TAKEN);
        }
        if bytes.len() != RECORD_LEN {
            let reason = format!("lease file is {} bytes, expected {RECORD_LEN}", bytes.len());
            return Err(corrupt(bytes.len().min(RECORD_LEN), reason));
        }
        if &bytes[0..8] != MAGIC {
            return Err(corrupt(0, "not a netherite lease file".into()));
        }
        if u32::from_le_bytes(field(bytes, CRC_AT)) != crc32c::crc32c(&bytes[..CRC_AT]) {
            return Err(corrupt(CRC_AT, "checksum mismatch".into()));
        }
        let version = u32::from_le_bytes(field(bytes, 8));
        if version != VERSION {
            return Err(corrupt(8, format!("unsupported format version {version}")));
        }
        Ok(Record {
            epoch: decode_epoch(bytes).map_err(|reason| corrupt(12, reason))?,
            owner: decode_owner(bytes).map_err(|(at, reason)| corrupt(at, reason))?,
            expires_unix_ms: u64::from_le_bytes(field(bytes, 20)),
        })
    }
}

/// A written record's epoch: never 0, which only an empty file stands for.
fn decode_epoch(bytes: &[u8]) -> Result<u64, String> {
    match u64::from_le_bytes(field(bytes, 12)) {
        0 => Err("epoch 0 in a written lease record".into()),
        epoch => Ok(epoch),
    }
}

/// A record's owner name: UTF-8, 1 to `LEASE_OWNER_BYTES_MAX` bytes, zeros after it.
fn decode_owner(bytes: &[u8]) -> Result<String, (usize, String)> {
    let len = usize::from(u16::from_le_bytes(field(bytes, OWNER_LEN_AT)));
    if len == 0 || len > LEASE_OWNER_BYTES_MAX {
        return Err((OWNER_LEN_AT, format!("owner name of {len} bytes")));
    }
    let (owner, padding) = bytes[OWNER_AT..CRC_AT].split_at(len);
    if let Some(at) = padding.iter().position(|&b| b != 0) {
        return Err((OWNER_AT + len + at, "bytes after the owner name".into()));
    }
    match std::str::from_utf8(owner) {
        Ok(owner) => Ok(owner.to_string()),
        Err(error) => Err((
            OWNER_AT + error.valid_up_to(),
            "owner name is not UTF-8".into(),
        )),
    }
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("decode checked the length, and every field lies inside it")
}

/// The record in the lease file; reads one byte more than a record, to catch a longer file.
fn read_record(path: &Path, file: &File) -> Result<Record, Error> {
    let mut bytes = [0u8; RECORD_LEN + 1];
    let mut len = 0;
    while len < bytes.len() {
        match file.read_at(&mut bytes[len..], len as u64) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Error::io("read", path, len as u64, error)),
        }
    }
    Record::decode(path, &bytes[..len])
}

/// Overwrites the record in place: one write of one sector.
fn write_record(path: &Path, file: &File, record: &Record) -> Result<(), Error> {
    file.write_all_at(&record.encode(), 0)
        .map_err(|source| Error::io("write", path, 0, source))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn record() -> Record {
        Record {
            epoch: 7,
            owner: "node-3".into(),
            expires_unix_ms: 1_750_000_000_123,
        }
    }

    fn take(path: &Path, owner: &str, ttl: Duration) -> Lease {
        match Lease::acquire(path, owner, ttl).unwrap() {
            Acquired::Taken(lease) => lease,
            held => panic!("expected the lease taken, got {held:?}"),
        }
    }

    /// A record round-trips through its encoding, the longest owner name included; an empty
    /// file is a lease never taken.
    #[test]
    fn round_trip() {
        let path = Path::new("/v/p3/LEASE");
        assert_eq!(Record::decode(path, &record().encode()).unwrap(), record());
        let longest = Record {
            owner: "é".repeat(LEASE_OWNER_BYTES_MAX / 2),
            ..record()
        };
        assert_eq!(Record::decode(path, &longest.encode()).unwrap(), longest);
        assert_eq!(Record::decode(path, &[]).unwrap(), Record::NEVER_TAKEN);
    }

    /// Re-seals `bytes` with a valid checksum, so that a test reaches the checks after it.
    fn sealed(mut bytes: [u8; RECORD_LEN]) -> [u8; RECORD_LEN] {
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Each kind of damage is refused with the file and the offset of the damaged field, and
    /// never read as a free lease.
    #[test]
    fn damage_names_file_and_offset() {
        let path = Path::new("/v/p3/LEASE");
        let good = record().encode();
        let edit = |at: usize, value: &[u8]| {
            let mut bytes = good;
            bytes[at..at + value.len()].copy_from_slice(value);
            bytes
        };
        let cases: Vec<(Vec<u8>, u64)> = vec![
            (good[..40].to_vec(), 40),
            ([good.as_slice(), &[0]].concat(), 256),
            (b"epoch=3 owner=x".to_vec(), 15),
            (edit(0, b"X").to_vec(), 0),
            (edit(13, &[1]).to_vec(), CRC_AT as u64),
            (sealed(edit(8, &2u32.to_le_bytes())).to_vec(), 8),
            (sealed(edit(12, &0u64.to_le_bytes())).to_vec(), 12),
            (sealed(edit(28, &0u16.to_le_bytes())).to_vec(), 28),
            (sealed(edit(28, &223u16.to_le_bytes())).to_vec(), 28),
            (sealed(edit(40, b"x")).to_vec(), 40),
            (sealed(edit(31, &[0xff])).to_vec(), 31),
        ];
        for (bytes, expected) in cases {
            match Record::decode(path, &bytes) {
                Err(Error::Corrupt {
                    path: p, offset, ..
                }) => assert_eq!((p.as_path(), offset), (path, expected)),
                other => panic!("expected Corrupt at {expected}, got {other:?}"),
            }
        }
    }

    /// Owner names must be 1 to LEASE_OWNER_BYTES_MAX bytes, so that every record encodes.
    #[test]
    fn owner_names_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LEASE");
        let ttl = Duration::from_secs(1);
        for owner in [String::new(), "x".repeat(LEASE_OWNER_BYTES_MAX + 1)] {
            let error = Lease::acquire(&path, &owner, ttl).unwrap_err();
            assert!(matches!(error, Error::InvalidOptions(_)), "{error}");
        }
        take(&path, &"x".repeat(LEASE_OWNER_BYTES_MAX), ttl);
    }

    /// A renewal gets its turn while operations keep overlapping without a gap between them.
    #[test]
    fn renewal_is_not_starved_by_operations() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Arc::new(take(&dir.path().join("LEASE"), "a", Duration::from_secs(5)));
        let stop = Arc::new(AtomicBool::new(false));

        // Phase 1: four threads run operations back to back, each holding its guard 1 ms.
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (lease, stop) = (Arc::clone(&lease), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let slow = || {
                            std::thread::sleep(Duration::from_millis(1));
                            Ok(())
                        };
                        lease.guard("write", slow).unwrap();
                    }
                })
            })
            .collect();

        // Phase 2: renewals still go through. Starved, they would wait for as long as the
        // operations go on, so the bound is far above what a loaded machine needs (~10 ms).
        std::thread::sleep(Duration::from_millis(20));
        let started = std::time::Instant::now();
        for _ in 0..10 {
            lease.renew().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().unwrap();
        }
    }

    /// A released lease refuses operations, and a second release changes nothing.
    #[test]
    fn a_released_lease_refuses_operations() {
        let dir = tempfile::tempdir().unwrap();
        let lease = take(&dir.path().join("LEASE"), "a", Duration::from_secs(5));
        lease.guard("write", || Ok(())).unwrap();
        lease.release().unwrap();
        lease.release().unwrap();

        let error = lease.guard("write", || Ok(())).unwrap_err();
        assert!(matches!(error, Error::LeaseReleased { .. }), "{error}");
        let error = lease.renew().unwrap_err();
        assert!(matches!(error, Error::LeaseReleased { .. }), "{error}");
    }

    /// A lease file deleted and created anew (epochs starting over) fences the old owner, even
    /// when the new file happens to carry the old owner's epoch.
    #[test]
    fn a_replaced_lease_file_fences_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LEASE");
        let lease = take(&path, "a", Duration::from_secs(5));
        fs::remove_file(&path).unwrap();
        let error = lease.guard("write", || Ok(())).unwrap_err();
        assert!(matches!(error, Error::Gone { .. }), "{error}");

        let again = take(&path, "a", Duration::from_secs(5));
        assert_eq!(again.epoch(), lease.epoch());
        let error = lease.guard("write", || Ok(())).unwrap_err();
        let Error::Gone { reason, .. } = &error else {
            panic!("expected Gone, got {error:?}");
        };
        assert!(reason.contains("replaced"), "{reason}");
    }
}
