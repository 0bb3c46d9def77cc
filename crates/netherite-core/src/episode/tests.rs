//! Episode application, one rule per story, with the exact outcome spelled out.

use proptest::prelude::*;

use super::*;
use crate::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityLockRequested, EntityMessage,
    EntityOperationCalled, EntityOperationSignaled, EntityUnlockSent, EventRaised, EventSent,
    ExecutionStarted, ExecutionTerminated, ParentInstance, ScheduleTask, SendEvent,
    SubOrchestrationCompleted, SubOrchestrationCreated, SubOrchestrationFailed, TaskScheduled,
    TerminateOrchestration, TimerCreated,
};

const SEED: u128 = 0x5eed;

fn at(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

/// The time the episode under test is committed.
fn now() -> Timestamp {
    at(1_000)
}

fn id(s: &str) -> InstanceId {
    InstanceId::new(s)
}

fn started(parent: Option<ParentInstance>) -> ExecutionStarted {
    ExecutionStarted {
        name: "Hello".into(),
        version: Some("1.0".into()),
        input: Some("\"in\"".into()),
        instance_id: id("orch"),
        execution_id: ExecutionId::new("exec-1"),
        parent,
        scheduled_start: None,
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: Tags::from([("team".to_string(), "core".to_string())]),
    }
}

fn event(secs: i64, kind: EventKind) -> HistoryEvent {
    HistoryEvent::new(at(secs), kind)
}

/// An orchestration at one episode, before the worker's actions are applied.
struct Story {
    instance: InstanceId,
    execution: ExecutionId,
    history: Vec<HistoryEvent>,
    new_events: Vec<HistoryEvent>,
}

impl Story {
    /// The first episode of a top-level orchestration.
    fn first_episode() -> Story {
        Story::first_episode_of(started(None))
    }

    /// The first episode of an execution that starts with `started`.
    fn first_episode_of(started: ExecutionStarted) -> Story {
        Story {
            instance: id("orch"),
            execution: ExecutionId::new("exec-1"),
            history: Vec::new(),
            new_events: vec![
                event(900, EventKind::OrchestratorStarted),
                event(900, EventKind::ExecutionStarted(started)),
            ],
        }
    }

    /// A later episode: the first one is history, and these events are new.
    fn later(mut self, new: Vec<EventKind>) -> Story {
        self.history.append(&mut self.new_events);
        self.new_events = vec![event(950, EventKind::OrchestratorStarted)];
        self.new_events
            .extend(new.into_iter().map(|kind| event(950, kind)));
        self
    }

    fn apply(&self, actions: Vec<OrchestratorAction>) -> EpisodeOutcome {
        self.apply_with(actions, &mut IdGen::new(SEED))
    }

    fn apply_with(&self, actions: Vec<OrchestratorAction>, ids: &mut IdGen) -> EpisodeOutcome {
        let input = EpisodeInput {
            instance_id: &self.instance,
            execution_id: &self.execution,
            history: &self.history,
            new_events: &self.new_events,
            actions: &actions,
            custom_status: Some("\"busy\"".into()),
            now: now(),
        };
        apply_episode(&input, ids)
    }
}

fn action(id: i32, kind: ActionKind) -> OrchestratorAction {
    OrchestratorAction::new(id, kind)
}

fn complete(status: OrchestrationStatus, result: &str) -> ActionKind {
    let complete = CompleteOrchestration::new(status, Some(result.into()));
    ActionKind::CompleteOrchestration(complete)
}

fn schedule(name: &str) -> ActionKind {
    ActionKind::ScheduleTask(ScheduleTask {
        input: Some("1".into()),
        ..ScheduleTask::new(name)
    })
}

fn sub_orchestration(instance: &str) -> ActionKind {
    ActionKind::CreateSubOrchestration(CreateSubOrchestration {
        version: Some("2".into()),
        input: Some("\"child-in\"".into()),
        ..CreateSubOrchestration::new(id(instance), "Child")
    })
}

/// The execution ids a fresh generator with [`SEED`] draws, in order.
fn drawn_execution_ids(count: usize) -> Vec<ExecutionId> {
    let mut ids = IdGen::new(SEED);
    (0..count).map(|_| ids.next_execution_id()).collect()
}

/// The events appended after the new events.
fn confirmations<'o>(story: &Story, outcome: &'o EpisodeOutcome) -> &'o [HistoryEvent] {
    assert_eq!(
        outcome.appended[..story.new_events.len()],
        story.new_events[..],
        "the new events come first, verbatim"
    );
    &outcome.appended[story.new_events.len()..]
}

// --- status ---------------------------------------------------------------------------------

/// A first episode with nothing to do leaves a running execution whose history is exactly the
/// events it was sent.
#[test]
fn first_episode_without_actions_is_running() {
    let story = Story::first_episode();
    let outcome = story.apply(Vec::new());
    assert_eq!(outcome.appended, story.new_events);
    assert_eq!(outcome.status, OrchestrationStatus::Running);
    assert_eq!(outcome.custom_status, Some("\"busy\"".into()));
    assert!(outcome.messages.is_empty() && outcome.activities.is_empty());
}

/// Before its `ExecutionStarted` an instance is pending; suspension and resumption toggle.
#[test]
fn status_of_follows_start_suspend_and_resume() {
    let orchestrator_started = event(1, EventKind::OrchestratorStarted);
    assert_eq!(status_of([]), OrchestrationStatus::Pending);
    assert_eq!(
        status_of([&orchestrator_started]),
        OrchestrationStatus::Pending
    );

    let start = event(1, EventKind::ExecutionStarted(started(None)));
    let suspend = event(2, EventKind::ExecutionSuspended { input: None });
    let resume = event(3, EventKind::ExecutionResumed { input: None });
    assert_eq!(status_of([&start]), OrchestrationStatus::Running);
    assert_eq!(
        status_of([&start, &suspend]),
        OrchestrationStatus::Suspended
    );
    assert_eq!(
        status_of([&start, &suspend, &resume]),
        OrchestrationStatus::Running
    );
}

/// An `ExecutionSuspended` among the new events leaves the execution suspended; a later
/// episode with `ExecutionResumed` makes it run again.
#[test]
fn suspend_then_resume() {
    let suspended = Story::first_episode().later(vec![EventKind::ExecutionSuspended {
        input: Some("\"pause\"".into()),
    }]);
    assert_eq!(
        suspended.apply(Vec::new()).status,
        OrchestrationStatus::Suspended
    );

    let resumed = suspended.later(vec![EventKind::ExecutionResumed { input: None }]);
    assert_eq!(
        resumed.apply(Vec::new()).status,
        OrchestrationStatus::Running
    );
}

// --- one story per action kind --------------------------------------------------------------

/// A scheduled task is confirmed by `TaskScheduled` with the action's id, and the activity is
/// requested with `task_id` = that id.
#[test]
fn schedule_task_confirms_and_requests_the_activity() {
    let story = Story::first_episode();
    let outcome = story.apply(vec![action(0, schedule("Greet"))]);

    let expected = HistoryEvent::confirming(
        0,
        now(),
        EventKind::TaskScheduled(TaskScheduled {
            name: "Greet".into(),
            version: None,
            input: Some("1".into()),
            parent_trace_context: None,
            tags: Tags::new(),
        }),
    );
    assert_eq!(confirmations(&story, &outcome), [expected]);
    let request = ActivityRequest {
        task_id: 0,
        name: "Greet".into(),
        version: None,
        input: Some("1".into()),
        tags: Tags::new(),
        parent_trace_context: None,
    };
    assert_eq!(outcome.activities, [request]);
    assert_eq!(outcome.status, OrchestrationStatus::Running);
}

/// A timer is confirmed by `TimerCreated` and armed for the very same `fire_at`.
#[test]
fn create_timer_confirms_and_arms_the_timer() {
    let story = Story::first_episode();
    let fire_at = Timestamp::new(4_000, 123_456_789);
    let outcome = story.apply(vec![action(3, ActionKind::CreateTimer { fire_at })]);

    let created = EventKind::TimerCreated(TimerCreated { fire_at });
    assert_eq!(
        confirmations(&story, &outcome),
        [HistoryEvent::confirming(3, now(), created)]
    );
    assert_eq!(
        outcome.timers,
        [TimerRequest {
            timer_id: 3,
            fire_at
        }]
    );
}

/// A sub-orchestration is confirmed, and the child gets an `ExecutionStarted` with a fresh
/// execution id and this execution named as its parent.
#[test]
fn sub_orchestration_starts_the_child_with_its_parent() {
    let story = Story::first_episode();
    let outcome = story.apply(vec![action(2, sub_orchestration("child-1"))]);

    let created = SubOrchestrationCreated {
        instance_id: id("child-1"),
        name: "Child".into(),
        version: Some("2".into()),
        input: Some("\"child-in\"".into()),
        parent_trace_context: None,
        tags: Tags::new(),
    };
    let confirmed = EventKind::SubOrchestrationCreated(created);
    assert_eq!(
        confirmations(&story, &outcome),
        [HistoryEvent::confirming(2, now(), confirmed)]
    );

    let child_started = ExecutionStarted {
        name: "Child".into(),
        version: Some("2".into()),
        input: Some("\"child-in\"".into()),
        instance_id: id("child-1"),
        execution_id: drawn_execution_ids(1)[0].clone(),
        parent: Some(ParentInstance {
            task_scheduled_id: 2,
            name: Some("Hello".into()),
            version: Some("1.0".into()),
            instance_id: id("orch"),
            execution_id: Some(ExecutionId::new("exec-1")),
        }),
        scheduled_start: None,
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: Tags::new(),
    };
    let start = HistoryEvent::new(now(), EventKind::ExecutionStarted(child_started));
    assert_eq!(
        outcome.messages,
        [TaskMessage::to_instance(id("child-1"), start)]
    );
}

/// A sub-orchestration action without an instance id gets `<parent>:<action id in hex>`.
#[test]
fn sub_orchestration_without_an_id_gets_a_derived_one() {
    let outcome = Story::first_episode().apply(vec![action(26, sub_orchestration(""))]);
    assert_eq!(outcome.messages[0].target, id("orch:001a"));
}

/// An event is confirmed by `EventSent` and arrives as `EventRaised`, at the execution the
/// action named.
#[test]
fn send_event_confirms_and_raises_at_the_target() {
    let story = Story::first_episode();
    let send = ActionKind::SendEvent(SendEvent {
        instance_id: id("other"),
        execution_id: Some(ExecutionId::new("other-exec")),
        name: "Approval".into(),
        data: Some("true".into()),
    });
    let outcome = story.apply(vec![action(1, send)]);

    let sent = EventKind::EventSent(EventSent {
        instance_id: id("other"),
        name: "Approval".into(),
        input: Some("true".into()),
    });
    assert_eq!(
        confirmations(&story, &outcome),
        [HistoryEvent::confirming(1, now(), sent)]
    );
    let raised = EventKind::EventRaised(EventRaised {
        name: "Approval".into(),
        input: Some("true".into()),
    });
    let expected = TaskMessage::to_execution(
        id("other"),
        ExecutionId::new("other-exec"),
        HistoryEvent::new(now(), raised),
    );
    assert_eq!(outcome.messages, [expected]);
}

/// Terminating another instance leaves no trace in history; the target gets the request.
#[test]
fn terminate_sends_the_request_and_records_nothing() {
    let story = Story::first_episode();
    let terminate = ActionKind::TerminateOrchestration(TerminateOrchestration {
        instance_id: id("victim"),
        reason: Some("\"enough\"".into()),
        recurse: true,
    });
    let outcome = story.apply(vec![action(4, terminate)]);

    assert_eq!(outcome.appended, story.new_events);
    let terminated = EventKind::ExecutionTerminated(ExecutionTerminated {
        input: Some("\"enough\"".into()),
        recurse: true,
    });
    let expected = TaskMessage::to_instance(id("victim"), HistoryEvent::new(now(), terminated));
    assert_eq!(outcome.messages, [expected]);
}

fn signal() -> EntityOperationSignaled {
    EntityOperationSignaled {
        request_id: "r-signal".into(),
        operation: "add".into(),
        scheduled_time: Some(at(2_000)),
        input: Some("5".into()),
        target_instance_id: Some(id("@Counter@c1")),
    }
}

fn call() -> EntityOperationCalled {
    EntityOperationCalled {
        request_id: "r-call".into(),
        operation: "get".into(),
        scheduled_time: None,
        input: None,
        parent_instance_id: None,
        parent_execution_id: None,
        target_instance_id: Some(id("@counter@c1")),
    }
}

fn lock_request() -> EntityLockRequested {
    EntityLockRequested {
        critical_section_id: "cs-1".into(),
        lock_set: vec![id("@acct@a"), id("@acct@b")],
        position: 0,
        parent_instance_id: None,
    }
}

fn unlock() -> EntityUnlockSent {
    EntityUnlockSent {
        critical_section_id: "cs-1".into(),
        parent_instance_id: None,
        target_instance_id: Some(id("@acct@b")),
    }
}

fn entity_action(id: i32, message: EntityMessage) -> OrchestratorAction {
    action(id, ActionKind::SendEntityMessage(message))
}

/// Entity messages are kept verbatim in history, confirmed by their action ids; the messages
/// drop the target (normalized for routing) and name this instance as the sender.
#[test]
fn entity_messages_keep_history_verbatim_and_name_the_sender() {
    let story = Story::first_episode();
    let outcome = story.apply(vec![
        entity_action(0, EntityMessage::Signal(signal())),
        entity_action(1, EntityMessage::Call(call())),
        entity_action(2, EntityMessage::LockRequest(lock_request())),
        entity_action(3, EntityMessage::Unlock(unlock())),
    ]);

    // Phase 1: history holds exactly what the worker wrote.
    let recorded = [
        EventKind::EntityOperationSignaled(signal()),
        EventKind::EntityOperationCalled(call()),
        EventKind::EntityLockRequested(lock_request()),
        EventKind::EntityUnlockSent(unlock()),
    ];
    let expected: Vec<_> = (0..)
        .zip(recorded)
        .map(|(id, kind)| HistoryEvent::confirming(id, now(), kind))
        .collect();
    assert_eq!(confirmations(&story, &outcome), expected);

    // Phase 2: the messages, in action order.
    let sent = |kind| HistoryEvent::new(now(), kind);
    let expected_messages = [
        TaskMessage::to_instance(
            id("@counter@c1"),
            sent(EventKind::EntityOperationSignaled(
                EntityOperationSignaled {
                    target_instance_id: None,
                    ..signal()
                },
            )),
        ),
        TaskMessage::to_instance(
            id("@counter@c1"),
            sent(EventKind::EntityOperationCalled(EntityOperationCalled {
                parent_instance_id: Some(id("orch")),
                parent_execution_id: Some(ExecutionId::new("exec-1")),
                target_instance_id: None,
                ..call()
            })),
        ),
        TaskMessage::to_instance(
            id("@acct@a"),
            sent(EventKind::EntityLockRequested(EntityLockRequested {
                parent_instance_id: Some(id("orch")),
                ..lock_request()
            })),
        ),
        TaskMessage::to_instance(
            id("@acct@b"),
            sent(EventKind::EntityUnlockSent(EntityUnlockSent {
                parent_instance_id: Some(id("orch")),
                target_instance_id: None,
                ..unlock()
            })),
        ),
    ];
    assert_eq!(outcome.messages, expected_messages);
}

/// A lock set is normalized before it travels: names lowercased, then sorted and deduplicated
/// again, so every section locks in the same order even when a worker's own order differs.
#[test]
fn lock_set_travels_sorted_after_normalizing() {
    let story = Story::first_episode();
    let unsorted = EntityLockRequested {
        lock_set: vec![id("@B@x"), id("@a@y"), id("@b@x")],
        ..lock_request()
    };
    let outcome = story.apply(vec![entity_action(
        0,
        EntityMessage::LockRequest(unsorted.clone()),
    )]);

    let sent = EntityLockRequested {
        lock_set: vec![id("@a@y"), id("@b@x")],
        parent_instance_id: Some(id("orch")),
        ..unsorted.clone()
    };
    let event = HistoryEvent::new(now(), EventKind::EntityLockRequested(sent));
    assert_eq!(
        outcome.messages,
        [TaskMessage::to_instance(id("@a@y"), event)]
    );
    let recorded = HistoryEvent::confirming(0, now(), EventKind::EntityLockRequested(unsorted));
    assert_eq!(confirmations(&story, &outcome), [recorded]);
}

// --- completion -----------------------------------------------------------------------------

/// A completion ends the execution; its `ExecutionCompleted` comes after every other
/// confirmation even when the worker listed it first.
#[test]
fn completion_ends_the_execution_after_all_confirmations() {
    let story = Story::first_episode();
    let outcome = story.apply(vec![
        action(1, complete(OrchestrationStatus::Completed, "\"done\"")),
        action(0, schedule("LastWords")),
    ]);

    let appended = confirmations(&story, &outcome);
    assert_eq!(appended.len(), 2);
    assert_eq!(appended[0].event_id, 0);
    let completed = EventKind::ExecutionCompleted(ExecutionCompleted {
        status: OrchestrationStatus::Completed,
        result: Some("\"done\"".into()),
        failure: None,
    });
    assert_eq!(appended[1], HistoryEvent::confirming(1, now(), completed));
    assert_eq!(outcome.status, OrchestrationStatus::Completed);
    assert_eq!(outcome.output, Some("\"done\"".into()));
    assert_eq!(outcome.failure, None);
}

fn child_of_parent() -> Story {
    let parent = ParentInstance {
        task_scheduled_id: 5,
        name: Some("Parent".into()),
        version: None,
        instance_id: id("parent"),
        execution_id: Some(ExecutionId::new("parent-exec")),
    };
    Story::first_episode_of(started(Some(parent))).later(Vec::new())
}

/// The only message a finished child sends: its report to the parent.
fn parent_report(outcome: &EpisodeOutcome) -> &EventKind {
    assert_eq!(outcome.messages.len(), 1);
    let message = &outcome.messages[0];
    assert_eq!(message.target, id("parent"));
    assert_eq!(
        message.target_execution,
        Some(ExecutionId::new("parent-exec"))
    );
    &message.event.kind
}

/// A completed sub-orchestration reports its result to the parent's execution.
#[test]
fn completed_child_reports_its_result_to_the_parent() {
    let completed = child_of_parent().apply(vec![action(
        0,
        complete(OrchestrationStatus::Completed, "42"),
    )]);
    let expected = EventKind::SubOrchestrationCompleted(SubOrchestrationCompleted {
        task_scheduled_id: 5,
        result: Some("42".into()),
    });
    assert_eq!(parent_report(&completed), &expected);
}

/// A failed sub-orchestration passes its failure on to the parent.
#[test]
fn failed_child_reports_its_failure_to_the_parent() {
    let failure = FailureDetails::new("ValueError", "bad input");
    let failed = child_of_parent().apply(vec![action(
        -1,
        ActionKind::CompleteOrchestration(CompleteOrchestration {
            failure: Some(failure.clone()),
            ..complete_action(OrchestrationStatus::Failed)
        }),
    )]);
    let expected = EventKind::SubOrchestrationFailed(SubOrchestrationFailed {
        task_scheduled_id: 5,
        failure: failure.clone(),
    });
    assert_eq!(parent_report(&failed), &expected);
    assert_eq!(failed.status, OrchestrationStatus::Failed);
    assert_eq!(failed.failure, Some(failure));
}

/// A terminated sub-orchestration has no failure details of its own; the parent gets ones
/// that say so.
#[test]
fn terminated_child_reports_a_made_up_failure() {
    let terminated = child_of_parent()
        .later(vec![EventKind::ExecutionTerminated(ExecutionTerminated {
            input: Some("\"stop\"".into()),
            recurse: false,
        })])
        .apply(vec![action(
            0,
            complete(OrchestrationStatus::Terminated, "\"stop\""),
        )]);
    let EventKind::SubOrchestrationFailed(failed) = parent_report(&terminated) else {
        panic!("expected a failure report");
    };
    assert_eq!(failed.task_scheduled_id, 5);
    assert_eq!(failed.failure.error_type, "OrchestrationTerminated");
    assert_eq!(
        failed.failure.error_message,
        "sub-orchestration orch was terminated: \"stop\""
    );
    assert_eq!(terminated.status, OrchestrationStatus::Terminated);
}

fn complete_action(status: OrchestrationStatus) -> CompleteOrchestration {
    CompleteOrchestration::new(status, None)
}

// --- continue-as-new ------------------------------------------------------------------------

/// Continue-as-new hands over to a new execution that keeps the name, parent and tags, takes
/// the result as input and the new version; carried-over events go along; actions after it
/// are ignored; and the status stays `Running`.
#[test]
fn continue_as_new_starts_the_next_execution_and_ignores_the_rest() {
    let story = Story::first_episode().later(Vec::new());
    let carried = event(
        950,
        EventKind::EventRaised(EventRaised {
            name: "Tick".into(),
            input: None,
        }),
    );
    let continue_as_new = CompleteOrchestration {
        result: Some("\"next\"".into()),
        new_version: Some("1.1".into()),
        carryover_events: vec![carried.clone()],
        ..complete_action(OrchestrationStatus::ContinuedAsNew)
    };
    let outcome = story.apply(vec![
        action(0, schedule("BeforeIt")),
        action(1, ActionKind::CompleteOrchestration(continue_as_new)),
        action(2, schedule("Stale")),
        action(3, ActionKind::CreateTimer { fire_at: at(5_000) }),
    ]);

    // Phase 1: the new execution.
    let execution_id = drawn_execution_ids(1)[0].clone();
    let next_started = ExecutionStarted {
        version: Some("1.1".into()),
        input: Some("\"next\"".into()),
        execution_id: execution_id.clone(),
        ..started(None)
    };
    let expected = NextExecution {
        execution_id,
        started: HistoryEvent::new(now(), EventKind::ExecutionStarted(next_started)),
        carryover: vec![carried],
    };
    assert_eq!(outcome.next_execution, Some(expected));
    assert_eq!(outcome.status, OrchestrationStatus::Running);

    // Phase 2: the old execution took the action before it, and nothing after it.
    let ids: Vec<_> = confirmations(&story, &outcome)
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, [0, 1]);
    let last = outcome.appended.last().map(|e| &e.kind);
    assert!(matches!(
        last,
        Some(EventKind::ExecutionCompleted(ExecutionCompleted {
            status: OrchestrationStatus::ContinuedAsNew,
            ..
        }))
    ));
    assert_eq!(outcome.activities.len(), 1);
    assert_eq!(outcome.activities[0].name, "BeforeIt");
    assert!(outcome.timers.is_empty());
    assert_eq!(outcome.output, None);
}

/// Tags given with continue-as-new replace the old ones.
#[test]
fn continue_as_new_takes_new_tags_when_given() {
    let tags = Tags::from([("phase".to_string(), "two".to_string())]);
    let outcome = Story::first_episode().apply(vec![action(
        0,
        ActionKind::CompleteOrchestration(CompleteOrchestration {
            tags: tags.clone(),
            ..complete_action(OrchestrationStatus::ContinuedAsNew)
        }),
    )]);
    let next = outcome.next_execution.expect("continued as new");
    let EventKind::ExecutionStarted(started) = next.started.kind else {
        panic!("the next execution begins with ExecutionStarted");
    };
    assert_eq!(started.tags, tags);
    assert_eq!(
        started.version,
        Some("1.0".into()),
        "the old version is kept"
    );
}

// --- recursive terminate --------------------------------------------------------------------

/// A story with three children in history, the second of which has already completed.
fn parent_with_children() -> Story {
    let mut story = Story::first_episode();
    for (action_id, child) in [(1, "kid-1"), (2, "kid-2"), (3, "kid-3")] {
        let created = SubOrchestrationCreated {
            instance_id: id(child),
            name: "Child".into(),
            version: None,
            input: None,
            parent_trace_context: None,
            tags: Tags::new(),
        };
        let kind = EventKind::SubOrchestrationCreated(created);
        story
            .new_events
            .push(HistoryEvent::confirming(action_id, at(900), kind));
    }
    let done = SubOrchestrationCompleted {
        task_scheduled_id: 2,
        result: None,
    };
    story.later(vec![EventKind::SubOrchestrationCompleted(done)])
}

fn terminate_request(recurse: bool) -> EventKind {
    EventKind::ExecutionTerminated(ExecutionTerminated {
        input: Some("\"halt\"".into()),
        recurse,
    })
}

/// A recursive terminate reaches every child still running (including one created in the
/// same episode) and not the child that already finished.
#[test]
fn recursive_terminate_reaches_every_running_child() {
    let story = parent_with_children().later(vec![terminate_request(true)]);
    let outcome = story.apply(vec![
        action(4, sub_orchestration("kid-4")),
        action(5, complete(OrchestrationStatus::Terminated, "\"halt\"")),
    ]);

    let terminated: Vec<_> = outcome
        .messages
        .iter()
        .filter(|m| matches!(m.event.kind, EventKind::ExecutionTerminated(_)))
        .collect();
    let targets: Vec<_> = terminated.iter().map(|m| m.target.as_str()).collect();
    assert_eq!(targets, ["kid-1", "kid-3", "kid-4"]);
    for message in terminated {
        assert_eq!(message.event.kind, terminate_request(true));
        assert_eq!(message.target_execution, None);
    }
    assert_eq!(outcome.status, OrchestrationStatus::Terminated);
}

/// Without `recurse`, or without the execution ending, the children are left alone.
#[test]
fn terminate_without_recurse_or_end_leaves_children_alone() {
    let plain = parent_with_children().later(vec![terminate_request(false)]);
    let ended = plain.apply(vec![action(
        4,
        complete(OrchestrationStatus::Terminated, "x"),
    )]);
    assert!(ended.messages.is_empty());

    let recursive = parent_with_children().later(vec![terminate_request(true)]);
    let still_running = recursive.apply(Vec::new());
    assert!(still_running.messages.is_empty());
}

// --- invalid answers ------------------------------------------------------------------------

/// Asserts that `actions` fail the first-episode execution with a failure mentioning `what`,
/// and that nothing else of the answer took effect.
fn assert_rejected(story: &Story, actions: Vec<OrchestratorAction>, what: &str) {
    let mut ids = IdGen::new(SEED);
    let outcome = story.apply_with(actions, &mut ids);

    assert_eq!(outcome.status, OrchestrationStatus::Failed);
    let failure = outcome.failure.as_ref().expect("a failure");
    assert_eq!(failure.error_type, INVALID_ACTION);
    assert!(failure.is_non_retriable);
    assert!(
        failure.error_message.contains(what),
        "{:?} should mention {what:?}",
        failure.error_message
    );

    let completed = EventKind::ExecutionCompleted(ExecutionCompleted {
        status: OrchestrationStatus::Failed,
        result: None,
        failure: Some(failure.clone()),
    });
    assert_eq!(
        confirmations(story, &outcome),
        [HistoryEvent::new(now(), completed)]
    );
    assert!(outcome.activities.is_empty() && outcome.timers.is_empty());
    assert!(outcome.next_execution.is_none() && outcome.rewound_history.is_none());
    let untouched = IdGen::new(SEED).next_hex();
    assert_eq!(ids.next_hex(), untouched, "a rejected answer draws no ids");
}

/// A completion whose status does not end an execution is refused.
#[test]
fn completion_with_running_status_fails_the_execution() {
    let story = Story::first_episode();
    let running = complete(OrchestrationStatus::Running, "x");
    assert_rejected(
        &story,
        vec![action(0, running)],
        "action 0: CompleteOrchestration",
    );
    let pending = complete(OrchestrationStatus::Pending, "x");
    assert_rejected(&story, vec![action(7, pending)], "Pending");
}

/// Only raised events carry over into a new execution: an `ExecutionCompleted` (which would
/// end it at once) or a confirmation (with an action id of the old execution) is refused.
#[test]
fn carryover_of_anything_but_raised_events_fails_the_execution() {
    let story = Story::first_episode();
    let ended = EventKind::ExecutionCompleted(ExecutionCompleted {
        status: OrchestrationStatus::Completed,
        result: None,
        failure: None,
    });
    let timer = EventKind::TimerCreated(TimerCreated { fire_at: at(9) });
    for (kind, number) in [(ended, "4"), (timer, "12")] {
        let continue_as_new = CompleteOrchestration {
            carryover_events: vec![event(950, kind)],
            ..complete_action(OrchestrationStatus::ContinuedAsNew)
        };
        let actions = vec![action(
            0,
            ActionKind::CompleteOrchestration(continue_as_new),
        )];
        assert_rejected(&story, actions, &format!("event of kind {number}"));
    }
}

/// Two actions with one id, a negative id, and an id already confirmed in history are refused.
#[test]
fn reused_or_negative_ids_fail_the_execution() {
    let story = Story::first_episode();
    let twice = vec![action(0, schedule("A")), action(0, schedule("B"))];
    assert_rejected(&story, twice, "already taken");
    assert_rejected(&story, vec![action(-3, schedule("A"))], "negative");

    let later = parent_with_children().later(Vec::new());
    assert_rejected(&later, vec![action(3, schedule("A"))], "already taken");
}

/// An id whose action has its answer in history is free again: the Python SDK schedules the
/// retry of a failed activity or sub-orchestration under the first attempt's id.
#[test]
fn an_answered_id_may_be_scheduled_again() {
    let later = parent_with_children().later(Vec::new());
    let outcome = later.apply(vec![action(2, schedule("Retry"))]);

    assert_eq!(outcome.status, OrchestrationStatus::Running);
    assert_eq!(outcome.activities.len(), 1);
    assert_eq!(outcome.activities[0].task_id, 2);
}

/// Two completions, and a rewind mixed with anything else, are refused, along with any
/// sub-orchestration created before them.
#[test]
fn impossible_combinations_fail_the_execution() {
    let story = Story::first_episode();
    let two_ends = vec![
        action(0, sub_orchestration("kid")),
        action(1, complete(OrchestrationStatus::Completed, "a")),
        action(2, complete(OrchestrationStatus::Failed, "b")),
    ];
    assert_rejected(&story, two_ends, "already completed");

    let rewind = ActionKind::RewindOrchestration {
        new_history: Vec::new(),
    };
    let mixed = vec![action(0, schedule("A")), action(1, rewind)];
    assert_rejected(&story, mixed, "only action");
}

/// Entity messages that cannot be routed are refused.
#[test]
fn unroutable_entity_messages_fail_the_execution() {
    let story = Story::first_episode();
    let no_target = EntityOperationSignaled {
        target_instance_id: None,
        ..signal()
    };
    let signal_nowhere = vec![entity_action(0, EntityMessage::Signal(no_target))];
    assert_rejected(&story, signal_nowhere, "names no target entity");

    let not_an_entity = EntityOperationCalled {
        target_instance_id: Some(id("plain-orchestration")),
        ..call()
    };
    let call_orchestration = vec![entity_action(0, EntityMessage::Call(not_an_entity))];
    assert_rejected(&story, call_orchestration, "not of the form @name@key");

    let beyond = EntityLockRequested {
        position: 2,
        ..lock_request()
    };
    let lock_beyond = vec![entity_action(0, EntityMessage::LockRequest(beyond))];
    assert_rejected(
        &story,
        lock_beyond,
        "position 2 is outside its lock set of 2",
    );
}

/// A sub-orchestration whose worker answers nonsense fails, and its parent hears why.
#[test]
fn invalid_answer_of_a_child_is_reported_to_the_parent() {
    let outcome = child_of_parent().apply(vec![action(0, schedule(""))]);
    let EventKind::SubOrchestrationFailed(failed) = parent_report(&outcome) else {
        panic!("expected a failure report");
    };
    assert_eq!(failed.failure.error_type, INVALID_ACTION);
    assert_eq!(
        failed.failure.error_message,
        "action 0: ScheduleTask names no activity"
    );
}

// --- ended and rewound executions -----------------------------------------------------------

/// An episode that arrives after the end changes nothing but the history: its actions are
/// ignored and the final status stays.
#[test]
fn episode_after_the_end_ignores_its_actions() {
    let ended = Story::first_episode();
    let mut story = ended.later(Vec::new());
    let completed = ExecutionCompleted {
        status: OrchestrationStatus::Completed,
        result: Some("1".into()),
        failure: None,
    };
    story
        .history
        .push(event(920, EventKind::ExecutionCompleted(completed)));

    let outcome = story.apply(vec![action(0, schedule("TooLate"))]);
    assert_eq!(outcome.appended, story.new_events);
    assert!(outcome.activities.is_empty());
    assert_eq!(outcome.status, OrchestrationStatus::Completed);
    assert_eq!(outcome.output, Some("1".into()));
}

/// A rewind of a failed execution replaces its history and makes it run again.
#[test]
fn rewind_replaces_the_history_of_a_failed_execution() {
    let mut failed = Story::first_episode().later(Vec::new());
    let completed = ExecutionCompleted {
        status: OrchestrationStatus::Failed,
        result: None,
        failure: Some(FailureDetails::new("Boom", "it broke")),
    };
    failed
        .history
        .push(event(920, EventKind::ExecutionCompleted(completed)));
    let rewound = failed.later(vec![EventKind::ExecutionRewound(Default::default())]);

    let kept = rewound.history[..2].to_vec();
    let rewind = ActionKind::RewindOrchestration {
        new_history: kept.clone(),
    };
    let outcome = rewound.apply(vec![action(-1, rewind)]);
    assert_eq!(outcome.rewound_history, Some(kept));
    assert_eq!(outcome.status, OrchestrationStatus::Running);
    assert_eq!(outcome.appended, rewound.new_events);
}

// --- property -------------------------------------------------------------------------------

/// Any action except a rewind (which must stand alone), with the given id.
fn arbitrary_action(id: i32) -> impl Strategy<Value = OrchestratorAction> {
    let statuses = prop_oneof![
        Just(OrchestrationStatus::Completed),
        Just(OrchestrationStatus::Failed),
        Just(OrchestrationStatus::Terminated),
        Just(OrchestrationStatus::ContinuedAsNew),
    ];
    let kind = prop_oneof![
        "[a-z]{1,6}".prop_map(|name| schedule(&name)),
        (0i64..10_000).prop_map(|secs| ActionKind::CreateTimer { fire_at: at(secs) }),
        "[a-z]{0,4}".prop_map(|child| sub_orchestration(&child)),
        "[a-z]{1,4}".prop_map(|target| ActionKind::SendEvent(SendEvent {
            instance_id: InstanceId::new(target),
            execution_id: None,
            name: "e".into(),
            data: None,
        })),
        Just(ActionKind::TerminateOrchestration(TerminateOrchestration {
            instance_id: InstanceId::new("victim"),
            reason: None,
            recurse: false,
        })),
        prop_oneof![
            Just(EntityMessage::Signal(signal())),
            Just(EntityMessage::Call(call())),
            Just(EntityMessage::LockRequest(lock_request())),
            Just(EntityMessage::Unlock(unlock())),
        ]
        .prop_map(ActionKind::SendEntityMessage),
        statuses.prop_map(|status| ActionKind::CompleteOrchestration(complete_action(status))),
    ];
    kind.prop_map(move |kind| OrchestratorAction { id, kind })
}

/// Up to eight actions with ids 0, 1, 2, ...
fn arbitrary_actions() -> impl Strategy<Value = Vec<OrchestratorAction>> {
    (0usize..8).prop_flat_map(|n| (0..n as i32).map(arbitrary_action).collect::<Vec<_>>())
}

/// The `event_id`s a simple model expects after the new events: the confirmed actions in
/// order, then the completion; or just the failure when two actions complete.
fn expected_event_ids(actions: &[OrchestratorAction]) -> Vec<i32> {
    let continues = |a: &&OrchestratorAction| {
        matches!(&a.kind, ActionKind::CompleteOrchestration(c)
            if c.status == OrchestrationStatus::ContinuedAsNew)
    };
    let applied = match actions.iter().position(|a| continues(&a)) {
        Some(last) => &actions[..=last],
        None => actions,
    };
    let completes =
        |a: &&OrchestratorAction| matches!(a.kind, ActionKind::CompleteOrchestration(_));
    let ends: Vec<i32> = applied.iter().filter(completes).map(|a| a.id).collect();
    if ends.len() > 1 {
        return vec![HistoryEvent::NO_ID];
    }
    let confirms = |a: &&OrchestratorAction| {
        !completes(a) && !matches!(a.kind, ActionKind::TerminateOrchestration(_))
    };
    let mut ids: Vec<i32> = applied.iter().filter(confirms).map(|a| a.id).collect();
    ids.extend(ends);
    ids
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the actions, the new events open `appended` verbatim, and every confirmation
    /// carries the id of the action it confirms, in action order.
    #[test]
    fn appended_keeps_new_events_and_confirms_by_action_id(actions in arbitrary_actions()) {
        let story = Story::first_episode().later(Vec::new());
        let outcome = story.apply(actions.clone());

        let new_count = story.new_events.len();
        prop_assert_eq!(&outcome.appended[..new_count], &story.new_events[..]);
        let ids: Vec<i32> = outcome.appended[new_count..].iter().map(|e| e.event_id).collect();
        prop_assert_eq!(ids, expected_event_ids(&actions));
        prop_assert!(outcome.status != OrchestrationStatus::ContinuedAsNew);
    }
}
