//! The partition host: one task per partition that wires the transport (input), the core state
//! machine, and the commit log and store of `netherite-faster` over the partition's devices.
//!
//! A [`PartitionHost`] starts by recovering (see `recovery`): the newest checkpoint, then the
//! commit log's tail replayed onto it, then one logged `Recovered` update that re-issues the
//! work in flight, re-arms the timer and resends the outbox. It then subscribes to its input
//! right after the last position the state recorded and runs the loop (see `runner`).
//!
//! The rules that make a crash harmless:
//!
//! - **Pipelined persistence.** Updates are applied as soon as they are appended, before the
//!   log makes them durable, and the episodes and activities they start run at once. What
//!   leaves the partition (batches for other partitions, answers to clients, read results)
//!   waits until the update that produced it is durable. A crash rolls the partition back to
//!   a durable prefix, and nobody outside has seen anything past it.
//! - **Exact resume.** The state records the input position after each input it applied, and
//!   the checkpoint records the commit position it covers, so recovery replays exactly the
//!   updates after the checkpoint and reads the input exactly from where the state stopped.
//! - **Checkpoints** are taken in the background by log size, update count and idle time, and
//!   on a graceful shutdown. Only the log and input before the checkpoint *preceding* the
//!   newest are trimmed, since the store may fall back to that one.
//!
//! Hosts of one node share a [`HostContext`]: the transport, the storage, the workers (with the
//! node's concurrency limits) and the [`HostConfig`].

mod checkpoint;
mod checkpointer;
mod clock;
mod durability;
mod input;
#[cfg(feature = "file")]
mod lease;
mod outbox;
mod oversize;
mod recovery;
mod runner;
mod storage;
mod timer;
mod waiters;
mod workers;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netherite_core::codec;
use netherite_core::partition::{
    ClientRequest, InstanceView, Limits, PartitionConfig, ReadEvent, ReadResult, StatsView,
    WaitUntil,
};
use netherite_core::transport::Transport;
use netherite_core::{
    ClientId, CommitPosition, InputPosition, InstanceId, PartitionId, RequestSeq, Timestamp,
};
use netherite_faster::log::LogConfig;
use netherite_faster::store::StoreConfig;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::checkpointer::{Cadence, CheckpointTask, Checkpointer};
use self::clock::{EventClock, Seeds};
pub(crate) use self::clock::{random_u128, system_now};
use self::durability::DurabilityTracker;
use self::outbox::Outbox;
pub use self::oversize::PAYLOAD_TOO_LARGE;
use self::recovery::{RecoveredPartition, RecoveryConfig, recover};
pub(crate) use self::runner::Command;
use self::runner::Runner;
#[cfg(feature = "file")]
pub use self::storage::FileStorage;
#[cfg(feature = "pageblob")]
pub use self::storage::PageBlobStorage;
pub use self::storage::{MemoryStorage, PartitionDevices, PartitionFence, PartitionStorage};
pub use self::timer::TIMER_WAIT_MAX;
use self::waiters::Waiters;
pub use self::workers::ENTITIES_NOT_SUPPORTED;
pub(crate) use self::workers::WorkerLink;
use self::workers::Workers;
use crate::Error;
use crate::remote::RemoteWork;
use crate::sdk::Registry;
use crate::settings::Settings;

/// Pending commands per partition before senders wait (back-pressure).
const COMMANDS_MAX: usize = 4096;
/// How often recovery is tried when a device fails in a retryable way.
const RECOVERY_ATTEMPTS_MAX: u32 = 5;
/// The pause before the second attempt; it doubles with each further one.
const RECOVERY_RETRY_DELAY: Duration = Duration::from_millis(20);

/// How the hosts of a node run their partitions.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The task hub's partition count.
    pub partition_count: u32,
    /// The bounds each partition's state machine keeps.
    pub limits: Limits,
    /// The largest payload a worker answer may carry (an activity's output, an
    /// orchestration's result, inputs and event data it passes on, its custom status); an
    /// answer over it fails with [`PAYLOAD_TOO_LARGE`].
    pub payload_bytes_max: u64,
    /// Checkpoint once the commit log grew by this many bytes since the last checkpoint.
    pub checkpoint_log_bytes_max: u64,
    /// Checkpoint once this many updates were applied since the last checkpoint.
    pub checkpoint_events_max: u64,
    /// Checkpoint a partition that applied updates and then stayed idle this long.
    pub checkpoint_idle: Duration,
    /// The most orchestration episodes running at once on this node.
    pub orchestrations_concurrency_max: u32,
    /// The most activities running at once on this node.
    pub activities_concurrency_max: u32,
    /// The commit log's settings (its `name` is replaced per partition).
    pub log: LogConfig,
    /// The store's settings.
    pub store: StoreConfig,
    /// Where work goes that the registry cannot run (see [`crate::remote`]); without it, such
    /// work fails as the Rust SDK fails it (an unregistered name).
    pub remote_work: Option<RemoteWork>,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            partition_count: 12,
            limits: Limits::default(),
            payload_bytes_max: 1 << 20,
            checkpoint_log_bytes_max: 20 << 20,
            checkpoint_events_max: 10_000,
            checkpoint_idle: Duration::from_secs(60),
            orchestrations_concurrency_max: 100,
            activities_concurrency_max: 100,
            log: LogConfig {
                record_bytes_max: 16 << 20,
                buffer_bytes_max: 64 << 20,
                ..LogConfig::default()
            },
            store: state_store_config(),
            remote_work: None,
        }
    }
}

/// The store's shape for the host, which keeps only a few keys in it (the state's chunks):
/// a small index and a memory budget of 16 MiB per partition, so that a node with many
/// partitions does not hold every old chunk in memory before the store evicts it.
fn state_store_config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 16 << 20,
        index_buckets: 1 << 12,
        ..StoreConfig::default()
    }
}

impl HostConfig {
    /// The host configuration `settings` ask for; the commit log takes records of a few times
    /// the largest payload (an episode's answer may carry several), at least 16 MiB.
    pub fn from_settings(settings: &Settings) -> HostConfig {
        let record_max = settings
            .payload_bytes_max
            .saturating_mul(4)
            .clamp(16 << 20, codec::RECORD_BYTES_MAX as u64);
        let record_bytes_max = u32::try_from(record_max).unwrap_or(u32::MAX);
        HostConfig {
            partition_count: settings.partition_count,
            payload_bytes_max: settings.payload_bytes_max,
            checkpoint_log_bytes_max: settings.checkpoint_log_bytes_max,
            checkpoint_events_max: settings.checkpoint_events_max,
            checkpoint_idle: settings.checkpoint_idle,
            orchestrations_concurrency_max: settings.orchestrations_concurrency_max,
            activities_concurrency_max: settings.activities_concurrency_max,
            log: LogConfig {
                record_bytes_max,
                buffer_bytes_max: 2 * record_max + (1 << 20),
                ..LogConfig::default()
            },
            ..HostConfig::default()
        }
    }
}

/// What the hosts of one node share.
pub struct HostContext {
    /// The queues between partitions and clients.
    pub transport: Arc<dyn Transport>,
    /// Where partitions keep their logs and checkpoints.
    pub storage: Arc<dyn PartitionStorage>,
    /// How partitions run.
    pub config: HostConfig,
    workers: Workers,
}

impl HostContext {
    /// The context for hosts over `transport` and `storage`, running `registry`'s
    /// orchestrations and activities.
    pub fn new(
        transport: Arc<dyn Transport>,
        storage: Arc<dyn PartitionStorage>,
        registry: Arc<Registry>,
        config: HostConfig,
    ) -> HostContext {
        let workers = Workers::new(
            registry,
            config.orchestrations_concurrency_max,
            config.activities_concurrency_max,
            config.remote_work.clone(),
        );
        HostContext {
            transport,
            storage,
            config,
            workers,
        }
    }

    fn recovery_config(&self, partition: PartitionId) -> RecoveryConfig {
        RecoveryConfig {
            partition: PartitionConfig {
                partition,
                partition_count: self.config.partition_count,
                limits: self.config.limits.clone(),
            },
            log: LogConfig {
                name: format!("partition {partition} commit log"),
                ..self.config.log.clone()
            },
            store: self.config.store.clone(),
        }
    }

    fn cadence(&self) -> Cadence {
        Cadence {
            log_bytes_max: self.config.checkpoint_log_bytes_max,
            events_max: self.config.checkpoint_events_max.max(1),
            idle: self.config.checkpoint_idle,
        }
    }
}

impl fmt::Debug for HostContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostContext")
            .field("transport", &self.transport)
            .field("storage", &self.storage)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Figures of a running partition host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStats {
    /// The partition.
    pub partition: PartitionId,
    /// The state machine's counters.
    pub state: StatsView,
    /// The commit position of the last update applied.
    pub last_applied: Option<CommitPosition>,
    /// The input position the partition resumes at.
    pub input_position: InputPosition,
    /// The commit log's durable point.
    pub durable: CommitPosition,
    /// Checkpoints taken since the host started.
    pub checkpoints: u64,
    /// The positions the newest checkpoint covers (from recovery or since).
    pub last_checkpoint: Option<(CommitPosition, InputPosition)>,
    /// When the timer is due next.
    pub armed: Option<Timestamp>,
    /// Callers of this process waiting for an instance to start or finish.
    pub waiting: usize,
}

/// A running partition: a handle on its loop.
#[derive(Debug)]
pub struct PartitionHost {
    partition: PartitionId,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<Result<(), Error>>>>,
}

impl PartitionHost {
    /// Opens `partition`'s devices, recovers it and starts its loop.
    ///
    /// Returns once the partition is recovered and serving; fails if its storage cannot be
    /// opened or holds something this program cannot use (each error names the partition).
    pub async fn start(
        partition: PartitionId,
        context: Arc<HostContext>,
    ) -> Result<PartitionHost, Error> {
        let devices = context.storage.open(partition).await?;
        let recovered = match recover_retrying(&devices, &context.recovery_config(partition)).await
        {
            Ok(recovered) => recovered,
            Err(error) => {
                devices.release(partition).await;
                return Err(error);
            }
        };
        let replayed = recovered.replayed;
        let (commands_tx, commands) = mpsc::channel(COMMANDS_MAX);
        let mut runner = runner(recovered, devices, context, commands, commands_tx.clone());
        runner.start().await?;
        tracing::info!(partition = %partition, replayed, "partition started");
        let task = tokio::spawn(runner.run());
        Ok(PartitionHost {
            partition,
            commands: commands_tx,
            task: Mutex::new(Some(task)),
        })
    }

    /// This host's partition.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// Answers `read` from the partition's live state, once what the answer shows is durable.
    pub async fn read(&self, read: ReadEvent) -> Result<ReadResult, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Read(read, reply)).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Waits until `instance` started (left `Pending`) or finished, as `until` says, and
    /// answers with the instance once that is durable; `NotFound` if there is no such
    /// instance (or it is purged meanwhile). Dropping the future gives up the wait.
    pub async fn wait(
        &self,
        instance: InstanceId,
        until: WaitUntil,
    ) -> Result<InstanceView, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Wait(instance, until, reply)).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Hands the requests of `client`, numbered in order, to the partition directly: each is
    /// logged and applied like a request read from the input, and answered on the client's
    /// response queue. Gives the requests back if the host has stopped.
    pub(crate) async fn submit(
        &self,
        client: ClientId,
        requests: Vec<(RequestSeq, ClientRequest)>,
    ) -> Result<(), Vec<(RequestSeq, ClientRequest)>> {
        let command = Command::ClientRequests(client, requests);
        let Err(mpsc::error::SendError(command)) = self.commands.send(command).await else {
            return Ok(());
        };
        match command {
            Command::ClientRequests(_, requests) => Err(requests),
            _ => unreachable!("a failed send hands back the command it was given"),
        }
    }

    /// The host's figures.
    pub async fn stats(&self) -> Result<HostStats, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Inspect(reply)).await?;
        answer.await.map_err(|_| self.stopped())
    }

    /// Stops the partition gracefully: a last checkpoint, the outbox given a few seconds to
    /// drain, then the log closed and the devices released. Calling it twice is harmless.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        let asked = self.send(Command::Shutdown(reply)).await;
        let task = self.take_task();
        let Some(task) = task else {
            return Ok(());
        };
        asked?;
        let answer = answer.await.map_err(|_| self.stopped());
        let _ = task.await;
        answer?
    }

    /// Resolves once the partition's loop has ended, for whatever reason.
    pub(crate) async fn ended(&self) {
        self.commands.closed().await;
    }

    /// Stops the partition at once, as a crash would: nothing more is logged or sent.
    pub fn abort(&self) {
        if let Some(task) = self.take_task() {
            task.abort();
        }
    }

    fn take_task(&self) -> Option<JoinHandle<Result<(), Error>>> {
        self.task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| self.stopped())
    }

    fn stopped(&self) -> Error {
        Error::PartitionStopped {
            partition: self.partition,
            reason: "its host has stopped".into(),
        }
    }
}

/// Recovers the partition, trying again a few times when a device fails in a way that may
/// pass (recovery only reads, or rewrites what it already decided, so it can run again).
async fn recover_retrying(
    devices: &PartitionDevices,
    config: &RecoveryConfig,
) -> Result<RecoveredPartition, Error> {
    let (mut attempt, mut delay) = (1, RECOVERY_RETRY_DELAY);
    loop {
        match recover(devices, config).await {
            Err(error) if attempt < RECOVERY_ATTEMPTS_MAX && is_retryable(&error) => {
                tracing::warn!(partition = %config.partition.partition, attempt, %error,
                    "recovery failed; trying again");
                tokio::time::sleep(delay).await;
                (attempt, delay) = (attempt + 1, delay * 2);
            }
            done => return done,
        }
    }
}

/// Whether a storage error is a device failure that may pass when retried.
fn is_retryable(error: &Error) -> bool {
    let Error::Storage { source, .. } = error else {
        return false;
    };
    match source.downcast_ref::<netherite_faster::Error>() {
        Some(netherite_faster::Error::Device(device)) => device.is_retryable(),
        Some(_) => false,
        None => source
            .downcast_ref::<netherite_core::Error>()
            .is_some_and(netherite_core::Error::is_retryable),
    }
}

/// The loop of a recovered partition, with its timer, durability follower, outbox and
/// checkpoint task started.
fn runner(
    recovered: RecoveredPartition,
    devices: PartitionDevices,
    context: Arc<HostContext>,
    commands: mpsc::Receiver<Command>,
    commands_tx: mpsc::Sender<Command>,
) -> Runner {
    let partition = recovered.state.partition();
    let (stopping, stopping_rx) = watch::channel(false);
    let (timer, timer_rx) = watch::channel(None);
    timer::spawn(partition, timer_rx, commands_tx.clone());
    let durability = DurabilityTracker::spawn(partition, recovered.log.clone());
    let transport = context.transport.clone();
    let outbox = Outbox::new(
        partition,
        transport.clone(),
        durability.watch(),
        commands_tx.clone(),
    );
    let checkpoint_task = CheckpointTask {
        partition,
        store: recovered.store,
        log: recovered.log.clone(),
        transport,
        durable: durability.watch(),
        previous: recovered.checkpoint,
    };
    Runner {
        partition,
        state: recovered.state,
        log: recovered.log,
        clock: EventClock::default(),
        seeds: Seeds::from_os(),
        commands,
        link: WorkerLink {
            partition,
            commands: commands_tx,
            stopping: stopping_rx,
        },
        stopping,
        durability,
        outbox: Some(outbox),
        timer,
        armed: None,
        timer_changed: false,
        checkpointer: Checkpointer::spawn(checkpoint_task, context.cadence()),
        input: None,
        resubscribe_at: None,
        shutdown: None,
        devices,
        waiters: Waiters::default(),
        context,
    }
}
