//! [`CountedDevice`]: a [`LogDevice`] that counts the flushes passing through it.
//!
//! Group commit is only visible as a ratio (sends per device flush), so the transport wraps
//! each queue's device in this to report it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use netherite_core::Error;
use netherite_core::device::LogDevice;

/// Forwards every call to the inner device and counts the flushes that succeeded.
#[derive(Debug)]
pub(crate) struct CountedDevice {
    inner: Arc<dyn LogDevice>,
    flushes: AtomicU64,
}

impl CountedDevice {
    pub(crate) fn new(inner: Arc<dyn LogDevice>) -> CountedDevice {
        CountedDevice {
            inner,
            flushes: AtomicU64::new(0),
        }
    }

    /// The flushes that succeeded since the device was wrapped.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl LogDevice for CountedDevice {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.inner.write(offset, bytes).await
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        self.inner.read(offset, len).await
    }

    async fn flush(&self) -> Result<(), Error> {
        self.inner.flush().await?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn truncate_before(&self, offset: u64) -> Result<(), Error> {
        self.inner.truncate_before(offset).await
    }

    async fn release(&self) -> Result<(), Error> {
        self.inner.release().await
    }
}
