//! Tests of the conversions: round trips through encoded bytes for every kind, presence and
//! exact timestamps, a typed error for each malformed shape, and the client views.

mod malformed;
mod round_trip;
mod strategies;
mod views;

use std::fmt::Debug;

use prost::Message;

use crate::Error;

/// Model to wire, through encoded bytes, and back to the model. Along the way, checks that the
/// bytes decode to the very message that was encoded.
fn through_wire<M, W>(model: M) -> M
where
    W: Message + Default + PartialEq + Debug + TryFrom<M, Error = Error>,
    M: TryFrom<W, Error = Error>,
{
    let wire = W::try_from(model).expect("model values convert to the wire");
    let decoded = W::decode(wire.encode_to_vec().as_slice()).expect("our encoding decodes");
    assert_eq!(decoded, wire);
    M::try_from(decoded).expect("wire made from the model converts back")
}
