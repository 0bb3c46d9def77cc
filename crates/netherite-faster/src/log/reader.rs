//! Reads the device through a window, so walking many small frames costs few device reads.

use std::sync::Arc;

use netherite_core::device::LogDevice;

use crate::Error;

/// How much a reader fetches at once, unless a frame needs more.
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// A read window over a device.
#[derive(Debug)]
pub(crate) struct Reader {
    device: Arc<dyn LogDevice>,
    offset: u64,
    window: Vec<u8>,
}

impl Reader {
    /// A reader with nothing fetched yet.
    pub(crate) fn new(device: Arc<dyn LogDevice>) -> Reader {
        Reader {
            device,
            offset: 0,
            window: Vec::new(),
        }
    }

    /// The `len` bytes at `offset`; the caller has checked they end at or before `limit`,
    /// and the reader fetches ahead no further than `limit`.
    pub(crate) async fn get(
        &mut self,
        offset: u64,
        len: usize,
        limit: u64,
    ) -> Result<&[u8], Error> {
        let end = offset + len as u64;
        let window_end = self.offset + self.window.len() as u64;
        if offset < self.offset || end > window_end {
            let fetch = (limit - offset).min(len.max(READ_CHUNK) as u64) as usize;
            self.window = self.device.read(offset, fetch).await?;
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
