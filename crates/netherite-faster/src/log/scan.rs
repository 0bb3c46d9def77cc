//! [`LogScan`]: reading durable records in order.

use tokio::sync::watch;

use super::LogRecord;
use super::durable::Progress;
use super::walk::{Step, Walker};
use crate::{Error, Place};

/// Reads a log's durable records in order, from a position given to
/// [`CommitLog::scan`](super::CommitLog::scan).
///
/// A scan stops at the durable point as it stands at each call, so calling
/// [`next`](Self::next) again after more records became durable goes on from there.
pub struct LogScan {
    walker: Walker,
    progress: watch::Receiver<Progress>,
    name: String,
}

impl LogScan {
    pub(crate) fn new(walker: Walker, progress: watch::Receiver<Progress>, name: &str) -> LogScan {
        LogScan {
            walker,
            progress,
            name: name.to_owned(),
        }
    }

    /// The next durable record, or `None` at the durable point.
    ///
    /// Below the durable point every frame must be valid, so a damaged one is an
    /// [`Error::Corrupt`] naming its offset, never a silent end.
    pub async fn next(&mut self) -> Result<Option<LogRecord>, Error> {
        let limit = self.progress.borrow().durable;
        match self.walker.next(limit).await? {
            Step::Record(record) => Ok(Some(record)),
            Step::Limit => Ok(None),
            Step::End(end) => Err(Place::new(self.name.as_str(), end.at).corrupt(end.reason)),
        }
    }

    /// Reads every remaining durable record.
    pub async fn collect(mut self) -> Result<Vec<LogRecord>, Error> {
        let mut records = Vec::new();
        while let Some(record) = self.next().await? {
            records.push(record);
        }
        Ok(records)
    }
}

impl std::fmt::Debug for LogScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogScan")
            .field("log", &self.name)
            .finish_non_exhaustive()
    }
}
