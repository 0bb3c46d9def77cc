//! [`InputQueue`]: one partition's durable input queue, a commit log of payloads.
//!
//! A payload is one record of the log, and its position in the queue is the record's byte
//! offset. Offsets are not dense, and a subscriber may resume from any position (the host
//! resumes from "the last position processed, plus one", which falls inside a record), so the
//! queue keeps a sparse index of record starts, one at least every [`INDEX_STRIDE`] bytes: a
//! subscription scans from the closest start at or below its position and skips what lies
//! before it, reading at most a stride too much.
//!
//! ```text
//!  log start        index entries (record starts)            durable
//!     |        |                 |                |              |
//!     v        v                 v                v              v
//!     [rec][rec][rec][rec][rec][rec][rec][rec][rec][rec][rec][rec]
//!                                   ^  from: scan from the entry at or below, skip to it
//! ```
//!
//! Subscribers wait on a watched value, the published tail, which a send moves after its
//! records are durable: a caught-up subscription sleeps until then, with no polling.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use netherite_core::device::LogDevice;
use netherite_core::transport::{InputEvent, InputSource, InputStream};
use netherite_core::{Error, InputPosition, PartitionId};
use netherite_faster::log::{CommitLog, LogConfig, LogPosition, LogScan, RecordKind};
use tokio::sync::watch;

use super::counted::CountedDevice;

/// The distance in bytes between two entries of the sparse index of record starts.
pub(crate) const INDEX_STRIDE: u64 = 64 << 10;

/// The record kind of a payload in an input queue.
const PAYLOAD_KIND: u16 = 1;

/// The tail as subscribers see it.
#[derive(Clone, Copy, Debug)]
struct Tail {
    /// Every record ending at or before this offset is durable and may be delivered.
    durable: u64,
    /// The queue was closed: subscriptions end.
    closed: bool,
}

/// Record starts known to be durable, and the discard point.
#[derive(Debug)]
struct Index {
    starts: BTreeSet<u64>,
    /// The highest position given to `discard_before` since the queue was opened.
    discarded: u64,
}

/// One partition's input queue over a commit log; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct InputQueue {
    partition: PartitionId,
    name: String,
    log: CommitLog,
    device: Arc<CountedDevice>,
    index: Mutex<Index>,
    tail: watch::Sender<Tail>,
    message_bytes_max: u32,
}

impl InputQueue {
    /// Opens the queue of `partition` on `device`, whose truncation point is `start`, and
    /// indexes what it holds.
    pub(crate) async fn open(
        partition: PartitionId,
        device: Arc<dyn LogDevice>,
        start: LogPosition,
        message_bytes_max: u32,
    ) -> Result<InputQueue, Error> {
        let name = format!("partition {} input queue", partition.0);
        let device = Arc::new(CountedDevice::new(device));
        let config = log_config(&name, message_bytes_max);
        let log = CommitLog::open(device.clone(), start, config)
            .await
            .map_err(|e| core_error(e, &name))?;

        let starts = index_records(&log, &name).await?;
        let tail = Tail {
            durable: log.durable().0,
            closed: false,
        };
        tracing::debug!(
            partition = partition.0,
            start = log.start().0,
            durable = tail.durable,
            index_entries = starts.len(),
            "input queue opened"
        );
        Ok(InputQueue {
            partition,
            name,
            log,
            device,
            index: Mutex::new(Index {
                starts,
                discarded: 0,
            }),
            tail: watch::channel(tail).0,
            message_bytes_max,
        })
    }

    /// Device flushes that succeeded since the queue was opened, its recovery flush included.
    pub(crate) fn flushes(&self) -> u64 {
        self.device.flushes()
    }

    /// Appends `payloads` in order and returns their positions once all are durable.
    pub(crate) async fn send(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<InputPosition>, Error> {
        self.check_open()?;
        self.check_sizes(&payloads)?;
        let kind = payload_kind();

        // Every append joins the batch being filled; waiting on the last record's durability
        // covers the earlier ones, and concurrent sends share the flush.
        let mut positions = Vec::with_capacity(payloads.len());
        let mut last = None;
        for payload in &payloads {
            let (position, durable) = self
                .log
                .append(kind, payload)
                .await
                .map_err(|e| core_error(e, &self.name))?;
            positions.push(position.0);
            last = Some(durable);
        }
        if let Some(durable) = last {
            durable
                .wait()
                .await
                .map_err(|e| core_error(e, &self.name))?;
        }

        self.publish(&positions);
        Ok(positions.into_iter().map(InputPosition).collect())
    }

    /// The events from `from` on, then every later one as it becomes durable.
    pub(crate) fn subscribe(self: &Arc<Self>, from: InputPosition) -> Result<InputStream, Error> {
        self.check_open()?;
        let floor = {
            let index = self.lock_index();
            let start = self.log.start().0;
            if from.0 < index.discarded.max(start) {
                return Err(Error::InvalidArgument {
                    operation: "subscribe",
                    reason: format!(
                        "position {} of {} is below the discard point {}",
                        from.0,
                        self.name,
                        index.discarded.max(start)
                    ),
                });
            }
            index
                .starts
                .range(..=from.0)
                .next_back()
                .copied()
                .unwrap_or(start)
        };

        // Subscribe to the tail before scanning, so that a send that becomes durable after
        // the scan ran dry wakes the subscription.
        let mut tail = self.tail.subscribe();
        tail.borrow_and_update();
        let scan = self
            .log
            .scan(LogPosition(floor))
            .map_err(|e| core_error(e, &self.name))?;
        Ok(InputStream::new(Subscription {
            queue: Arc::clone(self),
            scan,
            from: from.0,
            tail,
        }))
    }

    /// Lets the log drop the records below `before`, down to the closest indexed start.
    pub(crate) async fn discard_before(&self, before: InputPosition) -> Result<(), Error> {
        self.check_open()?;
        let floor = {
            let mut index = self.lock_index();
            index.discarded = index.discarded.max(before.0);
            let Some(&floor) = index.starts.range(..=before.0).next_back() else {
                return Ok(());
            };
            index.starts = index.starts.split_off(&floor);
            floor
        };
        if floor <= self.log.start().0 {
            return Ok(());
        }
        tracing::debug!(
            partition = self.partition.0,
            before = before.0,
            floor,
            "input queue discarded"
        );
        self.log
            .truncate_before(LogPosition(floor))
            .await
            .map_err(|e| core_error(e, &self.name))
    }

    /// Ends the subscriptions, seals the log and gives the device up.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        self.tail.send_modify(|tail| tail.closed = true);
        self.log
            .close()
            .await
            .map_err(|e| core_error(e, &self.name))?;
        self.device.release().await
    }

    /// Records the starts of records that just became durable, and wakes subscribers.
    fn publish(&self, positions: &[u64]) {
        {
            let mut index = self.lock_index();
            for &position in positions {
                let floor = index.starts.range(..=position).next_back().copied();
                if floor.is_none_or(|floor| position - floor >= INDEX_STRIDE) {
                    index.starts.insert(position);
                }
            }
        }
        let durable = self.log.durable().0;
        self.tail.send_if_modified(|tail| {
            let moved = durable > tail.durable;
            tail.durable = tail.durable.max(durable);
            moved
        });
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.tail.borrow().closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses the whole batch before appending any of it if one payload is too large.
    fn check_sizes(&self, payloads: &[Vec<u8>]) -> Result<(), Error> {
        let max = u64::from(self.message_bytes_max);
        match payloads
            .iter()
            .map(|p| p.len() as u64)
            .find(|&len| len > max)
        {
            Some(len) => Err(Error::LimitExceeded {
                limit: "message_bytes_max",
                actual: len,
                max,
            }),
            None => Ok(()),
        }
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .expect("no code panics while holding the index lock")
    }
}

/// The commit log settings of a queue whose payloads are at most `message_bytes_max`.
fn log_config(name: &str, message_bytes_max: u32) -> LogConfig {
    let defaults = LogConfig::default();
    // The buffer must hold a batch with one record of the largest size, with room to spare
    // so that a large payload does not serialize every send behind it.
    let buffer = defaults
        .buffer_bytes_max
        .max(4 * u64::from(message_bytes_max));
    LogConfig {
        name: name.to_owned(),
        record_bytes_max: message_bytes_max,
        buffer_bytes_max: buffer,
        ..defaults
    }
}

fn payload_kind() -> RecordKind {
    RecordKind::new(PAYLOAD_KIND).expect("the payload kind is below RecordKind::MAX")
}

/// Reads the whole queue once to index its record starts; the queue holds about what arrived
/// since the last checkpoint, so this is short.
async fn index_records(log: &CommitLog, name: &str) -> Result<BTreeSet<u64>, Error> {
    let start = log.start().0;
    let mut starts = BTreeSet::from([start]);
    let mut last = start;
    let mut scan = log.scan(log.start()).map_err(|e| core_error(e, name))?;
    while let Some(record) = scan.next().await.map_err(|e| core_error(e, name))? {
        if record.position.0 - last >= INDEX_STRIDE {
            last = record.position.0;
            starts.insert(last);
        }
    }
    Ok(starts)
}

/// One subscription: a scan of the log that waits on the published tail once it ran dry.
struct Subscription {
    queue: Arc<InputQueue>,
    scan: LogScan,
    from: u64,
    tail: watch::Receiver<Tail>,
}

#[async_trait::async_trait]
impl InputSource for Subscription {
    async fn next(&mut self) -> Option<Result<InputEvent, Error>> {
        loop {
            if self.tail.borrow_and_update().closed {
                return None;
            }
            let record = match self.scan.next().await {
                Ok(record) => record,
                Err(e) => return Some(Err(core_error(e, &self.queue.name))),
            };
            match record {
                Some(record) if record.position.0 < self.from => continue,
                Some(record) if record.kind != payload_kind() => {
                    return Some(Err(Error::Malformed {
                        source_name: self.queue.name.clone(),
                        offset: record.position.0,
                        reason: format!("record kind {} is not a payload", record.kind),
                    }));
                }
                Some(record) => {
                    return Some(Ok(InputEvent {
                        position: InputPosition(record.position.0),
                        payload: record.body,
                    }));
                }
                // TODO: a log stopped by a device failure never publishes again, so a
                // caught-up subscription waits until close instead of ending with the error;
                // matters once a host should notice a dead queue without sending to it.
                None => self.tail.changed().await.ok()?,
            }
        }
    }
}

/// The contract's class of a commit log error (rule 9 of `Transport`).
pub(crate) fn core_error(error: netherite_faster::Error, name: &str) -> Error {
    use netherite_faster::Error as Log;

    let message = error.to_string();
    match error {
        Log::Device(inner) => inner,
        Log::Corrupt { offset, .. } => Error::Malformed {
            source_name: name.to_owned(),
            offset,
            reason: message,
        },
        Log::InvalidArgument { operation, reason } => Error::InvalidArgument { operation, reason },
        Log::LimitExceeded { limit, actual, max } => Error::LimitExceeded { limit, actual, max },
        Log::Closed => Error::Closed,
        Log::Stopped(cause) if matches!(*cause, Error::Fenced(_)) => Error::Fenced(message),
        _ => {
            tracing::error!(queue = name, error = %message, "input queue failed");
            Error::Io {
                operation: "input queue",
                reason: format!("{name}: {message}; reopen the transport if this persists"),
            }
        }
    }
}
