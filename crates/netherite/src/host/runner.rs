//! The partition loop: one task that owns the state and applies every update, in order.
//!
//! ```text
//!  transport input ──┐                          ┌─► workers (episodes, activities)  start now
//!  worker answers ───┤                          ├─► timer task                       re-armed
//!  timer wake-ups ───┼─► log append ─► apply ───┼─► outbox / responder   once durable
//!  confirmations ────┤   (no wait)              └─► checkpoint task      by size, count, idle
//!  reads, shutdown ──┘
//! ```
//!
//! Each update gets the time and a seed, is appended to the commit log without waiting for
//! durability, and is applied at once; its effects are carried out right away, except that
//! anything leaving the partition waits for the durable point (see `outbox`). The log's
//! flusher does group commit on its own: while one flush runs, every update appended meanwhile
//! joins the next. The loop takes whatever else is ready (up to [`BATCH_EVENTS_MAX`]) before
//! it re-arms the timer and looks at the checkpoint cadence.

use std::sync::Arc;
use std::time::Duration;

use netherite_core::codec;
use netherite_core::partition::{
    ClientRequest, Effect, LocalClientRequest, PartitionState, ReadEvent, ReadResult, UpdateEvent,
    UpdateKind, WaitUntil,
};
use netherite_core::{ClientId, CommitPosition, InstanceId, PartitionId, RequestSeq, Timestamp};
use netherite_faster::log::CommitLog;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::storage;
use super::checkpointer::Checkpointer;
use super::clock::{EventClock, Seeds};
use super::durability::DurabilityTracker;
use super::input::{Fed, InputFeed};
use super::outbox::Outbox;
use super::oversize::{PAYLOAD_TOO_LARGE, RESULT_TOO_LARGE, oversized_payload, replace_by_failure};
use super::recovery::update_kind;
use super::storage::{PartitionDevices, PartitionFence};
use super::waiters::{WaitReply, Waiters};
use super::workers::WorkerLink;
use super::{HostContext, HostStats};
use crate::Error;

/// The most updates the loop applies before it hands the batch to the log's flusher.
pub(crate) const BATCH_EVENTS_MAX: usize = 512;
/// How long a graceful stop lets the outbox send what it holds.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The pause before subscribing again to an input that failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(100);

/// What the loop is asked to do, besides reading its input.
#[derive(Debug)]
pub(crate) enum Command {
    /// Log and apply this update (worker answers, outbox confirmations).
    Update(UpdateKind),
    /// The timer reached this due time.
    TimersDue(Timestamp),
    /// Answer a read from the live state, once what it shows is durable.
    Read(ReadEvent, oneshot::Sender<Result<ReadResult, Error>>),
    /// Answer once the instance started or finished (see `waiters`).
    Wait(InstanceId, WaitUntil, WaitReply),
    /// Log and apply the requests of a client of this process, in order; their answers go to
    /// the client's response queue like those of requests read from the input.
    ClientRequests(ClientId, Vec<(RequestSeq, ClientRequest)>),
    /// Report the host's figures.
    Inspect(oneshot::Sender<HostStats>),
    /// Take a checkpoint, stop, and report how that went.
    Shutdown(oneshot::Sender<Result<(), Error>>),
}

/// What woke the loop.
// A short-lived local moved once per update; boxing the command would allocate per update.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Command(Command),
    Input(Fed),
    Resubscribe,
    CheckpointDue,
    CheckpointDone,
    /// The storage's claim on the partition is gone: another node owns it now.
    FenceLost,
}

/// The loop's state: everything a partition needs while it runs.
pub(crate) struct Runner {
    pub(crate) partition: PartitionId,
    pub(crate) state: PartitionState,
    pub(crate) log: Arc<CommitLog>,
    pub(crate) context: Arc<HostContext>,
    pub(crate) clock: EventClock,
    pub(crate) seeds: Seeds,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) link: WorkerLink,
    pub(crate) stopping: watch::Sender<bool>,
    pub(crate) durability: DurabilityTracker,
    pub(crate) outbox: Option<Outbox>,
    pub(crate) timer: watch::Sender<Option<Timestamp>>,
    pub(crate) armed: Option<Timestamp>,
    pub(crate) timer_changed: bool,
    pub(crate) checkpointer: Checkpointer,
    pub(crate) input: Option<InputFeed>,
    pub(crate) resubscribe_at: Option<tokio::time::Instant>,
    pub(crate) shutdown: Option<oneshot::Sender<Result<(), Error>>>,
    pub(crate) devices: PartitionDevices,
    pub(crate) waiters: Waiters,
}

impl Runner {
    /// Serves until shut down or stopped by an error, then stops cleanly.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        let served = self.serve().await;
        if let Err(error) = &served {
            tracing::error!(partition = %self.partition, %error, "partition stopped");
        }
        let stopped = self.stop(served.is_ok()).await;
        let result = served.and(stopped);
        if let Some(reply) = self.shutdown.take() {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(Error::PartitionStopped {
                    partition: self.partition,
                    reason: error.to_string(),
                }),
            };
            let _ = reply.send(answer);
        }
        result
    }

    /// Logs and applies `Recovered`, carrying out what it re-issues, and subscribes the input.
    pub(crate) async fn start(&mut self) -> Result<(), Error> {
        self.update(UpdateKind::Recovered, None).await?;
        self.subscribe().await;
        self.after_batch();
        Ok(())
    }

    async fn serve(&mut self) -> Result<(), Error> {
        loop {
            let wake = self.next_wake().await;
            self.handle(wake).await?;
            let mut handled = 1;
            while handled < BATCH_EVENTS_MAX && self.shutdown.is_none() {
                let Some(wake) = self.ready_wake() else { break };
                self.handle(wake).await?;
                handled += 1;
            }
            tracing::debug!(partition = %self.partition, updates = handled, "batch applied");
            self.after_batch();
            if self.shutdown.is_some() {
                return Ok(());
            }
            if let Some(reason) = self.durability.watch().failure() {
                return Err(Error::PartitionStopped {
                    partition: self.partition,
                    reason: format!("the commit log stopped: {reason}"),
                });
            }
        }
    }

    /// Waits for the next thing to do.
    async fn next_wake(&mut self) -> Wake {
        let checkpoint_at = self.checkpointer.idle_deadline();
        let resubscribe_at = self.resubscribe_at;
        let fence = self.devices.fence.clone();
        tokio::select! {
            biased;
            // First: a partition whose claim is gone must not take one more step.
            () = fence_lost(fence) => Wake::FenceLost,
            command = self.commands.recv() => match command {
                Some(command) => Wake::Command(command),
                None => std::future::pending().await,
            },
            () = self.checkpointer.finished() => Wake::CheckpointDone,
            event = next_input(&mut self.input) => Wake::Input(event),
            () = sleep_until(resubscribe_at) => Wake::Resubscribe,
            () = sleep_until(checkpoint_at) => Wake::CheckpointDue,
        }
    }

    /// Something to do that is ready now, without waiting.
    fn ready_wake(&mut self) -> Option<Wake> {
        if let Ok(command) = self.commands.try_recv() {
            return Some(Wake::Command(command));
        }
        self.input.as_mut()?.try_next().map(Wake::Input)
    }

    async fn handle(&mut self, wake: Wake) -> Result<(), Error> {
        match wake {
            Wake::Command(command) => self.command(command).await,
            Wake::Input(event) => self.input(event).await,
            Wake::Resubscribe => {
                self.subscribe().await;
                Ok(())
            }
            Wake::CheckpointDue => {
                self.checkpoint_now();
                Ok(())
            }
            Wake::CheckpointDone => {
                self.checkpointer.collect().await;
                Ok(())
            }
            Wake::FenceLost => Err(Error::PartitionStopped {
                partition: self.partition,
                reason: "another node took over its lease".into(),
            }),
        }
    }

    async fn command(&mut self, command: Command) -> Result<(), Error> {
        match command {
            Command::Update(kind) => self.update(kind, None).await,
            Command::TimersDue(due) => {
                // Cleared first when it is the time that fired: applying TimersFired re-arms
                // the timer if anything is left. A stale due time (the earliest changed since)
                // leaves the newer one armed, which the state would not report again.
                if self.armed == Some(due) {
                    self.armed = None;
                }
                self.timer_changed = true;
                self.update(UpdateKind::TimersFired, Some(due)).await
            }
            Command::Read(read, reply) => {
                self.read(&read, reply);
                Ok(())
            }
            Command::Wait(instance, until, reply) => {
                let max = self.context.config.limits.waiters_max;
                let durable = self.durability.watch();
                let wait = (instance, until);
                self.waiters.add(&self.state, &durable, wait, reply, max);
                Ok(())
            }
            Command::ClientRequests(client, requests) => {
                for (seq, request) in requests {
                    let local = LocalClientRequest {
                        client,
                        seq,
                        request,
                    };
                    self.update(UpdateKind::LocalClientRequest(local), None)
                        .await?;
                }
                Ok(())
            }
            Command::Inspect(reply) => {
                let _ = reply.send(self.stats());
                Ok(())
            }
            Command::Shutdown(reply) => {
                self.shutdown = Some(reply);
                Ok(())
            }
        }
    }

    /// Logs `kind` with the time (at least `floor`) and a seed, applies it, carries out its
    /// effects.
    pub(crate) async fn update(
        &mut self,
        kind: UpdateKind,
        floor: Option<Timestamp>,
    ) -> Result<(), Error> {
        let now = match floor {
            Some(floor) => self.clock.at_least(floor),
            None => self.clock.now(),
        };
        let mut event = UpdateEvent {
            now,
            seed: self.seeds.next(),
            kind,
        };
        let Some(bytes) = self.encode(&mut event) else {
            return Ok(());
        };
        let appended = self.log.append(update_kind(), &bytes).await;
        let (_, durable) =
            appended.map_err(|e| storage(self.partition, "appending to the commit log", e))?;
        let at = CommitPosition(durable.end().0);
        tracing::trace!(partition = %self.partition, position = %at, kind = event.kind_name(),
            "update logged");

        let applied = self.state.apply_noting_changes(at, &event);
        self.checkpointer.applied();
        // Told per update, not per batch: a sender the loop may wait on needs the durable
        // point to move while the batch is still being applied.
        self.durability.appended(at);
        if !self.waiters.is_empty() && !applied.changed.is_empty() {
            let durable = self.durability.watch();
            self.waiters
                .changed(&self.state, &durable, &applied.changed);
        }
        self.carry_out(applied.effects).await;
        Ok(())
    }

    /// The record bytes of `event`, replacing a worker answer with a payload over
    /// `payload_bytes_max`, or too large to log, by a failure; `None` (logged) for anything
    /// else that cannot be logged.
    fn encode(&self, event: &mut UpdateEvent) -> Option<Vec<u8>> {
        let payload_max = self.context.config.payload_bytes_max;
        if let Some(error) = oversized_payload(&event.kind, payload_max) {
            tracing::warn!(partition = %self.partition, kind = event.kind_name(), %error,
                "worker answer refused");
            replace_by_failure(&mut event.kind, PAYLOAD_TOO_LARGE, &error);
        }
        let max = u64::from(self.context.config.log.record_bytes_max);
        let error = match codec::encode(&*event) {
            Ok(bytes) if bytes.len() as u64 <= max => return Some(bytes),
            Ok(bytes) => format!(
                "{} bytes, over the commit log's record limit {max}",
                bytes.len()
            ),
            Err(error) => error.to_string(),
        };
        tracing::warn!(partition = %self.partition, kind = event.kind_name(), %error,
            "update cannot be logged");
        if !replace_by_failure(&mut event.kind, RESULT_TOO_LARGE, &error) {
            return None;
        }
        codec::encode(&*event).ok()
    }

    async fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::StartEpisode(episode) => {
                    self.context
                        .workers
                        .start_episode(episode, self.link.clone());
                }
                Effect::StartActivity(activity) => {
                    self.context
                        .workers
                        .start_activity(activity, self.link.clone());
                }
                Effect::StartEntityBatch(batch) => {
                    self.context
                        .workers
                        .start_entity_batch(batch, self.link.clone());
                }
                Effect::ArmTimer { due } => {
                    self.armed = Some(due);
                    self.timer_changed = true;
                }
                Effect::SendMessages(batch) => {
                    if let Some(outbox) = &mut self.outbox {
                        outbox.send(batch);
                    }
                }
                Effect::RespondToClient(answer) => {
                    if let Some(outbox) = &mut self.outbox {
                        outbox.respond(answer).await;
                    }
                }
            }
        }
    }

    async fn input(&mut self, fed: Fed) -> Result<(), Error> {
        match fed {
            Fed::Message { next, message } => {
                if next <= self.state.input_position() {
                    return Ok(());
                }
                self.update(message.into_update(next), None).await
            }
            Fed::Undecodable { position, error } => {
                tracing::error!(partition = %self.partition, position = %position, %error,
                    "undecodable input skipped");
                Ok(())
            }
            Fed::Failed(error) => {
                tracing::warn!(partition = %self.partition, %error, "input failed; resubscribing");
                self.input_ended(!matches!(error, netherite_core::Error::Closed));
                Ok(())
            }
            Fed::Ended => {
                self.input_ended(false);
                Ok(())
            }
        }
    }

    fn input_ended(&mut self, retry: bool) {
        self.input = None;
        if retry {
            self.resubscribe_at = Some(tokio::time::Instant::now() + RESUBSCRIBE_DELAY);
        } else {
            tracing::info!(partition = %self.partition, "input closed");
        }
    }

    async fn subscribe(&mut self) {
        self.resubscribe_at = None;
        let from = self.state.input_position();
        match InputFeed::subscribe(&self.context.transport, self.partition, from).await {
            Ok(feed) => self.input = Some(feed),
            Err(netherite_core::Error::Closed) => self.input_ended(false),
            Err(error) => {
                tracing::warn!(partition = %self.partition, %error, from = %from,
                    "subscribing to the input failed; retrying");
                self.input_ended(true);
            }
        }
    }

    /// Answers `read` from the live state, once everything it may show is durable.
    fn read(&self, read: &ReadEvent, reply: oneshot::Sender<Result<ReadResult, Error>>) {
        let result = self.state.read(read);
        let shown = self.state.last_applied().unwrap_or(CommitPosition::START);
        self.durability
            .watch()
            .send_once_durable(shown, Ok(result), reply);
    }

    fn stats(&self) -> HostStats {
        HostStats {
            partition: self.partition,
            state: self.state.stats(),
            last_applied: self.state.last_applied(),
            input_position: self.state.input_position(),
            durable: CommitPosition(self.durability.watch().position()),
            checkpoints: self.checkpointer.taken(),
            last_checkpoint: self.checkpointer.last(),
            armed: self.armed,
            waiting: self.waiters.len(),
        }
    }

    /// After a batch: re-arm the timer, maybe checkpoint.
    fn after_batch(&mut self) {
        if self.timer_changed {
            self.timer.send_replace(self.armed);
            self.timer_changed = false;
        }
        let appended = self.log.appended().0;
        if self.checkpointer.is_due(appended) {
            self.checkpoint_now();
        }
    }

    /// Hands the checkpoint task the state as it is now, unless one is under way.
    fn checkpoint_now(&mut self) {
        if self.checkpointer.is_busy() || !self.checkpointer.has_news() {
            return;
        }
        let commit = self.state.last_applied().unwrap_or(CommitPosition::START);
        match postcard::to_stdvec(&self.state) {
            Ok(encoded) => {
                self.checkpointer
                    .submit(encoded, commit, self.state.input_position());
            }
            Err(error) => {
                tracing::error!(partition = %self.partition, %error, "state does not encode")
            }
        }
    }

    /// Stops: on a graceful stop a last checkpoint and a drained outbox; always the workers,
    /// timer and log.
    async fn stop(&mut self, graceful: bool) -> Result<(), Error> {
        self.input = None;
        let mut result = Ok(());
        if graceful {
            result = self.final_checkpoint().await;
            if let Some(outbox) = self.outbox.take() {
                outbox.drain(DRAIN_GRACE).await;
            }
        }
        self.outbox = None;
        self.stopping.send_replace(true);
        self.checkpointer.close().await;
        if let Err(error) = self.log.close().await {
            tracing::warn!(partition = %self.partition, %error, "closing the commit log failed");
        }
        let devices = self.devices.clone();
        devices.release(self.partition).await;
        tracing::info!(partition = %self.partition, graceful, "partition stopped");
        result
    }

    async fn final_checkpoint(&mut self) -> Result<(), Error> {
        self.checkpointer.wait_idle().await;
        self.checkpoint_now();
        self.checkpointer.wait_idle().await;
        match self.checkpointer.last_error() {
            Some(error) => Err(Error::PartitionStopped {
                partition: self.partition,
                reason: format!("the last checkpoint failed: {error}"),
            }),
            None => Ok(()),
        }
    }
}

async fn next_input(input: &mut Option<InputFeed>) -> Fed {
    match input {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `fence` reports its claim lost; never without a fence.
async fn fence_lost(fence: Option<Arc<dyn PartitionFence>>) {
    match fence {
        Some(fence) => fence.lost().await,
        None => std::future::pending().await,
    }
}
