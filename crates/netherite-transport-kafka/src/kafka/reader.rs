//! Subscriptions: one consumer per subscription, assigned to one Kafka partition at exactly
//! the position asked for, feeding an [`InputStream`] through a bounded channel.
//!
//! The consumer joins no group and commits nothing: where to start is the engine's decision
//! (from its checkpoint), never the broker's. The channel's bound is the back-pressure: a
//! partition that does not read stops its consumer from fetching more.

use netherite_core::transport::{InputEvent, InputStream};
use netherite_core::{Error, InputPosition};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use super::aside::{self, REFERENCE_KEY, Reference};
use super::io;
use super::options::KafkaOptions;

/// Events buffered between a consumer and its reader.
const BUFFER_EVENTS: usize = 256;

/// Which records of the partition a subscription yields.
#[derive(Clone, Debug)]
pub(crate) enum Filter {
    /// Every record, with stored-aside payloads read back from `aside`: a partition's input.
    Input {
        /// The topic holding the pieces of large payloads.
        aside: String,
    },
    /// Only records with this key: one client's responses in a shared partition.
    Key(Vec<u8>),
}

impl Filter {
    fn accepts(&self, key: Option<&[u8]>) -> bool {
        match self {
            Filter::Input { .. } => true,
            Filter::Key(wanted) => key == Some(wanted.as_slice()),
        }
    }
}

/// Subscribes to `topic`'s Kafka partition `partition` from offset `from`.
///
/// A partition's input refuses a position below what the topic still holds (rule 8 of the
/// contract: `InvalidArgument`, delivered on the stream); a client's responses start at the
/// oldest record still held instead, since what retention dropped was long answered.
pub(crate) fn subscribe(
    options: &KafkaOptions,
    topic: &str,
    partition: i32,
    from: InputPosition,
    filter: Filter,
) -> Result<InputStream, Error> {
    let offset = i64::try_from(from.0).map_err(|_| Error::InvalidArgument {
        operation: "subscribe",
        reason: format!("position {from} is past any Kafka offset"),
    })?;
    let reset = match filter {
        Filter::Input { .. } => "error",
        Filter::Key(_) => "earliest",
    };
    let consumer: StreamConsumer = options
        .client_config()
        // librdkafka wants a group even for assigned partitions; nothing is ever committed.
        .set("group.id", format!("{}.readers", options.hub))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| io("creating a consumer", &e))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| io("assigning a partition", &e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| io("assigning a partition", &e))?;

    let (tx, rx) = mpsc::channel(BUFFER_EVENTS);
    let source = Source {
        options: options.clone(),
        partition,
        filter,
    };
    tokio::spawn(feed(consumer, source, tx));
    Ok(InputStream::from_channel(rx))
}

/// Moves records from the consumer to the channel until the reader goes away or the consumer
/// fails; a failure is the stream's last item.
async fn feed(
    consumer: StreamConsumer,
    source: Source,
    tx: mpsc::Sender<Result<InputEvent, Error>>,
) {
    loop {
        let record = tokio::select! {
            () = tx.closed() => return,
            received = consumer.recv() => match received {
                Ok(message) if !source.filter.accepts(message.key()) => continue,
                Ok(message) => Ok(Record {
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().unwrap_or_default().to_vec(),
                }),
                Err(error) => Err(read_error(&error)),
            },
        };
        let item = match record {
            Ok(record) => source.event(record).await,
            Err(error) => Err(error),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// One record as read, owned (the consumer's message borrows the consumer).
struct Record {
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// What a feed needs besides its consumer: the options and partition, to read stored-aside
/// payloads back, and which records it yields.
struct Source {
    options: KafkaOptions,
    partition: i32,
    filter: Filter,
}

impl Source {
    /// The event a record stands for: its payload, or the stored-aside payload it refers to.
    async fn event(&self, record: Record) -> Result<InputEvent, Error> {
        let position = u64::try_from(record.offset).map_err(|_| Error::Io {
            operation: "subscribe",
            reason: format!("the broker gave the negative offset {}", record.offset),
        })?;
        let payload = match (&self.filter, record.key.as_deref()) {
            (Filter::Input { aside }, Some(REFERENCE_KEY)) => {
                let reference = Reference::decode(&record.payload)?;
                aside::fetch(&self.options, (aside, self.partition), reference).await?
            }
            _ => record.payload,
        };
        Ok(InputEvent {
            position: InputPosition(position),
            payload,
        })
    }
}

/// A position below the retention is the subscriber's mistake; anything else may pass.
fn read_error(error: &KafkaError) -> Error {
    let code = error.rdkafka_error_code();
    if matches!(
        code,
        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
    ) {
        return Error::InvalidArgument {
            operation: "subscribe",
            reason: format!("the position is not in the topic (below its retention?): {error}"),
        };
    }
    io("reading from kafka", error)
}
