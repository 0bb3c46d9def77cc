//! The partition state machine's main flows, each checked against the exact effects it emits.

use std::collections::BTreeMap;

use netherite_core::entity::LockHolder;
use netherite_core::ids::{ClientId, CommitPosition, ExecutionId, InputPosition, InstanceId};
use netherite_core::ids::{PartitionId, RequestSeq};
use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityLockRequested, EventKind,
    EventRaised, ExecutionStarted, HistoryEvent, OrchestrationStatus, OrchestratorAction,
    ParentInstance, ScheduleTask, SendEvent, TaskCompleted, TaskMessage, TaskScheduled, TimerFired,
};
use netherite_core::partition::{
    ActivityCompleted, ActivityId, ClientRequest, ClientRequestEvent, ClientResponse,
    CreateInstance, Effect, EntityQuery, EpisodeCompleted, EpisodeNumber, Limits,
    LocalClientRequest, PartitionConfig, PartitionMessages, PartitionState, ReadEvent, ReadResult,
    Rejection, RespondToClient, SendMessages, StartActivity, StartEpisode, UpdateEvent, UpdateKind,
    WaitFor, WaitUntil,
};
use netherite_core::time::Timestamp;

/// One partition with its log and input positions, its clock and its seeds, advanced by hand.
struct Node {
    state: PartitionState,
    at: u64,
    input: u64,
    now: Timestamp,
    seed: u128,
}

impl Node {
    fn new(partition: u32, partition_count: u32) -> Node {
        let config = PartitionConfig {
            partition: PartitionId(partition),
            partition_count,
            limits: Limits::default(),
        };
        Node {
            state: PartitionState::new(config).expect("valid config"),
            at: 0,
            input: 0,
            now: t(100),
            seed: 1,
        }
    }

    /// Logs `kind` at the next position and applies it.
    fn apply(&mut self, kind: UpdateKind) -> Vec<Effect> {
        self.at += 1;
        self.seed += 1;
        let event = UpdateEvent {
            now: self.now,
            seed: self.seed,
            kind,
        };
        self.state.apply(CommitPosition(self.at), &event)
    }

    fn next_input(&mut self) -> InputPosition {
        self.input += 1;
        InputPosition(self.input)
    }

    fn request(&mut self, seq: u64, request: ClientRequest) -> Vec<Effect> {
        let event = ClientRequestEvent {
            input: self.next_input(),
            client: CLIENT,
            seq: RequestSeq(seq),
            request,
        };
        self.apply(UpdateKind::ClientRequest(event))
    }

    fn complete(&mut self, id: &str, episode: u64, actions: Vec<ActionKind>) -> Vec<Effect> {
        let actions = (0..).zip(actions);
        let actions = actions
            .map(|(id, kind)| OrchestratorAction::new(id, kind))
            .collect();
        self.complete_numbered(id, episode, actions)
    }

    fn complete_numbered(
        &mut self,
        id: &str,
        episode: u64,
        actions: Vec<OrchestratorAction>,
    ) -> Vec<Effect> {
        let done = EpisodeCompleted {
            instance: InstanceId::new(id),
            execution: execution(id),
            episode: EpisodeNumber(episode),
            actions,
            custom_status: None,
        };
        self.apply(UpdateKind::EpisodeCompleted(done))
    }

    fn position(&self) -> CommitPosition {
        CommitPosition(self.at)
    }

    fn status(&self, id: &str) -> Option<OrchestrationStatus> {
        let read = ReadEvent::GetInstance {
            instance: InstanceId::new(id),
            payloads: false,
        };
        match self.state.read(&read) {
            ReadResult::Instance(view) => view.map(|v| v.status),
            other => panic!("unexpected read result {other:?}"),
        }
    }
}

const CLIENT: ClientId = ClientId(42);

fn t(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

fn execution(id: &str) -> ExecutionId {
    ExecutionId::new(format!("{id}-e1"))
}

fn create(id: &str) -> ClientRequest {
    ClientRequest::Create(CreateInstance {
        input: Some("\"in\"".into()),
        execution: Some(execution(id)),
        ..CreateInstance::new(InstanceId::new(id), "Hello")
    })
}

fn started(id: &str, at: Timestamp) -> HistoryEvent {
    let started = ExecutionStarted {
        name: "Hello".into(),
        version: None,
        input: Some("\"in\"".into()),
        instance_id: InstanceId::new(id),
        execution_id: execution(id),
        parent: None,
        scheduled_start: None,
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: BTreeMap::new(),
    };
    HistoryEvent::new(at, EventKind::ExecutionStarted(started))
}

fn orchestrator_started(at: Timestamp) -> HistoryEvent {
    HistoryEvent::new(at, EventKind::OrchestratorStarted)
}

fn schedule(name: &str) -> ActionKind {
    ActionKind::ScheduleTask(ScheduleTask::new(name))
}

fn complete_with(output: &str) -> ActionKind {
    let complete = CompleteOrchestration::new(OrchestrationStatus::Completed, Some(output.into()));
    ActionKind::CompleteOrchestration(complete)
}

fn responses(effects: &[Effect]) -> Vec<&RespondToClient> {
    let answers = effects.iter().filter_map(|e| match e {
        Effect::RespondToClient(r) => Some(r),
        _ => None,
    });
    answers.collect()
}

/// A client's create is answered after its position and starts the first episode at once,
/// with `OrchestratorStarted` and then `ExecutionStarted`.
#[test]
fn create_answers_and_starts_first_episode() {
    let mut node = Node::new(0, 1);

    let effects = node.request(1, create("a"));

    let answer = RespondToClient {
        after: CommitPosition(1),
        client: CLIENT,
        seq: RequestSeq(1),
        response: ClientResponse::Created {
            instance: InstanceId::new("a"),
            execution: execution("a"),
        },
    };
    let episode = StartEpisode {
        instance: InstanceId::new("a"),
        execution: execution("a"),
        episode: EpisodeNumber(0),
        past_events: Vec::new(),
        new_events: vec![orchestrator_started(t(100)), started("a", t(100))],
    };
    assert_eq!(
        effects,
        vec![
            Effect::RespondToClient(answer),
            Effect::StartEpisode(episode)
        ]
    );
    assert_eq!(node.status("a"), Some(OrchestrationStatus::Pending));
}

/// An episode that schedules an activity starts it, and the activity's result becomes the
/// next episode's `TaskCompleted`, with the committed history as past events.
#[test]
fn activity_round_trip_drives_the_next_episode() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));

    // Phase 1: the first episode schedules "Greet".
    node.now = t(101);
    let effects = node.complete("a", 0, vec![schedule("Greet")]);
    let activity = StartActivity {
        activity: ActivityId(1),
        instance: InstanceId::new("a"),
        execution: execution("a"),
        task_id: 0,
        name: "Greet".into(),
        version: None,
        input: None,
        tags: BTreeMap::new(),
        parent_trace_context: None,
    };
    assert_eq!(effects, vec![Effect::StartActivity(activity)]);
    assert_eq!(node.status("a"), Some(OrchestrationStatus::Running));

    // Phase 2: the activity returns.
    node.now = t(102);
    let done = ActivityCompleted {
        activity: ActivityId(1),
        result: Ok(Some("\"hi\"".into())),
    };
    let effects = node.apply(UpdateKind::ActivityCompleted(done));

    let scheduled = TaskScheduled {
        name: "Greet".into(),
        version: None,
        input: None,
        parent_trace_context: None,
        tags: BTreeMap::new(),
    };
    let past = vec![
        orchestrator_started(t(100)),
        started("a", t(100)),
        HistoryEvent::confirming(0, t(101), EventKind::TaskScheduled(scheduled)),
    ];
    let result = TaskCompleted {
        task_scheduled_id: 0,
        result: Some("\"hi\"".into()),
    };
    let episode = StartEpisode {
        instance: InstanceId::new("a"),
        execution: execution("a"),
        episode: EpisodeNumber(2),
        past_events: past,
        new_events: vec![
            orchestrator_started(t(102)),
            HistoryEvent::new(t(102), EventKind::TaskCompleted(result)),
        ],
    };
    assert_eq!(effects, vec![Effect::StartEpisode(episode)]);
}

/// A wait for completion is answered by the update that completes the instance, gated on
/// that update's position, with the output.
#[test]
fn completion_answers_waits_after_its_position() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    let wait = WaitFor {
        instance: InstanceId::new("a"),
        until: WaitUntil::Completion,
        deadline: None,
        payloads: true,
    };
    let effects = node.request(2, ClientRequest::WaitFor(wait));
    assert!(
        effects.is_empty(),
        "the wait is not answered yet: {effects:?}"
    );

    let effects = node.complete("a", 0, vec![complete_with("\"done\"")]);

    let answers = responses(&effects);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].after, node.position());
    assert_eq!(answers[0].seq, RequestSeq(2));
    let ClientResponse::Instance(view) = &answers[0].response else {
        panic!("expected the instance, got {:?}", answers[0].response);
    };
    assert_eq!(view.status, OrchestrationStatus::Completed);
    assert_eq!(view.output.as_deref(), Some("\"done\""));
    assert_eq!(view.completed, Some(t(100)));
}

/// A sub-orchestration on another partition leaves as one stamped batch; the receiver starts
/// it, and drops the same batch when it comes again.
#[test]
fn cross_partition_message_is_stamped_and_deduplicated() {
    let mut sender = Node::new(0, 2);
    sender.request(1, create("parent!0"));

    let sub = CreateSubOrchestration {
        instance_id: InstanceId::new("child!1"),
        name: "Child".into(),
        version: None,
        input: None,
        parent_trace_context: None,
        tags: BTreeMap::new(),
    };
    let effects = sender.complete("parent!0", 0, vec![ActionKind::CreateSubOrchestration(sub)]);

    // Phase 1: exactly one batch, stamped with the producing position.
    let [Effect::SendMessages(send)] = effects.as_slice() else {
        panic!("expected one SendMessages, got {effects:?}");
    };
    let position = sender.position();
    let expected_stamp = (position, PartitionId(1), PartitionId(0), position, 0);
    let stamp = (
        send.after,
        send.destination,
        send.origin,
        send.origin_position,
        send.sub_position,
    );
    assert_eq!(stamp, expected_stamp);
    let [message] = send.messages.as_slice() else {
        panic!("expected one message, got {:?}", send.messages);
    };
    assert_eq!(message.target, InstanceId::new("child!1"));
    let EventKind::ExecutionStarted(child) = &message.event.kind else {
        panic!("expected ExecutionStarted, got {:?}", message.event.kind);
    };
    let parent = child
        .parent
        .as_ref()
        .map(|p: &ParentInstance| p.instance_id.clone());
    assert_eq!(parent, Some(InstanceId::new("parent!0")));

    // Phase 2: the receiver starts the child, once.
    let mut receiver = Node::new(1, 2);
    let deliver = |receiver: &mut Node, send: &SendMessages| {
        let batch = PartitionMessages {
            input: receiver.next_input(),
            origin: send.origin,
            origin_position: send.origin_position,
            sub_position: send.sub_position,
            messages: send.messages.clone(),
        };
        receiver.apply(UpdateKind::PartitionMessages(batch))
    };
    let effects = deliver(&mut receiver, send);
    assert!(
        matches!(effects.as_slice(), [Effect::StartEpisode(e)] if e.instance.as_str() == "child!1")
    );
    let before = receiver.state.clone();

    let effects = deliver(&mut receiver, send);
    assert!(
        effects.is_empty(),
        "duplicate batch had effects: {effects:?}"
    );
    assert!(receiver.state.eq_except_progress(&before));
}

/// Messages between instances of one partition are delivered in place, in the same update.
#[test]
fn local_messages_never_leave_the_partition() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    node.request(2, create("b"));
    node.complete("b", 1, Vec::new());

    let send = SendEvent {
        instance_id: InstanceId::new("b"),
        execution_id: None,
        name: "ping".into(),
        data: None,
    };
    let effects = node.complete("a", 0, vec![ActionKind::SendEvent(send)]);

    let raised = EventRaised {
        name: "ping".into(),
        input: None,
    };
    let [Effect::StartEpisode(start)] = effects.as_slice() else {
        panic!("expected only b's episode, got {effects:?}");
    };
    assert_eq!(start.instance, InstanceId::new("b"));
    assert_eq!(
        start.new_events[1],
        HistoryEvent::new(t(100), EventKind::EventRaised(raised))
    );
}

/// A retried request gets the same answer, gated on the original position; a redelivered
/// input and a re-applied position change nothing.
#[test]
fn duplicate_requests_and_redeliveries_are_dropped() {
    let mut node = Node::new(0, 1);
    let first = node.request(1, create("a"));
    let snapshot = node.state.clone();

    // A retry of seq 1 at a new input position: the kept answer again, nothing else.
    let retry = node.request(1, create("a"));
    assert_eq!(responses(&retry), responses(&first)[..1].to_vec());
    assert_eq!(retry.len(), 1);
    assert!(node.state.eq_except_progress(&snapshot));

    // The same input position again: a redelivery.
    let again = ClientRequestEvent {
        input: InputPosition(node.input),
        client: CLIENT,
        seq: RequestSeq(2),
        request: create("b"),
    };
    assert!(node.apply(UpdateKind::ClientRequest(again)).is_empty());
    assert_eq!(node.status("b"), None);

    // The same commit position again: already applied.
    let replay = UpdateEvent {
        now: node.now,
        seed: 0,
        kind: UpdateKind::TimersFired,
    };
    let before = node.state.clone();
    assert!(node.state.apply(node.position(), &replay).is_empty());
    assert_eq!(node.state, before);
}

/// A client with several requests in flight may see them arrive out of order: each is
/// applied once, and a retry of either is still recognised.
#[test]
fn requests_of_one_client_arriving_out_of_order_each_apply() {
    let mut node = Node::new(0, 1);
    node.request(2, create("b"));
    let late = node.request(1, create("a"));

    assert_eq!(node.status("a"), Some(OrchestrationStatus::Pending));
    assert_eq!(node.status("b"), Some(OrchestrationStatus::Pending));
    let snapshot = node.state.clone();
    let retry = node.request(1, create("a"));
    assert_eq!(retry, late[..1].to_vec(), "the kept answer, nothing else");
    assert_eq!(node.request(2, create("b")).len(), 1);
    assert!(node.state.eq_except_progress(&snapshot));
}

/// A second create of a running instance is rejected; a terminal one is replaced only when
/// its status is listed as replaceable.
#[test]
fn reuse_policy_rejects_running_and_replaces_listed_terminal() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));

    let effects = node.request(2, create("a"));
    let rejected = ClientResponse::Rejected(Rejection::AlreadyExists {
        instance: InstanceId::new("a"),
        status: OrchestrationStatus::Pending,
    });
    assert_eq!(responses(&effects)[0].response, rejected);

    node.complete("a", 0, vec![complete_with("1")]);
    let effects = node.request(3, create("a"));
    assert!(matches!(
        responses(&effects)[0].response,
        ClientResponse::Rejected(Rejection::AlreadyExists { .. })
    ));

    let ClientRequest::Create(mut again) = create("a") else {
        unreachable!("create builds a Create request")
    };
    again.replaceable = vec![OrchestrationStatus::Completed];
    let effects = node.request(4, ClientRequest::Create(again));
    assert!(matches!(
        responses(&effects)[0].response,
        ClientResponse::Created { .. }
    ));
    assert_eq!(node.status("a"), Some(OrchestrationStatus::Pending));
}

/// A durable timer arms the engine's timer; firing it delivers `TimerFired` with the exact
/// `fire_at` it was created with.
#[test]
fn timer_is_armed_and_delivered_when_due() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    let fire_at = Timestamp::new(160, 500);

    let effects = node.complete("a", 0, vec![ActionKind::CreateTimer { fire_at }]);
    assert_eq!(effects, vec![Effect::ArmTimer { due: fire_at }]);

    node.now = t(150);
    assert!(
        node.apply(UpdateKind::TimersFired).is_empty(),
        "not due yet"
    );

    node.now = t(161);
    let effects = node.apply(UpdateKind::TimersFired);
    let fired = TimerFired {
        fire_at,
        timer_id: 0,
    };
    let [Effect::StartEpisode(start)] = effects.as_slice() else {
        panic!("expected one episode, got {effects:?}");
    };
    assert_eq!(
        start.new_events[1],
        HistoryEvent::new(fire_at, EventKind::TimerFired(fired))
    );
}

/// A message for a missing instance, and one for another execution, are dropped.
#[test]
fn messages_for_missing_instances_or_other_executions_are_dropped() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    node.complete("a", 0, Vec::new());

    let raised = |target: &str, execution: Option<ExecutionId>| TaskMessage {
        target: InstanceId::new(target),
        target_execution: execution,
        event: HistoryEvent::new(
            t(100),
            EventKind::EventRaised(EventRaised {
                name: "x".into(),
                input: None,
            }),
        ),
    };
    let batch = PartitionMessages {
        input: node.next_input(),
        origin: PartitionId(0),
        origin_position: CommitPosition(7),
        sub_position: 0,
        messages: vec![
            raised("missing", None),
            raised("a", Some(ExecutionId::new("old"))),
        ],
    };
    let effects = node.apply(UpdateKind::PartitionMessages(batch));
    assert!(
        effects.is_empty(),
        "dropped messages had effects: {effects:?}"
    );
}

/// A sub-orchestration whose id is taken is not created; its parent hears that it failed
/// instead of waiting for good.
#[test]
fn child_with_a_taken_id_fails_back_to_its_parent() {
    let mut node = Node::new(0, 1);
    node.request(1, create("taken"));
    node.request(2, create("parent"));

    let sub = CreateSubOrchestration {
        instance_id: InstanceId::new("taken"),
        name: "Child".into(),
        version: None,
        input: None,
        parent_trace_context: None,
        tags: BTreeMap::new(),
    };
    node.complete("taken", 0, Vec::new());
    let effects = node.complete("parent", 1, vec![ActionKind::CreateSubOrchestration(sub)]);

    let [Effect::StartEpisode(start)] = effects.as_slice() else {
        panic!("expected the parent's next episode, got {effects:?}");
    };
    assert_eq!(start.instance, InstanceId::new("parent"));
    let EventKind::SubOrchestrationFailed(failed) = &start.new_events[1].kind else {
        panic!(
            "expected SubOrchestrationFailed, got {:?}",
            start.new_events
        );
    };
    assert_eq!(failed.task_scheduled_id, 0);
    assert_eq!(failed.failure.error_type, "OrchestrationAlreadyExists");
    assert_eq!(node.status("taken"), Some(OrchestrationStatus::Running));
}

/// A request handed over directly (not read from the input) is applied like one from the
/// input, keeps the input position where it was, and is deduplicated against requests of the
/// same client that did come through the input.
#[test]
fn local_requests_leave_the_input_position_and_share_dedup() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    let input = node.state.input_position();

    let local = |seq| {
        UpdateKind::LocalClientRequest(LocalClientRequest {
            client: CLIENT,
            seq: RequestSeq(seq),
            request: create("b"),
        })
    };
    let first = node.apply(local(2));
    assert_eq!(responses(&first).len(), 1);
    assert!(matches!(
        responses(&first)[0].response,
        ClientResponse::Created { .. }
    ));
    assert_eq!(node.status("b"), Some(OrchestrationStatus::Pending));
    assert_eq!(node.state.input_position(), input);

    // A retry of the same number, local or through the input, gets the kept answer only.
    let retry = node.apply(local(2));
    assert_eq!(responses(&retry), responses(&first)[..1].to_vec());
    let through_input = node.request(2, create("b"));
    assert_eq!(responses(&through_input), responses(&first)[..1].to_vec());
}

/// `apply_noting_changes` names each instance whose status changed, and only those.
#[test]
fn applying_names_the_instances_whose_status_changed() {
    let mut node = Node::new(0, 1);
    node.request(1, create("a"));
    node.request(2, create("b"));
    let a = InstanceId::new("a");
    assert_eq!(
        node.state.instance_status(&a),
        Some(OrchestrationStatus::Pending)
    );

    // The first episode of `a` finishes it; `b` is untouched.
    node.at += 1;
    let done = EpisodeCompleted {
        instance: a.clone(),
        execution: execution("a"),
        episode: EpisodeNumber(0),
        actions: vec![OrchestratorAction::new(0, complete_with("\"done\""))],
        custom_status: None,
    };
    let event = UpdateEvent {
        now: node.now,
        seed: 9,
        kind: UpdateKind::EpisodeCompleted(done),
    };
    let applied = node.state.apply_noting_changes(node.position(), &event);
    assert_eq!(applied.changed, vec![a.clone()]);
    assert_eq!(
        node.state.instance_status(&a),
        Some(OrchestrationStatus::Completed)
    );

    // The same position again changes nothing and names nothing.
    let again = node.state.apply_noting_changes(node.position(), &event);
    assert!(again.changed.is_empty() && again.effects.is_empty());
    assert_eq!(node.state.instance_status(&InstanceId::new("nobody")), None);
}

/// A client may release a lock in the holder's name (for a holder that is gone): the lock goes
/// to the next waiter, and a request naming anyone but the current holder changes nothing.
#[test]
fn a_lock_released_for_its_holder_passes_to_the_next_waiter() {
    let mut node = Node::new(0, 2);
    let entity = InstanceId::new("@counter@a!0");
    let lock = |section: &str, owner: &str| {
        let request = EntityLockRequested {
            critical_section_id: section.into(),
            lock_set: vec![entity.clone()],
            position: 0,
            parent_instance_id: Some(InstanceId::new(owner)),
        };
        let event = HistoryEvent::new(t(100), EventKind::EntityLockRequested(request));
        TaskMessage::to_instance(entity.clone(), event)
    };
    let batch = PartitionMessages {
        input: node.next_input(),
        origin: PartitionId(1),
        origin_position: CommitPosition(1),
        sub_position: 0,
        messages: vec![lock("cs-1", "gone"), lock("cs-2", "next")],
    };
    node.apply(UpdateKind::PartitionMessages(batch));
    let holder = |owner: &str, section: &str| LockHolder {
        instance_id: InstanceId::new(owner),
        critical_section_id: section.into(),
    };
    let release = |holder: LockHolder| ClientRequest::ReleaseEntityLock {
        entity: entity.clone(),
        holder,
    };
    let answer = |effects: &[Effect]| responses(effects)[0].response.clone();

    let stranger = node.request(1, release(holder("next", "cs-2")));
    assert_eq!(answer(&stranger), ClientResponse::LockReleased(false));
    assert_eq!(locked_by(&node, &entity), Some(holder("gone", "cs-1")));

    let released = node.request(2, release(holder("gone", "cs-1")));
    assert_eq!(answer(&released), ClientResponse::LockReleased(true));
    assert_eq!(locked_by(&node, &entity), Some(holder("next", "cs-2")));
}

/// Who holds `entity`'s lock, from a query that includes entities without state.
fn locked_by(node: &Node, entity: &InstanceId) -> Option<LockHolder> {
    let read = ReadEvent::QueryEntities(EntityQuery {
        id_prefix: Some(entity.as_str().to_string()),
        modified_from: None,
        modified_to: None,
        include_state: false,
        include_transient: true,
        after: None,
        size: 10,
    });
    match node.state.read(&read) {
        ReadResult::Entities(page) => page.entities.first().and_then(|v| v.locked_by.clone()),
        other => panic!("unexpected read result {other:?}"),
    }
}
