//! The netherite engine and its Rust SDK.
//!
//! This crate will host partitions (transport in, core state machine, commit log and store out),
//! the embedded local durable transport, the orchestration context with its replay executor, the
//! activity runner, the client API and the settings. Nothing is implemented yet: the crate is an
//! empty library so that the workspace already has its final shape.
