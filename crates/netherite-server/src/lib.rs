//! The Durable Task protocol for netherite: our `.proto`, the code generated from it, and the
//! conversions between the wire types and `netherite_core::model`.
//!
//! - [`pb`]: the generated messages and the `TaskHubSidecarService` client and server stubs.
//! - [`convert`]: wire to model and back. Wire input is checked on the way in: a history event
//!   without a kind, an unknown status number or an impossible timestamp is an [`Error`],
//!   never a panic.

pub mod convert;
mod error;
pub mod pb;

pub use error::Error;
