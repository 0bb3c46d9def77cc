//! The core's `Transport` conformance suite, run against a real Kafka-protocol broker.
//!
//! The broker's address comes from `NETHERITE_TEST_KAFKA` (`host:port`; `.ci/run` starts one
//! on loopback). Without it the suite is skipped with a note, except in CI (`CI=true`),
//! where a missing broker fails the run. Each fixture is a fresh task hub: its own topics,
//! under a name no earlier run used.

#![cfg(feature = "kafka")]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use netherite_core::Error;
use netherite_core::transport::conformance::{self, TransportFixture};
use netherite_core::transport::{NodeId, Transport};
use netherite_transport_kafka::{KafkaOptions, KafkaTransport};

/// A task hub of 4 partitions on the test broker.
struct Hub {
    options: KafkaOptions,
}

#[async_trait]
impl TransportFixture for Hub {
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, Error> {
        let transport = KafkaTransport::connect(node.clone(), self.options.clone()).await?;
        Ok(Arc::new(transport))
    }
}

/// Every check of the suite passes against the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_transport_keeps_the_contract() {
    let Some(broker) = support::broker() else {
        return;
    };
    conformance::run(|| Hub {
        options: support::options(&broker, 4),
    })
    .await;
}
