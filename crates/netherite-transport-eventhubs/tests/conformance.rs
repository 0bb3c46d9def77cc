//! The core's `Transport` conformance suite, run against a live Event Hubs namespace.
//!
//! The namespace comes from `NETHERITE_EVENTHUBS_CONNECTION` and the storage account from
//! `NETHERITE_EVENTHUBS_STORAGE` (see `support::eventhubs`); without them the suite is skipped
//! with a note, in CI too, since Event Hubs cannot run there. The event hubs must exist:
//! `partitions` with 4 partitions and `clients` with any number (or the names in
//! `NETHERITE_EVENTHUBS_PARTITIONS_HUB` and `NETHERITE_EVENTHUBS_RESPONSES_HUB`).
//!
//! The suite wants a fresh task hub per check, and event hubs cannot be made from here. So
//! each fixture first marks where the event hubs end now (one small event to each partition
//! and to the suite's clients) and its transport starts subscriptions from below a mark at the
//! mark: a check reading "from the start" sees its own events only. Positions are the real
//! sequence numbers throughout.

#![cfg(feature = "eventhubs")]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use netherite_core::transport::conformance::{self, TransportFixture};
use netherite_core::transport::{InputStream, NodeId, OwnershipStream, Transport};
use netherite_core::{ClientId, Error, InputPosition, PartitionId};
use netherite_transport_eventhubs::{EventHubsOptions, EventHubsTransport};
use tokio::sync::OnceCell;

/// The clients the suite sends responses to.
const CLIENTS: [ClientId; 2] = [ClientId(0xa11ce), ClientId(0xb0b)];

/// Where each queue ended when a fixture began.
#[derive(Debug, Default)]
struct Marks {
    partitions: BTreeMap<PartitionId, InputPosition>,
    clients: BTreeMap<ClientId, InputPosition>,
}

impl Marks {
    async fn take(transport: &EventHubsTransport) -> Result<Marks, Error> {
        let mut marks = Marks::default();
        for p in (0..transport.partition_count()).map(PartitionId) {
            let sent = transport.send(p, vec![b"fixture mark".to_vec()]).await?;
            let last = sent.last().map_or(InputPosition::START, |p| *p);
            marks.partitions.insert(p, InputPosition(last.0 + 1));
        }
        for client in CLIENTS {
            let last = transport
                .send_to_client(client, b"fixture mark".to_vec())
                .await?;
            marks.clients.insert(client, InputPosition(last.0 + 1));
        }
        Ok(marks)
    }
}

/// A transport whose subscriptions start no lower than the fixture's marks.
#[derive(Debug)]
struct Marked {
    inner: EventHubsTransport,
    marks: Arc<Marks>,
}

#[async_trait]
impl Transport for Marked {
    fn partition_count(&self) -> u32 {
        self.inner.partition_count()
    }

    fn node(&self) -> &NodeId {
        self.inner.node()
    }

    async fn send(
        &self,
        p: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error> {
        self.inner.send(p, payloads).await
    }

    async fn subscribe(&self, p: PartitionId, from: InputPosition) -> Result<InputStream, Error> {
        let mark = self.marks.partitions.get(&p).copied().unwrap_or(from);
        self.inner.subscribe(p, from.max(mark)).await
    }

    async fn discard_before(&self, p: PartitionId, before: InputPosition) -> Result<(), Error> {
        self.inner.discard_before(p, before).await
    }

    async fn send_to_client(&self, c: ClientId, payload: Vec<u8>) -> Result<InputPosition, Error> {
        self.inner.send_to_client(c, payload).await
    }

    async fn client_responses(
        &self,
        c: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let mark = self.marks.clients.get(&c).copied().unwrap_or(from);
        self.inner.client_responses(c, from.max(mark)).await
    }

    async fn ownership(&self) -> Result<OwnershipStream, Error> {
        self.inner.ownership().await
    }
}

/// The namespace's event hubs, marked once per fixture.
struct Hub {
    options: EventHubsOptions,
    marks: OnceCell<Arc<Marks>>,
}

#[async_trait]
impl TransportFixture for Hub {
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, Error> {
        let inner = EventHubsTransport::connect(node.clone(), self.options.clone()).await?;
        let marks = self
            .marks
            .get_or_try_init(|| async { Marks::take(&inner).await.map(Arc::new) })
            .await?
            .clone();
        Ok(Arc::new(Marked { inner, marks }))
    }
}

/// Every check of the suite passes against the namespace (the ownership check is skipped:
/// the balancer cannot be steered from outside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventhubs_transport_keeps_the_contract() {
    let Some(options) = support::eventhubs(4) else {
        return;
    };
    let report = conformance::run(|| Hub {
        options: options.clone(),
        marks: OnceCell::new(),
    })
    .await;
    println!("{report}");
}
