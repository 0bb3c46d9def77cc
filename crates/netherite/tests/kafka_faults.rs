//! Faults on the way to Kafka (feature `kafka`), with brokers these stories run themselves:
//! the tansu binary named by `NETHERITE_TEST_TANSU` (`.ci/kafka-tests` builds one), on a free
//! loopback port, with its SQLite database in a temporary directory: a broker killed and
//! restarted mid-run, and one that comes up only after the engine started. Outside CI,
//! without the binary, the stories say they are skipped; in CI (`CI=true`) that is a failure.

#![cfg(feature = "kafka")]

mod engine_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine_support::*;
use netherite::client::output;
use netherite::kafka::KafkaOptions;
use netherite_core::model::{EventKind, OrchestrationStatus};

/// A tansu broker process; killed when dropped.
struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(bin: PathBuf, dir: &Path) -> Broker {
        let mut broker = Broker::not_started(bin, dir);
        broker.restart();
        broker
    }

    /// A broker with a port of its own, not running yet.
    fn not_started(bin: PathBuf, dir: &Path) -> Broker {
        Broker {
            bin,
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process on its port and database, and waits until it accepts.
    fn restart(&mut self) {
        let url = format!("tcp://{}", self.address());
        let child = Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the broker starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn tansu() -> Option<PathBuf> {
    let what = "the broker-fault stories";
    let path = netherite_core::conformance::outside_service("NETHERITE_TEST_TANSU", what)?;
    Some(PathBuf::from(path))
}

/// The broker is killed with SIGKILL while orchestrations that cross partitions are in
/// flight, and started again a moment later on the same database: every orchestration
/// completes, once, with the right output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_run_loses_and_repeats_nothing() {
    let Some(bin) = tansu() else {
        return;
    };
    let broker_dir = tempfile::tempdir().expect("a temporary directory");
    let mut broker = Broker::start(bin, broker_dir.path());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = KafkaOptions::new(broker.address(), "faults", PARTITIONS);
    let engine = start_alone_on_kafka(settings(dir.path()), options).await;
    let client = engine.client();

    // Phase 1: parents whose children live on other partitions start; the broker dies.
    let mut starts = Vec::new();
    for i in 0..8u64 {
        let client = client.clone();
        starts.push(tokio::spawn(async move {
            run(&client, "Parent", &format!("parent-{i}"), &3u64).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    broker.kill();
    let mut unfinished = 0;
    for i in 0..8 {
        let id = netherite_core::InstanceId::new(format!("parent-{i}"));
        let state = client.get_state(&id, false).await.expect("reads are local");
        unfinished += usize::from(state.is_none_or(|s| !s.status.is_terminal()));
    }
    assert!(
        unfinished > 0,
        "the broker died too late: everything had finished"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase 2: it comes back; everything finishes, each instance started and ended once.
    broker.restart();
    let mut ids = Vec::new();
    for start in starts {
        ids.push(start.await.expect("the start's task joins"));
    }
    for id in &ids {
        let done = client
            .wait_for_completion(id, Duration::from_secs(90))
            .await
            .expect("finishes after the broker is back");
        assert_eq!(done.status, OrchestrationStatus::Completed, "{id}");
        let sum: u64 = output(&done).expect("an output");
        assert_eq!(sum, 2 * (1 + 2), "{id}");
        let history = client.history(id).await.expect("history");
        let count = |f: fn(&EventKind) -> bool| history.iter().filter(|e| f(&e.kind)).count();
        let starts = count(|k| matches!(k, EventKind::ExecutionStarted(_)));
        let ends = count(|k| matches!(k, EventKind::ExecutionCompleted(_)));
        assert_eq!((starts, ends), (1, 1), "{id}");
    }
    engine.shutdown().await.expect("clean shutdown");
}

/// A broker that is not there when the engine starts: the start keeps trying with a growing
/// pause instead of failing or crashing, and once the broker comes up the engine runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_comes_up_late_is_waited_for() {
    let Some(bin) = tansu() else {
        return;
    };
    let broker_dir = tempfile::tempdir().expect("a temporary directory");
    let mut broker = Broker::not_started(bin, broker_dir.path());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = KafkaOptions::new(broker.address(), "late", PARTITIONS);

    // Phase 1: nothing listens; the start is still trying after a few seconds.
    let starting = tokio::spawn(start_alone_on_kafka(settings(dir.path()), options));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !starting.is_finished(),
        "the start gave up on a broker that was not up yet"
    );

    // Phase 2: the broker comes up; the start finishes and orchestrations run.
    broker.restart();
    let engine = starting.await.expect("the start's task joins");
    let client = engine.client();
    let id = run(&client, "Parent", "late-parent", &3u64).await;
    let done = client
        .wait_for_completion(&id, Duration::from_secs(90))
        .await
        .expect("finishes");
    assert_eq!(done.status, OrchestrationStatus::Completed);
    let sum: u64 = output(&done).expect("an output");
    assert_eq!(sum, 2 * (1 + 2));
    engine.shutdown().await.expect("clean shutdown");
}
