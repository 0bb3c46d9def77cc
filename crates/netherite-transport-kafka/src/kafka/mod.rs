//! The transport itself (see the crate's documentation).

mod aside;
mod balancer;
mod options;
mod reader;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::transport::{InputStream, NodeId, OwnershipStream, Transport, check_partition};
use netherite_core::{ClientId, Error, InputPosition, PartitionId};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use self::balancer::Balancer;
pub use self::options::KafkaOptions;
use self::reader::Filter;
use self::topics::Topics;

/// A connection of one node to a task hub's topics; cheap to clone.
#[derive(Clone)]
pub struct KafkaTransport {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeId,
    options: KafkaOptions,
    topics: Topics,
    producer: FutureProducer,
    balancer: Balancer,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("node", &self.inner.node)
            .field("hub", &self.inner.options.hub)
            .field("brokers", &self.inner.options.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// Connects `node` to the task hub `options.hub` on `options.brokers`: creates its topics
    /// if they are missing (with `options.partition_count` input partitions) and checks that
    /// existing ones have the right partition count.
    ///
    /// Fails with [`Error::Io`] when no broker answers within `options.connect_timeout`, and
    /// with [`Error::InvalidArgument`] when the topics exist with another partition count.
    pub async fn connect(node: NodeId, options: KafkaOptions) -> Result<KafkaTransport, Error> {
        options.check()?;
        let topics = Topics::ensure(&options).await?;
        let producer: FutureProducer = producer_config(&options)
            .create()
            .map_err(|e| io("creating the producer", &e))?;
        let balancer = Balancer::start(&node, &options, &topics)?;
        tracing::info!(node = %node, hub = %options.hub, brokers = %options.brokers,
            partitions = options.partition_count, "connected to kafka");
        let inner = Inner {
            node,
            options,
            topics,
            producer,
            balancer,
        };
        Ok(KafkaTransport {
            inner: Arc::new(inner),
        })
    }

    /// Leaves the consumer group at once (the partitions this node held are proposed to the
    /// others without waiting for the session timeout) and stops proposing ownership. Sends
    /// and subscriptions keep working; dropping the last handle does the same.
    pub fn close(&self) {
        self.inner.balancer.stop();
    }

    fn check_partition(&self, partition: PartitionId) -> Result<i32, Error> {
        check_partition(partition, self.inner.options.partition_count, "kafka")?;
        i32::try_from(partition.0).map_err(|_| Error::InvalidArgument {
            operation: "kafka",
            reason: format!("partition {partition} is too large"),
        })
    }

    /// Produces `payloads` to one Kafka partition under `key` and waits for every delivery.
    async fn produce(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error> {
        let max = self.inner.options.message_bytes_max;
        if let Some(big) = payloads.iter().find(|p| p.len() > max) {
            return Err(too_large(big.len(), max));
        }
        let records = payloads.into_iter().map(|p| (key, p)).collect();
        self.produce_keyed(topic, partition, records).await
    }

    /// Produces records, each with its own key, in order, and waits for every delivery.
    async fn produce_keyed(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(Option<&[u8]>, Vec<u8>)>,
    ) -> Result<Vec<InputPosition>, Error> {
        let max = self.inner.options.message_bytes_max;
        let timeout = self.inner.options.send_timeout;
        let mut deliveries = Vec::with_capacity(records.len());
        for (key, payload) in &records {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(partition)
                .payload(payload.as_slice());
            if let Some(key) = key {
                record = record.key(*key);
            }
            deliveries.push(enqueue(&self.inner.producer, record, timeout).await);
        }
        let mut positions = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let done = delivery.await.map_err(|error| send_error(&error, max))?;
            positions.push(position(done.offset)?);
        }
        Ok(positions)
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    fn partition_count(&self) -> u32 {
        self.inner.options.partition_count
    }

    fn node(&self) -> &NodeId {
        &self.inner.node
    }

    async fn send(
        &self,
        partition: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error> {
        let kafka_partition = self.check_partition(partition)?;
        let topic = self.inner.topics.input.clone();
        let max = self.inner.options.message_bytes_max;
        if payloads.iter().all(|p| p.len() <= max) {
            return self.produce(&topic, kafka_partition, None, payloads).await;
        }
        // Large payloads go aside first, so that their references follow durable pieces.
        let mut records = Vec::with_capacity(payloads.len());
        for payload in payloads {
            if payload.len() <= max {
                records.push((None, payload));
                continue;
            }
            let place = (self.inner.topics.aside.as_str(), kafka_partition);
            let stored = aside::store(&self.inner.producer, &self.inner.options, place, &payload);
            records.push((Some(aside::REFERENCE_KEY), stored.await?.encode()));
        }
        self.produce_keyed(&topic, kafka_partition, records).await
    }

    async fn subscribe(
        &self,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let kafka_partition = self.check_partition(partition)?;
        let topics = &self.inner.topics;
        let filter = Filter::Input {
            aside: topics.aside.clone(),
        };
        reader::subscribe(
            &self.inner.options,
            &topics.input,
            kafka_partition,
            from,
            filter,
        )
    }

    async fn send_to_client(
        &self,
        client: ClientId,
        payload: Vec<u8>,
    ) -> Result<InputPosition, Error> {
        let topic = self.inner.topics.responses.clone();
        let partition = self.inner.topics.response_partition(client);
        let key = client.0.to_be_bytes();
        let positions = self
            .produce(&topic, partition, Some(&key), vec![payload])
            .await?;
        positions.into_iter().next().ok_or_else(|| Error::Io {
            operation: "send",
            reason: "the broker confirmed no record".into(),
        })
    }

    async fn client_responses(
        &self,
        client: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let topic = &self.inner.topics.responses;
        let partition = self.inner.topics.response_partition(client);
        let filter = Filter::Key(client.0.to_be_bytes().to_vec());
        reader::subscribe(&self.inner.options, topic, partition, from, filter)
    }

    async fn ownership(&self) -> Result<OwnershipStream, Error> {
        Ok(self.inner.balancer.watch())
    }
}

/// A record's delivery: the broker's answer, or why it failed.
pub(super) type Delivery = std::pin::Pin<
    Box<
        dyn Future<Output = Result<rdkafka::producer::future_producer::Delivery, KafkaError>>
            + Send,
    >,
>;

/// Puts `record` in the producer's queue at once (so that records sent together are batched)
/// and returns its delivery; waits for room only when the queue is full.
pub(super) async fn enqueue(
    producer: &FutureProducer,
    record: FutureRecord<'_, [u8], [u8]>,
    timeout: Duration,
) -> Delivery {
    match producer.send_result(record) {
        Ok(delivery) => Box::pin(async move {
            match delivery.await {
                Ok(Ok(done)) => Ok(done),
                Ok(Err((error, _))) => Err(error),
                Err(_) => Err(KafkaError::Canceled),
            }
        }),
        Err((_, record)) => {
            let waited = producer.send(record, timeout).await;
            Box::pin(std::future::ready(waited.map_err(|(error, _)| error)))
        }
    }
}

/// The producer's settings: every replica acknowledges, idempotent where asked, batched for a
/// moment and compressed.
fn producer_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = options.client_config();
    config
        .set("acks", "all")
        .set("enable.idempotence", options.idempotent.to_string())
        .set("compression.type", &options.compression)
        .set("linger.ms", options.linger.as_millis().to_string())
        .set(
            "message.max.bytes",
            (options.message_bytes_max + 1024).to_string(),
        )
        .set("message.timeout.ms", millis(options.send_timeout));
    if !options.idempotent {
        // Without producer ids, only one request in flight keeps retried records in order.
        config.set("max.in.flight.requests.per.connection", "1");
    }
    config
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

fn position(offset: i64) -> Result<InputPosition, Error> {
    u64::try_from(offset)
        .map(InputPosition)
        .map_err(|_| Error::Io {
            operation: "send",
            reason: format!("the broker gave the negative offset {offset}"),
        })
}

fn too_large(actual: usize, max: usize) -> Error {
    Error::LimitExceeded {
        limit: "message_bytes_max",
        actual: actual as u64,
        max: max as u64,
    }
}

/// The contract's error for a failed delivery: a record too large is a limit, the rest may
/// pass when retried.
pub(super) fn send_error(error: &KafkaError, max: usize) -> Error {
    let code = error.rdkafka_error_code();
    if matches!(
        code,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    ) {
        return too_large(max + 1, max);
    }
    io("delivering to kafka", error)
}

/// A retryable I/O error naming what failed.
pub(super) fn io(what: &str, error: &KafkaError) -> Error {
    Error::Io {
        operation: "kafka",
        reason: format!("{what}: {error}"),
    }
}
