//! The state that appenders and the flusher share, and the few steps that change it.
//!
//! One mutex guards the batch being filled; it is held only to copy a prepared record in or
//! to swap a full batch out, never across a device call. Two `Notify`s connect the sides:
//! `work` wakes the flusher when records arrive, `room` wakes appenders when a flush frees
//! buffer space. The durable point travels on a watch channel (see [`super::durable`]).

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use netherite_core::device::LogDevice;
use tokio::sync::{Notify, watch};

use super::batch::{OpenBatch, PreparedRecord, SealedBatch};
use super::durable::{Durable, Progress};
use super::{LogConfig, LogPosition};
use crate::Error;

/// What appenders and the flusher share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device: Arc<dyn LogDevice>,
    pub(crate) config: LogConfig,
    pub(crate) alignment: u64,
    pub(crate) generation: u32,
    pub(crate) state: Mutex<State>,
    /// Wakes the flusher: records were appended, or the log is closing.
    pub(crate) work: Notify,
    /// Wakes appenders waiting for buffer room.
    pub(crate) room: Notify,
    pub(crate) progress: watch::Sender<Progress>,
}

/// The part behind the mutex.
#[derive(Debug)]
pub(crate) struct State {
    /// The batch being filled.
    pub(crate) open: OpenBatch,
    /// The bytes of the batches taken by the flusher and not yet durable.
    pub(crate) in_flight: u64,
    /// The first position still readable (the truncation point).
    pub(crate) start: u64,
    /// Why the log stopped, once it has.
    pub(crate) failure: Option<Arc<netherite_core::Error>>,
    /// Set by `close`: no more appends; the flusher writes what is left, then a closing seal.
    pub(crate) closing: bool,
    /// Set once the closing seal is taken: the flusher takes nothing more.
    pub(crate) sealed: bool,
    /// The allocation of a written batch, for a later one.
    pub(crate) spare: Vec<u8>,
}

/// What the flusher found to do.
pub(crate) enum Take {
    /// Write this batch.
    Batch(SealedBatch),
    /// Nothing was appended since the last batch.
    Nothing,
    /// The closing seal was taken and is durable: nothing more will come.
    Sealed,
    /// The log has stopped.
    Stopped,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no code panics while holding the commit log lock")
    }

    /// The durable point now.
    pub(crate) fn durable(&self) -> u64 {
        self.progress.borrow().durable
    }

    /// A notification for a record ending at `end`.
    pub(crate) fn durable_handle(&self, end: u64) -> Durable {
        Durable::new(end, self.progress.subscribe())
    }

    /// Copies `record` into the open batch if the buffer has room for it; `None` when the
    /// caller must wait for a flush.
    pub(crate) fn try_push(
        &self,
        record: &PreparedRecord<'_>,
    ) -> Result<Option<(LogPosition, Durable)>, Error> {
        let mut state = self.lock();
        state.check_appendable()?;
        let unflushed = state.in_flight + state.open.len_with(record.framed_len());
        if unflushed > self.config.buffer_bytes_max {
            return Ok(None);
        }
        let position = state.open.push(self.generation, record);
        let end = state.open.end();
        drop(state);

        self.work.notify_one();
        Ok(Some((position, self.durable_handle(end))))
    }

    /// Takes the next batch for the flusher: the open one when it holds records, or the
    /// closing seal when the log is closing, nothing is left, and everything written is
    /// durable (`all_durable`), so that the seal vouches for every batch before it.
    pub(crate) fn take_work(&self, all_durable: bool) -> Take {
        let mut state = self.lock();
        if state.failure.is_some() {
            return Take::Stopped;
        }
        if state.open.is_empty() && (!state.closing || !all_durable) {
            return Take::Nothing;
        }
        if state.open.is_empty() && state.sealed {
            return Take::Sealed;
        }
        state.sealed = state.closing && state.open.is_empty();
        let spare = mem::take(&mut state.spare);
        let open = mem::replace(&mut state.open, OpenBatch::new(0, Vec::new()));
        let sealed = open.seal(self.generation, self.durable(), self.alignment);
        state.open = OpenBatch::new(sealed.end(), spare);
        state.in_flight += sealed.bytes.len() as u64;
        Take::Batch(sealed)
    }

    /// Hands a written batch's allocation back for a later batch.
    pub(crate) fn return_spare(&self, bytes: Vec<u8>) {
        let mut state = self.lock();
        if state.spare.capacity() < bytes.capacity() {
            state.spare = bytes;
        }
    }

    /// Moves the durable point to `end`, releasing `freed` buffered bytes, and wakes whoever
    /// waits on either.
    pub(crate) fn publish(&self, end: u64, freed: u64) {
        self.lock().in_flight -= freed;
        self.progress.send_modify(|progress| progress.durable = end);
        self.room.notify_waiters();
    }

    /// Stops the log after `error`: waiters and later calls get [`Error::Stopped`].
    pub(crate) fn stop(&self, error: netherite_core::Error) {
        let failure = Arc::new(error);
        self.lock().failure = Some(failure.clone());
        self.progress
            .send_modify(|progress| progress.failure = Some(failure));
        self.room.notify_waiters();
    }
}

impl State {
    /// Fails when appends are no longer taken.
    pub(crate) fn check_appendable(&self) -> Result<(), Error> {
        if let Some(failure) = &self.failure {
            return Err(Error::Stopped(failure.clone()));
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }
}
