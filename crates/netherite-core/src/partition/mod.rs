//! The partition state machine: `(state, update event) -> (state', effects)`.
//!
//! A partition owns the instances and entities placed on it. Everything that changes it is an
//! [`UpdateEvent`], logged in the partition's commit log at a [`CommitPosition`] before or
//! while it is applied; [`PartitionState::apply`] changes the state and returns [`Effect`]s as
//! values. Reads ([`ReadEvent`]) only borrow the state; they are logged only when a client of
//! another process asks through the input ([`ClientRequest::Read`]).
//!
//! ```text
//!  input stream: PartitionMessages, ClientRequest        ─┐
//!  workers:      EpisodeCompleted, EpisodeAbandoned,      │
//!                EntityBatchCompleted, ...Abandoned,      ├─► apply(at, event) ─► effects
//!                ActivityCompleted                        │
//!  engine:       TimersFired, OutboxConfirmed, Recovered ─┘
//!
//!  effects:      StartEpisode, StartEntityBatch, StartActivity    run at once
//!                SendMessages, RespondToClient                    once `after` is durable
//!                                                                 (batches per destination
//!                                                                 in order)
//!                ArmTimer                                         log TimersFired at `due`
//! ```
//!
//! The main decisions:
//!
//! - **Deterministic.** Time and fresh ids come inside the event, so replaying the log onto a
//!   checkpoint (a serialized [`PartitionState`]) gives back the live state exactly.
//! - **Idempotent.** An event at or below the last applied commit position is a no-op; an
//!   input event at or below the recorded input position is a redelivery; batches from other
//!   partitions are deduplicated by their origin stamp (so an origin's batches for one
//!   destination arrive in order) and client requests by their sequence number (which may
//!   arrive out of order, by less than [`CLIENT_SEQ_LAG_MAX`]). Commit positions must
//!   increase but need not be dense.
//! - **Never fails on logged input.** A logged event that cannot be used (a stale completion,
//!   a message for a missing instance, a malformed request) is dropped or answered with a
//!   typed [`Rejection`]; panicking or erroring would stop the partition on every replay.
//! - **Local messages stay local.** Messages between instances of this partition are
//!   delivered within the same update, never through the transport.
//! - **Bounded.** Episode and batch sizes, waits, client records and purge rounds have limits
//!   ([`Limits`]); hitting one delays work or rejects a request by name.
//!
//! The state is made of tracked objects, one module each: sessions (inboxes and episodes in
//! flight), activities, timers, outbox, dedup, instances (with their histories and the
//! secondary [`index`]), entities and waits. Handlers live beside them: delivery, dispatch,
//! client requests, worker completions and upkeep (timers, recovery).
//!
//! ```
//! use netherite_core::ids::{ClientId, CommitPosition, InputPosition, InstanceId, PartitionId};
//! use netherite_core::ids::RequestSeq;
//! use netherite_core::partition::*;
//! use netherite_core::time::Timestamp;
//!
//! let config = PartitionConfig {
//!     partition: PartitionId(0),
//!     partition_count: 1,
//!     limits: Limits::default(),
//! };
//! let mut partition = PartitionState::new(config)?;
//! let create = CreateInstance {
//!     instance: InstanceId::new("order-1"),
//!     name: "ProcessOrder".into(),
//!     version: None,
//!     input: Some("42".into()),
//!     tags: Default::default(),
//!     scheduled_start: None,
//!     execution: None,
//!     replaceable: Vec::new(),
//!     parent_trace_context: None,
//! };
//! let request = ClientRequestEvent {
//!     input: InputPosition(1),
//!     client: ClientId(7),
//!     seq: RequestSeq(1),
//!     request: ClientRequest::Create(create),
//! };
//! let event = UpdateEvent {
//!     now: Timestamp::new(1_700_000_000, 0),
//!     seed: 0x5eed,
//!     kind: UpdateKind::ClientRequest(request),
//! };
//!
//! let effects = partition.apply(CommitPosition(1), &event);
//!
//! // The answer waits for position 1 to be durable; the first episode starts at once.
//! assert!(matches!(&effects[0], Effect::RespondToClient(r) if r.after == CommitPosition(1)));
//! assert!(matches!(&effects[1], Effect::StartEpisode(e) if e.new_events.len() == 2));
//! // Applying the same position again changes nothing.
//! assert!(partition.apply(CommitPosition(1), &event).is_empty());
//! # Ok::<(), netherite_core::Error>(())
//! ```

mod activities;
mod clients;
mod completions;
mod dedup;
mod delivery;
mod dispatch;
mod effect;
mod entities;
mod event;
pub mod index;
mod instances;
mod outbox;
mod read;
mod response;
mod sessions;
mod step;
#[cfg(feature = "testing")]
pub mod testing;
mod timers;
mod upkeep;
mod view;
mod waits;

use serde::{Deserialize, Serialize};
use tracing::{debug, trace};

pub use dedup::CLIENT_SEQ_LAG_MAX;
pub use effect::{
    Effect, RespondToClient, SendMessages, StartActivity, StartEntityBatch, StartEpisode,
};
pub use event::{
    ActivityCompleted, ActivityId, ClientRequest, ClientRequestEvent, CreateInstance,
    EntityBatchAbandoned, EntityBatchCompleted, EpisodeAbandoned, EpisodeCompleted, EpisodeNumber,
    LocalClientRequest, OutboxConfirmed, PartitionMessages, SignalEntity, UpdateEvent, UpdateKind,
    WaitFor, WaitUntil,
};
pub use read::{EntityQuery, ReadEvent, ReadResult};
pub use response::{ClientResponse, Rejection};
pub use view::{EntityPage, EntityView, InstancePage, InstanceView, StatsView};

use crate::Error;
use crate::ids::{CommitPosition, InputPosition, InstanceId, PartitionId};
use crate::model::OrchestrationStatus;
use activities::Activities;
use dedup::Dedup;
use entities::Entities;
use instances::Instances;
use outbox::Outbox;
use sessions::Sessions;
use step::Step;
use timers::Timers;
use waits::Waits;

/// The bounds a partition keeps. They are part of the state, so a replay applies the same ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Inbox events given to one episode; the rest wait for the next.
    pub episode_events_max: usize,
    /// Operations given to one entity batch.
    pub entity_batch_max: usize,
    /// Inbox events of one instance (queued operations of one entity) beyond which a
    /// client's `RaiseEvent` (`SignalEntity`) is rejected.
    pub inbox_events_max: usize,
    /// Pending client waits.
    pub waiters_max: usize,
    /// Clients remembered for deduplication.
    pub clients_max: usize,
    /// Answers kept per client for retries.
    pub client_responses_max: usize,
    /// Instances deleted by one `PurgeByFilter` request; at most [`index::PAGE_SIZE_MAX`].
    pub purge_batch_max: usize,
    /// Results in one page of a query (and the page size when none is asked for); at most
    /// [`index::PAGE_SIZE_MAX`].
    pub query_page_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            episode_events_max: 1_000,
            entity_batch_max: 100,
            inbox_events_max: 10_000,
            waiters_max: 10_000,
            clients_max: 10_000,
            client_responses_max: 16,
            purge_batch_max: 200,
            query_page_max: 1_000,
        }
    }
}

impl Limits {
    /// The name of the first limit an index page cannot serve: more than one page holds.
    fn first_past_page(&self) -> Option<&'static str> {
        let paged = [
            ("purge_batch_max", self.purge_batch_max),
            ("query_page_max", self.query_page_max),
        ];
        paged
            .into_iter()
            .find(|(_, value)| *value > index::PAGE_SIZE_MAX)
            .map(|(name, _)| name)
    }

    /// The name of the first limit set to zero, which would stall the partition.
    fn first_zero(&self) -> Option<&'static str> {
        let all = [
            ("episode_events_max", self.episode_events_max),
            ("entity_batch_max", self.entity_batch_max),
            ("inbox_events_max", self.inbox_events_max),
            ("waiters_max", self.waiters_max),
            ("clients_max", self.clients_max),
            ("client_responses_max", self.client_responses_max),
            ("purge_batch_max", self.purge_batch_max),
            ("query_page_max", self.query_page_max),
        ];
        all.into_iter()
            .find(|(_, value)| *value == 0)
            .map(|(name, _)| name)
    }
}

/// Which partition this is, of how many, and its limits.
///
/// A configuration is checked where it enters: by [`PartitionState::new`], and when a
/// checkpoint is loaded (a stored configuration that breaks a rule does not deserialize).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedConfig")]
pub struct PartitionConfig {
    /// This partition.
    pub partition: PartitionId,
    /// The number of partitions of the task hub (placement depends on it).
    pub partition_count: u32,
    /// The bounds kept.
    pub limits: Limits,
}

/// A [`PartitionConfig`] as stored, before its rules are checked.
#[derive(Deserialize)]
struct UncheckedConfig {
    partition: PartitionId,
    partition_count: u32,
    limits: Limits,
}

impl TryFrom<UncheckedConfig> for PartitionConfig {
    type Error = Error;

    fn try_from(unchecked: UncheckedConfig) -> Result<PartitionConfig, Error> {
        let config = PartitionConfig {
            partition: unchecked.partition,
            partition_count: unchecked.partition_count,
            limits: unchecked.limits,
        };
        config.check()?;
        Ok(config)
    }
}

impl PartitionConfig {
    /// Fails if there are no partitions, `partition` is not one of them, a limit is zero, or
    /// a paged limit is past what one index page holds.
    fn check(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            operation: "partition config",
            reason,
        };
        if self.partition.0 >= self.partition_count {
            let (p, count) = (self.partition.0, self.partition_count);
            return Err(invalid(format!(
                "partition {p} is not below the partition count {count}"
            )));
        }
        if let Some(name) = self.limits.first_zero() {
            return Err(invalid(format!("limit {name} must be at least 1")));
        }
        if let Some(name) = self.limits.first_past_page() {
            let max = index::PAGE_SIZE_MAX;
            return Err(invalid(format!("limit {name} must be at most {max}")));
        }
        Ok(())
    }
}

/// What applying one update produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// What the engine must do, in order.
    pub effects: Vec<Effect>,
    /// The instances whose status changed or that were removed, each once.
    pub changed: Vec<InstanceId>,
}

/// Where the partition is in its log and its input stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    last_applied: Option<CommitPosition>,
    input: InputPosition,
    events_applied: u64,
}

/// The whole state of one partition; serialized, it is the checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    config: PartitionConfig,
    progress: Progress,
    /// Numbers episodes, entity batches and activities; see [`PartitionState::next_work`].
    next_work: u64,
    dedup: Dedup,
    sessions: Sessions,
    instances: Instances,
    activities: Activities,
    timers: Timers,
    outbox: Outbox,
    entities: Entities,
    waits: Waits,
}

impl PartitionState {
    /// An empty partition.
    ///
    /// Fails if the configuration breaks a rule: no partitions, `partition` not one of them,
    /// a limit of zero, or a paged limit past one index page.
    pub fn new(config: PartitionConfig) -> Result<PartitionState, Error> {
        config.check()?;
        Ok(PartitionState {
            config,
            progress: Progress::default(),
            next_work: 0,
            dedup: Dedup::default(),
            sessions: Sessions::default(),
            instances: Instances::default(),
            activities: Activities::default(),
            timers: Timers::default(),
            outbox: Outbox::default(),
            entities: Entities::default(),
            waits: Waits::default(),
        })
    }

    /// Applies the update logged at `at` and returns what the engine must do.
    ///
    /// Positions must increase from one call to the next; an event at or below the last
    /// applied position is ignored (it was applied already), and so is an input event at or
    /// below the recorded input position (a redelivery).
    pub fn apply(&mut self, at: CommitPosition, event: &UpdateEvent) -> Vec<Effect> {
        self.apply_noting_changes(at, event).effects
    }

    /// Applies the update logged at `at`, like [`apply`](Self::apply), and also names the
    /// instances whose status changed or that were removed, so that an engine can answer
    /// waiters it keeps outside the state.
    pub fn apply_noting_changes(&mut self, at: CommitPosition, event: &UpdateEvent) -> Applied {
        if self.progress.last_applied.is_some_and(|last| at <= last) {
            trace!(partition = %self.config.partition, position = %at, "already applied");
            return Applied::default();
        }
        self.progress.last_applied = Some(at);
        self.progress.events_applied += 1;

        if let Some(input) = event.input_position() {
            if input <= self.progress.input {
                debug!(partition = %self.config.partition, position = %at, input = %input,
                    "redelivered input ignored");
                return Applied::default();
            }
            self.progress.input = input;
        }

        debug!(partition = %self.config.partition, position = %at, kind = event.kind_name(),
            "applying update");
        let due_before = self.next_due();
        let mut step = Step::new(at, event.now, event.seed);
        self.handle(&mut step, &event.kind);
        self.settle(&mut step, due_before);
        Applied {
            effects: step.effects,
            changed: step.settled_changes,
        }
    }

    /// The status of instance `id`, if this partition holds it.
    pub fn instance_status(&self, id: &InstanceId) -> Option<OrchestrationStatus> {
        self.instances.get(id).map(|record| record.status)
    }

    /// This partition's id.
    pub fn partition(&self) -> PartitionId {
        self.config.partition
    }

    /// Which partition this is, of how many, and its limits.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// The commit position of the last update applied.
    pub fn last_applied(&self) -> Option<CommitPosition> {
        self.progress.last_applied
    }

    /// The input position to resume reading at.
    pub fn input_position(&self) -> InputPosition {
        self.progress.input
    }

    /// Whether `self` and `other` hold the same instances, entities, work and dedup records,
    /// regardless of how far each got in its log and input stream. Two partitions that applied
    /// the same updates, one with duplicates mixed in, compare equal.
    pub fn eq_except_progress(&self, other: &PartitionState) -> bool {
        let mut a = self.clone();
        a.progress = other.progress.clone();
        a == *other
    }

    /// Counters describing the partition's load.
    pub fn stats(&self) -> StatsView {
        StatsView {
            instances_by_status: self.instances.counts(),
            events_applied: self.progress.events_applied,
            entities: self.entities.len(),
            activities_pending: self.activities.len(),
            timers_pending: self.timers.len(),
            outbox_batches: self.outbox.len(),
            waits_pending: self.waits.len(),
        }
    }

    fn handle(&mut self, step: &mut Step, kind: &UpdateKind) {
        match kind {
            UpdateKind::PartitionMessages(batch) => self.receive_batch(step, batch),
            UpdateKind::ClientRequest(r) => self.client_request(step, r.client, r.seq, &r.request),
            UpdateKind::LocalClientRequest(r) => {
                self.client_request(step, r.client, r.seq, &r.request)
            }
            UpdateKind::EpisodeCompleted(done) => self.episode_completed(step, done),
            UpdateKind::EpisodeAbandoned(gone) => self.episode_abandoned(step, gone),
            UpdateKind::EntityBatchCompleted(done) => self.entity_batch_completed(step, done),
            UpdateKind::EntityBatchAbandoned(gone) => self.entity_batch_abandoned(step, gone),
            UpdateKind::ActivityCompleted(done) => self.activity_completed(step, done),
            UpdateKind::TimersFired => self.timers_fired(step),
            UpdateKind::OutboxConfirmed(c) => self.outbox.confirm(c.destination, c.position),
            UpdateKind::Recovered => self.recovered(step),
        }
    }

    /// The number of the next episode, entity batch or activity.
    ///
    /// Recovery moves the counter to a fresh random point (from the `Recovered` event's seed):
    /// work started before a crash on a lost log suffix may have used numbers the rolled-back
    /// counter would hand out again, and a late completion of that work must never match.
    fn next_work(&mut self) -> u64 {
        let n = self.next_work;
        self.next_work = n.wrapping_add(1);
        n
    }
}
