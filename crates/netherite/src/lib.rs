//! The netherite engine and its Rust SDK.
//!
//! This crate hosts partitions (transport in, core state machine, commit log and store out),
//! the embedded local durable transport, the orchestration context with its replay executor,
//! the activity runner, the client API and the settings.
//!
//! - [`engine`]: [`Netherite::builder`] and [`Engine`]: the partition hosts of this node, the
//!   workers and a client; the embedded default (feature `file`) runs on one machine with no
//!   external service and survives kill -9.
//! - [`host`]: one partition's host: recovery, the pipelined loop, the outbox, the timer and
//!   checkpoints.
//! - [`client`]: start, inspect, wait for, signal, terminate, restart, purge and query
//!   orchestration instances.
//! - [`sdk`]: the registry of orchestrations and activities, the orchestration context and the
//!   replay executor that runs an episode from its history.
//! - [`wire`]: the payloads that travel through a transport.
//! - [`transport`]: the local durable transport, the embedded default (feature `file`, on by
//!   default, for its file-backed queues).
//! - [`settings`]: the engine's settings, from code, a TOML file and the environment.
//! - [`taskhub`]: the data directory's `taskhub.toml`, lock and layout.

pub mod client;
pub mod engine;
mod error;
pub mod host;
pub mod remote;
pub mod sdk;
pub mod settings;
pub mod taskhub;
pub mod transport;
pub mod wire;

pub use engine::{Engine, EngineBuilder, Netherite};
pub use error::Error;
/// Azure storage accounts and their connection strings (feature `pageblob`).
#[cfg(feature = "pageblob")]
pub use netherite_azure as azure;
/// The Event Hubs transport (feature `eventhubs`), for [`EngineBuilder::start_on_eventhubs`].
#[cfg(feature = "eventhubs")]
pub use netherite_transport_eventhubs as eventhubs;
/// The Kafka transport (feature `kafka`), for [`EngineBuilder::start_on_kafka`].
#[cfg(feature = "kafka")]
pub use netherite_transport_kafka as kafka;
