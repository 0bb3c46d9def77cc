//! The raw disk against `FileDevice`, side by side: 4 KiB write + sync rounds, and sequential
//! writes with one final sync.
//!
//! First a table: `disk_probe` (plain std files, the ceiling) and `probe_device` (the same
//! pattern through `FileDevice`) on the same directory. Then criterion times one round of each
//! pattern per backend. The directory is a temporary one; set `NETHERITE_BENCH_DIR` to measure
//! another disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use netherite_core::device::LogDevice;
use netherite_storage_file::{
    DiskProbe, FileDevice, FileDeviceOptions, ProbeOptions, disk_probe, probe_device,
};
use tokio::runtime::Runtime;

const PAGE: usize = 4096;
/// The 4 KiB rounds cycle over this many pages, so the file stops growing.
const PAGE_SLOTS: u64 = 1024;
const CHUNK: usize = 1 << 20;
const SEQUENTIAL_CHUNKS: u64 = 16;
/// How many times each probe runs for the table.
const PROBE_ROUNDS: usize = 3;

fn main() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let root =
        std::env::var_os("NETHERITE_BENCH_DIR").map_or_else(|| temp.path().into(), PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let quick = std::env::args().any(|arg| arg == "--test");

    print_side_by_side(&root, &runtime, quick);

    let mut criterion = Criterion::default().configure_from_args();
    sync_rounds(&mut criterion, &root, &runtime);
    sequential(&mut criterion, &root, &runtime);
    criterion.final_summary();
}

/// Both probes on the same directory, alternating, printed as one table of medians (a shared
/// disk is noisy; alternating spreads the noise over both columns alike).
fn print_side_by_side(root: &Path, runtime: &Runtime, quick: bool) {
    let options = if quick {
        ProbeOptions {
            sync_rounds: 4,
            sequential_bytes: 4 << 20,
            ..ProbeOptions::default()
        }
    } else {
        ProbeOptions::default()
    };
    let (mut raw, mut device) = (Vec::new(), Vec::new());
    for round in 0..PROBE_ROUNDS {
        raw.push(disk_probe(root, &options).expect("the raw disk probe"));
        let dir = root.join(format!("probe-device-{round}"));
        device.push(runtime.block_on(async {
            let device = FileDevice::open(&dir, FileDeviceOptions::default())
                .await
                .expect("open");
            probe_device(&device, &options)
                .await
                .expect("the device probe")
        }));
        std::fs::remove_dir_all(&dir).expect("remove the probe device");
    }

    println!(
        "disk under {}, median of {PROBE_ROUNDS} alternating rounds",
        root.display()
    );
    println!(
        "  {:<12} {:>10} {:>10} {:>12}",
        "", "syncs/s", "mean ms", "seq MiB/s"
    );
    print_row("std file", &raw);
    print_row("FileDevice", &device);
    println!();
}

fn print_row(name: &str, probes: &[DiskProbe]) {
    println!(
        "  {:<12} {:>10.0} {:>10.3} {:>12.1}",
        name,
        median(probes, |p| p.sync_rounds_per_sec),
        median(probes, |p| p.sync_round_mean.as_secs_f64() * 1e3),
        median(probes, |p| p.sequential_bytes_per_sec / f64::from(1 << 20)),
    );
}

fn median(probes: &[DiskProbe], field: impl Fn(&DiskProbe) -> f64) -> f64 {
    let mut values: Vec<f64> = probes.iter().map(field).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, bytes: u64) {
    group
        .throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
}

/// One 4 KiB write and one sync per iteration.
fn sync_rounds(criterion: &mut Criterion, root: &Path, runtime: &Runtime) {
    let mut group = criterion.benchmark_group("write_4KiB_then_sync");
    configure(&mut group, PAGE as u64);
    let page = vec![0x5a; PAGE];

    let file = scratch_file(&root.join("bench-sync.raw"));
    let mut round = 0u64;
    group.bench_function("std_file", |b| {
        b.iter(|| {
            round += 1;
            let offset = (round % PAGE_SLOTS) * PAGE as u64;
            file.write_all_at(&page, offset).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });

    let device = open_device(runtime, &root.join("bench-sync.device"));
    let mut round = 0u64;
    group.bench_function("file_device", |b| {
        b.iter(|| {
            round += 1;
            let offset = (round % PAGE_SLOTS) * PAGE as u64;
            runtime.block_on(async {
                device.write(offset, &page).await.expect("write");
                device.flush().await.expect("flush");
            })
        })
    });
    group.finish();
}

/// 16 MiB in 1 MiB writes and one sync per iteration.
fn sequential(criterion: &mut Criterion, root: &Path, runtime: &Runtime) {
    let mut group = criterion.benchmark_group("write_16MiB_then_sync");
    configure(&mut group, SEQUENTIAL_CHUNKS * CHUNK as u64);
    let chunk = vec![0xa5; CHUNK];

    let file = scratch_file(&root.join("bench-sequential.raw"));
    group.bench_function("std_file", |b| {
        b.iter(|| {
            for index in 0..SEQUENTIAL_CHUNKS {
                file.write_all_at(&chunk, index * CHUNK as u64)
                    .expect("write");
            }
            file.sync_data().expect("fdatasync");
        })
    });

    let device = open_device(runtime, &root.join("bench-sequential.device"));
    group.bench_function("file_device", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for index in 0..SEQUENTIAL_CHUNKS {
                    device
                        .write(index * CHUNK as u64, &chunk)
                        .await
                        .expect("write");
                }
                device.flush().await.expect("flush");
            })
        })
    });
    group.finish();
}

fn scratch_file(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("a scratch file")
}

fn open_device(runtime: &Runtime, dir: &Path) -> FileDevice {
    runtime
        .block_on(FileDevice::open(dir, FileDeviceOptions::default()))
        .expect("open the device")
}
