//! The runtime status of an orchestration instance.

use serde::{Deserialize, Serialize};

/// Where an instance is in its life, numbered as in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrchestrationStatus {
    /// Started and not finished.
    Running = 0,
    /// Finished with a result.
    Completed = 1,
    /// Restarted itself with a new execution; never reported as terminal.
    ContinuedAsNew = 2,
    /// Finished with a failure.
    Failed = 3,
    /// Canceled (kept for the protocol; the engine does not produce it).
    Canceled = 4,
    /// Stopped by a terminate request.
    Terminated = 5,
    /// Created, but its first episode has not run yet.
    Pending = 6,
    /// Paused by a suspend request; events wait until it is resumed.
    Suspended = 7,
}

impl OrchestrationStatus {
    /// Every status, in protocol order.
    pub const ALL: [OrchestrationStatus; 8] = [
        Self::Running,
        Self::Completed,
        Self::ContinuedAsNew,
        Self::Failed,
        Self::Canceled,
        Self::Terminated,
        Self::Pending,
        Self::Suspended,
    ];

    /// Whether the instance is finished: it runs no more episodes and drops incoming messages.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Terminated
        )
    }

    /// The protocol's number for this status.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The status with the protocol's number `n`, if there is one.
    pub fn from_i32(n: i32) -> Option<OrchestrationStatus> {
        Self::ALL.into_iter().find(|s| s.as_i32() == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_is_none() {
        for s in OrchestrationStatus::ALL {
            assert_eq!(OrchestrationStatus::from_i32(s.as_i32()), Some(s));
        }
        assert_eq!(OrchestrationStatus::from_i32(8), None);
        assert_eq!(OrchestrationStatus::from_i32(-1), None);
    }

    #[test]
    fn only_finished_statuses_are_terminal() {
        use OrchestrationStatus::*;
        let terminal: Vec<_> = OrchestrationStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Completed, Failed, Canceled, Terminated]);
    }
}
