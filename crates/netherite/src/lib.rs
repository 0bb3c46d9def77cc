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

pub mod client;
pub mod engine;
mod error;
pub mod host;
pub mod sdk;
pub mod wire;

pub use engine::Engine;
pub use error::Error;
