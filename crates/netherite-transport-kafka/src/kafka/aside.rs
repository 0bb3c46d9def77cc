//! Payloads larger than one Kafka record, stored aside.
//!
//! A payload over `message_bytes_max` is cut into records of at most that size, each keyed by
//! one random id and its piece number, and written to the same Kafka partition of the topic
//! `H.aside`; the input queue then gets a small reference record instead, keyed
//! [`REFERENCE_KEY`], naming where the pieces start, how many there are and the id. A reader
//! that meets a reference reads the pieces back from there (skipping other payloads' pieces,
//! which may interleave, and second copies of a piece that a retry appended again) and yields
//! the whole payload at the reference's position, so positions and order are those of the
//! input queue, and resuming at any position works as for small payloads.
//!
//! The pieces are written and acknowledged before the reference is, so a reference never
//! points at pieces that are not durable. Pieces whose reference was never written (a crash
//! in between) are garbage that the topic's retention removes.

use std::time::Duration;

use netherite_core::Error;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::options::KafkaOptions;
use super::{enqueue, io, send_error};

/// The key of a reference record in an input queue.
pub(crate) const REFERENCE_KEY: &[u8] = b"netherite.aside";
/// The bytes of an encoded reference: first offset, piece count, id, total length.
const REFERENCE_BYTES: usize = 8 + 4 + 8 + 8;
/// How long reading the pieces of one payload may take.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// The most pieces one payload is cut into; a larger payload is refused with
/// `LimitExceeded` naming `aside_pieces_max`.
pub(crate) const PIECES_MAX: usize = 256;

/// Where a stored-aside payload's pieces are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    first: i64,
    pieces: u32,
    id: u64,
    length: u64,
}

impl Reference {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(REFERENCE_BYTES);
        bytes.extend_from_slice(&self.first.to_be_bytes());
        bytes.extend_from_slice(&self.pieces.to_be_bytes());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&self.length.to_be_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Reference, Error> {
        let bad = || Error::Io {
            operation: "subscribe",
            reason: format!(
                "a stored-aside reference of {} bytes is damaged",
                bytes.len()
            ),
        };
        if bytes.len() != REFERENCE_BYTES {
            return Err(bad());
        }
        let field = |range: std::ops::Range<usize>| bytes.get(range).ok_or_else(bad);
        let first = i64::from_be_bytes(field(0..8)?.try_into().map_err(|_| bad())?);
        let pieces = u32::from_be_bytes(field(8..12)?.try_into().map_err(|_| bad())?);
        let id = u64::from_be_bytes(field(12..20)?.try_into().map_err(|_| bad())?);
        let length = u64::from_be_bytes(field(20..28)?.try_into().map_err(|_| bad())?);
        Ok(Reference {
            first,
            pieces,
            id,
            length,
        })
    }
}

/// Writes `payload` in pieces to `topic`'s partition `partition` and returns the reference.
pub(crate) async fn store(
    producer: &FutureProducer,
    options: &KafkaOptions,
    (topic, partition): (&str, i32),
    payload: &[u8],
) -> Result<Reference, Error> {
    let size = options.message_bytes_max.max(1);
    let pieces: Vec<&[u8]> = payload.chunks(size).collect();
    if pieces.len() > PIECES_MAX {
        return Err(Error::LimitExceeded {
            limit: "aside_pieces_max",
            actual: pieces.len() as u64,
            max: PIECES_MAX as u64,
        });
    }
    let id = random_id();
    let keys: Vec<[u8; 12]> = (0..pieces.len()).map(|i| piece_key(id, i)).collect();
    let mut deliveries = Vec::with_capacity(pieces.len());
    for (piece, key) in pieces.iter().zip(&keys) {
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(&key[..])
            .payload(*piece);
        deliveries.push(enqueue(producer, record, options.send_timeout).await);
    }
    let mut first = None;
    for delivery in deliveries {
        let done = delivery
            .await
            .map_err(|e| send_error(&e, options.message_bytes_max))?;
        first.get_or_insert(done.offset);
    }
    Ok(Reference {
        first: first.unwrap_or_default(),
        pieces: u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        id,
        length: payload.len() as u64,
    })
}

/// The key of piece `index` of payload `id`.
fn piece_key(id: u64, index: usize) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&id.to_be_bytes());
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Reads back the payload `reference` names from `topic`'s partition `partition`.
pub(crate) async fn fetch(
    options: &KafkaOptions,
    (topic, partition): (&str, i32),
    reference: Reference,
) -> Result<Vec<u8>, Error> {
    let consumer: StreamConsumer = options
        .client_config()
        // librdkafka wants a group even for assigned partitions; nothing is ever committed.
        .set("group.id", format!("{}.readers", options.hub))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .map_err(|e| io("creating a consumer", &e))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(reference.first))
        .map_err(|e| io("assigning a partition", &e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| io("assigning a partition", &e))?;
    let reading = collect(&consumer, reference);
    match tokio::time::timeout(FETCH_WAIT_MAX, reading).await {
        Ok(read) => read,
        Err(_) => Err(Error::Io {
            operation: "subscribe",
            reason: format!(
                "the pieces of a stored-aside payload did not arrive in {FETCH_WAIT_MAX:?}"
            ),
        }),
    }
}

async fn collect(consumer: &StreamConsumer, reference: Reference) -> Result<Vec<u8>, Error> {
    let count = usize::try_from(reference.pieces).unwrap_or(usize::MAX);
    if count == 0 || count > PIECES_MAX {
        return Err(damaged(format!("a reference names {count} pieces")));
    }
    let mut pieces: Vec<Option<Vec<u8>>> = vec![None; count];
    let mut found = 0;
    while found < count {
        let message = consumer.recv().await.map_err(|e| fetch_error(&e))?;
        let Some(index) = message.key().and_then(|key| piece_index(key, reference.id)) else {
            continue;
        };
        let slot = pieces
            .get_mut(index)
            .ok_or_else(|| damaged(format!("piece {index}")))?;
        if slot.is_none() {
            *slot = Some(message.payload().unwrap_or_default().to_vec());
            found += 1;
        }
    }
    let payload: Vec<u8> = pieces.into_iter().flatten().flatten().collect();
    if payload.len() as u64 != reference.length {
        return Err(damaged(format!(
            "a stored-aside payload came back with {} of its {} bytes",
            payload.len(),
            reference.length
        )));
    }
    Ok(payload)
}

/// The piece number a key gives for payload `id`, if it is one of its pieces.
fn piece_index(key: &[u8], id: u64) -> Option<usize> {
    let (head, tail) = key.split_at_checked(8)?;
    if head != id.to_be_bytes() {
        return None;
    }
    let index = u32::from_be_bytes(tail.try_into().ok()?);
    usize::try_from(index).ok()
}

fn damaged(reason: String) -> Error {
    Error::Io {
        operation: "subscribe",
        reason: format!("stored-aside payload: {reason}"),
    }
}

/// Pieces that retention already removed are gone for good (`InvalidArgument`, as for a
/// position below the retention); other failures may pass.
fn fetch_error(error: &rdkafka::error::KafkaError) -> Error {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let code = error.rdkafka_error_code();
    if matches!(code, Some(Code::OffsetOutOfRange | Code::AutoOffsetReset)) {
        return Error::InvalidArgument {
            operation: "subscribe",
            reason: format!("the pieces of a stored-aside payload are gone: {error}"),
        };
    }
    io("reading a stored-aside payload", error)
}

/// An id for one payload's pieces: a keyed hash (random keys per call) of a process-wide
/// counter and the clock, unique enough among the pieces that can interleave in a partition.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((n, std::time::SystemTime::now()))
}
