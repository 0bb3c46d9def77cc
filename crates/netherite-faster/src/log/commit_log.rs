//! [`CommitLog`]: the handle appenders, scanners and the engine hold.

use std::sync::{Arc, Mutex};

use netherite_core::device::LogDevice;
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::batch::{OpenBatch, PreparedRecord};
use super::durable::{Durable, Progress};
use super::recovery::{self, Recovery};
use super::scan::LogScan;
use super::shared::{Shared, State};
use super::walk::{Step, Walker};
use super::{LogConfig, LogPosition, RecordKind, flusher};
use crate::Error;

/// A partition's commit log over a [`LogDevice`]; see the [module docs](super).
///
/// Share it between tasks behind an `Arc`: every method takes `&self`. Dropping it stops
/// the flusher, which to the device looks like a crash: what was not durable may be lost,
/// nothing durable is. The device is let go when the flusher task is gone; call
/// [`release`](Self::release) to let it go at once.
#[derive(Debug)]
pub struct CommitLog {
    shared: Arc<Shared>,
    recovery: Recovery,
    flusher: JoinHandle<()>,
}

impl CommitLog {
    /// Opens the log on `device`, recovering it from `start`, and starts its flusher.
    ///
    /// `start` is where reading begins: [`LogPosition::ZERO`] for a log never truncated,
    /// otherwise a position the log handed out that is durable and not truncated (the
    /// position a checkpoint recorded). Recovery finds the end of the log, tells a torn tail
    /// (dropped) from damage inside the durable log ([`Error::Corrupt`] with the offset), and
    /// flushes the device so that everything it kept is durable before it is vouched for.
    /// Must be called inside a Tokio runtime.
    pub async fn open(
        device: Arc<dyn LogDevice>,
        start: LogPosition,
        config: LogConfig,
    ) -> Result<CommitLog, Error> {
        let alignment = device.alignment();
        config.validate(alignment)?;
        let runtime = Handle::try_current().map_err(|_| Error::InvalidArgument {
            operation: "CommitLog::open",
            reason: "called outside a Tokio runtime".into(),
        })?;
        let recovery = recovery::recover(&device, start.0, &config).await?;
        flusher::retry(&config, "flush", || device.flush()).await?;
        tracing::info!(
            log = %config.name,
            start = recovery.start.0,
            tail = recovery.tail.0,
            chain_end = recovery.chain_end.0,
            reason = recovery.chain_end_reason,
            records = recovery.records,
            generation = recovery.generation,
            "commit log recovered"
        );

        let shared = Arc::new(Shared::new(device, config, &recovery));
        let flusher = runtime.spawn(flusher::run(shared.clone()));
        Ok(CommitLog {
            shared,
            recovery,
            flusher,
        })
    }

    /// Appends a record; returns its position and a handle that resolves once it is durable.
    ///
    /// The record joins the batch being filled, and the flusher writes it with everything
    /// else appended meanwhile: one device flush for the whole batch. When the unflushed
    /// bytes would pass `buffer_bytes_max`, the append waits for a flush to free room.
    /// Records are positioned in the order their appends take the log's lock.
    pub async fn append(
        &self,
        kind: RecordKind,
        body: &[u8],
    ) -> Result<(LogPosition, Durable), Error> {
        let record_max = self.shared.config.record_bytes_max;
        if body.len() as u64 > u64::from(record_max) {
            return Err(Error::LimitExceeded {
                limit: "record_bytes_max",
                actual: body.len() as u64,
                max: u64::from(record_max),
            });
        }
        let record = PreparedRecord::new(kind, body, self.shared.config.fragment_body_max());
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(appended) = self.shared.try_push(&record)? {
                return Ok(appended);
            }
            room.await;
        }
    }

    /// Waits until every record appended before the call is durable; returns the durable
    /// point then.
    pub async fn flush(&self) -> Result<LogPosition, Error> {
        let end = {
            let state = self.shared.lock();
            if let Some(failure) = &state.failure {
                return Err(Error::Stopped(failure.clone()));
            }
            state.open.end()
        };
        self.shared.durable_handle(end).wait().await?;
        Ok(self.durable())
    }

    /// The durable point: every record that ends at or before it survives any crash.
    pub fn durable(&self) -> LogPosition {
        LogPosition(self.shared.durable())
    }

    /// Where the record appended last ends.
    pub fn appended(&self) -> LogPosition {
        LogPosition(self.shared.lock().open.end())
    }

    /// The first position still readable: where the log was opened, or truncated since.
    pub fn start(&self) -> LogPosition {
        LogPosition(self.shared.lock().start)
    }

    /// What recovery found when this log was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Reads the durable records from `from`, a position this log handed out (a record's
    /// position or end, or [`durable`](Self::durable)), in order. The scan follows the
    /// durable point as it moves.
    pub fn scan(&self, from: LogPosition) -> Result<LogScan, Error> {
        let (start, durable) = (self.start(), self.durable());
        if from < start || from > durable {
            return Err(Error::InvalidArgument {
                operation: "CommitLog::scan",
                reason: format!("position {from} is outside the readable log {start}..={durable}"),
            });
        }
        let walker = Walker::new(
            self.shared.config.name.as_str().into(),
            self.shared.device.clone(),
            from.0,
            self.shared.config.read_attempts_max,
        );
        Ok(LogScan::new(
            walker,
            self.shared.progress.subscribe(),
            &self.shared.config.name,
        ))
    }

    /// Lets the device reclaim everything before `position`, a durable position this log
    /// handed out. Reads before it fail afterwards; a position before the current start is
    /// a no-op.
    pub async fn truncate_before(&self, position: LogPosition) -> Result<(), Error> {
        let (start, durable) = (self.start(), self.durable());
        if position <= start {
            return Ok(());
        }
        if position > durable {
            return Err(Error::InvalidArgument {
                operation: "CommitLog::truncate_before",
                reason: format!("position {position} is past the durable point {durable}"),
            });
        }
        self.check_frame_at(position.0, durable.0).await?;
        self.shared.device.truncate_before(position.0).await?;

        let mut state = self.shared.lock();
        state.start = state.start.max(position.0);
        Ok(())
    }

    /// Makes everything appended durable, writes a closing seal (a batch that vouches for
    /// the last one, so that damage to it reads as corruption rather than as a torn tail)
    /// and stops the flusher. Appends fail with [`Error::Closed`] from the start of the call;
    /// closing twice is harmless.
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        let mut progress = self.shared.progress.subscribe();
        let progress = progress
            .wait_for(|progress| progress.closed || progress.failure.is_some())
            .await
            .map_err(|_| Error::Closed)?;
        match &progress.failure {
            Some(failure) => Err(Error::Stopped(failure.clone())),
            None => Ok(()),
        }
    }

    /// Stops the log at once and gives up the device, so that a new owner can open it
    /// without waiting: what a node does when it loses the partition. Records not yet
    /// durable may or may not survive; their waiters get [`Error::Stopped`].
    pub async fn release(&self) -> Result<(), Error> {
        self.flusher.abort();
        self.shared.stop(netherite_core::Error::Closed);
        self.shared.device.release().await?;
        Ok(())
    }

    /// Fails unless a valid frame starts at `offset`.
    async fn check_frame_at(&self, offset: u64, limit: u64) -> Result<(), Error> {
        let device = self.shared.device.clone();
        let name = self.shared.config.name.as_str().into();
        let mut walker = Walker::new(name, device, offset, self.shared.config.read_attempts_max);
        match walker.next(limit).await? {
            Step::Record(_) | Step::Limit => Ok(()),
            Step::End(end) => Err(Error::InvalidArgument {
                operation: "CommitLog::truncate_before",
                reason: format!("no record starts at {offset}: {}", end.reason),
            }),
        }
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

impl Shared {
    fn new(device: Arc<dyn LogDevice>, config: LogConfig, recovery: &Recovery) -> Shared {
        let tail = recovery.tail.0;
        let state = State {
            open: OpenBatch::new(tail, Vec::new()),
            in_flight: 0,
            start: recovery.start.0,
            failure: None,
            closing: false,
            sealed: false,
            spare: Vec::new(),
        };
        let progress = Progress {
            durable: tail,
            ..Progress::default()
        };
        Shared {
            alignment: device.alignment(),
            device,
            config,
            generation: recovery.generation,
            state: Mutex::new(state),
            work: Notify::new(),
            room: Notify::new(),
            progress: watch::channel(progress).0,
        }
    }
}
