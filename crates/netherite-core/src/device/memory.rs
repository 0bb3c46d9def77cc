//! The in-memory device: a [`MemoryDisk`] holds the bytes, [`MemoryDevice`] handles open it.
//!
//! The disk keeps the current bytes plus an undo record for every write since the last good
//! flush. A flush forgets the undo records; a crash plays them backwards, which restores the
//! durable image exactly, then (with torn writes on) replays a prefix of them with the last
//! one cut at a sector boundary. Keeping undo records instead of a second, durable copy makes
//! a flush cost nothing, so the engine can run on this device for real.
//!
//! Ownership is an epoch: every `open` takes a new one and fences the handles of older ones.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{DeviceFaults, FaultRng, LogDevice, check_aligned, check_range};
use crate::Error;

/// The default most bytes a memory disk holds above its truncation point (limit
/// `device_bytes_max`), so a wild offset is a typed error rather than an exhausted memory.
pub const DEVICE_BYTES_MAX: u64 = 1 << 32;

/// The storage of one in-memory device; clones share it. Open handles with [`MemoryDisk::open`].
///
/// ```
/// use netherite_core::device::{LogDevice, MemoryDisk};
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
/// # runtime.block_on(async {
/// let disk = MemoryDisk::new(512)?;
/// let device = disk.open();
/// device.write(0, &[7; 512]).await?;
/// device.flush().await?;
/// disk.crash();
/// let reopened = disk.open();
/// assert_eq!(reopened.read(0, 4).await?, vec![7; 4]);
/// # Ok::<(), netherite_core::Error>(())
/// # }).expect("example runs");
/// ```
#[derive(Clone, Debug)]
pub struct MemoryDisk {
    state: Arc<Mutex<DiskState>>,
}

/// A handle on a [`MemoryDisk`], owned by whoever opened it; implements [`LogDevice`].
#[derive(Clone, Debug)]
pub struct MemoryDevice {
    disk: MemoryDisk,
    epoch: u64,
}

#[derive(Debug)]
struct DiskState {
    alignment: u64,
    bytes_max: u64,
    /// The epoch of the owning handle; 0 when nobody owns the disk.
    owner: u64,
    /// The last epoch handed out.
    last_epoch: u64,
    /// The truncation point: `data[0]` is the byte at this offset.
    start: u64,
    data: Vec<u8>,
    /// Undo records of the writes since the last good flush, oldest first.
    pending: Vec<PendingWrite>,
    faults: DeviceFaults,
    rng: FaultRng,
}

/// A write that is not durable yet, with what it replaced.
#[derive(Debug)]
struct PendingWrite {
    offset: u64,
    new_bytes: Vec<u8>,
    old_bytes: Vec<u8>,
    old_size: u64,
}

impl MemoryDisk {
    /// An empty disk whose writes are aligned to `alignment`, a power of two.
    pub fn new(alignment: u64) -> Result<MemoryDisk, Error> {
        if !alignment.is_power_of_two() {
            return Err(Error::InvalidArgument {
                operation: "MemoryDisk::new",
                reason: format!("alignment {alignment} is not a power of two"),
            });
        }
        let state = DiskState {
            alignment,
            bytes_max: DEVICE_BYTES_MAX,
            owner: 0,
            last_epoch: 0,
            start: 0,
            data: Vec::new(),
            pending: Vec::new(),
            faults: DeviceFaults::none(),
            rng: FaultRng::new(0),
        };
        Ok(MemoryDisk {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// This disk with `faults` switched on.
    pub fn with_faults(self, faults: DeviceFaults) -> MemoryDisk {
        self.set_faults(faults);
        self
    }

    /// This disk holding at most `bytes_max` bytes above its truncation point.
    pub fn with_bytes_max(self, bytes_max: u64) -> MemoryDisk {
        self.lock().bytes_max = bytes_max;
        self
    }

    /// Replaces the fault knobs and reseeds their generator; takes effect at the next call.
    pub fn set_faults(&self, faults: DeviceFaults) {
        let mut state = self.lock();
        state.rng = FaultRng::new(faults.seed);
        state.faults = faults;
    }

    /// Opens the disk as a new owner, fencing every handle opened before.
    pub fn open(&self) -> MemoryDevice {
        let mut state = self.lock();
        state.last_epoch += 1;
        state.owner = state.last_epoch;
        tracing::debug!(epoch = state.owner, "memory disk opened by a new owner");
        MemoryDevice {
            disk: self.clone(),
            epoch: state.owner,
        }
    }

    /// The in-memory model of kill -9: every write that was not durable is lost (or, with
    /// [`DeviceFaults::torn_writes`], partly kept) and every handle is fenced.
    pub fn crash(&self) {
        self.lock().crash();
    }

    /// The end of the written region, as any handle would see it.
    pub fn size(&self) -> u64 {
        self.lock().size()
    }

    /// How many writes since the last good flush a crash would put at risk.
    pub fn unflushed_writes(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .expect("no code panics while holding the disk lock")
    }
}

impl DiskState {
    fn size(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    fn check_owner(&self, epoch: u64, operation: &str) -> Result<(), Error> {
        if self.owner == epoch {
            return Ok(());
        }
        Err(Error::Fenced(format!(
            "{operation} by memory device handle of epoch {epoch}; the owner is now epoch {}",
            self.owner
        )))
    }

    fn check_write(&self, offset: u64, len: u64) -> Result<(), Error> {
        check_aligned("write", self.alignment, offset, len)?;
        check_range("write", self.start, u64::MAX, offset, len)?;
        let held = offset + len - self.start;
        if held > self.bytes_max {
            return Err(Error::LimitExceeded {
                limit: "device_bytes_max",
                actual: held,
                max: self.bytes_max,
            });
        }
        Ok(())
    }

    /// Records what a write replaces, then performs it.
    fn write(&mut self, offset: u64, bytes: &[u8]) {
        let size = self.size();
        let old_end = (offset + bytes.len() as u64).min(size);
        let old_bytes = if offset < old_end {
            self.data[(offset - self.start) as usize..(old_end - self.start) as usize].to_vec()
        } else {
            Vec::new()
        };
        self.pending.push(PendingWrite {
            offset,
            new_bytes: bytes.to_vec(),
            old_bytes,
            old_size: size,
        });
        self.apply(offset, bytes);
    }

    /// Puts `bytes` at `offset`, growing with zeros; the part below the start is dropped.
    fn apply(&mut self, offset: u64, bytes: &[u8]) {
        let skip = self.start.saturating_sub(offset).min(bytes.len() as u64);
        let bytes = &bytes[skip as usize..];
        if bytes.is_empty() {
            return;
        }
        let at = (offset + skip - self.start) as usize;
        let end = at + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[at..end].copy_from_slice(bytes);
    }

    /// Undoes one write: the size it found, then the bytes it replaced.
    fn undo(&mut self, write: &PendingWrite) {
        let size = write.old_size.max(self.start);
        self.data.truncate((size - self.start) as usize);
        self.apply(write.offset, &write.old_bytes);
    }

    fn crash(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for write in pending.iter().rev() {
            self.undo(write);
        }
        let (kept, torn_sectors) = self.replay_torn_prefix(&pending);
        self.owner = 0;
        tracing::debug!(
            unflushed = pending.len(),
            kept,
            torn_sectors,
            size = self.size(),
            "memory disk crashed"
        );
    }

    /// With torn writes on, re-applies a random prefix of `pending`, cutting the last write
    /// of the prefix at a random sector boundary. Returns the prefix length and the sectors
    /// kept of its last write.
    fn replay_torn_prefix(&mut self, pending: &[PendingWrite]) -> (usize, u64) {
        if !self.faults.torn_writes || pending.is_empty() {
            return (0, 0);
        }
        let kept = self.rng.below(pending.len() as u64 + 1) as usize;
        let Some((last, whole)) = pending[..kept].split_last() else {
            return (0, 0);
        };
        for write in whole {
            self.apply(write.offset, &write.new_bytes);
        }
        let sectors = last.new_bytes.len() as u64 / self.alignment;
        let keep = self.rng.below(sectors + 1);
        let cut = (keep * self.alignment) as usize;
        self.apply(last.offset, &last.new_bytes[..cut]);
        (kept, keep)
    }

    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        check_range("read", self.start, self.size(), offset, len as u64)?;
        let at = (offset - self.start) as usize;
        let mut out = self.data[at..at + len].to_vec();
        if !out.is_empty() && self.rng.chance(self.faults.read_corruption_rate) {
            let index = self.rng.below(out.len() as u64) as usize;
            let flip = 1 + self.rng.below(255) as u8;
            out[index] ^= flip;
            tracing::debug!(offset, index, "memory disk corrupted a read (fault knob)");
        }
        Ok(out)
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rng.chance(self.faults.flush_failure_rate) {
            tracing::debug!(unflushed = self.pending.len(), "memory disk failed a flush");
            return Err(Error::Io {
                operation: "flush",
                reason: "injected flush failure (fault knob)".into(),
            });
        }
        self.pending.clear();
        Ok(())
    }

    fn truncate_before(&mut self, offset: u64) -> Result<(), Error> {
        let size = self.size();
        if offset > size {
            return Err(Error::InvalidArgument {
                operation: "truncate_before",
                reason: format!("offset {offset} is past the size {size}"),
            });
        }
        if offset > self.start {
            self.data.drain(..(offset - self.start) as usize);
            self.start = offset;
        }
        Ok(())
    }
}

impl MemoryDevice {
    /// The disk this handle was opened on.
    pub fn disk(&self) -> &MemoryDisk {
        &self.disk
    }

    /// The owner epoch this handle holds; a later `open` holds a larger one.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[async_trait]
impl LogDevice for MemoryDevice {
    fn alignment(&self) -> u64 {
        self.disk.lock().alignment
    }

    fn size(&self) -> u64 {
        self.disk.size()
    }

    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut state = self.disk.lock();
        state.check_owner(self.epoch, "write")?;
        state.check_write(offset, bytes.len() as u64)?;
        if !bytes.is_empty() {
            state.write(offset, bytes);
        }
        Ok(())
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut state = self.disk.lock();
        state.check_owner(self.epoch, "read")?;
        state.read(offset, len)
    }

    async fn flush(&self) -> Result<(), Error> {
        let mut state = self.disk.lock();
        state.check_owner(self.epoch, "flush")?;
        state.flush()
    }

    async fn truncate_before(&self, offset: u64) -> Result<(), Error> {
        let mut state = self.disk.lock();
        state.check_owner(self.epoch, "truncate_before")?;
        state.truncate_before(offset)
    }

    async fn release(&self) -> Result<(), Error> {
        let mut state = self.disk.lock();
        if state.owner == self.epoch {
            state.owner = 0;
            tracing::debug!(epoch = self.epoch, "memory device released");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: u64 = 4;

    #[derive(Clone, Debug)]
    enum Op {
        Write { sector: u64, sectors: u64, fill: u8 },
        Flush,
        Truncate { sector: u64 },
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..8u64, 0..4u64, 1..=255u8)
                .prop_map(|(sector, sectors, fill)| Op::Write { sector, sectors, fill }),
            2 => Just(Op::Flush),
            1 => (0..8u64).prop_map(|sector| Op::Truncate { sector }),
            1 => Just(Op::Crash),
        ]
    }

    /// The obvious model: the current bytes, a full copy taken at every flush, a start.
    #[derive(Default)]
    struct Model {
        start: u64,
        current: Vec<u8>,
        durable: Vec<u8>,
    }

    impl Model {
        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Write {
                    sector,
                    sectors,
                    fill,
                } if sectors > 0 && sector * A >= self.start => {
                    let (at, end) = ((sector * A) as usize, ((sector + sectors) * A) as usize);
                    if self.current.len() < end {
                        self.current.resize(end, 0);
                    }
                    self.current[at..end].fill(fill);
                }
                Op::Write { .. } => {}
                Op::Flush => self.durable = self.current.clone(),
                Op::Truncate { sector } if sector * A <= self.current.len() as u64 => {
                    self.start = self.start.max(sector * A);
                }
                Op::Truncate { .. } => {}
                Op::Crash => {
                    self.current = self.durable.clone();
                    let len = self.current.len().max(self.start as usize);
                    self.current.resize(len, 0);
                }
            }
        }
    }

    fn apply(disk: &mut DiskState, op: &Op) {
        match *op {
            Op::Write {
                sector,
                sectors,
                fill,
            } => {
                let bytes = vec![fill; (sectors * A) as usize];
                if disk.check_write(sector * A, sectors * A).is_ok() && !bytes.is_empty() {
                    disk.write(sector * A, &bytes);
                }
            }
            Op::Flush => disk.flush().unwrap(),
            Op::Truncate { sector } => {
                let _ = disk.truncate_before(sector * A);
            }
            Op::Crash => disk.crash(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever mix of writes, flushes, truncations and crashes, the undo-log disk reads
        /// exactly like a model that copies everything at each flush.
        #[test]
        fn disk_matches_a_copying_model(ops in proptest::collection::vec(op(), 1..40)) {
            let disk = MemoryDisk::new(A).unwrap();
            let mut state = disk.lock();
            let mut model = Model::default();
            for op in &ops {
                apply(&mut state, op);
                model.apply(op);
                prop_assert_eq!(state.start, model.start);
                prop_assert_eq!(state.size(), model.current.len() as u64);
                let (start, readable) = (state.start, (state.size() - state.start) as usize);
                let read = state.read(start, readable).unwrap();
                prop_assert_eq!(&read[..], &model.current[model.start as usize..]);
            }
        }
    }
}
