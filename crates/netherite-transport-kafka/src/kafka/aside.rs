//! Payloads larger than one Kafka record, stored aside.
//!
//! A payload over `message_bytes_max` is cut into records of at most that size, all keyed by
//! one random id, and written in order to the same Kafka partition of the topic `H.aside`; the
//! input queue then gets a small reference record instead, keyed [`REFERENCE_KEY`], naming
//! where the pieces start, how many there are and the id. A reader that meets a reference
//! reads the pieces back from there (skipping other payloads' pieces, which may interleave)
//! and yields the whole payload at the reference's position, so positions and order are those
//! of the input queue, and resuming at any position works as for small payloads.
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

use super::io;
use super::options::KafkaOptions;

/// The key of a reference record in an input queue.
pub(crate) const REFERENCE_KEY: &[u8] = b"netherite.aside";
/// The bytes of an encoded reference: first offset, piece count, id, total length.
const REFERENCE_BYTES: usize = 8 + 4 + 8 + 8;
/// How long reading the pieces of one payload may take.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

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
    let id = random_id();
    let key = id.to_be_bytes();
    let pieces: Vec<&[u8]> = payload.chunks(options.message_bytes_max.max(1)).collect();
    let mut deliveries = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(&key[..])
            .payload(*piece);
        deliveries.push(producer.send(record, options.send_timeout));
    }
    let mut first = None;
    for delivery in deliveries {
        let done = delivery
            .await
            .map_err(|(e, _)| io("storing a large payload aside", &e))?;
        first.get_or_insert(done.offset);
    }
    Ok(Reference {
        first: first.unwrap_or_default(),
        pieces: u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        id,
        length: payload.len() as u64,
    })
}

/// Reads back the payload `reference` names from `topic`'s partition `partition`.
pub(crate) async fn fetch(
    options: &KafkaOptions,
    (topic, partition): (&str, i32),
    reference: Reference,
) -> Result<Vec<u8>, Error> {
    let consumer: StreamConsumer = options
        .client_config()
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
    let key = reference.id.to_be_bytes();
    let capacity = usize::try_from(reference.length).unwrap_or(0);
    let mut payload = Vec::with_capacity(capacity);
    let mut found = 0;
    while found < reference.pieces {
        let message = consumer
            .recv()
            .await
            .map_err(|e| io("reading a stored-aside payload", &e))?;
        if message.key() == Some(&key[..]) {
            payload.extend_from_slice(message.payload().unwrap_or_default());
            found += 1;
        }
    }
    if payload.len() as u64 != reference.length {
        return Err(Error::Io {
            operation: "subscribe",
            reason: format!(
                "a stored-aside payload came back with {} of its {} bytes",
                payload.len(),
                reference.length
            ),
        });
    }
    Ok(payload)
}

/// An id for one payload's pieces: the clock mixed with a process-wide counter, which is
/// unique enough among the pieces that can interleave in one partition.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((n, std::time::SystemTime::now()))
}
