//! The flusher: the one task that writes batches and flushes the device.
//!
//! It takes everything appended since its last batch, writes it with one device write and
//! makes it durable with one device flush, then publishes the new durable point. While it
//! waits on the device, appends pile up in the next batch: the slower the flush, the bigger
//! the batch, so the number of flushes adapts to the device instead of to the appenders.
//!
//! A retryable device error is retried (`attempts_max`, with a doubling pause); a failed
//! flush leaves the batch's writes readable, and the next good flush covers them. Any other
//! error, or one that outlasts its retries, stops the log: a fenced device means another
//! node owns the partition, a full one needs an operator.

use std::future::Future;
use std::sync::Arc;

use super::LogConfig;
use super::batch::SealedBatch;
use super::shared::{Shared, Work};

/// Runs until the log stops, or until the closing seal is written.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let batch = match next_work(&shared).await {
            Work::Batch(batch) => batch,
            Work::Exit => return,
        };
        let is_closing_seal = batch.records == 0;
        if let Err(error) = write_durably(&shared, &batch).await {
            tracing::error!(
                log = %shared.config.name,
                offset = batch.offset,
                %error,
                "commit log stopped: a batch could not be made durable"
            );
            shared.stop(error);
            return;
        }
        tracing::debug!(
            log = %shared.config.name,
            offset = batch.offset,
            bytes = batch.bytes.len(),
            records = batch.records,
            "batch durable"
        );
        let end = batch.end();
        shared.publish(end, batch.bytes);
        if is_closing_seal {
            shared
                .progress
                .send_modify(|progress| progress.closed = true);
            tracing::info!(log = %shared.config.name, end, "commit log closed");
            return;
        }
    }
}

async fn next_work(shared: &Shared) -> Work {
    loop {
        let work = shared.work.notified();
        tokio::pin!(work);
        work.as_mut().enable();
        if let Some(next) = shared.take_work() {
            return next;
        }
        work.await;
    }
}

async fn write_durably(shared: &Shared, batch: &SealedBatch) -> Result<(), netherite_core::Error> {
    let device = &shared.device;
    let config = &shared.config;
    retry(config, "write", || device.write(batch.offset, &batch.bytes)).await?;
    retry(config, "flush", || device.flush()).await
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
