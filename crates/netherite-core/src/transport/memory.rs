//! The in-memory transport: a [`MemoryHub`] holds the queues and the partition placement of a
//! task hub inside one process; each node talks to it through a [`MemoryTransport`].
//!
//! A queue is a deque of events with positions; a subscription is a cursor into it that waits
//! on the queue's `Notify` when it has caught up, so there is no background task to manage.
//! "Durable" means "in the hub": the hub lives as long as the process, which is exactly the
//! promise of a single-process deployment, and nodes (partition hosts) can restart against
//! the same hub to exercise recovery.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use super::faults::{GAP_MAX, REDELIVER_DEPTH_MAX};
use super::{
    InputEvent, InputSource, InputStream, NodeId, Ownership, OwnershipStream, Transport,
    TransportFaults,
};
use crate::device::FaultRng;
use crate::{ClientId, Error, InputPosition, PartitionId};

/// The bounds of a [`MemoryHub`]; hitting one is a [`Error::LimitExceeded`] naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// The most events one queue holds before a send is refused (`queue_events_max`).
    pub queue_events_max: usize,
    /// The largest payload a send accepts (`payload_bytes_max`).
    pub payload_bytes_max: usize,
}

impl Default for TransportLimits {
    fn default() -> TransportLimits {
        TransportLimits {
            queue_events_max: 1 << 20,
            payload_bytes_max: 16 << 20,
        }
    }
}

/// The queues and the partition placement of one task hub, shared by the nodes of a process.
///
/// ```
/// use netherite_core::transport::{MemoryHub, NodeId, Ownership, Transport};
/// use netherite_core::{InputPosition, PartitionId};
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
/// # runtime.block_on(async {
/// let hub = MemoryHub::new(4)?;
/// let node = hub.connect(NodeId::new("a"));
/// let mut proposals = node.ownership().await?;
/// hub.assign(PartitionId(2), Some(NodeId::new("a")))?;
/// assert_eq!(proposals.next().await, Some(Ownership::Acquired(PartitionId(2))));
///
/// let positions = node.send(PartitionId(2), vec![b"hello".to_vec()]).await?;
/// let mut input = node.subscribe(PartitionId(2), InputPosition::START).await?;
/// let event = input.next().await.expect("an event")?;
/// assert_eq!((event.position, event.payload), (positions[0], b"hello".to_vec()));
/// # Ok::<(), netherite_core::Error>(())
/// # }).expect("example runs");
/// ```
#[derive(Clone, Debug)]
pub struct MemoryHub {
    shared: Arc<Mutex<HubState>>,
}

/// One node's handle on a [`MemoryHub`]; implements [`Transport`].
#[derive(Clone, Debug)]
pub struct MemoryTransport {
    hub: MemoryHub,
    node: NodeId,
}

#[derive(Debug)]
struct HubState {
    partitions: Vec<Queue>,
    clients: HashMap<ClientId, Queue>,
    owners: Vec<Option<NodeId>>,
    watchers: HashMap<NodeId, Vec<mpsc::UnboundedSender<Ownership>>>,
    faults: TransportFaults,
    rng: FaultRng,
    limits: TransportLimits,
    closed: bool,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<InputEvent>,
    /// The position the next append gets (before any gap).
    next: u64,
    /// Events below this position were discarded.
    discarded: u64,
    /// Woken on every append and when the hub closes.
    notify: Arc<Notify>,
}

/// Which queue of the hub.
#[derive(Clone, Copy, Debug)]
enum QueueKey {
    Partition(PartitionId),
    Client(ClientId),
}

impl MemoryHub {
    /// A hub with `partition_count` empty partition queues (at least one) and no owners.
    pub fn new(partition_count: u32) -> Result<MemoryHub, Error> {
        if partition_count == 0 {
            return Err(Error::InvalidArgument {
                operation: "MemoryHub::new",
                reason: "a task hub has at least one partition".into(),
            });
        }
        let count = partition_count as usize;
        let state = HubState {
            partitions: (0..count).map(|_| Queue::default()).collect(),
            clients: HashMap::new(),
            owners: vec![None; count],
            watchers: HashMap::new(),
            faults: TransportFaults::none(),
            rng: FaultRng::new(0),
            limits: TransportLimits::default(),
            closed: false,
        };
        Ok(MemoryHub {
            shared: Arc::new(Mutex::new(state)),
        })
    }

    /// This hub with `faults` switched on.
    pub fn with_faults(self, faults: TransportFaults) -> MemoryHub {
        self.set_faults(faults);
        self
    }

    /// This hub with `limits` instead of the defaults.
    pub fn with_limits(self, limits: TransportLimits) -> MemoryHub {
        self.lock().limits = limits;
        self
    }

    /// Replaces the fault knobs and reseeds their generator; takes effect at the next call.
    pub fn set_faults(&self, faults: TransportFaults) {
        let mut state = self.lock();
        state.rng = FaultRng::new(faults.seed);
        state.faults = faults;
    }

    /// The handle of `node`; connecting again with the same id is a restart of that node.
    pub fn connect(&self, node: NodeId) -> MemoryTransport {
        MemoryTransport {
            hub: self.clone(),
            node,
        }
    }

    /// Proposes `owner` for `partition` (`None`: nobody), telling the old owner it lost it
    /// and the new one it acquired it. Proposing the current owner again changes nothing.
    pub fn assign(&self, partition: PartitionId, owner: Option<NodeId>) -> Result<(), Error> {
        let mut state = self.lock();
        state.check_partition(partition)?;
        let slot = partition.0 as usize;
        if state.owners[slot] == owner {
            return Ok(());
        }
        let old = std::mem::replace(&mut state.owners[slot], owner.clone());
        tracing::info!(%partition, old = ?old, new = ?owner, "memory hub moved a partition");
        if let Some(old) = old {
            state.propose(&old, Ownership::Lost(partition));
        }
        if let Some(new) = owner {
            state.propose(&new, Ownership::Acquired(partition));
        }
        Ok(())
    }

    /// The node `partition` is proposed to, if any.
    pub fn owner(&self, partition: PartitionId) -> Option<NodeId> {
        let state = self.lock();
        state.owners.get(partition.0 as usize).cloned().flatten()
    }

    /// Shuts the hub down: sends fail with [`Error::Closed`] and every stream ends.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.watchers.clear();
        let queues = state.partitions.iter().chain(state.clients.values());
        for queue in queues {
            queue.notify.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.shared
            .lock()
            .expect("no code panics while holding the hub lock")
    }
}

impl HubState {
    fn check_partition(&self, partition: PartitionId) -> Result<(), Error> {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        super::check_partition(partition, count, "partition")
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn queue(&mut self, key: QueueKey) -> Result<&mut Queue, Error> {
        match key {
            QueueKey::Partition(p) => {
                self.check_partition(p)?;
                Ok(&mut self.partitions[p.0 as usize])
            }
            QueueKey::Client(c) => Ok(self.clients.entry(c).or_default()),
        }
    }

    fn propose(&mut self, node: &NodeId, proposal: Ownership) {
        if let Some(senders) = self.watchers.get_mut(node) {
            senders.retain(|s| s.send(proposal).is_ok());
        }
    }

    /// Appends a batch, drawing the drop, gap and duplicate faults, and wakes subscribers.
    fn append(
        &mut self,
        key: QueueKey,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error> {
        self.check_open()?;
        self.queue(key)?;
        self.check_payloads(&payloads)?;
        if self.rng.chance(self.faults.drop_rate) {
            tracing::debug!(queue = ?key, "memory hub dropped a send (fault knob)");
            return Err(Error::Io {
                operation: "send",
                reason: "injected: the batch was lost before it was durable (fault knob)".into(),
            });
        }

        // Draw every fault before touching the queue, so a refused batch appends nothing.
        let plan: Vec<(u64, bool)> = payloads.iter().map(|_| self.draw_append()).collect();
        let copies = plan
            .iter()
            .map(|&(_, dup)| 1 + usize::from(dup))
            .sum::<usize>();
        let limit = self.limits.queue_events_max;
        let queue = self.queue(key)?;
        if queue.events.len() + copies > limit {
            return Err(Error::LimitExceeded {
                limit: "queue_events_max",
                actual: (queue.events.len() + copies) as u64,
                max: limit as u64,
            });
        }
        queue.check_positions_left(&plan)?;
        let positions = queue.push_batch(payloads, &plan);
        queue.notify.notify_waiters();
        Ok(positions)
    }

    fn check_payloads(&self, payloads: &[Vec<u8>]) -> Result<(), Error> {
        let max = self.limits.payload_bytes_max;
        match payloads.iter().map(Vec::len).find(|&len| len > max) {
            Some(len) => Err(Error::LimitExceeded {
                limit: "payload_bytes_max",
                actual: len as u64,
                max: max as u64,
            }),
            None => Ok(()),
        }
    }

    /// The gap before one append and whether it is duplicated.
    fn draw_append(&mut self) -> (u64, bool) {
        let gap = if self.rng.chance(self.faults.gap_rate) {
            1 + self.rng.below(GAP_MAX)
        } else {
            0
        };
        (gap, self.rng.chance(self.faults.duplicate_rate))
    }

    fn discard_before(&mut self, key: QueueKey, before: InputPosition) -> Result<(), Error> {
        self.check_open()?;
        let queue = self.queue(key)?;
        queue.discarded = queue.discarded.max(before.0);
        queue.next = queue.next.max(queue.discarded);
        while queue
            .events
            .front()
            .is_some_and(|e| e.position.0 < queue.discarded)
        {
            queue.events.pop_front();
        }
        Ok(())
    }
}

impl Queue {
    /// Refuses a batch that would need positions past the last one (`u64::MAX` is never
    /// handed out, so the position after every event exists). Only a discard point near the
    /// end of the position space gets here.
    fn check_positions_left(&self, plan: &[(u64, bool)]) -> Result<(), Error> {
        let needed = plan.iter().try_fold(0u64, |sum, &(gap, duplicate)| {
            sum.checked_add(gap)?.checked_add(1 + u64::from(duplicate))
        });
        let left = u64::MAX - self.next;
        match needed {
            Some(needed) if needed <= left => Ok(()),
            needed => Err(Error::LimitExceeded {
                limit: "input_positions",
                actual: needed.unwrap_or(u64::MAX),
                max: left,
            }),
        }
    }

    fn push_batch(&mut self, payloads: Vec<Vec<u8>>, plan: &[(u64, bool)]) -> Vec<InputPosition> {
        let mut positions = Vec::with_capacity(payloads.len());
        for (payload, &(gap, duplicate)) in payloads.into_iter().zip(plan) {
            self.next += gap;
            positions.push(InputPosition(self.next));
            if duplicate {
                tracing::debug!(
                    position = self.next,
                    "memory hub duplicated a payload (fault knob)"
                );
                self.push(payload.clone());
            }
            self.push(payload);
        }
        positions
    }

    fn push(&mut self, payload: Vec<u8>) {
        let position = InputPosition(self.next);
        self.next += 1;
        self.events.push_back(InputEvent { position, payload });
    }
}

/// A cursor into one queue of the hub.
struct Subscription {
    hub: MemoryHub,
    key: QueueKey,
    from: u64,
    cursor: u64,
    notify: Arc<Notify>,
}

/// What a subscription found under the lock.
enum Step {
    Deliver(InputEvent, Duration),
    Wait,
    End(Option<Error>),
}

impl Subscription {
    fn open(hub: &MemoryHub, key: QueueKey, from: InputPosition) -> Result<Subscription, Error> {
        let mut state = hub.lock();
        state.check_open()?;
        let queue = state.queue(key)?;
        if from.0 < queue.discarded {
            return Err(below_discard_point(from.0, queue.discarded));
        }
        Ok(Subscription {
            hub: hub.clone(),
            key,
            from: from.0,
            cursor: from.0,
            notify: Arc::clone(&queue.notify),
        })
    }

    /// Takes the next event if there is one, drawing the redeliver and delay faults.
    fn step(&mut self) -> Step {
        let hub = self.hub.clone();
        let mut guard = hub.lock();
        let state = &mut *guard;
        if state.closed {
            return Step::End(None);
        }
        let queue = match self.key {
            QueueKey::Partition(p) => state.partitions.get(p.0 as usize),
            QueueKey::Client(c) => state.clients.get(&c),
        };
        // Queues are never removed, so this only guards against a future change.
        let Some(queue) = queue else {
            return Step::End(None);
        };
        if self.cursor < queue.discarded {
            return Step::End(Some(below_discard_point(self.cursor, queue.discarded)));
        }
        self.take(queue, &state.faults, &mut state.rng)
    }

    fn take(&mut self, queue: &Queue, faults: &TransportFaults, rng: &mut FaultRng) -> Step {
        let at = |cursor: u64| queue.events.partition_point(|e| e.position.0 < cursor);
        if at(self.cursor) == queue.events.len() {
            return Step::Wait;
        }
        if self.cursor > self.from && rng.chance(faults.redeliver_rate) {
            let back = 1 + rng.below(REDELIVER_DEPTH_MAX);
            let floor = self.from.max(queue.discarded);
            self.cursor = self.cursor.saturating_sub(back).max(floor);
            tracing::debug!(
                cursor = self.cursor,
                "memory hub rewound a subscription (fault knob)"
            );
        }

        let event = queue.events[at(self.cursor)].clone();
        self.cursor = event.position.0 + 1;
        let delay = if rng.chance(faults.delay_rate) {
            let nanos = u64::try_from(faults.delay_max.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.below(nanos.saturating_add(1)))
        } else {
            Duration::ZERO
        };
        Step::Deliver(event, delay)
    }
}

#[async_trait]
impl InputSource for Subscription {
    async fn next(&mut self) -> Option<Result<InputEvent, Error>> {
        loop {
            // Registered before looking, so an append between the look and the wait wakes us.
            let notify = Arc::clone(&self.notify);
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            match self.step() {
                Step::Deliver(event, delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    return Some(Ok(event));
                }
                Step::End(error) => return error.map(Err),
                Step::Wait => notified.await,
            }
        }
    }
}

fn below_discard_point(position: u64, discarded: u64) -> Error {
    Error::InvalidArgument {
        operation: "subscribe",
        reason: format!("position {position} is below the discard point {discarded}"),
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn partition_count(&self) -> u32 {
        self.hub.lock().partitions.len() as u32
    }

    fn node(&self) -> &NodeId {
        &self.node
    }

    async fn send(
        &self,
        partition: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, Error> {
        self.hub
            .lock()
            .append(QueueKey::Partition(partition), payloads)
    }

    async fn subscribe(
        &self,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let subscription = Subscription::open(&self.hub, QueueKey::Partition(partition), from)?;
        Ok(InputStream::new(subscription))
    }

    async fn discard_before(
        &self,
        partition: PartitionId,
        before: InputPosition,
    ) -> Result<(), Error> {
        self.hub
            .lock()
            .discard_before(QueueKey::Partition(partition), before)
    }

    async fn send_to_client(
        &self,
        client: ClientId,
        payload: Vec<u8>,
    ) -> Result<InputPosition, Error> {
        let positions = self
            .hub
            .lock()
            .append(QueueKey::Client(client), vec![payload])?;
        Ok(positions[0])
    }

    async fn client_responses(
        &self,
        client: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        let subscription = Subscription::open(&self.hub, QueueKey::Client(client), from)?;
        Ok(InputStream::new(subscription))
    }

    async fn discard_responses_before(
        &self,
        client: ClientId,
        before: InputPosition,
    ) -> Result<(), Error> {
        self.hub
            .lock()
            .discard_before(QueueKey::Client(client), before)
    }

    async fn ownership(&self) -> Result<OwnershipStream, Error> {
        let mut state = self.hub.lock();
        state.check_open()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let owned = state.owners.iter().enumerate();
        for (p, _) in owned.filter(|(_, o)| o.as_ref() == Some(&self.node)) {
            // The receiver is alive right here, so the send cannot fail.
            let _ = sender.send(Ownership::Acquired(PartitionId(p as u32)));
        }
        state
            .watchers
            .entry(self.node.clone())
            .or_default()
            .push(sender);
        Ok(OwnershipStream::new(receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discard point at the end of the position space leaves no room: the next send is a
    /// typed error naming the limit, not an overflow.
    #[tokio::test]
    async fn exhausted_positions_are_a_typed_error() {
        let hub = MemoryHub::new(1).expect("one partition");
        let node = hub.connect(NodeId::new("a"));
        let p = PartitionId(0);
        node.discard_before(p, InputPosition(u64::MAX - 1))
            .await
            .expect("discards");

        let last = node
            .send(p, vec![b"last".to_vec()])
            .await
            .expect("room for one");
        assert_eq!(last, [InputPosition(u64::MAX - 1)]);
        let refused = node.send(p, vec![b"one more".to_vec()]).await;
        assert!(matches!(
            refused,
            Err(Error::LimitExceeded {
                limit: "input_positions",
                ..
            })
        ));

        let mut input = node
            .subscribe(p, InputPosition(u64::MAX - 1))
            .await
            .expect("subscribes");
        let event = input.next().await.expect("an event").expect("no error");
        assert_eq!(event.next_position(), InputPosition(u64::MAX));
    }
}
