//! The one error type of `netherite-server`, referred to as `netherite_server::Error`.
//!
//! Today it describes wire messages that do not convert to the model: input from a worker or a
//! client that breaks a rule of the protocol. Each error names the offending field the way the
//! `.proto` spells it (`TaskCompletedEvent.taskScheduledId`), so the message can be handed back
//! to the sender as it is. Items of a list are reported with their index.

/// Everything that can go wrong in the server crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field the model cannot do without is not set: a oneof with no case, or a message
    /// field that must be present.
    #[error("{field} is missing")]
    Missing {
        /// The field, as `Message.field`.
        field: &'static str,
    },
    /// An enum field carries a number the protocol does not define.
    #[error("{field}: unknown value {value}")]
    UnknownEnumValue {
        /// The field, as `Message.field`.
        field: &'static str,
        /// The number found.
        value: i32,
    },
    /// A timestamp outside what `google.protobuf.Timestamp` allows: nanoseconds must be in
    /// `0..1_000_000_000`.
    #[error("{field}: invalid timestamp {seconds} s + {nanos} ns (nanos must be 0..1e9)")]
    InvalidTimestamp {
        /// The field, as `Message.field`.
        field: &'static str,
        /// The seconds found.
        seconds: i64,
        /// The nanoseconds found.
        nanos: i32,
    },
    /// A number that refers to an action id or a list index is negative.
    #[error("{field}: {value} is negative")]
    Negative {
        /// The field, as `Message.field`.
        field: &'static str,
        /// The number found.
        value: i32,
    },
    /// A failure property that does not cross between a `google.protobuf.Value` and JSON text:
    /// text that is not JSON, or a number JSON cannot hold (NaN, infinity).
    #[error("TaskFailureDetails.properties[{key:?}]: {reason}")]
    InvalidProperty {
        /// The property's key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// An item of a repeated field is malformed.
    #[error("{list}[{index}]: {inner}")]
    InList {
        /// The repeated field, as `Message.field`.
        list: &'static str,
        /// The item's position.
        index: usize,
        /// What is wrong with it.
        inner: Box<Error>,
    },
}
