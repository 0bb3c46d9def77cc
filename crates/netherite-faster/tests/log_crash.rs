//! The commit log's crash property: at random crash points, with torn writes and failing
//! flushes, no record whose durability was notified is lost, nothing torn is returned, and
//! what follows the durable prefix is whole records that were appended, or nothing.
//!
//! Each case runs a random plan (appends of any size, bursts of concurrent appenders,
//! yields that let the flusher get partway, flushes, truncations, crashes) on a seeded
//! in-memory disk, on a single-threaded runtime, so a failing case replays exactly. After each
//! crash the log is reopened and read back, and checked against a model: the ordered map of
//! every record appended in the current history, and the set of positions notified durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDevice, MemoryDisk};
use netherite_faster::Error;
use netherite_faster::log::{CommitLog, Durable, LogConfig, LogPosition, RecordKind};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::task::JoinHandle;

/// A memory device that yields a seeded number of turns (0 to 3) before every write and
/// flush, so appends, flushes, writes and crashes interleave in many orders.
#[derive(Debug)]
struct YieldingDevice {
    inner: MemoryDevice,
    rng: AtomicU64,
}

impl YieldingDevice {
    async fn pause(&self) {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        for _ in 0..x % 4 {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl LogDevice for YieldingDevice {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), netherite_core::Error> {
        self.pause().await;
        self.inner.write(offset, bytes).await
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, netherite_core::Error> {
        self.inner.read(offset, len).await
    }
    async fn flush(&self) -> Result<(), netherite_core::Error> {
        self.pause().await;
        self.inner.flush().await
    }
    async fn truncate_before(&self, offset: u64) -> Result<(), netherite_core::Error> {
        self.inner.truncate_before(offset).await
    }
    async fn release(&self) -> Result<(), netherite_core::Error> {
        self.inner.release().await
    }
}

/// One step of a plan.
#[derive(Clone, Debug)]
enum Op {
    /// Append one record of this kind and length.
    Append(u16, usize),
    /// Spawn this many appenders that each append one record at once.
    Burst(u8),
    /// Let other tasks (the flusher, appenders) run this many turns.
    Yield(u8),
    /// Wait for everything appended so far to be durable (it may fail: the log may stop).
    Flush,
    /// Truncate before the durable record at this fraction of the durable records.
    Truncate(f64),
    /// Let other tasks run this many turns (so the flusher may be between a write and its
    /// flush), then crash the disk and reopen the log.
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..4, 0usize..1_200).prop_map(|(kind, len)| Op::Append(kind, len)),
        2 => (1u8..12).prop_map(Op::Burst),
        3 => (1u8..6).prop_map(Op::Yield),
        1 => Just(Op::Flush),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        2 => (0u8..4).prop_map(Op::Crash),
    ]
}

/// A record as the model knows it.
type Record = (u16, Vec<u8>);

/// Records appended by spawned appenders: position, record, durability handle.
type Appended = Arc<Mutex<Vec<(LogPosition, Record, Durable)>>>;

/// The model of the current history and the live log on the disk.
struct World {
    disk: MemoryDisk,
    config: LogConfig,
    log: Arc<CommitLog>,
    start: LogPosition,
    /// Every record appended in the current history, by position.
    history: BTreeMap<LogPosition, Record>,
    /// Positions whose durability was notified: they must survive any crash.
    notified: BTreeSet<LogPosition>,
    /// Handles of records not yet seen durable.
    pending: Vec<(LogPosition, Durable)>,
    appended: Appended,
    appenders: Vec<JoinHandle<()>>,
    next_body: u32,
    setup: Setup,
    /// The generator of the scrambling at crashes.
    rng: u64,
}

impl World {
    async fn new(seed: u64, alignment: u64, setup: Setup) -> Result<World, TestCaseError> {
        let faults = DeviceFaults {
            seed,
            torn_writes: true,
            flush_failure_rate: setup.flush_failure_rate,
            ..DeviceFaults::none()
        };
        let disk = MemoryDisk::new(alignment).expect("a power of two");
        if setup.garbage {
            fill_with_garbage(&disk, seed).await;
        }
        disk.set_faults(faults);
        let config = LogConfig {
            page_bytes: 256,
            record_bytes_max: 4 << 10,
            buffer_bytes_max: 16 << 10,
            attempts_max: 2,
            retry_delay: Duration::ZERO,
            ..LogConfig::named("crash test log")
        };
        let log = reopen(&disk, &config, LogPosition::ZERO, seed).await?;
        Ok(World {
            disk,
            config,
            log,
            start: LogPosition::ZERO,
            history: BTreeMap::new(),
            notified: BTreeSet::new(),
            pending: Vec::new(),
            appended: Arc::default(),
            appenders: Vec::new(),
            next_body: 0,
            setup,
            rng: seed | 1,
        })
    }

    /// A body no other record has, so a record returned in the wrong place cannot match.
    fn body(&mut self, len: usize) -> Vec<u8> {
        self.next_body += 1;
        let tag = self.next_body.to_le_bytes();
        (0..len).map(|i| tag[i % 4] ^ (i / 4) as u8).collect()
    }

    async fn run(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append(kind, len) => self.append(kind, len).await,
            Op::Burst(count) => self.burst(count),
            Op::Yield(turns) => {
                for _ in 0..turns {
                    tokio::task::yield_now().await;
                }
            }
            Op::Flush => {
                let _ = self.log.flush().await;
            }
            Op::Truncate(fraction) => self.truncate(fraction).await?,
            Op::Crash(turns) => {
                for _ in 0..turns {
                    tokio::task::yield_now().await;
                }
                self.crash_and_check().await?;
            }
        }
        Ok(())
    }

    async fn append(&mut self, kind: u16, len: usize) {
        let body = self.body(len);
        let record_kind = RecordKind::new(kind).expect("a user kind");
        if let Ok((position, durable)) = self.log.append(record_kind, &body).await {
            self.history.insert(position, (kind, body));
            self.pending.push((position, durable));
        }
    }

    fn burst(&mut self, count: u8) {
        for _ in 0..count {
            let body = self.body(usize::from(count) * 37);
            let (log, appended) = (self.log.clone(), self.appended.clone());
            self.appenders.push(tokio::spawn(async move {
                let kind = RecordKind::new(9).expect("a user kind");
                if let Ok((position, durable)) = log.append(kind, &body).await {
                    let mut appended = appended.lock().expect("no panics under the lock");
                    appended.push((position, (9, body), durable));
                }
            }));
        }
    }

    /// Moves what spawned appenders appended into the model.
    fn gather(&mut self) {
        let appended = std::mem::take(&mut *self.appended.lock().expect("no panics"));
        for (position, record, durable) in appended {
            self.history.insert(position, record);
            self.pending.push((position, durable));
        }
    }

    /// Notes every record whose durability has been notified by now.
    fn note_durable(&mut self) {
        self.gather();
        let (durable, pending) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition::<Vec<_>, _>(|(_, durable)| durable.is_durable());
        self.notified
            .extend(durable.into_iter().map(|(position, _)| position));
        self.pending = pending;
    }

    async fn truncate(&mut self, fraction: f64) -> Result<(), TestCaseError> {
        self.note_durable();
        let durable: Vec<_> = self
            .notified
            .iter()
            .copied()
            .filter(|p| *p >= self.start)
            .collect();
        if durable.is_empty() {
            return Ok(());
        }
        let at = durable[((durable.len() - 1) as f64 * fraction) as usize];
        match self.log.truncate_before(at).await {
            Ok(()) => {
                self.start = at;
                self.history = self.history.split_off(&at);
                Ok(())
            }
            Err(error) => Err(TestCaseError::fail(format!("truncate at {at}: {error}"))),
        }
    }

    /// Crashes the disk, reopens the log and checks what it holds against the model.
    async fn crash_and_check(&mut self) -> Result<(), TestCaseError> {
        self.note_durable();
        for appender in self.appenders.drain(..) {
            appender.abort();
        }
        self.gather();
        self.crash().await;
        self.rng = self.rng.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        self.log = reopen(&self.disk, &self.config, self.start, self.rng).await?;

        let records = self
            .log
            .scan(self.start)
            .map_err(|e| TestCaseError::fail(format!("scan: {e}")))?
            .collect()
            .await
            .map_err(|e| TestCaseError::fail(format!("scan after recovery: {e}")))?;
        let read: Vec<(LogPosition, Record)> = records
            .into_iter()
            .map(|r| (r.position, (r.kind.value(), r.body)))
            .collect();
        self.check(&read)?;

        // Everything recovered is durable now, and is the whole history from here on.
        self.history = read.into_iter().collect();
        self.notified = self.history.keys().copied().collect();
        self.pending.clear();
        Ok(())
    }

    /// Crashes the disk; with `scramble` on, then tears the writes that were not durable
    /// sector by sector, independently: each sector above the durable point reads as the
    /// disk left it, as zeros, or as it was written (rule 6 of the device contract allows
    /// all three, in any mix, where the disk's own model keeps a prefix).
    async fn crash(&mut self) {
        let durable = self.log.durable().0;
        let size = self.disk.size();
        let witness = self.disk.open();
        let written = witness
            .read(durable, (size - durable) as usize)
            .await
            .expect("read");
        self.disk.crash();
        if !self.setup.scramble {
            return;
        }

        let device = self.disk.open();
        let sector = device.alignment();
        let end = size.max(self.disk.size());
        for at in (durable..end).step_by(sector as usize) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let bytes = match self.rng % 3 {
                0 => continue,
                1 => vec![0; sector as usize],
                _ if at >= size => continue,
                _ => written[(at - durable) as usize..][..sector as usize].to_vec(),
            };
            device.write(at, &bytes).await.expect("write");
        }
        // The scrambled image is the crash's outcome: make it stick despite failing flushes.
        for _ in 0..1_000 {
            if device.flush().await.is_ok() {
                return;
            }
        }
        panic!("the disk's flushes never succeeded");
    }

    fn check(&self, read: &[(LogPosition, Record)]) -> Result<(), TestCaseError> {
        let prefix: Vec<_> = self.history.iter().take(read.len()).collect();
        for ((position, record), (expected_position, expected)) in read.iter().zip(&prefix) {
            prop_assert_eq!(position, *expected_position, "records out of place");
            prop_assert!(
                record == *expected,
                "record at {} differs from what was appended",
                position
            );
        }
        prop_assert_eq!(read.len(), prefix.len(), "more records than were appended");
        let kept: BTreeSet<_> = read.iter().map(|(position, _)| *position).collect();
        for position in self.notified.range(self.start..) {
            prop_assert!(
                kept.contains(position),
                "durable record at {} was lost",
                position
            );
        }
        Ok(())
    }
}

/// Opens the log on a fresh handle, retrying while the disk's flushes keep failing.
async fn reopen(
    disk: &MemoryDisk,
    config: &LogConfig,
    start: LogPosition,
    seed: u64,
) -> Result<Arc<CommitLog>, TestCaseError> {
    for _ in 0..20 {
        let device = Arc::new(YieldingDevice {
            inner: disk.open(),
            rng: AtomicU64::new(seed | 1),
        });
        match CommitLog::open(device, start, config.clone()).await {
            Ok(log) => return Ok(Arc::new(log)),
            Err(Error::Device(error)) if error.is_retryable() => continue,
            Err(error) => return Err(TestCaseError::fail(format!("reopen at {start}: {error}"))),
        }
    }
    Err(TestCaseError::fail("the disk's flushes never succeeded"))
}

/// How a case's disk behaves.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// The chance that a device flush fails.
    flush_failure_rate: f64,
    /// Whether the disk starts full of random bytes (a reused disk) instead of zeros, so a
    /// torn write leaves noise, not zeros, behind it and only checksums can tell.
    garbage: bool,
    /// Whether a crash tears sector by sector rather than keeping a prefix.
    scramble: bool,
}

/// Fills the first 64 KiB of the disk with seeded noise, durably.
async fn fill_with_garbage(disk: &MemoryDisk, seed: u64) {
    let mut state = seed | 1;
    let noise: Vec<u8> = (0..64 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let device = disk.open();
    device.write(0, &noise).await.expect("write");
    device.flush().await.expect("flush");
}

async fn run_plan(
    seed: u64,
    alignment: u64,
    setup: Setup,
    plan: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut world = World::new(seed, alignment, setup).await?;
    for op in plan {
        world.run(op).await?;
    }
    world.crash_and_check().await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// At random crash points, with torn writes and failing flushes, no notified record is
    /// lost and no torn or stray record is returned.
    #[test]
    fn crashes_lose_no_durable_record_and_return_nothing_torn(
        seed in any::<u64>(),
        alignment in prop_oneof![Just(64u64), Just(512)],
        flush_failure_rate in prop_oneof![Just(0.0), 0.05f64..0.4],
        garbage in any::<bool>(),
        scramble in any::<bool>(),
        plan in prop::collection::vec(op(), 1..80),
    ) {
        let setup = Setup { flush_failure_rate, garbage, scramble };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run_plan(seed, alignment, setup, plan))?;
    }
}
