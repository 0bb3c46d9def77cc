//! Bad input, fed on purpose: damaged log records, and hostile but well-typed update events.
//!
//! The rules under test: a logged record that cannot be used is a typed error naming where it
//! starts, never a panic; an update event the state machine cannot use is dropped, answered
//! with a typed rejection or turned into a failed orchestration, and the partition goes on.

use netherite_core::codec::{self, HEADER_LEN, Record, RecordReader};
use netherite_core::episode::INVALID_ACTION;
use netherite_core::ids::{ClientId, CommitPosition, ExecutionId, InputPosition, InstanceId};
use netherite_core::ids::{PartitionId, RequestSeq};
use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage,
    EntityOperationSignaled, EventKind, EventRaised, ExecutionStarted, FailureDetails,
    HistoryEvent, OrchestrationStatus, OrchestratorAction, ScheduleTask, SendEvent, TaskMessage,
};
use netherite_core::partition::testing::{Driver, answers, episodes};
use netherite_core::partition::{
    ActivityCompleted, ActivityId, ClientRequest, ClientRequestEvent, ClientResponse,
    CreateInstance, Effect, EpisodeCompleted, Limits, PartitionConfig, PartitionState, Rejection,
    SendMessages, SignalEntity, StartEpisode, UpdateEvent, UpdateKind, WaitFor, WaitUntil,
};
use netherite_core::{Error, Timestamp};
use proptest::prelude::*;

// --- the codec: damaged records ---------------------------------------------------------------

const LOG: &str = "p00/commit-log";

/// A logged event as the engine writes it: a client's create.
fn logged(id: &str) -> UpdateEvent {
    let request = ClientRequestEvent {
        input: InputPosition(1),
        client: ClientId(7),
        seq: RequestSeq(1),
        request: ClientRequest::Create(CreateInstance::new(InstanceId::new(id), "Order")),
    };
    UpdateEvent {
        now: Timestamp::new(1_700_000_000, 0),
        seed: 42,
        kind: UpdateKind::ClientRequest(request),
    }
}

/// Two records back to back, and where the second starts.
fn two_records() -> (Vec<u8>, usize) {
    let mut bytes = codec::encode(&logged("first")).expect("encodes");
    let second = bytes.len();
    codec::encode_into(&logged("second"), &mut bytes).expect("encodes");
    (bytes, second)
}

/// A frame around `body` with checksums that pass, as another program could write it.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let head_crc = crc32c::crc32c(&head[0..8]);
    head[8..12].copy_from_slice(&head_crc.to_le_bytes());
    [&head[..], body].concat()
}

/// Reads `bytes` (placed at `base` of the log): the records before the first error, and it.
fn read_all(bytes: &[u8], base: u64) -> (Vec<UpdateEvent>, Option<Error>) {
    let mut reader = RecordReader::<UpdateEvent>::new(bytes, LOG, base);
    let mut good = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some((_, event))) => good.push(event),
            Ok(None) => return (good, None),
            Err(error) => return (good, Some(error)),
        }
    }
}

/// The offset an error names, for the errors a damaged record may cause.
fn offset_named(error: &Error) -> Option<u64> {
    match error {
        Error::ChecksumMismatch { offset, .. }
        | Error::UnknownEventKind { offset, .. }
        | Error::UnsupportedVersion { offset, .. }
        | Error::Malformed { offset, .. }
        | Error::Truncated { offset, .. } => Some(*offset),
        _ => None,
    }
}

/// A record of a kind written by a newer program is an unknown kind, at its own offset, after
/// the records before it were read.
#[test]
fn unknown_kind_names_its_offset() {
    let mut bytes = codec::encode(&logged("first")).expect("encodes");
    let value = postcard::to_stdvec(&logged("second")).expect("serializes");
    let future_kind = 99u8;
    assert!(!UpdateEvent::is_known_kind(u32::from(future_kind)));
    bytes.extend(frame(
        &[&[codec::FORMAT_VERSION, future_kind][..], &value].concat(),
    ));
    let second = codec::encode(&logged("first")).expect("encodes").len() as u64;

    let (good, error) = read_all(&bytes, 4096);

    assert_eq!(good, [logged("first")]);
    let error = error.expect("the second record is refused");
    let unknown = matches!(
        &error,
        Error::UnknownEventKind { kind: 99, offset, .. } if *offset == 4096 + second
    );
    assert!(unknown, "{error}");
    assert!(error.to_string().contains(LOG), "{error}");
}

/// Any byte of a record flipped is a checksum mismatch at that record, header or body alike.
#[test]
fn flipped_byte_is_a_checksum_mismatch_at_its_record() {
    let (bytes, second) = two_records();
    for at in second..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;

        let (good, error) = read_all(&damaged, 0);

        assert_eq!(good, [logged("first")], "byte {at}");
        let mismatch = matches!(
            error,
            Some(Error::ChecksumMismatch { offset, .. }) if offset == second as u64
        );
        assert!(mismatch, "byte {at}: {error:?}");
    }
}

/// A log cut anywhere inside its last record reads up to it, then reports a truncation (not
/// corruption) at the cut record's offset.
#[test]
fn truncated_tail_is_a_truncation_at_the_last_record() {
    let (bytes, second) = two_records();
    for end in second + 1..bytes.len() {
        let (good, error) = read_all(&bytes[..end], 0);

        assert_eq!(good, [logged("first")], "cut at {end}");
        let truncated = matches!(
            error,
            Some(Error::Truncated { offset, available, .. })
                if offset == second as u64 && available == (end - second) as u64
        );
        assert!(truncated, "cut at {end}: {error:?}");
    }
}

/// A header whose checksum passes but whose length is past `record_bytes_max` is malformed:
/// the reader allocates nothing for it and says which limit it broke.
#[test]
fn oversized_length_is_malformed_not_an_allocation() {
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let head_crc = crc32c::crc32c(&head[0..8]);
    head[8..12].copy_from_slice(&head_crc.to_le_bytes());

    for error in [
        codec::frame_len(&head, LOG, 512).expect_err("refused"),
        codec::decode::<UpdateEvent>(&head, LOG, 512).expect_err("refused"),
    ] {
        let malformed = matches!(
            &error,
            Error::Malformed { offset: 512, reason, .. } if reason.contains("record_bytes_max")
        );
        assert!(malformed, "{error}");
    }
}

/// An `ActivityCompleted` record whose failure is a chain of `levels` empty failures, with
/// checksums that pass.
fn record_with_failure_chain(levels: usize) -> Vec<u8> {
    let completed = ActivityCompleted {
        activity: ActivityId(1),
        result: Err(FailureDetails::default()),
    };
    let event = UpdateEvent {
        now: Timestamp::EPOCH,
        seed: 1,
        kind: UpdateKind::ActivityCompleted(completed),
    };
    let mut value = postcard::to_stdvec(&event).expect("serializes");
    // The default failure is the last six bytes: type, message, stack trace, inner failure,
    // non-retriable, properties. Put the chain there.
    value.truncate(value.len() - 6);
    value.extend([0, 0, 0, 1].repeat(levels - 1));
    value.extend([0, 0, 0, 0]);
    value.extend([0, 0].repeat(levels));
    let kind = event.kind() as u8;
    frame(&[&[codec::FORMAT_VERSION, kind][..], &value].concat())
}

/// A record whose failure chain is nested far too deep (checksums intact, as a buggy writer
/// could leave it) is malformed at its offset; decoding it does not exhaust the stack.
#[test]
fn failure_chain_too_deep_is_malformed_not_a_stack_overflow() {
    let (shallow, _) = codec::decode::<UpdateEvent>(&record_with_failure_chain(3), LOG, 64)
        .expect("the same shape, three levels deep, decodes");
    let UpdateKind::ActivityCompleted(completed) = shallow.kind else {
        panic!("an activity completion");
    };
    assert_eq!(completed.result.map_err(|f| f.depth()), Err(3));

    let deep = codec::decode::<UpdateEvent>(&record_with_failure_chain(100_000), LOG, 64);
    let error = deep.expect_err("refused");
    assert!(
        matches!(error, Error::Malformed { offset: 64, .. }),
        "{error}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Garbage is never a panic: every error is a record error naming an offset inside the
    /// buffer, and reading stops at it.
    #[test]
    fn garbage_bytes_are_typed_errors(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (_, error) = read_all(&bytes, 100);
        if let Some(error) = error {
            let inside = 100..100 + bytes.len() as u64;
            let offset = offset_named(&error);
            prop_assert!(offset.is_some_and(|o| inside.contains(&o)), "{}", error);
        }
    }

    /// A body of garbage behind checksums that pass (another program's record) decodes or is
    /// refused with a typed error; it never panics.
    #[test]
    fn garbage_bodies_behind_good_checksums_are_typed_errors(
        kind in 0u8..12,
        value in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let record = frame(&[&[codec::FORMAT_VERSION, kind][..], &value].concat());
        match codec::decode::<UpdateEvent>(&record, LOG, 0) {
            Ok((event, used)) => {
                prop_assert_eq!(used, record.len());
                prop_assert_eq!(event.kind(), u32::from(kind));
            }
            Err(error) => prop_assert_eq!(offset_named(&error), Some(0), "{}", error),
        }
    }
}

// --- the state machine: hostile events ---------------------------------------------------------

const CLIENT: ClientId = ClientId(3);

fn create(id: &str) -> ClientRequest {
    ClientRequest::Create(CreateInstance::new(InstanceId::new(id), "Hostile"))
}

/// The only answer to a client in `effects`.
fn answer(effects: &[Effect]) -> ClientResponse {
    let [answer] = answers(effects).try_into().expect("one answer");
    answer
}

/// Answers the episode `start` with `actions`, numbered as given.
fn run(driver: &mut Driver, start: &StartEpisode, actions: Vec<(i32, ActionKind)>) -> Vec<Effect> {
    let actions = actions
        .into_iter()
        .map(|(id, kind)| OrchestratorAction::new(id, kind))
        .collect();
    let done = EpisodeCompleted::answering(start, actions);
    driver.apply(UpdateKind::EpisodeCompleted(done))
}

/// Starts `id` and returns its first episode.
fn started(driver: &mut Driver, seq: u64, id: &str) -> StartEpisode {
    let effects = driver.request(CLIENT, seq, create(id));
    episodes(&effects).pop().expect("a first episode")
}

/// A message from partition `origin` (of the driver's task hub), stamped at `position`.
fn batch(origin: u32, position: u64, sub: u32, messages: Vec<TaskMessage>) -> SendMessages {
    SendMessages {
        after: CommitPosition(position),
        destination: PartitionId(0),
        origin: PartitionId(origin),
        origin_position: CommitPosition(position),
        sub_position: sub,
        messages,
    }
}

fn raised(target: &str) -> TaskMessage {
    let event = EventRaised {
        name: "poke".into(),
        input: None,
    };
    let event = HistoryEvent::new(Timestamp::EPOCH, EventKind::EventRaised(event));
    TaskMessage::to_instance(InstanceId::new(target), event)
}

fn ends_with(status: OrchestrationStatus) -> ActionKind {
    ActionKind::CompleteOrchestration(CompleteOrchestration::new(status, None))
}

/// Positions and stamps at the very end of their ranges are ordinary: the event applies, and
/// the partition then refuses everything at or below them, as it must.
#[test]
fn positions_at_the_end_of_their_range_apply_once() {
    // Phase 1: the last commit position, and the last input position.
    let config = PartitionConfig {
        partition: PartitionId(0),
        partition_count: 2,
        limits: Limits::default(),
    };
    let mut state = PartitionState::new(config).expect("valid");
    let mut event = logged("last!0");
    if let UpdateKind::ClientRequest(request) = &mut event.kind {
        request.input = InputPosition(u64::MAX);
    }
    let effects = state.apply(CommitPosition(u64::MAX), &event);
    assert!(matches!(answer(&effects), ClientResponse::Created { .. }));
    assert_eq!(state.input_position(), InputPosition(u64::MAX));
    assert!(state.apply(CommitPosition(u64::MAX), &event).is_empty());

    // Phase 2: the last stamp of an origin; anything below it is a duplicate.
    let mut driver = Driver::new(0, 2, 1);
    driver.request(CLIENT, 1, create("a!0"));
    let last = batch(1, u64::MAX, u32::MAX, vec![raised("a!0")]);
    assert_eq!(
        episodes(&driver.receive(&last)).len(),
        0,
        "the first episode is in flight"
    );
    let before = driver.state.clone();
    assert!(
        driver
            .receive(&batch(1, 7, 0, vec![raised("a!0")]))
            .is_empty()
    );
    assert!(driver.state.eq_except_progress(&before));
}

/// Action ids at the ends of `i32`: a negative id on an action that is confirmed fails the
/// execution by name; `i32::MAX` is an ordinary id; a completion may carry any id.
#[test]
fn extreme_action_ids_are_checked_not_trusted() {
    let mut driver = Driver::new(0, 1, 1);

    let first = started(&mut driver, 1, "negative");
    let task = ActionKind::ScheduleTask(ScheduleTask::new("Work"));
    run(&mut driver, &first, vec![(i32::MIN, task)]);
    let view = driver.view("negative").expect("exists");
    assert_eq!(view.status, OrchestrationStatus::Failed);
    let failure = view.failure.expect("a failure");
    assert_eq!(failure.error_type, INVALID_ACTION);
    assert!(
        failure.error_message.contains("negative action id"),
        "{failure:?}"
    );

    let first = started(&mut driver, 2, "extremes");
    let timer = ActionKind::CreateTimer {
        fire_at: Timestamp::new(5_000, 0),
    };
    let end = ends_with(OrchestrationStatus::Completed);
    run(
        &mut driver,
        &first,
        vec![(i32::MAX, timer), (i32::MIN, end)],
    );
    let history = driver.history("extremes").expect("exists");
    let ids: Vec<i32> = history.iter().rev().take(2).map(|e| e.event_id).collect();
    assert_eq!(ids, [i32::MIN, i32::MAX]);
    assert_eq!(
        driver.status("extremes"),
        Some(OrchestrationStatus::Completed)
    );
}

/// Entity ids without the `@name@key` form: a client's signal is rejected, an orchestration's
/// fails it, and a message from another partition is dropped without creating anything.
#[test]
fn entity_ids_without_their_form_are_refused() {
    let mut driver = Driver::new(0, 1, 1);
    for (seq, entity) in [(1, "counter"), (2, "@"), (3, "@@key")] {
        let signal = SignalEntity {
            entity: InstanceId::new(entity),
            operation: "add".into(),
            input: None,
            request_id: format!("r{seq}"),
            scheduled_time: None,
        };
        let effects = driver.request(CLIENT, seq, ClientRequest::SignalEntity(signal));
        let response = answer(&effects);
        assert!(
            matches!(
                response,
                ClientResponse::Rejected(Rejection::InvalidArgument { .. })
            ),
            "{entity}: {response:?}"
        );
    }

    let first = started(&mut driver, 4, "caller");
    let signal = EntityOperationSignaled {
        request_id: "r".into(),
        operation: "add".into(),
        scheduled_time: None,
        input: None,
        target_instance_id: Some(InstanceId::new("counter")),
    };
    let to_nowhere = ActionKind::SendEntityMessage(EntityMessage::Signal(signal.clone()));
    run(&mut driver, &first, vec![(0, to_nowhere)]);
    assert_eq!(driver.status("caller"), Some(OrchestrationStatus::Failed));

    let event = HistoryEvent::new(Timestamp::EPOCH, EventKind::EntityOperationSignaled(signal));
    let malformed = TaskMessage::to_instance(InstanceId::new("@"), event);
    driver.receive(&batch(0, 1, 0, vec![malformed]));
    assert_eq!(driver.state.stats().entities, 0);
}

/// Empty instance ids: a create is an invalid argument, the other requests find nothing, a
/// message to one is dropped, and an event sent to one fails the sender.
#[test]
fn empty_instance_ids_are_refused_or_find_nothing() {
    let mut driver = Driver::new(0, 1, 1);
    let empty = InstanceId::new("");
    let response = answer(&driver.request(CLIENT, 1, create("")));
    assert!(matches!(
        response,
        ClientResponse::Rejected(Rejection::InvalidArgument { .. })
    ));

    let requests = [
        ClientRequest::RaiseEvent {
            instance: empty.clone(),
            name: "x".into(),
            input: None,
        },
        ClientRequest::Terminate {
            instance: empty.clone(),
            reason: None,
            recurse: true,
        },
        ClientRequest::WaitFor(WaitFor {
            instance: empty.clone(),
            until: WaitUntil::Completion,
            deadline: None,
            payloads: false,
        }),
    ];
    for (seq, request) in (2..).zip(requests) {
        let response = answer(&driver.request(CLIENT, seq, request));
        assert!(
            matches!(
                response,
                ClientResponse::Rejected(Rejection::NotFound { .. })
            ),
            "{response:?}"
        );
    }
    driver.receive(&batch(0, 1, 0, vec![raised("")]));
    assert_eq!(driver.state.stats().instances_by_status, Vec::new());

    let first = started(&mut driver, 9, "sender");
    let send = ActionKind::SendEvent(SendEvent {
        instance_id: empty,
        execution_id: None,
        name: "x".into(),
        data: None,
    });
    run(&mut driver, &first, vec![(0, send)]);
    assert_eq!(driver.status("sender"), Some(OrchestrationStatus::Failed));
}

/// A timer at the end of time is armed and, once the clock gets there, fires with exactly its
/// `fire_at`; a clock with out-of-range nanoseconds changes nothing of that.
#[test]
fn timer_at_the_end_of_time_fires_there() {
    let mut driver = Driver::new(0, 1, 1);
    let first = started(&mut driver, 1, "patient");
    let timer = ActionKind::CreateTimer {
        fire_at: Timestamp::MAX,
    };
    let effects = run(&mut driver, &first, vec![(0, timer)]);
    assert!(effects.contains(&Effect::ArmTimer {
        due: Timestamp::MAX
    }));

    driver.now = Timestamp {
        secs: i64::MAX - 1,
        nanos: u32::MAX,
    };
    assert!(episodes(&driver.apply(UpdateKind::TimersFired)).is_empty());
    driver.now = Timestamp::MAX;
    let fired = episodes(&driver.apply(UpdateKind::TimersFired));
    let [episode] = fired.as_slice() else {
        panic!("one episode, got {fired:?}");
    };
    let fired_at = episode.new_events.iter().find_map(|e| match &e.kind {
        EventKind::TimerFired(fired) => Some(fired.fire_at),
        _ => None,
    });
    assert_eq!(fired_at, Some(Timestamp::MAX));
}

/// An orchestration that continues as new forever, carrying an event each time, keeps one
/// instance with a short history: nothing of the old executions piles up.
#[test]
fn continue_as_new_loop_does_not_pile_up() {
    let mut driver = Driver::new(0, 1, 1);
    let mut episode = started(&mut driver, 1, "loop");
    let mut executions = std::collections::BTreeSet::new();
    let carried = raised("loop").event;

    for round in 0..300 {
        assert!(
            executions.insert(episode.execution.clone()),
            "round {round}"
        );
        let again = CompleteOrchestration {
            carryover_events: vec![carried.clone()],
            ..CompleteOrchestration::new(
                OrchestrationStatus::ContinuedAsNew,
                Some(round.to_string()),
            )
        };
        let effects = run(
            &mut driver,
            &episode,
            vec![(0, ActionKind::CompleteOrchestration(again))],
        );
        episode = episodes(&effects)
            .pop()
            .expect("the next execution's episode");
        assert!(episode.past_events.is_empty());
        assert_eq!(episode.new_events.len(), 3, "started, carried event");
    }

    let stats = driver.state.stats();
    assert_eq!(
        stats.instances_by_status,
        [(OrchestrationStatus::Running, 1)]
    );
    assert_eq!(
        (
            stats.timers_pending,
            stats.activities_pending,
            stats.outbox_batches
        ),
        (0, 0, 0)
    );
    assert_eq!(
        driver.view("loop").map(|v| v.execution_id),
        Some(episode.execution)
    );
}

/// Answers every episode the way an SDK does: a termination ends the orchestration as
/// terminated; anything else runs no action. Returns how many episodes ran.
fn drain_terminations(driver: &mut Driver, mut pending: Vec<StartEpisode>) -> usize {
    let mut ran = 0;
    while let Some(start) = pending.pop() {
        ran += 1;
        let terminated = start
            .new_events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExecutionTerminated(_)));
        let actions = match terminated {
            true => vec![(-1, ends_with(OrchestrationStatus::Terminated))],
            false => Vec::new(),
        };
        pending.extend(episodes(&run(driver, &start, actions)));
    }
    ran
}

/// A recursive terminate of the root of a chain of 100 sub-orchestrations reaches the last
/// one: every instance of the chain ends terminated.
#[test]
fn recursive_terminate_reaches_a_hundred_deep_chain() {
    const DEPTH: usize = 100;
    let mut driver = Driver::new(0, 1, 1);
    let name = |level: usize| format!("level-{level}");

    // Phase 1: each level starts the next as its child.
    let mut episode = started(&mut driver, 1, &name(0));
    for level in 1..=DEPTH {
        let child = CreateSubOrchestration::new(InstanceId::new(name(level)), "Chain");
        let effects = run(
            &mut driver,
            &episode,
            vec![(0, ActionKind::CreateSubOrchestration(child))],
        );
        episode = episodes(&effects).pop().expect("the child's first episode");
    }
    let effects = run(&mut driver, &episode, Vec::new());
    assert!(episodes(&effects).is_empty());
    assert_eq!(
        driver.state.stats().instances_by_status,
        [(OrchestrationStatus::Running, 101)]
    );

    // Phase 2: terminate the root, recursively.
    let terminate = ClientRequest::Terminate {
        instance: InstanceId::new(name(0)),
        reason: Some("\"enough\"".into()),
        recurse: true,
    };
    let effects = driver.request(CLIENT, 2, terminate);
    let ran = drain_terminations(&mut driver, episodes(&effects));

    assert_eq!(ran, DEPTH + 1);
    for level in 0..=DEPTH {
        let view = driver.view(&name(level)).expect("exists");
        assert_eq!(
            view.status,
            OrchestrationStatus::Terminated,
            "level {level}"
        );
    }
}

/// A configuration that breaks a rule is refused where it enters, by `PartitionState::new`
/// with the rule named, and when a stored one is loaded: a checkpoint cannot smuggle in zero
/// partitions, a zero limit or a page larger than the index serves.
#[test]
fn broken_configuration_is_refused_where_it_enters() {
    let good = PartitionConfig {
        partition: PartitionId(0),
        partition_count: 1,
        limits: Limits::default(),
    };
    let with_limits = |limits| PartitionConfig {
        limits,
        ..good.clone()
    };
    let broken = [
        (
            PartitionConfig {
                partition_count: 0,
                ..good.clone()
            },
            "partition count 0",
        ),
        (
            with_limits(Limits {
                waiters_max: 0,
                ..Limits::default()
            }),
            "waiters_max",
        ),
        (
            with_limits(Limits {
                query_page_max: 1_001,
                ..Limits::default()
            }),
            "query_page_max",
        ),
    ];
    let load = |config: &PartitionConfig| {
        let stored = postcard::to_stdvec(config).expect("serializes");
        postcard::from_bytes::<PartitionConfig>(&stored)
    };

    assert_eq!(load(&good).ok(), Some(good.clone()));
    for (config, rule) in broken {
        let error = PartitionState::new(config.clone()).expect_err("refused");
        let named =
            matches!(&error, Error::InvalidArgument { reason, .. } if reason.contains(rule));
        assert!(named, "{error}");
        assert!(load(&config).is_err(), "{rule}");
    }
}

/// A batch stamped by a partition outside the task hub is dropped: it neither creates an
/// instance nor grows the dedup records.
#[test]
fn batch_from_outside_the_task_hub_is_dropped() {
    let mut driver = Driver::new(0, 2, 1);
    let started = ExecutionStarted {
        name: "Stray".into(),
        version: None,
        input: None,
        instance_id: InstanceId::new("stray!0"),
        execution_id: ExecutionId::new("e"),
        parent: None,
        scheduled_start: None,
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: Default::default(),
    };
    let event = HistoryEvent::new(Timestamp::EPOCH, EventKind::ExecutionStarted(started));
    let stray = TaskMessage::to_instance(InstanceId::new("stray!0"), event);
    let before = driver.state.clone();

    assert!(driver.receive(&batch(7, 1, 0, vec![stray])).is_empty());
    assert!(driver.state.eq_except_progress(&before));
}
