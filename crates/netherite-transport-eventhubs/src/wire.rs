//! The body of every event this transport sends: a small header, then the payload.
//!
//! ```text
//!  byte  0       format version (1)
//!  byte  1       kind: 0 payload, 1 stored-aside reference, 2 a client's response
//!  bytes 2..10   send tag: a random number the sender drew for one send call (big-endian)
//!  bytes 10..14  the event's index within that send (big-endian)
//!  bytes 14..30  kind 2 only: the client's id (big-endian)
//!  the rest      the payload, or the encoded reference
//! ```
//!
//! The tag is how a sender finds its own events when it has to read the partition back to
//! learn their sequence numbers (see `resolve`); readers ignore it. The kind tells a payload
//! from a reference to a blob. A body that does not decode (another program writing to the
//! event hub, or a newer format) is skipped by readers with a warning: it is not ours to
//! deliver, and failing the stream on it would stop the partition for good.

use netherite_core::ClientId;

use crate::aside::Reference;

/// The format version this build writes and reads.
const VERSION: u8 = 1;
const KIND_PAYLOAD: u8 = 0;
const KIND_ASIDE: u8 = 1;
const KIND_RESPONSE: u8 = 2;
/// The bytes before the payload of kinds 0 and 1.
pub(crate) const HEADER_BYTES: usize = 14;
/// The bytes before the payload of a response.
pub(crate) const RESPONSE_HEADER_BYTES: usize = HEADER_BYTES + 16;

/// Which send an event came from, and where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tag {
    /// The sender's random number for the send call.
    pub(crate) send: u64,
    /// The event's index within the send.
    pub(crate) index: u32,
}

/// What an event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// A partition input's payload, inline.
    Payload(Vec<u8>),
    /// A partition input's payload, stored aside in a blob.
    Aside(Reference),
    /// A response for one client.
    Response {
        /// The client it is for.
        client: ClientId,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// One decoded event body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The send it came from.
    pub(crate) tag: Tag,
    /// What it carries.
    pub(crate) body: Body,
}

/// Why a body is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// Shorter than a header.
    Short(usize),
    /// A format version this build does not know.
    Version(u8),
    /// A kind this build does not know.
    Kind(u8),
    /// A reference that does not decode.
    Reference(String),
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Foreign::Short(n) => write!(f, "a body of {n} bytes is shorter than a header"),
            Foreign::Version(v) => write!(f, "unknown format version {v}"),
            Foreign::Kind(k) => write!(f, "unknown kind {k}"),
            Foreign::Reference(why) => write!(f, "a damaged stored-aside reference: {why}"),
        }
    }
}

impl Frame {
    /// The bytes of this frame.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, client, rest) = match &self.body {
            Body::Payload(payload) => (KIND_PAYLOAD, None, payload.clone()),
            Body::Aside(reference) => (KIND_ASIDE, None, reference.encode()),
            Body::Response { client, payload } => (KIND_RESPONSE, Some(*client), payload.clone()),
        };
        let mut bytes = Vec::with_capacity(RESPONSE_HEADER_BYTES + rest.len());
        bytes.extend_from_slice(&[VERSION, kind]);
        bytes.extend_from_slice(&self.tag.send.to_be_bytes());
        bytes.extend_from_slice(&self.tag.index.to_be_bytes());
        if let Some(client) = client {
            bytes.extend_from_slice(&client.0.to_be_bytes());
        }
        bytes.extend_from_slice(&rest);
        bytes
    }

    /// The frame in `bytes`, or why they are not one of ours.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Frame, Foreign> {
        let short = || Foreign::Short(bytes.len());
        let (&[version, kind], rest) = bytes.split_first_chunk::<2>().ok_or_else(short)?;
        let (send, rest) = rest.split_first_chunk::<8>().ok_or_else(short)?;
        let (index, rest) = rest.split_first_chunk::<4>().ok_or_else(short)?;
        if version != VERSION {
            return Err(Foreign::Version(version));
        }
        let tag = Tag {
            send: u64::from_be_bytes(*send),
            index: u32::from_be_bytes(*index),
        };
        let body = match kind {
            KIND_PAYLOAD => Body::Payload(rest.to_vec()),
            KIND_ASIDE => Body::Aside(Reference::decode(rest).map_err(Foreign::Reference)?),
            KIND_RESPONSE => {
                let (client, payload) = rest.split_first_chunk::<16>().ok_or_else(short)?;
                Body::Response {
                    client: ClientId(u128::from_be_bytes(*client)),
                    payload: payload.to_vec(),
                }
            }
            kind => return Err(Foreign::Kind(kind)),
        };
        Ok(Frame { tag, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(send: u64, index: u32) -> Tag {
        Tag { send, index }
    }

    /// Every kind of body comes back as it was written, tag included.
    #[test]
    fn frames_round_trip() {
        let reference = Reference {
            blob: "aside/p0003/1700000000000-00000000000000ff".into(),
            entry: 1,
            entries: 3,
            offset: 10,
            length: 2_000_000,
        };
        let frames = [
            Frame {
                tag: tag(7, 0),
                body: Body::Payload(b"hello".to_vec()),
            },
            Frame {
                tag: tag(u64::MAX, 2),
                body: Body::Aside(reference),
            },
            Frame {
                tag: tag(1, u32::MAX),
                body: Body::Response {
                    client: ClientId(u128::MAX - 5),
                    payload: Vec::new(),
                },
            },
        ];
        for frame in frames {
            assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }
    }

    /// Bodies that are not ours are named for what is wrong with them, and never panic.
    #[test]
    fn foreign_bodies_are_refused() {
        let payload = Frame {
            tag: tag(1, 1),
            body: Body::Payload(b"x".to_vec()),
        }
        .encode();
        assert_eq!(Frame::decode(b"hi"), Err(Foreign::Short(2)));
        let mut newer = payload.clone();
        newer[0] = 9;
        assert_eq!(Frame::decode(&newer), Err(Foreign::Version(9)));
        let mut odd = payload.clone();
        odd[1] = 7;
        assert_eq!(Frame::decode(&odd), Err(Foreign::Kind(7)));
        let mut cut_response = payload;
        cut_response[1] = KIND_RESPONSE;
        assert!(matches!(
            Frame::decode(&cut_response),
            Err(Foreign::Short(_))
        ));
        let mut bad_reference = cut_response.clone();
        bad_reference[1] = KIND_ASIDE;
        assert!(matches!(
            Frame::decode(&bad_reference),
            Err(Foreign::Reference(_))
        ));
    }
}
