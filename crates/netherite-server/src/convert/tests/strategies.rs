//! Generators of model values for the round-trip properties.
//!
//! Each history kind and each action kind has its own generator, so a test can walk them all
//! and know that every kind was exercised, not just the ones a random draw happened to pick.
//! Values stay within what the wire accepts: ids that name actions are non-negative, and
//! failure properties are JSON text in the form a wire `Value` comes back as.

use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityLockGranted,
    EntityLockRequested, EntityMessage, EntityOperationCalled, EntityOperationCompleted,
    EntityOperationFailed, EntityOperationSignaled, EntityUnlockSent, EventKind, EventRaised,
    EventSent, ExecutionCompleted, ExecutionRewound, ExecutionStarted, ExecutionTerminated,
    FailureDetails, HistoryEvent, OrchestrationStatus, OrchestratorAction, ParentInstance, Payload,
    ScheduleTask, SendEvent, SubOrchestrationCompleted, SubOrchestrationCreated,
    SubOrchestrationFailed, Tags, TaskCompleted, TaskFailed, TaskScheduled, TerminateOrchestration,
    TimerCreated, TimerFired, TraceContext,
};
use netherite_core::{ExecutionId, InstanceId, Timestamp};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use prost_types::value::Kind;

use crate::convert::failure::value_to_json_text;

pub(super) fn text() -> impl Strategy<Value = String> {
    ".{0,6}"
}

/// Absent, empty, or some text: the three cases presence must keep apart.
pub(super) fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![Just(None), Just(Some(String::new())), text().prop_map(Some)]
}

pub(super) fn instance() -> impl Strategy<Value = InstanceId> {
    text().prop_map(InstanceId)
}

fn execution() -> impl Strategy<Value = ExecutionId> {
    text().prop_map(ExecutionId)
}

pub(super) fn timestamp() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0..1_000_000_000u32).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

fn tags() -> impl Strategy<Value = Tags> {
    btree_map(text(), text(), 0..3)
}

fn action_id() -> impl Strategy<Value = i32> {
    0..=i32::MAX
}

fn status() -> impl Strategy<Value = OrchestrationStatus> {
    proptest::sample::select(OrchestrationStatus::ALL.to_vec())
}

fn trace() -> impl Strategy<Value = Option<TraceContext>> {
    option::of(
        (text(), text(), payload()).prop_map(|(trace_parent, span_id, trace_state)| TraceContext {
            trace_parent,
            span_id,
            trace_state,
        }),
    )
}

fn parent() -> impl Strategy<Value = ParentInstance> {
    let ids = (action_id(), instance(), option::of(execution()));
    (ids, payload(), payload()).prop_map(
        |((task_scheduled_id, instance_id, execution_id), n, v)| ParentInstance {
            task_scheduled_id,
            name: n,
            version: v,
            instance_id,
            execution_id,
        },
    )
}

/// A JSON-shaped wire value: null, bool, finite number, string, list or object.
pub(super) fn json_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        any::<bool>().prop_map(Kind::BoolValue),
        any::<i32>().prop_map(|n| Kind::NumberValue(f64::from(n))),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |n| n.is_finite())
            .prop_map(Kind::NumberValue),
        text().prop_map(Kind::StringValue),
    ];
    let leaf = leaf.prop_map(|kind| prost_types::Value { kind: Some(kind) });
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|values| {
                let list = prost_types::ListValue { values };
                prost_types::Value {
                    kind: Some(Kind::ListValue(list)),
                }
            }),
            btree_map(text(), inner, 0..3).prop_map(|fields| {
                let object = prost_types::Struct { fields };
                prost_types::Value {
                    kind: Some(Kind::StructValue(object)),
                }
            }),
        ]
    })
}

fn property_text() -> impl Strategy<Value = String> {
    json_value().prop_map(|v| value_to_json_text(v).expect("generated values are JSON"))
}

/// A failure with up to two causes below it.
pub(super) fn failure() -> impl Strategy<Value = FailureDetails> {
    let fields = (text(), text(), payload(), any::<bool>());
    let leaf = (fields, btree_map(text(), property_text(), 0..3)).prop_map(
        |((error_type, error_message, stack_trace, is_non_retriable), properties)| FailureDetails {
            error_type,
            error_message,
            stack_trace,
            inner_failure: None,
            is_non_retriable,
            properties,
        },
    );
    let leaf = leaf.boxed();
    leaf.clone().prop_recursive(2, 3, 1, move |inner| {
        (leaf.clone(), inner).prop_map(|(outer, cause)| outer.caused_by(cause))
    })
}

/// One generator per history kind, in protocol order (3 to 30).
pub(super) fn event_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let mut kinds = lifecycle_kinds();
    kinds.extend(task_kinds());
    kinds.extend(message_kinds());
    kinds.extend(entity_kinds());
    kinds.push(rewound().prop_map(EventKind::ExecutionRewound).boxed());
    kinds
}

/// Any history event.
pub(super) fn event() -> impl Strategy<Value = HistoryEvent> {
    let kind = proptest::strategy::Union::new(event_kinds());
    (any::<i32>(), timestamp(), kind).prop_map(|(event_id, timestamp, kind)| HistoryEvent {
        event_id,
        timestamp,
        kind,
    })
}

fn lifecycle_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let completed = (status(), payload(), option::of(failure())).prop_map(|(s, r, f)| {
        EventKind::ExecutionCompleted(ExecutionCompleted {
            status: s,
            result: r,
            failure: f,
        })
    });
    let terminated = (payload(), any::<bool>()).prop_map(|(input, recurse)| {
        EventKind::ExecutionTerminated(ExecutionTerminated { input, recurse })
    });
    vec![
        started().prop_map(EventKind::ExecutionStarted).boxed(),
        completed.boxed(),
        terminated.boxed(),
    ]
}

fn started() -> impl Strategy<Value = ExecutionStarted> {
    let what = (text(), payload(), payload(), instance(), execution());
    let how = (
        option::of(parent()),
        option::of(timestamp()),
        trace(),
        payload(),
        tags(),
    );
    (what, how).prop_map(|((name, version, input, instance_id, execution_id), how)| {
        let (parent, scheduled_start, parent_trace_context, orchestration_span_id, tags) = how;
        ExecutionStarted {
            name,
            version,
            input,
            instance_id,
            execution_id,
            parent,
            scheduled_start,
            parent_trace_context,
            orchestration_span_id,
            tags,
        }
    })
}

fn task_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let scheduled = (text(), payload(), payload(), trace(), tags()).prop_map(|(n, v, i, t, g)| {
        EventKind::TaskScheduled(TaskScheduled {
            name: n,
            version: v,
            input: i,
            parent_trace_context: t,
            tags: g,
        })
    });
    let completed = (action_id(), payload()).prop_map(|(task_scheduled_id, result)| {
        EventKind::TaskCompleted(TaskCompleted {
            task_scheduled_id,
            result,
        })
    });
    let failed = (action_id(), failure()).prop_map(|(task_scheduled_id, failure)| {
        EventKind::TaskFailed(TaskFailed {
            task_scheduled_id,
            failure,
        })
    });
    let mut kinds = vec![scheduled.boxed(), completed.boxed(), failed.boxed()];
    kinds.extend(sub_orchestration_kinds());
    kinds.extend(timer_kinds());
    kinds
}

fn sub_orchestration_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let created = (instance(), text(), payload(), payload(), trace(), tags()).prop_map(
        |(instance_id, name, version, input, parent_trace_context, tags)| {
            EventKind::SubOrchestrationCreated(SubOrchestrationCreated {
                instance_id,
                name,
                version,
                input,
                parent_trace_context,
                tags,
            })
        },
    );
    let completed = (action_id(), payload()).prop_map(|(task_scheduled_id, result)| {
        EventKind::SubOrchestrationCompleted(SubOrchestrationCompleted {
            task_scheduled_id,
            result,
        })
    });
    let failed = (action_id(), failure()).prop_map(|(task_scheduled_id, failure)| {
        EventKind::SubOrchestrationFailed(SubOrchestrationFailed {
            task_scheduled_id,
            failure,
        })
    });
    vec![created.boxed(), completed.boxed(), failed.boxed()]
}

fn timer_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let created = timestamp().prop_map(|fire_at| EventKind::TimerCreated(TimerCreated { fire_at }));
    let fired = (timestamp(), action_id())
        .prop_map(|(fire_at, timer_id)| EventKind::TimerFired(TimerFired { fire_at, timer_id }));
    vec![created.boxed(), fired.boxed()]
}

fn message_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let sent = (instance(), text(), payload()).prop_map(|(instance_id, name, input)| {
        EventKind::EventSent(EventSent {
            instance_id,
            name,
            input,
        })
    });
    let raised = (text(), payload())
        .prop_map(|(name, input)| EventKind::EventRaised(EventRaised { name, input }));
    vec![
        Just(EventKind::OrchestratorStarted).boxed(),
        Just(EventKind::OrchestratorCompleted).boxed(),
        sent.boxed(),
        raised.boxed(),
        payload()
            .prop_map(|data| EventKind::GenericEvent { data })
            .boxed(),
        Just(EventKind::HistoryState).boxed(),
        payload()
            .prop_map(|input| EventKind::ContinueAsNew { input })
            .boxed(),
        payload()
            .prop_map(|input| EventKind::ExecutionSuspended { input })
            .boxed(),
        payload()
            .prop_map(|input| EventKind::ExecutionResumed { input })
            .boxed(),
    ]
}

fn entity_kinds() -> Vec<BoxedStrategy<EventKind>> {
    let completed = (text(), payload()).prop_map(|(request_id, output)| {
        EventKind::EntityOperationCompleted(EntityOperationCompleted { request_id, output })
    });
    let failed = (text(), failure()).prop_map(|(request_id, failure)| {
        EventKind::EntityOperationFailed(EntityOperationFailed {
            request_id,
            failure,
        })
    });
    let granted = text().prop_map(|critical_section_id| {
        EventKind::EntityLockGranted(EntityLockGranted {
            critical_section_id,
        })
    });
    vec![
        signaled()
            .prop_map(EventKind::EntityOperationSignaled)
            .boxed(),
        called().prop_map(EventKind::EntityOperationCalled).boxed(),
        completed.boxed(),
        failed.boxed(),
        lock_requested()
            .prop_map(EventKind::EntityLockRequested)
            .boxed(),
        granted.boxed(),
        unlock_sent().prop_map(EventKind::EntityUnlockSent).boxed(),
    ]
}

fn signaled() -> impl Strategy<Value = EntityOperationSignaled> {
    let fields = (text(), text(), option::of(timestamp()), payload());
    (fields, option::of(instance())).prop_map(|((r, o, s, i), target_instance_id)| {
        EntityOperationSignaled {
            request_id: r,
            operation: o,
            scheduled_time: s,
            input: i,
            target_instance_id,
        }
    })
}

fn called() -> impl Strategy<Value = EntityOperationCalled> {
    let fields = (text(), text(), option::of(timestamp()), payload());
    let ids = (
        option::of(instance()),
        option::of(execution()),
        option::of(instance()),
    );
    (fields, ids).prop_map(
        |((r, o, s, i), (parent, execution, target))| EntityOperationCalled {
            request_id: r,
            operation: o,
            scheduled_time: s,
            input: i,
            parent_instance_id: parent,
            parent_execution_id: execution,
            target_instance_id: target,
        },
    )
}

fn lock_requested() -> impl Strategy<Value = EntityLockRequested> {
    let fields = (
        text(),
        vec(instance(), 0..4),
        action_id(),
        option::of(instance()),
    );
    fields.prop_map(
        |(critical_section_id, lock_set, position, parent_instance_id)| EntityLockRequested {
            critical_section_id,
            lock_set,
            position,
            parent_instance_id,
        },
    )
}

fn unlock_sent() -> impl Strategy<Value = EntityUnlockSent> {
    (text(), option::of(instance()), option::of(instance())).prop_map(|(id, parent, target)| {
        EntityUnlockSent {
            critical_section_id: id,
            parent_instance_id: parent,
            target_instance_id: target,
        }
    })
}

fn rewound() -> impl Strategy<Value = ExecutionRewound> {
    let sub = (
        payload(),
        option::of(execution()),
        option::of(instance()),
        trace(),
    );
    let hosted = (
        payload(),
        payload(),
        payload(),
        option::of(parent()),
        tags(),
    );
    (sub, hosted).prop_map(
        |((reason, parent_execution_id, instance_id, trace), hosted)| {
            let (name, version, input, parent, tags) = hosted;
            ExecutionRewound {
                reason,
                parent_execution_id,
                instance_id,
                parent_trace_context: trace,
                name,
                version,
                input,
                parent,
                tags,
            }
        },
    )
}

/// One generator per action kind, in protocol order, entity messages split by their kind.
pub(super) fn action_kinds() -> Vec<BoxedStrategy<ActionKind>> {
    let timer = timestamp().prop_map(|fire_at| ActionKind::CreateTimer { fire_at });
    let rewind =
        vec(event(), 0..3).prop_map(|new_history| ActionKind::RewindOrchestration { new_history });
    let entity = [
        signaled().prop_map(EntityMessage::Signal).boxed(),
        called().prop_map(EntityMessage::Call).boxed(),
        lock_requested()
            .prop_map(EntityMessage::LockRequest)
            .boxed(),
        unlock_sent().prop_map(EntityMessage::Unlock).boxed(),
    ];
    let mut kinds = vec![
        schedule_task().prop_map(ActionKind::ScheduleTask).boxed(),
        create_sub()
            .prop_map(ActionKind::CreateSubOrchestration)
            .boxed(),
        timer.boxed(),
        send_event().prop_map(ActionKind::SendEvent).boxed(),
        complete()
            .prop_map(ActionKind::CompleteOrchestration)
            .boxed(),
        terminate()
            .prop_map(ActionKind::TerminateOrchestration)
            .boxed(),
    ];
    kinds.extend(entity.map(|m| m.prop_map(ActionKind::SendEntityMessage).boxed()));
    kinds.push(rewind.boxed());
    kinds
}

/// Any action.
pub(super) fn action() -> impl Strategy<Value = OrchestratorAction> {
    let kind = proptest::strategy::Union::new(action_kinds());
    (action_id(), kind).prop_map(|(id, kind)| OrchestratorAction { id, kind })
}

fn schedule_task() -> impl Strategy<Value = ScheduleTask> {
    (text(), payload(), payload(), tags(), trace()).prop_map(|(n, v, i, g, t)| ScheduleTask {
        name: n,
        version: v,
        input: i,
        tags: g,
        parent_trace_context: t,
    })
}

fn create_sub() -> impl Strategy<Value = CreateSubOrchestration> {
    (instance(), text(), payload(), payload(), trace(), tags()).prop_map(
        |(instance_id, name, version, input, parent_trace_context, tags)| CreateSubOrchestration {
            instance_id,
            name,
            version,
            input,
            parent_trace_context,
            tags,
        },
    )
}

fn send_event() -> impl Strategy<Value = SendEvent> {
    (instance(), option::of(execution()), text(), payload()).prop_map(|(i, e, n, d)| SendEvent {
        instance_id: i,
        execution_id: e,
        name: n,
        data: d,
    })
}

fn complete() -> impl Strategy<Value = CompleteOrchestration> {
    let outcome = (status(), payload(), payload(), payload());
    let rest = (vec(event(), 0..3), option::of(failure()), tags());
    (outcome, rest).prop_map(|((status, result, details, new_version), rest)| {
        let (carryover_events, failure, tags) = rest;
        CompleteOrchestration {
            status,
            result,
            details,
            new_version,
            carryover_events,
            failure,
            tags,
        }
    })
}

fn terminate() -> impl Strategy<Value = TerminateOrchestration> {
    (instance(), payload(), any::<bool>()).prop_map(|(instance_id, reason, recurse)| {
        TerminateOrchestration {
            instance_id,
            reason,
            recurse,
        }
    })
}
