//! What leaves a partition: batches for other partitions and answers to clients, each sent
//! only once the update that produced it is durable.
//!
//! - **To partitions**: one task per destination, fed in commit order. Receivers drop any
//!   batch whose stamp is at or below the highest they applied from this origin, so batches
//!   for one destination must arrive in stamp order: the task sends one call at a time, puts
//!   every batch that is already durable into that call (one durable append at the
//!   destination for many batches), and retries a failed call until it succeeds before going
//!   on. A call that returned means the destination holds the batches durably, and the task
//!   tells the loop with an `OutboxConfirmed` so the state can forget them.
//! - **To clients**: one task that waits for durability in order and sends each answer on its
//!   own (answers carry their request's number, so their order does not matter).
//!
//! The queues to other partitions are unbounded on purpose. What they hold mirrors the state's
//! outbox (a batch stays there until confirmed), so they hold no more than the state does; and
//! a bounded queue could stall two partitions for good, each loop waiting for room in its
//! queue to the other while the other's input is full. The tasks never wait for the loop
//! either: confirmations are offered with `try_send`, and one that is dropped is harmless,
//! since a later confirmation covers it and recovery resends anything unconfirmed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use netherite_core::partition::{OutboxConfirmed, RespondToClient, SendMessages, UpdateKind};
use netherite_core::transport::Transport;
use netherite_core::{CommitPosition, PartitionId};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::durability::DurableWatch;
use super::runner::Command;
use crate::wire::{self, ClientMessage, InputMessage};

/// The most batches one send to a destination carries.
pub(crate) const SEND_BATCHES_MAX: usize = 256;
/// The most client answers being sent at once by one partition.
pub(crate) const CLIENT_SENDS_MAX: usize = 64;
/// How often an answer to a client is tried before it is given up (the client asks again).
const CLIENT_ATTEMPTS_MAX: u32 = 5;
/// The pause after a failed send; it doubles up to [`RETRY_DELAY_MAX`].
const RETRY_DELAY_MIN: Duration = Duration::from_millis(10);
/// The longest pause between two attempts of a send.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);
/// Queued answers before the loop waits (back-pressure).
const QUEUE_MAX: usize = 4096;

/// The partition's senders.
#[derive(Debug)]
pub(crate) struct Outbox {
    origin: PartitionId,
    transport: Arc<dyn Transport>,
    durable: DurableWatch,
    commands: mpsc::Sender<Command>,
    destinations: HashMap<PartitionId, mpsc::UnboundedSender<SendMessages>>,
    responses: mpsc::Sender<RespondToClient>,
    tasks: JoinSet<()>,
}

impl Outbox {
    /// The senders of partition `origin`.
    pub(crate) fn new(
        origin: PartitionId,
        transport: Arc<dyn Transport>,
        durable: DurableWatch,
        commands: mpsc::Sender<Command>,
    ) -> Outbox {
        let (responses, receiver) = mpsc::channel(QUEUE_MAX);
        let mut tasks = JoinSet::new();
        let responder = Responder {
            transport: transport.clone(),
            durable: durable.clone(),
            origin,
        };
        tasks.spawn(responder.run(receiver));
        Outbox {
            origin,
            transport,
            durable,
            commands,
            destinations: HashMap::new(),
            responses,
            tasks,
        }
    }

    /// Queues a batch for its destination.
    pub(crate) fn send(&mut self, batch: SendMessages) {
        if batch.destination == self.origin {
            // The state machine delivers local messages in place; this would be a bug there.
            tracing::error!(partition = %self.origin, "batch for its own partition dropped");
            return;
        }
        let queue = self.queue(batch.destination);
        if queue.send(batch).is_err() {
            tracing::warn!(partition = %self.origin, "sender stopped; batch left to recovery");
        }
    }

    /// Queues an answer for its client.
    pub(crate) async fn respond(&mut self, answer: RespondToClient) {
        if self.responses.send(answer).await.is_err() {
            tracing::warn!(partition = %self.origin, "responder stopped; answer dropped");
        }
    }

    /// Stops taking work and lets the tasks send what they hold, for at most `grace`.
    pub(crate) async fn drain(mut self, grace: Duration) {
        self.destinations.clear();
        drop(self.responses);
        let finished = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        });
        if finished.await.is_err() {
            tracing::warn!(partition = %self.origin, "outbox not drained; recovery resends it");
            self.tasks.abort_all();
        }
    }

    fn queue(&mut self, destination: PartitionId) -> &mpsc::UnboundedSender<SendMessages> {
        self.destinations.entry(destination).or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let task = DestinationSender {
                origin: self.origin,
                destination,
                transport: self.transport.clone(),
                durable: self.durable.clone(),
                commands: self.commands.clone(),
            };
            self.tasks.spawn(task.run(receiver));
            sender
        })
    }
}

/// Sends the batches for one destination, in order.
struct DestinationSender {
    origin: PartitionId,
    destination: PartitionId,
    transport: Arc<dyn Transport>,
    durable: DurableWatch,
    commands: mpsc::Sender<Command>,
}

impl DestinationSender {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<SendMessages>) {
        let mut carried: Option<SendMessages> = None;
        loop {
            let first = match carried.take() {
                Some(batch) => batch,
                None => match queue.recv().await {
                    Some(batch) => batch,
                    None => return,
                },
            };
            if let Err(error) = self.durable.wait_for(first.after).await {
                tracing::warn!(partition = %self.origin, %error, "sender stopped");
                return;
            }
            let mut batches = vec![first];
            while batches.len() < SEND_BATCHES_MAX {
                match queue.try_recv() {
                    Ok(next) if self.durable.is_durable(next.after) => batches.push(next),
                    Ok(next) => {
                        carried = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !self.send(&batches).await {
                return;
            }
        }
    }

    /// Sends `batches`, retrying until they are delivered; false if the transport closed.
    ///
    /// Batches go in one call; if the transport refuses the call as too large, they go one
    /// by one (see [`Self::send_each`]).
    async fn send(&self, batches: &[SendMessages]) -> bool {
        let outcome = match self.send_call(batches).await {
            Delivery::TooLarge(_) if batches.len() > 1 || batches[0].messages.len() > 1 => {
                self.send_each(batches).await
            }
            outcome => outcome,
        };
        match outcome {
            Delivery::Closed => return false,
            Delivery::TooLarge(error) => self.dropped(&batches[0], &error),
            Delivery::Sent => {}
        }
        self.confirm(batches);
        true
    }

    /// Sends each of `batches` in its own call; one still too large goes one message per
    /// call, and a single message the transport refuses is given up with an error (it can
    /// never fit).
    ///
    /// The pieces of a split batch are stamped with the batch's sub-position plus their
    /// index. The receiver keeps the highest stamp per origin, and an event sends at most one
    /// batch to a destination, so these stamps increase and collide with nothing; they depend
    /// on the messages alone, so a resend after recovery repeats them and is deduplicated.
    async fn send_each(&self, batches: &[SendMessages]) -> Delivery {
        for batch in batches {
            match self.send_call(std::slice::from_ref(batch)).await {
                Delivery::Closed => return Delivery::Closed,
                Delivery::TooLarge(error) if batch.messages.len() <= 1 => {
                    self.dropped(batch, &error);
                }
                Delivery::TooLarge(_) => {
                    if matches!(self.send_split(batch).await, Delivery::Closed) {
                        return Delivery::Closed;
                    }
                }
                Delivery::Sent => {}
            }
        }
        Delivery::Sent
    }

    /// Sends the messages of `batch` one per call (see [`Self::send_each`]).
    async fn send_split(&self, batch: &SendMessages) -> Delivery {
        tracing::info!(partition = %self.origin, destination = %self.destination,
            messages = batch.messages.len(), "batch too large for one message; split");
        for (index, message) in (0u32..).zip(&batch.messages) {
            let Some(sub_position) = batch.sub_position.checked_add(index) else {
                let error = netherite_core::Error::InvalidArgument {
                    operation: "splitting an outgoing batch",
                    reason: "its sub-positions run past u32::MAX".into(),
                };
                self.dropped(batch, &error);
                return Delivery::Sent;
            };
            let piece = SendMessages {
                sub_position,
                messages: vec![message.clone()],
                ..batch.clone()
            };
            match self.send_call(std::slice::from_ref(&piece)).await {
                Delivery::Closed => return Delivery::Closed,
                Delivery::TooLarge(error) => self.dropped(&piece, &error),
                Delivery::Sent => {}
            }
        }
        Delivery::Sent
    }

    /// Logs that `batch` can never be delivered.
    fn dropped(&self, batch: &SendMessages, error: &netherite_core::Error) {
        tracing::error!(partition = %self.origin, destination = %self.destination,
            origin_position = %batch.origin_position, messages = batch.messages.len(),
            %error, "outgoing messages can never be delivered; dropped");
    }

    /// One call of the transport, retried while the error may pass.
    async fn send_call(&self, batches: &[SendMessages]) -> Delivery {
        let payloads = match encode_batches(batches) {
            Ok(payloads) => payloads,
            Err(error) => return Delivery::TooLarge(error),
        };
        let mut delay = RETRY_DELAY_MIN;
        loop {
            match self
                .transport
                .send(self.destination, payloads.clone())
                .await
            {
                Ok(_) => return Delivery::Sent,
                Err(netherite_core::Error::Closed) => return Delivery::Closed,
                Err(error @ netherite_core::Error::InvalidArgument { .. }) => {
                    return Delivery::TooLarge(error);
                }
                Err(netherite_core::Error::LimitExceeded { limit, actual, max })
                    if limit.contains("bytes") =>
                {
                    let error = netherite_core::Error::LimitExceeded { limit, actual, max };
                    return Delivery::TooLarge(error);
                }
                Err(error) => {
                    tracing::warn!(partition = %self.origin, destination = %self.destination,
                        %error, retry_in_ms = delay.as_millis() as u64, "send failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_DELAY_MAX);
                }
            }
        }
    }

    /// Tells the loop that the destination holds everything up to the last of `batches`.
    fn confirm(&self, batches: &[SendMessages]) {
        let upto = batches
            .last()
            .map_or(CommitPosition::START, |b| b.origin_position);
        tracing::trace!(partition = %self.origin, destination = %self.destination,
            batches = batches.len(), upto = %upto, "batches sent");
        let confirmed = OutboxConfirmed {
            destination: self.destination,
            position: upto,
        };
        let update = Command::Update(UpdateKind::OutboxConfirmed(confirmed));
        let _ = self.commands.try_send(update);
    }
}

/// How one send call ended.
enum Delivery {
    /// The destination holds the batches durably.
    Sent,
    /// The transport refuses them for good (a payload over its size limit).
    TooLarge(netherite_core::Error),
    /// The transport shut down.
    Closed,
}

fn encode_batches(batches: &[SendMessages]) -> Result<Vec<Vec<u8>>, netherite_core::Error> {
    batches
        .iter()
        .map(|batch| {
            wire::encode(&InputMessage::Partition {
                origin: batch.origin,
                origin_position: batch.origin_position,
                sub_position: batch.sub_position,
                messages: batch.messages.clone(),
            })
        })
        .collect()
}

/// Sends answers to clients once durable.
struct Responder {
    transport: Arc<dyn Transport>,
    durable: DurableWatch,
    origin: PartitionId,
}

impl Responder {
    async fn run(mut self, mut queue: mpsc::Receiver<RespondToClient>) {
        let limit = Arc::new(Semaphore::new(CLIENT_SENDS_MAX));
        let mut sends = JoinSet::new();
        while let Some(answer) = queue.recv().await {
            if let Err(error) = self.durable.wait_for(answer.after).await {
                tracing::warn!(partition = %self.origin, %error, "responder stopped");
                return;
            }
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let (transport, origin) = (self.transport.clone(), self.origin);
            sends.spawn(async move {
                answer_client(&*transport, origin, answer).await;
                drop(permit);
            });
            while sends.try_join_next().is_some() {}
        }
        while sends.join_next().await.is_some() {}
    }
}

async fn answer_client(transport: &dyn Transport, origin: PartitionId, answer: RespondToClient) {
    let message = ClientMessage {
        seq: answer.seq,
        response: answer.response,
    };
    let payload = match wire::encode(&message) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(partition = %origin, client = %answer.client, %error,
                "answer does not encode; dropped");
            return;
        }
    };
    let mut delay = RETRY_DELAY_MIN;
    for attempt in 1..=CLIENT_ATTEMPTS_MAX {
        match transport
            .send_to_client(answer.client, payload.clone())
            .await
        {
            Ok(_) => return,
            Err(netherite_core::Error::Closed) => return,
            Err(error) if attempt == CLIENT_ATTEMPTS_MAX => {
                tracing::warn!(partition = %origin, client = %answer.client, %error,
                    "answer given up; the client asks again");
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_DELAY_MAX);
            }
        }
    }
}
