//! The segment files of one device: positional reads and writes split at segment boundaries,
//! the set of files to sync at the next flush, and removal of segments below the truncation
//! point. Everything here blocks; [`FileDevice`](crate::FileDevice) runs it off the runtime.
//!
//! Why a failed `fdatasync` poisons the device: on Linux, when writeback of a dirty page fails,
//! the kernel reports the error to one `fsync` and may mark the page clean while it still reads
//! back as written. A later `fsync` then succeeds without the bytes being on the disk. So after
//! a failed sync no later flush of this handle may say "durable": every flush fails until the
//! owner reopens the device and recovers from what is really there. The contract allows it
//! (rule 5 promises nothing until a flush succeeds), and the alternative is silent loss.
//!
//! Why a new segment first fills the ones below it: so that a missing or cut-short file is
//! damage the next open can name, not a hole that reads as zeros. Before the first write to a
//! segment above the highest file, every segment below it (down to the truncation point) is
//! made to exist at its full length (sparse: the bytes never written read as zeros), durably:
//! each is synced (a length that a write extended is not durable before a sync either), and
//! so is the directory. Only then is the new file created, so no crash leaves a higher file
//! without its full-length predecessors. A file is created once per segment, so the extra
//! sync costs one `fdatasync` per 64 MiB at the default size.
//!
//! Why a flush checks that the files are still there: a write into a file that was deleted,
//! or into a directory that was moved, succeeds, and so does its `fdatasync`, yet a reopen
//! will not find the bytes. A flush that finds a synced file unlinked, or the directory path
//! naming another directory, fails and poisons the handle like a failed sync.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Error, layout};

/// Every `fdatasync` of a segment file and `fsync` of a directory issued in this process.
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many `fdatasync` (segment files) and `fsync` (directories) calls the file devices of
/// this process have issued, failed ones included; for benchmarks that report sync rates.
pub fn syncs_total() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

/// Counts one sync call.
pub(crate) fn count_sync() {
    SYNCS.fetch_add(1, Ordering::Relaxed);
}

/// What opening the directory found, for [`Segments::new`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    /// The first segment not wholly below the truncation point.
    pub(crate) first_kept: u64,
    /// The highest segment file there is, if any.
    pub(crate) highest: Option<u64>,
    /// The directory's (device, inode), to notice it being replaced.
    pub(crate) dir_id: (u64, u64),
}

/// The segment files of one device directory.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    /// The directory's (device, inode) at open.
    dir_id: (u64, u64),
    state: Mutex<State>,
    /// Held for a whole flush, so that a flush cannot return while an earlier one that took
    /// the dirty files is still syncing them.
    flushing: Mutex<()>,
    /// A test seam: how many more syncs succeed before one fails as if the disk had reported
    /// an error (`u64::MAX`: none fails).
    #[cfg(test)]
    pub(crate) syncs_before_failure: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Open handles, by segment index; opened on first use.
    // TODO: close idle handles (least recently used first) when a device keeps more segments
    // alive than the process may open files; at the default size that is past 64 GiB.
    files: BTreeMap<u64, Arc<File>>,
    /// Segments written since the last flush took them.
    dirty: BTreeSet<u64>,
    /// Whether a segment file was created since the last good directory sync.
    dir_dirty: bool,
    /// Segments below it were truncated away.
    first_kept: u64,
    /// The highest segment file there is; every one from `first_kept` below it exists at
    /// full length (see the module docs).
    highest: Option<u64>,
    /// Why no flush may succeed any more, once something made it so.
    poisoned: Option<Poison>,
}

/// Why a handle refuses every later flush.
#[derive(Clone, Debug)]
enum Poison {
    /// The sync of this file failed.
    SyncFailed(PathBuf),
    /// This file or directory was deleted or moved while open.
    Gone(PathBuf, String),
}

impl Poison {
    fn error(&self) -> Error {
        match self {
            Poison::SyncFailed(path) => Error::Poisoned { path: path.clone() },
            Poison::Gone(path, reason) => Error::Gone {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }
}

impl Segments {
    /// The segments of `dir`, `segment_bytes` each, as opening found them; files are opened
    /// when first used.
    pub(crate) fn new(dir: PathBuf, segment_bytes: u64, found: Found) -> Segments {
        let state = State {
            first_kept: found.first_kept,
            highest: found.highest,
            ..State::default()
        };
        Segments {
            dir,
            segment_bytes,
            dir_id: found.dir_id,
            state: Mutex::new(state),
            flushing: Mutex::default(),
            #[cfg(test)]
            syncs_before_failure: AtomicU64::new(u64::MAX),
        }
    }

    /// The file of segment `index`.
    pub(crate) fn path(&self, index: u64) -> PathBuf {
        self.dir.join(layout::segment_name(index))
    }

    /// Writes `bytes` at device `offset`, creating segment files as needed.
    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let end = offset + bytes.len() as u64;
        for piece in layout::pieces(offset, bytes.len(), self.segment_bytes) {
            let device_offset = piece.device_offset(self.segment_bytes);
            let failed = |operation, path: &Path, file_offset, source| {
                let reached = device_offset + file_offset - piece.file_offset;
                Error::write(operation, path, file_offset, (reached, end), source)
            };
            let file = self.file_for_write(piece.segment, &failed)?;
            let chunk = &bytes[piece.at..piece.at + piece.len];
            write_all_at(&file, chunk, piece.file_offset).map_err(|(n, e)| {
                let path = self.path(piece.segment);
                failed("write", &path, piece.file_offset + n, e)
            })?;
            // Marked after the bytes are in: a flush called after this write returns syncs it.
            self.lock().dirty.insert(piece.segment);
        }
        Ok(())
    }

    /// Reads `len` bytes at device `offset`; what the files do not hold reads as zeros.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; len];
        for piece in layout::pieces(offset, len, self.segment_bytes) {
            let Some(file) = self.file_for_read(piece.segment)? else {
                continue;
            };
            let buffer = &mut out[piece.at..piece.at + piece.len];
            read_at_most(&file, buffer, piece.file_offset).map_err(|(read, source)| {
                let path = self.path(piece.segment);
                Error::io("read", &path, piece.file_offset + read, source)
            })?;
        }
        Ok(out)
    }

    /// Makes every write that completed before the call durable: `fdatasync` of each segment
    /// written since the last flush, then of the directory if a segment file was created.
    /// Fails, and poisons the handle, when a synced file or the directory is no longer where
    /// a reopen would look. Returns how many segment files were synced.
    pub(crate) fn sync(&self) -> Result<usize, Error> {
        let _flushing = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        let Dirty { files, dir } = self.take_dirty()?;
        for (index, file) in &files {
            self.sync_data(*index, file, |poison| {
                poison_in(&mut self.lock(), poison);
            })?;
        }
        if let Some(gone) = self.find_gone(&files) {
            return Err(poison_in(&mut self.lock(), gone));
        }
        if dir && let Err(error) = layout::sync_dir(&self.dir) {
            self.lock().dir_dirty = true;
            return Err(error);
        }
        Ok(files.len())
    }

    /// Deletes the segments that lie wholly below `start` and forgets their handles. Returns
    /// how many files were deleted.
    pub(crate) fn remove_below(&self, start: u64) -> Result<usize, Error> {
        let first_kept = start / self.segment_bytes;
        let doomed: Vec<_> = layout::list_segments(&self.dir)?
            .into_iter()
            .filter(|segment| segment.index < first_kept)
            .collect();
        {
            let mut state = self.lock();
            state.first_kept = state.first_kept.max(first_kept);
            state.files.retain(|&index, _| index >= first_kept);
            state.dirty.retain(|&index| index >= first_kept);
        }
        for segment in &doomed {
            match fs::remove_file(&segment.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io("remove", &segment.path, 0, error)),
            }
        }
        Ok(doomed.len())
    }

    /// The dirty files and the directory flag, taken for one flush.
    fn take_dirty(&self) -> Result<Dirty, Error> {
        let mut state = self.lock();
        if let Some(poison) = &state.poisoned {
            return Err(poison.error());
        }
        let dirty = std::mem::take(&mut state.dirty);
        let files = dirty
            .into_iter()
            .filter_map(|index| {
                state
                    .files
                    .get(&index)
                    .map(|file| (index, Arc::clone(file)))
            })
            .collect();
        let dir = std::mem::take(&mut state.dir_dirty);
        Ok(Dirty { files, dir })
    }

    /// `fdatasync` of segment `index`. A failure poisons the handle (see the module docs):
    /// `poison` records it, under the state lock the caller holds or takes.
    fn sync_data(&self, index: u64, file: &File, poison: impl FnOnce(Poison)) -> Result<(), Error> {
        count_sync();
        #[cfg(test)]
        let injected = self
            .syncs_before_failure
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
            .then(|| {
                self.syncs_before_failure.store(u64::MAX, Ordering::SeqCst);
                io::Error::other("injected fdatasync failure")
            });
        #[cfg(not(test))]
        let injected = None;
        let Some(source) = injected.or_else(|| file.sync_data().err()) else {
            return Ok(());
        };
        let path = self.path(index);
        tracing::error!(path = %path.display(), %source, "fdatasync failed");
        poison(Poison::SyncFailed(path.clone()));
        Err(Error::io("fdatasync", &path, 0, source))
    }

    /// The first of the directory and `files` that is no longer where a reopen would look.
    fn find_gone(&self, files: &[(u64, Arc<File>)]) -> Option<Poison> {
        let gone = |path: &Path, reason: String| Some(Poison::Gone(path.to_path_buf(), reason));
        match fs::metadata(&self.dir) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.dir_id => {}
            Ok(_) => return gone(&self.dir, "the path now names another directory".into()),
            Err(error) => return gone(&self.dir, format!("the directory is not there: {error}")),
        }
        for (index, file) in files {
            if file.metadata().is_ok_and(|meta| meta.nlink() == 0) {
                return gone(&self.path(*index), "the file was deleted".into());
            }
        }
        None
    }

    /// The handle of segment `index` for a write, creating the file (and filling the ones
    /// below it) when it is above the highest. `failed` builds the error of a file operation.
    fn file_for_write(&self, index: u64, failed: &Failed<'_>) -> Result<Arc<File>, Error> {
        let mut state = self.lock();
        if let Some(file) = state.files.get(&index) {
            return Ok(Arc::clone(file));
        }
        let file = if state.highest.is_some_and(|highest| index <= highest) {
            self.open_existing(index)?
        } else {
            self.fill_below(&mut state, index, failed)?;
            let file = self.create(&mut state, index, failed)?;
            state.highest = Some(index);
            state.dir_dirty = true;
            file
        };
        let file = Arc::new(file);
        state.files.insert(index, Arc::clone(&file));
        Ok(file)
    }

    /// Makes every segment from the truncation point up to `index` exist at full length,
    /// durably, before segment `index` is created (see the module docs).
    fn fill_below(&self, state: &mut State, index: u64, failed: &Failed<'_>) -> Result<(), Error> {
        let from = state
            .highest
            .map_or(state.first_kept, |h| h.max(state.first_kept));
        for below in from..index {
            let path = self.path(below);
            let file = match state.files.get(&below) {
                Some(file) => Arc::clone(file),
                None if state.highest.is_some_and(|h| below <= h) => {
                    Arc::new(self.open_existing(below)?)
                }
                None => {
                    state.dir_dirty = true;
                    Arc::new(self.create(state, below, failed)?)
                }
            };
            let len = file
                .metadata()
                .map_err(|e| failed("stat", &path, 0, e))?
                .len();
            if len < self.segment_bytes {
                file.set_len(self.segment_bytes)
                    .map_err(|e| failed("extend", &path, len, e))?;
            }
            // Synced even when a write already filled it: a length that pwrite extended is
            // not durable until a sync, and after a crash the file would be found short.
            self.sync_data(below, &file, |poison| {
                poison_in(state, poison);
            })?;
            state.files.insert(below, file);
        }
        if std::mem::take(&mut state.dir_dirty) {
            layout::sync_dir(&self.dir).inspect_err(|_| state.dir_dirty = true)?;
        }
        Ok(())
    }

    /// Creates the file of segment `index`, above the highest. It may exist already, left by
    /// an attempt that failed before the file counted as the highest; then it is opened.
    fn create(&self, state: &mut State, index: u64, failed: &Failed<'_>) -> Result<File, Error> {
        let path = self.path(index);
        match open_segment(&path, true) {
            Ok(file) => {
                tracing::debug!(path = %path.display(), "segment file created");
                Ok(file)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                open_segment(&path, false).map_err(|e| failed("open", &path, 0, e))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let gone = Poison::Gone(self.dir.clone(), "the directory is not there".into());
                Err(poison_in(state, gone))
            }
            Err(error) => Err(failed("create", &path, 0, error)),
        }
    }

    /// Opens the file of segment `index`, which must exist: a missing one is damage.
    fn open_existing(&self, index: u64) -> Result<File, Error> {
        let path = self.path(index);
        open_segment(&path, false).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => missing_segment(path, index, self.segment_bytes),
            _ => Error::io("open", &path, 0, error),
        })
    }

    /// The handle of segment `index`, or `None` above the highest file (nothing was written
    /// there, so it reads as zeros).
    fn file_for_read(&self, index: u64) -> Result<Option<Arc<File>>, Error> {
        let mut state = self.lock();
        if let Some(file) = state.files.get(&index) {
            return Ok(Some(Arc::clone(file)));
        }
        if state.highest.is_none_or(|highest| index > highest) {
            return Ok(None);
        }
        let file = Arc::new(self.open_existing(index)?);
        state.files.insert(index, Arc::clone(&file));
        Ok(Some(file))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a panic elsewhere while it
        // was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records `poison` (the first one stays) and returns its error.
fn poison_in(state: &mut State, poison: Poison) -> Error {
    let error = poison.error();
    tracing::error!(%error, "file device poisoned: no flush succeeds until a reopen");
    state.poisoned.get_or_insert(poison);
    error
}

/// Builds the error of a file operation during a write: (operation, file, file offset, what
/// the file system said).
type Failed<'a> = dyn Fn(&'static str, &Path, u64, io::Error) -> Error + 'a;

/// The error for segment `index`, which must exist (the layout's rule) and does not.
pub(crate) fn missing_segment(path: PathBuf, index: u64, segment_bytes: u64) -> Error {
    let start = index.saturating_mul(segment_bytes);
    Error::Corrupt {
        path,
        offset: 0,
        reason: format!(
            "the segment file is missing, though a higher one exists: device bytes {start}..{} \
             are lost",
            start.saturating_add(segment_bytes)
        ),
    }
}

/// What one flush syncs.
struct Dirty {
    /// The segments written since the last flush, with their handles.
    files: Vec<(u64, Arc<File>)>,
    /// Whether the directory gained a segment file since the last good flush.
    dir: bool,
}

/// Opens a segment file for reading and writing; with `create`, only a new one.
fn open_segment(path: &std::path::Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
}

/// Writes all of `bytes` at `offset`; on failure, says how many bytes made it.
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> Result<(), (u64, io::Error)> {
    let mut written = 0usize;
    while written < bytes.len() {
        match file.write_at(&bytes[written..], offset + written as u64) {
            Ok(0) => return Err((written as u64, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err((written as u64, error)),
        }
    }
    Ok(())
}

/// Fills `buffer` from `offset` up to the end of the file; the rest of it is left as it was.
fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> Result<(), (u64, io::Error)> {
    let mut read = 0usize;
    while read < buffer.len() {
        match file.read_at(&mut buffer[read..], offset + read as u64) {
            Ok(0) => return Ok(()),
            Ok(n) => read += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err((read as u64, error)),
        }
    }
    Ok(())
}
