//! Malformed wire input: each shape the model cannot hold is a typed error naming the field,
//! never a panic.

use netherite_core::model::{FailureDetails, HistoryEvent, OrchestratorAction, ParentInstance};
use prost_types::value::Kind;

use crate::convert::all;
use crate::pb::history_event::EventType;
use crate::pb::orchestrator_action::OrchestratorActionType as ActionType;
use crate::{Error, pb};

fn at(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

/// A well-formed event of the given kind, to be spoiled by the test.
fn event(kind: EventType) -> pb::HistoryEvent {
    pb::HistoryEvent {
        event_id: -1,
        timestamp: at(1_700_000_000, 0),
        event_type: Some(kind),
    }
}

fn action(id: i32, kind: ActionType) -> pb::OrchestratorAction {
    pb::OrchestratorAction {
        id,
        orchestrator_action_type: Some(kind),
    }
}

fn event_error(wire: pb::HistoryEvent) -> Error {
    HistoryEvent::try_from(wire).expect_err("malformed event")
}

fn action_error(wire: pb::OrchestratorAction) -> Error {
    OrchestratorAction::try_from(wire).expect_err("malformed action")
}

fn missing(field: &'static str) -> Error {
    Error::Missing { field }
}

/// A history event must say what happened and when.
#[test]
fn an_event_without_kind_or_timestamp_is_refused() {
    let mut no_kind = event(EventType::OrchestratorStarted(
        pb::OrchestratorStartedEvent {},
    ));
    no_kind.event_type = None;
    assert_eq!(event_error(no_kind), missing("HistoryEvent.eventType"));

    let mut no_time = event(EventType::OrchestratorStarted(
        pb::OrchestratorStartedEvent {},
    ));
    no_time.timestamp = None;
    assert_eq!(event_error(no_time), missing("HistoryEvent.timestamp"));
}

/// Status numbers outside the protocol's eight are refused, in events and in actions.
#[test]
fn unknown_status_numbers_are_refused() {
    for value in [8, -1, 1_000] {
        let completed = pb::ExecutionCompletedEvent {
            orchestration_status: value,
            ..Default::default()
        };
        let field = "ExecutionCompletedEvent.orchestrationStatus";
        let err = event_error(event(EventType::ExecutionCompleted(completed)));
        assert_eq!(err, Error::UnknownEnumValue { field, value });

        let complete = pb::CompleteOrchestrationAction {
            orchestration_status: value,
            ..Default::default()
        };
        let field = "CompleteOrchestrationAction.orchestrationStatus";
        let err = action_error(action(0, ActionType::CompleteOrchestration(complete)));
        assert_eq!(err, Error::UnknownEnumValue { field, value });
    }
}

/// An action must say what it asks for, and an entity message what kind it is.
#[test]
fn an_action_without_kind_is_refused() {
    let no_kind = pb::OrchestratorAction {
        id: 0,
        orchestrator_action_type: None,
    };
    assert_eq!(
        action_error(no_kind),
        missing("OrchestratorAction.orchestratorActionType")
    );

    let no_message = ActionType::SendEntityMessage(pb::SendEntityMessageAction::default());
    let field = "SendEntityMessageAction.EntityMessageType";
    assert_eq!(action_error(action(0, no_message)), missing(field));
}

/// Nanoseconds must lie in 0..1e9 wherever a timestamp appears.
#[test]
fn timestamps_with_nanos_out_of_range_are_refused() {
    for nanos in [-1, 1_000_000_000, i32::MAX] {
        let invalid = |field| Error::InvalidTimestamp {
            field,
            seconds: 5,
            nanos,
        };
        let mut spoiled = event(EventType::OrchestratorStarted(
            pb::OrchestratorStartedEvent {},
        ));
        spoiled.timestamp = at(5, nanos);
        assert_eq!(event_error(spoiled), invalid("HistoryEvent.timestamp"));

        let created = EventType::TimerCreated(pb::TimerCreatedEvent {
            fire_at: at(5, nanos),
        });
        assert_eq!(
            event_error(event(created)),
            invalid("TimerCreatedEvent.fireAt")
        );

        let timer = ActionType::CreateTimer(pb::CreateTimerAction {
            fire_at: at(5, nanos),
        });
        assert_eq!(
            action_error(action(0, timer)),
            invalid("CreateTimerAction.fireAt")
        );

        let signal = pb::EntityOperationSignaledEvent {
            scheduled_time: at(5, nanos),
            ..Default::default()
        };
        let field = "EntityOperationSignaledEvent.scheduledTime";
        let err = event_error(event(EventType::EntityOperationSignaled(signal)));
        assert_eq!(err, invalid(field));
    }
}

/// Timers must say when they fire.
#[test]
fn timers_without_a_time_are_refused() {
    let created = EventType::TimerCreated(pb::TimerCreatedEvent { fire_at: None });
    assert_eq!(
        event_error(event(created)),
        missing("TimerCreatedEvent.fireAt")
    );

    let fired = EventType::TimerFired(pb::TimerFiredEvent {
        fire_at: None,
        timer_id: 0,
    });
    assert_eq!(event_error(event(fired)), missing("TimerFiredEvent.fireAt"));

    let timer = ActionType::CreateTimer(pb::CreateTimerAction { fire_at: None });
    assert_eq!(
        action_error(action(0, timer)),
        missing("CreateTimerAction.fireAt")
    );
}

/// Ids that point back at an action, and a lock request's position, may not be negative.
#[test]
fn negative_references_are_refused() {
    let negative = |field| Error::Negative { field, value: -2 };
    let failure = || Some(pb::TaskFailureDetails::default());
    let cases = [
        (
            EventType::TaskCompleted(pb::TaskCompletedEvent {
                task_scheduled_id: -2,
                result: None,
            }),
            "TaskCompletedEvent.taskScheduledId",
        ),
        (
            EventType::TaskFailed(pb::TaskFailedEvent {
                task_scheduled_id: -2,
                failure_details: failure(),
            }),
            "TaskFailedEvent.taskScheduledId",
        ),
        (
            EventType::SubOrchestrationInstanceCompleted(
                pb::SubOrchestrationInstanceCompletedEvent {
                    task_scheduled_id: -2,
                    result: None,
                },
            ),
            "SubOrchestrationInstanceCompletedEvent.taskScheduledId",
        ),
        (
            EventType::SubOrchestrationInstanceFailed(pb::SubOrchestrationInstanceFailedEvent {
                task_scheduled_id: -2,
                failure_details: failure(),
            }),
            "SubOrchestrationInstanceFailedEvent.taskScheduledId",
        ),
        (
            EventType::TimerFired(pb::TimerFiredEvent {
                fire_at: at(1, 0),
                timer_id: -2,
            }),
            "TimerFiredEvent.timerId",
        ),
        (
            EventType::EntityLockRequested(pb::EntityLockRequestedEvent {
                position: -2,
                ..Default::default()
            }),
            "EntityLockRequestedEvent.position",
        ),
    ];
    for (kind, field) in cases {
        assert_eq!(event_error(event(kind)), negative(field));
    }

    let parent = pb::ParentInstanceInfo {
        task_scheduled_id: -2,
        orchestration_instance: Some(pb::OrchestrationInstance::default()),
        ..Default::default()
    };
    let err = ParentInstance::try_from(parent).expect_err("negative parent action id");
    assert_eq!(err, negative("ParentInstanceInfo.taskScheduledId"));
}

/// Actions whose id comes back in a completion need a real id; a crashed orchestration's
/// failing completion carries -1 and is accepted.
#[test]
fn negative_action_ids_are_refused_only_where_they_come_back() {
    let schedule = ActionType::ScheduleTask(pb::ScheduleTaskAction::default());
    let err = action_error(action(-1, schedule));
    assert_eq!(
        err,
        Error::Negative {
            field: "OrchestratorAction.id",
            value: -1
        }
    );

    let complete = pb::CompleteOrchestrationAction {
        orchestration_status: pb::OrchestrationStatus::Failed as i32,
        failure_details: Some(pb::TaskFailureDetails::default()),
        ..Default::default()
    };
    let crashed =
        OrchestratorAction::try_from(action(-1, ActionType::CompleteOrchestration(complete)));
    assert_eq!(crashed.map(|a| a.id), Ok(-1));
}

/// Failed events must say why; a start must name its instance and execution; a sent event
/// must name its target; a parent must name its instance.
#[test]
fn required_messages_that_are_unset_are_refused() {
    let failed = EventType::TaskFailed(pb::TaskFailedEvent::default());
    assert_eq!(
        event_error(event(failed)),
        missing("TaskFailedEvent.failureDetails")
    );

    let failed = EventType::EntityOperationFailed(pb::EntityOperationFailedEvent::default());
    let field = "EntityOperationFailedEvent.failureDetails";
    assert_eq!(event_error(event(failed)), missing(field));

    let started = EventType::ExecutionStarted(pb::ExecutionStartedEvent::default());
    let field = "ExecutionStartedEvent.orchestrationInstance";
    assert_eq!(event_error(event(started)), missing(field));

    let started = EventType::ExecutionStarted(pb::ExecutionStartedEvent {
        orchestration_instance: Some(pb::OrchestrationInstance::default()),
        ..Default::default()
    });
    let field = "ExecutionStartedEvent.orchestrationInstance.executionId";
    assert_eq!(event_error(event(started)), missing(field));

    let send = ActionType::SendEvent(pb::SendEventAction::default());
    assert_eq!(
        action_error(action(0, send)),
        missing("SendEventAction.instance")
    );

    let parent = ParentInstance::try_from(pb::ParentInstanceInfo::default());
    assert_eq!(
        parent,
        Err(missing("ParentInstanceInfo.orchestrationInstance"))
    );
}

/// A bad item in a list is reported with its position, from the outermost list inwards.
#[test]
fn bad_list_items_are_reported_with_their_index() {
    let good = event(EventType::OrchestratorStarted(
        pb::OrchestratorStartedEvent {},
    ));
    let mut bad = good.clone();
    bad.event_type = None;

    let complete = pb::CompleteOrchestrationAction {
        orchestration_status: pb::OrchestrationStatus::ContinuedAsNew as i32,
        carryover_events: vec![good.clone(), bad.clone()],
        ..Default::default()
    };
    let err = action_error(action(
        3,
        ActionType::CompleteOrchestration(complete.clone()),
    ));
    let inner = Error::InList {
        list: "CompleteOrchestrationAction.carryoverEvents",
        index: 1,
        inner: Box::new(missing("HistoryEvent.eventType")),
    };
    assert_eq!(err, inner);

    let actions = vec![action(0, ActionType::CompleteOrchestration(complete))];
    let err = all::<_, OrchestratorAction>("OrchestratorResponse.actions", actions)
        .expect_err("bad carryover event");
    assert_eq!(
        err.to_string(),
        "OrchestratorResponse.actions[0]: CompleteOrchestrationAction.carryoverEvents[1]: \
         HistoryEvent.eventType is missing"
    );
}

/// Failure properties must be JSON on both sides: a value with no kind or a NaN coming in,
/// text that is not JSON going out.
#[test]
fn properties_that_are_not_json_are_refused() {
    let with_property = |value: prost_types::Value| pb::TaskFailureDetails {
        properties: [("p".to_owned(), value)].into(),
        ..Default::default()
    };
    let no_kind = with_property(prost_types::Value { kind: None });
    let nan = with_property(prost_types::Value {
        kind: Some(Kind::NumberValue(f64::NAN)),
    });
    for wire in [no_kind, nan] {
        let err = FailureDetails::try_from(wire).expect_err("not JSON");
        assert!(matches!(err, Error::InvalidProperty { key, .. } if key == "p"));
    }

    // Deep inside a chain, too.
    let mut failure = FailureDetails::new("Outer", "o");
    let mut cause = FailureDetails::new("Inner", "i");
    cause.properties.insert("q".into(), "{not json".into());
    failure = failure.caused_by(cause);
    let err = pb::TaskFailureDetails::try_from(failure).expect_err("not JSON text");
    assert!(matches!(err, Error::InvalidProperty { key, .. } if key == "q"));
}
