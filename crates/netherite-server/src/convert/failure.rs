//! Failure details, and their properties: `google.protobuf.Value` on the wire, JSON text in the
//! model.
//!
//! A `Value` is JSON's data model (null, bool, number, string, list, object), so each property
//! becomes the compact JSON text of its value and back. Two limits come from the wire, not from
//! us: a `Value` number is a double, so JSON integers beyond 2^53 lose precision on the way
//! out, and NaN and the infinities, which a double holds but JSON does not, are refused on the
//! way in. Text is normalized on the way out and back (`1.50` returns as `1.5`); a `Value`
//! returns exactly as it came.

use netherite_core::model::FailureDetails;
use prost_types::value::Kind;
use serde_json::Value as Json;

use crate::{Error, pb};

impl TryFrom<pb::TaskFailureDetails> for FailureDetails {
    type Error = Error;

    fn try_from(wire: pb::TaskFailureDetails) -> Result<Self, Error> {
        let inner_failure = match wire.inner_failure {
            Some(inner) => Some(Box::new(FailureDetails::try_from(*inner)?)),
            None => None,
        };
        let properties = wire
            .properties
            .into_iter()
            .map(|(key, value)| match value_to_json_text(value) {
                Ok(text) => Ok((key, text)),
                Err(reason) => Err(Error::InvalidProperty { key, reason }),
            })
            .collect::<Result<_, Error>>()?;

        Ok(FailureDetails {
            error_type: wire.error_type,
            error_message: wire.error_message,
            stack_trace: wire.stack_trace,
            inner_failure,
            is_non_retriable: wire.is_non_retriable,
            properties,
        })
    }
}

impl TryFrom<FailureDetails> for pb::TaskFailureDetails {
    type Error = Error;

    fn try_from(failure: FailureDetails) -> Result<Self, Error> {
        let inner_failure = match failure.inner_failure {
            Some(inner) => Some(Box::new(pb::TaskFailureDetails::try_from(*inner)?)),
            None => None,
        };
        let properties = failure
            .properties
            .into_iter()
            .map(|(key, text)| match json_text_to_value(&text) {
                Ok(value) => Ok((key, value)),
                Err(reason) => Err(Error::InvalidProperty { key, reason }),
            })
            .collect::<Result<_, Error>>()?;

        Ok(pb::TaskFailureDetails {
            error_type: failure.error_type,
            error_message: failure.error_message,
            stack_trace: failure.stack_trace,
            inner_failure,
            is_non_retriable: failure.is_non_retriable,
            properties,
        })
    }
}

/// A failure the model requires: unset on the wire is [`Error::Missing`].
pub(super) fn required_failure(
    wire: Option<pb::TaskFailureDetails>,
    field: &'static str,
) -> Result<FailureDetails, Error> {
    FailureDetails::try_from(wire.ok_or(Error::Missing { field })?)
}

/// A failure that may be absent.
pub(super) fn optional_failure(
    wire: Option<pb::TaskFailureDetails>,
) -> Result<Option<FailureDetails>, Error> {
    wire.map(FailureDetails::try_from).transpose()
}

/// A failure that may be absent, on its way out.
pub(super) fn optional_failure_to_wire(
    failure: Option<FailureDetails>,
) -> Result<Option<pb::TaskFailureDetails>, Error> {
    failure.map(pb::TaskFailureDetails::try_from).transpose()
}

/// The compact JSON text of a `Value`; a value with no kind, or a number JSON cannot write,
/// is refused with the reason.
pub(super) fn value_to_json_text(value: prost_types::Value) -> Result<String, String> {
    let json = value_to_json(value)?;
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

/// The `Value` that JSON text denotes; text that is not JSON is refused with the reason.
pub(super) fn json_text_to_value(text: &str) -> Result<prost_types::Value, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("not JSON text: {e}"))?;
    json_to_value(json)
}

fn value_to_json(value: prost_types::Value) -> Result<Json, String> {
    match value.kind.ok_or("the value has no kind")? {
        Kind::NullValue(_) => Ok(Json::Null),
        Kind::BoolValue(b) => Ok(Json::Bool(b)),
        Kind::NumberValue(n) => number_to_json(n),
        Kind::StringValue(s) => Ok(Json::String(s)),
        Kind::ListValue(list) => list
            .values
            .into_iter()
            .map(value_to_json)
            .collect::<Result<_, _>>()
            .map(Json::Array),
        Kind::StructValue(object) => object
            .fields
            .into_iter()
            .map(|(k, v)| Ok((k, value_to_json(v)?)))
            .collect::<Result<_, String>>()
            .map(Json::Object),
    }
}

/// A double as a JSON number: whole numbers that a double holds exactly are written as
/// integers (`5`, not `5.0`), as JSON writers commonly do, so integer text survives the trip
/// through a `Value`. Negative zero keeps its sign as `-0.0`.
fn number_to_json(n: f64) -> Result<Json, String> {
    const EXACT_INTEGER_MAX: f64 = 9_007_199_254_740_992.0; // 2^53
    let negative_zero = n == 0.0 && n.is_sign_negative();
    if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER_MAX && !negative_zero {
        // The guard makes the cast exact: a whole number of at most 2^53 fits an i64.
        return Ok(Json::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(Json::Number)
        .ok_or_else(|| format!("{n} is not a JSON number"))
}

fn json_to_value(json: Json) -> Result<prost_types::Value, String> {
    let kind = match json {
        Json::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(
            n.as_f64()
                .ok_or_else(|| format!("{n} does not fit a double"))?,
        ),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items
                .into_iter()
                .map(json_to_value)
                .collect::<Result<_, _>>()?,
        }),
        Json::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .into_iter()
                .map(|(k, v)| Ok((k, json_to_value(v)?)))
                .collect::<Result<_, String>>()?,
        }),
    };
    Ok(prost_types::Value { kind: Some(kind) })
}
