//! The conformance suite every [`Transport`] backend runs (feature `testing`).
//!
//! A backend supplies a [`TransportFixture`]: a fresh task hub with at least two partitions
//! that nodes connect to, and optionally a way to steer its balancer. Its test is one line:
//!
//! ```
//! # let runtime = tokio::runtime::Builder::new_current_thread()
//! #     .enable_all().build().expect("runtime");
//! # runtime.block_on(async {
//! use netherite_core::transport::{MemoryHub, conformance};
//!
//! conformance::run(|| MemoryHub::new(4).expect("partitions")).await;
//! # });
//! ```
//!
//! The checks tolerate everything rule 5 of [`Transport`] allows (rewinds, redelivery), so a
//! backend passes with its own retries at work, and so does the memory hub with its redeliver
//! and delay knobs on. They do not tolerate duplicated payloads: run them without that knob.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{InputEvent, InputStream, MemoryHub, NodeId, Ownership, OwnershipStream, Transport};
use crate::conformance::{Check, CheckFuture, Step, ensure, ensure_eq, ensure_error, run_checks};
pub use crate::conformance::{CheckOutcome, CheckResult, SuiteReport, Verdict};
use crate::{ClientId, Error, InputPosition, PartitionId};

/// How long the suite waits for one event before calling it missing.
pub const EVENT_WAIT_MAX: Duration = Duration::from_secs(5);

/// How long a stream must stay silent to count as having nothing more to deliver.
pub const QUIET_WAIT: Duration = Duration::from_millis(150);

/// A backend's way to give the suite task hubs.
#[async_trait]
pub trait TransportFixture: Send + Sync {
    /// Connects `node` to this fixture's task hub, which is fresh and has at least two
    /// partitions. Connecting the same node again is a restart of that node.
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, Error>;

    /// Proposes `owner` for `partition` through the backend's balancer. Returns `false` when
    /// the balancer cannot be steered; the ownership check is then skipped.
    async fn propose_owner(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
    ) -> Result<bool, Error> {
        let _ = (partition, owner);
        Ok(false)
    }
}

#[async_trait]
impl TransportFixture for MemoryHub {
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, Error> {
        Ok(Arc::new(MemoryHub::connect(self, node.clone())))
    }

    async fn propose_owner(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
    ) -> Result<bool, Error> {
        self.assign(partition, owner.cloned())?;
        Ok(true)
    }
}

/// Runs every check against fixtures from `make` and panics with the report if any failed.
pub async fn run<F: TransportFixture + 'static>(make: impl Fn() -> F) -> SuiteReport {
    evaluate(make).await.assert_passed()
}

/// Runs every check against fixtures from `make` and returns the report, failures included.
pub async fn evaluate<F: TransportFixture + 'static>(make: impl Fn() -> F) -> SuiteReport {
    run_checks("Transport", CHECKS, || Box::new(make()) as Box<Fixture>).await
}

/// The names of the checks, in the order they run.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|c| c.name).collect()
}

type Fixture = dyn TransportFixture;

const CHECKS: &[Check<Fixture>] = &[
    Check {
        name: "bad_partition_is_invalid",
        run: bad_partition_is_invalid,
    },
    Check {
        name: "send_returns_increasing_positions",
        run: send_returns_increasing_positions,
    },
    Check {
        name: "delivers_in_order",
        run: delivers_in_order,
    },
    Check {
        name: "resume_from_position_is_exact",
        run: resume_from_position_is_exact,
    },
    Check {
        name: "live_subscription_sees_later_sends",
        run: live_subscription,
    },
    Check {
        name: "sends_are_durable_across_restart",
        run: sends_are_durable_across_restart,
    },
    Check {
        name: "partitions_are_independent",
        run: partitions_are_independent,
    },
    Check {
        name: "client_responses",
        run: client_responses,
    },
    Check {
        name: "discard_keeps_later_events",
        run: discard_keeps_later_events,
    },
    Check {
        name: "ownership_proposals",
        run: ownership_proposals,
    },
];

fn node_a() -> NodeId {
    NodeId::new("conformance-a")
}

fn node_b() -> NodeId {
    NodeId::new("conformance-b")
}

fn payloads(tag: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

/// Reads the next `n` new events, skipping rewinds (events at or below the last one seen).
async fn read_new(stream: &mut InputStream, n: usize) -> Result<Vec<InputEvent>, String> {
    let mut events: Vec<InputEvent> = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(EVENT_WAIT_MAX, stream.next()).await;
        let event = match next {
            Err(_) => return Err(format!("event {} of {n} did not arrive", events.len() + 1)),
            Ok(None) => return Err(format!("stream ended after {} of {n} events", events.len())),
            Ok(Some(event)) => event.step("reading the stream")?,
        };
        if events
            .last()
            .is_none_or(|last| event.position > last.position)
        {
            events.push(event);
        }
    }
    Ok(events)
}

/// Fails if an event past `last` arrives within [`QUIET_WAIT`]; rewinds are allowed.
async fn expect_quiet(stream: &mut InputStream, last: Option<InputPosition>) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + QUIET_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(event)) => {
                let event = event.step("reading the stream")?;
                let fresh = last.is_none_or(|last| event.position > last);
                ensure(!fresh, || format!("unexpected event at {}", event.position))?;
            }
        }
    }
}

fn check_events(
    events: &[InputEvent],
    positions: &[InputPosition],
    sent: &[Vec<u8>],
) -> Result<(), String> {
    let got: Vec<_> = events.iter().map(|e| e.position).collect();
    ensure_eq(got, positions.to_vec(), "delivered positions")?;
    let got: Vec<_> = events.iter().map(|e| e.payload.clone()).collect();
    ensure_eq(got, sent.to_vec(), "delivered payloads")
}

fn invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}

/// Rule 1: partitions outside the count are refused, by send and by subscribe alike.
fn bad_partition_is_invalid(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let count = node.partition_count();
        ensure(count >= 2, || {
            format!("the fixture has {count} partitions, needs 2")
        })?;
        let outside = PartitionId(count);
        ensure_error(
            node.send(outside, payloads("x", 0..1)).await,
            invalid,
            "send outside",
        )?;
        let result = node.subscribe(outside, InputPosition::START).await;
        ensure_error(result, invalid, "subscribe outside")?;
        Ok(Verdict::Passed)
    })
}

/// Rules 2 and 3: a send returns one position per payload, all increasing across sends.
fn send_returns_increasing_positions(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let mut positions = Vec::new();
        for (i, size) in [1, 3, 0, 2].into_iter().enumerate() {
            let batch = payloads(&format!("b{i}"), 0..size);
            let got = node.send(PartitionId(0), batch).await.step("send")?;
            ensure_eq(got.len(), size, "positions returned for a batch")?;
            positions.extend(got);
        }
        let increasing = positions.windows(2).all(|w| w[0] < w[1]);
        ensure(increasing, || {
            format!("positions do not increase: {positions:?}")
        })?;
        Ok(Verdict::Passed)
    })
}

/// Rule 4: a subscription from the start delivers every payload in order, at the positions
/// the sends returned, and nothing else.
fn delivers_in_order(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let sent = payloads("order", 0..10);
        let mut positions = Vec::new();
        for batch in [&sent[0..4], &sent[4..5], &sent[5..10]] {
            positions.extend(
                node.send(PartitionId(1), batch.to_vec())
                    .await
                    .step("send")?,
            );
        }

        let mut stream = node
            .subscribe(PartitionId(1), InputPosition::START)
            .await
            .step("subscribe")?;
        let events = read_new(&mut stream, sent.len()).await?;
        check_events(&events, &positions, &sent)?;
        expect_quiet(&mut stream, positions.last().copied()).await?;
        Ok(Verdict::Passed)
    })
}

/// Rule 4: subscribing from an event's position starts exactly at it, and from the position
/// after an event starts at the next one, whatever gaps lie between.
fn resume_from_position_is_exact(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let sent = payloads("resume", 0..6);
        let positions = node.send(PartitionId(0), sent.clone()).await.step("send")?;

        let mut at = node
            .subscribe(PartitionId(0), positions[3])
            .await
            .step("subscribe at")?;
        check_events(&read_new(&mut at, 3).await?, &positions[3..], &sent[3..])?;
        let after = InputPosition(positions[2].0 + 1);
        let mut next = node
            .subscribe(PartitionId(0), after)
            .await
            .step("subscribe after")?;
        check_events(&read_new(&mut next, 3).await?, &positions[3..], &sent[3..])?;

        let end = InputPosition(positions[5].0 + 1);
        let mut tail = node
            .subscribe(PartitionId(0), end)
            .await
            .step("subscribe at the end")?;
        expect_quiet(&mut tail, Some(positions[5])).await?;
        Ok(Verdict::Passed)
    })
}

/// Rule 4: a subscription that caught up receives what is sent afterwards.
fn live_subscription(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let mut stream = node
            .subscribe(PartitionId(0), InputPosition::START)
            .await
            .step("subscribe")?;
        expect_quiet(&mut stream, None).await?;

        let sent = payloads("live", 0..3);
        let positions = node.send(PartitionId(0), sent.clone()).await.step("send")?;
        check_events(&read_new(&mut stream, 3).await?, &positions, &sent)?;
        Ok(Verdict::Passed)
    })
}

/// Rules 2 and 5: what a send acknowledged survives the sender's restart and is visible to
/// every node.
fn sends_are_durable_across_restart(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let sent = payloads("durable", 0..4);
        let positions = {
            let node = fixture.connect(&node_a()).await.step("connect")?;
            node.send(PartitionId(1), sent.clone()).await.step("send")?
        };

        for node in [node_a(), node_b()] {
            let handle = fixture.connect(&node).await.step("reconnect")?;
            let mut stream = handle
                .subscribe(PartitionId(1), InputPosition::START)
                .await
                .step("subscribe")?;
            check_events(&read_new(&mut stream, 4).await?, &positions, &sent)?;
        }
        Ok(Verdict::Passed)
    })
}

/// Rule 1: each partition's stream carries its own payloads only, in its own order.
fn partitions_are_independent(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let (mut sent, mut positions) =
            (vec![Vec::new(), Vec::new()], vec![Vec::new(), Vec::new()]);
        for i in 0..6 {
            let p = i % 2;
            let payload = payloads(&format!("p{p}"), i..i + 1);
            positions[p].extend(
                node.send(PartitionId(p as u32), payload.clone())
                    .await
                    .step("send")?,
            );
            sent[p].extend(payload);
        }

        for p in 0..2 {
            let partition = PartitionId(p as u32);
            let mut stream = node
                .subscribe(partition, InputPosition::START)
                .await
                .step("subscribe")?;
            check_events(&read_new(&mut stream, 3).await?, &positions[p], &sent[p])?;
            expect_quiet(&mut stream, positions[p].last().copied()).await?;
        }
        Ok(Verdict::Passed)
    })
}

/// Rules 2 to 4 for client queues: responses arrive in order, resume exactly, and each client
/// sees only its own.
fn client_responses(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let (alice, bob) = (ClientId(0xa11ce), ClientId(0xb0b));
        let sent = payloads("alice", 0..3);
        let mut positions = Vec::new();
        for payload in &sent {
            positions.push(
                node.send_to_client(alice, payload.clone())
                    .await
                    .step("respond")?,
            );
            node.send_to_client(bob, b"bob".to_vec())
                .await
                .step("respond")?;
        }

        let mut all = node
            .client_responses(alice, InputPosition::START)
            .await
            .step("listen")?;
        check_events(&read_new(&mut all, 3).await?, &positions, &sent)?;
        expect_quiet(&mut all, positions.last().copied()).await?;
        let mut later = node
            .client_responses(alice, positions[1])
            .await
            .step("listen later")?;
        check_events(&read_new(&mut later, 2).await?, &positions[1..], &sent[1..])?;
        Ok(Verdict::Passed)
    })
}

/// Rule 8: discarding below a position keeps every event from that position on.
fn discard_keeps_later_events(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let node = fixture.connect(&node_a()).await.step("connect")?;
        let sent = payloads("discard", 0..5);
        let positions = node.send(PartitionId(0), sent.clone()).await.step("send")?;
        node.discard_before(PartitionId(0), positions[2])
            .await
            .step("discard")?;

        let mut stream = node
            .subscribe(PartitionId(0), positions[2])
            .await
            .step("subscribe")?;
        check_events(
            &read_new(&mut stream, 3).await?,
            &positions[2..],
            &sent[2..],
        )?;
        Ok(Verdict::Passed)
    })
}

/// Rule 7: a node learns what it was proposed, what it lost, and on a late subscription what
/// it holds now.
fn ownership_proposals(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let (a, b) = (
            fixture.connect(&node_a()).await.step("connect a")?,
            fixture.connect(&node_b()).await.step("connect b")?,
        );
        let (mut to_a, mut to_b) = (
            a.ownership().await.step("watch a")?,
            b.ownership().await.step("watch b")?,
        );
        let p = PartitionId(1);
        if !fixture
            .propose_owner(p, Some(&node_a()))
            .await
            .step("propose a")?
        {
            return Ok(Verdict::Skipped("the fixture cannot steer the balancer"));
        }
        expect_proposal(&mut to_a, Ownership::Acquired(p)).await?;

        fixture
            .propose_owner(p, Some(&node_b()))
            .await
            .step("propose b")?;
        expect_proposal(&mut to_a, Ownership::Lost(p)).await?;
        expect_proposal(&mut to_b, Ownership::Acquired(p)).await?;
        let mut late = b.ownership().await.step("watch b again")?;
        expect_proposal(&mut late, Ownership::Acquired(p)).await?;
        Ok(Verdict::Passed)
    })
}

async fn expect_proposal(stream: &mut OwnershipStream, expected: Ownership) -> Result<(), String> {
    match tokio::time::timeout(EVENT_WAIT_MAX, stream.next()).await {
        Ok(got) => ensure_eq(got, Some(expected), "ownership proposal"),
        Err(_) => Err(format!("no proposal arrived; expected {expected:?}")),
    }
}

/// A story for backends whose records are smaller than a payload may be (they store large
/// payloads aside and put them back together on reading): a payload of `large_bytes` between
/// two small ones is sent to `partition` and comes back whole, in order and at the positions
/// the send gave, both to a subscription from the first position and to one that starts at
/// the large payload's own position. Returns those positions. Panics, naming what differed,
/// when a rule does not hold; `wait` bounds how long one event may take.
pub async fn large_payload_story(
    transport: &dyn Transport,
    partition: PartitionId,
    large_bytes: usize,
    wait: Duration,
) -> Vec<InputPosition> {
    let large: Vec<u8> = (0..large_bytes).map(|i| (i % 251) as u8).collect();
    let sent = vec![b"before".to_vec(), large.clone(), b"after".to_vec()];
    let positions = transport.send(partition, sent.clone()).await.expect("sent");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // From the first position: all three, in order, where the send said.
    let mut all = transport
        .subscribe(partition, positions[0])
        .await
        .expect("subscribed");
    let events = read_events(&mut all, 3, wait).await;
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

    // From the large payload's own position: it is whole there too.
    let mut from_large = transport
        .subscribe(partition, positions[1])
        .await
        .expect("subscribed");
    let events = read_events(&mut from_large, 2, wait).await;
    assert_eq!(events[0].position, positions[1]);
    assert!(events[0].payload == large, "the large payload changed");
    assert_eq!(events[1].payload, b"after");
    positions
}

/// The next `n` events of `stream`, each within `wait`; panics if one is missing or fails.
async fn read_events(stream: &mut InputStream, n: usize, wait: Duration) -> Vec<InputEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let next = tokio::time::timeout(wait, stream.next()).await;
        let event = next
            .expect("the event arrives")
            .expect("the stream goes on");
        events.push(event.expect("the event reads"));
    }
    events
}
