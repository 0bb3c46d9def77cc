//! Stories of recovery on the embedded default: a graceful restart in the middle of running
//! orchestrations, a real SIGKILL of a busy engine, checkpoints taken and recovered from, and
//! a data directory made with another partition count.

mod engine_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use engine_support::*;
use netherite::client::{Client, output};
use netherite::settings::Settings;
use netherite::{Error, Netherite};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, OrchestrationStatus};

/// An engine restarted on the same directory finds finished instances and finishes the ones
/// that were running: a timer armed before the restart fires after it, a waiting instance
/// takes an event raised after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_finishes_running_orchestrations() {
    let dir = tempfile::tempdir().expect("a temporary directory");

    // Phase 1: one instance done, one sleeping, one waiting; then a graceful shutdown.
    let engine = start_in(dir.path()).await;
    let client = engine.client();
    let done = run(&client, "Hello", "before", &"Paris").await;
    finish(&client, &done).await;
    let sleeper = run(&client, "Sleeper", "sleeper", &1_000u64).await;
    let waiter = run(&client, "Waiter", "waiter", &()).await;
    until(&client, &sleeper, |v| {
        v.status == OrchestrationStatus::Running
    })
    .await;
    until(&client, &waiter, |v| {
        v.status == OrchestrationStatus::Running
    })
    .await;
    engine.shutdown().await.expect("clean shutdown");

    // Phase 2: a new engine on the same directory.
    let engine = start_in(dir.path()).await;
    let client = engine.client();
    let before = client
        .get_state(&done, true)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        output::<String>(&before).expect("a string"),
        "Hello Tokyo! Hello Seattle! Hello Paris!"
    );
    client
        .raise_event(&waiter, "Go", &"after")
        .await
        .expect("raised");
    assert_eq!(
        output::<String>(&finish(&client, &waiter).await).expect("a string"),
        "after"
    );
    assert!(completed(&finish(&client, &sleeper).await));
    for id in [&sleeper, &waiter] {
        assert_exactly_once(&client, id).await;
    }
    engine.shutdown().await.expect("clean shutdown");
}

/// Checkpoints are taken by update count, and a restart recovers from the newest one plus the
/// log after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_taken_and_recovered() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = Settings {
        checkpoint_events_max: 20,
        ..settings(dir.path())
    };
    let start = || {
        Netherite::builder()
            .settings(settings.clone())
            .registry(registry())
            .start()
    };

    let engine = start().await.expect("starts");
    let client = engine.client();
    for i in 0..10 {
        let id = run(&client, "Hello", &format!("cp-{i}"), &i.to_string()).await;
        finish(&client, &id).await;
    }
    // A checkpoint runs in the background; wait until one finished.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = engine.stats().await.expect("stats");
        if stats.iter().any(|s| s.checkpoints > 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await.expect("clean shutdown");

    let engine = start().await.expect("restarts");
    let client = engine.client();
    for i in 0..10 {
        let id = InstanceId::new(format!("cp-{i}"));
        let view = client
            .get_state(&id, true)
            .await
            .expect("read")
            .expect("kept");
        assert!(completed(&view), "{view:?}");
    }
    let stats = engine.stats().await.expect("stats");
    assert!(
        stats.iter().all(|s| s.last_checkpoint.is_some()),
        "{stats:?}"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// A data directory made with one partition count refuses an engine asking for another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_of_another_partition_count_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    start_in(dir.path())
        .await
        .shutdown()
        .await
        .expect("clean shutdown");

    let other = Settings {
        partition_count: PARTITIONS + 1,
        ..settings(dir.path())
    };
    let refused = Netherite::builder()
        .settings(other)
        .registry(registry())
        .start()
        .await;

    let error = refused.expect_err("refused");
    assert!(
        matches!(error, Error::PartitionCountMismatch { stored, requested, .. }
            if stored == PARTITIONS && requested == PARTITIONS + 1),
        "{error}"
    );
}

/// The environment variable that turns this test binary into the engine that gets killed.
const CHILD_DIR_ENV: &str = "NETHERITE_ENGINE_SIGKILL_CHILD_DIR";
/// How many starts the child must have acknowledged before it is killed.
const ACKS_BEFORE_KILL: usize = 120;

/// kill -9 of a busy engine loses no acknowledged start: the child starts orchestrations (with
/// sub-orchestrations on other partitions and fan-outs) and prints each acknowledged start;
/// the parent kills it mid-flight, starts an engine on the same directory and sees every
/// acknowledged instance complete, each with exactly one start and one completion.
#[test]
fn sigkill_loses_no_acknowledged_work() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        return run_until_killed(&dir);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");

    // Phase 1: run the child until enough starts were acknowledged, then SIGKILL it.
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "sigkill_loses_no_acknowledged_work",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("the child is still running")
            .expect("a line");
        acknowledged.extend(line.strip_prefix("ack ").map(str::to_string));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("the child is gone");
    acknowledged.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_string)),
    );

    // Phase 2: recover and see every acknowledged instance through.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let engine = start_with(crash_settings(dir.path())).await;
        let stats = engine.stats().await.expect("stats");
        let recovered_from_checkpoints = stats.iter().filter(|s| s.last_checkpoint.is_some());
        assert!(
            recovered_from_checkpoints.count() > 0,
            "the child checkpointed: {stats:?}"
        );
        let client = engine.client();
        for id in &acknowledged {
            let id = InstanceId::new(id.clone());
            let done = finish(&client, &id).await;
            assert!(completed(&done), "{done:?}");
            assert_exactly_once(&client, &id).await;
        }
        println!(
            "sigkill: {} acknowledged starts all completed once",
            acknowledged.len()
        );
        engine.shutdown().await.expect("clean shutdown");
    });
}

/// The child: starts orchestrations from four tasks and prints each acknowledged start, until
/// the parent kills the process (or a bound, should the parent be gone).
fn run_until_killed(dir: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let engine = start_with(crash_settings(std::path::Path::new(dir))).await;
        let mut tasks = Vec::new();
        for starter in 0..4u32 {
            let client = engine.client();
            tasks.push(tokio::spawn(
                async move { start_many(&client, starter).await },
            ));
        }
        for task in tasks {
            task.await.expect("the starter finished");
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// Settings that make the killed engine checkpoint often, so recovery goes through a
/// checkpoint and a log tail.
fn crash_settings(dir: &std::path::Path) -> Settings {
    Settings {
        checkpoint_events_max: 40,
        ..settings(dir)
    }
}

async fn start_many(client: &Client, starter: u32) {
    for i in 0..200u32 {
        let id = format!("k{starter}-{i}");
        let _ = match i % 3 {
            0 => run(client, "Parent", &id, &3u64).await,
            1 => run(client, "FanOut", &id, &8u64).await,
            _ => run(client, "Sleeper", &id, &50u64).await,
        };
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(format!("ack {id}\n").as_bytes())
            .expect("stdout");
        stdout.flush().expect("stdout");
    }
}

/// The instance's history holds exactly one start and one end.
async fn assert_exactly_once(client: &Client, id: &InstanceId) {
    let history = client.history(id).await.expect("history");
    let starts = count(&history, |k| matches!(k, EventKind::ExecutionStarted(_)));
    let ends = count(&history, |k| matches!(k, EventKind::ExecutionCompleted(_)));
    assert_eq!((starts, ends), (1, 1), "{id}: {history:?}");
}

/// A damaged checkpoint device is a clear error naming the partition and what was refused,
/// not a panic and not a silently empty partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_checkpoints_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = start_in(dir.path()).await;
    let id = run(&engine.client(), "Hello", "kept", &"Bern").await;
    finish(&engine.client(), &id).await;
    engine.shutdown().await.expect("clean shutdown");

    // Both manifest slots of partition 0's store, overwritten with noise.
    let segment = dir
        .path()
        .join("p00/store/checkpoints/segment-000000000000");
    let mut bytes = std::fs::read(&segment).expect("the checkpoint segment");
    bytes[..8192]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 7 + 3) as u8);
    std::fs::write(&segment, &bytes).expect("damaged");

    let refused = Netherite::builder()
        .settings(settings(dir.path()))
        .registry(registry())
        .start()
        .await;
    let error = refused.expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(error, Error::Storage { partition, .. } if partition.0 == 0),
        "{text}"
    );
    assert!(text.contains("manifest slot"), "{text}");
}
