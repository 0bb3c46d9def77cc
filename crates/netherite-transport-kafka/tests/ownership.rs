//! Ownership through the consumer group, against a real broker (see `support::broker`): nodes
//! split the partitions, and a node that leaves has its partitions proposed to the others.
//! Also: a broker that cannot be reached is a clear, retryable error, not a hang or a panic.

#![cfg(feature = "kafka")]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netherite_core::Error;
use netherite_core::transport::{NodeId, Ownership, OwnershipStream, Transport};
use netherite_transport_kafka::{KafkaOptions, KafkaTransport};

/// How long a rebalance may take before the story calls it stuck.
const REBALANCE_WAIT_MAX: Duration = Duration::from_secs(60);

/// What one node holds, followed through its proposals.
struct Watched {
    stream: OwnershipStream,
    held: BTreeSet<u32>,
}

impl Watched {
    /// Applies every proposal that arrives within `wait`.
    async fn drain(&mut self, wait: Duration) {
        while let Ok(Some(proposal)) = tokio::time::timeout(wait, self.stream.next()).await {
            match proposal {
                Ownership::Acquired(p) => assert!(self.held.insert(p.0), "{p} acquired twice"),
                Ownership::Lost(p) => assert!(self.held.remove(&p.0), "{p} lost but not held"),
            }
        }
    }
}

/// Waits until `settled` holds for the nodes' holdings, reading proposals meanwhile.
async fn settle(nodes: &mut [&mut Watched], settled: impl Fn(&[BTreeSet<u32>]) -> bool) {
    let deadline = Instant::now() + REBALANCE_WAIT_MAX;
    loop {
        for node in nodes.iter_mut() {
            node.drain(Duration::from_millis(200)).await;
        }
        let held: Vec<BTreeSet<u32>> = nodes.iter().map(|n| n.held.clone()).collect();
        if settled(&held) {
            return;
        }
        assert!(Instant::now() < deadline, "no settled assignment: {held:?}");
    }
}

async fn watch(transport: &KafkaTransport) -> Watched {
    Watched {
        stream: transport.ownership().await.expect("watch"),
        held: BTreeSet::new(),
    }
}

/// Each partition held by exactly one node, all of them held.
fn split(held: &[BTreeSet<u32>], partitions: u32) -> bool {
    let total: usize = held.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<u32> = held.iter().flatten().copied().collect();
    total == partitions as usize && union.len() == partitions as usize
}

/// Two nodes split the hub; when one leaves, the other is proposed everything, and the time
/// that takes is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_split_the_partitions_and_take_over_from_a_node_that_leaves() {
    let Some(broker) = support::broker() else {
        return;
    };
    let options = support::options(&broker, 4);
    let connect = |name: &str| KafkaTransport::connect(NodeId::new(name), options.clone());
    let (a, b) = (
        connect("a").await.expect("a"),
        connect("b").await.expect("b"),
    );
    let (mut on_a, mut on_b) = (watch(&a).await, watch(&b).await);

    // Phase 1: both are members; every partition has one owner, and both have some.
    settle(&mut [&mut on_a, &mut on_b], |held| {
        split(held, 4) && held.iter().all(|h| !h.is_empty())
    })
    .await;

    // Phase 2: b leaves; a is proposed all four.
    let left = Instant::now();
    drop(on_b);
    drop(b);
    settle(&mut [&mut on_a], |held| held[0].len() == 4).await;
    println!(
        "partitions of the node that left proposed again after {:?}",
        left.elapsed()
    );
}

/// A broker that is not there: connecting fails within the connect timeout with a retryable
/// I/O error naming what it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_retryable_error() {
    let mut options = KafkaOptions::new("127.0.0.1:1", support::fresh_hub(), 2);
    options.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let refused = KafkaTransport::connect(NodeId::new("lonely"), options).await;
    let error = refused.expect_err("no broker listens on port 1");
    assert!(matches!(error, Error::Io { .. }), "{error}");
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
