//! Payloads larger than one Kafka record (see `support::broker` for the broker): they are
//! stored aside in pieces and come back whole, in order with the small ones around them, also
//! to a subscription that starts at the large one's position.

#![cfg(feature = "kafka")]

mod support;

use std::time::Duration;

use netherite_core::PartitionId;
use netherite_core::transport::{NodeId, conformance};
use netherite_transport_kafka::KafkaTransport;

/// A 2.5 MB payload between two small ones, with records limited to 1 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_record_limit_comes_back_whole() {
    let Some(broker) = support::broker() else {
        return;
    };
    let options = support::options(&broker, 2);
    let node = KafkaTransport::connect(NodeId::new("large"), options)
        .await
        .expect("connects");
    let wait = Duration::from_secs(30);
    conformance::large_payload_story(&node, PartitionId(1), 2_500_000, wait).await;
}
