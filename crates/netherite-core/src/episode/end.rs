//! How an episode ends: completion, continue-as-new, failure for an invalid answer, and what
//! an ending execution owes its parent and its children.

use std::collections::BTreeSet;

use super::apply::{End, Episode, Problem};
use super::{EpisodeOutcome, INVALID_ACTION, NextExecution, status_of};
use crate::ids::{IdGen, InstanceId};
use crate::model::{
    CompleteOrchestration, EventKind, ExecutionCompleted, ExecutionStarted, ExecutionTerminated,
    FailureDetails, HistoryEvent, OrchestrationStatus, Payload, SubOrchestrationCompleted,
    SubOrchestrationFailed,
};

impl Episode<'_, '_> {
    /// Applies a `CompleteOrchestration` action: an end, or a continue-as-new.
    pub(super) fn complete(
        &mut self,
        id: i32,
        complete: &CompleteOrchestration,
        ids: &mut IdGen,
    ) -> Result<(), Problem> {
        match complete.status {
            OrchestrationStatus::ContinuedAsNew => self.continue_as_new(complete, ids)?,
            status if status.is_terminal() => {}
            status => {
                return Err(format!(
                    "CompleteOrchestration with status {status:?}, which does not end an execution"
                ));
            }
        }
        let completed = ExecutionCompleted {
            status: complete.status,
            result: complete.result.clone(),
            failure: complete.failure.clone(),
        };
        self.end = Some(End {
            event_id: id,
            completed,
        });
        Ok(())
    }

    /// Prepares the execution that replaces this one.
    fn continue_as_new(
        &mut self,
        complete: &CompleteOrchestration,
        ids: &mut IdGen,
    ) -> Result<(), Problem> {
        let old = self
            .started
            .ok_or("continue-as-new in an execution that was never started")?;
        check_carryover(&complete.carryover_events)?;
        let execution_id = ids.next_execution_id();
        let tags = if complete.tags.is_empty() {
            old.tags.clone()
        } else {
            complete.tags.clone()
        };
        let started = ExecutionStarted {
            version: complete.new_version.clone().or_else(|| old.version.clone()),
            input: complete.result.clone(),
            execution_id: execution_id.clone(),
            scheduled_start: None,
            tags,
            ..old.clone()
        };
        self.out.next_execution = Some(NextExecution {
            execution_id,
            started: HistoryEvent::new(self.input.now, EventKind::ExecutionStarted(started)),
            carryover: complete.carryover_events.clone(),
        });
        Ok(())
    }

    /// Replaces whatever the actions did with a failure naming `problem`.
    pub(super) fn fail(mut self, problem: Problem) -> Self {
        let mut failure = FailureDetails::new(INVALID_ACTION, problem);
        failure.is_non_retriable = true;
        self.end = Some(End {
            event_id: HistoryEvent::NO_ID,
            completed: ExecutionCompleted {
                status: OrchestrationStatus::Failed,
                result: None,
                failure: Some(failure),
            },
        });
        self
    }

    /// The outcome of an episode that came after the execution had ended: only its events.
    pub(super) fn already_ended(mut self, ended: &ExecutionCompleted) -> EpisodeOutcome {
        self.out.status = ended.status;
        self.out.output = ended.result.clone();
        self.out.failure = ended.failure.clone();
        self.out
    }

    /// Records the end, if any, and settles the status.
    pub(super) fn finish(mut self) -> EpisodeOutcome {
        // A continued or rewound execution runs again, whatever its old events said.
        let runs_again = self.out.next_execution.is_some() || self.out.rewound_history.is_some();
        self.out.status = if runs_again {
            OrchestrationStatus::Running
        } else {
            status_of(self.input.history.iter().chain(self.input.new_events))
        };
        if let Some(end) = self.end.take() {
            self.record_end(end);
        }
        self.out
    }

    fn record_end(&mut self, end: End) {
        let completed = end.completed;
        self.confirm(
            end.event_id,
            EventKind::ExecutionCompleted(completed.clone()),
        );
        if !completed.status.is_terminal() {
            // Continued as new: the next execution carries on, nobody is told anything.
            return;
        }

        self.out.status = completed.status;
        self.out.output = completed.result.clone();
        self.out.failure = completed.failure.clone();
        self.notify_parent(&completed);
        self.terminate_children();
    }

    /// Tells the parent, if this execution is a sub-orchestration, how it ended.
    fn notify_parent(&mut self, completed: &ExecutionCompleted) {
        let Some(parent) = self.started.and_then(|started| started.parent.as_ref()) else {
            return;
        };
        let task_scheduled_id = parent.task_scheduled_id;
        let kind = if completed.status == OrchestrationStatus::Completed {
            EventKind::SubOrchestrationCompleted(SubOrchestrationCompleted {
                task_scheduled_id,
                result: completed.result.clone(),
            })
        } else {
            let failure = completed.failure.clone().unwrap_or_else(|| {
                made_up_failure(self.input.instance_id, completed.status, &completed.result)
            });
            EventKind::SubOrchestrationFailed(SubOrchestrationFailed {
                task_scheduled_id,
                failure,
            })
        };
        self.send(
            parent.instance_id.clone(),
            parent.execution_id.clone(),
            kind,
        );
    }

    /// After a recursive terminate request, terminates every child that has not reported back.
    fn terminate_children(&mut self) {
        let Some(reason) = recursive_terminate_reason(self.input.new_events) else {
            return;
        };
        let history = self.input.history.iter().chain(&self.out.appended);
        for child in unfinished_children(history) {
            let terminated = ExecutionTerminated {
                input: reason.clone(),
                recurse: true,
            };
            self.send(child, None, EventKind::ExecutionTerminated(terminated));
        }
    }
}

/// Carried-over events are the external events the old execution never consumed; they become
/// inbox messages of the new one. Any other kind (an `ExecutionCompleted` that would end the
/// new execution at once, a confirmation with a stale action id) would corrupt its history.
fn check_carryover(events: &[HistoryEvent]) -> Result<(), Problem> {
    match events
        .iter()
        .find(|event| !matches!(event.kind, EventKind::EventRaised(_)))
    {
        Some(event) => Err(format!(
            "continue-as-new carries over an event of kind {}; only raised events carry over",
            event.kind.protocol_number()
        )),
        None => Ok(()),
    }
}

/// The failure a parent hears of when its child ended without failure details.
fn made_up_failure(
    child: &InstanceId,
    status: OrchestrationStatus,
    result: &Payload,
) -> FailureDetails {
    let what = match status {
        OrchestrationStatus::Terminated => "was terminated",
        OrchestrationStatus::Canceled => "was canceled",
        _ => "failed without failure details",
    };
    let message = match result {
        Some(output) => format!("sub-orchestration {child} {what}: {output}"),
        None => format!("sub-orchestration {child} {what}"),
    };
    FailureDetails::new(format!("Orchestration{status:?}"), message)
}

/// The reason of the first recursive terminate request among `events`.
fn recursive_terminate_reason(events: &[HistoryEvent]) -> Option<&Payload> {
    events.iter().find_map(|event| match &event.kind {
        EventKind::ExecutionTerminated(terminated) if terminated.recurse => Some(&terminated.input),
        _ => None,
    })
}

/// The children created in `history` that have neither completed nor failed, in creation
/// order.
fn unfinished_children<'e>(
    history: impl Iterator<Item = &'e HistoryEvent> + Clone,
) -> Vec<InstanceId> {
    let finished: BTreeSet<i32> = history
        .clone()
        .filter_map(|event| match &event.kind {
            EventKind::SubOrchestrationCompleted(done) => Some(done.task_scheduled_id),
            EventKind::SubOrchestrationFailed(failed) => Some(failed.task_scheduled_id),
            _ => None,
        })
        .collect();
    history
        .filter_map(|event| match &event.kind {
            EventKind::SubOrchestrationCreated(created) if !finished.contains(&event.event_id) => {
                Some(created.instance_id.clone())
            }
            _ => None,
        })
        .collect()
}
