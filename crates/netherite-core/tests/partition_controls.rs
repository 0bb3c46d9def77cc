//! Client controls of the partition state machine: suspend and resume, terminate, waits,
//! purges, rewind, entity signals, queries, and requests sent to the wrong partition.

use std::time::Duration;

use netherite_core::ids::{ClientId, InstanceId, PartitionId};
use netherite_core::model::{
    ActionKind, CompleteOrchestration, EventKind, EventRaised, HistoryEvent, OrchestrationStatus,
    OrchestratorAction,
};
use netherite_core::partition::index::{InstanceFilter, PageRequest};
use netherite_core::partition::testing::{Driver, answers, episodes};
use netherite_core::partition::{
    ClientRequest, ClientResponse, CreateInstance, Effect, EntityBatchCompleted, EntityQuery,
    EpisodeCompleted, Limits, ReadEvent, ReadResult, Rejection, SignalEntity, StartEntityBatch,
    StartEpisode, WaitFor, WaitUntil,
};
use netherite_core::time::Timestamp;

const CLIENT: ClientId = ClientId(1);

fn create_at(id: &str, scheduled_start: Option<Timestamp>) -> ClientRequest {
    ClientRequest::Create(CreateInstance {
        scheduled_start,
        ..CreateInstance::new(InstanceId::new(id), "Flow")
    })
}

fn create(id: &str) -> ClientRequest {
    create_at(id, None)
}

/// The only episode started by `effects`.
fn episode(effects: &[Effect]) -> StartEpisode {
    let [start] = episodes(effects).try_into().expect("one episode");
    start
}

/// The only answer in `effects`.
fn answer(effects: &[Effect]) -> ClientResponse {
    let [answer] = answers(effects).try_into().expect("one answer");
    answer
}

fn finish(driver: &mut Driver, start: &StartEpisode, kinds: Vec<ActionKind>) -> Vec<Effect> {
    let next = start.past_events.len() as i32 + 10;
    let actions = (next..)
        .zip(kinds)
        .map(|(id, kind)| OrchestratorAction::new(id, kind));
    let done = EpisodeCompleted::answering(start, actions.collect());
    driver.apply(netherite_core::partition::UpdateKind::EpisodeCompleted(
        done,
    ))
}

fn end(status: OrchestrationStatus) -> ActionKind {
    ActionKind::CompleteOrchestration(CompleteOrchestration::new(status, None))
}

fn kinds(events: &[HistoryEvent]) -> Vec<u32> {
    events.iter().map(|e| e.kind.protocol_number()).collect()
}

/// While suspended, a raised event waits; resume runs alone, then the held event follows.
#[test]
fn suspension_holds_events_until_resumed() {
    let mut driver = Driver::new(0, 1, 1);
    let first = episode(&driver.request(CLIENT, 1, create("a")));
    finish(&mut driver, &first, Vec::new());

    // Phase 1: the suspension is an event for the worker; its commit suspends.
    let suspend = ClientRequest::Suspend {
        instance: InstanceId::new("a"),
        reason: None,
    };
    let start = episode(&driver.request(CLIENT, 2, suspend));
    assert_eq!(kinds(&start.new_events), [14, 21]);
    finish(&mut driver, &start, Vec::new());
    assert_eq!(driver.status("a"), Some(OrchestrationStatus::Suspended));

    // Phase 2: a raised event is taken but not dispatched.
    let raise = ClientRequest::RaiseEvent {
        instance: InstanceId::new("a"),
        name: "go".into(),
        input: None,
    };
    let effects = driver.request(CLIENT, 3, raise);
    assert_eq!(effects.len(), 1, "only the answer: {effects:?}");

    // Phase 3: resume passes alone; the held event comes with the next episode.
    let resume = ClientRequest::Resume {
        instance: InstanceId::new("a"),
        reason: None,
    };
    let start = episode(&driver.request(CLIENT, 4, resume));
    assert_eq!(kinds(&start.new_events), [14, 22]);
    let next = episode(&finish(&mut driver, &start, Vec::new()));
    let raised = EventRaised {
        name: "go".into(),
        input: None,
    };
    assert_eq!(next.new_events[1].kind, EventKind::EventRaised(raised));
    assert_eq!(driver.status("a"), Some(OrchestrationStatus::Running));
}

/// A suspension that arrives while suspended is not held back past the resume that follows
/// it: suspend, suspend, resume leaves the instance running.
#[test]
fn repeated_suspension_does_not_outlive_the_resume() {
    let mut driver = Driver::new(0, 1, 1);
    let first = episode(&driver.request(CLIENT, 1, create("a")));
    finish(&mut driver, &first, Vec::new());
    let instance = || InstanceId::new("a");
    let suspend = || ClientRequest::Suspend {
        instance: instance(),
        reason: None,
    };
    let resume = ClientRequest::Resume {
        instance: instance(),
        reason: None,
    };

    // Phase 1: suspended.
    let start = episode(&driver.request(CLIENT, 2, suspend()));
    finish(&mut driver, &start, Vec::new());
    assert_eq!(driver.status("a"), Some(OrchestrationStatus::Suspended));

    // Phase 2: suspended again, then resumed; both controls reach the worker in order.
    let start = episode(&driver.request(CLIENT, 3, suspend()));
    assert_eq!(kinds(&start.new_events), [14, 21]);
    assert_eq!(
        driver.request(CLIENT, 4, resume).len(),
        1,
        "only the answer"
    );
    let next = episode(&finish(&mut driver, &start, Vec::new()));
    assert_eq!(kinds(&next.new_events), [14, 22]);
    finish(&mut driver, &next, Vec::new());
    assert_eq!(driver.status("a"), Some(OrchestrationStatus::Running));
}

/// An instance whose start is only scheduled is terminated in place; its start, when due,
/// is dropped.
#[test]
fn terminate_before_a_scheduled_start_terminates_in_place() {
    let mut driver = Driver::new(0, 1, 1);
    let due = driver.now.saturating_add(Duration::from_secs(60));
    let effects = driver.request(CLIENT, 1, create_at("a", Some(due)));
    assert!(effects.contains(&Effect::ArmTimer { due }));

    let terminate = ClientRequest::Terminate {
        instance: InstanceId::new("a"),
        reason: Some("\"no\"".into()),
        recurse: false,
    };
    let effects = driver.request(CLIENT, 2, terminate);
    assert_eq!(answer(&effects), ClientResponse::Accepted);
    let view = driver.view("a").expect("the instance stays");
    assert_eq!(view.status, OrchestrationStatus::Terminated);
    assert_eq!(view.output.as_deref(), Some("\"no\""));

    driver.advance(Duration::from_secs(61));
    let effects = driver.apply(netherite_core::partition::UpdateKind::TimersFired);
    assert!(
        effects.is_empty(),
        "the late start must not run: {effects:?}"
    );
}

/// A wait that is not satisfied by its deadline is rejected by the timer tick that passes it.
#[test]
fn wait_is_rejected_at_its_deadline() {
    let mut driver = Driver::new(0, 1, 1);
    driver.request(CLIENT, 1, create("a"));
    let deadline = driver.now.saturating_add(Duration::from_secs(5));
    let wait = WaitFor {
        instance: InstanceId::new("a"),
        until: WaitUntil::Completion,
        deadline: Some(deadline),
        payloads: false,
    };
    let effects = driver.request(CLIENT, 2, ClientRequest::WaitFor(wait));
    assert_eq!(effects, vec![Effect::ArmTimer { due: deadline }]);

    driver.advance(Duration::from_secs(5));
    let effects = driver.apply(netherite_core::partition::UpdateKind::TimersFired);
    let expired = Rejection::DeadlineExceeded {
        instance: InstanceId::new("a"),
    };
    assert_eq!(answer(&effects), ClientResponse::Rejected(expired));
    assert_eq!(driver.state.stats().waits_pending, 0);
}

/// Only a terminal instance is purged, and then its history goes with it.
#[test]
fn purge_removes_terminal_instances_only() {
    let mut driver = Driver::new(0, 1, 1);
    let start = episode(&driver.request(CLIENT, 1, create("a")));
    let purge = || ClientRequest::Purge {
        instance: InstanceId::new("a"),
    };

    let running = Rejection::FailedPrecondition {
        instance: InstanceId::new("a"),
        status: OrchestrationStatus::Pending,
    };
    assert_eq!(
        answer(&driver.request(CLIENT, 2, purge())),
        ClientResponse::Rejected(running)
    );

    finish(
        &mut driver,
        &start,
        vec![end(OrchestrationStatus::Completed)],
    );
    let purged = ClientResponse::Purged {
        count: 1,
        complete: true,
    };
    assert_eq!(answer(&driver.request(CLIENT, 3, purge())), purged);
    assert_eq!(driver.view("a"), None);
    assert_eq!(driver.history("a"), None);
    assert_eq!(driver.state.stats().instances_by_status, Vec::new());
}

/// A purge by filter deletes at most `purge_batch_max` per request and says when it is done.
#[test]
fn purge_by_filter_is_bounded_and_reports_completion() {
    let limits = Limits {
        purge_batch_max: 2,
        ..Limits::default()
    };
    let mut driver = Driver::with_limits(0, 1, 1, limits);
    for (seq, id) in [(1, "a"), (2, "b"), (3, "c")] {
        let start = episode(&driver.request(CLIENT, seq, create(id)));
        finish(
            &mut driver,
            &start,
            vec![end(OrchestrationStatus::Completed)],
        );
    }
    driver.request(CLIENT, 4, create("running"));

    let purge = || ClientRequest::PurgeByFilter {
        filter: InstanceFilter::default(),
    };
    let first = answer(&driver.request(CLIENT, 5, purge()));
    assert_eq!(
        first,
        ClientResponse::Purged {
            count: 2,
            complete: false
        }
    );
    let second = answer(&driver.request(CLIENT, 6, purge()));
    assert_eq!(
        second,
        ClientResponse::Purged {
            count: 1,
            complete: true
        }
    );
    assert_eq!(driver.status("running"), Some(OrchestrationStatus::Pending));
}

/// A failed instance is rewound: the worker sees `ExecutionRewound`, answers with the history
/// to keep, and the next episode runs over it with no new event but `OrchestratorStarted`.
#[test]
fn rewind_restarts_a_failed_instance() {
    let mut driver = Driver::new(0, 1, 1);
    let start = episode(&driver.request(CLIENT, 1, create("a")));
    let rewind = || ClientRequest::Rewind {
        instance: InstanceId::new("a"),
        reason: None,
    };
    let effects = driver.request(CLIENT, 2, rewind());
    assert!(matches!(
        answer(&effects),
        ClientResponse::Rejected(Rejection::FailedPrecondition { .. })
    ));

    finish(&mut driver, &start, vec![end(OrchestrationStatus::Failed)]);
    let effects = driver.request(CLIENT, 3, rewind());
    assert_eq!(answer(&effects), ClientResponse::Accepted);
    assert_eq!(driver.status("a"), Some(OrchestrationStatus::Running));
    let rewinding = episode(&effects);
    assert_eq!(kinds(&rewinding.new_events), [14, 30]);

    let kept = rewinding.past_events[..2].to_vec();
    let rewound = ActionKind::RewindOrchestration {
        new_history: kept.clone(),
    };
    let next = episode(&finish(&mut driver, &rewinding, vec![rewound]));
    assert_eq!(next.past_events, kept);
    assert_eq!(kinds(&next.new_events), [14]);
}

/// Requests are validated before anything changes: another partition's instance, a malformed
/// entity id.
#[test]
fn misaddressed_requests_are_rejected() {
    let mut driver = Driver::new(0, 2, 1);
    let effects = driver.request(CLIENT, 1, create("x!1"));
    let wrong = Rejection::WrongPartition {
        instance: InstanceId::new("x!1"),
        owner: PartitionId(1),
    };
    assert_eq!(effects.len(), 1);
    assert_eq!(answer(&effects), ClientResponse::Rejected(wrong));

    let signal = SignalEntity {
        entity: InstanceId::new("not-an-entity"),
        operation: "add".into(),
        input: None,
        request_id: "r1".into(),
        scheduled_time: None,
    };
    let effects = driver.request(CLIENT, 2, ClientRequest::SignalEntity(signal));
    assert!(matches!(
        answer(&effects),
        ClientResponse::Rejected(Rejection::InvalidArgument { .. })
    ));
    assert_eq!(driver.state.stats().instances_by_status, Vec::new());
}

/// An entity's queue is bounded like an inbox: past `inbox_events_max` queued operations, a
/// client's signal is rejected by name and changes nothing.
#[test]
fn entity_queue_is_bounded_for_client_signals() {
    let limits = Limits {
        inbox_events_max: 2,
        ..Limits::default()
    };
    let mut driver = Driver::with_limits(0, 1, 1, limits);
    let signal = |request_id: &str| {
        ClientRequest::SignalEntity(SignalEntity {
            entity: InstanceId::new("@counter@a"),
            operation: "add".into(),
            input: None,
            request_id: request_id.into(),
            scheduled_time: None,
        })
    };
    driver.request(CLIENT, 1, signal("r1"));
    driver.request(CLIENT, 2, signal("r2"));

    let effects = driver.request(CLIENT, 3, signal("r3"));
    let refused = matches!(
        answer(&effects),
        ClientResponse::Rejected(Rejection::LimitExceeded { limit, max: 2 })
            if limit == "inbox_events_max"
    );
    assert!(refused);
    let read = ReadEvent::QueryEntities(EntityQuery {
        include_transient: true,
        ..EntityQuery::default()
    });
    let ReadResult::Entities(page) = driver.state.read(&read) else {
        panic!("an entity page");
    };
    assert_eq!(page.entities.len(), 1);
    assert_eq!(
        page.entities[0].backlog, 2,
        "the third signal was not queued"
    );
}

/// A signal runs as an entity batch; the committed state is what `GetEntity` and
/// `QueryEntities` report; a second signal waits for the batch in flight. Entity names are
/// case-insensitive: `@Counter@a` and `@counter@a` are one entity.
#[test]
fn entity_signal_runs_a_batch_and_keeps_its_state() {
    let mut driver = Driver::new(0, 1, 1);
    let signal = |request_id: &str| {
        ClientRequest::SignalEntity(SignalEntity {
            entity: InstanceId::new("@Counter@a"),
            operation: "add".into(),
            input: Some("1".into()),
            request_id: request_id.into(),
            scheduled_time: None,
        })
    };
    let effects = driver.request(CLIENT, 1, signal("r1"));
    let batches: Vec<StartEntityBatch> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartEntityBatch(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let [batch] = batches.as_slice() else {
        panic!("expected one batch, got {effects:?}");
    };
    assert_eq!((batch.state.clone(), batch.operations.len()), (None, 1));
    let effects = driver.request(CLIENT, 2, signal("r2"));
    assert_eq!(effects.len(), 1, "the second signal waits: {effects:?}");

    let done = EntityBatchCompleted {
        entity: batch.entity.clone(),
        batch: batch.batch,
        result: netherite_core::entity::EntityBatchResult {
            results: vec![netherite_core::entity::OperationResult::Success(None)],
            actions: Vec::new(),
            entity_state: Some("1".into()),
        },
    };
    let effects = driver.apply(netherite_core::partition::UpdateKind::EntityBatchCompleted(
        done,
    ));
    let [Effect::StartEntityBatch(next)] = effects.as_slice() else {
        panic!("expected the waiting signal's batch, got {effects:?}");
    };
    assert_eq!(next.state.as_deref(), Some("1"));

    let read = ReadEvent::GetEntity {
        entity: InstanceId::new("@counter@a"),
        include_state: true,
    };
    let ReadResult::Entity(Some(view)) = driver.state.read(&read) else {
        panic!("the entity exists");
    };
    assert_eq!((view.state.as_deref(), view.backlog), (Some("1"), 1));
    let query = EntityQuery {
        id_prefix: Some("@counter@".into()),
        ..EntityQuery::default()
    };
    let ReadResult::Entities(page) = driver.state.read(&ReadEvent::QueryEntities(query)) else {
        panic!("an entity page");
    };
    assert_eq!(page.entities.len(), 1);
    assert_eq!(page.next, None);
}

/// Queries go through the secondary index, in creation order, filtered by status.
#[test]
fn query_pages_through_the_index() {
    let mut driver = Driver::new(0, 1, 1);
    for (seq, id) in [(1, "a"), (2, "b"), (3, "c")] {
        driver.request(CLIENT, seq, create(id));
        driver.advance(Duration::from_secs(1));
    }
    let pending = InstanceFilter {
        statuses: vec![OrchestrationStatus::Pending],
        ..InstanceFilter::default()
    };
    let read = |page: PageRequest| ReadEvent::Query {
        filter: pending.clone(),
        page,
        payloads: false,
    };

    let ReadResult::Instances(first) = driver.state.read(&read(PageRequest::first(2))) else {
        panic!("a page");
    };
    let ids: Vec<_> = first
        .instances
        .iter()
        .map(|v| v.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let token = first.next.expect("c is left");
    let ReadResult::Instances(second) = driver.state.read(&read(PageRequest::after(token, 2)))
    else {
        panic!("a page");
    };
    let ids: Vec<_> = second
        .instances
        .iter()
        .map(|v| v.instance_id.as_str())
        .collect();
    assert_eq!((ids, second.next), (vec!["c"], None));
}
