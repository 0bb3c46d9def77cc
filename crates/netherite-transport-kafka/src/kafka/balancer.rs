//! Ownership proposals from a Kafka consumer group.
//!
//! Every node joins the group `H.nodes` (or the one the options name) on the topic `H.owners`,
//! which has one Kafka partition per netherite partition and is never written. The broker's
//! coordinator and the group's leader assign its partitions among the live members; the
//! rebalance callbacks tell this node what it gained and lost, and the balancer turns that into
//! [`Ownership`] proposals for every watcher. The cooperative-sticky assignor moves only the
//! partitions that must move, so a node joining or leaving does not restart the partitions
//! that stay.
//!
//! The group notices a dead node after the session timeout; a paused node that wakes up late
//! may still believe it owns its old partitions. That is why this is only a proposal: the
//! storage fence decides who may write.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use netherite_core::transport::{NodeId, Ownership, OwnershipStream};
use netherite_core::{Error, PartitionId};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer,
};
use tokio::sync::mpsc;

use super::io;
use super::options::KafkaOptions;
use super::topics::Topics;

/// What this node holds now, and who wants to hear about changes.
#[derive(Debug, Default)]
struct Held {
    partitions: BTreeSet<u32>,
    watchers: Vec<mpsc::UnboundedSender<Ownership>>,
}

impl Held {
    fn tell(&mut self, proposal: Ownership) {
        self.watchers.retain(|w| w.send(proposal).is_ok());
    }
}

/// The consumer context: the rebalance callbacks update [`Held`].
struct Context {
    node: NodeId,
    held: Arc<Mutex<Held>>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut held = lock(&self.held);
        match rebalance {
            Rebalance::Assign(list) => {
                let assigned: BTreeSet<u32> =
                    partitions(list.elements().iter().map(|e| e.partition()));
                if !cooperative {
                    // An eager assignment is the whole new set: what is not in it was lost.
                    let lost: Vec<u32> = held.partitions.difference(&assigned).copied().collect();
                    for p in lost {
                        held.partitions.remove(&p);
                        held.tell(Ownership::Lost(PartitionId(p)));
                    }
                }
                for p in assigned {
                    if held.partitions.insert(p) {
                        held.tell(Ownership::Acquired(PartitionId(p)));
                    }
                }
            }
            // An eager revocation takes everything back before the next assignment; the
            // partitions that come back in it were never lost, so only the difference counts.
            Rebalance::Revoke(_) if !cooperative => {}
            Rebalance::Revoke(list) => {
                for p in partitions(list.elements().iter().map(|e| e.partition())) {
                    if held.partitions.remove(&p) {
                        held.tell(Ownership::Lost(PartitionId(p)));
                    }
                }
            }
            Rebalance::Error(error) => {
                tracing::warn!(node = %self.node, %error, "kafka rebalance failed");
            }
        }
        tracing::info!(node = %self.node, held = ?held.partitions, "ownership rebalanced");
    }
}

fn partitions(numbers: impl Iterator<Item = i32>) -> BTreeSet<u32> {
    numbers.filter_map(|n| u32::try_from(n).ok()).collect()
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This node's membership in the hub's consumer group; leaves the group when dropped.
pub(crate) struct Balancer {
    held: Arc<Mutex<Held>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Balancer {
    /// Joins the group and keeps polling it (the group counts a member that stops polling as
    /// gone).
    pub(crate) fn start(
        node: &NodeId,
        options: &KafkaOptions,
        topics: &Topics,
    ) -> Result<Balancer, Error> {
        let held = Arc::new(Mutex::new(Held::default()));
        let context = Context {
            node: node.clone(),
            held: held.clone(),
        };
        let session = options.session_timeout.as_millis();
        let consumer: StreamConsumer<Context> = options
            .client_config()
            .set("group.id", options.node_group())
            .set("client.id", node.0.as_str())
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).max(100).to_string())
            .set("enable.auto.commit", "false")
            .create_with_context(context)
            .map_err(|e| io("creating the group member", &e))?;
        consumer
            .subscribe(&[topics.owners.as_str()])
            .map_err(|e| io("joining the group", &e))?;
        let task = tokio::spawn(poll(consumer));
        Ok(Balancer { held, task })
    }

    /// Leaves the group: the member's task ends, its consumer closes, and every ownership
    /// stream ends.
    pub(crate) fn stop(&self) {
        self.task.abort();
        lock(&self.held).watchers.clear();
    }

    /// A stream that starts with an `Acquired` for each partition held now.
    pub(crate) fn watch(&self) -> OwnershipStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut held = lock(&self.held);
        for p in &held.partitions {
            let _ = tx.send(Ownership::Acquired(PartitionId(*p)));
        }
        held.watchers.push(tx);
        OwnershipStream::new(rx)
    }
}

/// Polls the member so that its callbacks run and its heartbeats go out; the owners topic
/// carries no records, so anything read is ignored.
async fn poll(consumer: StreamConsumer<Context>) {
    loop {
        if let Err(error) = consumer.recv().await {
            tracing::debug!(%error, "group member poll");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
