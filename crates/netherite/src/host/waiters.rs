//! Waits for an instance to start or to finish, kept by the host beside the state.
//!
//! A wait changes nothing, so it is not logged: the loop keeps the waiting callers in memory
//! and, after each update, looks at the instances the update changed (the state machine names
//! them). A satisfied wait is answered like a read, once the update that satisfied it is
//! durable, so a caller never sees a status a crash could take back. A caller that gives up
//! (its deadline passed, or it was cancelled) just drops its receiver; dropped callers are
//! swept out now and then. Their number is bounded by `waiters_max`, like the logged waits of
//! remote clients.

use std::collections::HashMap;

use netherite_core::partition::{InstanceView, PartitionState, ReadEvent, ReadResult, WaitUntil};
use netherite_core::{CommitPosition, InstanceId};
use tokio::sync::oneshot;

use super::durability::DurableWatch;
use crate::Error;

/// Where the answer to a wait goes.
pub(crate) type WaitReply = oneshot::Sender<Result<InstanceView, Error>>;

/// Pending waits at or above which closed ones are swept out before a new one is added.
const SWEEP_AT_MIN: usize = 256;

/// One waiting caller.
#[derive(Debug)]
struct Waiter {
    until: WaitUntil,
    reply: WaitReply,
}

/// The waiting callers of one partition, by instance.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_instance: HashMap<InstanceId, Vec<Waiter>>,
    count: usize,
    sweep_at: usize,
}

impl Waiters {
    /// Answers a wait on `instance` now if the state allows, else keeps it; refused with
    /// `PartitionLimit` past `max` pending waits.
    pub(crate) fn add(
        &mut self,
        state: &PartitionState,
        durable: &DurableWatch,
        (instance, until): (InstanceId, WaitUntil),
        reply: WaitReply,
        max: usize,
    ) {
        match state.instance_status(&instance) {
            None => answer(state, durable, &instance, reply),
            Some(status) if until.holds(status) => answer(state, durable, &instance, reply),
            Some(_) => {
                self.sweep_if_large();
                if self.count >= max {
                    // Full: first drop the callers that gave up, whatever the sweep schedule.
                    self.sweep();
                }
                if self.count >= max {
                    let limit = "waiters_max".to_string();
                    let _ = reply.send(Err(Error::PartitionLimit {
                        limit,
                        max: max as u64,
                    }));
                    return;
                }
                let waiter = Waiter { until, reply };
                self.by_instance.entry(instance).or_default().push(waiter);
                self.count += 1;
            }
        }
    }

    /// Answers the waits on `changed` instances that their status now satisfies (all of
    /// them, with `NotFound`, for an instance that is gone).
    pub(crate) fn changed(
        &mut self,
        state: &PartitionState,
        durable: &DurableWatch,
        changed: &[InstanceId],
    ) {
        for id in changed {
            let Some(waiters) = self.by_instance.get_mut(id) else {
                continue;
            };
            let status = state.instance_status(id);
            let satisfied = |w: &Waiter| status.is_none_or(|s| w.until.holds(s));
            let (done, kept): (Vec<_>, Vec<_>) = waiters.drain(..).partition(satisfied);
            *waiters = kept;
            if waiters.is_empty() {
                self.by_instance.remove(id);
            }
            self.count -= done.len();
            for waiter in done {
                answer(state, durable, id, waiter.reply);
            }
        }
    }

    /// How many waits are pending.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether no wait is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Drops the callers that gave up, when the map doubled since the last sweep: O(1) per
    /// added wait.
    fn sweep_if_large(&mut self) {
        if self.count >= self.sweep_at.max(SWEEP_AT_MIN) {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        self.by_instance.retain(|_, waiters| {
            waiters.retain(|w| !w.reply.is_closed());
            !waiters.is_empty()
        });
        self.count = self.by_instance.values().map(Vec::len).sum();
        self.sweep_at = 2 * self.count;
    }
}

/// Sends the instance as the state shows it now, once everything the state shows is durable;
/// `NotFound` if there is no such instance.
fn answer(state: &PartitionState, durable: &DurableWatch, id: &InstanceId, reply: WaitReply) {
    if reply.is_closed() {
        return;
    }
    let read = ReadEvent::GetInstance {
        instance: id.clone(),
        payloads: true,
    };
    let result = match state.read(&read) {
        ReadResult::Instance(Some(view)) => Ok(*view),
        _ => Err(Error::NotFound {
            instance: id.clone(),
        }),
    };
    let shown = state.last_applied().unwrap_or(CommitPosition::START);
    durable.send_once_durable(shown, result, reply);
}
