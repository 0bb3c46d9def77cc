//! Clear errors when the environment is at fault: a directory that cannot be created, a
//! read-only file system, a full disk.
//!
//! The tests run as root, which ignores permission bits, so `chmod 0500` cannot make a
//! directory unwritable. They use what binds root too: a path under a regular file, and
//! small tmpfs mounts (read-only, and 1 MiB to fill up). Where mounting is not allowed, the
//! mount tests say so on stderr and return.

use std::path::{Path, PathBuf};
use std::process::Command;

use netherite_core::device::LogDevice;
use netherite_storage_file::{Error, FileDevice, FileDeviceOptions};

const PAGE: u64 = 4096;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options`, or says why not and returns `None`.
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs {
                path: dir.path().to_path_buf(),
                _dir: dir,
            }),
            Ok(output) => {
                let why = String::from_utf8_lossy(&output.stderr);
                eprintln!("skipped: cannot mount a tmpfs ({options}): {}", why.trim());
                None
            }
            Err(error) => {
                eprintln!("skipped: cannot run mount: {error}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A directory that cannot exist, because its parent is a regular file, is an error naming
/// the directory.
#[tokio::test]
async fn a_path_under_a_regular_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("p0");

    let error = FileDevice::open(&dir, FileDeviceOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Directory { path, .. } if *path == dir),
        "{error:?}"
    );
    assert!(error.to_string().contains("not-a-dir/p0"), "{error}");
}

/// On a read-only file system, opening fails with an error naming what could not be
/// created: the directory, or the lock file in an existing one.
#[tokio::test]
async fn a_read_only_file_system_is_refused() {
    let Some(tmpfs) = Tmpfs::mount("ro,size=1m") else {
        return;
    };
    let options = FileDeviceOptions::default();

    let dir = tmpfs.path().join("p0");
    let error = FileDevice::open(&dir, options).await.unwrap_err();
    assert!(
        matches!(&error, Error::Directory { path, .. } if *path == dir),
        "{error:?}"
    );

    let error = FileDevice::open(tmpfs.path(), options).await.unwrap_err();
    let lock = tmpfs.path().join("LOCK");
    assert!(
        matches!(&error, Error::Io { path, .. } if *path == lock),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("Read-only file system"),
        "{error}"
    );
}

/// A full disk is the contract's "device is full" error saying where the device hit the
/// wall, the size does not move, and once truncation frees segments, writing resumes.
#[tokio::test]
async fn a_full_disk_is_a_typed_error_and_truncation_frees_room() {
    let Some(tmpfs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let options = FileDeviceOptions::default().with_segment_bytes(64 * PAGE);
    let device = FileDevice::open(tmpfs.path(), options).await.unwrap();
    let half = 128 * PAGE;
    device.write(0, &vec![1; half as usize]).await.unwrap();
    device.flush().await.unwrap();

    // Phase 1: a write of 1 MiB more cannot fit.
    let error = device
        .write(half, &vec![2; 2 * half as usize])
        .await
        .unwrap_err();
    let netherite_core::Error::LimitExceeded { limit, actual, max } = error else {
        panic!("expected LimitExceeded, got {error:?}");
    };
    assert_eq!((limit, actual), ("disk_space", 3 * half));
    assert!(half < max && max < 2 * half, "the wall at {max}");
    assert_eq!(device.size(), half);

    // Phase 2: dropping the first half frees its two segments; a smaller write then fits.
    // Under load the file system may count the freed blocks a moment after the deletions
    // (seen about once in thirty runs), so the write gets a few tries.
    device.truncate_before(half).await.unwrap();
    let mut tries = 0;
    while let Err(error) = device.write(half, &vec![3; half as usize]).await {
        tries += 1;
        assert!(tries < 50, "the freed segments never made room: {error}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    device.flush().await.unwrap();
    assert_eq!(device.read(2 * half - 1, 1).await.unwrap(), vec![3]);
}
