//! Tracked object: client waits for an instance to start or to finish.
//!
//! A wait is answered by the update that makes its condition true, or rejected by the first
//! `TimersFired` at or after its deadline. The number of waits is bounded (`waiters_max`); a
//! wait beyond it is rejected at once, so a storm of clients cannot grow the state unboundedly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::WaitUntil;
use crate::ids::{ClientId, InstanceId, RequestSeq};
use crate::model::OrchestrationStatus;
use crate::time::Timestamp;

/// The pending waits of a partition, by instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Waits {
    by_instance: BTreeMap<InstanceId, Vec<Waiter>>,
    count: usize,
}

/// One waiting client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    /// The client.
    pub(crate) client: ClientId,
    /// Its request.
    pub(crate) seq: RequestSeq,
    /// The condition.
    pub(crate) until: WaitUntil,
    /// When to give up.
    pub(crate) deadline: Option<Timestamp>,
    /// Whether the answer includes payloads.
    pub(crate) payloads: bool,
}

impl WaitUntil {
    /// Whether an instance in `status` satisfies the condition.
    pub fn holds(self, status: OrchestrationStatus) -> bool {
        match self {
            WaitUntil::Start => status != OrchestrationStatus::Pending,
            WaitUntil::Completion => status.is_terminal(),
        }
    }
}

impl Waits {
    /// Adds a wait for `instance`.
    pub(crate) fn add(&mut self, instance: InstanceId, waiter: Waiter) {
        self.by_instance.entry(instance).or_default().push(waiter);
        self.count += 1;
    }

    /// Removes and returns the waits on `instance` that `status` satisfies.
    pub(crate) fn take_satisfied(
        &mut self,
        instance: &InstanceId,
        status: OrchestrationStatus,
    ) -> Vec<Waiter> {
        self.take_where(instance, |w| w.until.holds(status))
    }

    /// Removes and returns every wait on `instance`.
    pub(crate) fn take_all(&mut self, instance: &InstanceId) -> Vec<Waiter> {
        self.take_where(instance, |_| true)
    }

    /// Removes and returns every wait whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Timestamp) -> Vec<(InstanceId, Waiter)> {
        let ids: Vec<InstanceId> = self.by_instance.keys().cloned().collect();
        let mut expired = Vec::new();
        for id in ids {
            let taken = self.take_where(&id, |w| w.deadline.is_some_and(|d| d <= now));
            expired.extend(taken.into_iter().map(|w| (id.clone(), w)));
        }
        expired
    }

    /// The earliest deadline.
    pub(crate) fn earliest_deadline(&self) -> Option<Timestamp> {
        let all = self.by_instance.values().flatten();
        all.filter_map(|w| w.deadline).min()
    }

    /// How many waits are pending.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn take_where(&mut self, id: &InstanceId, pick: impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
        let Some(waiters) = self.by_instance.get_mut(id) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|w| pick(w));
        *waiters = kept;
        if waiters.is_empty() {
            self.by_instance.remove(id);
        }
        self.count -= taken.len();
        taken
    }
}
