//! Payloads larger than one Kafka record (see `support::broker` for the broker): they are
//! stored aside in pieces and come back whole, in order with the small ones around them, also
//! to a subscription that starts at the large one's position.

#![cfg(feature = "kafka")]

mod support;

use std::time::Duration;

use netherite_core::InputPosition;
use netherite_core::PartitionId;
use netherite_core::transport::{InputEvent, InputStream, NodeId, Transport};
use netherite_transport_kafka::KafkaTransport;

/// How long one event may take to arrive.
const EVENT_WAIT_MAX: Duration = Duration::from_secs(30);

async fn read(stream: &mut InputStream, n: usize) -> Vec<InputEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let next = tokio::time::timeout(EVENT_WAIT_MAX, stream.next()).await;
        let event = next
            .expect("the event arrives")
            .expect("the stream goes on");
        events.push(event.expect("the event reads"));
    }
    events
}

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
    let large: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let sent = vec![b"before".to_vec(), large.clone(), b"after".to_vec()];
    let positions = node.send(PartitionId(1), sent.clone()).await.expect("sent");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let mut all = node
        .subscribe(PartitionId(1), InputPosition::START)
        .await
        .expect("subscribed");
    let events = read(&mut all, 3).await;
    let got: Vec<(InputPosition, &[u8])> = events
        .iter()
        .map(|e| (e.position, e.payload.as_slice()))
        .collect();
    let want: Vec<(InputPosition, &[u8])> = positions
        .iter()
        .copied()
        .zip(sent.iter().map(Vec::as_slice))
        .collect();
    assert!(got == want, "the events differ from what was sent");

    let mut from_large = node
        .subscribe(PartitionId(1), positions[1])
        .await
        .expect("subscribed");
    let events = read(&mut from_large, 2).await;
    assert_eq!(events[0].position, positions[1]);
    assert!(events[0].payload == large, "the large payload changed");
    assert_eq!(events[1].payload, b"after");
}
