//! Durability notifications: one watched value, the durable point, shared by every waiter.
//!
//! A flush makes a whole batch durable at once, so one update of the durable point answers
//! every record in it; a waiter only compares its record's end with the point. Watching one
//! value keeps an append's notification down to a cloned receiver.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Error;

/// What the flusher has achieved so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Every byte before this offset is durable.
    pub(crate) durable: u64,
    /// Why the log stopped, once it has.
    pub(crate) failure: Option<Arc<netherite_core::Error>>,
    /// Whether the closing seal is durable and the flusher gone.
    pub(crate) closed: bool,
}

/// The promise that one appended record becomes durable; see [`Durable::wait`].
///
/// Dropping it is fine: the record becomes durable all the same.
#[derive(Debug)]
#[must_use = "a record is only safe to act on once it is durable"]
pub struct Durable {
    end: u64,
    progress: watch::Receiver<Progress>,
}

impl Durable {
    pub(crate) fn new(end: u64, progress: watch::Receiver<Progress>) -> Durable {
        Durable { end, progress }
    }

    /// Where the record ends: the position right after it, as a scan's
    /// [`LogRecord::end`](super::LogRecord::end) reports it. The record is durable once the
    /// log's durable point reaches it.
    pub fn end(&self) -> super::LogPosition {
        super::LogPosition(self.end)
    }

    /// Whether the record is durable now.
    pub fn is_durable(&self) -> bool {
        self.progress.borrow().durable >= self.end
    }

    /// Waits until the record is durable: a device flush that covers it has succeeded.
    ///
    /// Fails with [`Error::Stopped`] when the log stopped before that (the record may or may
    /// not survive a crash), and with [`Error::Closed`] when the log was dropped first.
    pub async fn wait(mut self) -> Result<(), Error> {
        let end = self.end;
        let progress = self
            .progress
            .wait_for(|progress| progress.durable >= end || progress.failure.is_some())
            .await
            .map_err(|_| Error::Closed)?;
        if progress.durable >= end {
            return Ok(());
        }
        let failure = progress
            .failure
            .clone()
            .expect("wait_for returned on a failure");
        Err(Error::Stopped(failure))
    }
}
