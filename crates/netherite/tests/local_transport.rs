//! The local durable transport: the core's conformance suite, then what only a durable queue
//! on disk must show: crashes (a drop, and a real SIGKILL of a process) lose no acknowledged
//! send, concurrent senders share flushes, discards survive a reopen, and bad calls are
//! typed errors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use netherite::transport::testing::LocalFixture;
use netherite::transport::{LocalTransport, LocalTransportOptions, QueueDevice};
use netherite_core::device::{DeviceFaults, MemoryDisk};
use netherite_core::transport::{InputEvent, InputStream, Ownership, Transport, conformance};
use netherite_core::{Error, InputPosition, PartitionId};

/// How long a test waits for one event before calling it missing.
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn options() -> LocalTransportOptions {
    LocalTransportOptions::default()
}

async fn open(dir: &std::path::Path, partitions: u32) -> LocalTransport {
    LocalTransport::open_dir(dir, partitions, options())
        .await
        .expect("the transport opens")
}

/// Reads `n` events, failing the test if one does not come.
async fn read(stream: &mut InputStream, n: usize) -> Vec<InputEvent> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(EVENT_WAIT, stream.next()).await;
        let event = next.expect("an event in time").expect("the stream is open");
        events.push(event.expect("a good event"));
    }
    events
}

/// Reads events until one at or past `last` arrived.
async fn read_through(stream: &mut InputStream, last: InputPosition) -> Vec<InputEvent> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &InputEvent| e.position < last) {
        events.extend(read(stream, 1).await);
    }
    events
}

/// The whole contract, one line: every check of the core's suite passes on a real directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_transport_conformance_suite() {
    let report = conformance::run(|| LocalFixture::temporary(4).expect("a temporary hub")).await;
    println!("{report}");
}

/// Sends acknowledged before a crash (every handle dropped without closing) are all there
/// after a reopen of the directory, in order and at the positions the sends returned; new
/// sends go on past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_keeps_every_acknowledged_send() {
    let dir = tempfile::tempdir().expect("a temporary directory");

    // Phase 1: concurrent senders fill three partitions, then everything is dropped.
    let transport = open(dir.path(), 3).await;
    let mut tasks = Vec::new();
    for sender in 0..6u32 {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let partition = PartitionId(sender % 3);
            let mut sent = Vec::new();
            for i in 0..20 {
                let batch: Vec<Vec<u8>> = (0..1 + i % 3)
                    .map(|k| format!("s{sender}-{i}-{k}").into_bytes())
                    .collect();
                let positions = transport
                    .send(partition, batch.clone())
                    .await
                    .expect("send");
                sent.extend(positions.into_iter().zip(batch));
            }
            (partition, sent)
        }));
    }
    let mut acknowledged: BTreeMap<u32, BTreeMap<InputPosition, Vec<u8>>> = BTreeMap::new();
    for task in tasks {
        let (partition, sent) = task.await.expect("the sender finished");
        acknowledged.entry(partition.0).or_default().extend(sent);
    }
    drop(transport);

    // Phase 2: the reopened queues hold exactly what was acknowledged, in position order.
    let transport = open(dir.path(), 3).await;
    for (&p, sent) in &acknowledged {
        let mut stream = transport
            .subscribe(PartitionId(p), InputPosition::START)
            .await
            .expect("subscribe");
        let events = read(&mut stream, sent.len()).await;
        let got: BTreeMap<_, _> = events
            .iter()
            .map(|e| (e.position, e.payload.clone()))
            .collect();
        assert_eq!(&got, sent, "partition {p}");
        assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    }

    // Phase 3: the next send lands past everything from before the crash.
    let last = *acknowledged[&0]
        .keys()
        .last()
        .expect("partition 0 got sends");
    let next = transport
        .send(PartitionId(0), vec![b"after".to_vec()])
        .await
        .expect("send");
    assert!(next[0] > last, "{:?} after {last:?}", next[0]);
}

/// Many senders at once share device flushes: the figure is printed, and there are fewer
/// flushes than sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_share_flushes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let transport = open(dir.path(), 1).await;
    let before = transport.stats();

    let (senders, sends_each) = (32, 20);
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..sends_each {
                let payload = format!("sender {sender} send {i}").into_bytes();
                transport
                    .send(PartitionId(0), vec![payload])
                    .await
                    .expect("send");
            }
        }));
    }
    for task in tasks {
        task.await.expect("the sender finished");
    }

    let after = transport.stats();
    let (sends, flushes) = (after.sends - before.sends, after.flushes - before.flushes);
    println!(
        "group commit: {senders} concurrent senders, {sends} sends, {flushes} device flushes \
         ({:.1} sends per flush)",
        sends as f64 / flushes.max(1) as f64
    );
    assert_eq!(sends, senders * sends_each);
    assert!(flushes < sends, "{flushes} flushes for {sends} sends");
}

/// A discard survives a reopen: the queue starts at or below the discard point, everything
/// from it on is still delivered, and subscribing below the queue's start is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let small = LocalTransportOptions {
        segment_bytes: 64 << 10,
        ..options()
    };
    let transport = LocalTransport::open_dir(dir.path(), 1, small.clone())
        .await
        .expect("open");

    // 600 sends of 1 KiB, each its own 4 KiB batch: about 2.4 MiB, many segments.
    let mut positions = Vec::new();
    for i in 0..600u32 {
        let payload = vec![(i % 251) as u8; 1024];
        positions.extend(
            transport
                .send(PartitionId(0), vec![payload])
                .await
                .expect("send"),
        );
    }
    let keep = positions[500];
    transport
        .discard_before(PartitionId(0), InputPosition(keep.0 + 1))
        .await
        .expect("discard");
    let below = transport.subscribe(PartitionId(0), positions[10]).await;
    assert!(
        matches!(below, Err(Error::InvalidArgument { .. })),
        "{below:?}"
    );
    transport.close().await.expect("close");

    // The reopened queue lost its early segments but keeps everything after the discard.
    let transport = LocalTransport::open_dir(dir.path(), 1, small)
        .await
        .expect("reopen");
    let below = transport.subscribe(PartitionId(0), positions[10]).await;
    assert!(
        matches!(below, Err(Error::InvalidArgument { .. })),
        "{below:?}"
    );
    let mut stream = transport
        .subscribe(PartitionId(0), InputPosition(keep.0 + 1))
        .await
        .expect("subscribe after the discard point");
    let events = read(&mut stream, 99).await;
    let got: Vec<_> = events.iter().map(|e| e.position).collect();
    assert_eq!(got, positions[501..].to_vec());
}

/// After `close`, every call is refused with `Closed`, open streams end, and the directory can
/// be reopened at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_streams_and_frees_the_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let transport = open(dir.path(), 2).await;
    let sent = transport
        .send(PartitionId(1), vec![b"one".to_vec()])
        .await
        .expect("send");
    let mut stream = transport
        .subscribe(PartitionId(1), InputPosition::START)
        .await
        .expect("subscribe");
    let mut proposals = transport.ownership().await.expect("ownership");

    transport.close().await.expect("close");
    let refused = transport.send(PartitionId(1), vec![b"two".to_vec()]).await;
    assert!(matches!(refused, Err(Error::Closed)), "{refused:?}");
    assert!(stream.next().await.is_none(), "the stream ended");
    let mut seen = Vec::new();
    while let Some(proposal) = proposals.next().await {
        seen.push(proposal);
    }
    assert_eq!(
        seen,
        vec![
            Ownership::Acquired(PartitionId(0)),
            Ownership::Acquired(PartitionId(1))
        ]
    );

    let reopened = open(dir.path(), 2).await;
    let mut stream = reopened
        .subscribe(PartitionId(1), InputPosition::START)
        .await
        .expect("subscribe");
    assert_eq!(read(&mut stream, 1).await[0].position, sent[0]);
}

/// A payload over `message_bytes_max` refuses the whole batch with an error naming the
/// limit, and nothing of the batch reaches the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_payload_refuses_its_batch() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let limited = LocalTransportOptions {
        message_bytes_max: 1000,
        ..options()
    };
    let transport = LocalTransport::open_dir(dir.path(), 1, limited)
        .await
        .expect("open");

    let batch = vec![b"fits".to_vec(), vec![0; 1001]];
    let refused = transport.send(PartitionId(0), batch).await;
    let Err(Error::LimitExceeded { limit, actual, max }) = refused else {
        panic!("expected LimitExceeded, got {refused:?}");
    };
    assert_eq!((limit, actual, max), ("message_bytes_max", 1001, 1000));
    let refused = transport
        .send_to_client(netherite_core::ClientId(7), vec![0; 1001])
        .await;
    assert!(
        matches!(refused, Err(Error::LimitExceeded { .. })),
        "{refused:?}"
    );

    let next = transport
        .send(PartitionId(0), vec![b"next".to_vec()])
        .await
        .expect("send");
    let mut stream = transport
        .subscribe(PartitionId(0), InputPosition::START)
        .await
        .expect("subscribe");
    let events = read_through(&mut stream, next[0]).await;
    assert_eq!(events.len(), 1, "only the later send is in the queue");
    assert_eq!(events[0].payload, b"next");
}

/// Two handles cannot hold one data directory: the second open is refused at once, naming
/// the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let _first = open(dir.path(), 2).await;
    let second = LocalTransport::open_dir(dir.path(), 2, options()).await;
    let error = second.expect_err("the directory is in use");
    assert!(
        matches!(error, netherite::Error::TaskHubLocked { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string()),
        "{error}"
    );
}

/// The same queues run over the core's memory disk with torn writes at a crash: after the
/// crash every acknowledged send is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_over_a_memory_disk_survive_torn_crashes() {
    for seed in 0..8 {
        let faults = DeviceFaults {
            seed,
            torn_writes: true,
            ..DeviceFaults::none()
        };
        let disk = MemoryDisk::new(512).expect("a disk").with_faults(faults);
        let device = |disk: &MemoryDisk| QueueDevice {
            device: Arc::new(disk.open()),
            start: netherite::transport::LogPosition::ZERO,
        };

        let transport = LocalTransport::with_devices(vec![device(&disk)], options())
            .await
            .expect("open");
        let mut sent = Vec::new();
        for i in 0..10u32 {
            let payload = i.to_le_bytes().to_vec();
            let positions = transport
                .send(PartitionId(0), vec![payload.clone()])
                .await
                .expect("send");
            sent.push((positions[0], payload));
        }
        // An append that is never acknowledged may be torn by the crash.
        let unacknowledged = transport.clone();
        let pending = tokio::spawn(async move {
            let _ = unacknowledged
                .send(PartitionId(0), vec![vec![9; 3000]])
                .await;
        });
        tokio::task::yield_now().await;
        disk.crash();
        pending.abort();
        drop(transport);

        let transport = LocalTransport::with_devices(vec![device(&disk)], options())
            .await
            .expect("reopen");
        let mut stream = transport
            .subscribe(PartitionId(0), InputPosition::START)
            .await
            .expect("subscribe");
        let events = read(&mut stream, sent.len()).await;
        let got: Vec<_> = events
            .into_iter()
            .map(|e| (e.position, e.payload))
            .collect();
        assert_eq!(got, sent, "seed {seed}");
    }
}

/// The environment variable that turns this test binary into the child that gets killed.
const CHILD_DIR_ENV: &str = "NETHERITE_TRANSPORT_SIGKILL_CHILD_DIR";

/// kill -9 of a process that is busy sending loses nothing it acknowledged: the child prints
/// each acknowledged send, the parent kills it mid-flight, reopens the directory and finds
/// every acknowledged payload at its position.
#[test]
fn sigkill_loses_no_acknowledged_send() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        return send_until_killed(&dir);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");

    // Phase 1: run the child until it acknowledged enough sends, then SIGKILL it.
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "sigkill_loses_no_acknowledged_send",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 400 {
        let line = lines
            .next()
            .expect("the child is still running")
            .expect("a line");
        acknowledged.extend(parse_ack(&line));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("the child is gone");
    // Acknowledgements printed before the kill still count.
    acknowledged.extend(lines.map_while(Result::ok).filter_map(|l| parse_ack(&l)));

    // Phase 2: reopen and find every acknowledged payload.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let transport = open(dir.path(), 3).await;
        for p in 0..3 {
            let sent: BTreeMap<_, _> = acknowledged
                .iter()
                .filter(|(partition, ..)| *partition == p)
                .map(|(_, position, payload)| (*position, payload.clone()))
                .collect();
            let Some(&last) = sent.keys().last() else {
                continue;
            };
            let mut stream = transport
                .subscribe(PartitionId(p), InputPosition::START)
                .await
                .expect("subscribe");
            let found: BTreeMap<_, _> = read_through(&mut stream, last)
                .await
                .into_iter()
                .map(|e| (e.position, e.payload))
                .collect();
            for (position, payload) in &sent {
                assert_eq!(
                    found.get(position),
                    Some(payload),
                    "partition {p} at {position:?}"
                );
            }
        }
        println!(
            "sigkill: {} acknowledged sends all found",
            acknowledged.len()
        );
    });
}

/// One acknowledged send as the child prints it: `ack <partition> <position> <payload>`.
fn parse_ack(line: &str) -> Option<(u32, InputPosition, Vec<u8>)> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let partition = words.next()?.parse().ok()?;
    let position = InputPosition(words.next()?.parse().ok()?);
    Some((partition, position, words.next()?.as_bytes().to_vec()))
}

/// The child: eight senders send to three partitions and print every acknowledgement, until
/// the parent kills the process (or a bound, should the parent be gone).
fn send_until_killed(dir: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let transport = open(std::path::Path::new(dir), 3).await;
        let mut tasks = Vec::new();
        for sender in 0..8u32 {
            let transport = transport.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100_000u32 {
                    let partition = PartitionId((sender + i) % 3);
                    let payload = format!("s{sender}-{i}");
                    let positions = transport
                        .send(partition, vec![payload.clone().into_bytes()])
                        .await
                        .expect("send");
                    let line = format!("ack {} {} {payload}\n", partition.0, positions[0].0);
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line.as_bytes()).expect("stdout");
                    stdout.flush().expect("stdout");
                }
            }));
        }
        for task in tasks {
            task.await.expect("the sender finished");
        }
    });
}

/// Settings open a transport: the task hub goes in their data directory with their partition
/// count, and a payload at their limit fits in a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_open_a_transport() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = netherite::settings::Settings {
        partition_count: 5,
        data_dir: dir.path().join("hub"),
        payload_bytes_max: 16 << 20,
        ..Default::default()
    };
    let hub = netherite::taskhub::TaskHub::open_with(&settings).expect("the hub opens");
    let options = LocalTransportOptions::for_settings(&settings);
    let transport = LocalTransport::open(&hub, options)
        .await
        .expect("the transport opens");

    assert_eq!(transport.partition_count(), 5);
    assert!(u64::from(transport.message_bytes_max()) > settings.payload_bytes_max);
    assert!(hub.input_dir(PartitionId(4)).is_dir());
    let payload = vec![7; settings.payload_bytes_max as usize];
    transport
        .send(PartitionId(4), vec![payload])
        .await
        .expect("a payload at the limit fits");
}
