//! Runnable samples of netherite, and the few pieces they share.
//!
//! - `hello`: a sequence of three activities on the embedded default, state kept in
//!   `./netherite-data` across runs (`cargo run --release --example hello`).
//! - `fanout`: fan-out to N activities and fan-in of their results.
//! - `bench`: the end-to-end load benchmark (throughput, latency, syncs per second).
//!
//! The samples share the hello sequence ([`hello_registry`]) and the logging setup
//! ([`init_tracing`]), so the benchmark measures exactly what `hello` shows.

use std::io::IsTerminal;

use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use tracing_subscriber::EnvFilter;

/// The name of the hello sequence orchestration.
pub const HELLO_CITIES: &str = "HelloCities";

/// The name of the activity the hello sequence calls.
pub const SAY_HELLO: &str = "SayHello";

/// The cities the hello sequence greets, in order.
pub const CITIES: [&str; 3] = ["Tokyo", "Seattle", "London"];

/// A registry holding the hello sequence: [`HELLO_CITIES`] calls [`SAY_HELLO`] for each of
/// [`CITIES`] in turn and returns the greetings.
pub fn hello_registry() -> anyhow::Result<Registry> {
    let mut registry = Registry::new();
    add_hello(&mut registry)?;
    Ok(registry)
}

/// Adds the hello sequence to `registry`.
pub fn add_hello(registry: &mut Registry) -> anyhow::Result<()> {
    registry
        .orchestration(
            HELLO_CITIES,
            |ctx: OrchestrationContext, (): ()| async move {
                let mut greetings = Vec::with_capacity(CITIES.len());
                for city in CITIES {
                    greetings.push(ctx.call_activity::<String>(SAY_HELLO, city).await?);
                }
                Ok::<_, TaskError>(greetings)
            },
        )?
        .activity(
            SAY_HELLO,
            |_ctx: ActivityContext, city: String| async move {
                Ok::<_, ActivityError>(format!("Hello {city}!"))
            },
        )?;
    Ok(())
}

/// Logs to stderr through `tracing-subscriber`, filtered by `RUST_LOG` or else by `default`
/// (an `EnvFilter` directive such as `"info"`).
pub fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
