//! The end-to-end benchmark: hello sequences (three chained activities each) on the embedded
//! default, started and awaited through the client, as a user would.
//!
//! ```text
//! cargo run --release --example bench -- --n 5000 --concurrency 200
//! cargo run --release --example bench -- --n 300 --rate 10
//! cargo run --release --example bench --features kafka -- --kafka 127.0.0.1:9092 --nodes 2
//! ```
//!
//! The closed-loop mode keeps `--concurrency` instances in flight until `--n` have completed;
//! `--rate` instead starts instances at a fixed rate, for latency at light load. The figures:
//! orchestrations and activities per second, latency from the client's start call to the
//! client seeing the completion (p50, p99, max), and syncs per second: every `fdatasync` of a
//! segment file and `fsync` of a directory or metadata file issued by the file devices
//! (`netherite_storage_file::syncs_total`), the commit logs, input queues and checkpoints of
//! every partition together. Next to them, the raw `fdatasync` rate of the same disk, measured
//! in the same run with plain files (`disk_probe`).
//!
//! The data directory (`--data-dir`, default `./netherite-bench-data`) is wiped first.
//!
//! With `--kafka BROKERS` the partition inputs are on Kafka, on topics no earlier run used.
//! `--nodes N` then runs the task hub on N nodes: this process and N - 1 copies of it started
//! with `--join HUB`, sharing the data directory; the run begins once the consumer group has
//! spread the partitions over all of them. The client is this process's, so requests and
//! completions for partitions hosted by the other nodes cross Kafka.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use netherite::client::{Client, StartOptions, output};
use netherite::settings::Settings;
use netherite::{Engine, Netherite};
use netherite_examples::{HELLO_CITIES, hello_registry, init_tracing};
use netherite_storage_file::{ProbeOptions, disk_probe, syncs_total};
use tokio::task::JoinSet;

/// How long one instance may take before the run counts it as failed.
const COMPLETION_WAIT_MAX: Duration = Duration::from_secs(300);

/// Instances run before measuring, so that files exist and code paths are warm.
const WARMUP: usize = 200;

/// The command line.
#[derive(Debug)]
struct Args {
    n: usize,
    concurrency: usize,
    rate: Option<f64>,
    data_dir: PathBuf,
    partitions: Option<u32>,
    /// Partition inputs on the Kafka brokers named here, instead of local files.
    kafka: Option<String>,
    /// The nodes of the task hub, this process included (with `--kafka` only).
    nodes: usize,
    /// Set in the other nodes' processes: the task hub to join.
    join: Option<String>,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            n: 5000,
            concurrency: 200,
            rate: None,
            data_dir: PathBuf::from("./netherite-bench-data"),
            partitions: None,
            kafka: None,
            nodes: 1,
            join: None,
        };
        let mut words = std::env::args().skip(1);
        while let Some(flag) = words.next() {
            let value = words
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--n" => args.n = value.parse().context("--n")?,
                "--concurrency" => args.concurrency = value.parse().context("--concurrency")?,
                "--rate" => args.rate = Some(value.parse().context("--rate")?),
                "--data-dir" => args.data_dir = PathBuf::from(value),
                "--partitions" => args.partitions = Some(value.parse().context("--partitions")?),
                "--kafka" => args.kafka = Some(value),
                "--nodes" => args.nodes = value.parse().context("--nodes")?,
                "--join" => args.join = Some(value),
                _ => bail!(
                    "unknown flag {flag}; flags: --n --concurrency --rate --data-dir --partitions \
                     --kafka --nodes"
                ),
            }
        }
        if args.n == 0 || args.concurrency == 0 || args.rate.is_some_and(|r| r <= 0.0) {
            bail!("--n, --concurrency and --rate must be positive");
        }
        if args.nodes == 0 || (args.nodes > 1 && args.kafka.is_none()) {
            bail!("--nodes must be positive, and more than 1 only with --kafka");
        }
        Ok(args)
    }
}

/// What one measured phase saw.
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    syncs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing("warn");
    let args = Args::parse()?;
    if let Some(hub) = &args.join {
        return nodes::join(&args, hub).await;
    }
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("wiping {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let probe = disk_probe(&args.data_dir, &ProbeOptions::default())?;
    println!("disk ({}): {probe}", args.data_dir.display());

    let mut settings = Settings::from_env()?.with_data_dir(&args.data_dir);
    if let Some(partitions) = args.partitions {
        settings = settings.with_partition_count(partitions);
    }
    let partitions = settings.partition_count;
    let builder = Netherite::builder()
        .settings(settings)
        .registry(hello_registry()?);
    let (engine, others) = match &args.kafka {
        None => (builder.start().await?, Vec::new()),
        Some(_) => nodes::start(builder, &args, partitions).await?,
    };
    let client = engine.client();
    closed_loop(&client, "warmup", WARMUP, args.concurrency.min(WARMUP)).await?;

    let run = match args.rate {
        Some(rate) => fixed_rate(&client, args.n, rate).await?,
        None => closed_loop(&client, "run", args.n, args.concurrency).await?,
    };
    let mode = match args.rate {
        Some(rate) => format!("fixed rate {rate}/s"),
        None => format!("concurrency {}", args.concurrency),
    };
    report(&mode, partitions, args.nodes, run);
    print_checkpoints(&engine).await?;
    engine.shutdown().await?;
    for node in others {
        node.stop()?;
    }
    Ok(())
}

/// Runs `n` instances, `concurrency` at a time, each worker starting its next one as soon as
/// its last one completed.
async fn closed_loop(
    client: &Client,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let syncs_before = syncs_total();
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, prefix) = (client.clone(), next.clone(), prefix.to_string());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                latencies.push(one_instance(&client, format!("{prefix}-{i}")).await?);
            }
        });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(worker) = workers.join_next().await {
        latencies.extend(worker??);
    }
    Ok(Run {
        elapsed: started.elapsed(),
        latencies,
        syncs: syncs_total() - syncs_before,
    })
}

/// Starts `n` instances at `rate` per second, whatever the completions do.
async fn fixed_rate(client: &Client, n: usize, rate: f64) -> anyhow::Result<Run> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let syncs_before = syncs_total();
    let started = Instant::now();
    let mut instances = JoinSet::new();
    for i in 0..n {
        ticks.tick().await;
        let client = client.clone();
        instances.spawn(async move { one_instance(&client, format!("rate-{i}")).await });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(instance) = instances.join_next().await {
        latencies.push(instance??);
    }
    Ok(Run {
        elapsed: started.elapsed(),
        latencies,
        syncs: syncs_total() - syncs_before,
    })
}

/// Starts one hello sequence, waits for it and checks its output; returns the latency.
async fn one_instance(client: &Client, id: String) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let options = StartOptions::new(HELLO_CITIES).with_instance_id(id);
    let instance = client.start(options).await?;
    let done = client
        .wait_for_completion(&instance, COMPLETION_WAIT_MAX)
        .await?;
    let latency = started.elapsed();
    let greetings: Vec<String> =
        output(&done).with_context(|| format!("{instance} ended {:?}", done.status))?;
    if greetings.len() != 3 {
        bail!("{instance} returned {greetings:?}");
    }
    Ok(latency)
}

/// Prints the figures of `run`.
fn report(mode: &str, partitions: u32, nodes: usize, mut run: Run) {
    run.latencies.sort();
    let n = run.latencies.len();
    let secs = run.elapsed.as_secs_f64();
    let at = |q: f64| run.latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "mode: {mode}, {partitions} partitions on {nodes} node(s), {n} hello sequences in \
         {secs:.2} s"
    );
    println!("  orchestrations/s: {:>9.1}", n as f64 / secs);
    println!("  activities/s:     {:>9.1}", 3.0 * n as f64 / secs);
    println!(
        "  latency ms:       p50 {:.2}  p99 {:.2}  max {:.2}",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(1.0))
    );
    println!(
        "  syncs/s:          {:>9.1}  ({} syncs, {:.2} per orchestration)",
        run.syncs as f64 / secs,
        run.syncs,
        run.syncs as f64 / n as f64
    );
}

/// Prints how many checkpoints the partitions of this process took during the run.
async fn print_checkpoints(engine: &Engine) -> anyhow::Result<()> {
    let stats = engine.stats().await?;
    let checkpoints: u64 = stats.iter().map(|s| s.checkpoints).sum();
    println!(
        "  checkpoints:      {checkpoints} across {} partitions",
        stats.len()
    );
    Ok(())
}

#[cfg(feature = "kafka")]
mod nodes {
    //! The task hub over Kafka, on one node or several.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::{Context, bail};
    use netherite::kafka::KafkaOptions;
    use netherite::settings::Settings;
    use netherite::{Engine, EngineBuilder, Netherite};
    use netherite_examples::hello_registry;

    use super::Args;

    /// How long the nodes may take to share the partitions out before the run gives up.
    const BALANCE_WAIT_MAX: Duration = Duration::from_secs(120);

    /// Another node of the hub, in a child process that runs until its stdin closes.
    pub(super) struct Node {
        child: Child,
        stdin: Option<ChildStdin>,
        hosted: Arc<AtomicUsize>,
    }

    impl Node {
        fn spawn(args: &Args, brokers: &str, hub: &str, partitions: u32) -> anyhow::Result<Node> {
            let exe = std::env::current_exe().context("the bench's own executable")?;
            let mut child = Command::new(exe)
                .arg("--kafka")
                .arg(brokers)
                .arg("--data-dir")
                .arg(&args.data_dir)
                .args(["--partitions", &partitions.to_string(), "--join", hub])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting another node")?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().context("the node's stdout")?;
            let hosted = Arc::new(AtomicUsize::new(0));
            let count = hosted.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("hosted ") {
                        count.store(n.trim().parse().unwrap_or(0), Ordering::SeqCst);
                    }
                }
            });
            Ok(Node {
                child,
                stdin,
                hosted,
            })
        }

        /// Closes the node's stdin, which stops it gracefully, and waits for it.
        pub(super) fn stop(mut self) -> anyhow::Result<()> {
            drop(self.stdin.take());
            let status = self.child.wait()?;
            if !status.success() {
                bail!("a node exited with {status}");
            }
            Ok(())
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            if self.stdin.is_some() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// Starts this process's node of a new hub and the `--nodes` - 1 others, and waits until
    /// the partitions are spread over all of them.
    pub(super) async fn start(
        builder: EngineBuilder,
        args: &Args,
        partitions: u32,
    ) -> anyhow::Result<(Engine, Vec<Node>)> {
        let brokers = args.kafka.as_deref().context("--kafka")?;
        let since = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let hub = format!("bench-{}-{}", std::process::id(), since.as_secs());
        let others = (1..args.nodes)
            .map(|_| Node::spawn(args, brokers, &hub, partitions))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let options = KafkaOptions::new(brokers, hub, partitions);
        let engine = builder.start_on_kafka(options).await?;

        let deadline = Instant::now() + BALANCE_WAIT_MAX;
        loop {
            let mut counts = vec![engine.hosted_count()];
            counts.extend(others.iter().map(|n| n.hosted.load(Ordering::SeqCst)));
            if counts.iter().all(|&c| c > 0) && counts.iter().sum::<usize>() == partitions as usize
            {
                println!("partitions per node: {counts:?}");
                return Ok((engine, others));
            }
            if Instant::now() > deadline {
                bail!("the nodes host {counts:?} partitions after {BALANCE_WAIT_MAX:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The body of another node: joins `hub` and prints `hosted N` whenever the number of
    /// partitions it hosts changes, until its stdin closes.
    pub(super) async fn join(args: &Args, hub: &str) -> anyhow::Result<()> {
        let brokers = args.kafka.as_deref().context("--kafka")?;
        let mut settings = Settings::from_env()?.with_data_dir(&args.data_dir);
        if let Some(partitions) = args.partitions {
            settings = settings.with_partition_count(partitions);
        }
        let options = KafkaOptions::new(brokers, hub, settings.partition_count);
        let engine = Netherite::builder()
            .settings(settings)
            .registry(hello_registry()?)
            .start_on_kafka(options)
            .await?;
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
                std::io::stdout().flush()?;
                reported = hosted;
            }
            tokio::select! {
                _ = &mut closed => break,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        engine.shutdown().await?;
        Ok(())
    }
}

#[cfg(not(feature = "kafka"))]
mod nodes {
    //! Without the feature `kafka`: every Kafka flag is refused.

    use anyhow::bail;
    use netherite::{Engine, EngineBuilder};

    use super::Args;

    /// Never made: a stand-in for the type of the Kafka build.
    pub(super) enum Node {}

    impl Node {
        pub(super) fn stop(self) -> anyhow::Result<()> {
            match self {}
        }
    }

    pub(super) async fn start(
        _: EngineBuilder,
        _: &Args,
        _: u32,
    ) -> anyhow::Result<(Engine, Vec<Node>)> {
        bail!("--kafka needs the examples built with `--features kafka`")
    }

    pub(super) async fn join(_: &Args, _: &str) -> anyhow::Result<()> {
        bail!("--join needs the examples built with `--features kafka`")
    }
}
