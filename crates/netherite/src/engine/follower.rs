//! Following the transport's ownership proposals: a host started for each partition proposed
//! to this node, shut down for each one taken away.
//!
//! One node alone (`restart` off) reports every start, good or failed, to the engine, which
//! waits for all of them; a host that stops on its own stays in the map, so that calls for its
//! partition fail at once. Nodes sharing storage (`restart` on) keep trying: a partition may
//! have to wait for another node's claim on it to run out, and one whose host stops on its
//! own (its storage failed, its lease was taken over) is started again, after a pause that
//! doubles with each failure in a row, for as long as it is proposed here.
//!
//! Hosts of partitions taken away stop in the background, side by side (each takes a last
//! checkpoint and gives its lease up), so that a rebalance that moves many partitions does not
//! hand them over one at a time; a partition proposed here again starts only once its old
//! host has stopped. Told to stop, the follower waits for those hosts, then returns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use netherite_core::PartitionId;
use netherite_core::transport::{Ownership, OwnershipStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinError, JoinSet};

use super::HostMap;
use crate::Error;
use crate::host::{HostContext, PartitionHost};

/// The pause before a failed partition is started again, the first time; it doubles with
/// each further failure in a row, up to [`RESTART_PAUSE_MAX`].
const RESTART_PAUSE_MIN: Duration = Duration::from_millis(500);
/// The longest pause between two starts of a failing partition.
const RESTART_PAUSE_MAX: Duration = Duration::from_secs(30);

/// What a start task ends with: its partition, and the host or why it could not start.
type Started = (PartitionId, Result<PartitionHost, Error>);

/// Follows the ownership proposals of the transport for this node.
pub(super) struct Follower {
    pub(super) context: Arc<HostContext>,
    pub(super) hosts: Arc<HostMap>,
    pub(super) started: mpsc::UnboundedSender<Result<PartitionId, Error>>,
    /// Whether a partition that fails to start, or whose host stops on its own, is started
    /// again while it is still proposed to this node (nodes sharing storage), rather than
    /// reported and left (one node: the start fails, a stopped host stays stopped).
    pub(super) restart: bool,
}

/// What the follower keeps track of while it runs.
#[derive(Default)]
struct Following {
    /// The partitions the transport proposes to this node now.
    owned: HashSet<PartitionId>,
    /// Hosts being started; the current start task of each partition, and the partition of
    /// every start task (a superseded one included, until it is collected).
    starting: JoinSet<Started>,
    start_tasks: HashMap<PartitionId, AbortHandle>,
    task_partitions: HashMap<tokio::task::Id, PartitionId>,
    /// One task per running host, ending when the host stops.
    running: JoinSet<(PartitionId, Arc<PartitionHost>)>,
    /// Hosts stopping in the background, and for each partition a signal that its last one
    /// has stopped (the sender is dropped then).
    stopping: JoinSet<()>,
    stopped: HashMap<PartitionId, oneshot::Receiver<()>>,
    /// Failed starts in a row, by partition, for the pause before the next.
    failures: HashMap<PartitionId, u32>,
}

impl Follower {
    /// Follows `proposals` until they end or `stop` fires (or its sender is dropped).
    pub(super) async fn run(self, mut proposals: OwnershipStream, mut stop: oneshot::Receiver<()>) {
        let mut f = Following::default();
        loop {
            tokio::select! {
                proposal = proposals.next() => match proposal {
                    Some(Ownership::Acquired(partition)) => self.acquired(&mut f, partition),
                    Some(Ownership::Lost(partition)) => self.lost(&mut f, partition),
                    None => break,
                },
                Some(done) = f.starting.join_next_with_id() => self.started(&mut f, done),
                Some(Ok((partition, host))) = f.running.join_next() => {
                    self.host_ended(&mut f, partition, &host);
                }
                Some(_) = f.stopping.join_next() => {}
                _ = &mut stop => break,
            }
        }
        // Starts still under way are called off (their claims are given back); hosts of
        // partitions taken away finish stopping.
        f.starting.shutdown().await;
        while f.stopping.join_next().await.is_some() {}
    }

    fn acquired(&self, f: &mut Following, partition: PartitionId) {
        f.owned.insert(partition);
        if !f.start_tasks.contains_key(&partition) && self.hosts.hosted(partition).is_none() {
            self.start(f, partition, Duration::ZERO);
        }
    }

    fn lost(&self, f: &mut Following, partition: PartitionId) {
        f.owned.remove(&partition);
        if let Some(task) = f.start_tasks.remove(&partition) {
            task.abort();
        }
        if let Some(host) = self.hosts.remove(partition) {
            tracing::info!(partition = %partition, "partition lost to another node");
            stop_in_background(f, partition, host);
        }
    }

    /// Starts the host of `partition` after `pause`, and after its previous host stopped.
    fn start(&self, f: &mut Following, partition: PartitionId, pause: Duration) {
        let context = self.context.clone();
        let previous = f.stopped.remove(&partition);
        let task = f.starting.spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            tokio::time::sleep(pause).await;
            (partition, PartitionHost::start(partition, context).await)
        });
        f.task_partitions.insert(task.id(), partition);
        f.start_tasks.insert(partition, task);
    }

    fn started(&self, f: &mut Following, done: Result<(tokio::task::Id, Started), JoinError>) {
        let (id, outcome) = match done {
            Ok((id, (_, outcome))) => (id, outcome.map_err(Some)),
            Err(error) if error.is_cancelled() => (error.id(), Err(None)),
            Err(error) => {
                let reason = format!("a partition's start task died: {error}");
                (error.id(), Err(Some(Error::Closed(reason))))
            }
        };
        let Some(partition) = f.task_partitions.remove(&id) else {
            return;
        };
        // Only the partition's current start counts: an earlier one that finished while it
        // was being called off (the partition lost, and proposed here again) is stale.
        let current = f.start_tasks.get(&partition).is_some_and(|t| t.id() == id);
        if current {
            f.start_tasks.remove(&partition);
        }
        match outcome {
            Ok(host) if current && f.owned.contains(&partition) => self.hosting(f, host),
            Ok(host) => {
                tracing::info!(partition = %partition, "partition lost while it started");
                stop_in_background(f, partition, Arc::new(host));
            }
            Err(Some(error)) if current => self.start_failed(f, partition, error),
            Err(_) => {}
        }
    }

    /// Puts a started host in the map, and watches for it to stop.
    fn hosting(&self, f: &mut Following, host: PartitionHost) {
        let partition = host.partition();
        f.failures.remove(&partition);
        let host = self.hosts.insert(host);
        f.running.spawn(async move {
            host.ended().await;
            (partition, host)
        });
        let _ = self.started.send(Ok(partition));
    }

    fn start_failed(&self, f: &mut Following, partition: PartitionId, error: Error) {
        tracing::error!(partition = %partition, %error, "partition failed to start");
        if self.restart && f.owned.contains(&partition) {
            let pause = self.next_pause(f, partition);
            tracing::info!(partition = %partition, ?pause, "partition start tried again");
            self.start(f, partition, pause);
        } else {
            let _ = self.started.send(Err(error));
        }
    }

    /// A host that stopped without being told to (its storage failed, or another node took
    /// its lease over). With `restart`, it leaves the map and starts again while proposed
    /// here; without, it stays, so that calls for its partition fail at once.
    fn host_ended(&self, f: &mut Following, partition: PartitionId, host: &Arc<PartitionHost>) {
        let current = self.hosts.hosted(partition);
        if !current.is_some_and(|current| Arc::ptr_eq(&current, host)) {
            return;
        }
        tracing::warn!(partition = %partition, "partition host stopped on its own");
        if !self.restart {
            return;
        }
        self.hosts.remove(partition);
        if f.owned.contains(&partition) && !f.start_tasks.contains_key(&partition) {
            let pause = self.next_pause(f, partition);
            self.start(f, partition, pause);
        }
    }

    /// The pause before the next start of `partition`: doubling from 0.5 s up to 30 s.
    fn next_pause(&self, f: &mut Following, partition: PartitionId) -> Duration {
        let failures = f.failures.entry(partition).or_default();
        *failures = failures.saturating_add(1);
        let doublings = (*failures - 1).min(6);
        (RESTART_PAUSE_MIN * 2u32.pow(doublings)).min(RESTART_PAUSE_MAX)
    }
}

/// Stops `host` gracefully in a task of its own; the partition's next start waits for it.
fn stop_in_background(f: &mut Following, partition: PartitionId, host: Arc<PartitionHost>) {
    let (stopped, stopped_rx) = oneshot::channel::<()>();
    let previous = f.stopped.insert(partition, stopped_rx);
    f.stopping.spawn(async move {
        // A host started while an older one was stopping stops after it.
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        if let Err(error) = host.shutdown().await {
            tracing::warn!(partition = %partition, %error, "partition stop failed");
        }
        drop(stopped);
    });
}
