//! A tiny backend for the SDK's tests: it plays the engine's part for a few instances.
//!
//! Each episode goes the way the engine runs one: the instance's inbox becomes the new events
//! (after an `OrchestratorStarted` at the hub's clock), [`execute`] answers with actions, and
//! `netherite_core::episode::apply_episode` turns them into history, activities, timers and
//! messages, which the hub then carries out: it runs activities through `invoke_activity`,
//! fires timers when the test moves the clock, and delivers messages between instances.
//!
//! After every episode the hub replays the committed history once more and checks that the
//! orchestration asks for nothing the history already holds: every test doubles as a check
//! that replay never repeats an action.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use netherite::sdk::{ActivityContext, EpisodeResult, Registry, execute, invoke_activity};
use netherite_core::episode::{ActivityRequest, EpisodeInput, EpisodeOutcome, apply_episode};
use netherite_core::ids::IdGen;
use netherite_core::model::{
    ActionKind, EventKind, EventRaised, ExecutionStarted, ExecutionTerminated, FailureDetails,
    HistoryEvent, OrchestrationStatus, OrchestratorAction, Payload, TaskCompleted, TaskFailed,
    TaskMessage, TimerFired,
};
use netherite_core::{ExecutionId, InstanceId, Timestamp};

/// How many episodes and activities one `run` may take before the test is declared stuck.
const STEPS_MAX: usize = 10_000;

/// The time the hub's clock starts at.
pub(crate) const START: Timestamp = Timestamp {
    secs: 1_700_000_000,
    nanos: 0,
};

/// One orchestration instance as the engine keeps it.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) execution_id: ExecutionId,
    /// The committed history of the current execution.
    pub(crate) history: Vec<HistoryEvent>,
    /// Messages waiting for the next episode.
    pub(crate) inbox: Vec<HistoryEvent>,
    pub(crate) status: OrchestrationStatus,
    pub(crate) output: Payload,
    pub(crate) failure: Option<FailureDetails>,
    pub(crate) custom_status: Payload,
    /// Every episode's answer, in order, across executions.
    pub(crate) answers: Vec<EpisodeResult>,
    /// The histories of executions that continued as new, oldest first.
    pub(crate) earlier_executions: Vec<Vec<HistoryEvent>>,
}

/// A timer armed by an episode.
#[derive(Clone, Debug)]
struct ArmedTimer {
    instance: InstanceId,
    execution: ExecutionId,
    timer_id: i32,
    fire_at: Timestamp,
}

/// The backend: instances, a clock, armed timers and queued activities.
pub(crate) struct Hub {
    registry: Registry,
    pub(crate) now: Timestamp,
    pub(crate) instances: BTreeMap<InstanceId, Instance>,
    timers: Vec<ArmedTimer>,
    activities: VecDeque<(InstanceId, ExecutionId, ActivityRequest)>,
    ids: IdGen,
    /// Episodes run, for tests that count them.
    pub(crate) episodes: usize,
}

pub(crate) fn id(s: &str) -> InstanceId {
    InstanceId::new(s)
}

/// `value` as a JSON payload.
pub(crate) fn json(value: serde_json::Value) -> Payload {
    Some(value.to_string())
}

impl Hub {
    pub(crate) fn new(registry: Registry) -> Hub {
        Hub {
            registry,
            now: START,
            instances: BTreeMap::new(),
            timers: Vec::new(),
            activities: VecDeque::new(),
            ids: IdGen::new(0x5eed),
            episodes: 0,
        }
    }

    /// Replaces the registered code, as a deployment of a new version would.
    pub(crate) fn deploy(&mut self, registry: Registry) {
        self.registry = registry;
    }

    /// Creates instance `instance` of orchestration `name`.
    pub(crate) fn start(&mut self, instance: &str, name: &str, input: Payload) {
        let execution_id = self.ids.next_execution_id();
        let started = ExecutionStarted {
            name: name.to_string(),
            version: None,
            input,
            instance_id: id(instance),
            execution_id: execution_id.clone(),
            parent: None,
            scheduled_start: None,
            parent_trace_context: None,
            orchestration_span_id: None,
            tags: Default::default(),
        };
        let event = HistoryEvent::new(self.now, EventKind::ExecutionStarted(started));
        self.create(id(instance), execution_id, event);
    }

    fn create(&mut self, instance: InstanceId, execution_id: ExecutionId, started: HistoryEvent) {
        let fresh = Instance {
            execution_id,
            history: Vec::new(),
            inbox: vec![started],
            status: OrchestrationStatus::Pending,
            output: None,
            failure: None,
            custom_status: None,
            answers: Vec::new(),
            earlier_executions: Vec::new(),
        };
        self.instances.insert(instance, fresh);
    }

    pub(crate) fn instance(&self, instance: &str) -> &Instance {
        self.instances
            .get(&id(instance))
            .expect("the test created it")
    }

    /// Queues an event for the instance, as a client's RaiseEvent would.
    pub(crate) fn raise(&mut self, instance: &str, name: &str, input: Payload) {
        let raised = EventRaised {
            name: name.to_string(),
            input,
        };
        self.deliver(&id(instance), None, EventKind::EventRaised(raised));
    }

    pub(crate) fn terminate(&mut self, instance: &str, reason: Payload) {
        let terminated = ExecutionTerminated {
            input: reason,
            recurse: false,
        };
        self.deliver(
            &id(instance),
            None,
            EventKind::ExecutionTerminated(terminated),
        );
    }

    pub(crate) fn suspend(&mut self, instance: &str) {
        let kind = EventKind::ExecutionSuspended { input: None };
        self.deliver(&id(instance), None, kind);
    }

    pub(crate) fn resume(&mut self, instance: &str) {
        let kind = EventKind::ExecutionResumed { input: None };
        self.deliver(&id(instance), None, kind);
    }

    /// Moves the clock and queues `TimerFired` for every timer now due, in deadline order.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
        let (mut due, armed): (Vec<_>, Vec<_>) = self
            .timers
            .drain(..)
            .partition(|timer| timer.fire_at <= self.now);
        self.timers = armed;
        due.sort_by_key(|timer| (timer.fire_at, timer.timer_id));
        for timer in due {
            let fired = TimerFired {
                fire_at: timer.fire_at,
                timer_id: timer.timer_id,
            };
            self.deliver(
                &timer.instance,
                Some(&timer.execution),
                EventKind::TimerFired(fired),
            );
        }
    }

    /// The deadlines of the armed timers, earliest first.
    pub(crate) fn armed_timers(&self) -> Vec<Timestamp> {
        let mut deadlines: Vec<_> = self.timers.iter().map(|timer| timer.fire_at).collect();
        deadlines.sort();
        deadlines
    }

    /// Runs episodes and activities until nothing is left to do without moving the clock.
    pub(crate) fn run(&mut self) {
        for _ in 0..STEPS_MAX {
            if let Some(ready) = self.next_ready() {
                self.episode(&ready);
            } else if let Some((instance, execution, request)) = self.activities.pop_front() {
                self.run_activity(instance, execution, request);
            } else {
                return;
            }
        }
        panic!("the hub did not settle in {STEPS_MAX} steps");
    }

    /// Like [`run`](Self::run), but `choices` decide each step: an episode, or which queued
    /// activity runs next. This plays the engine's freedom to run activities in any order and
    /// to batch several results into one episode.
    pub(crate) fn run_in_order(&mut self, choices: &[u8]) {
        for step in 0..STEPS_MAX {
            let choice = usize::from(
                choices
                    .get(step % choices.len().max(1))
                    .copied()
                    .unwrap_or(0),
            );
            let ready = self.next_ready();
            let queued = self.activities.len();
            if queued > 0 && (ready.is_none() || choice % 2 == 0) {
                let picked = self.activities.remove((choice / 2) % queued);
                let (instance, execution, request) = picked.expect("index within the queue");
                self.run_activity(instance, execution, request);
            } else if let Some(ready) = ready {
                self.episode(&ready);
            } else {
                return;
            }
        }
        panic!("the hub did not settle in {STEPS_MAX} steps");
    }

    /// Like [`run`](Self::run), and whenever all is quiet, moves the clock to the next timer.
    pub(crate) fn run_with_timers(&mut self) {
        for _ in 0..STEPS_MAX {
            self.run();
            let Some(next) = self.armed_timers().first().copied() else {
                return;
            };
            self.advance(next.saturating_since(self.now));
        }
        panic!("the timers did not settle in {STEPS_MAX} steps");
    }

    fn next_ready(&self) -> Option<InstanceId> {
        self.instances
            .iter()
            .find(|(_, instance)| !instance.inbox.is_empty() && !instance.status.is_terminal())
            .map(|(id, _)| id.clone())
    }

    /// Runs one episode of `instance` and commits it.
    pub(crate) fn episode(&mut self, instance_id: &InstanceId) -> EpisodeResult {
        self.episodes += 1;
        let instance = self
            .instances
            .get_mut(instance_id)
            .expect("a known instance");
        let mut new_events = vec![HistoryEvent::new(self.now, EventKind::OrchestratorStarted)];
        new_events.append(&mut instance.inbox);
        let execution_id = instance.execution_id.clone();
        let history = instance.history.clone();

        let answer = execute(
            &self.registry,
            instance_id,
            &execution_id,
            &history,
            &new_events,
        );
        let input = EpisodeInput {
            instance_id,
            execution_id: &execution_id,
            history: &history,
            new_events: &new_events,
            actions: &answer.actions,
            custom_status: answer.custom_status.clone(),
            now: self.now,
        };
        let outcome = apply_episode(&input, &mut self.ids);
        let instance = self
            .instances
            .get_mut(instance_id)
            .expect("a known instance");
        instance.answers.push(answer.clone());
        instance.history.extend(outcome.appended.iter().cloned());
        self.check_replay(instance_id);
        self.commit(instance_id, &execution_id, outcome);
        answer
    }

    /// Replays the committed history with no new events but a fresh `OrchestratorStarted`:
    /// the orchestration must ask for nothing new, because everything it asked for so far is
    /// in the history.
    fn check_replay(&self, instance_id: &InstanceId) {
        let instance = &self.instances[instance_id];
        let later = self.now.saturating_add(Duration::from_secs(1));
        let nudge = [HistoryEvent::new(later, EventKind::OrchestratorStarted)];
        let again = execute(
            &self.registry,
            instance_id,
            &instance.execution_id,
            &instance.history,
            &nudge,
        );
        let repeated: Vec<&OrchestratorAction> = (again.actions.iter())
            .filter(|action| !matches!(action.kind, ActionKind::CompleteOrchestration(_)))
            .collect();
        assert!(repeated.is_empty(), "replay asked again for {repeated:?}");
    }

    fn commit(&mut self, instance_id: &InstanceId, execution: &ExecutionId, out: EpisodeOutcome) {
        let instance = self
            .instances
            .get_mut(instance_id)
            .expect("a known instance");
        instance.status = out.status;
        instance.output = out.output;
        instance.failure = out.failure;
        instance.custom_status = out.custom_status;
        if let Some(next) = out.next_execution {
            let old = std::mem::take(&mut instance.history);
            instance.earlier_executions.push(old);
            instance.execution_id = next.execution_id;
            let mut inbox = vec![next.started];
            inbox.extend(next.carryover);
            inbox.append(&mut instance.inbox);
            instance.inbox = inbox;
        }

        for request in out.activities {
            self.activities
                .push_back((instance_id.clone(), execution.clone(), request));
        }
        for timer in out.timers {
            self.timers.push(ArmedTimer {
                instance: instance_id.clone(),
                execution: execution.clone(),
                timer_id: timer.timer_id,
                fire_at: timer.fire_at,
            });
        }
        for message in out.messages {
            self.route(message);
        }
    }

    fn route(&mut self, message: TaskMessage) {
        if let EventKind::ExecutionStarted(started) = &message.event.kind {
            let execution_id = started.execution_id.clone();
            self.create(message.target, execution_id, message.event);
            return;
        }
        let execution = message.target_execution.as_ref();
        self.deliver(&message.target, execution, message.event.kind);
    }

    /// Puts an event in the instance's inbox, unless it is gone, finished, or the event is
    /// for an execution that is not the current one.
    fn deliver(&mut self, target: &InstanceId, execution: Option<&ExecutionId>, kind: EventKind) {
        let Some(instance) = self.instances.get_mut(target) else {
            return;
        };
        let stale = execution.is_some_and(|execution| *execution != instance.execution_id);
        if stale || instance.status.is_terminal() {
            return;
        }
        instance.inbox.push(HistoryEvent::new(self.now, kind));
    }

    fn run_activity(
        &mut self,
        instance: InstanceId,
        execution: ExecutionId,
        request: ActivityRequest,
    ) {
        let context = ActivityContext::new(instance.clone(), request.task_id, &request.name)
            .with_execution(execution.clone());
        let running = invoke_activity(&self.registry, context, request.input);
        let kind = match futures::executor::block_on(running) {
            Ok(result) => EventKind::TaskCompleted(TaskCompleted {
                task_scheduled_id: request.task_id,
                result,
            }),
            Err(failure) => EventKind::TaskFailed(TaskFailed {
                task_scheduled_id: request.task_id,
                failure,
            }),
        };
        self.deliver(&instance, Some(&execution), kind);
    }
}

/// The events of `history` of the kinds `pick` selects, described by it.
pub(crate) fn kinds<T>(
    history: &[HistoryEvent],
    pick: impl Fn(&HistoryEvent) -> Option<T>,
) -> Vec<T> {
    history.iter().filter_map(pick).collect()
}

/// The names of the activities scheduled in `history`, in order, with their action ids.
pub(crate) fn scheduled(history: &[HistoryEvent]) -> Vec<(i32, String)> {
    kinds(history, |event| match &event.kind {
        EventKind::TaskScheduled(task) => Some((event.event_id, task.name.clone())),
        _ => None,
    })
}
