//! Failure details: what went wrong in an activity, a sub-orchestration or an orchestration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A failure with its type, message, optional stack trace and the failure that caused it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// The kind of error, for example an exception's type name.
    pub error_type: String,
    /// A human-readable message.
    pub error_message: String,
    /// Where it happened, when the worker supplied it.
    pub stack_trace: Option<String>,
    /// The failure that caused this one.
    pub inner_failure: Option<Box<FailureDetails>>,
    /// Whether retry policies should give up immediately.
    pub is_non_retriable: bool,
    /// Extra properties; each value is JSON text.
    pub properties: BTreeMap<String, String>,
}

impl FailureDetails {
    /// A failure with just a type and a message.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        FailureDetails {
            error_type: error_type.into(),
            error_message: error_message.into(),
            ..FailureDetails::default()
        }
    }

    /// The same failure, caused by `inner`.
    pub fn caused_by(mut self, inner: FailureDetails) -> Self {
        self.inner_failure = Some(Box::new(inner));
        self
    }
}
