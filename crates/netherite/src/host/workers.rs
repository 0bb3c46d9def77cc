//! The workers: orchestration episodes and activities run on this node, under limits.
//!
//! Work starts as soon as the update that asks for it is applied, before it is durable
//! (pipelined persistence): if that update is lost in a crash, recovery hands the work out
//! again under a new number and the partition ignores a late answer to the old one.
//!
//! - **Episodes** run [`sdk::execute`](crate::sdk::execute), at most
//!   `orchestrations_concurrency_max` at once across all partitions of the node: short ones
//!   right on the async worker (a thread hand-off would cost more than the replay), long ones
//!   on Tokio's blocking pool. The executor always answers (an unregistered name, a panic or
//!   bad input fail the orchestration), so an episode is abandoned only if the executor itself
//!   dies, and then after a pause.
//! - **Activities** run [`sdk::invoke_activity`](crate::sdk::invoke_activity) as Tokio tasks, at
//!   most `activities_concurrency_max` at once.
//! - **Entity batches**: the Rust SDK has no entities yet, so each operation of a batch is
//!   answered with a failure of type [`ENTITIES_NOT_SUPPORTED`] and the state is left as it
//!   was. Answering (rather than abandoning) keeps the batch from being dispatched forever.
//!
//! Every task also watches its partition's `stopping` signal and drops its work when the
//! partition stops; recovery re-issues it.

use std::sync::Arc;
use std::time::Duration;

use netherite_core::PartitionId;
use netherite_core::entity::{EntityBatchResult, OperationResult};
use netherite_core::model::FailureDetails;
use netherite_core::partition::{
    ActivityCompleted, EntityBatchCompleted, EpisodeAbandoned, EpisodeCompleted, StartActivity,
    StartEntityBatch, StartEpisode, UpdateKind,
};
use tokio::sync::{Semaphore, mpsc, watch};

use super::runner::Command;
use crate::remote::{Assignment, RemoteWork, WorkItem, orchestration_name};
use crate::sdk::{ActivityContext, EpisodeResult, Registry, execute, invoke_activity};

/// The `error_type` of the failure every entity operation gets while the SDK has no entities.
pub const ENTITIES_NOT_SUPPORTED: &str = "EntitiesNotSupported";

/// Episodes with at most this many history events run on the async worker that picked them
/// up; longer ones, whose replay takes longer, go to the blocking pool.
const INLINE_EVENTS_MAX: usize = 512;

/// The pause before an episode whose task died is handed back.
const ABANDON_DELAY: Duration = Duration::from_secs(1);

/// The node's workers: the registry and the concurrency limits, shared by every partition.
#[derive(Clone, Debug)]
pub(crate) struct Workers {
    registry: Arc<Registry>,
    episodes: Arc<Semaphore>,
    activities: Arc<Semaphore>,
    remote: Option<RemoteWork>,
}

/// Where a worker sends its answer, and the signal that its partition stopped.
#[derive(Clone, Debug)]
pub(crate) struct WorkerLink {
    pub(crate) partition: PartitionId,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) stopping: watch::Receiver<bool>,
}

impl WorkerLink {
    /// Runs `work` unless the partition stops first, then sends its answer.
    async fn answer<F>(mut self, work: F)
    where
        F: Future<Output = Option<UpdateKind>>,
    {
        let answer = tokio::select! {
            answer = work => answer,
            _ = self.stopping.wait_for(|stopping| *stopping) => return,
        };
        if let Some(update) = answer {
            // The partition may have stopped meanwhile; recovery re-issues the work then.
            let _ = self.commands.send(Command::Update(update)).await;
        }
    }
}

impl Workers {
    /// Workers for `registry` with the given limits (each at least 1).
    pub(crate) fn new(
        registry: Arc<Registry>,
        episodes_max: u32,
        activities_max: u32,
        remote: Option<RemoteWork>,
    ) -> Workers {
        let permits = |max: u32| Arc::new(Semaphore::new(max.max(1) as usize));
        Workers {
            registry,
            episodes: permits(episodes_max),
            activities: permits(activities_max),
            remote,
        }
    }

    /// Runs one orchestration episode, here if the registry knows its orchestration, else on
    /// an outside worker if there are any.
    pub(crate) fn start_episode(&self, episode: StartEpisode, link: WorkerLink) {
        let known =
            orchestration_name(&episode).is_some_and(|n| self.registry.has_orchestration(n));
        if let Some(remote) = self.remote.as_ref().filter(|_| !known) {
            remote.push(Assignment::new(WorkItem::Episode(episode), link));
            return;
        }
        let (registry, limit) = (self.registry.clone(), self.episodes.clone());
        tokio::spawn(link.answer(async move {
            let _permit = limit.acquire_owned().await.ok()?;
            let (instance, execution, number) = (
                episode.instance.clone(),
                episode.execution.clone(),
                episode.episode,
            );
            let update = match run_episode(registry, episode).await {
                Some(result) => UpdateKind::EpisodeCompleted(EpisodeCompleted {
                    instance,
                    execution,
                    episode: number,
                    actions: result.actions,
                    custom_status: result.custom_status,
                }),
                None => {
                    tracing::error!(instance = %instance, "episode task died; abandoned");
                    tokio::time::sleep(ABANDON_DELAY).await;
                    UpdateKind::EpisodeAbandoned(EpisodeAbandoned {
                        instance,
                        episode: number,
                    })
                }
            };
            Some(update)
        }));
    }

    /// Runs one activity.
    pub(crate) fn start_activity(&self, activity: StartActivity, link: WorkerLink) {
        let known = self.registry.has_activity(&activity.name);
        if let Some(remote) = self.remote.as_ref().filter(|_| !known) {
            remote.push(Assignment::new(WorkItem::Activity(activity), link));
            return;
        }
        let limit = self.activities.clone();
        let context = ActivityContext::new(
            activity.instance.clone(),
            activity.task_id,
            activity.name.clone(),
        )
        .with_execution(activity.execution.clone());
        let running = invoke_activity(&self.registry, context, activity.input);
        let id = activity.activity;
        tokio::spawn(link.answer(async move {
            let _permit = limit.acquire_owned().await.ok()?;
            let result = running.await;
            Some(UpdateKind::ActivityCompleted(ActivityCompleted {
                activity: id,
                result,
            }))
        }));
    }

    /// Answers an entity batch: every operation fails, the state stays (see the module docs).
    pub(crate) fn start_entity_batch(&self, batch: StartEntityBatch, link: WorkerLink) {
        if let Some(remote) = &self.remote {
            remote.push(Assignment::new(WorkItem::EntityBatch(batch), link));
            return;
        }
        tracing::warn!(partition = %link.partition, entity = %batch.entity,
            operations = batch.operations.len(),
            "entity operations failed: the Rust SDK has no entity support yet");
        let message = format!(
            "entity '{}': the Rust SDK has no entity support yet; the operation was not run",
            batch.entity
        );
        let failure = FailureDetails::new(ENTITIES_NOT_SUPPORTED, message);
        let result = EntityBatchResult {
            results: vec![OperationResult::Failure(failure); batch.operations.len()],
            actions: Vec::new(),
            entity_state: batch.state,
        };
        let update = UpdateKind::EntityBatchCompleted(EntityBatchCompleted {
            entity: batch.entity,
            batch: batch.batch,
            result,
        });
        tokio::spawn(link.answer(async move { Some(update) }));
    }
}

/// Replays `episode`; `None` if the executor itself died (it catches the orchestration's
/// panics, so this is a bug in it).
///
/// A short episode runs right here: handing it to another thread would cost more than the
/// replay (a context switch each way). A long one goes to the blocking pool so that it does
/// not hold up the tasks of this worker thread.
async fn run_episode(registry: Arc<Registry>, episode: StartEpisode) -> Option<EpisodeResult> {
    let events = episode.past_events.len() + episode.new_events.len();
    let replay = move || {
        let e = &episode;
        execute(
            &registry,
            &e.instance,
            &e.execution,
            &e.past_events,
            &e.new_events,
        )
    };
    if events <= INLINE_EVENTS_MAX {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(replay)).ok();
    }
    tokio::task::spawn_blocking(replay).await.ok()
}
