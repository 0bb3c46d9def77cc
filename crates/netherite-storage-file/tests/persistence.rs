//! What a file device keeps across a reopen, how it lays bytes over segment files, and how it
//! reports damaged files.

use std::fs;
use std::path::Path;

use netherite_core::device::LogDevice;
use netherite_storage_file::{Error, FileDevice, FileDeviceOptions};

const PAGE: u64 = 4096;

/// Segments of two pages, so that small tests cross segment boundaries.
fn small_segments() -> FileDeviceOptions {
    FileDeviceOptions::default().with_segment_bytes(2 * PAGE)
}

fn pattern(pages: u64, seed: u8) -> Vec<u8> {
    (0..pages * PAGE).map(|i| (i % 251) as u8 ^ seed).collect()
}

fn segment(dir: &Path, index: u64) -> std::path::PathBuf {
    dir.join(format!("segment-{index:012}"))
}

/// Flushed bytes and the size come back after the handle is dropped and the directory
/// reopened, gaps included.
#[tokio::test]
async fn reopen_keeps_data_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    device.write(0, &pattern(3, 1)).await.unwrap();
    device.write(7 * PAGE, &pattern(2, 2)).await.unwrap();
    device.flush().await.unwrap();
    assert_eq!(device.size(), 9 * PAGE);
    drop(device);

    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!(device.size(), 9 * PAGE);
    assert_eq!(
        device.read(0, 3 * PAGE as usize).await.unwrap(),
        pattern(3, 1)
    );
    let gap = device.read(3 * PAGE, 4 * PAGE as usize).await.unwrap();
    assert!(gap.iter().all(|&b| b == 0));
    assert_eq!(
        device.read(7 * PAGE, 2 * PAGE as usize).await.unwrap(),
        pattern(2, 2)
    );
}

/// A write that spans segments lands in each segment file, segments skipped on the way to a
/// higher one exist at full length (reading as zeros), and a read across the boundaries
/// returns the bytes in order.
#[tokio::test]
async fn writes_split_at_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let device = FileDevice::open(dir.path(), small_segments())
        .await
        .unwrap();
    let data = pattern(5, 3);
    device.write(PAGE, &data).await.unwrap();
    device.write(10 * PAGE, &pattern(1, 4)).await.unwrap();

    // Pages 1 to 5 fill segment 0 from its middle and segments 1 and 2; page 10 is in 5, and
    // segments 3 and 4 below it are filled out.
    let lengths: Vec<Option<u64>> = (0..6)
        .map(|index| {
            fs::metadata(segment(dir.path(), index))
                .ok()
                .map(|m| m.len())
        })
        .collect();
    let full = Some(2 * PAGE);
    assert_eq!(lengths, [full, full, full, full, full, Some(PAGE)]);

    let across = device.read(PAGE + 100, 4 * PAGE as usize).await.unwrap();
    assert_eq!(across, data[100..100 + 4 * PAGE as usize]);
    let missing = device.read(6 * PAGE, 4 * PAGE as usize).await.unwrap();
    assert!(missing.iter().all(|&b| b == 0));
}

/// Truncation deletes the segments wholly below the point, and the point survives a reopen:
/// reads below it still fail, bytes above it are intact.
#[tokio::test]
async fn truncation_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    let data = pattern(8, 5);
    device.write(0, &data).await.unwrap();
    device.flush().await.unwrap();
    device.truncate_before(5 * PAGE).await.unwrap();

    assert!(
        !segment(dir.path(), 1).exists(),
        "segment 1 ends at the point"
    );
    assert!(
        segment(dir.path(), 2).exists(),
        "segment 2 holds bytes above the point"
    );
    drop(device);

    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!((device.start(), device.size()), (5 * PAGE, 8 * PAGE));
    let below = device.read(5 * PAGE - 1, 1).await.unwrap_err();
    assert!(matches!(
        below,
        netherite_core::Error::InvalidArgument { .. }
    ));
    let kept = device.read(5 * PAGE, 3 * PAGE as usize).await.unwrap();
    assert_eq!(kept, data[5 * PAGE as usize..]);
}

/// Truncating everything at a segment boundary deletes every file, and the size still
/// survives a reopen (it then comes from the metadata, not from a segment).
#[tokio::test]
async fn truncating_everything_keeps_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    device.write(0, &pattern(4, 6)).await.unwrap();
    device.flush().await.unwrap();
    device.truncate_before(4 * PAGE).await.unwrap();
    drop(device);

    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!((device.start(), device.size()), (4 * PAGE, 4 * PAGE));
    device.write(4 * PAGE, &pattern(1, 7)).await.unwrap();
    assert_eq!(device.read(4 * PAGE, 8).await.unwrap(), pattern(1, 7)[..8]);
}

/// A segment left below the start by a truncation that a crash interrupted is deleted at
/// open, and does not count toward the size.
#[tokio::test]
async fn leftovers_of_an_interrupted_truncation_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    device.write(0, &pattern(6, 8)).await.unwrap();
    device.flush().await.unwrap();
    let saved = fs::read(segment(dir.path(), 0)).unwrap();
    device.truncate_before(4 * PAGE).await.unwrap();
    drop(device);

    // The crash: segment 0 is back, as if its deletion never reached the disk.
    fs::write(segment(dir.path(), 0), saved).unwrap();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert!(!segment(dir.path(), 0).exists());
    assert_eq!((device.start(), device.size()), (4 * PAGE, 6 * PAGE));
}

/// A file length cut between sectors (a torn extension) rounds the size up to the alignment;
/// the rest of the sector reads as zeros.
#[tokio::test]
async fn a_torn_tail_rounds_the_size_up() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    device.write(0, &pattern(2, 9)).await.unwrap();
    device.flush().await.unwrap();
    drop(device);

    let file = fs::OpenOptions::new()
        .write(true)
        .open(segment(dir.path(), 0))
        .unwrap();
    file.set_len(PAGE + 100).unwrap();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!(device.size(), 2 * PAGE);
    let tail = device.read(PAGE + 100, PAGE as usize - 100).await.unwrap();
    assert!(tail.iter().all(|&b| b == 0));
}

/// A segment file longer than a segment is reported with its path and the offset where the
/// excess begins, and the device refuses to open.
#[tokio::test]
async fn an_overlong_segment_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    device.write(0, &pattern(4, 10)).await.unwrap();
    drop(device);

    let path = segment(dir.path(), 1);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3 * PAGE)
        .unwrap();
    let error = FileDevice::open(dir.path(), options).await.unwrap_err();
    let Error::Corrupt {
        path: reported,
        offset,
        ..
    } = &error
    else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert_eq!((reported, *offset), (&path, 2 * PAGE));

    let core = netherite_core::Error::from(error);
    let text = core.to_string();
    assert!(
        text.contains("segment-000000000001") && text.contains("8192"),
        "{text}"
    );
}

/// A damaged metadata file is reported with its path and the offset of the damaged field.
#[tokio::test]
async fn damaged_metadata_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments();
    drop(FileDevice::open(dir.path(), options).await.unwrap());

    let meta = dir.path().join("meta");
    let mut bytes = fs::read(&meta).unwrap();
    bytes[30] ^= 0x40;
    fs::write(&meta, bytes).unwrap();
    let error = FileDevice::open(dir.path(), options).await.unwrap_err();
    assert!(
        matches!(&error, Error::Corrupt { path, offset: 36, .. } if *path == meta),
        "{error:?}"
    );
}

/// Segment files without a metadata file are not silently taken over.
#[tokio::test]
async fn segments_without_metadata_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment(dir.path(), 0), [1u8; 4096]).unwrap();
    let error = FileDevice::open(dir.path(), small_segments())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("missing, but the directory holds 1"),
        "{error}"
    );
}

/// Reopening with another segment size is refused: the same bytes would be looked for in
/// other files.
#[tokio::test]
async fn another_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(
        FileDevice::open(dir.path(), small_segments())
            .await
            .unwrap(),
    );
    let error = FileDevice::open(dir.path(), FileDeviceOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::LayoutMismatch {
                field: "segment_bytes",
                stored: 8192,
                ..
            }
        ),
        "{error:?}"
    );
}
