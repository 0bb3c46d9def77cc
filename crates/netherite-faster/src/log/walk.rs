//! The walker: follows the chain of valid frames from a start position, reassembling records.
//!
//! Scans and recovery share it. A frame belongs to the chain when its header parses, its
//! checksum holds at its offset, and it fits where it stands:
//!
//! - a batch header sits at an aligned offset, outside any record, and its generation is not
//!   older than the chain's;
//! - a record fragment or padding has the generation of its batch, never follows padding
//!   (only a new batch may), and fragments come first, middle..., last, with one kind;
//! - padding ends on an aligned offset.
//!
//! The first frame that fails is where the chain ends; what that means (the end of the data,
//! a torn tail, or corruption) is for the caller to judge. A frame that fails is read again
//! before it is believed, so a corrupted read does not end a log.

use std::sync::Arc;

use netherite_core::device::LogDevice;

use super::format::{self, FrameKind, HEADER_LEN, Header};
use super::{LogPosition, LogRecord, RecordKind};
use crate::reader::Reader;
use crate::{Error, Place};

/// Where the chain of valid frames ends, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainEnd {
    /// The offset of the first frame that is not part of the chain.
    pub(crate) at: u64,
    /// What is wrong there.
    pub(crate) reason: &'static str,
}

/// What one step of the walk found.
#[derive(Debug)]
pub(crate) enum Step {
    /// The next whole record.
    Record(LogRecord),
    /// The walk reached its limit between records.
    Limit,
    /// The chain ends before the limit.
    End(ChainEnd),
}

/// A frame that passed its checks, with the body bytes it carries.
struct Frame {
    header: Header,
    body: Vec<u8>,
}

/// The first fragments of a record whose last fragment is still ahead.
struct Partial {
    position: u64,
    kind: RecordKind,
    body: Vec<u8>,
}

type Verdict = Result<Frame, &'static str>;

/// A walk along the chain of frames.
pub(crate) struct Walker {
    /// The log's name, for errors.
    name: Arc<str>,
    device: Arc<dyn LogDevice>,
    reader: Reader,
    alignment: u64,
    read_attempts_max: u32,
    pos: u64,
    generation: Option<u32>,
    generation_max: u32,
    after_padding: bool,
    partial: Option<Partial>,
    boundary: Option<u64>,
}

impl Walker {
    /// A walk of the log `name` starting at `start`, which must be where a frame starts.
    pub(crate) fn new(
        name: Arc<str>,
        device: Arc<dyn LogDevice>,
        start: u64,
        read_attempts_max: u32,
    ) -> Walker {
        let alignment = device.alignment();
        Walker {
            name,
            device,
            reader: Reader::default(),
            alignment,
            read_attempts_max,
            pos: start,
            generation: None,
            generation_max: 0,
            after_padding: false,
            partial: None,
            boundary: start.is_multiple_of(alignment).then_some(start),
        }
    }

    /// The last aligned offset the walk passed between two records: where a new batch could
    /// start without cutting into anything the walk accepted.
    pub(crate) fn boundary(&self) -> Option<u64> {
        self.boundary
    }

    /// The highest generation of any frame the walk accepted (0 when none).
    pub(crate) fn generation_max(&self) -> u32 {
        self.generation_max
    }

    /// Walks to the next whole record, stopping at `limit` or where the chain ends.
    pub(crate) async fn next(&mut self, limit: u64) -> Result<Step, Error> {
        loop {
            if self.pos >= limit {
                return Ok(self.at_limit());
            }
            let frame = match self.read_frame(limit).await? {
                Ok(frame) => frame,
                Err(reason) => {
                    return Ok(Step::End(ChainEnd {
                        at: self.pos,
                        reason,
                    }));
                }
            };
            if let Some(record) = self.accept(frame) {
                return Ok(Step::Record(record));
            }
        }
    }

    fn at_limit(&self) -> Step {
        match self.partial {
            None => Step::Limit,
            Some(_) => Step::End(ChainEnd {
                at: self.pos,
                reason: "the data ends inside a record",
            }),
        }
    }

    /// The frame at the walk's position, read again when it fails its checks.
    async fn read_frame(&mut self, limit: u64) -> Result<Verdict, Error> {
        let mut attempt = 1;
        loop {
            let verdict = self.try_frame(limit).await?;
            if verdict.is_ok() || attempt >= self.read_attempts_max {
                return Ok(verdict);
            }
            attempt += 1;
            self.reader.refresh();
        }
    }

    async fn try_frame(&mut self, limit: u64) -> Result<Verdict, Error> {
        let pos = self.pos;
        if pos + HEADER_LEN as u64 > limit {
            return Ok(Err("a frame header runs past the end of the data"));
        }
        let bytes = self
            .reader
            .get(&*self.device, pos, HEADER_LEN, limit)
            .await?;
        let bytes: [u8; HEADER_LEN] = bytes.try_into().expect("get returns the length asked");
        let header = match Header::decode(&bytes) {
            Ok(header) => header,
            Err(reason) => {
                self.refuse_newer(&bytes, limit).await?;
                return Ok(Err(reason));
            }
        };
        if pos + header.frame_len() > limit {
            return Ok(Err("a frame runs past the end of the data"));
        }

        let body_at = pos + HEADER_LEN as u64;
        let covered = header.checked_body_len();
        let body = self
            .reader
            .get(&*self.device, body_at, covered, limit)
            .await?;
        if !header.verify(pos, body) {
            return Ok(Err("checksum mismatch"));
        }
        let body = body.to_vec();
        Ok(self
            .check_place(&header, &body)
            .map(|()| Frame { header, body }))
    }

    /// Fails with [`Error::NewerFormat`] when `header` (at the walk's position) opens an
    /// intact frame of a newer version: a newer program wrote the log from here on.
    async fn refuse_newer(&mut self, header: &[u8; HEADER_LEN], limit: u64) -> Result<(), Error> {
        let Some((version, covered)) = format::newer_version(header) else {
            return Ok(());
        };
        let (pos, body_at) = (self.pos, self.pos + HEADER_LEN as u64);
        if body_at + covered as u64 > limit {
            return Ok(());
        }
        let body = self
            .reader
            .get(&*self.device, body_at, covered, limit)
            .await?;
        if !format::newer_frame_intact(header, pos, body) {
            return Ok(());
        }
        let place = Place::new(&*self.name, pos);
        Err(place.newer_format(u32::from(version), u32::from(format::FORMAT_VERSION)))
    }

    /// Whether a frame that passed its checksum fits where it stands in the chain.
    fn check_place(&self, header: &Header, body: &[u8]) -> Result<(), &'static str> {
        let same_generation = self.generation.is_none_or(|g| g == header.generation);
        match header.kind {
            FrameKind::Batch => self.check_batch(header, body),
            _ if self.after_padding => Err("a frame after the padding that closed its batch"),
            _ if !same_generation => Err("a frame of another generation than its batch"),
            FrameKind::Padding => self.check_padding(header),
            FrameKind::Record(kind, fragment) => match (&self.partial, fragment.starts_record()) {
                (Some(_), true) => Err("a record starting inside another record"),
                (None, false) => Err("a fragment without the start of its record"),
                (Some(partial), false) if partial.kind != kind => {
                    Err("a fragment of another kind than its record")
                }
                _ => Ok(()),
            },
        }
    }

    fn check_batch(&self, header: &Header, body: &[u8]) -> Result<(), &'static str> {
        if !self.pos.is_multiple_of(self.alignment) {
            return Err("a batch header off the device alignment");
        }
        if self.partial.is_some() {
            return Err("a batch header inside a record");
        }
        if self.generation.is_some_and(|g| header.generation < g) {
            return Err("a batch header of an older generation");
        }
        match format::batch_durable(body) {
            Some(durable) if durable <= self.pos => Ok(()),
            _ => Err("a batch header that claims durability past itself"),
        }
    }

    fn check_padding(&self, header: &Header) -> Result<(), &'static str> {
        if self.partial.is_some() {
            return Err("padding inside a record");
        }
        let end = self.pos + header.frame_len();
        if !end.is_multiple_of(self.alignment)
            || header.frame_len() >= self.alignment + HEADER_LEN as u64
        {
            return Err("padding that does not end on the next aligned offset");
        }
        Ok(())
    }

    /// Takes a checked frame into the walk; returns the record it completes, if any.
    fn accept(&mut self, frame: Frame) -> Option<LogRecord> {
        let Frame { header, body } = frame;
        let start = self.pos;
        self.pos += header.frame_len();
        self.generation = Some(header.generation);
        self.generation_max = self.generation_max.max(header.generation);
        self.after_padding = header.kind == FrameKind::Padding;

        let record = match header.kind {
            FrameKind::Record(kind, fragment) => self.take_fragment(start, kind, fragment, body),
            FrameKind::Batch | FrameKind::Padding => None,
        };
        if self.partial.is_none() && self.pos.is_multiple_of(self.alignment) {
            self.boundary = Some(self.pos);
        }
        record
    }

    fn take_fragment(
        &mut self,
        start: u64,
        kind: RecordKind,
        fragment: format::Fragment,
        body: Vec<u8>,
    ) -> Option<LogRecord> {
        let partial = match self.partial.take() {
            Some(mut partial) => {
                partial.body.extend_from_slice(&body);
                partial
            }
            None => Partial {
                position: start,
                kind,
                body,
            },
        };
        if !fragment.ends_record() {
            self.partial = Some(partial);
            return None;
        }
        Some(LogRecord {
            position: LogPosition(partial.position),
            kind: partial.kind,
            body: partial.body,
            end: LogPosition(self.pos),
        })
    }
}

#[cfg(test)]
mod tests {
    use netherite_core::device::MemoryDisk;

    use super::*;
    use crate::log::batch::{OpenBatch, PreparedRecord};
    use crate::log::format::Fragment;

    const ALIGNMENT: u64 = 512;

    fn record(fragment: Fragment) -> FrameKind {
        FrameKind::Record(RecordKind::new(1).expect("a user kind"), fragment)
    }

    /// A frame of generation 1 at `offset`, appended to `image`.
    fn frame(image: &mut Vec<u8>, kind: FrameKind, body: &[u8]) {
        let header = Header::new(kind, body.len() as u32, 1);
        let offset = image.len() as u64;
        format::put_frame(image, offset, header, body, crc32c::crc32c(body));
    }

    /// Writes `image` at offset 0 and walks it from there to the end.
    async fn walk(mut image: Vec<u8>) -> (Vec<Vec<u8>>, ChainEnd) {
        image.resize(image.len().next_multiple_of(ALIGNMENT as usize), 0);
        let disk = MemoryDisk::new(ALIGNMENT).expect("a power of two");
        let device = disk.open();
        device.write(0, &image).await.expect("write");
        let mut walker = Walker::new("test log".into(), Arc::new(device), 0, 1);
        let mut bodies = Vec::new();
        loop {
            match walker.next(image.len() as u64).await.expect("reads") {
                Step::Record(record) => bodies.push(record.body),
                Step::Limit => panic!("every image here ends in a bad frame"),
                Step::End(end) => return (bodies, end),
            }
        }
    }

    /// Only a new batch may follow the padding that closed a batch.
    #[tokio::test]
    async fn a_record_after_padding_ends_the_chain() {
        let mut batch = OpenBatch::new(0, Vec::new());
        batch.push(
            1,
            &PreparedRecord::new(RecordKind::new(1).expect("kind"), b"a", 240),
        );
        let mut image = batch.seal(1, 0, ALIGNMENT).bytes;
        frame(
            &mut image,
            record(Fragment::Whole),
            b"no batch header before me",
        );

        let (bodies, end) = walk(image).await;
        assert_eq!(bodies, vec![b"a".to_vec()]);
        assert_eq!(end.at, ALIGNMENT);
        assert_eq!(
            end.reason,
            "a frame after the padding that closed its batch"
        );
    }

    /// Fragments must come first, middle..., last: a stray middle or a second start ends it.
    #[tokio::test]
    async fn fragments_out_of_order_end_the_chain() {
        let mut image = format::batch_header(0, 1, 0);
        frame(&mut image, record(Fragment::Middle), b"orphan");
        let (bodies, end) = walk(image).await;
        assert!(bodies.is_empty());
        assert_eq!(end.reason, "a fragment without the start of its record");

        let mut image = format::batch_header(0, 1, 0);
        frame(&mut image, record(Fragment::First), b"begun");
        frame(&mut image, record(Fragment::Whole), b"interloper");
        let (bodies, end) = walk(image).await;
        assert!(bodies.is_empty());
        assert_eq!(end.reason, "a record starting inside another record");
    }

    /// A batch header cannot vouch for bytes after itself.
    #[tokio::test]
    async fn a_batch_header_claiming_its_own_future_ends_the_chain() {
        let (_, end) = walk(format::batch_header(0, 1, 4096)).await;
        assert_eq!(
            (end.at, end.reason),
            (0, "a batch header that claims durability past itself")
        );
    }
}
