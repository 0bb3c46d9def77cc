//! The `Transport` contract: per-partition input queues, client response queues, and
//! ownership proposals.
//!
//! Every partition reads one ordered, positioned, persistent queue of opaque payloads (the
//! engine encodes the events). Clients read a queue of their own for responses. The contract
//! is shaped after what Kafka and Event Hubs give (offsets, at-least-once delivery, a balancer
//! that assigns partitions to consumers) so both fit without glue, and the engine needs
//! nothing more: exactly-once comes from the partition's own dedup, not from the transport.
//!
//! [`MemoryHub`] is the in-memory backend for one process, with seeded fault knobs
//! ([`TransportFaults`]): dropped sends, duplicated payloads, redelivery and delay.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{ClientId, Error, InputPosition, PartitionId};

#[cfg(feature = "testing")]
pub mod conformance;
mod faults;
mod memory;

pub use faults::{GAP_MAX, REDELIVER_DEPTH_MAX, TransportFaults};
pub use memory::{MemoryHub, MemoryTransport, TransportLimits};

/// The name of one node (process) of a task hub, as the transport's balancer knows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    /// Wraps a string as a node id.
    pub fn new(id: impl Into<String>) -> NodeId {
        NodeId(id.into())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One payload read from a queue, with its position there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputEvent {
    /// Where the payload sits in its queue.
    pub position: InputPosition,
    /// The bytes as they were sent.
    pub payload: Vec<u8>,
}

impl InputEvent {
    /// The position to subscribe from to resume right after this event: what a checkpoint
    /// records once the event is processed.
    pub fn next_position(&self) -> InputPosition {
        InputPosition(self.position.0.saturating_add(1))
    }
}

/// A proposal from the transport's balancer about one partition, for this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ownership {
    /// This node should host the partition: open its storage (which fences any old owner)
    /// and start it.
    Acquired(PartitionId),
    /// Another node should host the partition: stop it promptly and release its storage.
    Lost(PartitionId),
}

/// The backend's side of an [`InputStream`]: yields one subscription's events in queue order.
#[async_trait]
pub trait InputSource: Send {
    /// The next event, an error that ends the subscription, or `None` when it ended.
    async fn next(&mut self) -> Option<Result<InputEvent, Error>>;
}

#[async_trait]
impl InputSource for mpsc::Receiver<Result<InputEvent, Error>> {
    async fn next(&mut self) -> Option<Result<InputEvent, Error>> {
        self.recv().await
    }
}

/// The events of one subscription, in queue order (rules 4 and 5 of [`Transport`]).
///
/// After it yields an error it yields nothing more: the subscriber resubscribes from the
/// position after the last event it processed.
pub struct InputStream {
    source: Box<dyn InputSource>,
    ended: bool,
}

impl InputStream {
    /// A stream over any source.
    pub fn new(source: impl InputSource + 'static) -> InputStream {
        InputStream {
            source: Box::new(source),
            ended: false,
        }
    }

    /// A stream fed by a bounded channel, the usual shape for a backend with a reader task.
    pub fn from_channel(receiver: mpsc::Receiver<Result<InputEvent, Error>>) -> InputStream {
        InputStream::new(receiver)
    }

    /// The next event; `None` once the subscription ended (transport closed, or an error).
    pub async fn next(&mut self) -> Option<Result<InputEvent, Error>> {
        if self.ended {
            return None;
        }
        let item = self.source.next().await;
        self.ended = !matches!(item, Some(Ok(_)));
        item
    }
}

impl fmt::Debug for InputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The ownership proposals for one node, in the order the balancer made them.
///
/// The channel is unbounded on purpose: proposals are tiny, come at most a few per partition
/// per rebalance, and a balancer's callback (Kafka's rebalance listener) must not block.
#[derive(Debug)]
pub struct OwnershipStream {
    receiver: mpsc::UnboundedReceiver<Ownership>,
}

impl OwnershipStream {
    /// A stream fed by the backend through `receiver`.
    pub fn new(receiver: mpsc::UnboundedReceiver<Ownership>) -> OwnershipStream {
        OwnershipStream { receiver }
    }

    /// The next proposal; `None` once the transport closed.
    pub async fn next(&mut self) -> Option<Ownership> {
        self.receiver.recv().await
    }
}

/// Refuses `partition` unless it is below `count`, the task hub's partition count (rule 1 of
/// [`Transport`]): an [`Error::InvalidArgument`] of `operation` naming both.
pub fn check_partition(
    partition: PartitionId,
    count: u32,
    operation: &'static str,
) -> Result<(), Error> {
    if partition.0 < count {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        operation,
        reason: format!("partition {partition} does not exist; the task hub has {count}"),
    })
}

/// The queues between clients and partitions, and the balancer that places partitions, as seen
/// from one node.
///
/// Rules every implementation keeps:
///
/// 1. **Queues.** Each partition `0..partition_count()` has one input queue; each client has
///    one response queue. Naming a partition outside the range is an
///    [`Error::InvalidArgument`].
/// 2. **Durable send.** [`send`](Self::send) returns `Ok` only once every payload of the batch
///    is durably in the partition's queue (it survives the crash of any node, this one
///    included), in batch order, and returns their positions. Batches sent concurrently to one
///    partition may interleave. [`send_to_client`](Self::send_to_client) is the same for a
///    client's queue.
/// 3. **Positions.** In one queue, positions strictly increase in queue order. Gaps are
///    allowed; a position is never reused, not after a discard nor after a restart.
/// 4. **Order and exact resume.** [`subscribe`](Self::subscribe) from `from` delivers the
///    queue's events whose position is at least `from`, in queue order, beginning with the
///    first of them, then waits for new ones. It never skips an event.
/// 5. **At-least-once.** Delivery may repeat: a subscription may rewind and deliver again
///    events it already delivered (never below `from`), a new subscription redelivers from
///    where it starts, and a send that failed or was retried may have appended a payload more
///    than once. Receivers therefore skip events at or below the last position they processed,
///    and the engine dedups payloads by the stamps it puts inside them.
/// 6. **Failed send.** An `Err` from a send leaves the outcome unknown: none, some or all of
///    the payloads may be in the queue. The sender retries; rule 5 makes that safe.
/// 7. **Ownership is a proposal.** [`ownership`](Self::ownership) yields, for this node, an
///    [`Ownership::Acquired`] for each partition proposed to it now, then every change. Two
///    nodes may briefly both believe they own a partition; the storage fence decides (rule 8
///    of [`LogDevice`](crate::device::LogDevice)), never this stream.
/// 8. **Discard.** [`discard_before`](Self::discard_before) says events below a position will
///    never be read again, so the queue may drop them; subscribing below the discard point (or
///    below a backend's retention) fails with [`Error::InvalidArgument`]. Backends with their
///    own retention may ignore it.
/// 9. **Errors.** [`Error::InvalidArgument`]: a broken rule, do not retry.
///    [`Error::Io`]: retry later. [`Error::LimitExceeded`]: back-pressure, a queue or payload
///    limit was hit; retry after the receiver caught up. [`Error::Closed`]: the transport shut
///    down, and every stream ends. No input makes an implementation panic.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// The number of partitions of the task hub, fixed at its creation.
    fn partition_count(&self) -> u32;

    /// The node this handle speaks for.
    fn node(&self) -> &NodeId;

    /// Appends `payloads` to `partition`'s queue; resolves once they are durable (rule 2).
    async fn send(
        &self,
        partition: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error>;

    /// The events of `partition`'s queue from position `from` on (rules 4 and 5).
    async fn subscribe(
        &self,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputStream, Error>;

    /// Lets `partition`'s queue drop the events below `before` (rule 8).
    async fn discard_before(
        &self,
        partition: PartitionId,
        before: InputPosition,
    ) -> Result<(), Error> {
        let _ = (partition, before);
        Ok(())
    }

    /// Appends one response to `client`'s queue; resolves once it is durable (rule 2).
    async fn send_to_client(
        &self,
        client: ClientId,
        payload: Vec<u8>,
    ) -> Result<InputPosition, Error>;

    /// The responses in `client`'s queue from position `from` on (rules 4 and 5).
    async fn client_responses(
        &self,
        client: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error>;

    /// Lets `client`'s queue drop the responses below `before` (rule 8).
    async fn discard_responses_before(
        &self,
        client: ClientId,
        before: InputPosition,
    ) -> Result<(), Error> {
        let _ = (client, before);
        Ok(())
    }

    /// The ownership proposals for this node (rule 7).
    async fn ownership(&self) -> Result<OwnershipStream, Error>;
}
