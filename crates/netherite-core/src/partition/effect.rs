//! Effects: what the engine must do after an update, returned as values.
//!
//! Nothing is done inside the state machine. Work (episodes, entity batches, activities) may
//! start at once, before the update is durable: if the update is lost in a crash, the work is
//! redone after recovery and its late completion is ignored. Anything that leaves the partition
//! (messages to other partitions, answers to clients) names the commit position it depends on
//! in `after`, and the engine sends it only once that position is durable.

use serde::{Deserialize, Serialize};

use super::event::{ActivityId, EpisodeNumber};
use super::response::ClientResponse;
use crate::episode::ActivityRequest;
use crate::ids::{ClientId, CommitPosition, ExecutionId, InstanceId, PartitionId, RequestSeq};
use crate::model::{HistoryEvent, Payload, Tags, TaskMessage, TraceContext};
use crate::time::Timestamp;

/// One thing for the engine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Run an orchestration episode on a worker.
    StartEpisode(StartEpisode),
    /// Run a batch of entity operations on a worker.
    StartEntityBatch(StartEntityBatch),
    /// Run an activity on a worker.
    StartActivity(StartActivity),
    /// Log a `TimersFired` event at `due` (the earliest due timer or wait deadline).
    ArmTimer {
        /// When.
        due: Timestamp,
    },
    /// Send a batch to another partition once `after` is durable, after every earlier batch
    /// for the same destination (see [`SendMessages`]).
    SendMessages(SendMessages),
    /// Answer a client once `after` is durable.
    RespondToClient(RespondToClient),
}

/// An orchestration episode to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartEpisode {
    /// The instance.
    pub instance: InstanceId,
    /// The current execution.
    pub execution: ExecutionId,
    /// The number the completion must name.
    pub episode: EpisodeNumber,
    /// The committed history of the execution.
    pub past_events: Vec<HistoryEvent>,
    /// `OrchestratorStarted(now)` followed by the inbox events, `ExecutionStarted` first.
    pub new_events: Vec<HistoryEvent>,
}

/// A batch of entity operations to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartEntityBatch {
    /// The entity.
    pub entity: InstanceId,
    /// The number the completion must name.
    pub batch: EpisodeNumber,
    /// The entity's state before the batch.
    pub state: Payload,
    /// The operations (`EntityOperationSignaled` / `EntityOperationCalled` events), in order.
    pub operations: Vec<HistoryEvent>,
}

/// An activity to run: which orchestration asked for it, and the [`ActivityRequest`] its
/// action made, field for field (engines read and move the fields directly).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartActivity {
    /// The id the completion must name.
    pub activity: ActivityId,
    /// The orchestration that scheduled it.
    pub instance: InstanceId,
    /// The execution that scheduled it; results for another execution are dropped.
    pub execution: ExecutionId,
    /// The `ScheduleTask` action's id.
    pub task_id: i32,
    /// The activity's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// Its tags.
    pub tags: Tags,
    /// Trace context of the scheduling span.
    pub parent_trace_context: Option<TraceContext>,
}

impl StartActivity {
    /// The activity `request` of `instance` (in `execution`), under the id `activity`.
    pub fn new(
        activity: ActivityId,
        instance: InstanceId,
        execution: ExecutionId,
        request: ActivityRequest,
    ) -> StartActivity {
        StartActivity {
            activity,
            instance,
            execution,
            task_id: request.task_id,
            name: request.name,
            version: request.version,
            input: request.input,
            tags: request.tags,
            parent_trace_context: request.parent_trace_context,
        }
    }
}

/// Messages for another partition, stamped so the receiver can drop duplicates.
///
/// The receiver takes a batch only if its stamp (`origin_position`, `sub_position`) is above
/// the last one it took from this origin. So the engine delivers an origin's batches for one
/// destination in the order they were produced: one send at a time per destination, each
/// retried until it succeeds before the next goes out, and after recovery the resent outbox
/// before anything new. A batch that overtook an earlier one would make the receiver drop
/// the earlier one as a duplicate, and its messages would be lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessages {
    /// Send only once this position is durable.
    pub after: CommitPosition,
    /// The receiving partition.
    pub destination: PartitionId,
    /// The sending partition.
    pub origin: PartitionId,
    /// The stamp's position: the commit position of the producing event.
    pub origin_position: CommitPosition,
    /// The stamp's sub-position, unique among the batches of one event.
    pub sub_position: u32,
    /// The messages.
    pub messages: Vec<TaskMessage>,
}

/// An answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RespondToClient {
    /// Send only once this position is durable.
    pub after: CommitPosition,
    /// The client.
    pub client: ClientId,
    /// The request answered.
    pub seq: RequestSeq,
    /// The answer.
    pub response: ClientResponse,
}
