//! The client views: an instance as `OrchestrationState`, an entity as `EntityMetadata`.

use netherite_core::entity::LockHolder;
use netherite_core::model::{FailureDetails, OrchestrationStatus};
use netherite_core::partition::{EntityView, InstanceView};
use netherite_core::{ExecutionId, InstanceId, Timestamp};

use crate::convert::timestamp_to_wire;
use crate::pb;

fn view() -> InstanceView {
    InstanceView {
        instance_id: InstanceId::new("order-7"),
        name: "Checkout".into(),
        version: Some(String::new()),
        status: OrchestrationStatus::Failed,
        created: Timestamp::new(100, 1),
        last_updated: Timestamp::new(160, 2),
        completed: Some(Timestamp::new(160, 2)),
        scheduled_start: None,
        execution_id: ExecutionId::new("e1"),
        parent_instance_id: Some(InstanceId::new("parent")),
        tags: [("team".to_owned(), "pay".to_owned())].into(),
        custom_status: Some("\"step 3\"".into()),
        input: Some("{}".into()),
        output: None,
        failure: Some(FailureDetails::new("Declined", "card declined")),
    }
}

/// Every field of an instance view lands in its place, presence and timestamps as they are.
#[test]
fn an_instance_view_becomes_its_orchestration_state() {
    let state = pb::OrchestrationState::try_from(view()).expect("converts");

    assert_eq!(state.instance_id, "order-7");
    assert_eq!(state.name, "Checkout");
    assert_eq!(state.version.as_deref(), Some(""));
    assert_eq!(
        state.orchestration_status,
        pb::OrchestrationStatus::Failed as i32
    );
    assert_eq!(
        state.created_timestamp,
        Some(timestamp_to_wire(Timestamp::new(100, 1)))
    );
    assert_eq!(
        state.last_updated_timestamp,
        Some(timestamp_to_wire(Timestamp::new(160, 2)))
    );
    assert_eq!(state.completed_timestamp, state.last_updated_timestamp);
    assert_eq!(state.scheduled_start_timestamp, None);
    assert_eq!(state.execution_id.as_deref(), Some("e1"));
    assert_eq!(state.parent_instance_id.as_deref(), Some("parent"));
    assert_eq!(state.tags.get("team").map(String::as_str), Some("pay"));
    assert_eq!(state.custom_status.as_deref(), Some("\"step 3\""));
    assert_eq!((state.input.as_deref(), state.output), (Some("{}"), None));
    let failure = state.failure_details.expect("failed instances report why");
    assert_eq!(failure.error_type, "Declined");
}

/// A successful instance reports no failure at all, not an empty one.
#[test]
fn success_has_no_failure_details() {
    let done = InstanceView {
        status: OrchestrationStatus::Completed,
        failure: None,
        ..view()
    };
    let state = pb::OrchestrationState::try_from(done).expect("converts");
    assert_eq!(state.failure_details, None);
}

/// An entity's lock is reported by its holding orchestration, and its state as it is.
#[test]
fn an_entity_view_becomes_its_metadata() {
    let entity = EntityView {
        entity: InstanceId::new("@counter@a"),
        state: Some("5".into()),
        locked_by: Some(LockHolder {
            instance_id: InstanceId::new("orch-1"),
            critical_section_id: "cs-9".into(),
        }),
        backlog: 3,
        last_modified: Some(Timestamp::new(50, 0)),
    };
    let meta = pb::EntityMetadata::from(entity);

    assert_eq!(meta.instance_id, "@counter@a");
    assert_eq!(meta.serialized_state.as_deref(), Some("5"));
    assert_eq!(meta.locked_by.as_deref(), Some("orch-1"));
    assert_eq!(meta.backlog_queue_size, 3);
    assert_eq!(
        meta.last_modified_time,
        Some(timestamp_to_wire(Timestamp::new(50, 0)))
    );
}
