//! The Durable Task protocol for netherite: our `.proto`, the code generated from it, the
//! conversions between the wire types and `netherite_core::model`, and the gRPC sidecar.
//!
//! - [`pb`]: the generated messages and the `TaskHubSidecarService` client and server stubs.
//! - [`convert`]: wire to model and back. Wire input is checked on the way in: a history event
//!   without a kind, an unknown status number or an impossible timestamp is an [`Error`],
//!   never a panic.
//! - [`service`]: the `TaskHubSidecarService` itself over a running engine, and [`serve`],
//!   which starts the engine and serves the protocol on an address.

pub mod convert;
mod error;
pub mod pb;
pub mod serve;
pub mod service;

pub use error::Error;
