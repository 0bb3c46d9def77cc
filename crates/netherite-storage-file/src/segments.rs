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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
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

/// The segment files of one device directory.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Held for a whole flush, so that a flush cannot return while an earlier one that took
    /// the dirty files is still syncing them.
    flushing: Mutex<()>,
    /// A test seam: the next sync fails as if the disk had reported an error.
    #[cfg(test)]
    pub(crate) fail_next_sync: std::sync::atomic::AtomicBool,
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
    /// The file whose sync failed, once one did.
    poisoned: Option<PathBuf>,
}

impl Segments {
    /// The segments of `dir`, `segment_bytes` each; files are opened when first used.
    pub(crate) fn new(dir: PathBuf, segment_bytes: u64) -> Segments {
        Segments {
            dir,
            segment_bytes,
            state: Mutex::default(),
            flushing: Mutex::default(),
            #[cfg(test)]
            fail_next_sync: std::sync::atomic::AtomicBool::new(false),
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
            let failed = |written: u64, source: io::Error| {
                let device_offset = piece.device_offset(self.segment_bytes) + written;
                let path = self.path(piece.segment);
                Error::write(
                    &path,
                    piece.file_offset + written,
                    (device_offset, end),
                    source,
                )
            };
            let file = self
                .file_for_write(piece.segment)
                .map_err(|e| failed(0, e))?;
            let chunk = &bytes[piece.at..piece.at + piece.len];
            write_all_at(&file, chunk, piece.file_offset).map_err(|(n, e)| failed(n, e))?;
            // Marked after the bytes are in: a flush called after this write returns syncs it.
            self.lock().dirty.insert(piece.segment);
        }
        Ok(())
    }

    /// Reads `len` bytes at device `offset`; what no file holds reads as zeros.
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
    /// Returns how many segment files were synced.
    pub(crate) fn sync(&self) -> Result<usize, Error> {
        let _flushing = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        let Dirty { files, dir } = self.take_dirty()?;
        for (index, file) in &files {
            if let Err(source) = self.sync_file(file) {
                let path = self.path(*index);
                tracing::error!(path = %path.display(), %source, "fdatasync failed");
                self.lock().poisoned = Some(path.clone());
                return Err(Error::io("fdatasync", &path, 0, source));
            }
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
        if let Some(path) = &state.poisoned {
            return Err(Error::Poisoned { path: path.clone() });
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

    fn sync_file(&self, file: &File) -> io::Result<()> {
        count_sync();
        #[cfg(test)]
        if self
            .fail_next_sync
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        file.sync_data()
    }

    /// The handle of segment `index`, creating the file if it does not exist.
    fn file_for_write(&self, index: u64) -> io::Result<Arc<File>> {
        let mut state = self.lock();
        if let Some(file) = state.files.get(&index) {
            return Ok(Arc::clone(file));
        }
        let path = self.path(index);
        let file = match open_segment(&path, true) {
            Ok(file) => {
                state.dir_dirty = true;
                tracing::debug!(path = %path.display(), "segment file created");
                file
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                open_segment(&path, false)?
            }
            Err(error) => return Err(error),
        };
        let file = Arc::new(file);
        state.files.insert(index, Arc::clone(&file));
        Ok(file)
    }

    /// The handle of segment `index`, or `None` if no such file exists.
    fn file_for_read(&self, index: u64) -> Result<Option<Arc<File>>, Error> {
        let mut state = self.lock();
        if let Some(file) = state.files.get(&index) {
            return Ok(Some(Arc::clone(file)));
        }
        let path = self.path(index);
        match open_segment(&path, false) {
            Ok(file) => {
                let file = Arc::new(file);
                state.files.insert(index, Arc::clone(&file));
                Ok(Some(file))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Error::io("open", &path, 0, error)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a panic elsewhere while it
        // was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
