//! The partition's timer: one task that wakes the loop when the earliest due time comes.
//!
//! The state machine reports the earliest due time of its timers and client waits
//! (`Effect::ArmTimer`); the loop publishes it here. The task sleeps until then, in naps of at
//! most [`TIMER_WAIT_MAX`] with a fresh look at the clock after each, so a timer sixty days out
//! neither overflows a sleep nor spins, and a wall clock that jumps is noticed within a nap.
//! When the time comes it sends one `TimersDue` and waits for the loop to publish the next due
//! time (or none), so it never fires twice for the same one.

use std::time::Duration;

use netherite_core::{PartitionId, Timestamp};
use tokio::sync::{mpsc, watch};

use super::clock::system_now;
use super::runner::Command;

/// The longest single sleep of the timer task.
pub const TIMER_WAIT_MAX: Duration = Duration::from_secs(3600);

/// Starts the timer of `partition`; it follows `due` and reports to `commands`.
pub(crate) fn spawn(
    partition: PartitionId,
    due: watch::Receiver<Option<Timestamp>>,
    commands: mpsc::Sender<Command>,
) {
    tokio::spawn(run(partition, due, commands));
}

async fn run(
    partition: PartitionId,
    mut due: watch::Receiver<Option<Timestamp>>,
    commands: mpsc::Sender<Command>,
) {
    loop {
        let next = *due.borrow_and_update();
        let Some(at) = next else {
            if due.changed().await.is_err() {
                return;
            }
            continue;
        };
        let wait = at.saturating_since(system_now());
        if wait.is_zero() {
            tracing::trace!(partition = %partition, due = %at, "timer due");
            if commands.send(Command::TimersDue(at)).await.is_err() {
                return;
            }
            if due.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(wait.min(TIMER_WAIT_MAX)) => {}
            changed = due.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn next_due(
        commands: &mut mpsc::Receiver<Command>,
        within: Duration,
    ) -> Option<Timestamp> {
        match tokio::time::timeout(within, commands.recv()).await {
            Ok(Some(Command::TimersDue(due))) => Some(due),
            Ok(other) => panic!("unexpected command {other:?}"),
            Err(_) => None,
        }
    }

    /// A due time in the past fires at once and only once; a far one stays quiet until the
    /// loop moves the due time closer, which the timer notices without waiting out its nap.
    #[tokio::test]
    async fn fires_once_and_follows_changes() {
        let (due_tx, due) = watch::channel(None);
        let (commands_tx, mut commands) = mpsc::channel(8);
        spawn(PartitionId(0), due, commands_tx);

        let past = system_now();
        due_tx.send_replace(Some(past));
        assert_eq!(
            next_due(&mut commands, Duration::from_secs(5)).await,
            Some(past)
        );
        assert_eq!(
            next_due(&mut commands, Duration::from_millis(50)).await,
            None,
            "once"
        );

        let far = system_now().saturating_add(Duration::from_secs(60 * 24 * 3600));
        due_tx.send_replace(Some(far));
        assert_eq!(
            next_due(&mut commands, Duration::from_millis(100)).await,
            None
        );

        let soon = system_now().saturating_add(Duration::from_millis(30));
        due_tx.send_replace(Some(soon));
        assert_eq!(
            next_due(&mut commands, Duration::from_secs(5)).await,
            Some(soon)
        );
    }

    /// The end of time is a due time like any other: no overflow, no firing.
    #[tokio::test]
    async fn end_of_time_never_fires() {
        let (due_tx, due) = watch::channel(Some(Timestamp::MAX));
        let (commands_tx, mut commands) = mpsc::channel(8);
        spawn(PartitionId(0), due, commands_tx);

        assert_eq!(
            next_due(&mut commands, Duration::from_millis(100)).await,
            None
        );
        drop(due_tx);
    }
}
