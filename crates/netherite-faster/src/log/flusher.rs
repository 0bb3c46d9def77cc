//! The flusher: the one task that writes batches and flushes the device.
//!
//! It takes everything appended since its last batch and writes it with one device write.
//! The flush that makes a batch durable runs while the next batch is written, so the disk
//! is kept busy with one batch while the next one is copied out: each batch still gets
//! exactly one device flush, the first one called after its write completed (rule 9 of the
//! device contract: a flush covers the writes that completed before it was called). Once
//! the flush returns, the durable point moves, which answers every record of the batch.
//! While the device works, appends pile up in the next batch: the slower the device, the
//! bigger the batches.
//!
//! A retryable device error is retried (`attempts_max`, with a doubling pause); a failed
//! flush leaves the batch's writes readable, and the next good flush covers them. Any other
//! error, or one that outlasts its retries, stops the log: a fenced device means another
//! node owns the partition, a full one needs an operator.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use super::LogConfig;
use super::batch::SealedBatch;
use super::shared::{Shared, Take};

/// Runs until the log stops, or until the closing seal is durable.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut pipeline = Pipeline {
        shared: &shared,
        written: VecDeque::new(),
    };
    loop {
        let take = if pipeline.written.is_empty() {
            next_work(&shared).await
        } else {
            shared.take_work(false)
        };
        let outcome = match take {
            Take::Stopped => return,
            Take::Sealed => {
                shared
                    .progress
                    .send_modify(|progress| progress.closed = true);
                tracing::info!(log = %shared.config.name, "commit log closed");
                return;
            }
            Take::Nothing => pipeline.flush().await,
            Take::Batch(batch) => pipeline.advance(batch).await,
        };
        if let Err(error) = outcome {
            tracing::error!(
                log = %shared.config.name,
                %error,
                "commit log stopped: a batch could not be made durable"
            );
            shared.stop(error);
            return;
        }
    }
}

/// Waits until there is something to do; called when everything written is durable.
async fn next_work(shared: &Shared) -> Take {
    loop {
        let work = shared.work.notified();
        tokio::pin!(work);
        work.as_mut().enable();
        match shared.take_work(true) {
            Take::Nothing => work.await,
            take => return take,
        }
    }
}

/// The batches written but not yet durable.
struct Pipeline<'a> {
    shared: &'a Shared,
    /// `(end, length)` of each written batch that is not durable yet, oldest first.
    written: VecDeque<(u64, u64)>,
}

impl Pipeline<'_> {
    /// Writes `batch`; at the same time flushes the batches written before it, if any.
    async fn advance(&mut self, batch: SealedBatch) -> Result<(), netherite_core::Error> {
        let (device, config) = (&self.shared.device, &self.shared.config);
        let write = retry(config, "write", || device.write(batch.offset, &batch.bytes));
        if self.written.is_empty() {
            write.await?;
        } else {
            let covered = self.covered();
            let flush = retry(config, "flush", || device.flush());
            let (flushed, wrote) = tokio::join!(flush, write);
            flushed?;
            self.publish(covered);
            wrote?;
        }
        tracing::debug!(
            log = %config.name,
            offset = batch.offset,
            bytes = batch.bytes.len(),
            records = batch.records,
            "batch written"
        );
        self.written
            .push_back((batch.end(), batch.bytes.len() as u64));
        self.shared.return_spare(batch.bytes);
        Ok(())
    }

    /// Flushes every written batch.
    async fn flush(&mut self) -> Result<(), netherite_core::Error> {
        let covered = self.covered();
        retry(&self.shared.config, "flush", || self.shared.device.flush()).await?;
        self.publish(covered);
        Ok(())
    }

    /// The end of the last written batch: what a flush called now makes durable.
    fn covered(&self) -> u64 {
        self.written
            .back()
            .map_or(self.shared.durable(), |(end, _)| *end)
    }

    /// Marks every written batch up to `covered` durable.
    fn publish(&mut self, covered: u64) {
        let mut freed = 0;
        while let Some(&(end, len)) = self.written.front() {
            if end > covered {
                break;
            }
            freed += len;
            self.written.pop_front();
        }
        tracing::debug!(log = %self.shared.config.name, durable = covered, "batches durable");
        self.shared.publish(covered, freed);
    }
}

/// Calls `call` until it succeeds, fails for good, or has failed `attempts_max` times.
pub(crate) async fn retry<F, Fut>(
    config: &LogConfig,
    operation: &'static str,
    mut call: F,
) -> Result<(), netherite_core::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), netherite_core::Error>>,
{
    let mut delay = config.retry_delay;
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_retryable() && attempt < config.attempts_max => error,
            Err(error) => return Err(error),
        };
        tracing::warn!(
            log = %config.name,
            operation,
            attempt,
            %error,
            "device call failed; retrying"
        );
        if delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        attempt += 1;
    }
}
