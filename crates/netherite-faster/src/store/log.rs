//! The hybrid log: records in pages, the newest pages in memory, all of it on the device.
//!
//! Memory holds a run of *frames*, oldest first. A frame is one page, or for a record larger
//! than a page, as many whole pages as the record needs. New records go at the tail; when a
//! record does not fit in what is left of its page, a pad header ends the page and the record
//! starts the next one, so no record crosses a page (a big one starts its own frame).
//!
//! Three moves keep memory bounded and the device complete:
//!
//! - When a new frame opens, the oldest mutable frames beyond the mutable share become
//!   read-only, and each is written to the device at that moment (its final contents).
//! - When the frames would exceed their budget, the oldest frames are dropped from memory;
//!   they are already on the device (a frame still mutable is made read-only first).
//! - A checkpoint folds the whole log over: everything up to the tail becomes read-only and
//!   written, and the tail moves to a fresh page.
//!
//! A record in a frame is read from memory; any other record is read from the device and its
//! checksum verified. Device writes are whole frames at frame starts, so they are aligned for
//! every device whose alignment divides the page size.

use std::fmt;
use std::sync::Arc;

use netherite_core::device::LogDevice;

use super::address::{Address, Regions};
use super::record::{HEADER_LEN, Header, Kind, RECORD_ALIGN, RecordRef};
use crate::{Error, Place, reread_if_corrupt};

/// Bytes read past the key on a device read, in the hope of getting the value in one read.
const READ_AHEAD: usize = 256;

/// A run of whole pages in memory.
struct Frame {
    start: u64,
    bytes: Box<[u8]>,
}

/// Where and how long, not the bytes: a frame is at least a page.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("start", &self.start)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Frame {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The log of records: frames in memory over a device that holds everything below
/// `read_only`. See the module docs.
#[derive(Debug)]
pub(crate) struct HybridLog {
    device: Arc<dyn LogDevice>,
    /// What error messages call the device.
    name: Arc<str>,
    page_bytes: u64,
    sector: u64,
    record_bytes_max: u64,
    /// Oldest first. A `Vec` rather than a deque: lookups (every read) index it, while the
    /// front is removed only once per evicted page.
    frames: Vec<Frame>,
    frames_bytes: u64,
    begin: Address,
    read_only: Address,
    tail: Address,
}

impl HybridLog {
    /// A log over `device` whose live records span `begin..tail`, none of them in memory.
    ///
    /// When the tail is inside a page (a new store's starts at [`Address::FIRST`]), that page
    /// is opened in memory at once, so that the pad header ending it is written with it: on
    /// the device, every header a scan meets was written, and zeros there are damage.
    pub(crate) fn new(
        device: Arc<dyn LogDevice>,
        name: Arc<str>,
        page_bytes: u64,
        record_bytes_max: u64,
        begin: Address,
        tail: Address,
    ) -> HybridLog {
        let mut log = HybridLog {
            sector: device.alignment(),
            device,
            name,
            page_bytes,
            record_bytes_max,
            frames: Vec::new(),
            frames_bytes: 0,
            begin,
            read_only: tail,
            tail,
        };
        if !tail.get().is_multiple_of(page_bytes) {
            log.frames.push(Frame {
                start: tail.round_down(page_bytes).get(),
                bytes: vec![0; page_bytes as usize].into_boxed_slice(),
            });
            log.frames_bytes = page_bytes;
        }
        log
    }

    /// The device under the log.
    pub(crate) fn device(&self) -> &Arc<dyn LogDevice> {
        &self.device
    }

    /// The page size.
    pub(crate) fn page_bytes(&self) -> u64 {
        self.page_bytes
    }

    /// The region boundaries.
    pub(crate) fn regions(&self) -> Regions {
        let lowest = self
            .frames
            .first()
            .map_or(self.tail, |f| Address::new(f.start));
        Regions {
            begin: self.begin,
            head: lowest.max(self.begin).min(self.read_only),
            read_only: self.read_only,
            tail: self.tail,
        }
    }

    /// The oldest live address.
    pub(crate) fn begin(&self) -> Address {
        self.begin
    }

    /// Below it, records are immutable and written to the device.
    pub(crate) fn read_only(&self) -> Address {
        self.read_only
    }

    /// The bytes the frames take.
    pub(crate) fn frames_bytes(&self) -> u64 {
        self.frames_bytes
    }

    /// The frame holding `address`, if it is in memory.
    fn frame_of(&self, address: u64) -> Option<usize> {
        let first = self.frames.first()?.start;
        // Most frames are one page and follow each other: try the frame a page count away.
        let guess = (address.checked_sub(first)? >> self.page_bytes.trailing_zeros()) as usize;
        if let Some(frame) = self.frames.get(guess)
            && frame.start <= address
            && address < frame.end()
        {
            return Some(guess);
        }
        let after = self.frames.partition_point(|f| f.start <= address);
        let index = after.checked_sub(1)?;
        (address < self.frames[index].end()).then_some(index)
    }

    /// The bytes from `address` to the end of its frame, if it is in memory.
    pub(crate) fn bytes_at(&self, address: Address) -> Option<&[u8]> {
        let frame = &self.frames[self.frame_of(address.get())?];
        Some(&frame.bytes[(address.get() - frame.start) as usize..])
    }

    /// The record at `address`, if it is in memory.
    pub(crate) fn record_at(&self, address: Address) -> Option<RecordRef<'_>> {
        RecordRef::new(self.bytes_at(address)?)
    }

    /// The bytes from `address` to the end of its frame, for an update in place; only in the
    /// mutable region.
    pub(crate) fn mutable_bytes_at(&mut self, address: Address) -> Option<&mut [u8]> {
        if address < self.read_only {
            return None;
        }
        let index = self.frame_of(address.get())?;
        let frame = &mut self.frames[index];
        Some(&mut frame.bytes[(address.get() - frame.start) as usize..])
    }

    /// Makes room for a record of `len` bytes at the tail and returns its address; the caller
    /// writes the record there at once. `frames_budget` bounds the frames' memory and
    /// `mutable_bytes` the mutable region's.
    pub(crate) async fn allocate(
        &mut self,
        len: u64,
        frames_budget: u64,
        mutable_bytes: u64,
    ) -> Result<Address, Error> {
        let in_page = self.tail.get() % self.page_bytes;
        let fits = if len > self.page_bytes {
            in_page == 0
        } else {
            in_page + len <= self.page_bytes
        };
        if !fits {
            self.end_page();
        }
        if !self.has_open_frame() {
            self.open_frame(len, frames_budget, mutable_bytes).await?;
        }
        let address = self.tail;
        self.tail = address.add(len.next_multiple_of(RECORD_ALIGN));
        Ok(address)
    }

    /// Whether the tail lies inside the newest frame.
    fn has_open_frame(&self) -> bool {
        self.frames
            .last()
            .is_some_and(|f| self.tail.get() >= f.start && self.tail.get() < f.end())
    }

    /// Ends the tail's page with a pad header (when it has room for one) and moves the tail
    /// to the next page.
    fn end_page(&mut self) {
        let end = self.tail.round_up(self.page_bytes);
        let room = end.get() - self.tail.get();
        let tail = self.tail;
        if room >= HEADER_LEN as u64
            && let Some(index) = self.frame_of(tail.get())
        {
            let frame = &mut self.frames[index];
            let at = (tail.get() - frame.start) as usize;
            Header::pad().write(&mut frame.bytes[at..]);
        }
        self.tail = end;
    }

    /// Opens the frame that will hold a record of `len` bytes at the tail, evicting old
    /// frames for room and keeping the mutable region within its share.
    async fn open_frame(
        &mut self,
        len: u64,
        frames_budget: u64,
        mutable_bytes: u64,
    ) -> Result<(), Error> {
        let start = self.tail.round_down(self.page_bytes).get();
        let size = (self.tail.get() - start + len).next_multiple_of(self.page_bytes);
        self.make_room(size, frames_budget).await?;
        self.frames.push(Frame {
            start,
            bytes: vec![0; size as usize].into_boxed_slice(),
        });
        self.frames_bytes += size;

        let floor = self.mutable_floor(mutable_bytes);
        if floor > self.read_only {
            self.advance_read_only(floor).await?;
        }
        Ok(())
    }

    /// The lowest frame start such that the frames from there on fit `mutable_bytes` (the
    /// newest frame always stays mutable).
    fn mutable_floor(&self, mutable_bytes: u64) -> Address {
        let mut frames = self.frames.iter().rev();
        let Some(newest) = frames.next() else {
            return self.tail;
        };
        let (mut floor, mut kept) = (newest.start, newest.bytes.len() as u64);
        for frame in frames {
            kept += frame.bytes.len() as u64;
            if kept > mutable_bytes {
                break;
            }
            floor = frame.start;
        }
        Address::new(floor)
    }

    /// Drops the oldest closed frames until `extra` more bytes fit in `frames_budget`.
    pub(crate) async fn make_room(&mut self, extra: u64, frames_budget: u64) -> Result<(), Error> {
        while self.frames_bytes + extra > frames_budget {
            let tail = self.tail.get();
            let Some(front) = self.frames.first().filter(|f| f.end() <= tail) else {
                return Err(Error::LimitExceeded {
                    limit: "memory_bytes_max",
                    actual: self.frames_bytes + extra,
                    max: frames_budget,
                });
            };
            let end = Address::new(front.end());
            if end > self.read_only {
                self.advance_read_only(end).await?;
            }
            let evicted = self.frames.remove(0);
            self.frames_bytes -= evicted.bytes.len() as u64;
        }
        Ok(())
    }

    /// Makes everything below `target` (a frame boundary) read-only, writing each frame that
    /// crosses the old boundary to the device first.
    async fn advance_read_only(&mut self, target: Address) -> Result<(), Error> {
        while self.read_only < target {
            let from = self.read_only.get();
            let next = self.frames.partition_point(|f| f.end() <= from);
            let Some(frame) = self.frames.get(next).filter(|f| f.start < target.get()) else {
                self.read_only = target;
                break;
            };
            self.device.write(frame.start, &frame.bytes).await?;
            tracing::trace!(
                start = frame.start,
                len = frame.bytes.len(),
                "store page written"
            );
            self.read_only = Address::new(frame.end());
        }
        Ok(())
    }

    /// The fold-over of a checkpoint: writes everything up to the tail to the device, ends
    /// the tail's page and makes the whole log read-only. Returns the end of the records.
    pub(crate) async fn fold_over(&mut self) -> Result<Address, Error> {
        let end = self.tail;
        let open = self.frames.last().filter(|_| self.has_open_frame());
        let Some(open_start) = open.map(|f| Address::new(f.start)) else {
            self.advance_read_only(end).await?;
            self.tail = end.round_up(self.page_bytes);
            self.read_only = self.tail;
            return Ok(end);
        };
        self.advance_read_only(open_start).await?;
        self.end_page();

        let page_end = end.round_up(self.page_bytes);
        let written = end
            .add(HEADER_LEN as u64)
            .min(page_end)
            .round_up(self.sector);
        let frame = self.frames.last().expect("the open frame");
        let len = (written.get() - frame.start) as usize;
        self.device.write(frame.start, &frame.bytes[..len]).await?;
        self.tail = page_end;
        self.read_only = page_end;
        Ok(end)
    }

    /// Moves the tail (and the read-only boundary) past a region written straight to the
    /// device, e.g. an index snapshot. The log must be folded over.
    pub(crate) fn skip_to(&mut self, resume: Address) {
        debug_assert!(self.read_only == self.tail && resume >= self.tail);
        self.tail = resume;
        self.read_only = resume;
    }

    /// Moves `begin` up (never past `read_only`) and drops the frames wholly below it.
    pub(crate) fn set_begin(&mut self, begin: Address) {
        debug_assert!(begin <= self.read_only);
        self.begin = self.begin.max(begin);
        while let Some(front) = self.frames.first().filter(|f| f.end() <= self.begin.get()) {
            self.frames_bytes -= front.bytes.len() as u64;
            self.frames.remove(0);
        }
    }

    /// The place of the record at `address`, for damage reports.
    pub(crate) fn place(&self, address: Address) -> Place {
        Place::new(format!("record in {}", self.name), address.get())
    }

    /// Reads the whole record at `address` from the device and verifies it, rereading once
    /// when a check fails (a read may be damaged on its way). `key_len` sizes the first read.
    pub(crate) async fn read_from_device(
        &self,
        address: Address,
        key_len: usize,
    ) -> Result<Vec<u8>, Error> {
        reread_if_corrupt(|| self.read_once(address, key_len)).await
    }

    async fn read_once(&self, address: Address, key_len: usize) -> Result<Vec<u8>, Error> {
        let (at, place) = (address.get(), self.place(address));
        let available = self.device.size().saturating_sub(at);
        let first = ((HEADER_LEN + key_len + READ_AHEAD) as u64).min(available);
        if first < HEADER_LEN as u64 {
            return Err(place.truncated(HEADER_LEN as u64, available));
        }
        let mut bytes = self.device.read(at, first as usize).await?;
        let len = self.check_header(&place, &Header::parse(&bytes))?;
        if len > available {
            return Err(place.corrupt(format!(
                "record length {len} runs past the end of the device"
            )));
        }
        if len > first {
            bytes = self.device.read(at, len as usize).await?;
        }
        // The second read may disagree with the first about the length: check it whole.
        let whole = RecordRef::new(&bytes).filter(|r| r.header.record_len() == len && r.verify());
        if whole.is_none() {
            return Err(place.corrupt("checksum mismatch"));
        }
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    /// Checks that a header read from the device is a record of sane length; returns it.
    fn check_header(&self, place: &Place, header: &Header) -> Result<u64, Error> {
        if header.kind() != Kind::Record {
            return Err(place.corrupt("a chain points at something not a record"));
        }
        let len = header.record_len();
        if len > self.record_bytes_max + RECORD_ALIGN {
            return Err(place.corrupt(format!("record length {len} is past the limit")));
        }
        Ok(len)
    }
}
