//! Tracked object: timers and delayed messages, by due time.
//!
//! A durable timer is a `TimerFired` message to its instance, held until due. Delayed messages
//! (a scheduled start, a scheduled entity signal) wait here the same way. Nothing is armed
//! inside the state machine: the partition tells the engine the earliest due time, and the
//! engine logs a `TimersFired` event when it comes. Due times are plain timestamps, so a timer
//! months away is just a far-away key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::TaskMessage;
use crate::time::Timestamp;

/// The waiting messages of a partition, ordered by (due, arrival).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Timers {
    waiting: BTreeMap<(Timestamp, u64), TaskMessage>,
    next_seq: u64,
}

impl Timers {
    /// Holds `message` until `due`.
    pub(crate) fn insert(&mut self, due: Timestamp, message: TaskMessage) {
        self.waiting.insert((due, self.next_seq), message);
        self.next_seq += 1;
    }

    /// Removes and returns every message due at or before `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Timestamp) -> Vec<TaskMessage> {
        let later = self.waiting.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut self.waiting, later);
        due.into_values().collect()
    }

    /// The earliest due time.
    pub(crate) fn earliest(&self) -> Option<Timestamp> {
        self.waiting.keys().next().map(|(due, _)| *due)
    }

    /// How many messages wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstanceId;
    use crate::model::{EventKind, HistoryEvent};

    fn at(secs: i64) -> Timestamp {
        Timestamp::new(secs, 0)
    }

    fn message(tag: &str) -> TaskMessage {
        let event = HistoryEvent::new(at(0), EventKind::OrchestratorStarted);
        TaskMessage::to_instance(InstanceId::new(tag), event)
    }

    /// Everything due at or before `now` comes out, in due order; the rest stays.
    #[test]
    fn take_due_is_inclusive_and_ordered() {
        let mut timers = Timers::default();
        timers.insert(at(30), message("late"));
        timers.insert(at(10), message("first"));
        timers.insert(at(20), message("second"));

        let due = timers.take_due(at(20));

        let targets: Vec<_> = due.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["first", "second"]);
        assert_eq!(timers.earliest(), Some(at(30)));
    }

    /// A timer at the end of time is a valid key, not an overflow.
    #[test]
    fn far_future_timer_is_kept() {
        let mut timers = Timers::default();
        timers.insert(Timestamp::MAX, message("far"));

        assert!(timers.take_due(at(1_000_000)).is_empty());
        assert_eq!(timers.take_due(Timestamp::MAX).len(), 1);
    }
}
