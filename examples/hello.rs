//! The hello sequence on the embedded default: an orchestration calls `SayHello` for Tokyo,
//! Seattle and London in turn and prints the greetings as JSON.
//!
//! ```text
//! cargo run --release --example hello
//! ```
//!
//! State lives in `./netherite-data` (or `NETHERITE_DATA_DIR`), so a second run finds the
//! instances of the first one there, and starts one more. `RUST_LOG` tunes the logging.

use std::time::Duration;

use anyhow::Context;
use netherite::Netherite;
use netherite::client::{Client, StartOptions};
use netherite::settings::Settings;
use netherite_core::partition::index::InstanceFilter;
use netherite_examples::{HELLO_CITIES, hello_registry, init_tracing};

/// How long the example waits for its orchestration.
const COMPLETION_WAIT_MAX: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Our own lines and the engine's lifecycle at info; the partitions' own at warn.
    init_tracing("warn,hello=info,netherite::engine=info");
    let settings = Settings::from_env()?;
    let data_dir = settings.data_dir.display().to_string();
    let partitions = settings.partition_count;
    tracing::info!(data_dir = %data_dir, partitions, "opening the task hub");
    let engine = Netherite::builder()
        .settings(settings)
        .registry(hello_registry()?)
        .start()
        .await
        .with_context(|| format!("starting the engine on {data_dir}"))?;
    let client = engine.client();

    let earlier = count_hello_instances(&client).await?;
    tracing::info!("found {earlier} earlier hello instances in {data_dir}");

    let instance = client.start(StartOptions::new(HELLO_CITIES)).await?;
    tracing::info!(instance = %instance, "started");
    let done = client
        .wait_for_completion(&instance, COMPLETION_WAIT_MAX)
        .await?;
    let output = done
        .output
        .as_deref()
        .with_context(|| format!("instance {instance} ended {:?} without output", done.status))?;
    println!("{output}");

    engine.shutdown().await?;
    Ok(())
}

/// How many hello instances the task hub holds, whatever their status.
async fn count_hello_instances(client: &Client) -> anyhow::Result<usize> {
    let filter = InstanceFilter {
        name: Some(HELLO_CITIES.to_string()),
        ..InstanceFilter::default()
    };
    let mut count = 0;
    let mut token = None;
    loop {
        let page = client.query(&filter, token.as_deref(), 1000).await?;
        count += page.instances.len();
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(count),
        }
    }
}
