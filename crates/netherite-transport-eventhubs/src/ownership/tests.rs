//! Stories of nodes sharing partitions through the in-memory store, on a clock moved by hand:
//! joining, leaving, expiry, stealing, conflicts, and a store that fails.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use netherite_core::transport::{NodeId, Ownership};
use netherite_core::{Error, PartitionId};

use super::balancer::{Claim, Outcome, Reason};
use super::task::{release, round};
use super::*;
use crate::clock::{Clock, ManualClock};

const EXPIRY: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(10);

/// A store that can be cut off: while down, every call fails with `Io`.
#[derive(Debug)]
struct Switchable {
    inner: MemoryOwnershipStore,
    down: AtomicBool,
}

#[async_trait]
impl OwnershipStore for Switchable {
    async fn list(&self) -> Result<Vec<OwnershipRecord>, Error> {
        self.up()?;
        self.inner.list().await
    }

    async fn claim(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
        expected: Option<&ETag>,
    ) -> Result<Claimed, Error> {
        self.up()?;
        self.inner.claim(partition, owner, expected).await
    }
}

impl Switchable {
    fn up(&self) -> Result<(), Error> {
        if self.down.load(Ordering::Relaxed) {
            return Err(Error::Io {
                operation: "test store",
                reason: "cut off".into(),
            });
        }
        Ok(())
    }
}

/// A cluster of nodes over one store and one clock.
struct Cluster {
    clock: ManualClock,
    store: Switchable,
}

impl Cluster {
    fn new() -> Cluster {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let store = Switchable {
            inner: MemoryOwnershipStore::new(Arc::new(clock.clone())),
            down: AtomicBool::new(false),
        };
        Cluster { clock, store }
    }

    fn node(name: &str, partitions: u32) -> Balancer {
        Balancer::new(NodeId::new(name), partitions, EXPIRY)
    }

    async fn round(&self, node: &mut Balancer) -> Vec<Ownership> {
        round(node, &self.store, &self.clock).await
    }

    /// Rounds of every node, an interval apart, until a round changes nothing.
    async fn settle(&self, nodes: &mut [&mut Balancer]) {
        for _ in 0..20 {
            let mut changed = false;
            for node in nodes.iter_mut() {
                changed |= !self.round(node).await.is_empty();
            }
            self.clock.advance(INTERVAL);
            if !changed {
                return;
            }
        }
        panic!("no settled ownership after 20 rounds");
    }
}

fn ids(held: Vec<PartitionId>) -> BTreeSet<u32> {
    held.into_iter().map(|p| p.0).collect()
}

fn acquired(ps: &[u32]) -> Vec<Ownership> {
    ps.iter()
        .map(|p| Ownership::Acquired(PartitionId(*p)))
        .collect()
}

/// A lone node's first round claims every partition and proposes them all.
#[tokio::test]
async fn a_lone_node_claims_every_partition_at_once() {
    let cluster = Cluster::new();
    let mut a = Cluster::node("a", 4);
    assert_eq!(cluster.round(&mut a).await, acquired(&[0, 1, 2, 3]));
    assert!(
        cluster.round(&mut a).await.is_empty(),
        "renewals change nothing"
    );
}

/// A node that joins takes partitions from the loaded one, one per round, until both hold
/// their share; the loaded node learns of each loss at its next renewal.
#[tokio::test]
async fn a_joining_node_steals_its_share_one_round_at_a_time() {
    let cluster = Cluster::new();
    let (mut a, mut b) = (Cluster::node("a", 4), Cluster::node("b", 4));
    cluster.round(&mut a).await;

    // Phase 1: b's first round steals one partition from a.
    let first = cluster.round(&mut b).await;
    assert_eq!(first.len(), 1);
    let Ownership::Acquired(stolen) = first[0] else {
        panic!("{first:?}");
    };
    assert_eq!(cluster.round(&mut a).await, vec![Ownership::Lost(stolen)]);

    // Phase 2: the rounds go on until both hold two, and nothing moves after that.
    cluster.settle(&mut [&mut a, &mut b]).await;
    let (held_a, held_b) = (ids(a.held()), ids(b.held()));
    assert_eq!((held_a.len(), held_b.len()), (2, 2));
    assert!(held_a.is_disjoint(&held_b));
}

/// A node that leaves gives its partitions back; the others claim them at their next round,
/// without waiting for the expiry.
#[tokio::test]
async fn a_leaving_node_hands_over_at_the_next_round() {
    let cluster = Cluster::new();
    let (mut a, mut b) = (Cluster::node("a", 4), Cluster::node("b", 4));
    cluster.round(&mut a).await;
    cluster.settle(&mut [&mut a, &mut b]).await;
    let left = a.held();

    release(&mut a, &cluster.store).await;
    assert!(a.held().is_empty());
    let took = cluster.round(&mut b).await;
    let expected: Vec<Ownership> = left.into_iter().map(Ownership::Acquired).collect();
    assert_eq!(took, expected);
    assert_eq!(b.held().len(), 4);
}

/// A node that falls silent keeps its partitions until its records expire; then another node
/// takes them, and the silent one, waking up, learns it lost them.
#[tokio::test]
async fn a_silent_node_loses_its_partitions_after_the_expiry() {
    let cluster = Cluster::new();
    let (mut a, mut b) = (Cluster::node("a", 4), Cluster::node("b", 4));
    cluster.round(&mut a).await;
    cluster.settle(&mut [&mut a, &mut b]).await;
    let silent = a.held();

    // Phase 1: a's records (last written an interval ago) age to just under the expiry; b
    // takes nothing.
    cluster
        .clock
        .advance(EXPIRY - INTERVAL - Duration::from_secs(1));
    assert!(cluster.round(&mut b).await.is_empty());

    // Phase 2: at the expiry b takes a's partitions.
    cluster.clock.advance(Duration::from_secs(1));
    let took = cluster.round(&mut b).await;
    assert_eq!(
        took,
        silent
            .iter()
            .copied()
            .map(Ownership::Acquired)
            .collect::<Vec<_>>()
    );

    // Phase 3: a wakes up and is told it lost them; being below its share now, it steals one
    // back from b in the same round, which is a new acquisition (b owned it in between).
    let woke = cluster.round(&mut a).await;
    let lost: Vec<Ownership> = silent.into_iter().map(Ownership::Lost).collect();
    assert_eq!(woke[..2], lost[..]);
    assert!(matches!(woke[2..], [Ownership::Acquired(_)]), "{woke:?}");
}

/// Two nodes that plan on the same listing race for the same free partition: the store lets
/// one win; the other gets a conflict and proposes nothing for it.
#[tokio::test]
async fn racing_nodes_settle_by_etag() {
    let cluster = Cluster::new();
    let (mut a, mut b) = (Cluster::node("a", 1), Cluster::node("b", 1));
    let now = cluster.clock.now();
    let records = cluster.store.list().await.unwrap();
    let (plan_a, plan_b) = (a.plan(&records, now), b.plan(&records, now));
    let claim = Claim {
        partition: PartitionId(0),
        expected: None,
        reason: Reason::Free,
    };
    assert_eq!(
        (plan_a.clone(), plan_b.clone()),
        (vec![claim.clone()], vec![claim])
    );

    let outcome = |claimed: Claimed| match claimed {
        Claimed::Won(record) => Outcome::Won(record),
        Claimed::Conflict => Outcome::Conflict,
    };
    let store = &cluster.store;
    let won_a = outcome(
        store
            .claim(PartitionId(0), Some(a.node()), None)
            .await
            .unwrap(),
    );
    let won_b = outcome(
        store
            .claim(PartitionId(0), Some(b.node()), None)
            .await
            .unwrap(),
    );
    assert_eq!(won_b, Outcome::Conflict);
    let settled_a = a.settle(vec![(plan_a[0].clone(), won_a)], now);
    let settled_b = b.settle(vec![(plan_b[0].clone(), won_b)], now);
    assert_eq!((settled_a, settled_b), (acquired(&[0]), Vec::new()));
}

/// A node cut off from the store keeps its partitions while their records could still be
/// alive, and gives them up once they could have expired.
#[tokio::test]
async fn a_node_cut_off_from_storage_gives_up_after_the_expiry() {
    let cluster = Cluster::new();
    let mut a = Cluster::node("a", 2);
    cluster.round(&mut a).await;
    cluster.store.down.store(true, Ordering::Relaxed);

    cluster.clock.advance(EXPIRY - Duration::from_secs(1));
    assert!(cluster.round(&mut a).await.is_empty());
    cluster.clock.advance(Duration::from_secs(1));
    let lost = cluster.round(&mut a).await;
    assert_eq!(
        lost,
        vec![
            Ownership::Lost(PartitionId(0)),
            Ownership::Lost(PartitionId(1))
        ]
    );
}

/// A node restarted under the same name finds its records alive and proposes its partitions
/// again in its first round, without waiting.
#[tokio::test]
async fn a_restarted_node_resumes_its_live_records() {
    let cluster = Cluster::new();
    let (mut a, mut b) = (Cluster::node("a", 4), Cluster::node("b", 4));
    cluster.round(&mut a).await;
    cluster.settle(&mut [&mut a, &mut b]).await;
    let before = a.held();

    let mut again = Cluster::node("a", 4);
    let resumed = cluster.round(&mut again).await;
    assert_eq!(
        resumed,
        before
            .into_iter()
            .map(Ownership::Acquired)
            .collect::<Vec<_>>()
    );
}

/// The background loop proposes what the rounds decide, replays the current holdings to a
/// late watcher, and on close gives everything back and ends the streams.
#[tokio::test]
async fn the_loop_tells_watchers_and_releases_on_close() {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1),
    ));
    let store = Arc::new(MemoryOwnershipStore::new(clock.clone()));
    let task = OwnershipTask::start(
        Cluster::node("a", 2),
        store.clone(),
        clock,
        Duration::from_millis(10),
    );
    let mut early = task.watch();
    assert_eq!(
        early.next().await,
        Some(Ownership::Acquired(PartitionId(0)))
    );
    assert_eq!(
        early.next().await,
        Some(Ownership::Acquired(PartitionId(1)))
    );
    let mut late = task.watch();
    assert_eq!(late.next().await, Some(Ownership::Acquired(PartitionId(0))));

    task.close(Duration::from_secs(5)).await;
    assert_eq!(early.next().await, None);
    let records = store.list().await.unwrap();
    assert!(records.iter().all(|r| r.owner.is_none()), "{records:?}");
}

/// The in-memory store keeps the store contract.
#[cfg(feature = "testing")]
#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    let clock = || Arc::new(crate::clock::SystemClock);
    conformance::run(|| MemoryOwnershipStore::new(clock())).await;
}
