//! The netherite engine and its Rust SDK.
//!
//! This crate hosts partitions (transport in, core state machine, commit log and store out),
//! the embedded local durable transport, the orchestration context with its replay executor,
//! the activity runner, the client API and the settings. Most of it is still being built; what
//! exists is listed below.
//!
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
pub mod sdk;
pub mod settings;
pub mod taskhub;
pub mod transport;
pub mod wire;

pub use engine::{Engine, EngineBuilder, Netherite};
pub use error::Error;
