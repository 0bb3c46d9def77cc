//! The netherite engine and its Rust SDK.
//!
//! This crate will host partitions (transport in, core state machine, commit log and store
//! out), the embedded local durable transport, the activity runner, the client API and the
//! settings. What exists today is the SDK ([`sdk`]): the registry of orchestrations and
//! activities, the orchestration context and the replay executor that runs an episode from
//! its history, standing on the model of `netherite-core` alone.

mod error;
pub mod sdk;

pub use error::Error;
