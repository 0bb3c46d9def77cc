//! The loop that runs a node's rounds against the store and tells its watchers.
//!
//! The first round runs at once, so a node proposes partitions as soon as it connects; then
//! one round per interval. Closing lets the loop give back what it holds (a release, so other
//! nodes claim those partitions at their next round instead of after the expiry) and ends every
//! ownership stream.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use netherite_core::PartitionId;
use netherite_core::transport::{Ownership, OwnershipStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::balancer::{Claim, Outcome};
use super::{Balancer, Claimed, OwnershipStore};
use crate::clock::Clock;

/// One round: list, plan, claim, settle. Returns the proposals it made.
pub(crate) async fn round(
    balancer: &mut Balancer,
    store: &dyn OwnershipStore,
    clock: &dyn Clock,
) -> Vec<Ownership> {
    let records = match store.list().await {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(node = %balancer.node(), %error, "ownership records not listed");
            return balancer.lapse(clock.now());
        }
    };
    let plan = balancer.plan(&records, clock.now());
    let mut outcomes = Vec::with_capacity(plan.len());
    for claim in plan {
        let outcome = attempt(store, balancer, &claim).await;
        outcomes.push((claim, outcome));
    }
    balancer.settle(outcomes, clock.now())
}

/// Writes one claim for this node and says what came of it.
async fn attempt(store: &dyn OwnershipStore, balancer: &Balancer, claim: &Claim) -> Outcome {
    let me = balancer.node();
    match store
        .claim(claim.partition, Some(me), claim.expected.as_ref())
        .await
    {
        Ok(Claimed::Won(record)) => Outcome::Won(record),
        Ok(Claimed::Conflict) => {
            tracing::debug!(node = %me, partition = %claim.partition, reason = ?claim.reason,
                "ownership claim lost a race");
            Outcome::Conflict
        }
        Err(error) => {
            tracing::warn!(node = %me, partition = %claim.partition, %error,
                "ownership claim failed");
            Outcome::Failed
        }
    }
}

/// Gives back every partition `balancer` holds.
pub(crate) async fn release(balancer: &mut Balancer, store: &dyn OwnershipStore) {
    for claim in balancer.release() {
        let released = store
            .claim(claim.partition, None, claim.expected.as_ref())
            .await;
        match released {
            Ok(Claimed::Won(_)) => {
                tracing::info!(node = %balancer.node(), partition = %claim.partition,
                    "ownership released");
            }
            Ok(Claimed::Conflict) => {}
            Err(error) => {
                tracing::warn!(node = %balancer.node(), partition = %claim.partition, %error,
                    "ownership not released; it expires instead");
            }
        }
    }
}

/// What the node holds, as its watchers know it.
#[derive(Debug, Default)]
struct Shared {
    held: BTreeSet<PartitionId>,
    watchers: Vec<mpsc::UnboundedSender<Ownership>>,
    closed: bool,
}

impl Shared {
    fn tell(&mut self, proposals: Vec<Ownership>) {
        for proposal in proposals {
            match proposal {
                Ownership::Acquired(p) => self.held.insert(p),
                Ownership::Lost(p) => self.held.remove(&p),
            };
            self.watchers.retain(|w| w.send(proposal).is_ok());
        }
    }
}

/// A node's balancing loop, running in the background until closed or dropped.
#[derive(Debug)]
pub(crate) struct OwnershipTask {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OwnershipTask {
    /// Starts the loop of `balancer` over `store`, one round per `interval`.
    pub(crate) fn start(
        balancer: Balancer,
        store: Arc<dyn OwnershipStore>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> OwnershipTask {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(Notify::new());
        let run = Loop {
            balancer,
            store,
            clock,
            interval,
            shared: shared.clone(),
            stop: stop.clone(),
        };
        OwnershipTask {
            shared,
            stop,
            task: Mutex::new(Some(tokio::spawn(run.run()))),
        }
    }

    /// A stream that starts with an `Acquired` for each partition held now.
    pub(crate) fn watch(&self) -> OwnershipStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut shared = lock(&self.shared);
        if !shared.closed {
            for p in &shared.held {
                let _ = tx.send(Ownership::Acquired(*p));
            }
            shared.watchers.push(tx);
        }
        OwnershipStream::new(rx)
    }

    /// Stops the loop, gives back what the node holds (waiting at most `wait` for that), and
    /// ends every ownership stream.
    pub(crate) async fn close(&self, wait: Duration) {
        self.stop.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(wait, &mut task).await.is_err()
        {
            task.abort();
        }
        let mut shared = lock(&self.shared);
        shared.closed = true;
        shared.watchers.clear();
    }
}

impl Drop for OwnershipTask {
    fn drop(&mut self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The loop's own state.
struct Loop {
    balancer: Balancer,
    store: Arc<dyn OwnershipStore>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<Notify>,
}

impl Loop {
    async fn run(mut self) {
        loop {
            let proposals = round(&mut self.balancer, &*self.store, &*self.clock).await;
            lock(&self.shared).tell(proposals);
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = self.stop.notified() => break,
            }
        }
        release(&mut self.balancer, &*self.store).await;
    }
}
