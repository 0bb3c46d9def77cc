//! Durable commit-log throughput on the file device, beside the raw disk it runs on.
//!
//! First the disk, on plain files: `disk_probe` times 4 KiB write + `fdatasync` rounds and
//! sequential writes with one final `fdatasync`; then 8 MiB writes, each followed by
//! `fdatasync` (the best a durable log writing 8 MiB batches could do). Then, for records of
//! 100 B, 200 B, 1 KiB and 64 KiB, many appender tasks append to one `CommitLog` over a
//! `FileDevice`, each keeping a window of records in flight and waiting for every record to
//! be durable. Criterion times each size. The summary at the end gives records/s and MiB/s
//! (payload, and bytes the device wrote) over all timed iterations, against the disk's best
//! sequential figures of before and after. Last, because the disk's speed drifts with what
//! else the machine does, synced 8 MiB chunks on a plain file, the same through a bare
//! `FileDevice`, and the 64 KiB log take turns for a few rounds, and their medians are
//! compared. The summary is also written to
//! `commit-log-summary.md` in criterion's output directory.
//!
//! The directory is a temporary one; set `NETHERITE_BENCH_DIR` to measure another disk.
//! `--test` (as `cargo test --benches` passes) runs everything once, small.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use netherite_core::device::LogDevice;
use netherite_faster::log::{CommitLog, LogConfig, LogPosition, RecordKind};
use netherite_storage_file::{DiskProbe, FileDevice, FileDeviceOptions, ProbeOptions, disk_probe};
use tokio::runtime::Runtime;

/// One record size and how hard it is pushed.
#[derive(Clone, Copy, Debug)]
struct Workload {
    record_bytes: usize,
    /// Appender tasks.
    appenders: usize,
    /// Records each appender keeps in flight before it waits for the oldest to be durable.
    window: usize,
    /// The log's `buffer_bytes_max`: room for the batch in flight and the one filling.
    buffer_bytes_max: u64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        record_bytes: 100,
        appenders: 64,
        window: 64,
        buffer_bytes_max: 8 << 20,
    },
    Workload {
        record_bytes: 200,
        appenders: 64,
        window: 64,
        buffer_bytes_max: 8 << 20,
    },
    Workload {
        record_bytes: 1 << 10,
        appenders: 64,
        window: 32,
        buffer_bytes_max: 8 << 20,
    },
    Workload {
        record_bytes: 64 << 10,
        appenders: 16,
        window: 32,
        buffer_bytes_max: 64 << 20,
    },
];

/// The raw disk's figures, each measured before and after the log's.
struct Disk {
    probes: [DiskProbe; 2],
    chunked: [SyncedChunks; 2],
}

/// Sequential bandwidth when every chunk is made durable before the next: what a durable
/// log that writes in batches of `chunk_bytes` could reach at best.
#[derive(Clone, Copy, Debug)]
struct SyncedChunks {
    chunk_bytes: usize,
    total_bytes: u64,
    bytes_per_sec: f64,
}

impl std::fmt::Display for SyncedChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MiB/s sequential in {} MiB writes, each followed by fdatasync ({} MiB)",
            self.bytes_per_sec / f64::from(1 << 20),
            self.chunk_bytes >> 20,
            self.total_bytes >> 20
        )
    }
}

/// Times `write + fdatasync` of `chunks` 8 MiB chunks on a plain file under `root`.
fn synced_chunks(root: &Path, chunks: u64) -> SyncedChunks {
    let chunk_bytes = 8 << 20;
    let path = root.join("synced-chunks.raw");
    let file = std::fs::File::create(&path).expect("a scratch file");
    let chunk = vec![0x5a; chunk_bytes];
    let started = Instant::now();
    for index in 0..chunks {
        file.write_all_at(&chunk, index * chunk_bytes as u64)
            .expect("write");
        file.sync_data().expect("fdatasync");
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).expect("remove the scratch file");
    let total_bytes = chunks * chunk_bytes as u64;
    SyncedChunks {
        chunk_bytes,
        total_bytes,
        bytes_per_sec: total_bytes as f64 / elapsed,
    }
}

/// The 64 KiB-record log against synced 8 MiB chunks, measured in alternating rounds.
struct Alternation {
    rounds: usize,
    bytes_per_round: u64,
    /// Synced chunks on a plain file.
    raw: f64,
    /// Synced chunks through `FileDevice`: the ceiling for anything on that device.
    device: f64,
    /// The log, in device bytes.
    log: f64,
}

impl std::fmt::Display for Alternation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = f64::from(1 << 20);
        writeln!(
            f,
            "64 KiB records, durable, taking turns with the disk ({} rounds of {} MiB each, \
             medians):",
            self.rounds,
            self.bytes_per_round >> 20
        )?;
        let rows = [
            ("plain file, 8 MiB write + fdatasync", self.raw),
            ("FileDevice, 8 MiB write + flush", self.device),
            ("commit log, 64 KiB records", self.log),
        ];
        for (name, rate) in rows {
            let share = 100.0 * rate / self.raw;
            writeln!(f, "  {name:<38} {:>8.1} MiB/s {share:>5.0}%", rate / mib)?;
        }
        Ok(())
    }
}

/// Runs the raw disk, the bare device and the 64 KiB log in turns, so all three see the
/// same disk (its speed drifts with what else the machine does); returns the medians.
fn alternate_large(runtime: &Runtime, root: &Path, quick: bool) -> Alternation {
    let workload = WORKLOADS[3];
    let (rounds, chunks) = if quick { (1, 1) } else { (7, 32) };
    let bytes_per_round = chunks * (8 << 20);
    let records = bytes_per_round / workload.record_bytes as u64;
    let (mut raw, mut device, mut log) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw.push(synced_chunks(root, chunks).bytes_per_sec);
        device.push(device_round(runtime, root, chunks));
        log.push(log_round(runtime, root, workload, records));
    }
    Alternation {
        rounds,
        bytes_per_round,
        raw: median(raw),
        device: median(device),
        log: median(log),
    }
}

/// `chunks` 8 MiB writes, each flushed, on a fresh `FileDevice`; returns bytes per second.
fn device_round(runtime: &Runtime, root: &Path, chunks: u64) -> f64 {
    let dir = root.join("alternating-device");
    let chunk = vec![0x5a; 8 << 20];
    let rate = runtime.block_on(async {
        let device = FileDevice::open(&dir, FileDeviceOptions::default())
            .await
            .expect("open the file device");
        let started = Instant::now();
        for index in 0..chunks {
            let offset = index * chunk.len() as u64;
            device.write(offset, &chunk).await.expect("write");
            device.flush().await.expect("flush");
        }
        let elapsed = started.elapsed();
        device.release().await.expect("release");
        (chunks * chunk.len() as u64) as f64 / elapsed.as_secs_f64()
    });
    std::fs::remove_dir_all(&dir).expect("remove the device directory");
    rate
}

/// A log for `workload` on a file device in `dir`.
async fn open_log(dir: &Path, workload: Workload) -> Arc<CommitLog> {
    let device = FileDevice::open(dir, FileDeviceOptions::default())
        .await
        .expect("open the file device");
    let log = CommitLog::open(Arc::new(device), LogPosition::ZERO, config(workload))
        .await
        .expect("open the log");
    Arc::new(log)
}

/// One fresh log writing `records` records durably; returns device bytes per second.
fn log_round(runtime: &Runtime, root: &Path, workload: Workload, records: u64) -> f64 {
    let dir = root.join("alternating-log");
    let rate = runtime.block_on(async {
        let log = open_log(&dir, workload).await;
        let elapsed = append_durably(&log, workload, records).await;
        let bytes = log.durable().0;
        log.release().await.expect("release");
        bytes as f64 / elapsed.as_secs_f64()
    });
    std::fs::remove_dir_all(&dir).expect("remove the log directory");
    rate
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What the timed iterations of one workload added up to.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    records: u64,
    device_bytes: u64,
    elapsed: Duration,
}

fn main() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let root =
        std::env::var_os("NETHERITE_BENCH_DIR").map_or_else(|| temp.path().into(), PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let quick = std::env::args().any(|arg| arg == "--test");

    // The disk is measured before and after: on a shared machine its figures drift.
    let before = disk_probe(&root, &probe_options(quick)).expect("the raw disk probe");
    println!("disk under {} (before): {before}", root.display());
    let chunked_before = synced_chunks(&root, if quick { 1 } else { 64 });
    println!("  {chunked_before}\n");

    let mut criterion = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    for workload in WORKLOADS {
        let totals = bench_workload(&mut criterion, &runtime, &root, workload);
        rows.push((workload, totals));
    }
    criterion.final_summary();

    let after = disk_probe(&root, &probe_options(quick)).expect("the raw disk probe");
    println!("disk under {} (after): {after}", root.display());
    let chunked_after = synced_chunks(&root, if quick { 1 } else { 64 });
    let disk = Disk {
        probes: [before, after],
        chunked: [chunked_before, chunked_after],
    };
    let alternation = alternate_large(&runtime, &root, quick);
    let mut summary = summary(&disk, &rows);
    let _ = write!(summary, "\n{alternation}");
    println!("\n{summary}");
    record(&summary);
}

fn probe_options(quick: bool) -> ProbeOptions {
    if quick {
        return ProbeOptions {
            sync_rounds: 4,
            sequential_bytes: 4 << 20,
            ..ProbeOptions::default()
        };
    }
    ProbeOptions {
        sync_rounds: 500,
        sequential_bytes: 512 << 20,
        ..ProbeOptions::default()
    }
}

fn config(workload: Workload) -> LogConfig {
    LogConfig {
        buffer_bytes_max: workload.buffer_bytes_max,
        ..LogConfig::named("bench commit log")
    }
}

/// Times durable appends of one record size; returns what all timed iterations did.
fn bench_workload(
    criterion: &mut Criterion,
    runtime: &Runtime,
    root: &Path,
    workload: Workload,
) -> Totals {
    let dir = root.join(format!("log-{}", workload.record_bytes));
    let log = runtime.block_on(open_log(&dir, workload));

    let mut group = criterion.benchmark_group("commit_log_durable");
    group
        .throughput(Throughput::Bytes(workload.record_bytes as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let mut totals = Totals::default();
    let id = BenchmarkId::from_parameter(format!("{}B", workload.record_bytes));
    group.bench_function(id, |bencher| {
        bencher.iter_custom(|records| {
            let before = log.durable().0;
            let elapsed = runtime.block_on(append_durably(&log, workload, records));
            totals.records += records;
            totals.device_bytes += log.durable().0 - before;
            totals.elapsed += elapsed;
            runtime
                .block_on(log.truncate_before(log.durable()))
                .expect("truncate");
            elapsed
        })
    });
    group.finish();

    runtime.block_on(log.close()).expect("close");
    drop(log);
    std::fs::remove_dir_all(&dir).expect("remove the log directory");
    totals
}

/// Appends `records` records from `workload.appenders` tasks and waits until all are durable.
async fn append_durably(log: &Arc<CommitLog>, workload: Workload, records: u64) -> Duration {
    let started = Instant::now();
    let appenders = (workload.appenders as u64).min(records).max(1);
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let count = records / appenders + u64::from(task < records % appenders);
            tokio::spawn(appender(log.clone(), workload, count))
        })
        .collect();
    for task in tasks {
        task.await.expect("an appender task");
    }
    started.elapsed()
}

async fn appender(log: Arc<CommitLog>, workload: Workload, count: u64) {
    let kind = RecordKind::new(1).expect("a user kind");
    let body = vec![0xab; workload.record_bytes];
    let mut in_flight = VecDeque::with_capacity(workload.window);
    for _ in 0..count {
        let (_, durable) = log.append(kind, &body).await.expect("append");
        in_flight.push_back(durable);
        if in_flight.len() >= workload.window {
            let oldest = in_flight.pop_front().expect("the window is full");
            oldest.wait().await.expect("durable");
        }
    }
    for durable in in_flight {
        durable.wait().await.expect("durable");
    }
}

fn summary(disk: &Disk, rows: &[(Workload, Totals)]) -> String {
    let mib = f64::from(1 << 20);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "commit log, durable, on FileDevice (4 KiB alignment)\n"
    );
    for (index, when) in ["before", "after"].iter().enumerate() {
        let probe = &disk.probes[index];
        let _ = writeln!(
            out,
            "disk {when}: {:.0} fdatasync/s (4 KiB write + fdatasync); {:.1} MiB/s sequential \
             ({} MiB + 1 fdatasync); {}",
            probe.sync_rounds_per_sec,
            probe.sequential_bytes_per_sec / mib,
            probe.options.sequential_bytes >> 20,
            disk.chunked[index],
        );
    }
    let best = |rates: [f64; 2]| rates.into_iter().fold(0.0, f64::max) / mib;
    let sequential = best(disk.probes.map(|probe| probe.sequential_bytes_per_sec));
    let chunked = best(disk.chunked.map(|chunked| chunked.bytes_per_sec));
    let _ = writeln!(
        out,
        "\n| record | appenders x window | records/s | payload MiB/s | device MiB/s | \
         vs sequential | vs synced 8 MiB chunks |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (workload, totals) in rows {
        let seconds = totals.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let records = totals.records as f64 / seconds;
        let payload = records * workload.record_bytes as f64 / mib;
        let device = totals.device_bytes as f64 / seconds / mib;
        let _ = writeln!(
            out,
            "| {} B | {} x {} | {records:.0} | {payload:.1} | {device:.1} | {:.0}% | {:.0}% |",
            workload.record_bytes,
            workload.appenders,
            workload.window,
            100.0 * device / sequential,
            100.0 * device / chunked,
        );
    }
    out
}

/// Writes the summary next to criterion's own reports.
fn record(summary: &str) {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let dir = target.join("criterion");
    let path = dir.join("commit-log-summary.md");
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, summary));
    match written {
        Ok(()) => println!("summary written to {}", path.display()),
        Err(error) => println!("summary not written to {}: {error}", path.display()),
    }
}
