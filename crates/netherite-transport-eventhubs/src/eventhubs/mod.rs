//! The transport itself (see the crate's documentation): the two event hubs, the container,
//! and the [`Transport`] calls mapped onto them.

mod blobs;
mod credential;
mod hub;
mod options;
mod reader;
mod records;

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{ClientOptions, RetryOptions};
use azure_storage_blob::BlobContainerClient;
use netherite_core::transport::{InputStream, NodeId, OwnershipStream, Transport, check_partition};
use netherite_core::{ClientId, Error, InputPosition, PartitionId};

use self::blobs::{BlobAsideStore, ensure_container};
use self::hub::Hub;
pub use self::options::EventHubsOptions;
use self::reader::Filter;
pub use self::records::BlobOwnershipStore;
use crate::aside::{Aside, AsideLimits};
use crate::clock::SystemClock;
use crate::ownership::{Balancer, OwnershipTask};
use crate::wire::{Body, Frame, Tag};

/// A connection of one node to a task hub's event hubs and container; cheap to clone.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use netherite_azure::StorageAccount;
/// use netherite_core::transport::{NodeId, Transport};
/// use netherite_core::PartitionId;
/// use netherite_transport_eventhubs::{EventHubsConnection, EventHubsOptions, EventHubsTransport};
///
/// // The strings come from the caller (flags, a file, the environment); never log them.
/// let connection = EventHubsConnection::parse(&std::env::var("EVENTHUBS")?)?;
/// let storage = StorageAccount::parse(&std::env::var("STORAGE")?)?;
/// let options = EventHubsOptions::new(connection, storage, "myhub", 12);
/// let transport = EventHubsTransport::connect(NodeId::new("node-1"), options).await?;
/// let positions = transport.send(PartitionId(3), vec![b"hello".to_vec()]).await?;
/// let mut events = transport.subscribe(PartitionId(3), positions[0]).await?;
/// let hello = events.next().await;
/// # let _ = hello;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EventHubsTransport {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeId,
    options: EventHubsOptions,
    partitions: Hub,
    responses: Hub,
    aside: Arc<Aside>,
    owner: OwnershipTask,
}

impl std::fmt::Debug for EventHubsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = &self.inner.options;
        f.debug_struct("EventHubsTransport")
            .field("node", &self.inner.node)
            .field("namespace", &options.connection.namespace())
            .field("partitions_hub", &options.partitions_hub)
            .field("responses_hub", &options.responses_hub)
            .field("container", &options.container)
            .finish_non_exhaustive()
    }
}

impl EventHubsTransport {
    /// Connects `node` to the task hub that `options` describe: creates the container if it is
    /// missing, checks that the partitions' event hub has `options.partition_count`
    /// partitions, and starts proposing ownership.
    ///
    /// Fails with [`Error::Io`] when the services do not answer within
    /// `options.connect_timeout`, and with [`Error::InvalidArgument`] for options that cannot
    /// work (an event hub with another partition count, a bad container name).
    pub async fn connect(node: NodeId, options: EventHubsOptions) -> Result<Self, Error> {
        options.check()?;
        records::check_node(&node)?;
        let wait = options.connect_timeout;
        match tokio::time::timeout(wait, Self::open(node, options)).await {
            Ok(connected) => connected,
            Err(_) => Err(Error::Io {
                operation: "eventhubs connect",
                reason: format!("no answer within the connect_timeout ({wait:?})"),
            }),
        }
    }

    async fn open(node: NodeId, options: EventHubsOptions) -> Result<Self, Error> {
        let container = Arc::new(container_client(&options, ClientOptions::default())?);
        ensure_container(&container).await?;
        let partitions = Hub::open(&options, &options.partitions_hub).await?;
        check_partition_count(&partitions, options.partition_count)?;
        let responses = Hub::open(&options, &options.responses_hub).await?;

        let aside = Aside::new(
            Arc::new(BlobAsideStore::new(container.clone())),
            format!("{}/aside", options.partitions_hub.to_lowercase()),
            limits(&options),
            Arc::new(SystemClock),
        );
        let owner = start_ownership(&node, &options, &partitions)?;
        tracing::info!(node = %node, namespace = options.connection.namespace(),
            hub = options.partitions_hub, partitions = options.partition_count,
            responses = responses.partitions(), container = options.container,
            "connected to event hubs");
        let inner = Inner {
            node,
            options,
            partitions,
            responses,
            aside: Arc::new(aside),
            owner,
        };
        Ok(EventHubsTransport {
            inner: Arc::new(inner),
        })
    }

    /// Gives back the partitions this node holds (other nodes claim them at their next round
    /// instead of after the expiry), stops proposing ownership and ends every ownership stream.
    /// Sends and subscriptions keep working.
    pub async fn close(&self) {
        let wait = self.inner.options.ownership.interval;
        self.inner.owner.close(wait).await;
    }

    fn check_partition(&self, partition: PartitionId) -> Result<u32, Error> {
        check_partition(partition, self.inner.options.partition_count, "eventhubs")?;
        Ok(partition.0)
    }

    /// The responses partition of `client`: its id folded onto the event hub's width.
    fn response_partition(&self, client: ClientId) -> u32 {
        let folded = (client.0 ^ (client.0 >> 64)) as u64;
        let width = u64::from(self.inner.responses.partitions().max(1));
        u32::try_from(folded % width).unwrap_or(0)
    }
}

#[async_trait]
impl Transport for EventHubsTransport {
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
        let number = self.check_partition(partition)?;
        let bodies = self.inner.aside.prepare(partition, payloads).await?;
        let send = crate::random_u64();
        let frame = |(index, body): (usize, Body)| {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            Frame {
                tag: Tag { send, index },
                body,
            }
            .encode()
        };
        let frames = bodies.into_iter().enumerate().map(frame).collect();
        self.inner.partitions.send(number, frames, send).await
    }

    async fn subscribe(
        &self,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let number = self.check_partition(partition)?;
        let filter = Filter::Input {
            aside: self.inner.aside.clone(),
            partition,
        };
        reader::subscribe(&self.inner.partitions, number, from, filter).await
    }

    async fn discard_before(
        &self,
        partition: PartitionId,
        before: InputPosition,
    ) -> Result<(), Error> {
        self.check_partition(partition)?;
        self.inner.aside.discard_before(partition, before).await;
        Ok(())
    }

    async fn send_to_client(
        &self,
        client: ClientId,
        payload: Vec<u8>,
    ) -> Result<InputPosition, Error> {
        let max = self.inner.options.inline_bytes_max;
        if payload.len() > max {
            return Err(Error::LimitExceeded {
                limit: "inline_bytes_max",
                actual: payload.len() as u64,
                max: max as u64,
            });
        }
        let send = crate::random_u64();
        let frame = Frame {
            tag: Tag { send, index: 0 },
            body: Body::Response { client, payload },
        };
        let partition = self.response_partition(client);
        let sent = self
            .inner
            .responses
            .send(partition, vec![frame.encode()], send);
        sent.await?.into_iter().next().ok_or_else(|| Error::Io {
            operation: "send",
            reason: "the send confirmed no event".into(),
        })
    }

    async fn client_responses(
        &self,
        client: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let partition = self.response_partition(client);
        let hub = &self.inner.responses;
        reader::subscribe(hub, partition, from, Filter::Client(client)).await
    }

    async fn ownership(&self) -> Result<OwnershipStream, Error> {
        Ok(self.inner.owner.watch())
    }
}

/// A client of the task hub's container.
fn container_client(
    options: &EventHubsOptions,
    client: ClientOptions,
) -> Result<BlobContainerClient, Error> {
    options
        .storage
        .container_client(&options.container, client)
        .map_err(|e| Error::InvalidArgument {
            operation: "eventhubs connect",
            reason: e.to_string(),
        })
}

/// Starts `node`'s balancing over the ownership records of `partitions`.
///
/// The records' client makes no retries of its own: a conditional write whose answer was lost
/// and that the SDK sent again would meet its own new ETag and read as a lost claim. Without
/// them such a write is an `Io` error, and the balancer's next round reads the records afresh.
fn start_ownership(
    node: &NodeId,
    options: &EventHubsOptions,
    partitions: &Hub,
) -> Result<OwnershipTask, Error> {
    let client = ClientOptions {
        retry: RetryOptions::none(),
        ..Default::default()
    };
    let container = Arc::new(container_client(options, client)?);
    let namespace = options.connection.namespace();
    let group = &options.consumer_group;
    let records = BlobOwnershipStore::new(container, namespace, partitions.name(), group);
    let timings = options.ownership;
    let balancer = Balancer::new(node.clone(), options.partition_count, timings.expiry);
    let clock = Arc::new(SystemClock);
    Ok(OwnershipTask::start(
        balancer,
        Arc::new(records),
        clock,
        timings.interval,
    ))
}

/// Refuses an event hub whose partitions are not the task hub's.
fn check_partition_count(hub: &Hub, count: u32) -> Result<(), Error> {
    if hub.partitions() == count {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        operation: "eventhubs connect",
        reason: format!(
            "event hub {} has {} partitions, the task hub needs {count}: it belongs to a hub \
             made with another partition count",
            hub.name(),
            hub.partitions()
        ),
    })
}

fn limits(options: &EventHubsOptions) -> AsideLimits {
    AsideLimits {
        inline_bytes_max: options.inline_bytes_max,
        blob_bytes_max: options.aside_bytes_max,
        retention: options.aside_retention,
        sweep_interval: options.aside_sweep_interval,
    }
}

#[cfg(test)]
mod tests;
