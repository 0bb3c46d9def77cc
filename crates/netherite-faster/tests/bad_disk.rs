//! Damage done from outside to a commit log and a store on real files (`FileDevice`): bytes
//! flipped at random offsets in closed segment files, a page of a segment zeroed, segment
//! files cut short or missing, manifests zeroed or written by a newer format, a directory
//! deleted while open. Each ends in a typed error naming the file or device and the offset,
//! or in a correct fallback to an older checkpoint; never in a panic, and never in a record
//! or a value that was not written.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netherite_faster::Error;
use netherite_faster::log::{CommitLog, LogConfig, LogPosition, RecordKind};
use netherite_faster::store::{Store, StoreConfig, StoreDevices};
use netherite_storage_file::{FileDevice, FileDeviceOptions};

const PAGE: u64 = 4096;
const SEGMENT_BYTES: u64 = 64 << 10;

fn options() -> FileDeviceOptions {
    FileDeviceOptions::default().with_segment_bytes(SEGMENT_BYTES)
}

fn segment(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("segment-{index:012}"))
}

/// Flips one byte of the device image at device `offset`, in whichever segment holds it.
fn flip(dir: &Path, offset: u64, mask: u8) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment(dir, offset / SEGMENT_BYTES))
        .expect("the segment exists");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset % SEGMENT_BYTES)
        .expect("inside the file");
    byte[0] ^= mask;
    file.write_all_at(&byte, offset % SEGMENT_BYTES)
        .expect("write back");
}

/// Cuts the file at `path` down to `len` bytes.
fn cut(path: &Path, len: u64) {
    let file = OpenOptions::new().write(true).open(path).expect("the file");
    file.set_len(len).expect("cut");
}

/// Checks that `error`'s message mentions every one of `parts`.
fn assert_mentions(error: &dyn std::fmt::Display, parts: &[&str]) {
    let message = error.to_string();
    for part in parts {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

/// A small generator so that a failing offset can be replayed from its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A copy of the directory `from`, so that each case damages a fresh image.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create");
    for entry in fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy");
        }
    }
}

// The commit log.

const LOG_NAME: &str = "p0 commit log";

async fn open_log(dir: &Path) -> Result<CommitLog, Error> {
    let device = FileDevice::open(dir, options()).await.map_err(|e| {
        let core = netherite_core::Error::from(e);
        Error::Device(core)
    })?;
    let config = LogConfig {
        page_bytes: 8 << 10,
        ..LogConfig::named(LOG_NAME)
    };
    CommitLog::open(Arc::new(device), LogPosition::ZERO, config).await
}

/// Records of many sizes, some longer than a page, over about three segments.
fn log_bodies() -> Vec<Vec<u8>> {
    (0..120u32)
        .map(|i| {
            let len = [10, 300, 1000, 9000][i as usize % 4];
            (0..len).map(|j| (i * 31 + j) as u8).collect()
        })
        .collect()
}

/// A log written in several batches and closed cleanly; returns the device size.
async fn written_log(dir: &Path) -> u64 {
    let log = open_log(dir).await.expect("open");
    let kind = RecordKind::new(5).expect("a user kind");
    for batch in log_bodies().chunks(7) {
        for body in batch {
            let _ = log.append(kind, body).await.expect("append");
        }
        log.flush().await.expect("flush");
    }
    log.close().await.expect("close");
    log.durable().offset()
}

/// Reads the whole log at `dir`, as far as it goes without an error.
async fn read_log(dir: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let log = open_log(dir).await?;
    let records = log.scan(LogPosition::ZERO)?.collect().await?;
    Ok(records.into_iter().map(|record| record.body).collect())
}

/// A byte flipped anywhere in a cleanly closed log: the log opens with every record as
/// written (the byte was padding), or fails with corruption at or before the flipped offset,
/// naming the log. Never a damaged, missing or extra record.
#[tokio::test]
async fn a_flipped_byte_in_a_closed_log_is_corruption_at_its_offset() {
    let root = tempfile::tempdir().expect("temp");
    let pristine = root.path().join("pristine");
    let size = written_log(&pristine).await;
    assert!(size > 2 * SEGMENT_BYTES, "the log spans segments");
    let bodies = log_bodies();

    let (mut state, mut reported) = (0x5eed_u64, 0);
    for case in 0..40 {
        let dir = root.path().join(format!("case-{case}"));
        copy_dir(&pristine, &dir);
        let offset = next(&mut state) % size;
        flip(&dir, offset, 1 << (next(&mut state) % 8));

        match read_log(&dir).await {
            Ok(read) => assert_eq!(read, bodies, "flip at {offset} changed the records"),
            Err(Error::Corrupt {
                source_name,
                offset: at,
                ..
            }) => {
                assert_eq!(source_name, LOG_NAME);
                assert!(at <= offset, "flip at {offset} reported at {at}");
                reported += 1;
            }
            Err(error) => panic!("flip at {offset}: unexpected {error}"),
        }
    }
    assert!(reported > 20, "most flips hit records: {reported} of 40");
}

/// A middle segment of the log missing or cut short: the device refuses to open, naming the
/// file; the log never reads its bytes as zeros.
#[tokio::test]
async fn a_missing_or_cut_log_segment_is_refused_by_name() {
    let root = tempfile::tempdir().expect("temp");
    let pristine = root.path().join("pristine");
    written_log(&pristine).await;

    let missing = root.path().join("missing");
    copy_dir(&pristine, &missing);
    fs::remove_file(segment(&missing, 1)).expect("remove");
    let error = read_log(&missing).await.expect_err("refused");
    assert_mentions(&error, &["segment-000000000001", "missing"]);

    let short = root.path().join("short");
    copy_dir(&pristine, &short);
    cut(&segment(&short, 0), SEGMENT_BYTES - PAGE);
    let error = read_log(&short).await.expect_err("refused");
    assert_mentions(&error, &["segment-000000000000", &(15 * PAGE).to_string()]);
}

/// The last segment cut short cannot be told from a crash (see the file device's limits):
/// the log opens with the records before the cut, in order, and nothing else.
#[tokio::test]
async fn a_log_whose_last_segment_is_cut_keeps_a_clean_prefix() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("log");
    let size = written_log(&dir).await;
    let last = segment(&dir, (size - 1) / SEGMENT_BYTES);
    cut(&last, (size % SEGMENT_BYTES) / 2);

    let read = read_log(&dir).await.expect("opens");
    let bodies = log_bodies();
    assert!(read.len() < bodies.len());
    assert_eq!(read, bodies[..read.len()]);
}

/// The log's directory deleted while the log is open: the next batch cannot be made durable,
/// the waiter is told why (the device is fenced, naming the directory), and the log stops.
#[tokio::test]
async fn a_log_whose_directory_disappears_stops_and_says_why() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("p0");
    let log = open_log(&dir).await.expect("open");
    let kind = RecordKind::new(1).expect("a user kind");
    let (_, durable) = log.append(kind, b"before").await.expect("append");
    durable.wait().await.expect("durable");

    fs::remove_dir_all(&dir).expect("remove");
    let (_, durable) = log.append(kind, b"after").await.expect("append");
    let Err(Error::Stopped(cause)) = durable.wait().await else {
        panic!("the record cannot be durable");
    };
    assert!(
        matches!(&*cause, netherite_core::Error::Fenced(m) if m.contains("p0")),
        "{cause}"
    );
    assert!(matches!(
        log.append(kind, b"later").await,
        Err(Error::Stopped(_))
    ));
}

// The store.

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn store_config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 64 * 64 + 16 * PAGE,
        page_bytes: PAGE,
        index_buckets: 64,
        mutable_percent: 50,
    }
}

async fn store_devices(root: &Path) -> Result<StoreDevices, Error> {
    let open = async |name: &str| {
        let device = FileDevice::open(root.join(name), options()).await;
        let device = device.map_err(|e| Error::Device(e.into()))?;
        Ok::<_, Error>(Arc::new(device))
    };
    let (log, checkpoints) = (open("log").await?, open("checkpoints").await?);
    let name = |sub: &str| root.join(sub).display().to_string();
    Ok(StoreDevices::new(log, checkpoints).named(name("log"), name("checkpoints")))
}

fn store_key(i: u32) -> Vec<u8> {
    format!("instance-{i:05}").into_bytes()
}

/// A closed store with checkpoint 2 (blob `two`) and checkpoint 3 (blob `three`), its log
/// spanning several segments; returns what each checkpoint holds.
async fn written_store(root: &Path) -> [Map; 2] {
    let devices = store_devices(root).await.expect("devices");
    let mut store = Store::create(devices, store_config())
        .await
        .expect("create");
    let mut model = Map::new();
    for i in 0..1200u32 {
        let value = vec![i as u8; 60 + (i % 50) as usize];
        store.upsert(&store_key(i), &value).await.expect("upsert");
        model.insert(store_key(i), value);
    }
    store.checkpoint(b"two").await.expect("checkpoint");
    let two = model.clone();
    for i in (0..1800u32).step_by(3) {
        let value = format!("updated {i}").into_bytes();
        store.upsert(&store_key(i), &value).await.expect("upsert");
        model.insert(store_key(i), value);
    }
    store.delete(&store_key(1)).await.expect("delete");
    model.remove(&store_key(1));
    store.checkpoint(b"three").await.expect("checkpoint");
    store.release().await.expect("release");
    [two, model]
}

/// Whether `error` reports damage, naming where it is.
fn names_damage(error: &Error) -> bool {
    let message = error.to_string();
    let located = message.contains("offset") && message.contains('/');
    let damage = matches!(
        error,
        Error::Corrupt { .. } | Error::Truncated { .. } | Error::NoIntactCheckpoint { .. }
    );
    damage && located
}

/// What a recovery and the reads after it came to.
#[derive(Debug, Default)]
struct Checked {
    /// The blob of the checkpoint recovered, `None` when recovery refused.
    blob: Option<Vec<u8>>,
    /// How many errors naming damage were met: a refusal, a checkpoint passed over, a read
    /// or the iteration that failed.
    reports: usize,
}

/// Recovers the store at `root` and checks it against the checkpoint it says it recovered:
/// every read and the iteration give that checkpoint's values, or an error naming damage.
async fn recover_and_check(root: &Path, models: &[Map; 2]) -> Checked {
    let devices = store_devices(root).await.expect("devices");
    let (store, recovered) = match Store::recover(devices, store_config()).await {
        Ok(found) => found,
        Err(error) => {
            assert!(names_damage(&error), "recovery: {error}");
            return Checked {
                blob: None,
                reports: 1,
            };
        }
    };
    let blob = recovered.checkpoint.blob;
    let model = if blob == b"two" {
        &models[0]
    } else {
        &models[1]
    };
    let mut reports = recovered.skipped.len();
    for i in 0..1800u32 {
        match store.read(&store_key(i)).await {
            Ok(value) => assert_eq!(value.as_ref(), model.get(&store_key(i)), "key {i}"),
            Err(error) => {
                assert!(names_damage(&error), "read {i}: {error}");
                reports += 1;
            }
        }
    }
    let mut live = store.live_records();
    let mut seen = Map::new();
    loop {
        match live.next(&store).await {
            Ok(Some((key, value))) => assert!(seen.insert(key, value).is_none()),
            Ok(None) => {
                assert_eq!(&seen, model, "iteration after recovery to {blob:?}");
                break;
            }
            Err(error) => {
                assert!(names_damage(&error), "iteration: {error}");
                reports += 1;
                break;
            }
        }
    }
    Checked {
        blob: Some(blob),
        reports,
    }
}

/// A byte flipped at a random offset of a closed store's log or checkpoint files: recovery
/// lands on a checkpoint whose every value reads back as written, or damage is reported with
/// its file and offset, by recovery (falling back where it can) or by the read that meets it.
#[tokio::test]
async fn a_flipped_byte_in_a_closed_store_is_reported_or_passed_over() {
    let root = tempfile::tempdir().expect("temp");
    let pristine = root.path().join("pristine");
    let models = written_store(&pristine).await;
    let sizes = |sub: &str| fs::metadata(segment(&pristine.join(sub), 0)).is_ok();
    assert!(sizes("log") && sizes("checkpoints"));
    let log_size = (0..)
        .take_while(|i| segment(&pristine.join("log"), *i).exists())
        .map(|i| {
            fs::metadata(segment(&pristine.join("log"), i))
                .expect("stat")
                .len()
        })
        .sum::<u64>();
    assert!(log_size > 2 * SEGMENT_BYTES, "the log spans segments");

    let mut state = 0xdead_beef_u64;
    let (mut landed, mut reported) = (BTreeMap::new(), 0);
    for case in 0..40 {
        let dir = root.path().join(format!("case-{case}"));
        copy_dir(&pristine, &dir);
        let (sub, size) = match case % 4 {
            0 => ("checkpoints", 2 * PAGE),
            _ => ("log", log_size),
        };
        let offset = next(&mut state) % size;
        flip(&dir.join(sub), offset, 1 << (next(&mut state) % 8));
        let checked = recover_and_check(&dir, &models).await;
        reported += usize::from(checked.reports > 0);
        *landed.entry(checked.blob).or_insert(0) += 1;
    }
    println!("recovered to: {landed:?}; damage reported in {reported} of 40 cases");
    assert!(
        reported > 20,
        "most flips hit records, snapshots or manifests"
    );
}

/// A page of the store's log zeroed on the disk (a block lost by the file system): reads and
/// the iteration that meet it report damage at its offset; nothing is skipped as if the page
/// had never held records.
#[tokio::test]
async fn a_zeroed_page_in_the_store_log_is_reported_not_skipped() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    let models = written_store(&dir).await;

    let file = OpenOptions::new()
        .write(true)
        .open(segment(&dir.join("log"), 0))
        .expect("segment 0");
    file.write_all_at(&[0; PAGE as usize], 3 * PAGE)
        .expect("zero a page");
    let devices = store_devices(&dir).await.expect("devices");
    let (store, _) = Store::recover(devices, store_config())
        .await
        .expect("the checkpoint itself is intact");
    let mut live = store.live_records();
    let error = loop {
        match live.next(&store).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the iteration skipped the zeroed page"),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, Error::Corrupt { offset, .. } if offset == 3 * PAGE),
        "{error}"
    );
    drop(store);
    let checked = recover_and_check(&dir, &models).await;
    assert_eq!(checked.blob, Some(b"three".to_vec()));
    assert!(checked.reports > 0, "the zeroed page is reported");
}

/// The last segment of the store's log cut short: the newest checkpoint's index snapshot is
/// gone, so recovery reports it cut short (file and offset) and falls back to checkpoint 2,
/// whose every value reads back.
#[tokio::test]
async fn a_store_whose_last_log_segment_is_cut_falls_back() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    let models = written_store(&dir).await;
    let log_dir = dir.join("log");
    let last = (0..)
        .take_while(|i| segment(&log_dir, *i).exists())
        .last()
        .expect("segments");
    let len = fs::metadata(segment(&log_dir, last)).expect("stat").len();
    cut(&segment(&log_dir, last), len - PAGE);

    let devices = store_devices(&dir).await.expect("devices");
    let (_, recovered) = Store::recover(devices, store_config())
        .await
        .expect("falls back");
    assert_eq!(recovered.checkpoint.blob, b"two");
    let [Error::Truncated { source_name, .. }] = &recovered.skipped[..] else {
        panic!("expected one truncation, got {:?}", recovered.skipped);
    };
    assert!(
        source_name.contains("checkpoint 3") && source_name.contains("/log"),
        "{source_name}"
    );
    assert_eq!(
        recover_and_check(&dir, &models).await.blob,
        Some(b"two".to_vec())
    );
}

/// A middle segment of the store's log deleted: the device refuses to open, naming it.
#[tokio::test]
async fn a_store_with_a_missing_log_segment_is_refused_by_name() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    written_store(&dir).await;
    fs::remove_file(segment(&dir.join("log"), 1)).expect("remove");
    let error = store_devices(&dir).await.expect_err("refused");
    assert_mentions(&error, &["segment-000000000001", "missing"]);
}

/// Reads the manifest slot `slot` of the store at `dir` (4096 bytes on a file device).
fn manifest_slot(dir: &Path, slot: u64) -> (fs::File, Vec<u8>) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment(&dir.join("checkpoints"), 0))
        .expect("the checkpoint segment");
    let mut bytes = vec![0u8; PAGE as usize];
    file.read_exact_at(&mut bytes, slot * PAGE).expect("slot");
    (file, bytes)
}

/// The newest manifest zeroed: recovery says it is missing, with its offset, and falls back
/// to the older checkpoint; both zeroed: recovery refuses, naming both slots.
#[tokio::test]
async fn zeroed_manifests_fall_back_then_refuse() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    let models = written_store(&dir).await;

    // Checkpoint 3 is in slot 1.
    let (file, _) = manifest_slot(&dir, 1);
    file.write_all_at(&[0; PAGE as usize], PAGE).expect("zero");
    let devices = store_devices(&dir).await.expect("devices");
    let (store, recovered) = Store::recover(devices, store_config())
        .await
        .expect("falls back");
    assert_eq!(recovered.checkpoint.blob, b"two");
    assert!(
        matches!(&recovered.skipped[..], [Error::Missing { offset: 4096, source_name }]
            if source_name.contains("manifest slot 1") && source_name.contains("/checkpoints")),
        "{:?}",
        recovered.skipped
    );
    drop(store);
    assert_eq!(
        recover_and_check(&dir, &models).await.blob,
        Some(b"two".to_vec())
    );

    file.write_all_at(&[0; PAGE as usize], 0).expect("zero");
    let devices = store_devices(&dir).await.expect("devices");
    let error = Store::recover(devices, store_config())
        .await
        .expect_err("refused");
    assert_mentions(&error, &["manifest slot 0", "manifest slot 1"]);
}

/// A manifest written by a newer format (its checksum holds, its format number is higher):
/// recovery refuses with an error naming the slot and its offset, and erases nothing, so the
/// newer program can still open the store.
#[tokio::test]
async fn a_manifest_from_a_newer_format_is_refused_and_kept() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    let models = written_store(&dir).await;

    // Layout: magic (8), body length (4), body checksum (4), then the body, which opens with
    // the format number (u32 LE).
    let (file, original) = manifest_slot(&dir, 1);
    let mut newer = original.clone();
    newer[16..20].copy_from_slice(&2u32.to_le_bytes());
    let body_len = u32::from_le_bytes(newer[8..12].try_into().expect("4 bytes")) as usize;
    let crc = crc32c::crc32c(&newer[16..16 + body_len]);
    newer[12..16].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&newer, PAGE).expect("write");

    let devices = store_devices(&dir).await.expect("devices");
    let error = Store::recover(devices, store_config())
        .await
        .expect_err("refused");
    assert_mentions(&error, &["manifest slot 1", "offset 4096", "format 2"]);
    let (_, kept) = manifest_slot(&dir, 1);
    assert_eq!(kept, newer, "the newer manifest is left alone");

    file.write_all_at(&original, PAGE).expect("restore");
    assert_eq!(
        recover_and_check(&dir, &models).await.blob,
        Some(b"three".to_vec())
    );
}

/// The store's log directory deleted while the store is open: the next checkpoint fails as
/// fenced, naming the directory, instead of claiming a durable checkpoint on deleted files.
#[tokio::test]
async fn a_store_whose_directory_disappears_cannot_checkpoint() {
    let root = tempfile::tempdir().expect("temp");
    let dir = root.path().join("store");
    let devices = store_devices(&dir).await.expect("devices");
    let mut store = Store::create(devices, store_config())
        .await
        .expect("create");
    store.upsert(b"k", b"v").await.expect("upsert");

    fs::remove_dir_all(dir.join("log")).expect("remove");
    let error = store.checkpoint(b"lost").await.expect_err("refused");
    assert!(
        matches!(&error, Error::Device(netherite_core::Error::Fenced(m)) if m.contains("/log")),
        "{error}"
    );
}
