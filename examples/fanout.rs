//! Fan-out and fan-in: an orchestration starts N activities at once (default 100), waits for
//! all of them and sums their results; the example prints the sum and the time taken.
//!
//! ```text
//! cargo run --release --example fanout -- 1000
//! ```
//!
//! Runs on the embedded default (`./netherite-data`, or `NETHERITE_DATA_DIR`).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::try_join_all;
use netherite::Netherite;
use netherite::client::{StartOptions, output};
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite_examples::init_tracing;

/// Activities started when no count is given.
const FAN_OUT_DEFAULT: u64 = 100;

/// How long the example waits for its orchestration.
const COMPLETION_WAIT_MAX: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Our own lines and the engine's lifecycle at info; the partitions' own at warn.
    init_tracing("warn,fanout=info,netherite::engine=info");
    let count = match std::env::args().nth(1) {
        Some(text) => text
            .parse::<u64>()
            .context("the argument is the fan-out count")?,
        None => FAN_OUT_DEFAULT,
    };
    let settings = Settings::from_env()?;
    tracing::info!(data_dir = %settings.data_dir.display(), "opening the task hub");
    let engine = Netherite::builder()
        .settings(settings)
        .registry(registry()?)
        .start()
        .await?;
    let client = engine.client();

    let started = Instant::now();
    let instance = client
        .start(StartOptions::new("FanOut").with_input(&count)?)
        .await?;
    let done = client
        .wait_for_completion(&instance, COMPLETION_WAIT_MAX)
        .await?;
    let elapsed = started.elapsed();
    let sum: u64 = output(&done).with_context(|| format!("instance ended {:?}", done.status))?;
    println!("sum of the squares of 1..={count}: {sum}");
    println!(
        "{count} activities in {:.1} ms",
        elapsed.as_secs_f64() * 1e3
    );

    engine.shutdown().await?;
    Ok(())
}

/// `FanOut` squares 1..=n in n activities at once and adds the squares up.
fn registry() -> anyhow::Result<Registry> {
    let mut registry = Registry::new();
    registry
        .orchestration("FanOut", |ctx: OrchestrationContext, n: u64| async move {
            let squares = (1..=n).map(|i| ctx.call_activity::<u64>("Square", i));
            let squares = try_join_all(squares).await?;
            Ok::<_, TaskError>(squares.iter().sum::<u64>())
        })?
        .activity("Square", |_ctx: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i * i)
        })?;
    Ok(registry)
}
