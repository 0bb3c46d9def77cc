//! Several nodes of one task hub on Kafka (feature `kafka`), against the broker named by
//! `NETHERITE_TEST_KAFKA` (`.ci/kafka-tests` starts one). Every node hosts the partitions the
//! consumer group gives it, over one shared data directory where each partition's lease says
//! which node may write it.
//!
//! The story's own process is one node (its client starts and awaits the orchestrations); the
//! other nodes are child processes of this same test binary (`node_process` below, run with
//! `NETHERITE_TEST_NODE` set), each printing how many partitions it hosts whenever that
//! changes. The stories kill one child with SIGKILL, or pause it with SIGSTOP past its lease,
//! while 500 orchestrations are in flight, and check that every one completes exactly once.
//!
//! Outside CI, without a broker, the stories say they are skipped; in CI (`CI=true`) that is a
//! failure.

#![cfg(feature = "kafka")]

mod engine_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use netherite::client::{Client, StartOptions, output};
use netherite::kafka::KafkaOptions;
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite::{Engine, Netherite};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, OrchestrationStatus};

/// The partitions of the stories' task hubs: enough for three nodes to share.
const PARTITIONS: u32 = 12;
/// The nodes of a hub: this process and two children.
const NODES: usize = 3;
/// The orchestrations in flight when a node goes away.
const ORCHESTRATIONS: usize = 500;
/// How long each of the three activities of an orchestration takes, so that many are still
/// running when a node goes away.
const ACTIVITY_TIME: Duration = Duration::from_millis(400);
/// How long the stories wait for anything before calling the hub stuck.
const PATIENCE: Duration = Duration::from_secs(120);

/// The variable that makes this binary a node process: `brokers|hub|data dir|lease ms`.
const NODE_ENV: &str = "NETHERITE_TEST_NODE";

fn broker() -> Option<String> {
    engine_support::kafka_broker("multi-node")
}

/// Where a hub lives: its brokers, its topics' name and its shared data directory.
#[derive(Clone, Debug)]
struct HubPlace {
    brokers: String,
    hub: String,
    dir: PathBuf,
    lease: Duration,
}

impl HubPlace {
    fn settings(&self) -> Settings {
        Settings {
            partition_count: PARTITIONS,
            data_dir: self.dir.clone(),
            checkpoint_idle: Duration::from_millis(500),
            partition_lease: self.lease,
            activities_concurrency_max: 1000,
            ..Settings::default()
        }
    }

    async fn start_node(&self) -> Engine {
        let options = KafkaOptions::new(self.brokers.clone(), self.hub.clone(), PARTITIONS);
        self.start_node_with(options).await
    }

    async fn start_node_with(&self, options: KafkaOptions) -> Engine {
        Netherite::builder()
            .settings(self.settings())
            .registry(registry())
            .start_on_kafka(options)
            .await
            .expect("the node starts on kafka")
    }

    fn encode(&self) -> String {
        let lease = self.lease.as_millis();
        format!(
            "{}|{}|{}|{lease}",
            self.brokers,
            self.hub,
            self.dir.display()
        )
    }

    fn decode(text: &str) -> HubPlace {
        let parts: Vec<&str> = text.split('|').collect();
        let [brokers, hub, dir, lease] = parts[..] else {
            panic!("{NODE_ENV} is not brokers|hub|dir|lease: {text}");
        };
        HubPlace {
            brokers: brokers.into(),
            hub: hub.into(),
            dir: dir.into(),
            lease: Duration::from_millis(lease.parse().expect("a lease in ms")),
        }
    }
}

/// The stories' one orchestration: three greetings, each a slow activity.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration(
            "SlowHello",
            |ctx: OrchestrationContext, name: String| async move {
                let mut greetings = Vec::new();
                for n in 0..3 {
                    let input = format!("{name}-{n}");
                    greetings.push(ctx.call_activity::<String>("SlowSay", input).await?);
                }
                Ok::<_, TaskError>(greetings.join(" "))
            },
        )
        .expect("registers")
        .activity(
            "SlowSay",
            |_ctx: ActivityContext, name: String| async move {
                tokio::time::sleep(ACTIVITY_TIME).await;
                Ok::<_, ActivityError>(format!("Hello {name}!"))
            },
        )
        .expect("registers");
    registry
}

fn expected_output(name: &str) -> String {
    (0..3)
        .map(|n| format!("Hello {name}-{n}!"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Not a story: the body of a node process the stories start (with `--ignored`, so that a
/// plain run leaves it out). It runs the node until its standard input closes, printing
/// `hosted N` whenever the number of partitions it hosts changes.
#[test]
#[ignore = "the body of the stories' node processes, started by them"]
fn node_process() {
    let spec = std::env::var(NODE_ENV).expect("NETHERITE_TEST_NODE names the hub to join");
    let place = HubPlace::decode(&spec);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let engine = place.start_node().await;
        let (closed_tx, mut closed) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = closed_tx.send(());
        });
        let mut reported = usize::MAX;
        loop {
            let hosted = engine.hosted_count();
            if hosted != reported {
                println!("hosted {hosted}");
                std::io::stdout().flush().expect("stdout");
                reported = hosted;
            }
            tokio::select! {
                _ = &mut closed => break,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        engine.shutdown().await.expect("the node stops cleanly");
    });
}

/// A node in a child process; killed when dropped.
struct ChildNode {
    child: Child,
    stdin: Option<ChildStdin>,
    hosted: Arc<AtomicUsize>,
    log: PathBuf,
}

impl ChildNode {
    fn spawn(place: &HubPlace, name: &str) -> ChildNode {
        let exe = std::env::current_exe().expect("the test binary");
        let log = place.dir.with_file_name(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("a log file");
        let mut child = Command::new(exe)
            .args(["node_process", "--exact", "--ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(NODE_ENV, place.encode())
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the node process starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("its stdout");
        let hosted = Arc::new(AtomicUsize::new(0));
        let counter = hosted.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(count) = line.strip_prefix("hosted ") {
                    counter.store(count.trim().parse().unwrap_or(0), Ordering::SeqCst);
                }
            }
        });
        ChildNode {
            child,
            stdin,
            hosted,
            log,
        }
    }

    fn hosted(&self) -> usize {
        self.hosted.load(Ordering::SeqCst)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Closes its standard input and waits for it to stop cleanly.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "the node exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the node does not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hub of three nodes: this process's engine and two children, balanced.
struct Hub {
    place: HubPlace,
    engine: Engine,
    children: Vec<ChildNode>,
    dir: tempfile::TempDir,
}

impl Hub {
    async fn start(brokers: String, name: &str, lease: Duration) -> Hub {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let place = HubPlace {
            brokers,
            hub: format!("{name}-{}", std::process::id()),
            dir: dir.path().join("hub"),
            lease,
        };
        let engine = place.start_node().await;
        let children = (1..NODES)
            .map(|n| ChildNode::spawn(&place, &format!("node-{n}")))
            .collect();
        let hub = Hub {
            place,
            engine,
            children,
            dir,
        };
        hub.until_hosted(|counts| counts.iter().all(|&c| c == PARTITIONS as usize / NODES))
            .await;
        hub
    }

    /// The partitions each node hosts: this process's first.
    fn counts(&self) -> Vec<usize> {
        let mut counts = vec![self.engine.hosted_count()];
        counts.extend(self.children.iter().map(ChildNode::hosted));
        counts
    }

    async fn until_hosted(&self, check: impl Fn(&[usize]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !check(&self.counts()) {
            if Instant::now() > deadline {
                for child in &self.children {
                    eprintln!("--- {}\n{}", child.log.display(), child.log_text());
                }
                panic!("the nodes never got there: hosted {:?}", self.counts());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node cleanly, one at a time, each once the group has settled (every
    /// partition hosted): the coordinator of tansu 0.6.0 keeps a leader that leaves the group
    /// in the middle of a rebalance as the group's leader, and the group never forms again.
    /// Returns the directory that holds the hub's shared data.
    async fn stop(mut self) -> tempfile::TempDir {
        let all = PARTITIONS as usize;
        loop {
            self.until_hosted(|counts| counts.iter().sum::<usize>() == all)
                .await;
            let Some(child) = self.children.pop() else {
                break;
            };
            child.stop();
        }
        self.engine.shutdown().await.expect("clean shutdown");
        self.dir
    }
}

/// Starts the orchestrations and a waiter for each; returns the waiters, which count the
/// completions in `done`.
async fn start_all(
    client: &Client,
    done: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<(String, netherite_core::partition::InstanceView)>> {
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..ORCHESTRATIONS {
        let client = client.clone();
        starts.spawn(async move {
            let name = format!("o{i}");
            let options = StartOptions::new("SlowHello")
                .with_instance_id(name.as_str())
                .with_input(&name)
                .expect("input");
            client.start(options).await.expect("started");
            name
        });
    }
    let mut waiters = Vec::new();
    while let Some(name) = starts.join_next().await {
        let name = name.expect("a start task");
        let (client, done) = (client.clone(), done.clone());
        waiters.push(tokio::spawn(async move {
            let id = InstanceId::new(name.as_str());
            let view = client
                .wait_for_completion(&id, PATIENCE)
                .await
                .expect("completes");
            done.fetch_add(1, Ordering::SeqCst);
            (name, view)
        }));
    }
    waiters
}

/// Every orchestration completed with its own output, and its history holds one start, one
/// completion, and each activity scheduled and answered once.
async fn check_exactly_once(
    client: &Client,
    waiters: Vec<tokio::task::JoinHandle<(String, netherite_core::partition::InstanceView)>>,
) {
    for waiter in waiters {
        let (name, view) = waiter.await.expect("a waiter");
        assert_eq!(view.status, OrchestrationStatus::Completed, "{name}");
        let greeting: String = output(&view).expect("an output");
        assert_eq!(greeting, expected_output(&name), "{name}");
        let history = client
            .history(&InstanceId::new(name.as_str()))
            .await
            .expect("a history");
        let count = |f: fn(&EventKind) -> bool| history.iter().filter(|e| f(&e.kind)).count();
        let starts = count(|k| matches!(k, EventKind::ExecutionStarted(_)));
        let ends = count(|k| matches!(k, EventKind::ExecutionCompleted(_)));
        let scheduled = count(|k| matches!(k, EventKind::TaskScheduled(_)));
        let answered = count(|k| matches!(k, EventKind::TaskCompleted(_)));
        assert_eq!((starts, ends, scheduled, answered), (1, 1, 3, 3), "{name}");
    }
}

/// How long after `since` each partition answers a read again (of an instance pinned to it
/// with `!n`), by partition.
async fn served_again(client: &Client, since: Instant) -> Vec<Duration> {
    let mut probes = tokio::task::JoinSet::new();
    for p in 0..PARTITIONS {
        let client = client.clone();
        probes.spawn(async move {
            let id = InstanceId::new(format!("probe!{p}"));
            client
                .get_state(&id, false)
                .await
                .expect("the partition answers");
            (p, since.elapsed())
        });
    }
    let mut served = vec![Duration::ZERO; PARTITIONS as usize];
    while let Some(probe) = probes.join_next().await {
        let (p, elapsed) = probe.expect("a probe");
        served[p as usize] = elapsed;
    }
    served
}

fn print_served(story: &str, served: &[Duration]) {
    let mut sorted = served.to_vec();
    sorted.sort();
    let max = sorted.last().copied().unwrap_or_default();
    let figures: Vec<String> = served
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect();
    println!(
        "{story}: every partition answers again within {:.2} s (per partition, s: {})",
        max.as_secs_f64(),
        figures.join(" ")
    );
}

/// Three nodes, 500 orchestrations in flight, one node killed with SIGKILL: the other two
/// take its partitions over from the shared directory (once its leases run out) and every
/// orchestration completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_has_its_partitions_served_again_and_nothing_runs_twice() {
    let Some(brokers) = broker() else {
        return;
    };
    let mut hub = Hub::start(brokers, "nodes-kill", Duration::from_secs(5)).await;
    let client = hub.engine.client();
    let done = Arc::new(AtomicUsize::new(0));
    let waiters = start_all(&client, &done).await;

    tokio::time::sleep(ACTIVITY_TIME).await;
    let victim = hub.children.pop().expect("a child node");
    let had = victim.hosted();
    let finished_before = done.load(Ordering::SeqCst);
    let killed = Instant::now();
    drop(victim);
    println!("killed a node hosting {had} partitions; {finished_before} of {ORCHESTRATIONS} done");
    assert!(had > 0, "the node killed hosted nothing");
    assert!(
        finished_before < ORCHESTRATIONS / 2,
        "too late: {finished_before} had finished"
    );

    let served = served_again(&client, killed).await;
    print_served("SIGKILL", &served);
    check_exactly_once(&client, waiters).await;
    hub.until_hosted(|counts| counts.iter().sum::<usize>() == PARTITIONS as usize)
        .await;
    println!("after the kill the nodes host {:?}", hub.counts());
    hub.stop().await;
}

/// A node paused with SIGSTOP past its lease loses its partitions to the others; resumed, it
/// finds its claims gone and stops those partitions without writing them, and every
/// orchestration still completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_cannot_write_the_partitions_it_lost() {
    let Some(brokers) = broker() else {
        return;
    };
    let lease = Duration::from_secs(3);
    let hub = Hub::start(brokers, "nodes-pause", lease).await;
    let client = hub.engine.client();
    let done = Arc::new(AtomicUsize::new(0));
    let waiters = start_all(&client, &done).await;

    tokio::time::sleep(ACTIVITY_TIME).await;
    let paused = hub.children.last().expect("a child node");
    paused.signal("-STOP");
    let stopped = Instant::now();
    println!("paused a node hosting {} partitions", paused.hosted());
    let served = served_again(&client, stopped).await;
    print_served("SIGSTOP", &served);

    paused.signal("-CONT");
    check_exactly_once(&client, waiters).await;
    hub.until_hosted(|counts| counts.iter().sum::<usize>() == PARTITIONS as usize)
        .await;
    let log = hub.children.last().expect("a child node").log_text();
    let refused = ["lease lost", "took over its lease", "was taken over"];
    assert!(
        refused.iter().any(|line| log.contains(line)),
        "the resumed node never noticed it lost its partitions:\n{log}"
    );
    let place = hub.place.clone();
    let _dir = hub.stop().await;

    // What is on disk is whole: one node alone recovers every partition from the shared
    // directory and finds every orchestration finished once, as before. It joins a group of
    // its own: tansu 0.6.0's coordinator may keep a member that left in the middle of a
    // rebalance as the leader of the hub's group, which then never forms again.
    let mut options = KafkaOptions::new(place.brokers.clone(), place.hub.clone(), PARTITIONS);
    options.node_group = Some(format!("{}.recovery", place.hub));
    let alone = place.start_node_with(options).await;
    alone
        .wait_for_partitions(PARTITIONS as usize, PATIENCE)
        .await
        .expect("one node hosts every partition");
    let client = alone.client();
    for i in 0..ORCHESTRATIONS {
        let id = InstanceId::new(format!("o{i}"));
        let view = client.get_state(&id, true).await.expect("a read");
        let view = view.unwrap_or_else(|| panic!("{id} is gone after recovery"));
        assert_eq!(view.status, OrchestrationStatus::Completed, "{id}");
        let greeting: String = output(&view).expect("an output");
        assert_eq!(greeting, expected_output(id.as_str()), "{id}");
    }
    alone.shutdown().await.expect("clean shutdown");
}
