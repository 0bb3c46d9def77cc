//! The commit log on real files (`FileDevice`): records survive a reopen, large ones
//! included, and a byte damaged in a segment file is reported with its offset, from which
//! the file follows.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use netherite_faster::Error;
use netherite_faster::log::{CommitLog, LogConfig, LogPosition, RecordKind};
use netherite_storage_file::{FileDevice, FileDeviceOptions};

const SEGMENT_BYTES: u64 = 1 << 20;

fn options() -> FileDeviceOptions {
    FileDeviceOptions::default().with_segment_bytes(SEGMENT_BYTES)
}

async fn open(dir: &Path) -> Result<CommitLog, Error> {
    let device = FileDevice::open(dir, options())
        .await
        .expect("open the file device");
    CommitLog::open(
        Arc::new(device),
        LogPosition::ZERO,
        LogConfig::named("p0 commit log"),
    )
    .await
}

/// Records of every size, some spanning segment files, read back after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_reopen_on_files() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = temp.path().join("p0");
    let kind = RecordKind::new(3).expect("a user kind");
    let sizes = [0, 100, 4096, 300 << 10, 2 << 20, 7];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7 % 256) as u8).collect())
        .collect();

    let log = open(&dir).await.expect("open");
    for body in &bodies {
        let (_, durable) = log.append(kind, body).await.expect("append");
        durable.wait().await.expect("durable");
    }
    log.release().await.expect("release");

    let log = open(&dir).await.expect("reopen");
    let records = log
        .scan(LogPosition::ZERO)
        .expect("scan")
        .collect()
        .await
        .expect("records");
    let read: Vec<Vec<u8>> = records.into_iter().map(|record| record.body).collect();
    assert_eq!(read, bodies);
}

/// A byte flipped in a segment file, inside the durable log, is corruption: the error
/// names the log and the device offset, and the segment file is `offset / segment_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_file_is_reported_with_its_offset() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = temp.path().join("p0");
    let kind = RecordKind::new(1).expect("a user kind");

    // Phase: a log over two segment files, each record durable in its own batch.
    let log = open(&dir).await.expect("open");
    let mut positions = Vec::new();
    for i in 0..40u8 {
        let (position, durable) = log.append(kind, &[i; 40 << 10]).await.expect("append");
        durable.wait().await.expect("durable");
        positions.push(position);
    }
    log.release().await.expect("release");

    // Phase: damage a record in the second segment file, behind the device's back.
    let damaged = positions
        .iter()
        .copied()
        .find(|p| p.0 > SEGMENT_BYTES)
        .expect("a record");
    let segment = damaged.0 / SEGMENT_BYTES;
    let file = OpenOptions::new()
        .write(true)
        .open(dir.join(format!("segment-{segment:012}")))
        .expect("the segment file");
    file.write_all_at(&[0xff], damaged.0 % SEGMENT_BYTES + 20)
        .expect("write");
    file.sync_all().expect("sync");

    match open(&dir).await {
        Err(Error::Corrupt {
            source_name,
            offset,
            reason,
        }) => {
            assert_eq!(source_name, "p0 commit log");
            assert_eq!(offset, damaged.0, "{reason}");
            assert_eq!(offset / SEGMENT_BYTES, segment);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}
