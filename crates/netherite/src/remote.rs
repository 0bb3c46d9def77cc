//! Work for workers outside this process: the queue that the gRPC sidecar's work-item streams
//! take from.
//!
//! An engine built with a [`RemoteWork`] sends every episode, activity and entity batch that
//! the Rust [`Registry`](crate::sdk::Registry) cannot run (an orchestration or activity name it
//! does not know; any entity, since the Rust SDK has none) to this queue instead of failing it.
//! There it waits, with no deadline, until a worker takes it: an instance started before any
//! worker connected simply stays pending.
//!
//! A taken item is an [`Assignment`]. Its taker answers it exactly once: `complete_*` logs the
//! worker's answer in the partition, [`Assignment::abandon`] hands it back to the partition
//! after a pause (which dispatches it again), and [`RemoteWork::requeue`] puts it back in the
//! queue as it is (a stream that ended before its worker answered). Dropping an assignment
//! without any of these loses nothing for good: the partition re-issues its work when it
//! recovers. An assignment whose partition has stopped since is stale: the queue drops it
//! instead of handing it out, and answering it does nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netherite_core::entity::EntityBatchResult;
use netherite_core::model::{EventKind, FailureDetails, OrchestratorAction, Payload};
use netherite_core::partition::{
    ActivityCompleted, EntityBatchAbandoned, EntityBatchCompleted, EpisodeAbandoned,
    EpisodeCompleted, StartActivity, StartEntityBatch, StartEpisode, UpdateKind,
};
use netherite_core::{InstanceId, PartitionId};
use tokio::sync::Notify;

use crate::host::{Command, WorkerLink};

/// How long an abandoned item waits before its partition dispatches it again, so that a worker
/// that keeps giving an item back does not spin.
pub const ABANDON_DELAY: Duration = Duration::from_secs(1);

/// One piece of work for an outside worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkItem {
    /// An orchestration episode to replay.
    Episode(StartEpisode),
    /// An activity to run.
    Activity(StartActivity),
    /// A batch of entity operations to run.
    EntityBatch(StartEntityBatch),
}

impl WorkItem {
    /// The instance (orchestration or entity) the item belongs to.
    pub fn instance(&self) -> &InstanceId {
        match self {
            WorkItem::Episode(episode) => &episode.instance,
            WorkItem::Activity(activity) => &activity.instance,
            WorkItem::EntityBatch(batch) => &batch.entity,
        }
    }
}

/// A taken work item and the way back to its partition.
#[derive(Debug)]
pub struct Assignment {
    item: WorkItem,
    link: WorkerLink,
}

impl Assignment {
    pub(crate) fn new(item: WorkItem, link: WorkerLink) -> Assignment {
        Assignment { item, link }
    }

    /// What is to be done.
    pub fn item(&self) -> &WorkItem {
        &self.item
    }

    /// The partition that dispatched it.
    pub fn partition(&self) -> PartitionId {
        self.link.partition
    }

    /// Whether its partition stopped since it was dispatched: an answer would be ignored.
    pub fn is_stale(&self) -> bool {
        *self.link.stopping.borrow()
    }

    /// Logs the worker's answer to an episode: its new actions and its custom status. Does
    /// nothing for an item that is not an episode.
    pub async fn complete_episode(self, actions: Vec<OrchestratorAction>, custom_status: Payload) {
        let WorkItem::Episode(episode) = &self.item else {
            return;
        };
        let done = EpisodeCompleted {
            custom_status,
            ..EpisodeCompleted::answering(episode, actions)
        };
        self.answer(UpdateKind::EpisodeCompleted(done)).await;
    }

    /// Logs an activity's result. Does nothing for an item that is not an activity.
    pub async fn complete_activity(self, result: Result<Payload, FailureDetails>) {
        let WorkItem::Activity(activity) = &self.item else {
            return;
        };
        let done = ActivityCompleted {
            activity: activity.activity,
            result,
        };
        self.answer(UpdateKind::ActivityCompleted(done)).await;
    }

    /// Logs the result of an entity batch. Does nothing for an item that is not one.
    pub async fn complete_entity_batch(self, result: EntityBatchResult) {
        let WorkItem::EntityBatch(batch) = &self.item else {
            return;
        };
        let done = EntityBatchCompleted {
            entity: batch.entity.clone(),
            batch: batch.batch,
            result,
        };
        self.answer(UpdateKind::EntityBatchCompleted(done)).await;
    }

    /// Gives the item back: after [`ABANDON_DELAY`], an episode or entity batch is handed to
    /// its partition, which dispatches it again, and an activity goes back to `queue`.
    pub fn abandon(self, queue: &RemoteWork) {
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ABANDON_DELAY).await;
            let update = match &self.item {
                WorkItem::Episode(episode) => UpdateKind::EpisodeAbandoned(EpisodeAbandoned {
                    instance: episode.instance.clone(),
                    episode: episode.episode,
                }),
                WorkItem::EntityBatch(batch) => {
                    UpdateKind::EntityBatchAbandoned(EntityBatchAbandoned {
                        entity: batch.entity.clone(),
                        batch: batch.batch,
                    })
                }
                WorkItem::Activity(_) => return queue.requeue(self),
            };
            self.answer(update).await;
        });
    }

    async fn answer(self, update: UpdateKind) {
        if self.is_stale() {
            return;
        }
        // A partition that stopped meanwhile re-issues the work when it recovers.
        let _ = self.link.commands.send(Command::Update(update)).await;
    }
}

/// The queue of work for outside workers; cheap to clone, all clones are one queue.
#[derive(Clone, Debug, Default)]
pub struct RemoteWork {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<Assignment>>,
    added: Notify,
}

impl RemoteWork {
    /// An empty queue.
    pub fn new() -> RemoteWork {
        RemoteWork::default()
    }

    /// Adds newly dispatched work at the back.
    pub(crate) fn push(&self, assignment: Assignment) {
        self.lock().push_back(assignment);
        self.shared.added.notify_waiters();
    }

    /// Puts an assignment back at the front, to be taken again before newer work.
    pub fn requeue(&self, assignment: Assignment) {
        if assignment.is_stale() {
            return;
        }
        self.lock().push_front(assignment);
        self.shared.added.notify_waiters();
    }

    /// The first assignment that `accept` takes, dropping stale ones on the way; `None` if
    /// there is none now.
    pub fn try_take(&self, accept: impl Fn(&WorkItem) -> bool) -> Option<Assignment> {
        let mut queue = self.lock();
        queue.retain(|a| !a.is_stale());
        let index = queue.iter().position(|a| accept(&a.item))?;
        queue.remove(index)
    }

    /// Waits for the first assignment that `accept` takes.
    pub async fn take(&self, accept: impl Fn(&WorkItem) -> bool) -> Assignment {
        loop {
            // Registered before looking, so a push between the look and the wait is seen.
            let added = self.shared.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(assignment) = self.try_take(&accept) {
                return assignment;
            }
            added.await;
        }
    }

    /// How many items wait (stale ones included until the next take).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Assignment>> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The most events looked at for an episode's `ExecutionStarted`, which opens an execution.
const NAME_SCAN_MAX: usize = 64;

/// The name of the episode's orchestration, from the `ExecutionStarted` that opens its
/// execution (first in the past events, or among the new ones for a first episode).
pub fn orchestration_name(episode: &StartEpisode) -> Option<&str> {
    let events = episode.past_events.iter().chain(&episode.new_events);
    events
        .take(NAME_SCAN_MAX)
        .find_map(|event| match &event.kind {
            EventKind::ExecutionStarted(started) => Some(started.name.as_str()),
            _ => None,
        })
}
