//! Conversions between the generated wire types ([`crate::pb`]) and `netherite_core::model`.
//!
//! The model follows the protocol field for field, so most conversions are one to one. Three
//! rules shape the rest:
//!
//! - **Wire to model checks, model to wire trusts.** A message from a worker or a client may
//!   break the protocol's rules: a history event or an action with no kind, a status number
//!   the protocol does not define, a timestamp whose nanoseconds are out of range, a negative
//!   id where an action id or a list index is meant, a required message left unset. Each is an
//!   [`Error`] naming the field, never a panic. The way out only fails where the model can
//!   hold what the wire cannot: failure properties that are not JSON text.
//! - **Presence is kept.** `google.protobuf.StringValue` arrives as `Option<String>`, and so
//!   do the model's payloads: no input and an empty input stay different in both directions.
//! - **Timestamps are exact.** Seconds and nanoseconds are copied, not rounded through
//!   milliseconds, because workers compare a timer's `fireAt` with the one they created.
//!
//! Conversions are `TryFrom`/`From` impls on the generated types, plus free functions where
//! both sides are foreign (timestamps, statuses, repeated fields):
//!
//! ```
//! use netherite_core::model::{EventKind, EventRaised, HistoryEvent};
//! use netherite_core::Timestamp;
//! use netherite_server::pb;
//!
//! let event = HistoryEvent::new(
//!     Timestamp::new(1_700_000_000, 5),
//!     EventKind::EventRaised(EventRaised { name: "approve".into(), input: Some("".into()) }),
//! );
//! let wire = pb::HistoryEvent::try_from(event.clone())?;
//! assert_eq!(HistoryEvent::try_from(wire)?, event);
//!
//! let empty = pb::HistoryEvent { event_id: -1, timestamp: None, event_type: None };
//! assert!(HistoryEvent::try_from(empty).is_err());
//! # Ok::<(), netherite_server::Error>(())
//! ```

mod action;
mod batch;
mod common;
mod entity;
mod failure;
mod history;
mod view;

#[cfg(test)]
mod tests;

use netherite_core::Timestamp;
use netherite_core::model::OrchestrationStatus;

pub use self::common::{instance_from_wire, instance_to_wire};
use crate::{Error, pb};

/// Nanoseconds in a second: the exclusive upper bound of a timestamp's nanos.
const NANOS_PER_SEC: i32 = 1_000_000_000;

/// Converts every item of a repeated field, reporting a bad item with its index in `list`.
///
/// Works in both directions, for any pair with a `TryFrom` impl in this module:
///
/// ```
/// use netherite_core::model::HistoryEvent;
/// use netherite_server::{convert, pb};
///
/// let wire = vec![pb::HistoryEvent { event_id: -1, timestamp: None, event_type: None }];
/// let err = convert::all::<_, HistoryEvent>("OrchestratorRequest.newEvents", wire).unwrap_err();
/// assert!(err.to_string().starts_with("OrchestratorRequest.newEvents[0]:"));
/// ```
pub fn all<A, B>(list: &'static str, items: Vec<A>) -> Result<Vec<B>, Error>
where
    B: TryFrom<A, Error = Error>,
{
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            B::try_from(item).map_err(|inner| Error::InList {
                list,
                index,
                inner: Box::new(inner),
            })
        })
        .collect()
}

/// A model timestamp on the wire, seconds and nanoseconds as they are.
///
/// Nanoseconds past a second (possible only in a hand-built [`Timestamp`]) carry into the
/// seconds, so the result is always a valid `google.protobuf.Timestamp`.
pub fn timestamp_to_wire(t: Timestamp) -> prost_types::Timestamp {
    let t = Timestamp::new(t.secs, t.nanos);
    prost_types::Timestamp {
        seconds: t.secs,
        nanos: i32::try_from(t.nanos).expect("normalized nanos are below one billion"),
    }
}

/// A wire timestamp in the model; nanoseconds outside `0..1e9` are an error naming `field`.
pub fn timestamp_from_wire(
    t: prost_types::Timestamp,
    field: &'static str,
) -> Result<Timestamp, Error> {
    let invalid = || Error::InvalidTimestamp {
        field,
        seconds: t.seconds,
        nanos: t.nanos,
    };
    if !(0..NANOS_PER_SEC).contains(&t.nanos) {
        return Err(invalid());
    }
    let nanos = u32::try_from(t.nanos).map_err(|_| invalid())?;
    Ok(Timestamp {
        secs: t.seconds,
        nanos,
    })
}

/// A status number from the wire; a number the protocol does not define is an error.
pub fn status_from_wire(value: i32, field: &'static str) -> Result<OrchestrationStatus, Error> {
    OrchestrationStatus::from_i32(value).ok_or(Error::UnknownEnumValue { field, value })
}

/// A status as the wire's enum number.
pub fn status_to_wire(status: OrchestrationStatus) -> i32 {
    pb::OrchestrationStatus::from(status) as i32
}

impl From<OrchestrationStatus> for pb::OrchestrationStatus {
    fn from(status: OrchestrationStatus) -> Self {
        use OrchestrationStatus as S;
        match status {
            S::Running => Self::Running,
            S::Completed => Self::Completed,
            S::ContinuedAsNew => Self::ContinuedAsNew,
            S::Failed => Self::Failed,
            S::Canceled => Self::Canceled,
            S::Terminated => Self::Terminated,
            S::Pending => Self::Pending,
            S::Suspended => Self::Suspended,
        }
    }
}

impl From<pb::OrchestrationStatus> for OrchestrationStatus {
    fn from(status: pb::OrchestrationStatus) -> Self {
        use pb::OrchestrationStatus as S;
        match status {
            S::Running => Self::Running,
            S::Completed => Self::Completed,
            S::ContinuedAsNew => Self::ContinuedAsNew,
            S::Failed => Self::Failed,
            S::Canceled => Self::Canceled,
            S::Terminated => Self::Terminated,
            S::Pending => Self::Pending,
            S::Suspended => Self::Suspended,
        }
    }
}

/// A required timestamp: unset is [`Error::Missing`], a bad one [`Error::InvalidTimestamp`].
fn required_time(
    t: Option<prost_types::Timestamp>,
    field: &'static str,
) -> Result<Timestamp, Error> {
    let t = t.ok_or(Error::Missing { field })?;
    timestamp_from_wire(t, field)
}

/// An optional timestamp: unset stays `None`, a bad one is [`Error::InvalidTimestamp`].
fn optional_time(
    t: Option<prost_types::Timestamp>,
    field: &'static str,
) -> Result<Option<Timestamp>, Error> {
    t.map(|t| timestamp_from_wire(t, field)).transpose()
}

/// A number that names an action or a list position: negative is an error.
fn non_negative(value: i32, field: &'static str) -> Result<i32, Error> {
    if value < 0 {
        return Err(Error::Negative { field, value });
    }
    Ok(value)
}
