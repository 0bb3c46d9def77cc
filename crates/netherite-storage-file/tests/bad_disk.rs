//! Damage from outside the device: segment files deleted or cut short between two opens, and
//! a directory deleted or moved while a handle is open. Each is an error naming the file (and
//! the offset, where bytes are involved), never bytes that silently read as zeros and never a
//! flush that claims durability for bytes a reopen would not find.

use std::fs;
use std::path::{Path, PathBuf};

use netherite_core::device::LogDevice;
use netherite_storage_file::{Error, FileDevice, FileDeviceOptions};

const PAGE: u64 = 4096;

/// Segments of two pages, so that a few pages make several files.
fn options() -> FileDeviceOptions {
    FileDeviceOptions::default().with_segment_bytes(2 * PAGE)
}

fn segment(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("segment-{index:012}"))
}

/// A device of `pages` flushed pages (three segments for five pages), then closed.
async fn written(dir: &Path, pages: u64) {
    let device = FileDevice::open(dir, options()).await.expect("open");
    let bytes = vec![7; (pages * PAGE) as usize];
    device.write(0, &bytes).await.expect("write");
    device.flush().await.expect("flush");
}

/// The message of an error as the engine sees it, through the device contract.
fn contract_message(error: Error) -> String {
    netherite_core::Error::from(error).to_string()
}

/// A middle segment deleted between two opens: the open refuses, naming the missing file,
/// instead of letting its bytes read as zeros.
#[tokio::test]
async fn a_missing_middle_segment_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 5).await;
    fs::remove_file(segment(dir.path(), 1)).unwrap();

    let error = FileDevice::open(dir.path(), options()).await.unwrap_err();
    let Error::Corrupt { path, offset, .. } = &error else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert_eq!((path, *offset), (&segment(dir.path(), 1), 0));
    let message = contract_message(error);
    assert!(
        message.contains("segment-000000000001") && message.contains("missing"),
        "{message}"
    );
}

/// A middle segment cut short: the open refuses, naming the file and where it now ends.
#[tokio::test]
async fn a_middle_segment_cut_short_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 5).await;
    let cut = segment(dir.path(), 1);
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(PAGE + 300)
        .unwrap();

    let error = FileDevice::open(dir.path(), options()).await.unwrap_err();
    let Error::Corrupt { path, offset, .. } = &error else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert_eq!((path, *offset), (&cut, PAGE + 300));
    assert!(error.to_string().contains("cut short"), "{error}");
}

/// The directory deleted under an open handle: writes into open files still succeed, but the
/// next flush fails as fenced, naming what is gone, and so does every flush after it; a write
/// that needs a new segment file fails the same way.
#[tokio::test]
async fn a_deleted_directory_fails_the_next_flush() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("p0");
    let device = FileDevice::open(&dir, options()).await.unwrap();
    device.write(0, &[1; PAGE as usize]).await.unwrap();
    device.flush().await.unwrap();

    fs::remove_dir_all(&dir).unwrap();
    device.write(PAGE, &[2; PAGE as usize]).await.unwrap();
    for _ in 0..2 {
        let error = device.flush().await.unwrap_err();
        let netherite_core::Error::Fenced(message) = &error else {
            panic!("expected Fenced, got {error:?}");
        };
        assert!(
            message.contains("p0") && message.contains("deleted or moved"),
            "{message}"
        );
    }

    let error = device.write(2 * PAGE, &[3; PAGE as usize]).await;
    assert!(
        matches!(&error, Err(netherite_core::Error::Fenced(m)) if m.contains("not there")),
        "{error:?}"
    );
}

/// The directory moved away under an open handle: its files are intact elsewhere, but a
/// reopen of the path would not find them, so the next flush fails.
#[tokio::test]
async fn a_moved_directory_fails_the_next_flush() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("p0");
    let device = FileDevice::open(&dir, options()).await.unwrap();
    device.write(0, &[1; PAGE as usize]).await.unwrap();

    fs::rename(&dir, root.path().join("p0-moved")).unwrap();
    fs::create_dir(&dir).unwrap();
    let error = device.flush().await.unwrap_err();
    assert!(
        matches!(&error, netherite_core::Error::Fenced(m) if m.contains("another directory")),
        "{error:?}"
    );
}

/// One segment file deleted under an open handle: the flush that syncs it says which.
#[tokio::test]
async fn a_segment_deleted_while_open_fails_the_flush_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let device = FileDevice::open(dir.path(), options()).await.unwrap();
    device.write(0, &[1; 3 * PAGE as usize]).await.unwrap();
    device.flush().await.unwrap();

    fs::remove_file(segment(dir.path(), 1)).unwrap();
    device.write(2 * PAGE, &[2; PAGE as usize]).await.unwrap();
    let error = device.flush().await.unwrap_err();
    assert!(
        matches!(&error, netherite_core::Error::Fenced(m)
            if m.contains("segment-000000000001") && m.contains("deleted")),
        "{error:?}"
    );
}

/// Reads of a segment deleted while the handle was open, and not read before, fail with the
/// file's name rather than returning zeros.
#[tokio::test]
async fn a_read_of_a_deleted_segment_names_it() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), 5).await;
    let device = FileDevice::open(dir.path(), options()).await.unwrap();

    fs::remove_file(segment(dir.path(), 1)).unwrap();
    let error = device.read(2 * PAGE, 16).await.unwrap_err();
    assert!(
        matches!(&error, netherite_core::Error::Malformed { source_name, .. }
            if source_name.ends_with("segment-000000000001")),
        "{error:?}"
    );
}
