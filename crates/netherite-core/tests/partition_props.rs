//! Property tests of the partition state machine over random, realistic runs.
//!
//! A run is a list of [`Op`]s: client requests, messages from another partition, timer ticks,
//! outbox confirmations, recoveries, and the answers of simulated workers (episodes with random
//! actions, activities, entity batches, abandons). Each op becomes one update event, or none
//! when there is nothing to answer.

use std::collections::BTreeMap;
use std::time::Duration;

use netherite_core::codec;
use netherite_core::ids::{ClientId, CommitPosition, ExecutionId, InputPosition, InstanceId};
use netherite_core::ids::{PartitionId, RequestSeq};
use netherite_core::model::{EventKind, EventRaised, ExecutionStarted, HistoryEvent, TaskMessage};
use netherite_core::partition::testing::{Driver, SimWorker};
use netherite_core::partition::{
    ClientRequest, CreateInstance, Effect, OutboxConfirmed, PartitionState, RespondToClient,
    SignalEntity, UpdateEvent, UpdateKind, WaitFor, WaitUntil,
};
use netherite_core::time::Timestamp;
use netherite_core::transport::{MemoryHub, TransportFaults};
use proptest::prelude::*;
use proptest::sample::Index;

#[path = "partition_props/cluster.rs"]
mod cluster;

use cluster::{COUNTERS, Cluster, Plan};

/// One step of a run.
#[derive(Clone, Debug)]
enum Op {
    Create {
        instance: u8,
        delay: u8,
    },
    Raise(u8),
    Terminate(u8),
    Suspend(u8),
    Resume(u8),
    Signal(u8),
    Wait {
        instance: u8,
        completion: bool,
        deadline: u8,
    },
    Purge(u8),
    Episode {
        pick: u8,
        script: Vec<u8>,
    },
    Abandon(u8),
    Activity {
        pick: u8,
        succeed: bool,
    },
    Batch {
        pick: u8,
        abandon: bool,
    },
    Tick(u8),
    Remote {
        instance: u8,
        start: bool,
    },
    Confirm,
    Recover {
        workers_survive: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let script = proptest::collection::vec(any::<u8>(), 0..4);
    let wait = |(instance, completion, deadline)| Op::Wait {
        instance,
        completion,
        deadline,
    };
    let activity = |(pick, succeed)| Op::Activity { pick, succeed };
    let batch = |(pick, abandon)| Op::Batch { pick, abandon };
    let remote = |(instance, start)| Op::Remote { instance, start };
    let recover = |workers_survive| Op::Recover { workers_survive };
    prop_oneof![
        3 => (0..5u8, 0..3u8).prop_map(|(instance, delay)| Op::Create { instance, delay }),
        1 => (0..5u8).prop_map(Op::Raise),
        1 => (0..5u8).prop_map(Op::Terminate),
        1 => (0..5u8).prop_map(Op::Suspend),
        1 => (0..5u8).prop_map(Op::Resume),
        1 => (0..3u8).prop_map(Op::Signal),
        1 => (0..5u8, any::<bool>(), 0..4u8).prop_map(wait),
        1 => (0..5u8).prop_map(Op::Purge),
        8 => (any::<u8>(), script).prop_map(|(pick, script)| Op::Episode { pick, script }),
        1 => any::<u8>().prop_map(Op::Abandon),
        4 => (any::<u8>(), any::<bool>()).prop_map(activity),
        3 => (any::<u8>(), any::<bool>()).prop_map(batch),
        2 => (0..8u8).prop_map(Op::Tick),
        1 => (0..5u8, any::<bool>()).prop_map(remote),
        1 => Just(Op::Confirm),
        1 => any::<bool>().prop_map(recover),
    ]
}

const CLIENT: ClientId = ClientId(9);

/// A live run: the driver (state and log), the effects of each logged event, and the state
/// after each logged event.
struct Run {
    driver: Driver,
    effects: Vec<Vec<Effect>>,
    snapshots: Vec<PartitionState>,
}

/// The orchestration ids of the run: all on partition 0 of 2.
fn local(n: u8) -> InstanceId {
    InstanceId(format!("o{n}!0"))
}

/// Plays `ops` on partition 0 of 2, with positions advancing by `stride`.
fn run(ops: &[Op], stride: u64) -> Run {
    let mut driver = Driver::new(0, 2, stride);
    let mut worker = SimWorker::default();
    let mut run = Run {
        driver: driver.clone(),
        effects: Vec::new(),
        snapshots: Vec::new(),
    };
    let mut remote = Remote::default();
    for op in ops {
        let Some(kind) = update_for(op, &mut driver, &mut worker, &mut remote) else {
            continue;
        };
        let effects = driver.apply(kind);
        worker.observe(&effects);
        run.effects.push(effects);
        run.snapshots.push(driver.state.clone());
    }
    run.driver = driver;
    run
}

/// The other partition, as seen by partition 0: it sends stamped batches.
#[derive(Default)]
struct Remote {
    position: u64,
    seq: u64,
}

/// The update event an op stands for, if there is anything to do.
fn update_for(
    op: &Op,
    driver: &mut Driver,
    worker: &mut SimWorker,
    remote: &mut Remote,
) -> Option<UpdateKind> {
    let now = driver.now;
    let peers: Vec<InstanceId> = (0..5).map(local).chain([InstanceId::new("r0!1")]).collect();
    match op {
        Op::Episode { pick, script } => {
            worker.answer_episode(usize::from(*pick), script, now, &peers)
        }
        Op::Abandon(pick) => worker.abandon_episode(usize::from(*pick)),
        Op::Activity { pick, succeed } => worker.answer_activity(usize::from(*pick), *succeed),
        Op::Batch { pick, abandon } => worker.answer_batch(usize::from(*pick), *abandon),
        Op::Tick(secs) => {
            driver.advance(Duration::from_secs(u64::from(*secs)));
            Some(UpdateKind::TimersFired)
        }
        Op::Confirm => Some(UpdateKind::OutboxConfirmed(OutboxConfirmed {
            destination: PartitionId(1),
            position: driver.position(),
        })),
        Op::Recover { workers_survive } => {
            if !workers_survive {
                worker.forget_work();
            }
            Some(UpdateKind::Recovered)
        }
        Op::Remote { instance, start } => Some(remote_batch(driver, remote, *instance, *start)),
        request => {
            remote.seq += 1;
            let request = client_request(request, now)?;
            let event = netherite_core::partition::ClientRequestEvent {
                input: driver.next_input(),
                client: CLIENT,
                seq: RequestSeq(remote.seq),
                request,
            };
            Some(UpdateKind::ClientRequest(event))
        }
    }
}

fn client_request(op: &Op, now: Timestamp) -> Option<ClientRequest> {
    let request = match *op {
        Op::Create { instance, delay } => ClientRequest::Create(CreateInstance {
            instance: local(instance),
            name: "Sim".into(),
            version: None,
            input: None,
            tags: BTreeMap::new(),
            scheduled_start: Some(now.saturating_add(Duration::from_secs(u64::from(delay) * 2))),
            execution: None,
            replaceable: vec![netherite_core::model::OrchestrationStatus::Completed],
            parent_trace_context: None,
        }),
        Op::Raise(i) => ClientRequest::RaiseEvent {
            instance: local(i),
            name: "poke".into(),
            input: None,
        },
        Op::Terminate(i) => ClientRequest::Terminate {
            instance: local(i),
            reason: Some("\"stop\"".into()),
            recurse: i % 2 == 0,
        },
        Op::Suspend(i) => ClientRequest::Suspend {
            instance: local(i),
            reason: None,
        },
        Op::Resume(i) => ClientRequest::Resume {
            instance: local(i),
            reason: None,
        },
        Op::Signal(k) => ClientRequest::SignalEntity(SignalEntity {
            entity: InstanceId(format!("@counter@k{k}!0")),
            operation: "add".into(),
            input: None,
            request_id: format!("client-{k}-{}", now.secs),
            scheduled_time: None,
        }),
        Op::Wait {
            instance,
            completion,
            deadline,
        } => ClientRequest::WaitFor(WaitFor {
            instance: local(instance),
            until: if completion {
                WaitUntil::Completion
            } else {
                WaitUntil::Start
            },
            deadline: Some(now.saturating_add(Duration::from_secs(u64::from(deadline) * 3))),
            payloads: completion,
        }),
        Op::Purge(i) => ClientRequest::Purge { instance: local(i) },
        _ => return None,
    };
    Some(request)
}

/// A batch from partition 1: an event for a local instance, or the start of a new one.
fn remote_batch(driver: &mut Driver, remote: &mut Remote, instance: u8, start: bool) -> UpdateKind {
    remote.position += 1;
    let now = driver.now;
    let message = if start {
        let id = InstanceId(format!("from-remote-{}!0", remote.position));
        let started = ExecutionStarted {
            name: "Remote".into(),
            version: None,
            input: None,
            instance_id: id.clone(),
            execution_id: ExecutionId::new(format!("x{}", remote.position)),
            parent: None,
            scheduled_start: None,
            parent_trace_context: None,
            orchestration_span_id: None,
            tags: BTreeMap::new(),
        };
        TaskMessage::to_instance(
            id,
            HistoryEvent::new(now, EventKind::ExecutionStarted(started)),
        )
    } else {
        let raised = EventRaised {
            name: "remote".into(),
            input: None,
        };
        TaskMessage::to_instance(
            local(instance),
            HistoryEvent::new(now, EventKind::EventRaised(raised)),
        )
    };
    let batch = netherite_core::partition::PartitionMessages {
        input: driver.next_input(),
        origin: PartitionId(1),
        origin_position: CommitPosition(remote.position),
        sub_position: 0,
        messages: vec![message],
    };
    UpdateKind::PartitionMessages(batch)
}

/// How a logged event is duplicated: `None` when it is not a duplicate-able event.
///
/// - the same position again (already applied);
/// - the same event at the free position after it (for input events: a redelivery);
/// - a retry at the free position: for input events with a new input position (a client's
///   retry, a resent batch), otherwise the same as a redelivery.
fn duplicate(
    at: CommitPosition,
    event: &UpdateEvent,
    how: u8,
) -> Option<(CommitPosition, UpdateEvent)> {
    if matches!(event.kind, UpdateKind::Recovered) {
        return None;
    }
    let next = CommitPosition(at.0 + 1);
    let mut copy = event.clone();
    match how % 3 {
        0 => return Some((at, copy)),
        1 => {}
        _ => match &mut copy.kind {
            UpdateKind::ClientRequest(r) => r.input = InputPosition(r.input.0 + 1),
            UpdateKind::PartitionMessages(m) => m.input = InputPosition(m.input.0 + 1),
            _ => {}
        },
    }
    Some((next, copy))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Duplicated, redelivered and retried input never changes the outcome: the state and
    /// the effects of every original event are the same as without the duplicates, and a
    /// duplicate's only possible effect is the answer its original got.
    #[test]
    fn duplicates_never_change_the_outcome(
        ops in proptest::collection::vec(op(), 1..80),
        dups in proptest::collection::vec(proptest::option::of(any::<u8>()), 80),
    ) {
        let live = run(&ops, 2);
        let mut replica = Driver::new(0, 2, 2).state;
        let mut answers: BTreeMap<(ClientId, RequestSeq), RespondToClient> = BTreeMap::new();

        for (i, ((at, event), expected)) in live.driver.log.iter().zip(&live.effects).enumerate() {
            let effects = replica.apply(*at, event);
            prop_assert_eq!(&effects, expected, "event {} at {}", i, at);
            for effect in &effects {
                if let Effect::RespondToClient(r) = effect {
                    answers.insert((r.client, r.seq), r.clone());
                }
            }

            let how = dups[i % dups.len()];
            let Some((dup_at, dup)) = how.and_then(|how| duplicate(*at, event, how)) else {
                continue;
            };
            for effect in replica.apply(dup_at, &dup) {
                let Effect::RespondToClient(again) = &effect else {
                    let why = format!("duplicate of event {i} had {effect:?}");
                    return Err(TestCaseError::fail(why));
                };
                prop_assert_eq!(Some(again), answers.get(&(again.client, again.seq)));
            }
        }
        prop_assert!(replica.eq_except_progress(&live.driver.state));
    }

    /// Replaying the logged events onto a checkpoint taken at any point (the state through a
    /// serialize round trip, the events read back from their log records) gives the live
    /// state exactly, with the same effects on the way; events already covered by the
    /// checkpoint are ignored.
    #[test]
    fn replay_onto_a_checkpoint_gives_the_live_state(
        ops in proptest::collection::vec(op(), 1..80),
        cut in any::<Index>(),
    ) {
        let live = run(&ops, 1);
        prop_assume!(!live.snapshots.is_empty());
        let k = cut.index(live.snapshots.len());

        let bytes = postcard::to_stdvec(&live.snapshots[k]).expect("a state serializes");
        let mut recovered: PartitionState = postcard::from_bytes(&bytes).expect("and deserializes");
        prop_assert_eq!(&recovered, &live.snapshots[k]);

        // The log from the start, as read back from its records: what the checkpoint covers
        // is ignored.
        for (i, (at, event)) in live.driver.log.iter().enumerate() {
            let record = codec::encode(event).expect("an event encodes");
            let (logged, _) = codec::decode::<UpdateEvent>(&record, "log", at.0).expect("decodes");
            prop_assert_eq!(&logged, event);
            let effects = recovered.apply(*at, &logged);
            if i <= k {
                prop_assert!(effects.is_empty(), "event {} is covered by the checkpoint", i);
            } else {
                prop_assert_eq!(&effects, &live.effects[i], "event {} at {}", i, at);
            }
        }
        prop_assert_eq!(&recovered, &live.driver.state);
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    let counters = proptest::sample::subsequence(vec![0usize, 1, 2], 0..=3);
    let senders = proptest::collection::vec((0..3u32, 0..3u32, counters), 1..5);
    (senders, 0..3u32).prop_map(|(senders, collector)| Plan { senders, collector })
}

/// Every message of the scenario was applied exactly once where it went.
fn check_exactly_once(cluster: &Cluster, plan: &Plan) -> Result<(), TestCaseError> {
    let count = |history: &[HistoryEvent], number: u32| {
        history
            .iter()
            .filter(|e| e.kind.protocol_number() == number)
            .count()
    };
    for (i, (p, q, _)) in plan.senders.iter().enumerate() {
        let (status, history) = cluster
            .instance(&cluster::sender(i, *p))
            .expect("sender exists");
        prop_assert_eq!(
            status,
            netherite_core::model::OrchestrationStatus::Completed
        );
        // ExecutionStarted, TaskCompleted, SubOrchestrationCompleted, ExecutionCompleted.
        for number in [3, 7, 10, 4] {
            prop_assert_eq!(count(&history, number), 1, "sender {} event {}", i, number);
        }
        let child = InstanceId(format!("s{i}-child!{q}"));
        let (status, _) = cluster.instance(&child).expect("child exists");
        prop_assert_eq!(
            status,
            netherite_core::model::OrchestrationStatus::Completed
        );
    }

    let (_, history) = cluster
        .instance(&cluster::collector(plan))
        .expect("collector exists");
    let mut raised: Vec<String> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::EventRaised(r) => Some(r.name.clone()),
            _ => None,
        })
        .collect();
    raised.sort();
    let mut expected: Vec<String> = (0..plan.senders.len())
        .map(|i| format!("from-s{i}"))
        .collect();
    expected.sort();
    prop_assert_eq!(raised, expected);

    for (c, id) in COUNTERS.iter().enumerate() {
        let mut seen: Vec<String> = cluster
            .entity_state(id)
            .map(|s| s.split(',').map(String::from).collect())
            .unwrap_or_default();
        seen.sort();
        let senders = plan.senders.iter().enumerate();
        let mut expected: Vec<String> = senders
            .filter(|(_, (_, _, counters))| counters.contains(&c))
            .map(|(i, _)| format!("s{i}"))
            .collect();
        expected.sort();
        prop_assert_eq!(seen, expected, "counter {}", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Several partitions over the in-memory transport (which drops, duplicates, redelivers
    /// and leaves gaps), with random flushes, checkpoints and crashes: once everything has
    /// run, every message was applied exactly once at its destination: each entity signal
    /// counted once, each raised event in the collector's history once, each child's result
    /// and each activity's result once in its parent's history.
    #[test]
    fn messages_apply_exactly_once_across_crashes(
        plan in plan(),
        steps in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..200),
        fault_seed in any::<u64>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let faults = TransportFaults {
                seed: fault_seed,
                drop_rate: 0.1,
                duplicate_rate: 0.1,
                redeliver_rate: 0.05,
                gap_rate: 0.1,
                ..TransportFaults::none()
            };
            let hub = MemoryHub::new(3).expect("a hub").with_faults(faults);
            let mut cluster = Cluster::start(&hub, 3, plan.clone()).await;
            for (host, action) in steps {
                cluster.step(usize::from(host), action).await;
            }
            cluster.drain(1_000).await;
            check_exactly_once(&cluster, &plan)
        })?;
    }
}

/// A sanity check on the generator: runs do reach the interesting places.
#[test]
fn generated_runs_exercise_the_main_flows() {
    let ops = [
        Op::Create {
            instance: 0,
            delay: 0,
        },
        Op::Episode {
            pick: 0,
            script: vec![0, 4, 5],
        },
        Op::Activity {
            pick: 0,
            succeed: true,
        },
        Op::Batch {
            pick: 0,
            abandon: false,
        },
        Op::Episode {
            pick: 0,
            script: vec![7],
        },
    ];
    let live = run(&ops, 1);

    let all: Vec<&Effect> = live.effects.iter().flatten().collect();
    let count = |f: fn(&Effect) -> bool| all.iter().filter(|e| f(e)).count();
    assert!(count(|e| matches!(e, Effect::StartActivity(_))) >= 1);
    assert!(
        count(|e| matches!(e, Effect::SendMessages(_)))
            + count(|e| matches!(e, Effect::StartEpisode(_)))
            >= 3
    );
    assert!(count(|e| matches!(e, Effect::StartEntityBatch(_))) >= 1);
}
