//! The `Transport` conformance suite against the memory hub, proof that the suite catches a
//! broken transport, and one story per fault knob and limit of `MemoryHub`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::transport::conformance::{self, TransportFixture};
use netherite_core::transport::{
    InputEvent, InputStream, MemoryHub, MemoryTransport, NodeId, Ownership, OwnershipStream,
    Transport, TransportFaults, TransportLimits,
};
use netherite_core::{ClientId, Error, InputPosition, PartitionId};

const P0: PartitionId = PartitionId(0);

fn hub() -> MemoryHub {
    MemoryHub::new(4).expect("partitions")
}

fn node(hub: &MemoryHub) -> MemoryTransport {
    hub.connect(NodeId::new("n1"))
}

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("event-{i}").into_bytes()).collect()
}

/// Reads `n` events as they come, rewinds and duplicates included.
async fn raw(stream: &mut InputStream, n: usize) -> Vec<InputEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        events.push(
            next.expect("an event in time")
                .expect("stream open")
                .expect("no error"),
        );
    }
    events
}

/// The memory hub keeps every rule of the contract.
#[tokio::test]
async fn memory_hub_passes_the_suite() {
    let report = conformance::run(hub).await;
    assert!(report.skipped().is_empty(), "{report}");
}

/// Rewinds, delays and gaps are legal (rules 3 and 5), so the suite passes with them on.
#[tokio::test]
async fn suite_passes_with_redelivery_delay_and_gaps() {
    for seed in 0..3 {
        let faults = TransportFaults {
            seed,
            redeliver_rate: 0.3,
            delay_rate: 0.3,
            delay_max: Duration::from_millis(2),
            gap_rate: 0.3,
            ..TransportFaults::none()
        };
        conformance::run(|| hub().with_faults(faults.clone())).await;
    }
}

/// A transport whose partition subscriptions ignore `from` and always start at the beginning.
#[derive(Debug)]
struct IgnoresFrom(MemoryTransport);

#[async_trait]
impl Transport for IgnoresFrom {
    fn partition_count(&self) -> u32 {
        self.0.partition_count()
    }
    fn node(&self) -> &NodeId {
        self.0.node()
    }
    async fn send(&self, p: PartitionId, batch: Vec<Vec<u8>>) -> Result<Vec<InputPosition>, Error> {
        self.0.send(p, batch).await
    }
    async fn subscribe(&self, p: PartitionId, from: InputPosition) -> Result<InputStream, Error> {
        let _ = from;
        self.0.subscribe(p, InputPosition::START).await
    }
    async fn send_to_client(&self, c: ClientId, payload: Vec<u8>) -> Result<InputPosition, Error> {
        self.0.send_to_client(c, payload).await
    }
    async fn client_responses(
        &self,
        c: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, Error> {
        self.0.client_responses(c, from).await
    }
    async fn ownership(&self) -> Result<OwnershipStream, Error> {
        self.0.ownership().await
    }
}

struct IgnoresFromFixture(MemoryHub);

#[async_trait]
impl TransportFixture for IgnoresFromFixture {
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, Error> {
        Ok(Arc::new(IgnoresFrom(self.0.connect(node.clone()))))
    }
}

/// The suite has teeth: subscriptions that ignore their start position fail exactly the
/// checks that resume, and a balancer that cannot be steered shows up as a skipped check.
#[tokio::test]
async fn suite_catches_a_transport_that_ignores_from() {
    let report = conformance::evaluate(|| IgnoresFromFixture(hub())).await;
    let expected = vec![
        "resume_from_position_is_exact",
        "discard_keeps_later_events",
    ];
    assert_eq!(report.failed(), expected, "{report}");
    assert_eq!(report.skipped(), vec!["ownership_proposals"], "{report}");
}

/// A dropped send appends nothing and says so with a retryable error; the retry lands once.
#[tokio::test]
async fn dropped_send_appends_nothing_and_is_retryable() {
    let hub = hub().with_faults(TransportFaults {
        drop_rate: 1.0,
        ..TransportFaults::none()
    });
    let node = node(&hub);
    let error = node.send(P0, payloads(2)).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");

    hub.set_faults(TransportFaults::none());
    let positions = node.send(P0, payloads(2)).await.unwrap();
    let mut stream = node.subscribe(P0, InputPosition::START).await.unwrap();
    let events = raw(&mut stream, 2).await;
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    assert_eq!(positions, vec![InputPosition(0), InputPosition(1)]);
}

/// A duplicated payload sits twice in the queue, at two positions; the send reports the first.
#[tokio::test]
async fn duplicated_payloads_appear_twice() {
    let hub = hub().with_faults(TransportFaults {
        duplicate_rate: 1.0,
        ..TransportFaults::none()
    });
    let node = node(&hub);
    let positions = node.send(P0, payloads(2)).await.unwrap();
    assert_eq!(positions, vec![InputPosition(0), InputPosition(2)]);

    let mut stream = node.subscribe(P0, InputPosition::START).await.unwrap();
    let got: Vec<_> = raw(&mut stream, 4)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let sent = payloads(2);
    assert_eq!(
        got,
        vec![
            sent[0].clone(),
            sent[0].clone(),
            sent[1].clone(),
            sent[1].clone()
        ]
    );
}

/// A redelivering subscription jumps back and delivers again, never below where it started
/// and never skipping; dedup by position restores the exact sequence.
#[tokio::test]
async fn redelivery_rewinds_but_never_below_from() {
    let hub = hub().with_faults(TransportFaults {
        seed: 5,
        redeliver_rate: 0.4,
        ..TransportFaults::none()
    });
    let node = node(&hub);
    let positions = node.send(P0, payloads(20)).await.unwrap();
    let from = positions[5];
    let mut stream = node.subscribe(P0, from).await.unwrap();

    let events = raw(&mut stream, 60).await;
    assert!(events.iter().all(|e| e.position >= from));
    let rewinds = events
        .windows(2)
        .filter(|w| w[1].position <= w[0].position)
        .count();
    assert!(rewinds > 0, "no rewind in 60 deliveries at rate 0.4");
    let mut deduped: Vec<InputPosition> = Vec::new();
    for event in &events {
        if deduped.last().is_none_or(|last| event.position > *last) {
            assert_eq!(
                event.position.0,
                deduped.last().map_or(from.0, |l| l.0 + 1),
                "a skip"
            );
            deduped.push(event.position);
        }
    }
}

/// A delayed delivery is held back, by at most `delay_max`, on the paused test clock.
#[tokio::test(start_paused = true)]
async fn delay_holds_delivery_back() {
    let faults = TransportFaults {
        delay_rate: 1.0,
        delay_max: Duration::from_secs(1),
        ..TransportFaults::none()
    };
    let hub = hub().with_faults(faults);
    let node = node(&hub);
    node.send(P0, payloads(5)).await.unwrap();
    let mut stream = node.subscribe(P0, InputPosition::START).await.unwrap();

    let start = tokio::time::Instant::now();
    raw(&mut stream, 5).await;
    let waited = start.elapsed();
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_secs(5),
        "{waited:?}"
    );
}

/// Gaps leave positions unused; subscribing from inside a gap starts at the next event.
#[tokio::test]
async fn gaps_leave_positions_unused_and_resume_stays_exact() {
    let hub = hub().with_faults(TransportFaults {
        seed: 2,
        gap_rate: 1.0,
        ..TransportFaults::none()
    });
    let node = node(&hub);
    let positions = node.send(P0, payloads(4)).await.unwrap();
    assert!(
        positions.windows(2).all(|w| w[1].0 > w[0].0 + 1),
        "{positions:?}"
    );

    let inside_gap = InputPosition(positions[1].0 + 1);
    let mut stream = node.subscribe(P0, inside_gap).await.unwrap();
    assert_eq!(raw(&mut stream, 1).await[0].position, positions[2]);
}

/// The same seed and the same calls give the same faults.
#[tokio::test]
async fn same_seed_same_faults() {
    let run = |seed| async move {
        let faults = TransportFaults {
            seed,
            duplicate_rate: 0.5,
            gap_rate: 0.5,
            ..TransportFaults::none()
        };
        let node = node(&hub().with_faults(faults));
        node.send(P0, payloads(10)).await.unwrap()
    };
    for seed in 0..4 {
        assert_eq!(run(seed).await, run(seed).await);
    }
}

/// A full queue refuses sends with an error naming the limit until the receiver discards
/// what it processed; an oversized payload is refused the same way.
#[tokio::test]
async fn limits_are_back_pressure() {
    let limits = TransportLimits {
        queue_events_max: 3,
        payload_bytes_max: 8,
    };
    let node = node(&hub().with_limits(limits));
    let positions = node.send(P0, payloads(3)).await.unwrap();
    let full = node.send(P0, payloads(1)).await;
    assert!(matches!(
        full,
        Err(Error::LimitExceeded {
            limit: "queue_events_max",
            ..
        })
    ));

    node.discard_before(P0, positions[2]).await.unwrap();
    node.send(P0, payloads(1)).await.unwrap();
    let big = node.send(P0, vec![vec![0; 9]]).await;
    assert!(matches!(
        big,
        Err(Error::LimitExceeded {
            limit: "payload_bytes_max",
            ..
        })
    ));
}

/// Positions below the discard point cannot be subscribed to any more.
#[tokio::test]
async fn discarded_positions_cannot_be_subscribed() {
    let node = node(&hub());
    let positions = node.send(P0, payloads(3)).await.unwrap();
    node.discard_before(P0, positions[2]).await.unwrap();
    let result = node.subscribe(P0, positions[1]).await;
    assert!(matches!(result, Err(Error::InvalidArgument { .. })));
}

/// Closing the hub ends every stream and refuses later sends.
#[tokio::test]
async fn close_ends_streams_and_refuses_sends() {
    let hub = hub();
    let node = node(&hub);
    let mut stream = node.subscribe(P0, InputPosition::START).await.unwrap();
    let mut proposals = node.ownership().await.unwrap();
    let reader = tokio::spawn(async move { stream.next().await.is_none() });
    tokio::task::yield_now().await;

    hub.close();
    assert!(reader.await.unwrap(), "the waiting stream ended");
    assert_eq!(proposals.next().await, None);
    assert!(matches!(
        node.send(P0, payloads(1)).await,
        Err(Error::Closed)
    ));
}

/// Ownership: proposing the same owner again says nothing new, unassigning tells the owner it
/// lost the partition, and partitions outside the hub are refused.
#[tokio::test]
async fn ownership_changes_are_reported_once() {
    let hub = hub();
    let node = node(&hub);
    let mut proposals = node.ownership().await.unwrap();
    hub.assign(P0, Some(node.node().clone())).unwrap();
    hub.assign(P0, Some(node.node().clone())).unwrap();
    hub.assign(P0, None).unwrap();

    assert_eq!(proposals.next().await, Some(Ownership::Acquired(P0)));
    assert_eq!(proposals.next().await, Some(Ownership::Lost(P0)));
    assert_eq!(hub.owner(P0), None);
    assert!(matches!(
        hub.assign(PartitionId(4), None),
        Err(Error::InvalidArgument { .. })
    ));
}
