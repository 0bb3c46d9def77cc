//! The local durable transport: the embedded default, for a task hub on one machine.
//!
//! [`LocalTransport`] implements the core's [`Transport`] for one process, with no external
//! service:
//!
//! - **Partition inputs are durable queues.** Each partition's input is a commit log
//!   (`netherite_faster::log::CommitLog`) of payloads over its own device: with feature
//!   `file` (on by default), a `FileDevice` in `<data_dir>/pNN/input/`. A payload's position
//!   is its record's byte offset in that log: positions increase, have gaps, and are never
//!   reused, since the log only grows and truncation only drops its front.
//! - **Group commit.** A send appends its payloads and returns once a device flush covered
//!   them; sends that arrive while a flush runs join the next one, so many concurrent senders
//!   share one `fdatasync`. [`LocalTransport::stats`] reports the ratio.
//! - **Tailing without polling.** A subscription scans the log from its position, then sleeps
//!   until a send publishes newly durable records.
//! - **Discard truncates.** [`discard_before`](Transport::discard_before) lets the log drop
//!   its front (the host calls it once a checkpoint covers the input); the device reclaims
//!   whole segment files.
//! - **Client response queues live in memory** (a core `MemoryHub`): clients of the embedded
//!   engine live in the same process, and a client that restarts is a new client with a new
//!   id, so its old queue is of no use. A response lost in a crash is not lost work: the
//!   partition recorded the outcome durably before sending it, and a client asks again.
//! - **Ownership.** There is one node, and it owns every partition: each
//!   [`ownership`](Transport::ownership) stream starts with an `Acquired` for every partition
//!   and then stays quiet until the transport closes.
//!
//! Survives kill -9: what a send acknowledged is durable on disk, and a reopen of the same
//! directory finds every payload at the position it was given. [`LocalTransport::with_devices`]
//! runs the same queues over any [`LogDevice`], e.g. the
//! core's `MemoryDisk` with its fault knobs.

mod counted;
#[cfg(feature = "file")]
mod open;
mod queue;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::device::LogDevice;
use netherite_core::transport::{
    InputStream, MemoryHub, MemoryTransport, NodeId, Ownership, OwnershipStream, Transport,
    TransportLimits,
};
use netherite_core::{ClientId, InputPosition, PartitionId};
pub use netherite_faster::log::LogPosition;
use tokio::sync::mpsc;

use self::queue::InputQueue;
use crate::Error;
use crate::settings::Settings;
use crate::taskhub::TaskHub;

/// How the local transport's queues are shaped and bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTransportOptions {
    /// The largest payload one send accepts, to a partition or a client; a larger one is
    /// refused with `LimitExceeded` naming `message_bytes_max`. Default 8 MiB.
    pub message_bytes_max: u32,
    /// The size of the segment files of each partition's input queue (feature `file`); a
    /// discard gives disk space back in whole segments. Default 16 MiB.
    pub segment_bytes: u64,
    /// How long opening waits for a queue directory that a handle of this same process is
    /// still letting go of (after a drop, its tasks finish in the background); past it, the
    /// directory counts as owned by someone else. Default 5 s.
    pub lock_wait: Duration,
}

impl Default for LocalTransportOptions {
    fn default() -> LocalTransportOptions {
        LocalTransportOptions {
            message_bytes_max: 8 << 20,
            segment_bytes: 16 << 20,
            lock_wait: Duration::from_secs(5),
        }
    }
}

impl LocalTransportOptions {
    /// The defaults, with `message_bytes_max` raised if need be so that one payload of
    /// `settings.payload_bytes_max`, with room for its envelope, fits in a message.
    pub fn for_settings(settings: &Settings) -> LocalTransportOptions {
        let defaults = LocalTransportOptions::default();
        let needed = settings
            .payload_bytes_max
            .saturating_add(ENVELOPE_BYTES_MAX);
        let needed = u32::try_from(needed).unwrap_or(u32::MAX);
        LocalTransportOptions {
            message_bytes_max: defaults.message_bytes_max.max(needed),
            ..defaults
        }
    }
}

/// The room [`LocalTransportOptions::for_settings`] leaves for what surrounds a payload in a
/// message (ids, names, stamps, framing).
pub const ENVELOPE_BYTES_MAX: u64 = 64 << 10;

/// One partition input queue's device and the truncation point it keeps.
#[derive(Clone, Debug)]
pub struct QueueDevice {
    /// The device.
    pub device: Arc<dyn LogDevice>,
    /// Its truncation point: where the queue's log starts ([`LogPosition::ZERO`] for a new
    /// device).
    pub start: LogPosition,
}

/// What a [`LocalTransport`] did since it was opened, for group-commit figures and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Sends to partitions that returned `Ok`.
    pub sends: u64,
    /// Payloads in those sends.
    pub payloads: u64,
    /// Device flushes of the partition queues that succeeded, one recovery flush per
    /// partition at open included.
    pub flushes: u64,
}

/// The local durable transport; see the [module docs](self).
///
/// Handles are cheap clones sharing the queues. An open stream keeps its partition's queue
/// open, so a reopen of the directory waits for the streams of a dropped transport to be
/// dropped too (up to [`LocalTransportOptions::lock_wait`]).
///
/// ```
/// use netherite::transport::{LocalTransport, LocalTransportOptions};
/// use netherite_core::transport::Transport;
/// use netherite_core::{InputPosition, PartitionId};
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let options = LocalTransportOptions::default();
/// let transport = LocalTransport::open_dir(dir.path(), 2, options.clone()).await?;
/// let positions = transport.send(PartitionId(1), vec![b"hello".to_vec()]).await?;
/// drop(transport); // as good as a crash: only durable data is counted on
///
/// let transport = LocalTransport::open_dir(dir.path(), 2, options).await?;
/// let mut input = transport.subscribe(PartitionId(1), InputPosition::START).await?;
/// let event = input.next().await.expect("an event")?;
/// assert_eq!((event.position, event.payload), (positions[0], b"hello".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LocalTransport {
    inner: Arc<Inner>,
    node: NodeId,
}

#[derive(Debug)]
struct Inner {
    queues: Vec<Arc<InputQueue>>,
    // TODO: the memory hub keeps an (emptied) queue for every client id it ever saw; matters
    // for a long-running server whose clients come and go by the hundred thousand.
    clients: MemoryTransport,
    client_hub: MemoryHub,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Ownership>>>,
    closed: AtomicBool,
    message_bytes_max: u32,
    sends: AtomicU64,
    payloads: AtomicU64,
    /// Holds the data directory's lock until the transport is closed or dropped.
    hub: Mutex<Option<TaskHub>>,
}

impl LocalTransport {
    /// The name of the node of a local transport, unless [`connect`](Self::connect) gives
    /// another.
    pub const NODE: &str = "local";

    /// A transport whose partition `p` reads the queue on `devices[p]`; there must be at
    /// least one. Opens (recovers) each queue's log.
    pub async fn with_devices(
        devices: Vec<QueueDevice>,
        options: LocalTransportOptions,
    ) -> Result<LocalTransport, Error> {
        LocalTransport::build(devices, options, None).await
    }

    async fn build(
        devices: Vec<QueueDevice>,
        options: LocalTransportOptions,
        hub: Option<TaskHub>,
    ) -> Result<LocalTransport, Error> {
        if devices.is_empty() {
            return Err(open_error(
                "opening the local transport",
                "a task hub has at least one partition",
            ));
        }
        let mut queues = Vec::with_capacity(devices.len());
        for (p, QueueDevice { device, start }) in devices.into_iter().enumerate() {
            let partition = PartitionId(u32::try_from(p).expect("the partition count fits u32"));
            let queue = InputQueue::open(partition, device, start, options.message_bytes_max)
                .await
                .map_err(|source| Error::Transport {
                    what: format!("opening the input queue of partition {p}"),
                    source,
                })?;
            queues.push(Arc::new(queue));
        }

        let limits = TransportLimits {
            payload_bytes_max: options.message_bytes_max as usize,
            ..TransportLimits::default()
        };
        let client_hub = MemoryHub::new(1)
            .map_err(|source| Error::Transport {
                what: "creating the client response queues".into(),
                source,
            })?
            .with_limits(limits);
        let inner = Inner {
            queues,
            clients: client_hub.connect(NodeId::new(LocalTransport::NODE)),
            client_hub,
            watchers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            message_bytes_max: options.message_bytes_max,
            sends: AtomicU64::new(0),
            payloads: AtomicU64::new(0),
            hub: Mutex::new(hub),
        };
        Ok(LocalTransport {
            inner: Arc::new(inner),
            node: NodeId::new(LocalTransport::NODE),
        })
    }

    /// Another handle on the same queues, speaking for `node`. Every handle is told it owns
    /// every partition.
    pub fn connect(&self, node: NodeId) -> LocalTransport {
        LocalTransport {
            inner: Arc::clone(&self.inner),
            node,
        }
    }

    /// The largest payload a send accepts ([`LocalTransportOptions::message_bytes_max`]):
    /// a sender splits larger batches of messages into payloads below it.
    pub fn message_bytes_max(&self) -> u32 {
        self.inner.message_bytes_max
    }

    /// What the transport did since it was opened.
    pub fn stats(&self) -> TransportStats {
        TransportStats {
            sends: self.inner.sends.load(Ordering::Relaxed),
            payloads: self.inner.payloads.load(Ordering::Relaxed),
            flushes: self.inner.queues.iter().map(|q| q.flushes()).sum(),
        }
    }

    /// Shuts the transport down for every handle: streams end, calls fail with `Closed`, each
    /// queue's log is sealed and its device released, so the directory can be reopened at
    /// once. A drop without `close` is a crash as far as the disk is concerned.
    pub async fn close(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.lock_watchers().clear();
        self.inner.client_hub.close();
        for (p, queue) in self.inner.queues.iter().enumerate() {
            queue.close().await.map_err(|source| Error::Transport {
                what: format!("closing the input queue of partition {p}"),
                source,
            })?;
        }
        // Give the data directory's lock up, so that it can be reopened at once.
        let hub = self.inner.hub.lock().map(|mut hub| hub.take());
        drop(hub);
        tracing::info!(
            partitions = self.inner.queues.len(),
            "local transport closed"
        );
        Ok(())
    }

    fn queue(&self, partition: PartitionId) -> Result<&Arc<InputQueue>, netherite_core::Error> {
        self.check_open()?;
        self.inner.queues.get(partition.0 as usize).ok_or_else(|| {
            netherite_core::Error::InvalidArgument {
                operation: "partition",
                reason: format!(
                    "{partition} is not below the count {}",
                    self.inner.queues.len()
                ),
            }
        })
    }

    fn check_open(&self) -> Result<(), netherite_core::Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(netherite_core::Error::Closed);
        }
        Ok(())
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Ownership>>> {
        self.inner
            .watchers
            .lock()
            .expect("no code panics while holding the watchers lock")
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn partition_count(&self) -> u32 {
        u32::try_from(self.inner.queues.len()).expect("the partition count fits u32")
    }

    fn node(&self) -> &NodeId {
        &self.node
    }

    async fn send(
        &self,
        partition: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<InputPosition>, netherite_core::Error> {
        let count = payloads.len() as u64;
        let positions = self.queue(partition)?.send(payloads).await?;
        self.inner.sends.fetch_add(1, Ordering::Relaxed);
        self.inner.payloads.fetch_add(count, Ordering::Relaxed);
        Ok(positions)
    }

    async fn subscribe(
        &self,
        partition: PartitionId,
        from: InputPosition,
    ) -> Result<InputStream, netherite_core::Error> {
        self.queue(partition)?.subscribe(from)
    }

    async fn discard_before(
        &self,
        partition: PartitionId,
        before: InputPosition,
    ) -> Result<(), netherite_core::Error> {
        self.queue(partition)?.discard_before(before).await
    }

    async fn send_to_client(
        &self,
        client: ClientId,
        payload: Vec<u8>,
    ) -> Result<InputPosition, netherite_core::Error> {
        self.check_open()?;
        self.inner.clients.send_to_client(client, payload).await
    }

    async fn client_responses(
        &self,
        client: ClientId,
        from: InputPosition,
    ) -> Result<InputStream, netherite_core::Error> {
        self.check_open()?;
        self.inner.clients.client_responses(client, from).await
    }

    async fn discard_responses_before(
        &self,
        client: ClientId,
        before: InputPosition,
    ) -> Result<(), netherite_core::Error> {
        self.check_open()?;
        self.inner
            .clients
            .discard_responses_before(client, before)
            .await
    }

    async fn ownership(&self) -> Result<OwnershipStream, netherite_core::Error> {
        self.check_open()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        for p in 0..self.partition_count() {
            // The receiver is alive right here, so the send cannot fail.
            let _ = sender.send(Ownership::Acquired(PartitionId(p)));
        }
        let mut watchers = self.lock_watchers();
        watchers.retain(|w| !w.is_closed());
        watchers.push(sender);
        Ok(OwnershipStream::new(receiver))
    }
}

fn open_error(what: &str, reason: &str) -> Error {
    Error::Transport {
        what: what.to_owned(),
        source: netherite_core::Error::InvalidArgument {
            operation: "LocalTransport::open",
            reason: reason.to_owned(),
        },
    }
}
