//! One engine, two front doors: what the Rust registry knows runs in the server's process,
//! what it does not know goes to the protocol's workers, and one orchestration can mix both.
//!
//! The registry handed to `serve` knows `Greet` (which calls the Rust activity `SayHello`)
//! and `Shouter` (which calls `Shout`, an activity no Rust code implements). The first runs
//! with no gRPC worker connected at all; the second waits for one, and this test is that
//! worker for the one activity.

mod support;

use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite_server::pb::OrchestrationStatus::Completed;
use support::{activity, finished, next, open, output, send_output, start, start_instance, status};

/// `Greet` and `SayHello` run in Rust; `Shouter` does too, but its `Shout` does not exist here.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration(
            "Greet",
            |ctx: OrchestrationContext, city: String| async move {
                ctx.call_activity::<String>("SayHello", city).await
            },
        )
        .expect("a fresh name")
        .orchestration(
            "Shouter",
            |ctx: OrchestrationContext, word: String| async move {
                let loud: String = ctx.call_activity("Shout", word).await?;
                Ok::<_, TaskError>(format!("{loud}!"))
            },
        )
        .expect("a fresh name")
        .activity(
            "SayHello",
            |_ctx: ActivityContext, city: String| async move {
                Ok::<_, ActivityError>(format!("Hello {city}!"))
            },
        )
        .expect("a fresh name");
    registry
}

/// A Rust orchestration started over gRPC runs in the server's own process: it completes with
/// no worker connected, and its output reads back over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_orchestration_started_over_grpc_needs_no_grpc_worker() {
    let server = start(registry()).await;
    let client = &server.client;
    start_instance(client, "Greet", "greet-rust", "\"Tokyo\"").await;

    let state = finished(client, "greet-rust").await;
    assert_eq!(state.name, "Greet");
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"Hello Tokyo!\""));
    server.stop().await;
}

/// A Rust orchestration that calls an activity the registry does not know hands just that
/// activity to a gRPC worker (the worker sees no episode), and completes with its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_orchestration_calls_an_activity_served_over_grpc() {
    let server = start(registry()).await;
    let client = &server.client;
    let mut stream = open(client).await;
    start_instance(client, "Shouter", "shout-1", "\"hey\"").await;

    let item = next(&mut stream).await;
    let request = activity(&item);
    assert_eq!(request.name, "Shout");
    assert_eq!(request.input.as_deref(), Some("\"hey\""));
    let caller = request
        .orchestration_instance
        .as_ref()
        .expect("the caller is named");
    assert_eq!(caller.instance_id, "shout-1");
    send_output(client, output(&item, "\"HEY\"")).await;

    let state = finished(client, "shout-1").await;
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"HEY!\""));
    drop(stream);
    server.stop().await;
}
