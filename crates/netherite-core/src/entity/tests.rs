//! Entity queues, locks and batch commits, told as short stories with exact messages.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::Error;
use crate::ids::{ExecutionId, IdGen};
use crate::model::{
    EntityLockGranted, EntityOperationCalled, EntityOperationCompleted, EntityOperationFailed,
    EntityOperationSignaled, EntityUnlockSent, ExecutionStarted,
};

const SEED: u128 = 0xe7;

fn at(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

fn id(s: &str) -> InstanceId {
    InstanceId::new(s)
}

fn signal(request_id: &str) -> HistoryEvent {
    let signal = EntityOperationSignaled {
        request_id: request_id.into(),
        operation: "add".into(),
        scheduled_time: None,
        input: Some("1".into()),
        target_instance_id: None,
    };
    HistoryEvent::new(at(10), EventKind::EntityOperationSignaled(signal))
}

fn call(request_id: &str, caller: &str) -> HistoryEvent {
    let call = EntityOperationCalled {
        request_id: request_id.into(),
        operation: "get".into(),
        scheduled_time: None,
        input: None,
        parent_instance_id: Some(id(caller)),
        parent_execution_id: Some(ExecutionId::new(format!("{caller}-exec"))),
        target_instance_id: None,
    };
    HistoryEvent::new(at(10), EventKind::EntityOperationCalled(call))
}

fn lock_request(section: &str, owner: &str, lock_set: &[&str], position: i32) -> HistoryEvent {
    let request = EntityLockRequested {
        critical_section_id: section.into(),
        lock_set: lock_set.iter().map(|entity| id(entity)).collect(),
        position,
        parent_instance_id: Some(id(owner)),
    };
    HistoryEvent::new(at(10), EventKind::EntityLockRequested(request))
}

fn release(section: &str, owner: &str) -> HistoryEvent {
    let release = EntityUnlockSent {
        critical_section_id: section.into(),
        parent_instance_id: Some(id(owner)),
        target_instance_id: None,
    };
    HistoryEvent::new(at(10), EventKind::EntityUnlockSent(release))
}

fn granted(section: &str, now: Timestamp) -> HistoryEvent {
    let granted = EntityLockGranted {
        critical_section_id: section.into(),
    };
    HistoryEvent::new(now, EventKind::EntityLockGranted(granted))
}

fn holder(owner: &str, section: &str) -> Option<LockHolder> {
    Some(LockHolder {
        instance_id: id(owner),
        critical_section_id: section.into(),
    })
}

fn request_ids(ops: &[HistoryEvent]) -> Vec<&str> {
    ops.iter()
        .map(|op| match &op.kind {
            EventKind::EntityOperationSignaled(signal) => signal.request_id.as_str(),
            EventKind::EntityOperationCalled(call) => call.request_id.as_str(),
            other => panic!("not an operation: {other:?}"),
        })
        .collect()
}

// --- queue ----------------------------------------------------------------------------------

/// Operations run in the order they arrived, at most `max` at a time.
#[test]
fn operations_run_first_in_first_out() {
    let entity = id("@counter@c");
    let mut record = EntityRecord::default();
    for op in [signal("r1"), call("r2", "orch"), signal("r3")] {
        assert!(receive(&entity, &mut record, op, at(20)).is_empty());
    }

    assert_eq!(request_ids(&next_batch(&record, 10)), ["r1", "r2", "r3"]);
    assert_eq!(request_ids(&next_batch(&record, 2)), ["r1", "r2"]);
    assert!(next_batch(&record, 0).is_empty());
}

// --- locks ----------------------------------------------------------------------------------

/// A lock request walks the sorted lock set `a, b, c`: each entity locks itself for the
/// orchestration and passes the request on; the last one grants the lock.
#[test]
fn lock_is_taken_in_order_along_a_three_entity_set() {
    let set = ["@acct@a", "@acct@b", "@acct@c"];
    let mut records = [
        EntityRecord::default(),
        EntityRecord::default(),
        EntityRecord::default(),
    ];
    let now = at(30);

    // The request as it travels on to `set[position]`, stamped with the time it was passed on.
    let forwarded = |position: usize| {
        let request = lock_request("cs", "transfer", &set, position as i32);
        let event = HistoryEvent {
            timestamp: now,
            ..request
        };
        [TaskMessage::to_instance(id(set[position]), event)]
    };

    // Entity a gets the orchestration's request, locks, and forwards it to b at position 1.
    let request = lock_request("cs", "transfer", &set, 0);
    let to_b = receive(&id(set[0]), &mut records[0], request, now);
    assert_eq!(to_b, forwarded(1));

    // Entity b does the same towards c.
    let to_c = receive(&id(set[1]), &mut records[1], to_b[0].event.clone(), now);
    assert_eq!(to_c, forwarded(2));

    // Entity c is the last: the orchestration is told its critical section is ready.
    let to_orchestration = receive(&id(set[2]), &mut records[2], to_c[0].event.clone(), now);
    assert_eq!(
        to_orchestration,
        [TaskMessage::to_instance(id("transfer"), granted("cs", now))]
    );

    for record in &records {
        assert_eq!(record.locked_by, holder("transfer", "cs"));
        assert!(record.lock_waiters.is_empty());
    }
}

/// A second critical section waits for the lock, and gets it when the first releases it.
#[test]
fn second_lock_request_waits_until_release() {
    let entity = id("@acct@a");
    let set = ["@acct@a"];
    let mut record = EntityRecord::default();
    let now = at(40);

    // Phase 1: the first section locks; the second waits, silently.
    let first = receive(
        &entity,
        &mut record,
        lock_request("cs-1", "o1", &set, 0),
        now,
    );
    assert_eq!(
        first,
        [TaskMessage::to_instance(id("o1"), granted("cs-1", now))]
    );
    let second = receive(
        &entity,
        &mut record,
        lock_request("cs-2", "o2", &set, 0),
        now,
    );
    assert!(second.is_empty());
    assert_eq!(record.lock_waiters.len(), 1);

    // Phase 2: the first section releases; the second is granted at once.
    let handed_over = receive(&entity, &mut record, release("cs-1", "o1"), now);
    assert_eq!(
        handed_over,
        [TaskMessage::to_instance(id("o2"), granted("cs-2", now))]
    );
    assert_eq!(record.locked_by, holder("o2", "cs-2"));
    assert!(record.lock_waiters.is_empty());

    // Phase 3: the last release leaves the entity free.
    assert!(receive(&entity, &mut record, release("cs-2", "o2"), now).is_empty());
    assert!(!record.is_locked());
}

/// A release that does not come from the holder's critical section changes nothing.
#[test]
fn release_by_someone_else_is_ignored() {
    let entity = id("@acct@a");
    let mut record = EntityRecord::default();
    receive(
        &entity,
        &mut record,
        lock_request("cs-1", "o1", &["@acct@a"], 0),
        at(1),
    );

    let before = record.clone();
    assert!(receive(&entity, &mut record, release("cs-2", "o1"), at(2)).is_empty());
    assert!(receive(&entity, &mut record, release("cs-1", "intruder"), at(2)).is_empty());
    assert_eq!(record, before);
}

/// A lock set that names the entity twice does not make the section wait for itself.
#[test]
fn lock_set_listing_an_entity_twice_still_grants() {
    let entity = id("@acct@a");
    let set = ["@acct@a", "@acct@a"];
    let mut record = EntityRecord::default();

    let again = receive(
        &entity,
        &mut record,
        lock_request("cs", "o", &set, 0),
        at(1),
    );
    assert_eq!(again[0].target, entity);
    let done = receive(&entity, &mut record, again[0].event.clone(), at(1));
    assert_eq!(
        done,
        [TaskMessage::to_instance(id("o"), granted("cs", at(1)))]
    );
}

/// Lock requests that name no orchestration, or point at another entity, are dropped.
#[test]
fn malformed_lock_requests_are_dropped() {
    let entity = id("@acct@a");
    let mut record = EntityRecord::default();
    let elsewhere = lock_request("cs", "o", &["@acct@b"], 0);
    assert!(receive(&entity, &mut record, elsewhere, at(1)).is_empty());

    let mut ownerless = lock_request("cs", "o", &["@acct@a"], 0);
    if let EventKind::EntityLockRequested(request) = &mut ownerless.kind {
        request.parent_instance_id = None;
    }
    assert!(receive(&entity, &mut record, ownerless, at(1)).is_empty());
    assert!(record.is_empty());
}

/// While locked, only the holder's calls run; everything else keeps its place and runs after
/// the release.
#[test]
fn holder_calls_run_while_others_wait() {
    let entity = id("@acct@a");
    let mut record = EntityRecord::default();
    receive(
        &entity,
        &mut record,
        lock_request("cs", "holder", &["@acct@a"], 0),
        at(1),
    );
    for op in [
        call("r1", "other"),
        signal("r2"),
        call("r3", "holder"),
        call("r4", "holder"),
    ] {
        receive(&entity, &mut record, op, at(2));
    }

    assert_eq!(request_ids(&next_batch(&record, 10)), ["r3", "r4"]);

    receive(&entity, &mut record, release("cs", "holder"), at(3));
    assert_eq!(
        request_ids(&next_batch(&record, 10)),
        ["r1", "r2", "r3", "r4"]
    );
}

// --- batch commit ---------------------------------------------------------------------------

fn result(results: Vec<OperationResult>, state: Payload) -> EntityBatchResult {
    EntityBatchResult {
        results,
        actions: Vec::new(),
        entity_state: state,
    }
}

/// A committed batch leaves the queue, stores the state, and answers each call at its
/// caller's execution; the signal gets no answer.
#[test]
fn batch_commit_routes_results_to_callers() {
    let entity = id("@counter@c");
    let mut record = EntityRecord::default();
    for op in [
        call("r1", "alice"),
        signal("r2"),
        call("r3", "bob"),
        signal("r4"),
    ] {
        receive(&entity, &mut record, op, at(1));
    }
    let batch = next_batch(&record, 3);
    let failure = FailureDetails::new("Overflow", "too big");
    let outcome = result(
        vec![
            OperationResult::Success(Some("7".into())),
            OperationResult::Success(None),
            OperationResult::Failure(failure.clone()),
        ],
        Some("8".into()),
    );

    let now = at(50);
    let messages = apply_batch(
        &entity,
        &mut record,
        &batch,
        &outcome,
        now,
        &mut IdGen::new(SEED),
    )
    .expect("the result fits the batch");

    let completed = EntityOperationCompleted {
        request_id: "r1".into(),
        output: Some("7".into()),
    };
    let failed = EntityOperationFailed {
        request_id: "r3".into(),
        failure,
    };
    let expected = [
        TaskMessage::to_execution(
            id("alice"),
            ExecutionId::new("alice-exec"),
            HistoryEvent::new(now, EventKind::EntityOperationCompleted(completed)),
        ),
        TaskMessage::to_execution(
            id("bob"),
            ExecutionId::new("bob-exec"),
            HistoryEvent::new(now, EventKind::EntityOperationFailed(failed)),
        ),
    ];
    assert_eq!(messages, expected);
    assert_eq!(request_ids(record.queue.make_contiguous()), ["r4"]);
    assert_eq!(record.state, Some("8".into()));
    assert_eq!(record.last_modified, Some(now));
}

/// A batch that ends with no state deletes the entity.
#[test]
fn batch_commit_with_no_state_deletes_the_entity() {
    let entity = id("@counter@c");
    let mut record = EntityRecord {
        state: Some("3".into()),
        ..EntityRecord::default()
    };
    receive(&entity, &mut record, signal("delete"), at(1));
    let batch = next_batch(&record, 1);

    let outcome = result(vec![OperationResult::Success(None)], None);
    let messages = apply_batch(
        &entity,
        &mut record,
        &batch,
        &outcome,
        at(2),
        &mut IdGen::new(1),
    );
    assert_eq!(messages.expect("fits"), []);
    assert!(!record.exists());
    assert!(record.is_empty());
}

/// Operations' signals and orchestration starts are sent with ids drawn from the generator;
/// a delayed signal keeps its time and a scheduled start its start time.
#[test]
fn batch_actions_send_signals_and_start_orchestrations() {
    let entity = id("@counter@c");
    let mut record = EntityRecord::default();
    receive(&entity, &mut record, signal("r1"), at(1));
    let batch = next_batch(&record, 1);
    let mut outcome = result(vec![OperationResult::Success(None)], Some("1".into()));
    outcome.actions = vec![
        EntityAction::SendSignal {
            instance_id: id("@Audit@log"),
            name: "record".into(),
            input: Some("\"+1\"".into()),
            scheduled_time: Some(at(99)),
        },
        EntityAction::StartOrchestration {
            instance_id: None,
            name: "Notify".into(),
            version: Some("3".into()),
            input: None,
            scheduled_time: Some(at(120)),
        },
    ];

    let now = at(60);
    let messages = apply_batch(
        &entity,
        &mut record,
        &batch,
        &outcome,
        now,
        &mut IdGen::new(SEED),
    )
    .expect("fits");

    let mut ids = IdGen::new(SEED);
    let signal = EntityOperationSignaled {
        request_id: ids.next_hex(),
        operation: "record".into(),
        scheduled_time: Some(at(99)),
        input: Some("\"+1\"".into()),
        target_instance_id: None,
    };
    let instance = id(&ids.next_hex());
    let started = ExecutionStarted {
        name: "Notify".into(),
        version: Some("3".into()),
        input: None,
        instance_id: instance.clone(),
        execution_id: ids.next_execution_id(),
        parent: None,
        scheduled_start: Some(at(120)),
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: Default::default(),
    };
    let expected = [
        TaskMessage::to_instance(
            id("@audit@log"),
            HistoryEvent::new(now, EventKind::EntityOperationSignaled(signal)),
        ),
        TaskMessage::to_instance(
            instance,
            HistoryEvent::new(now, EventKind::ExecutionStarted(started)),
        ),
    ];
    assert_eq!(messages, expected);
}

/// A result that does not fit its batch is refused, and the record stays as it was.
#[test]
fn mismatched_batch_result_is_a_typed_error() {
    let entity = id("@counter@c");
    let mut record = EntityRecord::default();
    receive(&entity, &mut record, signal("r1"), at(1));
    receive(&entity, &mut record, signal("r2"), at(1));
    let batch = next_batch(&record, 2);
    let before = record.clone();
    let mut ids = IdGen::new(SEED);

    // Phase 1: one result for two operations.
    let short = result(vec![OperationResult::Success(None)], Some("x".into()));
    let error = apply_batch(&entity, &mut record, &batch, &short, at(2), &mut ids);
    assert!(matches!(
        error,
        Err(Error::InvalidArgument { operation: "entity::apply_batch", reason })
            if reason == "entity @counter@c: 1 results for 2 operations"
    ));
    assert_eq!(record, before);

    // Phase 2: the same batch committed twice.
    let full = result(vec![OperationResult::Success(None); 2], Some("x".into()));
    apply_batch(&entity, &mut record, &batch, &full, at(2), &mut ids).expect("first commit");
    let again = apply_batch(&entity, &mut record, &batch, &full, at(3), &mut ids);
    assert!(matches!(
        again,
        Err(Error::InvalidArgument { reason, .. }) if reason.ends_with("operation r1 is not queued")
    ));
    assert_eq!(record.last_modified, Some(at(2)));
}

// --- property: the lock protocol ------------------------------------------------------------

/// Four entities, in the sorted order every critical section locks them in.
const ENTITIES: [&str; 4] = ["@e@0", "@e@1", "@e@2", "@e@3"];

/// A small world of entities and orchestrations whose messages arrive in an arbitrary order.
struct LockWorld {
    records: BTreeMap<InstanceId, EntityRecord>,
    in_flight: Vec<TaskMessage>,
    /// Per section (indexed like the orchestrations `o0`, `o1`, ...): its lock set.
    sets: Vec<Vec<InstanceId>>,
    granted: Vec<bool>,
}

impl LockWorld {
    /// Every section has sent its lock request to the first entity of its set.
    fn new(members: &[Vec<bool>]) -> LockWorld {
        let sets: Vec<Vec<InstanceId>> = members
            .iter()
            .map(|chosen| {
                (0..ENTITIES.len())
                    .filter(|&e| chosen[e])
                    .map(|e| id(ENTITIES[e]))
                    .collect()
            })
            .collect();
        let in_flight = sets
            .iter()
            .enumerate()
            .map(|(section, set)| {
                let names: Vec<&str> = set.iter().map(InstanceId::as_str).collect();
                let owner = format!("o{section}");
                let request = lock_request(&format!("cs{section}"), &owner, &names, 0);
                TaskMessage::to_instance(set[0].clone(), request)
            })
            .collect();
        LockWorld {
            records: BTreeMap::new(),
            in_flight,
            granted: vec![false; sets.len()],
            sets,
        }
    }

    /// Delivers the message at `choice` (modulo what is in flight).
    fn deliver(&mut self, choice: usize) {
        let message = self.in_flight.remove(choice % self.in_flight.len());
        if message.target.is_entity() {
            let record = self.records.entry(message.target.clone()).or_default();
            let sent = receive(&message.target, record, message.event, at(1));
            self.in_flight.extend(sent);
        } else {
            self.on_granted(&message);
        }
    }

    /// An orchestration got its lock: every entity of its set must be held by it, and it
    /// releases them all at once.
    fn on_granted(&mut self, message: &TaskMessage) {
        let section: usize = message.target.as_str()[1..]
            .parse()
            .expect("orchestration o<n>");
        assert!(
            !self.granted[section],
            "section {section} was granted twice"
        );
        self.granted[section] = true;
        let owner = message.target.as_str();
        for entity in &self.sets[section] {
            let record = &self.records[entity];
            assert_eq!(
                record.locked_by,
                holder(owner, &format!("cs{section}")),
                "at {entity}"
            );
            let release = release(&format!("cs{section}"), owner);
            self.in_flight
                .push(TaskMessage::to_instance(entity.clone(), release));
        }
    }
}

/// One to five sections, each over a non-empty subset of the entities.
fn arbitrary_sections() -> impl Strategy<Value = Vec<Vec<bool>>> {
    let subset = proptest::collection::vec(any::<bool>(), ENTITIES.len())
        .prop_filter("a lock set is never empty", |chosen| chosen.contains(&true));
    proptest::collection::vec(subset, 1..=5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However the messages are interleaved, a section is granted only while it holds every
    /// entity of its set, every section is granted exactly once (no deadlock), and in the end
    /// every entity is free with nobody waiting.
    #[test]
    fn sorted_lock_sets_grant_everyone_exclusively(
        sections in arbitrary_sections(),
        choices in proptest::collection::vec(any::<usize>(), 0..200),
    ) {
        let mut world = LockWorld::new(&sections);
        let mut choices = choices.into_iter();
        while !world.in_flight.is_empty() {
            world.deliver(choices.next().unwrap_or(0));
        }

        prop_assert!(world.granted.iter().all(|&granted| granted));
        for (entity, record) in &world.records {
            prop_assert!(record.locked_by.is_none(), "{} is still locked", entity);
            prop_assert!(record.lock_waiters.is_empty());
        }
    }
}
