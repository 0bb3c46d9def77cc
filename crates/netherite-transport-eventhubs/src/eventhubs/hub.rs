//! One event hub as the transport uses it: sends whose positions it learns, partition
//! properties, and connections for readers.
//!
//! Sends to one partition go one at a time from this node (a lock per partition), so that the
//! last sequence number read before and after a send brackets it (see `resolve`). A send has
//! one deadline, `send_timeout`, for its batches and any read-back together.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_messaging_eventhubs::{
    ConsumerClient, EventDataBatch, EventDataBatchOptions, EventReceiver, OpenReceiverOptions,
    ProducerClient, StartLocation, StartPosition,
};
use futures::StreamExt;
use netherite_core::{Error, InputPosition};
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use super::credential::SasCredential;
use super::options::EventHubsOptions;
use crate::batching::{Batches, Fill, send_batched};
use crate::position::{self, Retained};
use crate::resolve::{Finder, Resolved, resolve};
use crate::wire::Frame;

/// The name the transport's connections give themselves.
const APPLICATION: &str = "netherite";
/// How long closing a read-back receiver may take.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// One event hub of the namespace.
pub(crate) struct Hub {
    name: String,
    namespace: String,
    consumer_group: String,
    credential: Arc<dyn TokenCredential>,
    producer: ProducerClient,
    locks: Vec<Mutex<()>>,
    lookups: OnceCell<ConsumerClient>,
    prefetch: u32,
    send_timeout: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.name)
            .field("partitions", &self.locks.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Connects to event hub `name` and reads its partition count.
    pub(crate) async fn open(options: &EventHubsOptions, name: &str) -> Result<Hub, Error> {
        let credential: Arc<dyn TokenCredential> = Arc::new(SasCredential::new(
            options.connection.clone(),
            name,
            options.token_lifetime,
        ));
        let namespace = options.connection.namespace().to_string();
        let producer = ProducerClient::builder()
            .with_application_id(APPLICATION.into())
            .open(&namespace, name, credential.clone())
            .await
            .map_err(|e| io(&format!("connecting to event hub {name}"), &e))?;
        let properties = producer
            .get_eventhub_properties()
            .await
            .map_err(|e| io(&format!("reading the properties of event hub {name}"), &e))?;
        let partitions = properties.partition_ids.len();
        Ok(Hub {
            name: name.to_string(),
            namespace,
            consumer_group: options.consumer_group.clone(),
            credential,
            producer,
            locks: (0..partitions).map(|_| Mutex::new(())).collect(),
            lookups: OnceCell::new(),
            prefetch: options.prefetch,
            send_timeout: options.send_timeout,
        })
    }

    /// The event hub's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How many partitions the event hub has.
    pub(crate) fn partitions(&self) -> u32 {
        u32::try_from(self.locks.len()).unwrap_or(u32::MAX)
    }

    /// What `partition` holds now.
    pub(crate) async fn retained(&self, partition: u32) -> Result<Retained, Error> {
        let properties = self
            .producer
            .get_partition_properties(&partition.to_string())
            .await
            .map_err(|e| {
                io(
                    &format!("reading partition {partition} of {}", self.name),
                    &e,
                )
            })?;
        Ok(Retained {
            beginning: properties.beginning_sequence_number,
            last: properties.last_enqueued_sequence_number,
            empty: properties.is_empty,
        })
    }

    /// A new connection for one reader.
    pub(crate) async fn consumer(&self) -> Result<ConsumerClient, Error> {
        ConsumerClient::builder()
            .with_application_id(APPLICATION.into())
            .with_consumer_group(self.consumer_group.clone())
            .open(&self.namespace, self.name.clone(), self.credential.clone())
            .await
            .map_err(|e| io(&format!("connecting a reader to {}", self.name), &e))
    }

    /// A receiver on `partition` from sequence number `from` (inclusive or not).
    pub(crate) async fn receiver(
        &self,
        consumer: &ConsumerClient,
        partition: u32,
        from: i64,
        inclusive: bool,
    ) -> Result<EventReceiver, Error> {
        let options = OpenReceiverOptions {
            start_position: Some(StartPosition {
                location: StartLocation::SequenceNumber(from),
                inclusive,
            }),
            prefetch: Some(self.prefetch),
            ..Default::default()
        };
        consumer
            .open_receiver_on_partition(partition.to_string(), Some(options))
            .await
            .map_err(|e| {
                io(
                    &format!("opening partition {partition} of {}", self.name),
                    &e,
                )
            })
    }

    /// Appends `frames` (all tagged `tag`) to `partition` and returns their positions.
    pub(crate) async fn send(
        &self,
        partition: u32,
        frames: Vec<Vec<u8>>,
        tag: u64,
    ) -> Result<Vec<InputPosition>, Error> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + self.send_timeout;
        let lock = self
            .locks
            .get(partition as usize)
            .ok_or_else(|| missing(partition))?;
        let _turn = within(deadline, async { Ok(lock.lock().await) }).await?;
        let (before, after) = within(deadline, self.append(partition, &frames)).await?;
        match resolve(before, after, frames.len())? {
            Resolved::Exact(positions) => Ok(positions),
            Resolved::ReadBack => {
                tracing::debug!(
                    hub = self.name,
                    partition,
                    before,
                    after,
                    events = frames.len(),
                    "send overlapped others; reading it back"
                );
                let finder = Finder::new(tag, frames.len());
                self.read_back(partition, before, finder, deadline).await
            }
        }
    }

    /// Sends `frames` in batches; the partition's last sequence number before and after.
    async fn append(&self, partition: u32, frames: &[Vec<u8>]) -> Result<(i64, i64), Error> {
        let before = self.retained(partition).await?.last;
        let mut sink = Sink {
            producer: &self.producer,
            partition,
            hub: &self.name,
        };
        let batches = send_batched(frames, &mut sink).await?;
        let after = self.retained(partition).await?.last;
        tracing::debug!(
            hub = self.name,
            partition,
            events = frames.len(),
            batches,
            "sent"
        );
        Ok((before, after))
    }

    /// Reads `partition` after sequence number `before` until `finder` has every event, or
    /// until `deadline`.
    async fn read_back(
        &self,
        partition: u32,
        before: i64,
        mut finder: Finder,
        deadline: Instant,
    ) -> Result<Vec<InputPosition>, Error> {
        let lookups = self.lookups.get_or_try_init(|| self.consumer());
        let consumer = within(deadline, lookups).await?;
        let receiver = self.receiver(consumer, partition, before, false).await?;
        let found = within(deadline, find(&receiver, &mut finder)).await;
        // The lookup connection keeps one receiver per partition: close it for the next one.
        match tokio::time::timeout(CLOSE_WAIT, receiver.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(hub = self.name, partition, %error,
                "read-back receiver not closed"),
            Err(_) => tracing::debug!(hub = self.name, partition, "read-back close timed out"),
        }
        found?;
        finder.positions()
    }
}

/// Feeds `finder` from `receiver` until it is done.
async fn find(receiver: &EventReceiver, finder: &mut Finder) -> Result<(), Error> {
    let mut events = receiver.stream_events();
    while !finder.is_done() {
        let Some(event) = events.next().await else {
            break;
        };
        let event = event.map_err(|e| io("reading a send back", &e))?;
        let (Some(number), Some(body)) = (event.sequence_number(), event.event_data().body())
        else {
            continue;
        };
        if let Ok(frame) = Frame::decode(body) {
            finder.offer(position::position(number)?, frame.tag);
        }
    }
    Ok(())
}

impl Fill for EventDataBatch<'_> {
    fn try_push(&mut self, event: &[u8]) -> Result<bool, Error> {
        self.try_add_event_data(event.to_vec(), None)
            .map_err(|e| io("adding to a batch", &e))
    }

    fn is_empty(&self) -> bool {
        EventDataBatch::is_empty(self)
    }
}

/// The batches of one partition of an event hub.
struct Sink<'p> {
    producer: &'p ProducerClient,
    partition: u32,
    hub: &'p str,
}

impl<'p> Batches for Sink<'p> {
    type Batch = EventDataBatch<'p>;

    async fn create(&mut self) -> Result<EventDataBatch<'p>, Error> {
        let options = EventDataBatchOptions {
            partition_id: Some(self.partition.to_string()),
            ..Default::default()
        };
        let batch = self.producer.create_batch(Some(options)).await;
        batch.map_err(|e| io("creating a batch", &e))
    }

    async fn send(&mut self, batch: EventDataBatch<'p>) -> Result<(), Error> {
        let sent = self.producer.send_batch(batch, None).await;
        let what = || format!("sending to partition {} of {}", self.partition, self.hub);
        sent.map_err(|e| io(&what(), &e))
    }
}

/// `work`, or an `Io` error once `deadline` passed.
async fn within<T>(
    deadline: Instant,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Io {
            operation: "send",
            reason: "the send_timeout passed; the outcome of the send is unknown".into(),
        }),
    }
}

fn missing(partition: u32) -> Error {
    Error::InvalidArgument {
        operation: "send",
        reason: format!("the event hub has no partition {partition}"),
    }
}

/// A retryable error naming what failed.
pub(crate) fn io(what: &str, error: &impl std::fmt::Display) -> Error {
    Error::Io {
        operation: "eventhubs",
        reason: format!("{what}: {error}"),
    }
}
