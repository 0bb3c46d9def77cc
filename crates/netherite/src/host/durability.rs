//! The commit log's durable point as a watched value, for everything that must wait on it.
//!
//! Outgoing messages, client answers, read results and checkpoints all wait until the update
//! they depend on is durable. Rather than each holding its own notification, one small task per
//! partition follows the log: woken when the loop has appended a batch, it waits for the log's
//! flusher to cover it and publishes the new durable point. Waiters compare a position with
//! that one value, so a flush answers every waiter at once.

use std::sync::Arc;

use netherite_core::{CommitPosition, PartitionId};
use netherite_faster::log::CommitLog;
use tokio::sync::{oneshot, watch};

use crate::Error;

/// The durable point, or why the log stopped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durability {
    /// Every update whose commit position is at or below this is durable.
    pub(crate) position: u64,
    /// Set once the commit log stopped; nothing becomes durable afterwards.
    pub(crate) failure: Option<String>,
}

/// A receiver of the durable point.
#[derive(Clone, Debug)]
pub(crate) struct DurableWatch {
    partition: PartitionId,
    receiver: watch::Receiver<Durability>,
}

impl DurableWatch {
    /// Waits until `position` is durable; fails if the log stopped first.
    pub(crate) async fn wait_for(&mut self, position: CommitPosition) -> Result<(), Error> {
        let partition = self.partition;
        let reached = self
            .receiver
            .wait_for(|d| d.position >= position.0 || d.failure.is_some())
            .await
            .map_err(|_| stopped(partition, "the commit log was closed".into()))?;
        if reached.position >= position.0 {
            return Ok(());
        }
        let reason = reached.failure.clone().unwrap_or_default();
        Err(stopped(
            partition,
            format!("the commit log stopped: {reason}"),
        ))
    }

    /// Sends `value` on `reply` once `position` is durable: at once if it is already, else
    /// from a task that waits; the log's failure instead if it stopped first.
    pub(crate) fn send_once_durable<T: Send + 'static>(
        &self,
        position: CommitPosition,
        value: Result<T, Error>,
        reply: oneshot::Sender<Result<T, Error>>,
    ) {
        if self.is_durable(position) {
            let _ = reply.send(value);
            return;
        }
        let mut durable = self.clone();
        tokio::spawn(async move {
            let answer = durable.wait_for(position).await.and(value);
            let _ = reply.send(answer);
        });
    }

    /// Whether `position` is durable now.
    pub(crate) fn is_durable(&self, position: CommitPosition) -> bool {
        self.receiver.borrow().position >= position.0
    }

    /// The durable point now.
    pub(crate) fn position(&self) -> u64 {
        self.receiver.borrow().position
    }

    /// Why the log stopped, once it has.
    pub(crate) fn failure(&self) -> Option<String> {
        self.receiver.borrow().failure.clone()
    }
}

/// The loop's side: tells the follower task that more was appended.
#[derive(Debug)]
pub(crate) struct DurabilityTracker {
    appended: watch::Sender<u64>,
    watch: DurableWatch,
}

impl DurabilityTracker {
    /// Starts following `log`, whose durable point is `durable` now.
    pub(crate) fn spawn(partition: PartitionId, log: Arc<CommitLog>) -> DurabilityTracker {
        let durable = log.durable().0;
        let (appended, appended_rx) = watch::channel(durable);
        let (durable_tx, receiver) = watch::channel(Durability {
            position: durable,
            failure: None,
        });
        tokio::spawn(follow(partition, log, appended_rx, durable_tx));
        DurabilityTracker {
            appended,
            watch: DurableWatch {
                partition,
                receiver,
            },
        }
    }

    /// Says the log now holds records up to `end`.
    pub(crate) fn appended(&self, end: CommitPosition) {
        self.appended.send_if_modified(|current| {
            let newer = end.0 > *current;
            *current = (*current).max(end.0);
            newer
        });
    }

    /// A receiver of the durable point.
    pub(crate) fn watch(&self) -> DurableWatch {
        self.watch.clone()
    }
}

/// Waits for each appended batch to become durable and publishes the durable point; ends when
/// the loop drops its tracker or the log stops.
async fn follow(
    partition: PartitionId,
    log: Arc<CommitLog>,
    mut appended: watch::Receiver<u64>,
    durable: watch::Sender<Durability>,
) {
    while appended.changed().await.is_ok() {
        match log.flush().await {
            Ok(point) => {
                durable.send_if_modified(|d| {
                    let newer = point.0 > d.position;
                    d.position = d.position.max(point.0);
                    newer
                });
            }
            Err(error) => {
                tracing::error!(partition = %partition, %error, "commit log stopped");
                durable.send_modify(|d| d.failure = Some(error.to_string()));
                return;
            }
        }
    }
}

/// The error for a partition whose log can no longer make anything durable.
fn stopped(partition: PartitionId, reason: String) -> Error {
    Error::PartitionStopped { partition, reason }
}
