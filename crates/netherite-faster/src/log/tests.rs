//! Stories about the commit log on the in-memory disk: group commit, back-pressure, recovery,
//! corruption, truncation and the ways a log stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDevice, MemoryDisk};
use tokio::sync::Semaphore;

use super::batch::{OpenBatch, PreparedRecord};
use super::*;
use crate::Error;

const ALIGNMENT: u64 = 512;

fn config() -> LogConfig {
    LogConfig {
        page_bytes: 256,
        record_bytes_max: 64 << 10,
        buffer_bytes_max: 256 << 10,
        retry_delay: std::time::Duration::ZERO,
        ..LogConfig::named("test log")
    }
}

fn kind(value: u16) -> RecordKind {
    RecordKind::new(value).expect("a user kind")
}

fn disk() -> MemoryDisk {
    MemoryDisk::new(ALIGNMENT).expect("a power of two")
}

async fn open(disk: &MemoryDisk, start: LogPosition) -> Result<CommitLog, Error> {
    CommitLog::open(Arc::new(disk.open()), start, config()).await
}

/// Appends `body` and waits until it is durable.
async fn commit(log: &CommitLog, body: &[u8]) -> LogPosition {
    let (position, durable) = log.append(kind(1), body).await.expect("append");
    durable.wait().await.expect("durable");
    position
}

async fn bodies(log: &CommitLog, from: LogPosition) -> Vec<Vec<u8>> {
    let records = log
        .scan(from)
        .expect("scan")
        .collect()
        .await
        .expect("records");
    records.into_iter().map(|record| record.body).collect()
}

/// Flips one byte on the disk, durably, as bit rot would (the new handle fences the log).
async fn flip_byte(disk: &MemoryDisk, offset: u64) {
    let device = disk.open();
    let sector = offset / ALIGNMENT * ALIGNMENT;
    let mut bytes = device.read(sector, ALIGNMENT as usize).await.expect("read");
    bytes[(offset - sector) as usize] ^= 0x5a;
    device.write(sector, &bytes).await.expect("write");
    device.flush().await.expect("flush");
}

/// Flips a byte at `offset`, then checks that the log refuses to open, reporting corruption
/// of the record at `record`.
async fn assert_flip_is_corruption(disk: &MemoryDisk, offset: u64, record: LogPosition) {
    flip_byte(disk, offset).await;
    let error = open(disk, LogPosition::ZERO).await.expect_err("corrupt");
    assert!(
        matches!(error, Error::Corrupt { offset, .. } if offset == record.0),
        "{error}"
    );
}

/// A memory device that counts flushes and can hold them until released.
#[derive(Debug)]
struct TestDevice {
    inner: MemoryDevice,
    flushes: AtomicU64,
    gate: Option<Arc<Semaphore>>,
}

impl TestDevice {
    fn new(disk: &MemoryDisk, gate: Option<Arc<Semaphore>>) -> Arc<TestDevice> {
        Arc::new(TestDevice {
            inner: disk.open(),
            flushes: AtomicU64::new(0),
            gate,
        })
    }
}

#[async_trait]
impl LogDevice for TestDevice {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), netherite_core::Error> {
        self.inner.write(offset, bytes).await
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, netherite_core::Error> {
        self.inner.read(offset, len).await
    }
    async fn flush(&self) -> Result<(), netherite_core::Error> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush().await
    }
    async fn truncate_before(&self, offset: u64) -> Result<(), netherite_core::Error> {
        self.inner.truncate_before(offset).await
    }
    async fn release(&self) -> Result<(), netherite_core::Error> {
        self.inner.release().await
    }
}

/// Records come back in append order, with their kinds, positions and bytes.
#[tokio::test]
async fn appended_records_read_back_in_order() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    let mut appended = Vec::new();
    for i in 0..20u16 {
        let body = vec![i as u8; usize::from(i) * 7];
        let (position, _durable) = log.append(kind(i), &body).await.expect("append");
        appended.push((position, kind(i), body));
    }
    log.flush().await.expect("flush");

    let records = log
        .scan(LogPosition::ZERO)
        .expect("scan")
        .collect()
        .await
        .expect("scan");
    let read: Vec<_> = records
        .iter()
        .map(|r| (r.position, r.kind, r.body.clone()))
        .collect();
    assert_eq!(read, appended);
    assert!(
        records
            .windows(2)
            .all(|pair| pair[0].end <= pair[1].position)
    );
}

/// Everything appended before the flusher runs shares one device write and one flush.
#[tokio::test]
async fn one_device_flush_covers_a_whole_batch() {
    let disk = disk();
    let device = TestDevice::new(&disk, None);
    let log = CommitLog::open(device.clone(), LogPosition::ZERO, config())
        .await
        .expect("open");
    let after_open = device.flushes.load(Ordering::SeqCst);

    let mut handles = Vec::new();
    for i in 0..100u8 {
        handles.push(log.append(kind(1), &[i; 50]).await.expect("append").1);
    }
    for durable in handles {
        durable.wait().await.expect("durable");
    }
    assert_eq!(device.flushes.load(Ordering::SeqCst) - after_open, 1);
}

/// A durability handle resolves only once the flush that covers its record has returned.
#[tokio::test]
async fn durability_is_notified_after_the_flush_not_before() {
    let disk = disk();
    let gate = Arc::new(Semaphore::new(0));
    let device = TestDevice::new(&disk, Some(gate.clone()));
    gate.add_permits(1); // the flush at open
    let log = CommitLog::open(device, LogPosition::ZERO, config())
        .await
        .expect("open");

    let (_, durable) = log.append(kind(1), b"waiting").await.expect("append");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!durable.is_durable(), "the flush is still held");
    assert_eq!(
        disk.unflushed_writes(),
        1,
        "the batch is written, not flushed"
    );

    gate.add_permits(1);
    durable
        .wait()
        .await
        .expect("durable once the flush returns");
}

/// When the unflushed bytes reach `buffer_bytes_max`, an append waits for a flush.
#[tokio::test]
async fn a_full_buffer_holds_appends_until_a_flush_frees_room() {
    let disk = disk();
    let gate = Arc::new(Semaphore::new(1));
    let device = TestDevice::new(&disk, Some(gate.clone()));
    let config = LogConfig {
        buffer_bytes_max: 8 << 10,
        record_bytes_max: 1 << 10,
        ..config()
    };
    let log = Arc::new(
        CommitLog::open(device, LogPosition::ZERO, config)
            .await
            .expect("open"),
    );

    let writer = tokio::spawn({
        let log = log.clone();
        async move {
            for _ in 0..40 {
                let _ = log.append(kind(1), &[7; 1000]).await.expect("append");
            }
        }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(
        !writer.is_finished(),
        "40 KB cannot fit in an 8 KiB buffer without flushes"
    );
    let unflushed = log.appended().0 - log.durable().0;
    assert!(unflushed <= 8 << 10, "{unflushed} bytes unflushed");

    gate.add_permits(1_000);
    writer
        .await
        .expect("the writer finishes once flushes go through");
    log.flush().await.expect("flush");
    assert_eq!(bodies(&log, LogPosition::ZERO).await.len(), 40);
}

/// Records longer than a page are split into fragments and come back whole.
#[tokio::test]
async fn records_longer_than_a_page_round_trip() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    let sizes = [0usize, 1, 239, 240, 241, 480, 5_000, 64 << 10];
    let bodies_in: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&size| (0..size).map(|i| (i % 251) as u8).collect())
        .collect();
    for body in &bodies_in {
        commit(&log, body).await;
    }

    drop(log);
    disk.crash();
    let log = open(&disk, LogPosition::ZERO).await.expect("reopen");
    assert_eq!(bodies(&log, LogPosition::ZERO).await, bodies_in);
}

/// A batch that was written but never flushed, then torn, is dropped whole at recovery.
#[tokio::test]
async fn a_torn_batch_is_dropped_at_recovery() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"durable").await;

    // Phase: the next batch is written, its flush fails, and the log stops.
    disk.set_faults(DeviceFaults {
        flush_failure_rate: 1.0,
        ..DeviceFaults::none()
    });
    let (lost, durable) = log.append(kind(1), &[9; 300]).await.expect("append");
    assert!(matches!(durable.wait().await, Err(Error::Stopped(_))));

    // Phase: the unflushed batch is torn in its second sector.
    disk.set_faults(DeviceFaults::none());
    drop(log);
    let tear = lost.0 + 250;
    flip_byte(&disk, tear).await;

    let log = open(&disk, LogPosition::ZERO)
        .await
        .expect("a torn tail is no error");
    assert_eq!(
        bodies(&log, LogPosition::ZERO).await,
        vec![b"durable".to_vec()]
    );
    assert_eq!(log.recovery().chain_end, lost);
    assert_eq!(log.recovery().tail.0, lost.0 / ALIGNMENT * ALIGNMENT);
}

/// Damage to a durable record with later batches after it is corruption, with its offset.
#[tokio::test]
async fn damage_inside_the_durable_log_is_reported_with_its_offset() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"first").await;
    let damaged = commit(&log, b"second").await;
    commit(&log, b"third").await;
    drop(log);

    flip_byte(&disk, damaged.0 + 18).await;
    match open(&disk, LogPosition::ZERO).await {
        Err(Error::Corrupt {
            offset,
            source_name,
            ..
        }) => {
            assert_eq!(offset, damaged.0);
            assert_eq!(source_name, "test log");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// A clean close vouches for the last batch, so damage there is corruption too.
#[tokio::test]
async fn after_a_clean_close_damage_to_the_last_batch_is_corruption() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"first").await;
    let last = commit(&log, b"last").await;
    log.close().await.expect("close");
    assert!(matches!(
        log.append(kind(1), b"late").await,
        Err(Error::Closed)
    ));
    drop(log);

    assert_flip_is_corruption(&disk, last.0 + 3, last).await;
}

/// A close waits until every batch is durable before it writes the seal, so the seal
/// vouches for batches that were still in flight when close was called.
#[tokio::test]
async fn a_close_vouches_for_batches_still_in_flight() {
    let disk = disk();
    let gate = Arc::new(Semaphore::new(1)); // the flush at open
    let device = TestDevice::new(&disk, Some(gate.clone()));
    let log = Arc::new(
        CommitLog::open(device, LogPosition::ZERO, config())
            .await
            .expect("open"),
    );

    // Phase: one batch waits in its flush while the next is appended, then close.
    let _ = log.append(kind(1), b"first").await.expect("append");
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let (last, _) = log.append(kind(1), b"last").await.expect("append");
    let closing = tokio::spawn({
        let log = log.clone();
        async move { log.close().await }
    });
    gate.add_permits(100);
    closing.await.expect("the close task").expect("close");
    drop(log);

    assert_flip_is_corruption(&disk, last.0 + 3, last).await;
}

/// The known limit: after a crash nothing vouches for the last batch, so damage confined to
/// it cannot be told from a torn write, and the log ends before it.
#[tokio::test]
async fn after_a_crash_damage_to_the_last_batch_reads_as_a_torn_tail() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"first").await;
    let last = commit(&log, b"last").await;
    drop(log);
    disk.crash();

    flip_byte(&disk, last.0 + 3).await;
    let log = open(&disk, LogPosition::ZERO)
        .await
        .expect("read as a torn tail");
    assert_eq!(
        bodies(&log, LogPosition::ZERO).await,
        vec![b"first".to_vec()]
    );
}

/// A batch left over from an abandoned write, lying exactly where a later batch ends, is of
/// an older generation and never joins the log, though every checksum in it holds.
#[tokio::test]
async fn a_leftover_batch_from_an_abandoned_write_never_joins_the_log() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"kept").await;
    let tail = log.durable().0;
    let generation = log.recovery().generation;
    drop(log);

    // Phase: the abandoned write: a torn sector at the tail, a whole batch after it.
    let device = disk.open();
    let mut stale = OpenBatch::new(tail + ALIGNMENT, Vec::new());
    stale.push(generation, &PreparedRecord::new(kind(1), b"stale", 240));
    let stale = stale.seal(generation, tail, ALIGNMENT);
    device
        .write(tail, &[0xEE; ALIGNMENT as usize])
        .await
        .expect("write");
    device
        .write(stale.offset, &stale.bytes)
        .await
        .expect("write");
    device.flush().await.expect("flush");

    // Phase: a new life appends one batch that ends exactly where the stale one starts.
    let log = open(&disk, LogPosition::ZERO).await.expect("reopen");
    assert_eq!(log.recovery().tail.0, tail);
    assert!(log.recovery().generation > generation);
    commit(&log, b"new").await;
    assert_eq!(log.durable().0, tail + ALIGNMENT);
    drop(log);
    disk.crash();

    let log = open(&disk, LogPosition::ZERO).await.expect("reopen");
    let expected = vec![b"kept".to_vec(), b"new".to_vec()];
    assert_eq!(bodies(&log, LogPosition::ZERO).await, expected);
}

/// A torn batch whose later sectors still hold an older batch, with a record frame at the
/// very offset where the new batch's next record starts: the old frame's generation gives
/// it away, so the log ends before the torn batch instead of adopting the old record.
#[tokio::test]
async fn an_older_record_behind_a_torn_sector_never_joins_the_log() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"kept").await;
    let tail = log.durable().0;
    drop(log);

    // Phase: two batches for the same place, from generations 1 and 2, whose second records
    // start at the same aligned offset (24 + 16 + 88 = 128 bytes in).
    let batch = |generation: u32, second: &[u8]| {
        let mut batch = OpenBatch::new(tail, Vec::new());
        batch.push(
            generation,
            &PreparedRecord::new(kind(1), &[generation as u8; 88], 240),
        );
        batch.push(generation, &PreparedRecord::new(kind(1), second, 240));
        batch.seal(generation, tail, ALIGNMENT)
    };
    let old = batch(1, b"stale, from the abandoned write");
    let new = batch(2, b"new");

    // Phase: the crash kept the new batch's first sector part only; the rest is the old one.
    let mut image = new.bytes[..128].to_vec();
    image.extend_from_slice(&old.bytes[128..]);
    let device = disk.open();
    device.write(tail, &image).await.expect("write");
    device.flush().await.expect("flush");

    let log = open(&disk, LogPosition::ZERO).await.expect("reopen");
    assert_eq!(
        bodies(&log, LogPosition::ZERO).await,
        vec![b"kept".to_vec()]
    );
    assert_eq!(log.recovery().chain_end.0, tail + 128);
    assert_eq!(log.recovery().tail.0, tail);
}

/// A newer program appended a batch after this one's records: the log refuses to open,
/// naming where the newer format starts, instead of taking the batch for a torn tail and
/// writing over it.
#[tokio::test]
async fn a_log_continued_by_a_newer_format_is_refused() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"ours").await;
    let tail = log.durable().0;
    drop(log);

    // Phase: a batch header of version 2 at the tail, intact under the checksum rule.
    let mut newer = super::format::batch_header(tail, 9, tail);
    newer[15] = super::format::FORMAT_VERSION + 1;
    let header = newer[..16].try_into().expect("16 bytes");
    let crc = super::format::frame_checksum(&header, tail, crc32c::crc32c(&newer[16..]));
    newer[0..4].copy_from_slice(&crc.to_le_bytes());
    newer.resize(ALIGNMENT as usize, 0);
    let device = disk.open();
    device.write(tail, &newer).await.expect("write");
    device.flush().await.expect("flush");

    match open(&disk, LogPosition::ZERO).await {
        Err(Error::NewerFormat {
            offset,
            format,
            source_name,
            ..
        }) => assert_eq!(
            (offset, format, source_name.as_str()),
            (tail, 2, "test log")
        ),
        other => panic!("expected NewerFormat, got {other:?}"),
    }
}

/// Truncation frees the front; the log reopens from the truncation point and refuses
/// positions that are not records or not yet durable.
#[tokio::test]
async fn truncation_moves_the_start_and_the_log_reopens_there() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"old").await;
    let keep = commit(&log, b"kept").await;
    commit(&log, b"newer").await;

    let refused = log.truncate_before(LogPosition(keep.0 + 1)).await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument { .. })),
        "{refused:?}"
    );
    let (_, pending) = log.append(kind(1), b"pending").await.expect("append");
    assert!(!pending.is_durable(), "the flusher has not run yet");
    let past = log.truncate_before(log.appended()).await;
    assert!(
        matches!(past, Err(Error::InvalidArgument { .. })),
        "{past:?}"
    );

    log.truncate_before(keep).await.expect("truncate");
    assert_eq!(log.start(), keep);
    assert!(matches!(
        log.scan(LogPosition::ZERO),
        Err(Error::InvalidArgument { .. })
    ));
    log.flush().await.expect("flush");
    drop(log);
    disk.crash();

    let log = open(&disk, keep)
        .await
        .expect("reopen from the truncation point");
    let expected = [b"kept".to_vec(), b"newer".to_vec(), b"pending".to_vec()];
    assert_eq!(bodies(&log, keep).await, expected);
}

/// A scan follows the durable point: records made durable later show up on the next call.
#[tokio::test]
async fn a_scan_follows_the_durable_point() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"one").await;
    let mut scan = log.scan(LogPosition::ZERO).expect("scan");
    assert_eq!(
        scan.next().await.expect("next").map(|r| r.body),
        Some(b"one".to_vec())
    );
    assert_eq!(scan.next().await.expect("next"), None);

    commit(&log, b"two").await;
    assert_eq!(
        scan.next().await.expect("next").map(|r| r.body),
        Some(b"two".to_vec())
    );
}

/// Reads that come back damaged are read again, so a scan still returns every record.
#[tokio::test]
async fn damaged_reads_are_read_again() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    let written: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 40 + usize::from(i)]).collect();
    for body in &written {
        commit(&log, body).await;
    }

    disk.set_faults(DeviceFaults {
        seed: 11,
        read_corruption_rate: 0.2,
        ..DeviceFaults::none()
    });
    assert_eq!(bodies(&log, LogPosition::ZERO).await, written);
}

/// With every read damaged and no second look, a scan reports corruption; it never returns
/// a damaged record.
#[tokio::test]
async fn a_damaged_record_is_never_returned() {
    let mut corrupt = 0;
    for seed in 0..8 {
        let disk = disk();
        let config = LogConfig {
            read_attempts_max: 1,
            ..config()
        };
        let log = CommitLog::open(Arc::new(disk.open()), LogPosition::ZERO, config).await;
        let log = log.expect("open");
        let written: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 100]).collect();
        for body in &written {
            let _ = log.append(kind(1), body).await.expect("append");
        }
        log.flush().await.expect("flush");

        disk.set_faults(DeviceFaults {
            seed,
            read_corruption_rate: 1.0,
            ..DeviceFaults::none()
        });
        match log.scan(LogPosition::ZERO).expect("scan").collect().await {
            Ok(records) => assert_eq!(
                records.into_iter().map(|r| r.body).collect::<Vec<_>>(),
                written
            ),
            Err(Error::Corrupt { .. }) => corrupt += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(corrupt > 0, "some damaged read was reported");
}

/// A flush that keeps failing stops the log: waiters and later calls are told, not hung.
#[tokio::test]
async fn failing_flushes_stop_the_log() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    disk.set_faults(DeviceFaults {
        flush_failure_rate: 1.0,
        ..DeviceFaults::none()
    });
    let (_, durable) = log.append(kind(1), b"never durable").await.expect("append");
    assert!(matches!(durable.wait().await, Err(Error::Stopped(_))));
    assert!(matches!(
        log.append(kind(1), b"later").await,
        Err(Error::Stopped(_))
    ));
    assert!(matches!(log.flush().await, Err(Error::Stopped(_))));
}

/// A new owner fences the old handle: its next batch fails and the log stops at once.
#[tokio::test]
async fn a_fenced_log_stops_with_the_fence_as_its_cause() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    let _new_owner = disk.open();
    let (_, durable) = log.append(kind(1), b"too late").await.expect("append");
    match durable.wait().await {
        Err(Error::Stopped(cause)) => {
            assert!(matches!(*cause, netherite_core::Error::Fenced(_)));
        }
        other => panic!("expected a stop, got {other:?}"),
    }
}

/// Bad input is a typed error: an oversized record, a start past the device, bad settings.
#[tokio::test]
async fn bad_input_is_refused_with_a_typed_error() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    let oversized = vec![0; 64 << 10 | 1];
    let error = log
        .append(kind(1), &oversized)
        .await
        .expect_err("too large");
    assert!(matches!(
        error,
        Error::LimitExceeded {
            limit: "record_bytes_max",
            ..
        }
    ));
    commit(&log, b"x").await;
    drop(log);

    let error = open(&disk, LogPosition(1 << 20))
        .await
        .expect_err("past the device");
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    let error = open(&disk, LogPosition(ALIGNMENT / 2))
        .await
        .expect_err("not a record");
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");

    let tiny_pages = LogConfig {
        page_bytes: 8,
        ..config()
    };
    let error = CommitLog::open(Arc::new(disk.open()), LogPosition::ZERO, tiny_pages)
        .await
        .expect_err("bad settings");
    assert!(matches!(error, Error::InvalidArgument { .. }));
}

/// Each open is a new generation, and records survive many reopen cycles.
#[tokio::test]
async fn every_reopen_is_a_new_generation_and_keeps_the_log() {
    let disk = disk();
    let mut expected = Vec::new();
    let mut last_generation = 0;
    for round in 0..5u8 {
        let log = open(&disk, LogPosition::ZERO).await.expect("open");
        assert!(log.recovery().generation > last_generation);
        last_generation = log.recovery().generation;
        assert_eq!(bodies(&log, LogPosition::ZERO).await, expected);
        commit(&log, &[round; 3]).await;
        expected.push(vec![round; 3]);
        drop(log);
        disk.crash();
    }
}

/// Releasing stops the log at once: pending waiters and later calls are told, not hung.
#[tokio::test]
async fn a_released_log_stops_and_tells_its_waiters() {
    let disk = disk();
    let log = open(&disk, LogPosition::ZERO).await.expect("open");
    commit(&log, b"kept").await;
    let (_, pending) = log.append(kind(1), b"maybe").await.expect("append");

    log.release().await.expect("release");
    assert!(matches!(pending.wait().await, Err(Error::Stopped(_))));
    assert!(matches!(
        log.append(kind(1), b"late").await,
        Err(Error::Stopped(_))
    ));

    let log = open(&disk, LogPosition::ZERO)
        .await
        .expect("a new owner opens at once");
    assert_eq!(
        bodies(&log, LogPosition::ZERO).await,
        vec![b"kept".to_vec()]
    );
}
