//! The engine: partition hosts for the partitions this node owns, the workers, and a client.
//!
//! ```no_run
//! use netherite::settings::Settings;
//! use netherite::sdk::Registry;
//! use netherite::Netherite;
//!
//! # async fn demo(registry: Registry) -> Result<(), netherite::Error> {
//! let settings = Settings::load(Some("netherite.toml".as_ref()))?;
//! let engine = Netherite::builder().settings(settings).registry(registry).start().await?;
//! let client = engine.client();
//! // ... start and wait for orchestrations ...
//! engine.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! [`Netherite::builder`] makes the embedded default (feature `file`): the local durable
//! transport and file devices under `settings.data_dir`, one machine, no external service.
//! [`Engine::in_memory`] runs the same engine over the in-memory hub and disks.
//!
//! An [`Engine`] follows the transport's ownership proposals: for each partition proposed to
//! this node it starts a [`PartitionHost`] (which recovers the partition), for each one taken
//! away it shuts its host down. Single-node transports (the local durable transport, the
//! in-memory hub) propose every partition at once, and starting the engine waits until all of
//! them are up, so a client can be used as soon as `start` returns. A node of several sharing
//! storage ([`Engine::start_shared`], the engine over Kafka) returns at once and keeps
//! following: partitions come and go as nodes join and leave (see `follower`).
//!
//! [`Engine::shutdown`] stops every host gracefully, each taking a last checkpoint.

#[cfg(any(feature = "kafka", feature = "eventhubs"))]
mod connect;
#[cfg(feature = "eventhubs")]
mod eventhubs;
mod follower;
#[cfg(feature = "kafka")]
mod kafka;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::join_all;
use netherite_core::PartitionId;
use netherite_core::transport::{MemoryHub, NodeId, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::follower::Follower;

use crate::Error;
use crate::client::{Client, ClientOptions};
use crate::host::{
    HostConfig, HostContext, HostStats, MemoryStorage, PartitionHost, PartitionStorage,
};
use crate::remote::RemoteWork;
use crate::sdk::Registry;
use crate::settings::Settings;
use crate::transport::LocalTransport;

/// The partition hosts running on this node, by partition.
#[derive(Debug, Default)]
pub(crate) struct HostMap {
    hosts: RwLock<HashMap<PartitionId, Arc<PartitionHost>>>,
    /// Set when the engine stops: reads fail at once instead of waiting for a host.
    closed: AtomicBool,
    /// Whether other nodes may host this node's partitions after it (shared storage): a call
    /// that finds its host stopped then goes through the partition's input instead of failing.
    shared: bool,
}

impl HostMap {
    fn new(shared: bool) -> HostMap {
        HostMap {
            shared,
            ..HostMap::default()
        }
    }

    /// Whether a call that found its partition's host stopped should go through the input: on
    /// a node that shares its partitions, another host (here or elsewhere) takes over.
    pub(crate) fn reroutes_stopped(&self) -> bool {
        self.shared
    }

    /// Fails once the engine has stopped.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the engine has shut down".into()));
        }
        Ok(())
    }

    /// The host of `partition` if this node hosts it now, without waiting.
    pub(crate) fn hosted(&self, partition: PartitionId) -> Option<Arc<PartitionHost>> {
        self.lock_read().get(&partition).cloned()
    }

    fn insert(&self, host: PartitionHost) -> Arc<PartitionHost> {
        let host = Arc::new(host);
        let mut hosts = self
            .hosts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hosts.insert(host.partition(), host.clone());
        host
    }

    /// Marks the engine stopped: reads of partitions no longer hosted fail at once.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn remove(&self, partition: PartitionId) -> Option<Arc<PartitionHost>> {
        let mut hosts = self
            .hosts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hosts.remove(&partition)
    }

    fn all(&self) -> Vec<Arc<PartitionHost>> {
        self.lock_read().values().cloned().collect()
    }

    fn lock_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<PartitionId, Arc<PartitionHost>>> {
        self.hosts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running engine: the hosts of this node's partitions and a client.
///
/// ```
/// use std::time::Duration;
///
/// use netherite::client::{StartOptions, output};
/// use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry};
/// use netherite::settings::Settings;
/// use netherite::Engine;
///
/// # let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// let mut registry = Registry::new();
/// registry
///     .orchestration("Greet", |ctx: OrchestrationContext, name: String| async move {
///         ctx.call_activity::<String>("Hello", name).await
///     })?
///     .activity("Hello", |_ctx: ActivityContext, name: String| async move {
///         Ok::<_, ActivityError>(format!("Hello {name}!"))
///     })?;
/// let settings = Settings { partition_count: 2, ..Settings::default() };
/// let engine = Engine::in_memory(registry, &settings).await?;
///
/// let client = engine.client();
/// let id = client.start(StartOptions::new("Greet").with_input(&"Ada")?).await?;
/// let done = client.wait_for_completion(&id, Duration::from_secs(10)).await?;
/// assert_eq!(output::<String>(&done)?, "Hello Ada!");
/// engine.shutdown().await?;
/// # Ok::<(), netherite::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Engine {
    context: Arc<HostContext>,
    hosts: Arc<HostMap>,
    client: Client,
    ownership: Mutex<Option<FollowerTask>>,
    /// The local transport the engine opened itself, closed at shutdown.
    local: Option<LocalTransport>,
    /// The Kafka transport the engine opened itself, which leaves its consumer group when the
    /// engine stops or is dropped.
    #[cfg(feature = "kafka")]
    kafka: Option<netherite_transport_kafka::KafkaTransport>,
    /// The Event Hubs transport the engine opened itself, whose ownership records it gives
    /// back when the engine stops (dropped, it lets them run out).
    #[cfg(feature = "eventhubs")]
    eventhubs: Option<netherite_transport_eventhubs::EventHubsTransport>,
}

impl Engine {
    /// An engine over any transport and storage: starts the hosts of every partition the
    /// transport proposes to this node and returns once all partitions are hosted.
    ///
    /// Fails with the first partition's error if one cannot start (its storage cannot be
    /// opened or is damaged); the partitions already started are shut down again.
    pub async fn start_with(
        transport: Arc<dyn Transport>,
        storage: Arc<dyn PartitionStorage>,
        registry: Registry,
        config: HostConfig,
        client: ClientOptions,
    ) -> Result<Engine, Error> {
        let count = transport.partition_count();
        let node = transport.node().clone();
        let parts = (transport, storage, registry, config, client);
        let (engine, mut started) = Engine::launch(parts, false).await?;
        for _ in 0..count {
            match started.recv().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    let _ = engine.stop().await;
                    return Err(error);
                }
                None => break,
            }
        }
        tracing::info!(partitions = count, node = %node, "engine started");
        Ok(engine)
    }

    /// An engine that is one node of several over shared storage: it follows the
    /// transport's proposals for as long as it runs, and returns once it follows them, not
    /// waiting for any partition. Partitions proposed here start as their storage lets them
    /// (another node's claim may have to run out first); one that fails to start, or whose
    /// host stops on its own, is started again after a pause while it is proposed here.
    /// The client reaches partitions hosted elsewhere through the transport.
    pub async fn start_shared(
        transport: Arc<dyn Transport>,
        storage: Arc<dyn PartitionStorage>,
        registry: Registry,
        config: HostConfig,
        client: ClientOptions,
    ) -> Result<Engine, Error> {
        let node = transport.node().clone();
        let parts = (transport, storage, registry, config, client);
        let (engine, _started) = Engine::launch(parts, true).await?;
        tracing::info!(node = %node, "engine started, following partition ownership");
        Ok(engine)
    }

    /// The number of partitions this node hosts now.
    pub fn hosted_count(&self) -> usize {
        self.hosts.lock_read().len()
    }

    /// Waits until this node hosts at least `count` partitions (checked every 20 ms), for
    /// at most `timeout`; fails with `Closed` naming the count reached. For a node that
    /// expects to host that many: the only node of a hub, or a test that knows its share.
    pub async fn wait_for_partitions(&self, count: usize, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.hosted_count() < count {
            if tokio::time::Instant::now() >= deadline {
                let hosted = self.hosted_count();
                return Err(Error::Closed(format!(
                    "this node hosts {hosted} partitions after {timeout:?}, not {count}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts following the ownership proposals; the receiver hears of each partition
    /// started (or failed, when `restart` is off).
    async fn launch(
        parts: EngineParts,
        restart: bool,
    ) -> Result<(Engine, mpsc::UnboundedReceiver<Result<PartitionId, Error>>), Error> {
        let (transport, storage, registry, config, client) = parts;
        let context = Arc::new(HostContext::new(
            transport.clone(),
            storage,
            Arc::new(registry),
            config,
        ));
        let hosts = Arc::new(HostMap::new(restart));
        let proposals = transport
            .ownership()
            .await
            .map_err(|source| Error::Transport {
                what: "following the partition ownership".into(),
                source,
            })?;
        let (started, started_rx) = mpsc::unbounded_channel();
        let follower = Follower {
            context: context.clone(),
            hosts: hosts.clone(),
            started,
            restart,
        };
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(follower.run(proposals, stop_rx));
        let ownership = FollowerTask { task, stop };
        let engine = Engine {
            client: Client::connect(transport.clone(), hosts.clone(), client).await?,
            context,
            hosts,
            ownership: Mutex::new(Some(ownership)),
            local: None,
            #[cfg(feature = "kafka")]
            kafka: None,
            #[cfg(feature = "eventhubs")]
            eventhubs: None,
        };
        Ok((engine, started_rx))
    }

    /// An engine entirely in memory, shaped by `settings` (its `data_dir` is unused): a fresh
    /// [`MemoryHub`] and [`MemoryStorage`], this node owning every partition. Nothing
    /// survives the process; for tests and examples.
    pub async fn in_memory(registry: Registry, settings: &Settings) -> Result<Engine, Error> {
        settings.validate()?;
        let hub = MemoryHub::new(settings.partition_count).map_err(|source| Error::Transport {
            what: "creating the in-memory hub".into(),
            source,
        })?;
        Engine::in_memory_on(&hub, &MemoryStorage::new(), registry, settings).await
    }

    /// An engine over an existing in-memory hub and storage, so a test can stop an engine
    /// and start another on the same queues and disks.
    pub async fn in_memory_on(
        hub: &MemoryHub,
        storage: &MemoryStorage,
        registry: Registry,
        settings: &Settings,
    ) -> Result<Engine, Error> {
        let node = NodeId::new("local");
        let transport = hub.connect(node.clone());
        for p in 0..settings.partition_count {
            let assigned = hub.assign(PartitionId(p), Some(node.clone()));
            assigned.map_err(|source| Error::Transport {
                what: format!("assigning partition {p}"),
                source,
            })?;
        }
        let config = HostConfig::from_settings(settings);
        let client = ClientOptions::from_settings(settings);
        let storage = Arc::new(storage.clone());
        Engine::start_with(Arc::new(transport), storage, registry, config, client).await
    }

    /// The engine's client (all calls return clones of one client).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The number of partitions of the task hub.
    pub fn partition_count(&self) -> u32 {
        self.context.config.partition_count
    }

    /// The figures of every partition hosted here, by partition.
    pub async fn stats(&self) -> Result<Vec<HostStats>, Error> {
        let hosts = self.hosts.all();
        let mut stats = Vec::with_capacity(hosts.len());
        for host in hosts {
            stats.push(host.stats().await?);
        }
        stats.sort_by_key(|s| s.partition);
        Ok(stats)
    }

    /// Stops every partition gracefully (each takes a last checkpoint); returns the first
    /// error any partition reported.
    pub async fn shutdown(self) -> Result<(), Error> {
        let mut result = self.stop().await;
        if let Some(local) = &self.local {
            result = result.and(local.close().await);
        }
        #[cfg(feature = "kafka")]
        if let Some(kafka) = &self.kafka {
            kafka.close();
        }
        #[cfg(feature = "eventhubs")]
        if let Some(eventhubs) = &self.eventhubs {
            eventhubs.close().await;
        }
        tracing::info!("engine shut down");
        result
    }

    /// Stops every partition at once, as a crash of the process would: no checkpoint, nothing
    /// more logged or sent. Dropping an engine without [`shutdown`](Self::shutdown) does the
    /// same. For tests of recovery.
    pub fn abort(self) {
        drop(self);
    }

    async fn stop(&self) -> Result<(), Error> {
        // The follower stops first (its hosts that were already stopping finish), so that no
        // host starts or leaves behind the snapshot below.
        let following = self.take_follower();
        if let Some(FollowerTask { task, stop }) = following {
            let _ = stop.send(());
            if let Err(error) = task.await {
                tracing::warn!(%error, "the ownership follower ended badly");
            }
        }
        self.hosts.close();
        let hosts = self.hosts.all();
        let results = join_all(hosts.iter().map(|host| host.shutdown())).await;
        for host in &hosts {
            self.hosts.remove(host.partition());
        }
        results.into_iter().collect()
    }

    fn take_follower(&self) -> Option<FollowerTask> {
        self.ownership
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The task following the ownership proposals, and what tells it to stop.
#[derive(Debug)]
struct FollowerTask {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        #[cfg(feature = "kafka")]
        if let Some(kafka) = &self.kafka {
            kafka.close();
        }
        if let Some(following) = self.take_follower() {
            following.task.abort();
        }
        self.hosts.close();
        for host in self.hosts.all() {
            host.abort();
            self.hosts.remove(host.partition());
        }
    }
}

/// What an engine is made of, before it starts.
type EngineParts = (
    Arc<dyn Transport>,
    Arc<dyn PartitionStorage>,
    Registry,
    HostConfig,
    ClientOptions,
);

/// The entry point: `Netherite::builder()`.
#[derive(Debug)]
pub struct Netherite;

impl Netherite {
    /// A builder with the default settings and an empty registry.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }
}

/// Builds an [`Engine`] from settings and a registry.
#[derive(Debug, Default)]
pub struct EngineBuilder {
    settings: Settings,
    registry: Registry,
    remote_work: Option<RemoteWork>,
}

impl EngineBuilder {
    /// Use `settings` (default: [`Settings::default`]).
    pub fn settings(mut self, settings: Settings) -> EngineBuilder {
        self.settings = settings;
        self
    }

    /// Run the orchestrations and activities of `registry`.
    pub fn registry(mut self, registry: Registry) -> EngineBuilder {
        self.registry = registry;
        self
    }

    /// Send the work `registry` cannot run to `work`, for outside workers to take (the gRPC
    /// sidecar's streams), instead of failing it.
    pub fn remote_work(mut self, work: RemoteWork) -> EngineBuilder {
        self.remote_work = Some(work);
        self
    }

    /// Starts the embedded default on `settings.data_dir`: creates the task hub there on
    /// first use, recovers every partition, and returns once all are serving. The partitions'
    /// inputs are local files; their state is where `settings.storage` says: files in the
    /// same directory, or page blobs (feature `pageblob`).
    ///
    /// Fails with [`Error::PartitionCountMismatch`] when the directory was made with another
    /// partition count, [`Error::TaskHubLocked`] when another process uses it, and with the
    /// partition's error when a partition's state cannot be recovered.
    #[cfg(feature = "file")]
    pub async fn start(self) -> Result<Engine, Error> {
        use crate::transport::LocalTransportOptions;

        let settings = self.settings;
        let hub = open_hub(&settings).await?;
        let options = LocalTransportOptions::for_settings(&settings);
        let local = LocalTransport::open(&hub, options).await?;
        let storage = match local_storage(&settings, hub).await {
            Ok(storage) => storage,
            Err(error) => {
                let _ = local.close().await;
                return Err(error);
            }
        };
        let config = HostConfig {
            remote_work: self.remote_work,
            ..HostConfig::from_settings(&settings)
        };
        let client = ClientOptions::from_settings(&settings);
        let transport: Arc<dyn Transport> = Arc::new(local.clone());
        match Engine::start_with(transport, storage, self.registry, config, client).await {
            Ok(mut engine) => {
                engine.local = Some(local);
                Ok(engine)
            }
            Err(error) => {
                let _ = local.close().await;
                Err(error)
            }
        }
    }

    /// Starts the engine in memory (see [`Engine::in_memory`]).
    pub async fn start_in_memory(self) -> Result<Engine, Error> {
        Engine::in_memory(self.registry, &self.settings).await
    }
}

/// Checks `settings` and opens (or creates) the task hub in their data directory, off the
/// async threads: opening reads and may write files.
#[cfg(feature = "file")]
async fn open_hub(settings: &Settings) -> Result<crate::taskhub::TaskHub, Error> {
    settings.validate()?;
    let opening = settings.clone();
    tokio::task::spawn_blocking(move || crate::taskhub::TaskHub::open_with(&opening))
        .await
        .map_err(|e| Error::Closed(format!("opening the task hub: {e}")))?
}

/// Starts a node of several sharing their task hub over `transport` and `storage`, with the
/// host and client options of `settings` (see [`Engine::start_shared`]).
#[cfg(any(feature = "kafka", feature = "eventhubs"))]
async fn start_node(
    builder: EngineBuilder,
    transport: Arc<dyn Transport>,
    storage: Arc<dyn PartitionStorage>,
) -> Result<Engine, Error> {
    let config = HostConfig {
        remote_work: builder.remote_work,
        ..HostConfig::from_settings(&builder.settings)
    };
    let client = ClientOptions::from_settings(&builder.settings);
    Engine::start_shared(transport, storage, builder.registry, config, client).await
}

/// The storage `settings.storage` names, for a task hub whose inputs are in `hub`.
#[cfg(feature = "file")]
async fn local_storage(
    settings: &Settings,
    hub: crate::taskhub::TaskHub,
) -> Result<Arc<dyn PartitionStorage>, Error> {
    use crate::settings::StorageKind;

    match settings.storage {
        StorageKind::File => Ok(Arc::new(crate::host::FileStorage::new(hub))),
        #[cfg(feature = "pageblob")]
        StorageKind::PageBlob => {
            let storage = crate::host::PageBlobStorage::open(settings, Some(hub)).await?;
            Ok(Arc::new(storage))
        }
        #[cfg(not(feature = "pageblob"))]
        StorageKind::PageBlob => Err(Error::InvalidSetting {
            setting: "storage",
            origin: "settings".into(),
            reason: "pageblob storage needs netherite built with the feature `pageblob`".into(),
        }),
    }
}
