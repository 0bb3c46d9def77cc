//! Reads a device through a window, so walking many small frames or records costs few device
//! reads. The commit log's walks and the store's scans both read through it.
//!
//! The reader does not hold the device: its caller passes it to each read, so a scan cursor
//! kept between calls does not keep a device (and its ownership) alive.

use netherite_core::device::LogDevice;

use crate::Error;

/// How much a reader fetches at once, unless a frame needs more.
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// A read window over a device.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    offset: u64,
    window: Vec<u8>,
}

impl Reader {
    /// The `len` bytes at `offset`; the caller has checked they end at or before `limit`,
    /// and the reader fetches ahead no further than `limit` (nor more than [`READ_CHUNK`]
    /// beyond what was asked).
    pub(crate) async fn get(
        &mut self,
        device: &dyn LogDevice,
        offset: u64,
        len: usize,
        limit: u64,
    ) -> Result<&[u8], Error> {
        let end = offset + len as u64;
        let window_end = self.offset + self.window.len() as u64;
        if offset < self.offset || end > window_end {
            let fetch = (limit - offset).min(len.max(READ_CHUNK) as u64) as usize;
            self.window = device.read(offset, fetch).await?;
            self.offset = offset;
            if self.window.len() < len {
                let reason = format!(
                    "asked for {fetch} bytes at {offset}, got {}",
                    self.window.len()
                );
                return Err(netherite_core::Error::Io {
                    operation: "read",
                    reason,
                }
                .into());
            }
        }
        let at = (offset - self.offset) as usize;
        Ok(&self.window[at..at + len])
    }

    /// Forgets what was fetched, so the next [`get`](Self::get) reads the device again: a
    /// frame that failed its checks gets a second look before it is believed.
    pub(crate) fn refresh(&mut self) {
        self.window.clear();
    }
}
