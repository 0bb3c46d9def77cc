//! Messages between instances.
//!
//! A message is a history event addressed to an instance, the same shape the Durable Task
//! Framework uses: an `ExecutionStarted` creates the target, an `EventRaised` or a completion
//! lands in its inbox, an entity operation or lock request lands in an entity's queue.

use serde::{Deserialize, Serialize};

use super::HistoryEvent;
use crate::ids::{ExecutionId, InstanceId};

/// A history event on its way to an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// The instance it is for.
    pub target: InstanceId,
    /// The execution it is for; when set, a message for another execution is dropped.
    pub target_execution: Option<ExecutionId>,
    /// What it carries.
    pub event: HistoryEvent,
}

impl TaskMessage {
    /// A message for whatever execution of `target` is current.
    pub fn to_instance(target: InstanceId, event: HistoryEvent) -> TaskMessage {
        TaskMessage {
            target,
            target_execution: None,
            event,
        }
    }

    /// A message for one execution of `target`.
    pub fn to_execution(target: InstanceId, execution: ExecutionId, event: HistoryEvent) -> Self {
        TaskMessage {
            target,
            target_execution: Some(execution),
            event,
        }
    }
}
