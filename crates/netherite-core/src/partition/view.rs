//! Views: what reads and waits return, as plain values detached from the state.

use serde::{Deserialize, Serialize};

use super::index::PageToken;
use super::instances::InstanceRecord;
use crate::entity::{EntityRecord, LockHolder};
use crate::ids::{ExecutionId, InstanceId};
use crate::model::{FailureDetails, OrchestrationStatus, Payload, Tags};
use crate::time::Timestamp;

/// An orchestration instance as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The instance.
    pub instance_id: InstanceId,
    /// The orchestration's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its status.
    pub status: OrchestrationStatus,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub last_updated: Timestamp,
    /// When it reached a terminal status.
    pub completed: Option<Timestamp>,
    /// When its start was scheduled for, if it was.
    pub scheduled_start: Option<Timestamp>,
    /// The current execution.
    pub execution_id: ExecutionId,
    /// The parent, for sub-orchestrations.
    pub parent_instance_id: Option<InstanceId>,
    /// Its tags.
    pub tags: Tags,
    /// The custom status it last reported.
    pub custom_status: Payload,
    /// Its input; `None` unless payloads were asked for.
    pub input: Payload,
    /// Its output; `None` unless payloads were asked for.
    pub output: Payload,
    /// Why it failed; `None` unless payloads were asked for.
    pub failure: Option<FailureDetails>,
}

impl InstanceView {
    /// The view of `record`, with or without its payloads.
    pub(crate) fn of(id: &InstanceId, record: &InstanceRecord, payloads: bool) -> InstanceView {
        let pick = |p: &Payload| if payloads { p.clone() } else { None };
        InstanceView {
            instance_id: id.clone(),
            name: record.name.clone(),
            version: record.version.clone(),
            status: record.status,
            created: record.created,
            last_updated: record.last_updated,
            completed: record.completed,
            scheduled_start: record.scheduled_start,
            execution_id: record.execution_id.clone(),
            parent_instance_id: record.parent.as_ref().map(|p| p.instance_id.clone()),
            tags: record.tags.clone(),
            custom_status: record.custom_status.clone(),
            input: pick(&record.input),
            output: pick(&record.output),
            failure: record.failure.clone().filter(|_| payloads),
        }
    }
}

/// One page of a query over instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePage {
    /// The instances, ordered by (creation time, id).
    pub instances: Vec<InstanceView>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

/// An entity as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityView {
    /// The entity.
    pub entity: InstanceId,
    /// Its state; `None` unless asked for (or when it has none).
    pub state: Payload,
    /// Who holds its lock.
    pub locked_by: Option<LockHolder>,
    /// How many operations wait in its queue.
    pub backlog: usize,
    /// When its state last changed.
    pub last_modified: Option<Timestamp>,
}

impl EntityView {
    /// The view of `record`, with or without its state.
    pub(crate) fn of(id: &InstanceId, record: &EntityRecord, include_state: bool) -> EntityView {
        EntityView {
            entity: id.clone(),
            state: record.state.clone().filter(|_| include_state),
            locked_by: record.locked_by.clone(),
            backlog: record.queue.len(),
            last_modified: record.last_modified,
        }
    }
}

/// One page of a query over entities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityPage {
    /// The entities, ordered by id.
    pub entities: Vec<EntityView>,
    /// The last id of this page, to pass as `after` for the next; `None` on the last page.
    pub next: Option<InstanceId>,
}

/// Counters describing the partition's load.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    /// Instances per status (statuses with none are absent).
    pub instances_by_status: Vec<(OrchestrationStatus, u64)>,
    /// Update events applied since the partition was created.
    pub events_applied: u64,
    /// Entities tracked (with state, queued operations or locks).
    pub entities: usize,
    /// Activities started and not yet completed.
    pub activities_pending: usize,
    /// Timers and delayed messages waiting.
    pub timers_pending: usize,
    /// Outbox batches not yet confirmed.
    pub outbox_batches: usize,
    /// Client waits pending.
    pub waits_pending: usize,
}
