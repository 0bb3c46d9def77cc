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
