//! The default ownership fence: an exclusive lock on the directory's lock file (the other one
//! is a lease, see `lease`).
//!
//! The lock is the kernel's (`flock` on Linux, through [`File::try_lock`]): it belongs to one
//! open file, so a second open conflicts whether it comes from this process or another, and the
//! kernel drops it when the holder closes the file or dies, kill -9 included. Nobody waits for
//! a lease to run out. The holder writes its process id into the file, only so that the error
//! a second opener gets can say who holds the directory.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, layout};

/// An exclusive lock on a device directory; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`Error::Locked`] if anyone else holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, Error> {
        let path = dir.join(layout::LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| Error::io("open", &path, 0, source))?;

        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder(&path),
                    lock: path,
                });
            }
            Err(TryLockError::Error(source)) => return Err(Error::io("lock", &path, 0, source)),
        }

        let lock = DirLock { file, path };
        lock.record_holder();
        Ok(lock)
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes this process's id into the lock file, for the error a second opener gets. Not
    /// needed for the lock itself, so a failure is only logged.
    fn record_holder(&self) {
        let line = format!("pid {}\n", std::process::id());
        let written = self
            .file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(line.as_bytes(), 0));
        if let Err(error) = written {
            tracing::warn!(path = %self.path.display(), %error, "cannot record the lock holder");
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file drops the lock anyway; unlocking first makes the moment explicit.
        if let Err(error) = self.file.unlock() {
            tracing::warn!(path = %self.path.display(), %error, "cannot unlock the directory");
        }
        tracing::debug!(path = %self.path.display(), "device directory unlocked");
    }
}

/// Who holds the lock, as the lock file tells, marking this very process as such.
fn holder(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return "holder unknown".into();
    }
    if text == format!("pid {}", std::process::id()) {
        return format!("{text}, this process");
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While one lock is held a second fails, naming this process; once dropped, it succeeds.
    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();

        let error = DirLock::acquire(dir.path()).unwrap_err();
        let Error::Locked { holder, .. } = &error else {
            panic!("expected Locked, got {error:?}");
        };
        assert_eq!(*holder, format!("pid {}, this process", std::process::id()));

        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
