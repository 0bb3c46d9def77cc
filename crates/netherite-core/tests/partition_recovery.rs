//! Recovery, checkpoints and executions: what survives a crash, what is re-issued, and what
//! belongs to an execution that is gone.

use std::collections::BTreeMap;

use netherite_core::ids::{ClientId, InstanceId, PartitionId};
use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage,
    EntityOperationCalled, EventKind, EventRaised, HistoryEvent, OrchestrationStatus,
    OrchestratorAction, ScheduleTask,
};
use netherite_core::partition::index::{InstanceFilter, PageRequest};
use netherite_core::partition::testing::{Driver, SimWorker, episodes};
use netherite_core::partition::{
    ActivityCompleted, ClientRequest, CreateInstance, Effect, EpisodeCompleted, EpisodeNumber,
    OutboxConfirmed, PartitionState, ReadEvent, StartEpisode, UpdateKind,
};

const CLIENT: ClientId = ClientId(3);

fn create(id: &str) -> ClientRequest {
    ClientRequest::Create(CreateInstance::new(InstanceId::new(id), "Flow"))
}

fn finish(start: &StartEpisode, kinds: Vec<ActionKind>) -> UpdateKind {
    let actions = (0..)
        .zip(kinds)
        .map(|(id, kind)| OrchestratorAction::new(id, kind));
    UpdateKind::EpisodeCompleted(EpisodeCompleted::answering(start, actions.collect()))
}

fn schedule() -> ActionKind {
    ActionKind::ScheduleTask(ScheduleTask::new("Work"))
}

fn child(id: &str) -> ActionKind {
    let child = CreateSubOrchestration::new(InstanceId::new(id), "Child");
    ActionKind::CreateSubOrchestration(child)
}

/// Recovery re-issues everything that may have been lost on the way out: the episode in
/// flight with a new number (the old number's answer is then stale), the pending activity
/// under its id, and the unconfirmed outbox batch with its original stamp.
#[test]
fn recovery_reissues_work_and_resends_the_outbox() {
    let mut driver = Driver::new(0, 2, 1);
    let a = episodes(&driver.request(CLIENT, 1, create("a!0"))).remove(0);
    let b = episodes(&driver.request(CLIENT, 2, create("b!0"))).remove(0);
    let effects = driver.apply(finish(&b, vec![schedule(), child("c!1")]));
    let mut worker = SimWorker::default();
    worker.observe(&effects);
    let (activity, send) = (worker.activities[0].clone(), worker.sends[0].clone());

    // Phase 1: recovery, with a seed whose low 64 bits become the next work number.
    let seed_low = 5_000u64;
    let recovered = netherite_core::partition::UpdateEvent {
        now: driver.now,
        seed: u128::from(seed_low),
        kind: UpdateKind::Recovered,
    };
    let at = netherite_core::ids::CommitPosition(driver.position().0 + 1);
    let effects = driver.state.apply(at, &recovered);

    let reissued = episodes(&effects);
    assert_eq!(reissued.len(), 1);
    assert_eq!(reissued[0].instance, a.instance);
    assert_eq!(reissued[0].episode, EpisodeNumber(seed_low));
    assert_eq!(reissued[0].new_events[1..], a.new_events[1..]);
    assert!(effects.contains(&Effect::StartActivity(activity)));
    assert!(effects.contains(&Effect::SendMessages(send)));

    // Phase 2: the answer to the pre-crash episode is stale.
    let before = driver.state.clone();
    let effects = driver.apply(finish(&a, Vec::new()));
    assert!(effects.is_empty(), "stale answer had effects: {effects:?}");
    assert!(driver.state.eq_except_progress(&before));
}

/// Once the destination confirms a batch, recovery no longer resends it.
#[test]
fn confirmed_outbox_batches_are_not_resent() {
    let mut driver = Driver::new(0, 2, 1);
    let a = episodes(&driver.request(CLIENT, 1, create("a!0"))).remove(0);
    let effects = driver.apply(finish(&a, vec![child("c!1")]));
    assert_eq!(driver.state.stats().outbox_batches, 1);
    assert!(matches!(effects.as_slice(), [Effect::SendMessages(_)]));

    let confirm = OutboxConfirmed {
        destination: PartitionId(1),
        position: driver.position(),
    };
    driver.apply(UpdateKind::OutboxConfirmed(confirm));
    assert_eq!(driver.state.stats().outbox_batches, 0);
    let effects = driver.apply(UpdateKind::Recovered);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::SendMessages(_))),
        "confirmed batch resent: {effects:?}"
    );
}

/// Continue-as-new starts a new execution at once, with the carried-over events after its
/// `ExecutionStarted`; a result for the old execution's activity is then dropped.
#[test]
fn continue_as_new_drops_results_of_the_old_execution() {
    let mut driver = Driver::new(0, 1, 1);
    let first = episodes(&driver.request(CLIENT, 1, create("a"))).remove(0);
    let carried = HistoryEvent::new(
        driver.now,
        EventKind::EventRaised(EventRaised {
            name: "kept".into(),
            input: None,
        }),
    );
    let again = ActionKind::CompleteOrchestration(CompleteOrchestration {
        status: OrchestrationStatus::ContinuedAsNew,
        result: Some("\"next\"".into()),
        details: None,
        new_version: None,
        carryover_events: vec![carried.clone()],
        failure: None,
        tags: BTreeMap::new(),
    });

    let effects = driver.apply(finish(&first, vec![schedule(), again]));
    let mut worker = SimWorker::default();
    worker.observe(&effects);
    let next = episodes(&effects).remove(0);
    assert_ne!(next.execution, first.execution);
    assert!(next.past_events.is_empty());
    let kinds: Vec<_> = next
        .new_events
        .iter()
        .map(|e| e.kind.protocol_number())
        .collect();
    assert_eq!(kinds, [14, 3, 17]);
    assert_eq!(next.new_events[2], carried);
    let view = driver.view("a").expect("the instance");
    assert_eq!(
        (view.status, view.input),
        (OrchestrationStatus::Running, Some("\"next\"".into()))
    );

    let done = ActivityCompleted {
        activity: worker.activities[0].activity,
        result: Ok(None),
    };
    let history = driver.history("a");
    let effects = driver.apply(UpdateKind::ActivityCompleted(done));
    assert!(
        effects.is_empty(),
        "an old execution's result had effects: {effects:?}"
    );
    assert_eq!(driver.state.stats().activities_pending, 0);
    assert_eq!(driver.history("a"), history);
}

/// A call to an entity comes back to the calling orchestration as
/// `EntityOperationCompleted`, in place when both live on the partition.
#[test]
fn entity_call_result_returns_to_the_caller() {
    let mut driver = Driver::new(0, 1, 1);
    let mut worker = SimWorker::default();
    let first = episodes(&driver.request(CLIENT, 1, create("a"))).remove(0);
    let call = EntityOperationCalled {
        request_id: "call-1".into(),
        operation: "get".into(),
        scheduled_time: None,
        input: None,
        parent_instance_id: None,
        parent_execution_id: None,
        target_instance_id: Some(InstanceId::new("@counter@x")),
    };
    let call = ActionKind::SendEntityMessage(EntityMessage::Call(call));
    worker.observe(&driver.apply(finish(&first, vec![call])));
    assert_eq!(worker.batches.len(), 1);

    let answer = worker.answer_batch(0, false).expect("a batch to answer");
    let next = episodes(&driver.apply(answer)).remove(0);
    assert_eq!(next.instance, InstanceId::new("a"));
    let EventKind::EntityOperationCompleted(done) = &next.new_events[1].kind else {
        panic!("expected the call's result, got {:?}", next.new_events);
    };
    assert_eq!(
        (done.request_id.as_str(), done.output.as_deref()),
        ("call-1", Some("1"))
    );
}

/// A checkpoint is the state serialized; loaded again it is equal, and the secondary index
/// (not stored) is rebuilt, so queries answer the same.
#[test]
fn checkpoint_round_trip_rebuilds_the_index() {
    let mut driver = Driver::new(0, 1, 1);
    for (seq, id) in [(1, "a"), (2, "b")] {
        driver.request(CLIENT, seq, create(id));
    }
    let query = ReadEvent::Query {
        filter: InstanceFilter::default(),
        page: PageRequest::first(10),
        payloads: true,
    };

    let bytes = postcard::to_stdvec(&driver.state).expect("serializes");
    let loaded: PartitionState = postcard::from_bytes(&bytes).expect("deserializes");

    assert_eq!(loaded, driver.state);
    assert_eq!(loaded.read(&query), driver.state.read(&query));
    assert_eq!(loaded.stats(), driver.state.stats());
}
