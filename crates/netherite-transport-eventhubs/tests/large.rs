//! Payloads larger than an event, against a live namespace (see `support::eventhubs`; skipped
//! without one): they are stored aside in a blob and come back whole, in order with the small
//! ones around them, also to a subscription that starts at the large one's position.

#![cfg(feature = "eventhubs")]

mod support;

use std::time::Duration;

use netherite_core::transport::{NodeId, Transport, conformance};
use netherite_core::{InputPosition, PartitionId};
use netherite_transport_eventhubs::EventHubsTransport;

/// A 2.5 MB payload between two small ones, and a checkpoint's discard after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_event_limit_comes_back_whole() {
    let Some(options) = support::eventhubs(4) else {
        return;
    };
    let node = EventHubsTransport::connect(NodeId::new("large"), options)
        .await
        .expect("connects");
    let wait = Duration::from_secs(30);
    let positions = conformance::large_payload_story(&node, PartitionId(1), 2_500_000, wait).await;

    let after = InputPosition(positions[2].0 + 1);
    node.discard_before(PartitionId(1), after)
        .await
        .expect("discarded");
    node.close().await;
}
