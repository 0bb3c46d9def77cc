//! The task hub's data directory: its metadata file, its lock and its layout.
//!
//! One directory holds one task hub:
//!
//! ```text
//! netherite-data/
//!   taskhub.toml     format version, partition count, creation time: written once
//!   taskhub.lock     held while a process has the hub open
//!   p00/ input/      partition 0's durable input queue
//!        log/        partition 0's commit log
//!        store/      partition 0's checkpoints
//!        lease       who may write partition 0, when nodes share the directory
//!   p01/ ...
//! ```
//!
//! `taskhub.toml` is written once, when the directory is first used, and only read after
//! that. It is written atomically (a temporary file, fsync, rename, fsync of the directory),
//! so a crash leaves either no file or a whole one. On reopen the partition count it records
//! must equal the one asked for: the placement of every instance depends on it, so a mismatch
//! is [`Error::PartitionCountMismatch`], never a silent reshuffle. A damaged file is
//! [`Error::TaskHubCorrupt`] naming it.
//!
//! The lock (an exclusive kernel lock on `taskhub.lock`, dropped when the handle is dropped or
//! the process dies, kill -9 included) keeps a second process off a directory in use, and
//! makes creation race-free: the file is only checked and written under it. Nodes that share
//! the directory (a task hub on Kafka) take the lock shared instead, and fence each partition
//! with its `lease`; they may race to create the file, each writing a whole one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use netherite_core::PartitionId;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::settings::{PARTITION_COUNT_MAX, Settings};

/// The name of the metadata file in a data directory.
pub const TASKHUB_FILE: &str = "taskhub.toml";

/// The name of the lock file in a data directory.
pub const LOCK_FILE: &str = "taskhub.lock";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const TEMP_FILE: &str = "taskhub.toml.tmp";

/// What `taskhub.toml` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHubMeta {
    /// The format of the data directory; this build knows [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The partition count, fixed at creation.
    pub partition_count: u32,
    /// When the directory was first used, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

/// An open task hub directory: its metadata, checked, and its lock, held until the last clone
/// is dropped.
///
/// ```
/// use netherite::taskhub::TaskHub;
///
/// let dir = tempfile::tempdir()?;
/// let hub = TaskHub::open(dir.path(), 4)?;
/// assert_eq!(hub.partition_count(), 4);
/// drop(hub);
///
/// let error = TaskHub::open(dir.path(), 12).expect_err("the count is fixed");
/// assert!(error.to_string().contains("was created with 4 partitions; settings ask for 12"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TaskHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    meta: TaskHubMeta,
    /// Held for the lock; closing the file releases it.
    _lock: File,
}

impl TaskHub {
    /// Opens the task hub of `settings.data_dir` with `settings.partition_count` partitions.
    pub fn open_with(settings: &Settings) -> Result<TaskHub, Error> {
        TaskHub::open(&settings.data_dir, settings.partition_count)
    }

    /// Opens the task hub in `dir`, creating the directory and its `taskhub.toml` on first
    /// use, and locks it. Blocks on file I/O: call it at startup or on a blocking thread.
    ///
    /// Fails with [`Error::PartitionCountMismatch`] when the directory was created with
    /// another count, [`Error::TaskHubCorrupt`] when its file is damaged,
    /// [`Error::TaskHubLocked`] when another handle has it open, and
    /// [`Error::InvalidSetting`] when `partition_count` is out of range.
    pub fn open(dir: impl AsRef<Path>, partition_count: u32) -> Result<TaskHub, Error> {
        TaskHub::open_locked(dir.as_ref(), partition_count, Sharing::Alone)
    }

    /// Opens the task hub in `dir` as [`open`](Self::open) does, for one node of several that
    /// share the directory: the lock taken is a shared one, so other nodes open it too, while
    /// a process that wants it alone ([`open`](Self::open)) is kept out, and keeps them out.
    /// The partitions are then fenced one by one (see [`crate::host::FileStorage::leased`]).
    pub fn open_shared(dir: impl AsRef<Path>, partition_count: u32) -> Result<TaskHub, Error> {
        TaskHub::open_locked(dir.as_ref(), partition_count, Sharing::Shared)
    }

    fn open_locked(dir: &Path, partition_count: u32, sharing: Sharing) -> Result<TaskHub, Error> {
        let dir = dir.to_path_buf();
        check_count(partition_count)?;
        fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        let lock = lock(&dir, sharing)?;

        // Nodes sharing the directory may both create the file: each writes a whole one, the
        // first to link it into place wins, and each then uses what is there.
        let meta = match read(&dir)? {
            Some(meta) => meta,
            None => {
                create(&dir, partition_count)?;
                read(&dir)?.ok_or_else(|| Error::TaskHubCorrupt {
                    path: dir.join(TASKHUB_FILE),
                    reason: "missing right after it was written".into(),
                })?
            }
        };
        if meta.partition_count != partition_count {
            return Err(Error::PartitionCountMismatch {
                dir,
                stored: meta.partition_count,
                requested: partition_count,
            });
        }
        tracing::info!(
            dir = %dir.display(),
            partitions = partition_count,
            created_unix_ms = meta.created_unix_ms,
            "task hub opened"
        );
        let inner = Inner {
            dir,
            meta,
            _lock: lock,
        };
        Ok(TaskHub {
            inner: Arc::new(inner),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What `taskhub.toml` records.
    pub fn meta(&self) -> &TaskHubMeta {
        &self.inner.meta
    }

    /// The partition count, fixed at creation.
    pub fn partition_count(&self) -> u32 {
        self.inner.meta.partition_count
    }

    /// The folder of `partition`: `pNN` in the data directory.
    pub fn partition_dir(&self, partition: PartitionId) -> PathBuf {
        self.inner.dir.join(format!("p{:02}", partition.0))
    }

    /// Where `partition`'s durable input queue lives.
    pub fn input_dir(&self, partition: PartitionId) -> PathBuf {
        self.partition_dir(partition).join("input")
    }

    /// Where `partition`'s commit log lives.
    pub fn log_dir(&self, partition: PartitionId) -> PathBuf {
        self.partition_dir(partition).join("log")
    }

    /// Where `partition`'s checkpoints live.
    pub fn store_dir(&self, partition: PartitionId) -> PathBuf {
        self.partition_dir(partition).join("store")
    }
}

/// Reads `dir`'s `taskhub.toml` without locking the directory: `None` if there is none yet.
///
/// For tools that inspect a directory; a hub that runs uses [`TaskHub::open`].
pub fn read(dir: &Path) -> Result<Option<TaskHubMeta>, Error> {
    let path = dir.join(TASKHUB_FILE);
    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check_no_partitions(dir).map(|()| None);
        }
        Err(e) => return Err(io_error("read", &path, e)),
    };
    parse(&path, &text).map(Some)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<TaskHubMeta, Error> {
    let corrupt = |reason: String| Error::TaskHubCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
    let meta: TaskHubMeta = toml::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not {FORMAT_VERSION}, the one this build knows",
            meta.format_version
        )));
    }
    if !(1..=PARTITION_COUNT_MAX).contains(&meta.partition_count) {
        return Err(corrupt(format!(
            "partition count {} is not within 1..={PARTITION_COUNT_MAX}",
            meta.partition_count
        )));
    }
    Ok(meta)
}

/// A directory with partition folders but no `taskhub.toml` was not made by this engine, or
/// lost its file: guessing its count could misplace every instance, so it is refused.
fn check_no_partitions(dir: &Path) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let partition = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| is_partition_dir(name));
    match partition {
        None => Ok(()),
        Some(name) => Err(Error::TaskHubCorrupt {
            path: dir.join(TASKHUB_FILE),
            reason: format!("missing, yet the directory holds partition folder {name}"),
        }),
    }
}

fn is_partition_dir(name: &str) -> bool {
    name.len() >= 3 && name.starts_with('p') && name[1..].chars().all(|c| c.is_ascii_digit())
}

/// Whether a process opens the task hub alone or beside other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    Alone,
    Shared,
}

/// Writes a new `taskhub.toml` atomically unless one appeared meanwhile: temporary file,
/// fsync, hard link (which never replaces a file), fsync directory.
fn create(dir: &Path, partition_count: u32) -> Result<(), Error> {
    let meta = TaskHubMeta {
        format_version: FORMAT_VERSION,
        partition_count,
        created_unix_ms: now_unix_ms(),
    };
    let body = toml::to_string(&meta).map_err(|e| Error::TaskHubCorrupt {
        path: dir.join(TASKHUB_FILE),
        reason: format!("cannot encode: {e}"),
    })?;
    let text = format!(
        "# The netherite task hub in this directory. Written once when it was created; the \
         partition count cannot change.\n{body}"
    );

    // A name of its own (nodes in containers often share a process id), and a link that
    // fails if the file exists: the first node to publish wins, and the others read its file.
    let temp = dir.join(format!("{TEMP_FILE}.{:032x}", crate::host::random_u128()));
    let written = write_synced(&temp, &text);
    let path = dir.join(TASKHUB_FILE);
    let published = written.and_then(|()| match fs::hard_link(&temp, &path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        linked => linked
            .map(|()| true)
            .map_err(|e| io_error("link", &path, e)),
    });
    let _ = fs::remove_file(&temp);
    if published? {
        sync_dir(dir)?;
        tracing::info!(path = %path.display(), partitions = partition_count, "task hub created");
    }
    Ok(())
}

fn write_synced(path: &Path, text: &str) -> Result<(), Error> {
    let mut file = File::create(path).map_err(|e| io_error("create", path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| io_error("write", path, e))?;
    file.sync_all().map_err(|e| io_error("fsync", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync", dir, e))
}

/// Takes the lock of `dir`, exclusive or shared as `sharing` says, or fails at once if a
/// holder keeps it from being taken.
fn lock(dir: &Path, sharing: Sharing) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    let locked = match sharing {
        Sharing::Alone => file.try_lock(),
        Sharing::Shared => file.try_lock_shared(),
    };
    match locked {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::TaskHubLocked {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(TryLockError::Error(e)) => Err(io_error("lock", &path, e)),
    }
}

fn check_count(partition_count: u32) -> Result<(), Error> {
    if (1..=PARTITION_COUNT_MAX).contains(&partition_count) {
        return Ok(());
    }
    Err(Error::InvalidSetting {
        setting: "partition_count",
        origin: "TaskHub::open".into(),
        reason: format!("{partition_count} is not within 1..={PARTITION_COUNT_MAX}"),
    })
}

fn now_unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn io_error(operation: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::DataDir {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition folders are told apart from everything else a directory may hold.
    #[test]
    fn partition_folders_are_recognised() {
        for name in ["p00", "p07", "p123"] {
            assert!(is_partition_dir(name), "{name}");
        }
        for name in ["p", "p0x", "taskhub.toml", "px1", "q00"] {
            assert!(!is_partition_dir(name), "{name}");
        }
    }

    /// A file with a version this build does not know is refused, naming the version.
    #[test]
    fn unknown_format_version_is_refused() {
        let text = b"format_version = 9\npartition_count = 4\ncreated_unix_ms = 1\n";
        let error = parse(Path::new("/d/taskhub.toml"), text).expect_err("version 9");
        let message = error.to_string();
        assert!(message.contains("format version 9"), "{message}");
        assert!(message.contains("/d/taskhub.toml"), "{message}");
    }
}
