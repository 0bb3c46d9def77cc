//! Client requests: create, raise, terminate, suspend, resume, signal, purge, rewind, wait,
//! and reads for clients in other processes.
//!
//! Each request is first checked against the client's sequence number: a retry is answered
//! again from the kept answer, or ignored. A new request is validated (the instance must live
//! here, exist, and be in a status that allows the request) and then turned into a message for
//! the instance, delivered in place, so it goes through the same inbox rules as any other.
//! Every request is answered once, after the update that handled it is durable; a wait is
//! answered later, by the update that satisfies it or by its deadline.

use tracing::debug;

use super::PartitionState;
use super::dedup::Freshness;
use super::delivery::record_from_start;
use super::effect::{Effect, RespondToClient};
use super::event::{ClientRequest, CreateInstance, SignalEntity, WaitFor};
use super::index::{InstanceFilter, PageRequest};
use super::instances::InstanceRecord;
use super::response::{ClientResponse, Rejection};
use super::step::Step;
use super::view::InstanceView;
use super::waits::Waiter;
use crate::entity::LockHolder;
use crate::ids::{ClientId, InstanceId, RequestSeq, partition_of};
use crate::model::{
    EntityId, EntityOperationSignaled, EntityUnlockSent, EventKind, EventRaised, ExecutionRewound,
    ExecutionStarted, ExecutionTerminated, HistoryEvent, OrchestrationStatus, Payload, TaskMessage,
};

impl PartitionState {
    /// Handles a client request, or answers its retry.
    pub(crate) fn client_request(
        &mut self,
        step: &mut Step,
        client: ClientId,
        seq: RequestSeq,
        request: &ClientRequest,
    ) {
        let clients_max = self.config.limits.clients_max;
        match self
            .dedup
            .accept_request(client, seq, step.now, clients_max)
        {
            Freshness::New => {}
            Freshness::Answered(kept) => {
                debug!(client = %client, seq = seq.0, "retried request answered again");
                let answer = RespondToClient {
                    after: kept.after,
                    client,
                    seq,
                    response: kept.response,
                };
                step.effects.push(Effect::RespondToClient(answer));
                return;
            }
            Freshness::Seen => {
                debug!(client = %client, seq = seq.0, "retried request ignored");
                return;
            }
        }
        if let Some(response) = self.handle_request(step, client, seq, request) {
            self.respond(step, client, seq, response);
        }
    }

    fn handle_request(
        &mut self,
        step: &mut Step,
        client: ClientId,
        seq: RequestSeq,
        request: &ClientRequest,
    ) -> Option<ClientResponse> {
        let outcome = match request {
            ClientRequest::Create(create) => self.create(step, create),
            ClientRequest::RaiseEvent {
                instance,
                name,
                input,
            } => self.raise_event(step, instance, name, input),
            ClientRequest::Terminate {
                instance,
                reason,
                recurse,
            } => self.terminate(step, instance, reason, *recurse),
            ClientRequest::Suspend { instance, reason } => self.send_control(
                step,
                instance,
                EventKind::ExecutionSuspended {
                    input: reason.clone(),
                },
            ),
            ClientRequest::Resume { instance, reason } => self.send_control(
                step,
                instance,
                EventKind::ExecutionResumed {
                    input: reason.clone(),
                },
            ),
            ClientRequest::SignalEntity(signal) => self.signal_entity(step, signal),
            ClientRequest::Purge { instance } => self.purge(step, instance),
            ClientRequest::PurgeByFilter { filter } => Ok(self.purge_by_filter(step, filter)),
            ClientRequest::Rewind { instance, reason } => self.rewind(step, instance, reason),
            ClientRequest::WaitFor(wait) => return self.wait_for(step, client, seq, wait),
            ClientRequest::ReleaseEntityLock { entity, holder } => {
                self.release_entity_lock(step, entity, holder)
            }
            ClientRequest::Read(read) => {
                // Not kept for retries: the answer may be a large page.
                let response = ClientResponse::Read(Box::new(self.read(read)));
                let after = step.at;
                let answer = RespondToClient {
                    after,
                    client,
                    seq,
                    response,
                };
                step.effects.push(Effect::RespondToClient(answer));
                return None;
            }
        };
        Some(outcome.unwrap_or_else(ClientResponse::Rejected))
    }

    /// The record of `id`, if it lives here and exists.
    fn locate(&self, id: &InstanceId) -> Result<&InstanceRecord, Rejection> {
        self.check_owner(id)?;
        let missing = || Rejection::NotFound {
            instance: id.clone(),
        };
        self.instances.get(id).ok_or_else(missing)
    }

    fn check_owner(&self, id: &InstanceId) -> Result<(), Rejection> {
        let owner = partition_of(id, self.config.partition_count);
        if owner != self.config.partition {
            return Err(Rejection::WrongPartition {
                instance: id.clone(),
                owner,
            });
        }
        Ok(())
    }

    fn create(
        &mut self,
        step: &mut Step,
        create: &CreateInstance,
    ) -> Result<ClientResponse, Rejection> {
        let id = &create.instance;
        if id.as_str().is_empty() || id.is_entity() {
            let reason = format!("{id:?} is not a valid orchestration instance id");
            return Err(Rejection::InvalidArgument { reason });
        }
        self.check_owner(id)?;
        if let Some(existing) = self.instances.get(id) {
            let status = existing.status;
            if !status.is_terminal() || !create.replaceable.contains(&status) {
                return Err(Rejection::AlreadyExists {
                    instance: id.clone(),
                    status,
                });
            }
            debug!(instance = %id, status = ?status, "terminal instance replaced");
            self.remove_instance(step, id);
        }

        let started = first_start(create, step);
        let execution = started.execution_id.clone();
        self.instances
            .insert(id.clone(), record_from_start(&started, step.now));
        let event = HistoryEvent::new(step.now, EventKind::ExecutionStarted(started));
        self.deliver(step, TaskMessage::to_instance(id.clone(), event));
        Ok(ClientResponse::Created {
            instance: id.clone(),
            execution,
        })
    }

    fn raise_event(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        name: &str,
        input: &Payload,
    ) -> Result<ClientResponse, Rejection> {
        let max = self.config.limits.inbox_events_max;
        if self.sessions.inbox_len(id) >= max {
            return Err(Rejection::LimitExceeded {
                limit: "inbox_events_max".into(),
                max: max as u64,
            });
        }
        let raised = EventRaised {
            name: name.to_owned(),
            input: input.clone(),
        };
        self.send_control(step, id, EventKind::EventRaised(raised))
    }

    /// Terminates `id`. An instance whose start is still only scheduled is terminated in
    /// place (no worker would see the request before the start); any other goes through its
    /// inbox, where termination passes even a suspension.
    fn terminate(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        reason: &Payload,
        recurse: bool,
    ) -> Result<ClientResponse, Rejection> {
        let record = self.locate(id)?;
        if record.status == OrchestrationStatus::Pending && self.start_is_delayed(id) {
            let now = step.now;
            self.instances.update(id, |r| {
                r.output = reason.clone();
                r.completed = Some(now);
            });
            self.instances
                .set_status(id, OrchestrationStatus::Terminated, now);
            step.changed.insert(id.clone());
            step.dirty_instances.insert(id.clone());
            return Ok(ClientResponse::Accepted);
        }
        let terminated = ExecutionTerminated {
            input: reason.clone(),
            recurse,
        };
        self.send_control(step, id, EventKind::ExecutionTerminated(terminated))
    }

    /// Delivers an event to `id`; on a terminal instance it is accepted and dropped.
    fn send_control(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        kind: EventKind,
    ) -> Result<ClientResponse, Rejection> {
        let record = self.locate(id)?;
        if record.status.is_terminal() {
            debug!(instance = %id, "request for a terminal instance has no effect");
            return Ok(ClientResponse::Accepted);
        }
        let event = HistoryEvent::new(step.now, kind);
        self.deliver(step, TaskMessage::to_instance(id.clone(), event));
        Ok(ClientResponse::Accepted)
    }

    fn signal_entity(
        &mut self,
        step: &mut Step,
        signal: &SignalEntity,
    ) -> Result<ClientResponse, Rejection> {
        // The canonical form (`@name@key`, name lowercased) is the entity's one address.
        let id = canonical_entity(&signal.entity)?;
        self.check_owner(&id)?;
        let max = self.config.limits.inbox_events_max;
        if self
            .entities
            .get(&id)
            .is_some_and(|slot| slot.record.queue.len() >= max)
        {
            return Err(Rejection::LimitExceeded {
                limit: "inbox_events_max".into(),
                max: max as u64,
            });
        }
        let signaled = EntityOperationSignaled {
            request_id: signal.request_id.clone(),
            operation: signal.operation.clone(),
            scheduled_time: signal.scheduled_time,
            input: signal.input.clone(),
            target_instance_id: None,
        };
        let event = HistoryEvent::new(step.now, EventKind::EntityOperationSignaled(signaled));
        self.deliver(step, TaskMessage::to_instance(id, event));
        Ok(ClientResponse::Accepted)
    }

    /// Releases `holder`'s lock on `entity` through the entity's own unlock path, which then
    /// hands the lock to the next waiter.
    fn release_entity_lock(
        &mut self,
        step: &mut Step,
        entity: &InstanceId,
        holder: &LockHolder,
    ) -> Result<ClientResponse, Rejection> {
        let id = canonical_entity(entity)?;
        self.check_owner(&id)?;
        let held = self
            .entities
            .get(&id)
            .and_then(|s| s.record.locked_by.as_ref());
        if held != Some(holder) {
            return Ok(ClientResponse::LockReleased(false));
        }
        let unlock = EntityUnlockSent {
            critical_section_id: holder.critical_section_id.clone(),
            parent_instance_id: Some(holder.instance_id.clone()),
            target_instance_id: None,
        };
        let event = HistoryEvent::new(step.now, EventKind::EntityUnlockSent(unlock));
        self.deliver(step, TaskMessage::to_instance(id, event));
        Ok(ClientResponse::LockReleased(true))
    }

    fn purge(&mut self, step: &mut Step, id: &InstanceId) -> Result<ClientResponse, Rejection> {
        let status = match self.locate(id) {
            Ok(record) => record.status,
            Err(Rejection::NotFound { .. }) => return Ok(purged(0, true)),
            Err(other) => return Err(other),
        };
        if !status.is_terminal() {
            return Err(Rejection::FailedPrecondition {
                instance: id.clone(),
                status,
            });
        }
        self.remove_instance(step, id);
        Ok(purged(1, true))
    }

    /// Purges up to `purge_batch_max` terminal instances matching `filter`.
    fn purge_by_filter(&mut self, step: &mut Step, filter: &InstanceFilter) -> ClientResponse {
        let asked = &filter.statuses;
        let terminal = OrchestrationStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal());
        let statuses: Vec<_> = terminal
            .filter(|s| asked.is_empty() || asked.contains(s))
            .collect();
        if statuses.is_empty() {
            return purged(0, true);
        }
        let filter = InstanceFilter {
            statuses,
            ..filter.clone()
        };
        let request = PageRequest {
            after: None,
            size: self.config.limits.purge_batch_max,
        };
        let page = self.instances.index().query(&filter, &request);
        for id in &page.ids {
            self.remove_instance(step, id);
        }
        purged(page.ids.len() as u64, page.next.is_none())
    }

    fn rewind(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        reason: &Payload,
    ) -> Result<ClientResponse, Rejection> {
        let status = self.locate(id)?.status;
        if status != OrchestrationStatus::Failed {
            return Err(Rejection::FailedPrecondition {
                instance: id.clone(),
                status,
            });
        }
        self.instances.update(id, |r| {
            r.output = None;
            r.failure = None;
            r.completed = None;
        });
        self.instances
            .set_status(id, OrchestrationStatus::Running, step.now);
        step.changed.insert(id.clone());
        let rewound = ExecutionRewound {
            reason: reason.clone(),
            ..ExecutionRewound::default()
        };
        self.send_control(step, id, EventKind::ExecutionRewound(rewound))
    }

    /// Answers a wait at once if it can be, else records it.
    fn wait_for(
        &mut self,
        step: &mut Step,
        client: ClientId,
        seq: RequestSeq,
        wait: &WaitFor,
    ) -> Option<ClientResponse> {
        let id = &wait.instance;
        let record = match self.locate(id) {
            Ok(record) => record,
            Err(rejection) => return Some(ClientResponse::Rejected(rejection)),
        };
        if wait.until.holds(record.status) {
            let view = InstanceView::of(id, record, wait.payloads);
            return Some(ClientResponse::Instance(Box::new(view)));
        }
        if wait.deadline.is_some_and(|d| d <= step.now) {
            let rejection = Rejection::DeadlineExceeded {
                instance: id.clone(),
            };
            return Some(ClientResponse::Rejected(rejection));
        }
        let max = self.config.limits.waiters_max;
        if self.waits.len() >= max {
            let limit = "waiters_max".into();
            let rejection = Rejection::LimitExceeded {
                limit,
                max: max as u64,
            };
            return Some(ClientResponse::Rejected(rejection));
        }
        let waiter = Waiter {
            client,
            seq,
            until: wait.until,
            deadline: wait.deadline,
            payloads: wait.payloads,
        };
        self.waits.add(id.clone(), waiter);
        None
    }

    /// Deletes an instance with its history and session; its waits are told it is gone.
    fn remove_instance(&mut self, step: &mut Step, id: &InstanceId) {
        self.instances.remove(id);
        self.sessions.remove(id);
        step.changed.insert(id.clone());
    }
}

fn purged(count: u64, complete: bool) -> ClientResponse {
    ClientResponse::Purged { count, complete }
}

/// The `ExecutionStarted` of a created instance; a start time not in the future is no delay.
fn first_start(create: &CreateInstance, step: &mut Step) -> ExecutionStarted {
    let execution = create.execution.clone();
    ExecutionStarted {
        name: create.name.clone(),
        version: create.version.clone(),
        input: create.input.clone(),
        instance_id: create.instance.clone(),
        execution_id: execution.unwrap_or_else(|| step.ids.next_execution_id()),
        parent: None,
        scheduled_start: create.scheduled_start.filter(|t| *t > step.now),
        parent_trace_context: create.parent_trace_context.clone(),
        orchestration_span_id: None,
        tags: create.tags.clone(),
    }
}

/// An entity id in its canonical form (`@name@key`, name lowercased), which places the
/// entity; a malformed one is `InvalidArgument`.
fn canonical_entity(id: &InstanceId) -> Result<InstanceId, Rejection> {
    EntityId::parse(id.as_str())
        .map(|entity| entity.instance_id())
        .map_err(|error| Rejection::InvalidArgument {
            reason: error.to_string(),
        })
}
