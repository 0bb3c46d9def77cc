//! Test tools for the partition state machine (feature `testing`).
//!
//! - [`Driver`] plays the engine's bookkeeping: it numbers update events with commit positions
//!   and input positions, gives each a time and a seed, applies it and keeps the log.
//! - [`SimWorker`] plays the workers: it remembers the work a partition hands out (episodes,
//!   activities, entity batches) and answers it with actions chosen by a few script bytes, so a
//!   property test can generate realistic runs (activities, timers, events between instances,
//!   sub-orchestrations, entity signals and calls, completions, continue-as-new) from plain
//!   random data.

use std::time::Duration;

use super::{
    ActivityCompleted, ClientRequest, ClientRequestEvent, ClientResponse, Effect,
    EntityBatchAbandoned, EntityBatchCompleted, EpisodeAbandoned, EpisodeCompleted, InstanceView,
    Limits, PartitionConfig, PartitionState, ReadEvent, ReadResult, RespondToClient, SendMessages,
    StartActivity, StartEntityBatch, StartEpisode, UpdateEvent, UpdateKind,
};
use crate::entity::{EntityBatchResult, OperationResult};
use crate::ids::{ClientId, CommitPosition, InputPosition, InstanceId, PartitionId, RequestSeq};
use crate::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage,
    EntityOperationCalled, EntityOperationSignaled, EventKind, FailureDetails, HistoryEvent,
    OrchestrationStatus, OrchestratorAction, ScheduleTask, SendEvent,
};
use crate::time::Timestamp;

/// A partition driven by hand: positions, times and seeds are assigned as an engine would.
#[derive(Clone, Debug)]
pub struct Driver {
    /// The partition.
    pub state: PartitionState,
    /// Every event applied, with its commit position.
    pub log: Vec<(CommitPosition, UpdateEvent)>,
    /// The time given to the next event.
    pub now: Timestamp,
    position: u64,
    input: u64,
    seed: u128,
    stride: u64,
}

impl Driver {
    /// Partition `partition` of `partition_count`, with default limits, at time 1000 s.
    ///
    /// Commit and input positions advance by `stride` per event (at least 1), which leaves
    /// room to slip other events in between when a test rebuilds a log.
    pub fn new(partition: u32, partition_count: u32, stride: u64) -> Driver {
        Driver::with_limits(partition, partition_count, stride, Limits::default())
    }

    /// [`Driver::new`] with the given limits.
    pub fn with_limits(partition: u32, partition_count: u32, stride: u64, limits: Limits) -> Self {
        let config = PartitionConfig {
            partition: PartitionId(partition),
            partition_count,
            limits,
        };
        let state = PartitionState::new(config).expect("the test picks a valid partition");
        Driver {
            state,
            log: Vec::new(),
            now: Timestamp::new(1_000, 0),
            position: 0,
            input: 0,
            seed: u128::from(partition) << 64,
            stride: stride.max(1),
        }
    }

    /// Logs `kind` at the next position and applies it.
    pub fn apply(&mut self, kind: UpdateKind) -> Vec<Effect> {
        self.position += self.stride;
        self.seed += 1;
        let event = UpdateEvent {
            now: self.now,
            seed: self.seed,
            kind,
        };
        let at = CommitPosition(self.position);
        let effects = self.state.apply(at, &event);
        self.log.push((at, event));
        effects
    }

    /// The input position for the next input event.
    pub fn next_input(&mut self) -> InputPosition {
        self.input += self.stride;
        InputPosition(self.input)
    }

    /// Applies a client request arriving on the input stream.
    pub fn request(&mut self, client: ClientId, seq: u64, request: ClientRequest) -> Vec<Effect> {
        let event = ClientRequestEvent {
            input: self.next_input(),
            client,
            seq: RequestSeq(seq),
            request,
        };
        self.apply(UpdateKind::ClientRequest(event))
    }

    /// Applies a batch from another partition arriving on the input stream.
    pub fn receive(&mut self, send: &SendMessages) -> Vec<Effect> {
        let batch = super::PartitionMessages {
            input: self.next_input(),
            origin: send.origin,
            origin_position: send.origin_position,
            sub_position: send.sub_position,
            messages: send.messages.clone(),
        };
        self.apply(UpdateKind::PartitionMessages(batch))
    }

    /// The instance `id` as a client would see it, with payloads.
    pub fn view(&self, id: &str) -> Option<InstanceView> {
        let read = ReadEvent::GetInstance {
            instance: InstanceId::new(id),
            payloads: true,
        };
        match self.state.read(&read) {
            ReadResult::Instance(view) => view.map(|v| *v),
            _ => None,
        }
    }

    /// The status of instance `id`.
    pub fn status(&self, id: &str) -> Option<OrchestrationStatus> {
        self.view(id).map(|v| v.status)
    }

    /// The history of the current execution of `id`.
    pub fn history(&self, id: &str) -> Option<Vec<HistoryEvent>> {
        let read = ReadEvent::GetHistory {
            instance: InstanceId::new(id),
        };
        match self.state.read(&read) {
            ReadResult::History(history) => history,
            _ => None,
        }
    }

    /// The position of the last event applied.
    pub fn position(&self) -> CommitPosition {
        CommitPosition(self.position)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
    }
}

/// The episodes `effects` start, in order.
pub fn episodes(effects: &[Effect]) -> Vec<StartEpisode> {
    let started = effects.iter().filter_map(|effect| match effect {
        Effect::StartEpisode(start) => Some(start.clone()),
        _ => None,
    });
    started.collect()
}

/// The answers to clients among `effects`, in order.
pub fn answers(effects: &[Effect]) -> Vec<ClientResponse> {
    let answered = effects.iter().filter_map(|effect| match effect {
        Effect::RespondToClient(answer) => Some(answer.response.clone()),
        _ => None,
    });
    answered.collect()
}

/// Simulated workers: the work handed out and not yet answered, and what came back to
/// clients and other partitions.
#[derive(Clone, Debug, Default)]
pub struct SimWorker {
    /// Episodes handed out, oldest first (re-issued ones appear again with new numbers).
    pub episodes: Vec<StartEpisode>,
    /// Activities handed out.
    pub activities: Vec<StartActivity>,
    /// Entity batches handed out.
    pub batches: Vec<StartEntityBatch>,
    /// Every answer to a client.
    pub responses: Vec<RespondToClient>,
    /// Every batch sent to another partition.
    pub sends: Vec<SendMessages>,
    /// The last timer asked for.
    pub armed: Option<Timestamp>,
}

impl SimWorker {
    /// Takes note of the effects of one update.
    pub fn observe(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::StartEpisode(e) => self.episodes.push(e.clone()),
                Effect::StartActivity(a) => self.activities.push(a.clone()),
                Effect::StartEntityBatch(b) => self.batches.push(b.clone()),
                Effect::RespondToClient(r) => self.responses.push(r.clone()),
                Effect::SendMessages(s) => self.sends.push(s.clone()),
                Effect::ArmTimer { due } => self.armed = Some(*due),
            }
        }
    }

    /// Forgets all work handed out, as a crash of the workers' process would.
    pub fn forget_work(&mut self) {
        self.episodes.clear();
        self.activities.clear();
        self.batches.clear();
    }

    /// Answers the episode at `pick` (modulo the number outstanding) with actions chosen by
    /// `script`; `peers` are instances it may send events to.
    pub fn answer_episode(
        &mut self,
        pick: usize,
        script: &[u8],
        now: Timestamp,
        peers: &[InstanceId],
    ) -> Option<UpdateKind> {
        let episode = take(&mut self.episodes, pick)?;
        let actions = episode_actions(&episode, script, now, peers);
        Some(UpdateKind::EpisodeCompleted(EpisodeCompleted {
            instance: episode.instance,
            execution: episode.execution,
            episode: episode.episode,
            actions,
            custom_status: script.first().map(|b| format!("\"{b}\"")),
        }))
    }

    /// Gives the episode at `pick` back without running it.
    pub fn abandon_episode(&mut self, pick: usize) -> Option<UpdateKind> {
        let episode = take(&mut self.episodes, pick)?;
        Some(UpdateKind::EpisodeAbandoned(EpisodeAbandoned {
            instance: episode.instance,
            episode: episode.episode,
        }))
    }

    /// Completes the activity at `pick`, successfully or not.
    pub fn answer_activity(&mut self, pick: usize, succeed: bool) -> Option<UpdateKind> {
        let activity = take(&mut self.activities, pick)?;
        let result = if succeed {
            Ok(Some(format!("\"{}\"", activity.name)))
        } else {
            Err(FailureDetails::new("ActivityError", activity.name))
        };
        Some(UpdateKind::ActivityCompleted(ActivityCompleted {
            activity: activity.activity,
            result,
        }))
    }

    /// Runs the entity batch at `pick`: every operation counts one up, or (when `abandon`)
    /// the batch is given back.
    pub fn answer_batch(&mut self, pick: usize, abandon: bool) -> Option<UpdateKind> {
        let batch = take(&mut self.batches, pick)?;
        if abandon {
            return Some(UpdateKind::EntityBatchAbandoned(EntityBatchAbandoned {
                entity: batch.entity,
                batch: batch.batch,
            }));
        }
        let before: u64 = batch
            .state
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let count = before + batch.operations.len() as u64;
        let results = batch.operations.iter();
        let results = results.map(|_| OperationResult::Success(Some(count.to_string())));
        let result = EntityBatchResult {
            results: results.collect(),
            actions: Vec::new(),
            entity_state: Some(count.to_string()),
        };
        Some(UpdateKind::EntityBatchCompleted(EntityBatchCompleted {
            entity: batch.entity,
            batch: batch.batch,
            result,
        }))
    }
}

/// Removes the item at `pick` modulo the length.
fn take<T>(items: &mut Vec<T>, pick: usize) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    Some(items.remove(pick % items.len()))
}

/// The actions of a simulated orchestration for one episode.
///
/// It answers a termination as the SDKs do (a `Terminated` completion); otherwise each script
/// byte picks one action, and a completion or continue-as-new ends the list.
fn episode_actions(
    episode: &StartEpisode,
    script: &[u8],
    now: Timestamp,
    peers: &[InstanceId],
) -> Vec<OrchestratorAction> {
    let terminated = episode.new_events.iter().find_map(|e| match &e.kind {
        EventKind::ExecutionTerminated(t) => Some(t.input.clone()),
        _ => None,
    });
    if let Some(reason) = terminated {
        let end = completion(OrchestrationStatus::Terminated, reason);
        return vec![OrchestratorAction { id: -1, kind: end }];
    }

    let events = episode.past_events.iter().chain(&episode.new_events);
    let mut next_id = events.map(|e| e.event_id).max().unwrap_or(-1).max(-1) + 1;
    let mut actions = Vec::new();
    for &byte in script.iter().take(3) {
        let kind = action_for(episode, byte, now, next_id, peers);
        let ends = matches!(kind, Some(ActionKind::CompleteOrchestration(_)));
        if let Some(kind) = kind {
            actions.push(OrchestratorAction { id: next_id, kind });
            next_id += 1;
        }
        if ends {
            break;
        }
    }
    actions
}

/// One action picked by `byte`.
fn action_for(
    episode: &StartEpisode,
    byte: u8,
    now: Timestamp,
    id: i32,
    peers: &[InstanceId],
) -> Option<ActionKind> {
    let arg = usize::from(byte / 12);
    let kind = match byte % 12 {
        0 | 1 => ActionKind::ScheduleTask(ScheduleTask::new(format!("act{arg}"))),
        2 => {
            let delay = Duration::from_secs(1 + (arg % 5) as u64);
            ActionKind::CreateTimer {
                fire_at: now.saturating_add(delay),
            }
        }
        3 if !peers.is_empty() => ActionKind::SendEvent(SendEvent {
            instance_id: peers[arg % peers.len()].clone(),
            execution_id: None,
            name: format!("ev{arg}"),
            data: None,
        }),
        4 => {
            let child = child_id(&episode.instance, id, arg);
            ActionKind::CreateSubOrchestration(CreateSubOrchestration::new(child, "Child"))
        }
        5 | 6 => ActionKind::SendEntityMessage(entity_message(episode, byte, id, arg)),
        7 | 8 => completion(OrchestrationStatus::Completed, Some("\"ok\"".into())),
        9 => completion(OrchestrationStatus::Failed, None),
        10 => {
            let mut next = completion(
                OrchestrationStatus::ContinuedAsNew,
                Some("\"again\"".into()),
            );
            if let ActionKind::CompleteOrchestration(c) = &mut next {
                let raised = HistoryEvent::new(
                    now,
                    EventKind::EventRaised(crate::model::EventRaised {
                        name: "carried".into(),
                        input: None,
                    }),
                );
                c.carryover_events = vec![raised];
            }
            next
        }
        _ => return None,
    };
    Some(kind)
}

/// A child id placed on partition `arg % 2` through the explicit `!n` suffix.
fn child_id(parent: &InstanceId, id: i32, arg: usize) -> InstanceId {
    let base = parent.as_str().split('!').next().unwrap_or_default();
    InstanceId(format!("{base}-c{id}!{}", arg % 2))
}

/// A signal (even bytes) or a call (odd bytes) to one of three counters.
fn entity_message(episode: &StartEpisode, byte: u8, id: i32, arg: usize) -> EntityMessage {
    let target = Some(InstanceId(format!("@counter@k{}!{}", arg % 3, arg % 2)));
    let request_id = format!("{}:{}:{id}", episode.instance, episode.execution);
    if byte % 2 == 1 {
        return EntityMessage::Signal(EntityOperationSignaled {
            request_id,
            operation: "add".into(),
            scheduled_time: None,
            input: None,
            target_instance_id: target,
        });
    }
    EntityMessage::Call(EntityOperationCalled {
        request_id,
        operation: "add".into(),
        scheduled_time: None,
        input: None,
        parent_instance_id: None,
        parent_execution_id: None,
        target_instance_id: target,
    })
}

fn completion(status: OrchestrationStatus, result: Option<String>) -> ActionKind {
    let failure = (status == OrchestrationStatus::Failed)
        .then(|| FailureDetails::new("OrchestrationError", "failed on purpose"));
    ActionKind::CompleteOrchestration(CompleteOrchestration {
        failure,
        ..CompleteOrchestration::new(status, result)
    })
}
