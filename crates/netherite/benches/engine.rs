//! End-to-end throughput of the engine, printed side by side for its two configurations: the
//! embedded default (local durable transport and file devices, every update fsync'd by group
//! commit) and the same engine in memory (no disk at all), in one run.
//!
//! Each round starts `ORCHESTRATIONS` instances of a three-activity sequence at once, waits
//! for all of them, and reports instances and logged updates per second. Run with
//! `cargo bench -p netherite --bench engine`.

use std::time::{Duration, Instant};

use netherite::client::{Client, StartOptions};
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite::{Engine, Netherite};

/// Instances per round.
const ORCHESTRATIONS: usize = 2_000;
/// Rounds per configuration; the figures are the median round.
const ROUNDS: usize = 3;

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Sequence", |ctx: OrchestrationContext, n: u64| async move {
            let mut total = 0;
            for i in 0..3 {
                total += ctx.call_activity::<u64>("Add", (n, i)).await?;
            }
            Ok::<_, TaskError>(total)
        })
        .expect("a fresh name")
        .activity("Add", |_ctx: ActivityContext, (a, b): (u64, u64)| async move {
            Ok::<_, ActivityError>(a + b)
        })
        .expect("a fresh name");
    registry
}

/// Runs one round on `engine`; returns its duration.
async fn round(client: &Client, round: usize) -> Duration {
    let started = Instant::now();
    let starts = (0..ORCHESTRATIONS).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let options = StartOptions::new("Sequence")
                .with_instance_id(format!("r{round}-{i}"))
                .with_input(&(i as u64))
                .expect("input");
            let id = client.start(options).await.expect("started");
            client
                .wait_for_completion(&id, Duration::from_secs(300))
                .await
                .expect("completed");
        })
    });
    for task in starts.collect::<Vec<_>>() {
        task.await.expect("the instance task");
    }
    started.elapsed()
}

async fn measure(name: &str, engine: Engine) {
    let client = engine.client();
    let before: u64 = updates(&engine).await;
    let mut times = Vec::new();
    for r in 0..ROUNDS {
        times.push(round(&client, r).await);
    }
    let after: u64 = updates(&engine).await;
    times.sort();
    let median = times[ROUNDS / 2];
    let per_round = (after - before) / ROUNDS as u64;
    println!(
        "{name:<10} {:>10.0} instances/s {:>10.0} updates/s   (median of {ROUNDS} rounds of \
         {ORCHESTRATIONS}: {median:?})",
        ORCHESTRATIONS as f64 / median.as_secs_f64(),
        per_round as f64 / median.as_secs_f64(),
    );
    engine.shutdown().await.expect("clean shutdown");
}

async fn updates(engine: &Engine) -> u64 {
    let stats = engine.stats().await.expect("stats");
    stats.iter().map(|s| s.state.events_applied).sum()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let settings = Settings::default().with_data_dir(dir.path());
        let files = Netherite::builder()
            .settings(settings.clone())
            .registry(registry())
            .start()
            .await
            .expect("the embedded engine starts");
        measure("files", files).await;
        let memory = Engine::in_memory(registry(), &settings)
            .await
            .expect("the in-memory engine starts");
        measure("memory", memory).await;
    });
}
