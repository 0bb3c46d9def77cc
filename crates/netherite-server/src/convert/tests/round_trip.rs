//! Round trips: every history kind and every action kind comes back from the wire unchanged,
//! payload presence and timestamps included.

use netherite_core::Timestamp;
use netherite_core::model::{
    ActionKind, EventKind, EventRaised, FailureDetails, HistoryEvent, OrchestrationStatus,
    OrchestratorAction,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use prost::Message;

use super::{strategies, through_wire};
use crate::convert::failure::{json_text_to_value, value_to_json_text};
use crate::convert::{status_from_wire, status_to_wire, timestamp_from_wire, timestamp_to_wire};
use crate::pb;
use crate::pb::history_event::EventType;

const DRAWS_PER_KIND: usize = 12;

/// Draws `count` values from `strategy` with a fixed seed.
fn draws<T: std::fmt::Debug>(strategy: &BoxedStrategy<T>, count: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generators never reject")
                .current()
        })
        .collect()
}

/// The field number of the first field in `bytes`.
fn first_field_number(bytes: &[u8]) -> u32 {
    let mut buf = bytes;
    let (tag, _) = prost::encoding::decode_key(&mut buf).expect("a message with a field");
    tag
}

/// Each of the 28 history kinds, drawn a dozen times, comes back from the wire unchanged, and
/// travels in the oneof field whose number is the kind's protocol number.
#[test]
fn every_history_kind_survives_the_wire_in_its_own_field() {
    let mut numbers = Vec::new();
    for strategy in strategies::event_kinds() {
        let kinds = draws(&strategy, DRAWS_PER_KIND);
        numbers.push(kinds[0].protocol_number());
        for kind in kinds {
            let number = kind.protocol_number();
            let event = HistoryEvent::confirming(4, Timestamp::new(1_700_000_000, 17), kind);
            assert_eq!(through_wire::<_, pb::HistoryEvent>(event.clone()), event);

            // Alone in its message (no id, no timestamp), the kind is the first field.
            let mut wire = pb::HistoryEvent::try_from(event).expect("converts");
            (wire.event_id, wire.timestamp) = (0, None);
            assert_eq!(first_field_number(&wire.encode_to_vec()), number);
        }
    }
    assert_eq!(numbers, (3..=30).collect::<Vec<_>>());
}

/// Each action kind (entity messages in each of their four forms) comes back unchanged, in
/// the oneof field the protocol gives it.
#[test]
fn every_action_kind_survives_the_wire_in_its_own_field() {
    let mut numbers = Vec::new();
    for strategy in strategies::action_kinds() {
        let mut fields = Vec::new();
        for kind in draws(&strategy, DRAWS_PER_KIND) {
            let action = OrchestratorAction { id: 0, kind };
            assert_eq!(
                through_wire::<_, pb::OrchestratorAction>(action.clone()),
                action
            );

            let wire = pb::OrchestratorAction::try_from(action).expect("converts");
            fields.push(first_field_number(&wire.encode_to_vec()));
        }
        fields.dedup();
        assert_eq!(fields.len(), 1, "one kind, one field");
        numbers.extend(fields);
    }
    assert_eq!(numbers, [2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 9]);
}

/// The four entity messages sit in the four cases of `SendEntityMessageAction`, in order.
#[test]
fn entity_messages_use_their_own_cases() {
    let mut numbers = Vec::new();
    for strategy in strategies::action_kinds() {
        let Some(ActionKind::SendEntityMessage(message)) = draws(&strategy, 1).pop() else {
            continue;
        };
        let wire = pb::SendEntityMessageAction::from(message);
        numbers.push(first_field_number(&wire.encode_to_vec()));
    }
    assert_eq!(numbers, [1, 2, 3, 4]);
}

/// An absent payload and an empty one encode differently and each comes back as itself.
#[test]
fn absent_and_empty_payloads_stay_apart() {
    let raised = |input: Option<&str>| {
        let kind = EventKind::EventRaised(EventRaised {
            name: "approve".into(),
            input: input.map(str::to_owned),
        });
        HistoryEvent::new(Timestamp::new(10, 0), kind)
    };
    let (absent, empty) = (raised(None), raised(Some("")));

    let absent_bytes = pb::HistoryEvent::try_from(absent.clone())
        .expect("ok")
        .encode_to_vec();
    let empty_bytes = pb::HistoryEvent::try_from(empty.clone())
        .expect("ok")
        .encode_to_vec();
    assert_ne!(absent_bytes, empty_bytes);

    assert_eq!(through_wire::<_, pb::HistoryEvent>(absent.clone()), absent);
    assert_eq!(through_wire::<_, pb::HistoryEvent>(empty.clone()), empty);
}

/// The one lossy kind: a `historyState` keeps its kind but not the snapshot inside it, which
/// the model has no place for (netherite never writes one; workers skip it).
#[test]
fn a_history_state_keeps_its_kind_but_not_its_snapshot() {
    let snapshot = pb::OrchestrationState {
        instance_id: "old".into(),
        ..Default::default()
    };
    let wire = pb::HistoryEvent {
        event_id: -1,
        timestamp: Some(timestamp_to_wire(Timestamp::new(3, 0))),
        event_type: Some(EventType::HistoryState(pb::HistoryStateEvent {
            orchestration_state: Some(snapshot),
        })),
    };
    let event = HistoryEvent::try_from(wire).expect("a historyState converts");
    assert_eq!(event.kind, EventKind::HistoryState);

    let back = pb::HistoryEvent::try_from(event).expect("converts");
    let empty = EventType::HistoryState(pb::HistoryStateEvent::default());
    assert_eq!(back.event_type, Some(empty));
}

/// Seconds and nanoseconds cross exactly, before the epoch and at the last nanosecond too;
/// a hand-built timestamp with nanoseconds past a second is carried, not rejected.
#[test]
fn timestamps_cross_exactly() {
    for (secs, nanos) in [(-5, 999_999_999), (0, 0), (1_700_000_000, 1), (i64::MAX, 7)] {
        let t = Timestamp { secs, nanos };
        let wire = timestamp_to_wire(t);
        assert_eq!((wire.seconds, wire.nanos), (secs, nanos as i32));
        assert_eq!(timestamp_from_wire(wire, "t"), Ok(t));
    }

    let carried = timestamp_to_wire(Timestamp {
        secs: 1,
        nanos: 1_500_000_000,
    });
    assert_eq!((carried.seconds, carried.nanos), (2, 500_000_000));
}

/// All eight statuses map to the same number on the wire and back.
#[test]
fn statuses_keep_their_numbers() {
    for status in OrchestrationStatus::ALL {
        let number = status_to_wire(status);
        assert_eq!(number, status.as_i32());
        assert_eq!(status_from_wire(number, "s"), Ok(status));
    }
}

/// Failure property values written as JSON text come back as the same text; integers stay
/// integers, and a negative zero keeps its sign.
#[test]
fn property_text_is_kept_in_its_usual_form() {
    for text in [
        "5",
        "-12",
        "1.5",
        "-0.0",
        "null",
        "true",
        r#"{"a":[1,"x",null]}"#,
        r#""s""#,
    ] {
        let value = json_text_to_value(text).expect("JSON text");
        assert_eq!(value_to_json_text(value).as_deref(), Ok(text));
    }
}

/// A failure chain keeps every level, with its properties, across the wire.
#[test]
fn failure_chains_keep_every_level() {
    let mut root = FailureDetails::new("Timeout", "no answer");
    root.properties.insert("retries".into(), "3".into());
    let failure = FailureDetails::new("TaskFailed", "activity failed")
        .caused_by(FailureDetails::new("IOError", "disk").caused_by(root));
    assert_eq!(
        through_wire::<_, pb::TaskFailureDetails>(failure.clone()),
        failure
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any history event comes back from the wire unchanged.
    #[test]
    fn any_event_round_trips(event in strategies::event()) {
        prop_assert_eq!(through_wire::<_, pb::HistoryEvent>(event.clone()), event);
    }

    /// Any action comes back from the wire unchanged.
    #[test]
    fn any_action_round_trips(action in strategies::action()) {
        prop_assert_eq!(through_wire::<_, pb::OrchestratorAction>(action.clone()), action);
    }

    /// Any JSON-shaped wire value survives the trip through JSON text exactly.
    #[test]
    fn wire_values_survive_json_text(value in strategies::json_value()) {
        let text = value_to_json_text(value.clone()).expect("finite values are JSON");
        prop_assert_eq!(json_text_to_value(&text), Ok(value));
    }

    /// Whatever bytes arrive (here, valid encodings with a few bytes spoiled), converting what
    /// they decode to never panics, and what converts is stable from then on.
    #[test]
    fn spoiled_bytes_convert_or_fail_cleanly(
        event in strategies::event(),
        action in strategies::action(),
        spoils in vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let spoil = |mut bytes: Vec<u8>| {
            for &(at, with) in &spoils {
                let len = bytes.len().max(1);
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte ^= with;
                }
            }
            bytes
        };
        let wire = pb::HistoryEvent::try_from(event).expect("model events convert");
        if let Ok(wire) = pb::HistoryEvent::decode(spoil(wire.encode_to_vec()).as_slice())
            && let Ok(event) = HistoryEvent::try_from(wire)
        {
            prop_assert_eq!(through_wire::<_, pb::HistoryEvent>(event.clone()), event);
        }
        let wire = pb::OrchestratorAction::try_from(action).expect("model actions convert");
        if let Ok(wire) = pb::OrchestratorAction::decode(spoil(wire.encode_to_vec()).as_slice())
            && let Ok(action) = OrchestratorAction::try_from(wire)
        {
            prop_assert_eq!(through_wire::<_, pb::OrchestratorAction>(action.clone()), action);
        }
    }
}
