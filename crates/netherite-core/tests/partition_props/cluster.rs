//! A small simulated cluster: partitions over the in-memory transport, each with a commit
//! log whose undurable tail a crash loses, checkpoints, and workers that die with their host.
//!
//! The hosts play the engine's part exactly as the state machine's contract asks: work starts
//! at once, messages and answers leave only once their `after` position is durable, a sent
//! batch is confirmed to the sender, and a crash reloads the last checkpoint, replays the
//! durable log and logs `Recovered`. The scenario's workers are deterministic, so a re-issued
//! episode gets the same answer it would have got the first time.

use std::time::Duration;

use netherite_core::entity::{EntityBatchResult, OperationResult};
use netherite_core::ids::partition_of;
use netherite_core::ids::{ClientId, CommitPosition, InstanceId, PartitionId, RequestSeq};
use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage,
    EntityOperationSignaled, EventKind, HistoryEvent, OrchestrationStatus, OrchestratorAction,
    ScheduleTask, SendEvent, TaskMessage,
};
use netherite_core::partition::{
    ActivityCompleted, ClientRequest, ClientRequestEvent, CreateInstance, Effect,
    EntityBatchCompleted, EpisodeCompleted, OutboxConfirmed, PartitionConfig, PartitionMessages,
    PartitionState, ReadEvent, ReadResult, UpdateEvent, UpdateKind,
};
use netherite_core::time::Timestamp;
use netherite_core::transport::{InputStream, MemoryHub, MemoryTransport, NodeId, Transport};
use serde::{Deserialize, Serialize};

/// What travels in a partition's input queue.
#[derive(Serialize, Deserialize)]
enum Wire {
    Batch {
        origin: PartitionId,
        origin_position: CommitPosition,
        sub_position: u32,
        messages: Vec<TaskMessage>,
    },
    Request {
        client: ClientId,
        seq: RequestSeq,
        request: Box<ClientRequest>,
    },
}

/// The scenario: senders, each signalling some counters, raising an event on the collector,
/// running one activity and one child, and completing once both came back.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Per sender: its partition, its child's partition, and the counters it signals.
    pub(crate) senders: Vec<(u32, u32, Vec<usize>)>,
    /// The collector's partition.
    pub(crate) collector: u32,
}

pub(crate) const COUNTERS: [&str; 3] = ["@acc@a!0", "@acc@b!1", "@acc@c!2"];
pub(crate) const CLIENT: ClientId = ClientId(77);

pub(crate) fn sender(i: usize, partition: u32) -> InstanceId {
    InstanceId(format!("s{i}!{partition}"))
}

pub(crate) fn collector(plan: &Plan) -> InstanceId {
    InstanceId(format!("collector!{}", plan.collector))
}

/// One partition host.
struct Host {
    id: PartitionId,
    state: PartitionState,
    log: Vec<(CommitPosition, UpdateEvent)>,
    durable: usize,
    checkpoint: (Vec<u8>, usize),
    gated: Vec<Effect>,
    work: Vec<Effect>,
    input: InputStream,
}

/// The hosts, the transport they share, and a seed source that never repeats.
pub(crate) struct Cluster {
    transport: MemoryTransport,
    hosts: Vec<Host>,
    plan: Plan,
    seeds: u64,
    now: Timestamp,
}

impl Cluster {
    /// A cluster of `count` partitions over `hub`, and the client's creates sent.
    pub(crate) async fn start(hub: &MemoryHub, count: u32, plan: Plan) -> Cluster {
        let transport = hub.connect(NodeId::new("node"));
        let mut hosts = Vec::new();
        for p in 0..count {
            hosts.push(Host::new(&transport, p, count).await);
        }
        let mut cluster = Cluster {
            transport,
            hosts,
            plan,
            seeds: 0,
            now: Timestamp::new(1_000, 0),
        };
        cluster.send_creates().await;
        cluster
    }

    async fn send_creates(&mut self) {
        let mut ids = vec![collector(&self.plan)];
        let senders = self.plan.senders.iter().enumerate();
        ids.extend(senders.map(|(i, (p, _, _))| sender(i, *p)));
        for (seq, id) in (1..).zip(ids) {
            let request = Box::new(ClientRequest::Create(create(&id)));
            let wire = Wire::Request {
                client: CLIENT,
                seq: RequestSeq(seq),
                request,
            };
            let owner = partition_of(&id, self.hosts.len() as u32);
            self.send(owner, &wire).await;
        }
    }

    /// Sends until the transport takes it: a failed send may or may not have landed, which
    /// the receiver's dedup makes harmless.
    async fn send(&self, to: PartitionId, wire: &Wire) {
        let payload = postcard::to_stdvec(wire).expect("wire encodes");
        while self
            .transport
            .send(to, vec![payload.clone()])
            .await
            .is_err()
        {}
    }

    /// One scheduling step on host `h`, chosen by `action`.
    pub(crate) async fn step(&mut self, h: usize, action: u8) {
        let h = h % self.hosts.len();
        match action % 10 {
            0..=3 => drop(self.poll(h).await),
            4 | 5 => drop(self.work(h, usize::from(action / 10))),
            6 => self.hosts[h].durable = self.hosts[h].log.len(),
            7 => drop(self.release(h).await),
            8 => self.hosts[h].take_checkpoint(),
            9 if action % 4 == 1 => self.crash(h).await,
            _ => self.now = self.now.saturating_add(Duration::from_millis(10)),
        }
    }

    /// Runs every host until nothing moves any more (or `rounds` runs out).
    pub(crate) async fn drain(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut moved = false;
            for h in 0..self.hosts.len() {
                self.hosts[h].durable = self.hosts[h].log.len();
                moved |= self.release(h).await;
                while self.poll(h).await {
                    moved = true;
                }
                while self.work(h, 0) {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Reads the next input event of host `h`, if one is there.
    async fn poll(&mut self, h: usize) -> bool {
        let next = tokio::time::timeout(Duration::ZERO, self.hosts[h].input.next()).await;
        let event = match next {
            Err(_) => return false,
            Ok(Some(Ok(event))) => event,
            Ok(_) => {
                self.hosts[h].resubscribe(&self.transport).await;
                return false;
            }
        };
        let wire: Wire = postcard::from_bytes(&event.payload).expect("wire decodes");
        let input = event.next_position();
        let kind = match wire {
            Wire::Batch {
                origin,
                origin_position,
                sub_position,
                messages,
            } => {
                let batch = PartitionMessages {
                    input,
                    origin,
                    origin_position,
                    sub_position,
                    messages,
                };
                UpdateKind::PartitionMessages(batch)
            }
            Wire::Request {
                client,
                seq,
                request,
            } => UpdateKind::ClientRequest(ClientRequestEvent {
                input,
                client,
                seq,
                request: *request,
            }),
        };
        self.apply(h, kind);
        true
    }

    /// Answers the work item at `pick` of host `h`.
    fn work(&mut self, h: usize, pick: usize) -> bool {
        let work = &mut self.hosts[h].work;
        if work.is_empty() {
            return false;
        }
        let item = work.remove(pick % work.len());
        let kind = answer(&self.plan, item, self.now);
        self.apply(h, kind);
        true
    }

    /// Lets out what waited for host `h`'s log to be durable up to its position.
    async fn release(&mut self, h: usize) -> bool {
        let host = &mut self.hosts[h];
        let durable = CommitPosition(host.durable as u64);
        let (ready, waiting) = host
            .gated
            .drain(..)
            .partition(|e| gated_after(e) <= durable);
        host.gated = waiting;
        let ready: Vec<Effect> = ready;
        let moved = !ready.is_empty();
        for effect in ready {
            let Effect::SendMessages(send) = effect else {
                continue; // answers to the client are not checked here
            };
            let wire = Wire::Batch {
                origin: send.origin,
                origin_position: send.origin_position,
                sub_position: send.sub_position,
                messages: send.messages,
            };
            self.send(send.destination, &wire).await;
            let confirm = OutboxConfirmed {
                destination: send.destination,
                position: send.origin_position,
            };
            self.apply(h, UpdateKind::OutboxConfirmed(confirm));
        }
        moved
    }

    /// Host `h` crashes: it loses its undurable log tail, its gated effects and its workers,
    /// and recovers from its checkpoint and its durable log.
    async fn crash(&mut self, h: usize) {
        let host = &mut self.hosts[h];
        host.log.truncate(host.durable);
        host.state = postcard::from_bytes(&host.checkpoint.0).expect("checkpoint decodes");
        for (at, event) in &host.log[host.checkpoint.1..] {
            host.state.apply(*at, event);
        }
        host.gated.clear();
        host.work.clear();
        host.resubscribe(&self.transport).await;
        self.apply(h, UpdateKind::Recovered);
    }

    fn apply(&mut self, h: usize, kind: UpdateKind) {
        self.seeds += 1;
        // Spread the seeds: recovery takes work numbers from them.
        let seed = u128::from(self.seeds.wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 1 | 1;
        let event = UpdateEvent {
            now: self.now,
            seed,
            kind,
        };
        let host = &mut self.hosts[h];
        let at = CommitPosition(host.log.len() as u64 + 1);
        let effects = host.state.apply(at, &event);
        host.log.push((at, event));
        for effect in effects {
            match effect {
                Effect::SendMessages(_) | Effect::RespondToClient(_) => host.gated.push(effect),
                Effect::ArmTimer { .. } => {}
                work => host.work.push(work),
            }
        }
    }

    /// The instance `id` as its partition sees it, with its history.
    pub(crate) fn instance(
        &self,
        id: &InstanceId,
    ) -> Option<(OrchestrationStatus, Vec<HistoryEvent>)> {
        let host = &self.hosts[partition_of(id, self.hosts.len() as u32).0 as usize];
        let read = ReadEvent::GetInstance {
            instance: id.clone(),
            payloads: false,
        };
        let ReadResult::Instance(Some(view)) = host.state.read(&read) else {
            return None;
        };
        let read = ReadEvent::GetHistory {
            instance: id.clone(),
        };
        let ReadResult::History(history) = host.state.read(&read) else {
            return None;
        };
        Some((view.status, history.unwrap_or_default()))
    }

    /// The state of entity `id`.
    pub(crate) fn entity_state(&self, id: &str) -> Option<String> {
        let id = InstanceId::new(id);
        let host = &self.hosts[partition_of(&id, self.hosts.len() as u32).0 as usize];
        let read = ReadEvent::GetEntity {
            entity: id,
            include_state: true,
        };
        match host.state.read(&read) {
            ReadResult::Entity(view) => view.and_then(|v| v.state),
            _ => None,
        }
    }
}

impl Host {
    async fn new(transport: &MemoryTransport, partition: u32, count: u32) -> Host {
        let config = PartitionConfig {
            partition: PartitionId(partition),
            partition_count: count,
            limits: Default::default(),
        };
        let state = PartitionState::new(config).expect("valid config");
        let checkpoint = (postcard::to_stdvec(&state).expect("state encodes"), 0);
        let input = transport
            .subscribe(PartitionId(partition), state.input_position())
            .await
            .expect("subscribes");
        Host {
            id: PartitionId(partition),
            state,
            log: Vec::new(),
            durable: 0,
            checkpoint,
            gated: Vec::new(),
            work: Vec::new(),
            input,
        }
    }

    async fn resubscribe(&mut self, transport: &MemoryTransport) {
        let from = self.state.input_position();
        self.input = transport
            .subscribe(self.id, from)
            .await
            .expect("resubscribes");
    }

    /// A checkpoint covers only durable state, so the log is flushed first.
    fn take_checkpoint(&mut self) {
        self.durable = self.log.len();
        let bytes = postcard::to_stdvec(&self.state).expect("state encodes");
        self.checkpoint = (bytes, self.log.len());
    }
}

/// The position a gated effect waits for.
fn gated_after(effect: &Effect) -> CommitPosition {
    match effect {
        Effect::SendMessages(send) => send.after,
        Effect::RespondToClient(answer) => answer.after,
        _ => CommitPosition::START,
    }
}

fn create(id: &InstanceId) -> CreateInstance {
    CreateInstance::new(id.clone(), "Scenario")
}

/// The scenario's worker: the same work always gets the same answer.
fn answer(plan: &Plan, work: Effect, now: Timestamp) -> UpdateKind {
    match work {
        Effect::StartEpisode(episode) => {
            let actions = episode_actions(
                plan,
                &episode.instance,
                &episode.past_events,
                &episode.new_events,
            );
            UpdateKind::EpisodeCompleted(EpisodeCompleted {
                instance: episode.instance,
                execution: episode.execution,
                episode: episode.episode,
                actions,
                custom_status: None,
            })
        }
        Effect::StartActivity(activity) => UpdateKind::ActivityCompleted(ActivityCompleted {
            activity: activity.activity,
            result: Ok(Some("\"done\"".into())),
        }),
        Effect::StartEntityBatch(batch) => {
            let mut seen: Vec<String> = batch
                .state
                .iter()
                .flat_map(|s| s.split(','))
                .map(String::from)
                .collect();
            for op in &batch.operations {
                if let EventKind::EntityOperationSignaled(signal) = &op.kind {
                    seen.push(signal.input.clone().unwrap_or_default());
                }
            }
            let results = batch
                .operations
                .iter()
                .map(|_| OperationResult::Success(None))
                .collect();
            let result = EntityBatchResult {
                results,
                actions: Vec::new(),
                entity_state: Some(seen.join(",")),
            };
            UpdateKind::EntityBatchCompleted(EntityBatchCompleted {
                entity: batch.entity,
                batch: batch.batch,
                result,
            })
        }
        other => panic!("not work: {other:?} at {now}"),
    }
}

fn episode_actions(
    plan: &Plan,
    instance: &InstanceId,
    past: &[HistoryEvent],
    new: &[HistoryEvent],
) -> Vec<OrchestratorAction> {
    let name = instance.as_str();
    if name.starts_with("collector") {
        return Vec::new();
    }
    if name.contains("-child") {
        return vec![action(0, done())];
    }
    let i: usize = name[1..name.find('!').expect("placed")]
        .parse()
        .expect("sender index");
    if past.is_empty() {
        return first_actions(plan, i, instance);
    }
    let all = || past.iter().chain(new);
    let child_done = all().any(|e| matches!(e.kind, EventKind::SubOrchestrationCompleted(_)));
    let task_done = all().any(|e| matches!(e.kind, EventKind::TaskCompleted(_)));
    if child_done && task_done {
        vec![action(100, done())]
    } else {
        Vec::new()
    }
}

fn first_actions(plan: &Plan, i: usize, instance: &InstanceId) -> Vec<OrchestratorAction> {
    let (_, child_partition, counters) = &plan.senders[i];
    let mut kinds = Vec::new();
    for &c in counters {
        kinds.push(ActionKind::SendEntityMessage(EntityMessage::Signal(
            EntityOperationSignaled {
                request_id: format!("{instance}->{c}"),
                operation: "add".into(),
                scheduled_time: None,
                input: Some(format!("s{i}")),
                target_instance_id: Some(InstanceId::new(COUNTERS[c])),
            },
        )));
    }
    kinds.push(ActionKind::SendEvent(SendEvent {
        instance_id: collector(plan),
        execution_id: None,
        name: format!("from-s{i}"),
        data: None,
    }));
    kinds.push(ActionKind::ScheduleTask(ScheduleTask::new("Work")));
    let child = InstanceId(format!("s{i}-child!{child_partition}"));
    kinds.push(ActionKind::CreateSubOrchestration(
        CreateSubOrchestration::new(child, "Child"),
    ));
    (0..)
        .zip(kinds)
        .map(|(id, kind)| action(id, kind))
        .collect()
}

fn action(id: i32, kind: ActionKind) -> OrchestratorAction {
    OrchestratorAction::new(id, kind)
}

fn done() -> ActionKind {
    let ok = Some("\"ok\"".into());
    ActionKind::CompleteOrchestration(CompleteOrchestration::new(
        OrchestrationStatus::Completed,
        ok,
    ))
}
