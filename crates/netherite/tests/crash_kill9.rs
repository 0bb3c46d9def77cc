//! kill -9, again and again: a child process runs a load of orchestrations on a data
//! directory and is killed with SIGKILL at seeded random moments, then restarted on the same
//! directory, where it starts only what does not exist yet. In the end every orchestration has
//! completed once, with the right output, whatever moments the kills hit.
//!
//! The child is this test binary itself, run again with [`CHILD_DIR_ENV`] set and filtered to
//! the ignored test [`crash_child`], so no extra binary is built.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::{StreamExt, stream};
use netherite::client::{Client, StartOptions, output};
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite::{Engine, Error, Netherite};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, OrchestrationStatus};
use netherite_core::partition::index::InstanceFilter;

/// Set in the child's environment to the data directory it runs on.
const CHILD_DIR_ENV: &str = "NETHERITE_CRASH_KILL9_CHILD_DIR";
/// The line the child prints once its engine serves.
const READY: &str = "ready";
/// The line the child prints once every orchestration completed.
const ALL_DONE: &str = "all done";
/// The seed of the kill moments; `NETHERITE_CRASH_SEED` picks another to explore other
/// interleavings.
const SEED: u64 = 0x6b69_6c6c_2d39;
/// How many times the child is killed before it may finish.
const KILLS: usize = 5;
/// The range of the delay between the child saying it is ready and its death.
const KILL_DELAY_MS: std::ops::Range<u64> = 100..800;
/// Hello sequences in the load.
const HELLOS: usize = 400;
/// Orchestrations that sleep on a durable timer in the load.
const NAPS: usize = 20;
/// Orchestrations the child runs at a time, so that its work spans several kill delays.
const IN_FLIGHT: usize = 8;
/// How long anything may take before the test gives up (a hang, not a slow machine).
const PATIENCE: Duration = Duration::from_secs(120);

/// One orchestration of the load: its instance id, its name, its input and the output it
/// must end with.
struct Expected {
    id: String,
    name: &'static str,
    input: usize,
    output: String,
}

/// The load: the hello sequences with a nap after every [`HELLOS`] / [`NAPS`] of them, so
/// that timers are pending whenever a kill comes.
fn load() -> Vec<Expected> {
    let mut load = Vec::with_capacity(HELLOS + NAPS);
    for i in 0..HELLOS {
        load.push(Expected {
            id: format!("hello-{i:03}"),
            name: "Hello",
            input: i,
            output: format!(r#"["Hello {i}-Tokyo!","Hello {i}-Seattle!","Hello {i}-London!"]"#),
        });
        if i % (HELLOS / NAPS) == 0 {
            let nap = i / (HELLOS / NAPS);
            load.push(Expected {
                id: format!("nap-{nap:02}"),
                name: "Nap",
                input: nap,
                output: format!("\"rested {nap}\""),
            });
        }
    }
    load
}

/// The orchestrations of the load: `Hello` greets three cities in sequence, `Nap` sleeps on
/// a durable timer (longer than most kill delays) and then calls an activity.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Hello", |ctx: OrchestrationContext, i: usize| async move {
            let mut greetings = Vec::new();
            for city in ["Tokyo", "Seattle", "London"] {
                let greeting = ctx.call_activity::<String>("SayHello", format!("{i}-{city}"));
                greetings.push(greeting.await?);
            }
            Ok::<_, TaskError>(greetings)
        })
        .expect("a fresh name")
        .orchestration("Nap", |ctx: OrchestrationContext, i: usize| async move {
            ctx.create_timer(Duration::from_millis(300 + 50 * i as u64))
                .await;
            ctx.call_activity::<String>("Rest", i).await
        })
        .expect("a fresh name")
        .activity(
            "SayHello",
            |_ctx: ActivityContext, name: String| async move {
                Ok::<_, ActivityError>(format!("Hello {name}!"))
            },
        )
        .expect("a fresh name")
        .activity("Rest", |_ctx: ActivityContext, i: usize| async move {
            Ok::<_, ActivityError>(format!("rested {i}"))
        })
        .expect("a fresh name");
    registry
}

/// The settings of every run: few partitions and frequent checkpoints, so that recoveries go
/// through checkpoints and log tails both.
fn settings(dir: &Path) -> Settings {
    let settings = Settings {
        partition_count: 4,
        data_dir: dir.to_path_buf(),
        checkpoint_events_max: 64,
        checkpoint_idle: Duration::from_millis(100),
        ..Settings::default()
    };
    with_test_storage(settings)
}

/// With the feature `pageblob`, the partitions' state goes to page blobs in the storage
/// service `NETHERITE_TEST_AZURITE` names (Azurite, in `.ci/azure-tests`), in a container
/// named after the data directory; the inputs stay in the directory. Without the feature, it
/// stays on files.
#[cfg(feature = "pageblob")]
fn with_test_storage(settings: Settings) -> Settings {
    use netherite::settings::{Secret, StorageKind};

    let connection = std::env::var("NETHERITE_TEST_AZURITE")
        .expect("with the feature pageblob, NETHERITE_TEST_AZURITE names the storage service");
    let dir = settings.data_dir.file_name().unwrap_or_default();
    let name: String = dir
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Settings {
        storage: StorageKind::PageBlob,
        storage_connection: Some(Secret::new(connection)),
        storage_container: format!("crash-{}", name.to_ascii_lowercase()),
        // The shortest lease: each restart after a kill waits for the dead child's to run out.
        storage_lease: Duration::from_secs(15),
        ..settings
    }
}

#[cfg(not(feature = "pageblob"))]
fn with_test_storage(settings: Settings) -> Settings {
    settings
}

/// A run of the load killed five times at random moments still completes every
/// orchestration exactly once: one ExecutionStarted, one ExecutionCompleted, the right output.
#[test]
fn kill9_repeatedly_loses_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seed = std::env::var("NETHERITE_CRASH_SEED").map_or(SEED, |s| s.parse().expect("a u64"));
    eprintln!("seed {seed}");
    let mut random = SplitMix(seed);

    // Phase 1: kill the child at random moments after it came up, and restart it.
    for kill in 0..KILLS {
        let (mut child, lines) = spawn_child(dir.path());
        wait_for_line(&lines, READY);
        let delay = KILL_DELAY_MS.start + random.next() % (KILL_DELAY_MS.end - KILL_DELAY_MS.start);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        child.wait().expect("the child is gone");
        let said: Vec<String> = lines.iter().collect();
        let seen = |prefix: &str| said.iter().filter(|l| l.starts_with(prefix)).count();
        let (started, completed) = (seen("started "), seen("done "));
        eprintln!(
            "kill {kill}: the child died {delay} ms after it was ready; it had started \
             {started} instances and seen {completed} of the load complete"
        );
    }

    // Phase 2: a last child runs the load to its end.
    let (mut child, lines) = spawn_child(dir.path());
    wait_for_line(&lines, ALL_DONE);
    assert!(child.wait().expect("the child exits").success());

    // Phase 3: every orchestration completed once, with its output.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(verify(dir.path()));
}

/// Opens the directory and checks every instance of the load.
async fn verify(dir: &Path) {
    let engine = start(dir).await.expect("the engine recovers");
    let client = engine.client();
    for Expected { id, output, .. } in load() {
        let id = InstanceId::new(id);
        let view = client.get_state(&id, true).await.expect("read");
        let view = view.unwrap_or_else(|| panic!("{id} exists"));
        assert_eq!(
            view.status,
            OrchestrationStatus::Completed,
            "{id}: {view:?}"
        );
        assert_eq!(view.output.as_deref(), Some(output.as_str()), "{id}");

        let history = client.history(&id).await.expect("history");
        let count = |f: fn(&EventKind) -> bool| history.iter().filter(|e| f(&e.kind)).count();
        let starts = count(|k| matches!(k, EventKind::ExecutionStarted(_)));
        let ends = count(|k| matches!(k, EventKind::ExecutionCompleted(_)));
        assert_eq!((starts, ends), (1, 1), "{id}: {history:?}");
    }
    engine.shutdown().await.expect("clean shutdown");
}

/// Not a test of its own: the child process of [`kill9_repeatedly_loses_nothing`], run by it
/// with [`CHILD_DIR_ENV`] set. Skips what earlier runs completed, goes through the rest
/// [`IN_FLIGHT`] at a time, starting each instance that does not exist yet and waiting for
/// it, and says when all are done.
#[test]
#[ignore = "the child process of kill9_repeatedly_loses_nothing"]
fn crash_child() {
    // Run on its own (`--include-ignored`), there is no directory and nothing to do.
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        eprintln!("crash_child runs only as the child of kill9_repeatedly_loses_nothing");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let engine = start(Path::new(&dir)).await.expect("the engine recovers");
        println!("{READY}");
        let client = engine.client();
        let load = load();
        let finished = completed_ids(&client).await;
        println!("{} of the load completed in earlier runs", finished.len());
        let todo = load.iter().filter(|e| !finished.contains(&e.id));
        let each = stream::iter(todo).map(|expected| {
            let client = &client;
            async move {
                start_once(client, expected).await;
                wait_done(client, &expected.id).await;
            }
        });
        each.buffer_unordered(IN_FLIGHT).collect::<Vec<()>>().await;
        engine.shutdown().await.expect("clean shutdown");
        println!("{ALL_DONE}");
    });
}

/// The ids of the completed instances, found by a query.
async fn completed_ids(client: &Client) -> HashSet<String> {
    let filter = InstanceFilter {
        statuses: vec![OrchestrationStatus::Completed],
        ..InstanceFilter::default()
    };
    let mut ids = HashSet::new();
    let mut token = None;
    loop {
        let page = client.query(&filter, token.as_deref(), 1000).await;
        let page = page.expect("the query runs");
        ids.extend(
            page.instances
                .into_iter()
                .map(|v| v.instance_id.to_string()),
        );
        match page.next {
            Some(next) => token = Some(next),
            None => return ids,
        }
    }
}

/// Starts the instance unless an earlier run already did.
async fn start_once(client: &Client, expected: &Expected) {
    let options = StartOptions::new(expected.name)
        .with_instance_id(&expected.id)
        .with_input(&expected.input)
        .expect("input serializes");
    match client.start(options).await {
        Ok(id) => println!("started {id}"),
        Err(Error::AlreadyExists { .. }) => {}
        Err(error) => panic!("starting {}: {error}", expected.id),
    }
}

/// Waits for `id` to complete and checks its output.
async fn wait_done(client: &Client, id: &str) {
    let id = InstanceId::new(id);
    let done = client.wait_for_completion(&id, PATIENCE).await;
    let done = done.unwrap_or_else(|e| panic!("{id} completes: {e}"));
    assert_eq!(
        done.status,
        OrchestrationStatus::Completed,
        "{id}: {done:?}"
    );
    let _: serde_json::Value = output(&done).expect("an output");
    println!("done {id}");
}

async fn start(dir: &Path) -> Result<Engine, Error> {
    Netherite::builder()
        .settings(settings(dir))
        .registry(registry())
        .start()
        .await
}

/// Starts this test binary as the child, on `dir`; its stdout comes line by line through the
/// receiver, which ends when the child does.
fn spawn_child(dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line.trim().to_string()).is_err() {
                return;
            }
        }
    });
    (child, receiver)
}

/// Reads the child's lines until `wanted`; fails if the child ends first or goes silent.
fn wait_for_line(lines: &mpsc::Receiver<String>, wanted: &str) {
    loop {
        match lines.recv_timeout(PATIENCE) {
            Ok(line) if line == wanted => return,
            Ok(_) => {}
            Err(error) => panic!("the child never said '{wanted}': {error}"),
        }
    }
}

/// A small seeded generator (SplitMix64): the kill moments replay exactly for one seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
