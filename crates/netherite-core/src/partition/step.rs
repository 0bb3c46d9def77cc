//! One update in progress: its position, time and ids, and what it has produced so far.
//!
//! Handlers do not dispatch work or send messages as they go. They deliver local messages to
//! a queue, group remote ones by destination, and mark the instances and entities they touched.
//! [`PartitionState::settle`] then finishes the update in a fixed order, so every message of
//! the update lands before an episode is built from the inbox and the effects come out in an
//! order that depends only on the state and the event.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracing::trace;

use super::PartitionState;
use super::dedup::KeptResponse;
use super::effect::{Effect, RespondToClient, SendMessages};
use super::response::ClientResponse;
use crate::ids::partition_of;
use crate::ids::{ClientId, CommitPosition, IdGen, InstanceId, PartitionId, RequestSeq};
use crate::model::TaskMessage;
use crate::time::Timestamp;

/// The working set of one update.
pub(crate) struct Step {
    /// The update's commit position.
    pub(crate) at: CommitPosition,
    /// The update's time.
    pub(crate) now: Timestamp,
    /// The update's seed.
    pub(crate) seed: u128,
    /// Fresh ids, from the update's seed.
    pub(crate) ids: IdGen,
    /// The effects so far.
    pub(crate) effects: Vec<Effect>,
    /// Messages for this partition, not yet delivered.
    pub(crate) local: VecDeque<TaskMessage>,
    /// Messages for other partitions, by destination.
    pub(crate) remote: BTreeMap<PartitionId, Vec<TaskMessage>>,
    /// Instances whose inbox may have work to dispatch.
    pub(crate) dirty_instances: BTreeSet<InstanceId>,
    /// Entities whose queue may have work to dispatch.
    pub(crate) dirty_entities: BTreeSet<InstanceId>,
    /// Instances whose status changed, or that were removed: their waits are checked.
    pub(crate) changed: BTreeSet<InstanceId>,
    /// The instances `changed` held when the update settled, for the engine's own waiters.
    pub(crate) settled_changes: Vec<InstanceId>,
    /// Arm the timer even if the earliest due time did not change (after recovery).
    pub(crate) rearm: bool,
}

impl Step {
    /// A fresh working set for the update at `at`.
    pub(crate) fn new(at: CommitPosition, now: Timestamp, seed: u128) -> Step {
        Step {
            at,
            now,
            seed,
            ids: IdGen::new(seed),
            effects: Vec::new(),
            local: VecDeque::new(),
            remote: BTreeMap::new(),
            dirty_instances: BTreeSet::new(),
            dirty_entities: BTreeSet::new(),
            changed: BTreeSet::new(),
            settled_changes: Vec::new(),
            rearm: false,
        }
    }
}

impl PartitionState {
    /// Finishes an update: delivers local messages, dispatches work, answers waits, sends
    /// remote batches and arms the timer if the earliest due time moved.
    pub(crate) fn settle(&mut self, step: &mut Step, due_before: Option<Timestamp>) {
        while let Some(message) = step.local.pop_front() {
            self.deliver(step, message);
        }
        for id in std::mem::take(&mut step.dirty_instances) {
            self.dispatch_episode(step, &id);
        }
        for id in std::mem::take(&mut step.dirty_entities) {
            self.dispatch_batch(step, &id);
        }
        for id in std::mem::take(&mut step.changed) {
            self.answer_waits(step, &id);
            step.settled_changes.push(id);
        }
        self.flush_remote(step);

        let due = self.next_due();
        if let Some(due) = due.filter(|_| due != due_before || step.rearm) {
            step.effects.push(Effect::ArmTimer { due });
        }
    }

    /// Sends `message` where it belongs: in place if its target lives here, else in the
    /// batch for its partition.
    pub(crate) fn route(&self, step: &mut Step, message: TaskMessage) {
        let owner = partition_of(&message.target, self.config.partition_count);
        if owner == self.config.partition {
            step.local.push_back(message);
        } else {
            trace!(target = %message.target, destination = %owner, "message leaves");
            step.remote.entry(owner).or_default().push(message);
        }
    }

    /// Answers a client once this update is durable, and keeps the answer for retries.
    pub(crate) fn respond(
        &mut self,
        step: &mut Step,
        client: ClientId,
        seq: RequestSeq,
        response: ClientResponse,
    ) {
        let kept = KeptResponse {
            seq,
            after: step.at,
            response: response.clone(),
        };
        let kept_max = self.config.limits.client_responses_max;
        self.dedup.keep(client, kept, kept_max);
        let answer = RespondToClient {
            after: step.at,
            client,
            seq,
            response,
        };
        step.effects.push(Effect::RespondToClient(answer));
    }

    /// The earliest time something waits for: a timer, a delayed message or a wait deadline.
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        let deadline = self.waits.earliest_deadline();
        match (self.timers.earliest(), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Turns the remote batches into outbox entries and `SendMessages` effects.
    fn flush_remote(&mut self, step: &mut Step) {
        let remote = std::mem::take(&mut step.remote);
        for (sub_position, (destination, messages)) in (0u32..).zip(remote) {
            let send = SendMessages {
                after: step.at,
                destination,
                origin: self.config.partition,
                origin_position: step.at,
                sub_position,
                messages,
            };
            self.outbox.insert(&send);
            step.effects.push(Effect::SendMessages(send));
        }
    }
}
