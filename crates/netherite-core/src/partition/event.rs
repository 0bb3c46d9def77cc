//! Update events: everything that changes a partition, in the form it is logged.
//!
//! Each event brings its own time (`now`) and a seed for fresh ids, so applying it never reads
//! a clock or a random source and replaying the log gives the same state. Events read from the
//! partition's input stream (messages from other partitions, client requests) also carry the
//! input position after them; the partition records it so recovery resumes the input exactly
//! there, and treats an event at or below it as a redelivery.
//!
//! Update events are logged as [`Record`]s. Their kind tags are stable forever and new kinds
//! are only ever appended to [`UpdateKind`], because the binary format numbers variants by
//! their place in the declaration.

use serde::{Deserialize, Serialize};

use super::effect::StartEpisode;
use super::index::InstanceFilter;
use super::read::ReadEvent;
use crate::codec::Record;
use crate::entity::{EntityBatchResult, LockHolder};
use crate::ids::RequestSeq;
use crate::ids::{ClientId, CommitPosition, ExecutionId, InputPosition, InstanceId, PartitionId};
use crate::model::{
    FailureDetails, OrchestrationStatus, OrchestratorAction, Payload, Tags, TaskMessage,
    TraceContext,
};
use crate::time::Timestamp;

/// One logged update: what happened, when, and the seed for any ids it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateEvent {
    /// The time the engine assigned to this event; the state machine's only clock.
    pub now: Timestamp,
    /// The seed of the [`crate::ids::IdGen`] that draws this event's fresh ids.
    pub seed: u128,
    /// What happened.
    pub kind: UpdateKind,
}

/// The kinds of update events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    /// Messages from another partition (input stream).
    PartitionMessages(PartitionMessages),
    /// A request from a client (input stream).
    ClientRequest(ClientRequestEvent),
    /// A worker finished an orchestration episode.
    EpisodeCompleted(EpisodeCompleted),
    /// A worker gave an episode back without running it.
    EpisodeAbandoned(EpisodeAbandoned),
    /// A worker finished a batch of entity operations.
    EntityBatchCompleted(EntityBatchCompleted),
    /// A worker gave an entity batch back without running it.
    EntityBatchAbandoned(EntityBatchAbandoned),
    /// An activity returned.
    ActivityCompleted(ActivityCompleted),
    /// The engine's timer went off: everything due at or before `now` is delivered, and client
    /// waits past their deadline expire.
    TimersFired,
    /// A destination durably holds the outbox batches sent to it up to a position.
    OutboxConfirmed(OutboxConfirmed),
    /// The partition recovered: in-flight work is re-issued, timers re-armed, the outbox
    /// resent. Logged at the start of every recovery, after the log tail was replayed.
    Recovered,
    /// A request from a client in the same process, handed to the partition directly rather
    /// than through its input stream: the commit log is its only durable record, so it has
    /// no input position. Deduplicated like [`UpdateKind::ClientRequest`].
    LocalClientRequest(LocalClientRequest),
}

impl UpdateEvent {
    /// The input position after this event, for events read from the input stream.
    pub fn input_position(&self) -> Option<InputPosition> {
        match &self.kind {
            UpdateKind::PartitionMessages(m) => Some(m.input),
            UpdateKind::ClientRequest(r) => Some(r.input),
            _ => None,
        }
    }

    /// A short name for the kind, for logs.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            UpdateKind::PartitionMessages(_) => "partition-messages",
            UpdateKind::ClientRequest(_) => "client-request",
            UpdateKind::EpisodeCompleted(_) => "episode-completed",
            UpdateKind::EpisodeAbandoned(_) => "episode-abandoned",
            UpdateKind::EntityBatchCompleted(_) => "entity-batch-completed",
            UpdateKind::EntityBatchAbandoned(_) => "entity-batch-abandoned",
            UpdateKind::ActivityCompleted(_) => "activity-completed",
            UpdateKind::TimersFired => "timers-fired",
            UpdateKind::OutboxConfirmed(_) => "outbox-confirmed",
            UpdateKind::Recovered => "recovered",
            UpdateKind::LocalClientRequest(_) => "local-client-request",
        }
    }
}

impl UpdateKind {
    /// The first kind tag and the last one this version knows.
    const TAGS: std::ops::RangeInclusive<u32> = 1..=11;

    /// The stable tag of this kind in the record format.
    pub fn tag(&self) -> u32 {
        match self {
            UpdateKind::PartitionMessages(_) => 1,
            UpdateKind::ClientRequest(_) => 2,
            UpdateKind::EpisodeCompleted(_) => 3,
            UpdateKind::EpisodeAbandoned(_) => 4,
            UpdateKind::EntityBatchCompleted(_) => 5,
            UpdateKind::EntityBatchAbandoned(_) => 6,
            UpdateKind::ActivityCompleted(_) => 7,
            UpdateKind::TimersFired => 8,
            UpdateKind::OutboxConfirmed(_) => 9,
            UpdateKind::Recovered => 10,
            UpdateKind::LocalClientRequest(_) => 11,
        }
    }
}

impl Record for UpdateEvent {
    fn kind(&self) -> u32 {
        self.kind.tag()
    }

    fn is_known_kind(kind: u32) -> bool {
        UpdateKind::TAGS.contains(&kind)
    }
}

/// A batch of messages sent by another partition, stamped for deduplication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMessages {
    /// The input position after this event.
    pub input: InputPosition,
    /// The sending partition.
    pub origin: PartitionId,
    /// The commit position, in the sender's log, of the event that produced the batch.
    pub origin_position: CommitPosition,
    /// Tells apart the batches one sender event produced.
    pub sub_position: u32,
    /// The messages, in the order they were produced.
    pub messages: Vec<TaskMessage>,
}

/// A client request, numbered by the client so a retry can be recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequestEvent {
    /// The input position after this event.
    pub input: InputPosition,
    /// Who asks.
    pub client: ClientId,
    /// The client's sequence number for this request; a retry reuses it. Requests may arrive
    /// out of order, by less than [`super::CLIENT_SEQ_LAG_MAX`].
    pub seq: RequestSeq,
    /// What is asked.
    pub request: ClientRequest,
}

/// A client request that did not come through the input stream (see
/// [`UpdateKind::LocalClientRequest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalClientRequest {
    /// Who asks.
    pub client: ClientId,
    /// The client's sequence number for this request; a retry reuses it.
    pub seq: RequestSeq,
    /// What is asked.
    pub request: ClientRequest,
}

/// What a client can ask a partition to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Start an orchestration.
    Create(CreateInstance),
    /// Raise an event on an instance.
    RaiseEvent {
        /// The target.
        instance: InstanceId,
        /// The event's name.
        name: String,
        /// Its payload.
        input: Payload,
    },
    /// Terminate an instance.
    Terminate {
        /// The target.
        instance: InstanceId,
        /// The output the instance reports.
        reason: Payload,
        /// Whether its running sub-orchestrations are terminated too.
        recurse: bool,
    },
    /// Suspend an instance: events wait until it is resumed.
    Suspend {
        /// The target.
        instance: InstanceId,
        /// Why.
        reason: Payload,
    },
    /// Resume a suspended instance.
    Resume {
        /// The target.
        instance: InstanceId,
        /// Why.
        reason: Payload,
    },
    /// Send a one-way operation to an entity.
    SignalEntity(SignalEntity),
    /// Delete one terminal instance and its history.
    Purge {
        /// The instance.
        instance: InstanceId,
    },
    /// Delete terminal instances matching a filter, a bounded number per request; the answer
    /// says whether more remain.
    PurgeByFilter {
        /// Which instances; only terminal ones are ever deleted.
        filter: InstanceFilter,
    },
    /// Rewind a failed instance.
    Rewind {
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: Payload,
    },
    /// Wait until an instance has started or finished.
    WaitFor(WaitFor),
    /// Release the lock `holder` has on `entity`, as if the holder had sent the unlock: for
    /// locks whose orchestration is gone or finished without releasing them. A lock held by
    /// someone else (the holder released it and another took it) is left alone.
    ReleaseEntityLock {
        /// The entity (`@name@key`).
        entity: InstanceId,
        /// Who must hold the lock now.
        holder: LockHolder,
    },
    /// Answer a read from the partition's state, for a client whose process does not host
    /// the partition. Logged like any request, so it costs an append; the answer is not kept
    /// for retries (it may be a large page), so a retried read goes unanswered.
    Read(ReadEvent),
}

/// A request to start an orchestration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateInstance {
    /// The new instance's id.
    pub instance: InstanceId,
    /// The orchestration's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// Tags copied to the instance.
    pub tags: Tags,
    /// When to start; honoured only when in the future.
    pub scheduled_start: Option<Timestamp>,
    /// The first execution's id; drawn from the event's seed when absent.
    pub execution: Option<ExecutionId>,
    /// Terminal statuses an existing instance may have to be replaced. A running (or pending,
    /// or suspended) instance is never replaced.
    pub replaceable: Vec<OrchestrationStatus>,
    /// Trace context of the client's span.
    pub parent_trace_context: Option<TraceContext>,
}

impl CreateInstance {
    /// A request to start `instance` running orchestration `name` now, with no version,
    /// input, tags or trace context, a drawn execution id, and no status replaceable.
    pub fn new(instance: InstanceId, name: impl Into<String>) -> CreateInstance {
        CreateInstance {
            instance,
            name: name.into(),
            version: None,
            input: None,
            tags: Tags::new(),
            scheduled_start: None,
            execution: None,
            replaceable: Vec::new(),
            parent_trace_context: None,
        }
    }
}

/// A one-way operation for an entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalEntity {
    /// The entity (`@name@key`).
    pub entity: InstanceId,
    /// The operation.
    pub operation: String,
    /// Its input.
    pub input: Payload,
    /// The request's unique id.
    pub request_id: String,
    /// When to deliver it; honoured only when in the future.
    pub scheduled_time: Option<Timestamp>,
}

/// What a client waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitUntil {
    /// The instance left `Pending`.
    Start,
    /// The instance reached a terminal status.
    Completion,
}

/// A client wait: answered when the condition holds, or rejected at the deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitFor {
    /// The instance.
    pub instance: InstanceId,
    /// The condition.
    pub until: WaitUntil,
    /// When to give up; `None` waits as long as it takes.
    pub deadline: Option<Timestamp>,
    /// Whether the answer includes input, output and failure.
    pub payloads: bool,
}

/// The number of a dispatched episode or entity batch; a completion must name it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct EpisodeNumber(pub u64);

/// The id of a pending activity; the completion must name it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ActivityId(pub u64);

/// A worker's answer to a dispatched episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeCompleted {
    /// The instance.
    pub instance: InstanceId,
    /// The execution the episode ran in.
    pub execution: ExecutionId,
    /// The episode's number, as dispatched.
    pub episode: EpisodeNumber,
    /// The worker's new actions.
    pub actions: Vec<OrchestratorAction>,
    /// The custom status the orchestration reports.
    pub custom_status: Payload,
}

impl EpisodeCompleted {
    /// The answer `actions` to the dispatched episode `start`, with no custom status.
    pub fn answering(start: &StartEpisode, actions: Vec<OrchestratorAction>) -> EpisodeCompleted {
        EpisodeCompleted {
            instance: start.instance.clone(),
            execution: start.execution.clone(),
            episode: start.episode,
            actions,
            custom_status: None,
        }
    }
}

/// A worker could not run an episode; its events go back to the inbox and are dispatched again.
///
/// The engine applies its retry back-off by delaying this event: nothing else is dispatched for
/// the instance while the episode is in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeAbandoned {
    /// The instance.
    pub instance: InstanceId,
    /// The episode's number, as dispatched.
    pub episode: EpisodeNumber,
}

/// A worker's answer to a dispatched entity batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityBatchCompleted {
    /// The entity.
    pub entity: InstanceId,
    /// The batch's number, as dispatched.
    pub batch: EpisodeNumber,
    /// What the worker returned.
    pub result: EntityBatchResult,
}

/// A worker could not run an entity batch; it is dispatched again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityBatchAbandoned {
    /// The entity.
    pub entity: InstanceId,
    /// The batch's number, as dispatched.
    pub batch: EpisodeNumber,
}

/// An activity's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCompleted {
    /// The activity, as dispatched.
    pub activity: ActivityId,
    /// Its output, or why it failed.
    pub result: Result<Payload, FailureDetails>,
}

/// A destination durably holds what this partition sent it, up to a position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxConfirmed {
    /// The destination partition.
    pub destination: PartitionId,
    /// Every batch for `destination` produced at or before this position is confirmed.
    pub position: CommitPosition,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::model::{EventKind, HistoryEvent};

    fn event(kind: UpdateKind) -> UpdateEvent {
        UpdateEvent {
            now: Timestamp::new(7, 8),
            seed: u128::MAX - 1,
            kind,
        }
    }

    /// Every kind survives the record format and is reported under its own tag.
    #[test]
    fn every_kind_round_trips_through_the_codec() {
        let started = HistoryEvent::new(Timestamp::EPOCH, EventKind::OrchestratorStarted);
        let batch = PartitionMessages {
            input: InputPosition(3),
            origin: PartitionId(1),
            origin_position: CommitPosition(9),
            sub_position: 2,
            messages: vec![TaskMessage::to_instance(InstanceId::new("a"), started)],
        };
        let request = ClientRequestEvent {
            input: InputPosition(4),
            client: ClientId(5),
            seq: RequestSeq(6),
            request: ClientRequest::PurgeByFilter {
                filter: InstanceFilter::default(),
            },
        };
        let abandoned = EpisodeAbandoned {
            instance: InstanceId::new("a"),
            episode: EpisodeNumber(1),
        };
        let activity = ActivityCompleted {
            activity: ActivityId(3),
            result: Err(FailureDetails::new("E", "boom")),
        };
        let kinds = [
            UpdateKind::PartitionMessages(batch),
            UpdateKind::ClientRequest(request),
            UpdateKind::EpisodeAbandoned(abandoned),
            UpdateKind::ActivityCompleted(activity),
            UpdateKind::TimersFired,
            UpdateKind::Recovered,
            UpdateKind::LocalClientRequest(LocalClientRequest {
                client: ClientId(5),
                seq: RequestSeq(7),
                request: ClientRequest::Resume {
                    instance: InstanceId::new("a"),
                    reason: None,
                },
            }),
        ];

        for kind in kinds {
            let original = event(kind);
            let bytes = codec::encode(&original).expect("encodes");
            let (decoded, used) = codec::decode::<UpdateEvent>(&bytes, "test", 0).expect("decodes");
            assert_eq!((decoded, used), (original.clone(), bytes.len()));
            assert!(UpdateEvent::is_known_kind(original.kind()));
        }
        assert!(!UpdateEvent::is_known_kind(0));
        assert!(!UpdateEvent::is_known_kind(12));
    }
}
