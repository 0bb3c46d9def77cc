//! What travels through a [`Transport`](netherite_core::transport::Transport): the payloads of
//! partition inputs and of client response queues.
//!
//! Both are framed by `netherite_core::codec` (version, kind tag, checksums), so a corrupt or
//! unknown payload is a typed error naming the queue and position, never a panic. The input
//! position is not part of the payload: the transport assigns it, and [`InputMessage::into_update`]
//! stamps it on the update event so the partition records where to resume.

use netherite_core::codec::{self, Record};
use netherite_core::ids::{ClientId, CommitPosition, InputPosition, PartitionId, RequestSeq};
use netherite_core::model::TaskMessage;
use netherite_core::partition::{
    ClientRequest, ClientRequestEvent, ClientResponse, PartitionMessages, UpdateKind,
};
use serde::{Deserialize, Serialize};

/// A payload of a partition's input stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputMessage {
    /// Messages from another partition's outbox, stamped for deduplication.
    Partition {
        /// The sending partition.
        origin: PartitionId,
        /// The commit position of the event that produced them at the origin.
        origin_position: CommitPosition,
        /// Which batch of that event (an event may send several).
        sub_position: u32,
        /// The messages.
        messages: Vec<TaskMessage>,
    },
    /// A request from a client, deduplicated by (client, seq).
    Client {
        /// The client.
        client: ClientId,
        /// The client's sequence number for this request.
        seq: RequestSeq,
        /// The request (boxed: it is much larger than a partition batch's header).
        request: Box<ClientRequest>,
    },
}

impl InputMessage {
    /// The update this input becomes once read at `position`; `next` is the position after it.
    pub fn into_update(self, next: InputPosition) -> UpdateKind {
        match self {
            InputMessage::Partition {
                origin,
                origin_position,
                sub_position,
                messages,
            } => UpdateKind::PartitionMessages(PartitionMessages {
                input: next,
                origin,
                origin_position,
                sub_position,
                messages,
            }),
            InputMessage::Client {
                client,
                seq,
                request,
            } => UpdateKind::ClientRequest(ClientRequestEvent {
                input: next,
                client,
                seq,
                request: *request,
            }),
        }
    }
}

impl Record for InputMessage {
    fn kind(&self) -> u32 {
        match self {
            InputMessage::Partition { .. } => 1,
            InputMessage::Client { .. } => 2,
        }
    }

    fn is_known_kind(kind: u32) -> bool {
        (1..=2).contains(&kind)
    }
}

/// A payload of a client's response queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessage {
    /// The request this answers.
    pub seq: RequestSeq,
    /// The answer.
    pub response: ClientResponse,
}

impl Record for ClientMessage {
    fn kind(&self) -> u32 {
        1
    }

    fn is_known_kind(kind: u32) -> bool {
        kind == 1
    }
}

/// Encodes a payload for the transport.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>, netherite_core::Error> {
    codec::encode(record)
}

/// Decodes a payload read from `queue` at `position`; the whole payload must be one record.
pub fn decode<R: Record>(
    payload: &[u8],
    queue: &str,
    position: InputPosition,
) -> Result<R, netherite_core::Error> {
    let (record, used) = codec::decode::<R>(payload, queue, position.0)?;
    if used != payload.len() {
        return Err(netherite_core::Error::Malformed {
            source_name: queue.to_string(),
            offset: position.0,
            reason: format!("{} trailing bytes after the record", payload.len() - used),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use netherite_core::partition::WaitFor;
    use netherite_core::partition::WaitUntil;

    use super::*;

    fn request() -> InputMessage {
        let wait = WaitFor {
            instance: netherite_core::InstanceId::new("a"),
            until: WaitUntil::Completion,
            deadline: None,
            payloads: true,
        };
        InputMessage::Client {
            client: ClientId(7),
            seq: RequestSeq(3),
            request: Box::new(ClientRequest::WaitFor(wait)),
        }
    }

    /// An input payload survives the trip and becomes an update stamped with its position.
    #[test]
    fn input_round_trips_and_is_stamped() {
        let bytes = encode(&request()).expect("encodes");
        let back: InputMessage = decode(&bytes, "p00", InputPosition(5)).expect("decodes");
        match back.into_update(InputPosition(6)) {
            UpdateKind::ClientRequest(event) => assert_eq!(event.input, InputPosition(6)),
            other => panic!("unexpected update {other:?}"),
        }
    }

    /// A flipped byte is a typed error naming the queue and position; so are trailing bytes.
    #[test]
    fn corrupt_payloads_are_typed_errors() {
        let mut bytes = encode(&request()).expect("encodes");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let error = decode::<InputMessage>(&bytes, "p03", InputPosition(9)).unwrap_err();
        assert!(error.to_string().contains("p03"), "{error}");

        let mut long = encode(&request()).expect("encodes");
        long.push(0);
        let error = decode::<InputMessage>(&long, "p03", InputPosition(9)).unwrap_err();
        assert!(
            matches!(error, netherite_core::Error::Malformed { offset: 9, .. }),
            "{error}"
        );
    }
}
