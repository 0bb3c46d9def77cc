//! Worker answers too large to keep: payloads over `payload_bytes_max`, records over the
//! commit log's limit.
//!
//! The client refuses an input over `payload_bytes_max` before sending it, but what the
//! workers produce (an activity's output, an orchestration's result, the inputs it passes on,
//! its custom status) is only known once they ran. An oversized one would be logged and then
//! sent on to other partitions, whose transport may refuse it for good, leaving the instance
//! waiting forever. So the loop checks each worker answer before logging it and replaces an
//! oversized one by a failure that says which payload was too large: the activity fails (and
//! the orchestration can handle that), or the orchestration fails.

use netherite_core::model::{
    ActionKind, CompleteOrchestration, FailureDetails, OrchestrationStatus, OrchestratorAction,
    Payload,
};
use netherite_core::partition::UpdateKind;

/// The error type of an episode or activity result too large to log.
pub(crate) const RESULT_TOO_LARGE: &str = "ResultTooLarge";

/// The error type of an episode or activity whose payload is over `payload_bytes_max`.
pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";

/// Which payload of the worker answer `kind` is over `max` bytes, said in words; `None` if
/// none is (or `kind` is not a worker answer).
pub(crate) fn oversized_payload(kind: &UpdateKind, max: u64) -> Option<String> {
    let over = |what: &str, payload: &Payload| {
        let size = payload.as_ref().map_or(0, |p| p.len() as u64);
        (size > max).then(|| format!("{what} is {size} bytes, over payload_bytes_max = {max}"))
    };
    match kind {
        UpdateKind::ActivityCompleted(done) => match &done.result {
            Ok(output) => over("the activity's output", output),
            Err(_) => None,
        },
        UpdateKind::EpisodeCompleted(done) => over("the custom status", &done.custom_status)
            .or_else(|| {
                done.actions
                    .iter()
                    .find_map(|a| action_payload(&a.kind, &over))
            }),
        _ => None,
    }
}

/// The payload of `action` that `over` finds too large.
fn action_payload(
    action: &ActionKind,
    over: &impl Fn(&str, &Payload) -> Option<String>,
) -> Option<String> {
    match action {
        ActionKind::ScheduleTask(task) => over(
            &format!("the input of activity '{}'", task.name),
            &task.input,
        ),
        ActionKind::CreateSubOrchestration(sub) => over(
            &format!("the input of sub-orchestration '{}'", sub.name),
            &sub.input,
        ),
        ActionKind::SendEvent(event) => {
            over(&format!("the data of event '{}'", event.name), &event.data)
        }
        ActionKind::CompleteOrchestration(complete) => {
            over("the orchestration's result", &complete.result)
        }
        ActionKind::TerminateOrchestration(terminate) => {
            over("the reason of a termination", &terminate.reason)
        }
        _ => None,
    }
}

/// Replaces the worker answer `kind` by a failure of type `error_type` saying `error`: an
/// activity fails, an orchestration episode fails the orchestration. False (and `kind` left
/// alone) for other kinds.
pub(crate) fn replace_by_failure(kind: &mut UpdateKind, error_type: &str, error: &str) -> bool {
    let failure = FailureDetails::new(error_type, error);
    match kind {
        UpdateKind::ActivityCompleted(done) => {
            done.result = Err(failure);
            true
        }
        UpdateKind::EpisodeCompleted(done) => {
            let id = done
                .actions
                .iter()
                .map(|a| a.id)
                .max()
                .map_or(0, |id| id + 1);
            done.actions = vec![OrchestratorAction {
                id,
                kind: ActionKind::CompleteOrchestration(failed(failure)),
            }];
            done.custom_status = None;
            true
        }
        _ => false,
    }
}

fn failed(failure: FailureDetails) -> CompleteOrchestration {
    CompleteOrchestration {
        status: OrchestrationStatus::Failed,
        result: None,
        details: None,
        new_version: None,
        carryover_events: Vec::new(),
        failure: Some(failure),
        tags: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use netherite_core::partition::ActivityCompleted;

    use super::*;

    fn activity(output: &str) -> UpdateKind {
        UpdateKind::ActivityCompleted(ActivityCompleted {
            activity: Default::default(),
            result: Ok(Some(output.to_string())),
        })
    }

    /// An output at the limit passes; one byte more is named and becomes the activity's
    /// failure.
    #[test]
    fn activity_output_over_the_limit_fails_the_activity() {
        assert_eq!(oversized_payload(&activity("abcd"), 4), None);
        let mut kind = activity("abcde");
        let error = oversized_payload(&kind, 4).expect("over");
        assert!(error.contains("activity's output is 5 bytes"), "{error}");

        assert!(replace_by_failure(&mut kind, PAYLOAD_TOO_LARGE, &error));
        let UpdateKind::ActivityCompleted(done) = kind else {
            panic!("still an activity answer")
        };
        let failure = done.result.expect_err("failed");
        assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    }

    /// Other updates are never replaced.
    #[test]
    fn other_updates_are_left_alone() {
        let mut kind = UpdateKind::TimersFired;
        assert_eq!(oversized_payload(&kind, 0), None);
        assert!(!replace_by_failure(&mut kind, PAYLOAD_TOO_LARGE, "x"));
    }
}
