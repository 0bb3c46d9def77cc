//! Tracked object: sessions, one per orchestration instance with work to do.
//!
//! A session holds the instance's inbox (messages delivered and not yet given to a worker) and
//! the episode in flight, if any. One episode per instance runs at a time; messages arriving
//! meanwhile wait in the inbox and go out with the next episode.
//!
//! An inbox takes at most `episode_events_max` events per episode, so a long inbox drains over
//! several episodes rather than in one oversized work item.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::event::EpisodeNumber;
use crate::ids::{ExecutionId, InstanceId};
use crate::model::{EventKind, HistoryEvent, TaskMessage};

/// The sessions of a partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sessions {
    map: BTreeMap<InstanceId, Session>,
}

/// The work state of one instance.
// TODO: an inbox fed by other partitions has no bound of its own (only client events are
// refused past `inbox_events_max`); the engine must stop reading the input stream when an
// instance's backlog grows, or a flood of messages to one instance grows the state unbounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Delivered messages not yet dispatched, in arrival order.
    pub(crate) inbox: VecDeque<TaskMessage>,
    /// The episode a worker is running.
    pub(crate) in_flight: Option<InFlight>,
    /// Dispatch the next episode even with an empty inbox (after a rewind).
    pub(crate) force: bool,
}

/// An episode given to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct InFlight {
    /// Its number.
    pub(crate) episode: EpisodeNumber,
    /// The execution it runs in.
    pub(crate) execution: ExecutionId,
    /// The new events sent, `OrchestratorStarted` first.
    pub(crate) new_events: Vec<HistoryEvent>,
}

/// Which inbox messages the next episode may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Everything.
    Open,
    /// The execution has not started: nothing until its `ExecutionStarted` is in the inbox.
    AwaitingStart,
    /// Suspended: only the controls pass (`ExecutionResumed`, `ExecutionTerminated`, and a
    /// repeated `ExecutionSuspended`, which must not be held back past a later resume).
    Suspended,
}

impl Sessions {
    /// The session of `id`, if it has one.
    pub(crate) fn get(&self, id: &InstanceId) -> Option<&Session> {
        self.map.get(id)
    }

    /// The session of `id`, created if needed.
    pub(crate) fn entry(&mut self, id: &InstanceId) -> &mut Session {
        self.map.entry(id.clone()).or_default()
    }

    /// Drops the session of `id`.
    pub(crate) fn remove(&mut self, id: &InstanceId) {
        self.map.remove(id);
    }

    /// Drops sessions with nothing in them.
    pub(crate) fn prune(&mut self, id: &InstanceId) {
        let idle = self
            .map
            .get(id)
            .is_some_and(|s| s.inbox.is_empty() && s.in_flight.is_none() && !s.force);
        if idle {
            self.map.remove(id);
        }
    }

    /// The ids of all instances with a session.
    pub(crate) fn ids(&self) -> Vec<InstanceId> {
        self.map.keys().cloned().collect()
    }

    /// The number of inbox messages of `id`.
    pub(crate) fn inbox_len(&self, id: &InstanceId) -> usize {
        self.map.get(id).map_or(0, |s| s.inbox.len())
    }
}

impl Session {
    /// Ends the episode in flight and puts its events (all but `OrchestratorStarted`) back at
    /// the front of the inbox, so the next episode carries them again.
    pub(crate) fn put_back(&mut self, id: &InstanceId) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let returned = flight.new_events.into_iter().skip(1).rev();
        for event in returned {
            let message = TaskMessage::to_execution(id.clone(), flight.execution.clone(), event);
            self.inbox.push_front(message);
        }
    }

    /// Drops inbox messages addressed to an execution other than `current`.
    pub(crate) fn drop_other_executions(&mut self, current: &ExecutionId) {
        self.inbox
            .retain(|m| m.target_execution.as_ref().is_none_or(|e| e == current));
    }

    /// Takes at most `max` events for the next episode, `ExecutionStarted` first.
    pub(crate) fn take_batch(&mut self, gate: Gate, max: usize) -> Vec<HistoryEvent> {
        let start = self.inbox.iter().position(|m| is_start(&m.event));
        if gate == Gate::AwaitingStart && start.is_none() {
            return Vec::new();
        }
        if let Some(i) = start.filter(|_| gate != Gate::Suspended) {
            let started = self.inbox.remove(i).expect("position is in range");
            self.inbox.push_front(started);
        }

        let mut taken = Vec::new();
        let mut kept = VecDeque::new();
        for message in self.inbox.drain(..) {
            let passes = gate != Gate::Suspended || passes_suspension(&message.event);
            if passes && taken.len() < max {
                taken.push(message.event);
            } else {
                kept.push_back(message);
            }
        }
        self.inbox = kept;
        taken
    }
}

fn is_start(event: &HistoryEvent) -> bool {
    matches!(event.kind, EventKind::ExecutionStarted(_))
}

fn passes_suspension(event: &HistoryEvent) -> bool {
    matches!(
        event.kind,
        EventKind::ExecutionResumed { .. }
            | EventKind::ExecutionTerminated(_)
            | EventKind::ExecutionSuspended { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventRaised, ExecutionTerminated};
    use crate::time::Timestamp;

    fn message(kind: EventKind) -> TaskMessage {
        let event = HistoryEvent::new(Timestamp::EPOCH, kind);
        TaskMessage::to_instance(InstanceId::new("a"), event)
    }

    fn raised(name: &str) -> TaskMessage {
        message(EventKind::EventRaised(EventRaised {
            name: name.into(),
            input: None,
        }))
    }

    /// While suspended, only the termination leaves; the raised event keeps its place.
    #[test]
    fn suspension_holds_back_all_but_resume_and_terminate() {
        let mut session = Session::default();
        session.inbox.push_back(raised("x"));
        let terminated = ExecutionTerminated {
            input: None,
            recurse: false,
        };
        session
            .inbox
            .push_back(message(EventKind::ExecutionTerminated(terminated.clone())));

        let taken = session.take_batch(Gate::Suspended, 10);

        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].kind, EventKind::ExecutionTerminated(terminated));
        assert_eq!(session.inbox, VecDeque::from([raised("x")]));
    }

    /// An instance that has not started takes nothing until its start arrives.
    #[test]
    fn awaiting_start_takes_nothing_without_execution_started() {
        let mut session = Session::default();
        session.inbox.push_back(raised("early"));

        assert!(session.take_batch(Gate::AwaitingStart, 10).is_empty());
        assert_eq!(session.inbox.len(), 1);
    }

    /// The batch bound leaves the rest, in order, for the next episode.
    #[test]
    fn batch_is_bounded_and_keeps_order() {
        let mut session = Session::default();
        for name in ["a", "b", "c"] {
            session.inbox.push_back(raised(name));
        }

        let taken = session.take_batch(Gate::Open, 2);

        assert_eq!(taken.len(), 2);
        assert_eq!(session.inbox, VecDeque::from([raised("c")]));
    }
}
