//! JSON payloads and failures: how typed values and errors cross into the model's `Payload` and
//! `FailureDetails`.
//!
//! Payloads are JSON text, the same encoding the Durable Task gRPC SDKs use, so an instance
//! started through one front door can be read through the other. An absent payload decodes as
//! JSON `null`, so `()` and `Option<T>` inputs accept "no input".

use std::any::Any;
use std::fmt::Display;

use netherite_core::model::{FailureDetails, Payload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ActivityError, TaskError};
use crate::Error;

/// The `error_type` of a failure whose payload did not deserialize into the expected type.
pub const DESERIALIZATION_ERROR: &str = "DeserializationError";
/// The `error_type` of a failure whose value did not serialize to JSON.
pub const SERIALIZATION_ERROR: &str = "SerializationError";
/// The `error_type` of a failure caused by a panic in user code.
pub const PANIC: &str = "Panic";
/// The `error_type` of a failure caused by a task failure the orchestration did not handle.
pub const TASK_FAILED: &str = "TaskFailed";

/// Serializes `value` as a JSON payload.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Payload, Error> {
    serde_json::to_string(value)
        .map(Some)
        .map_err(|error| Error::Serialize {
            what: what.to_string(),
            reason: error.to_string(),
        })
}

/// Deserializes a JSON payload; `None` reads as `null`.
pub(crate) fn decode<T: DeserializeOwned>(
    payload: &Payload,
    what: &str,
) -> Result<T, FailureDetails> {
    let text = payload.as_deref().unwrap_or("null");
    serde_json::from_str(text).map_err(|error| {
        let message = format!("{what} does not deserialize: {error}");
        FailureDetails::new(DESERIALIZATION_ERROR, message)
    })
}

/// The failure that a serialization error becomes when it ends a task or an orchestration.
pub(crate) fn serialization_failure(error: &Error) -> FailureDetails {
    let mut failure = FailureDetails::new(SERIALIZATION_ERROR, error.to_string());
    failure.is_non_retriable = true;
    failure
}

/// The failure an error returned by user code becomes.
///
/// An [`ActivityError`] keeps the details it was built with, a [`TaskError`] (a task failure
/// passed on with `?`) becomes a `TaskFailed` caused by the task's failure, and any other error
/// is described by its type name and its `Display` text.
pub(crate) fn failure_of<E: Display + 'static>(error: &E) -> FailureDetails {
    let any: &dyn Any = error;
    if let Some(activity_error) = any.downcast_ref::<ActivityError>() {
        return activity_error.details().clone();
    }
    if let Some(task_error) = any.downcast_ref::<TaskError>() {
        return FailureDetails::new(TASK_FAILED, task_error.to_string())
            .caused_by(task_error.failure.clone());
    }
    FailureDetails::new(std::any::type_name::<E>(), error.to_string())
}

/// The failure a caught panic becomes; `who` names the code that panicked.
pub(crate) fn panic_failure(who: &str, panic: &(dyn Any + Send)) -> FailureDetails {
    let message = if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    };
    FailureDetails::new(PANIC, format!("{who} panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Absent payloads read as `null`, so optional and unit inputs need no payload at all.
    #[test]
    fn absent_payload_decodes_as_null() {
        assert_eq!(decode::<Option<u32>>(&None, "input"), Ok(None));
        assert_eq!(decode::<()>(&None, "input"), Ok(()));
        assert_eq!(decode::<u32>(&Some("7".into()), "input"), Ok(7));
    }

    /// A payload of the wrong shape is a failure that names what was decoded and why.
    #[test]
    fn mismatched_payload_names_the_value_and_serde_reason() {
        let failure = decode::<u32>(&Some("\"x\"".into()), "input of 'A'").unwrap_err();
        assert_eq!(failure.error_type, DESERIALIZATION_ERROR);
        assert!(
            failure
                .error_message
                .starts_with("input of 'A' does not deserialize: ")
        );
        assert!(failure.error_message.contains("invalid type: string \"x\""));
    }

    /// Maps with non-string keys have no JSON form; that is an error, not a panic.
    #[test]
    fn unserializable_value_is_an_error() {
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        let error = encode(&map, "the input").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot serialize the input: ")
        );
    }

    /// Errors keep their details: activity errors verbatim, task errors as the cause.
    #[test]
    fn failures_of_user_errors_keep_their_details() {
        let plain = failure_of(&"boom".to_string());
        assert_eq!(plain.error_type, "alloc::string::String");
        assert_eq!(plain.error_message, "boom");

        let custom = ActivityError::with_type("Overdrawn", "balance too low").non_retriable();
        assert_eq!(failure_of(&custom), *custom.details());

        let task = TaskError::new("activity 'Pay' (action 2)", FailureDetails::new("X", "no"));
        let passed_on = failure_of(&task);
        assert_eq!(passed_on.error_type, TASK_FAILED);
        assert_eq!(
            passed_on.error_message,
            "activity 'Pay' (action 2) failed: no"
        );
        assert_eq!(passed_on.inner_failure.as_deref(), Some(&task.failure));
    }

    /// A panic's message is kept whether it was a literal or a formatted string.
    #[test]
    fn panic_messages_are_kept() {
        let literal = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(
            panic_failure("it", &*literal).error_message,
            "it panicked: plain"
        );
        let formatted = std::panic::catch_unwind(|| panic!("n = {}", 3)).unwrap_err();
        assert_eq!(
            panic_failure("it", &*formatted).error_message,
            "it panicked: n = 3"
        );
    }
}
