//! A batch: the frames that one device write carries and one device flush makes durable.
//!
//! A batch starts at an aligned offset with a batch header, holds whole records (never a part
//! of one), and ends aligned, with padding when its records do not. The next batch starts
//! where this one ends, so no write ever touches a byte an earlier flush made durable: a torn
//! write can only damage the batch it belongs to.

use std::fmt;

use super::format::{self, BATCH_FRAME_LEN, Fragment, FrameKind, Header};
use super::{LogPosition, RecordKind};

/// A record cut into fragments, each fragment's checksum computed: the costly part of an
/// append, done before the log's lock is taken.
#[derive(Debug)]
pub(crate) struct PreparedRecord<'a> {
    kind: RecordKind,
    body: &'a [u8],
    chunk_len: usize,
    body_crcs: Vec<u32>,
}

impl<'a> PreparedRecord<'a> {
    /// Cuts `body` into chunks of at most `chunk_len` bytes (at least one chunk, even when
    /// the body is empty) and checksums each.
    pub(crate) fn new(kind: RecordKind, body: &'a [u8], chunk_len: usize) -> PreparedRecord<'a> {
        let body_crcs = if body.is_empty() {
            vec![0]
        } else {
            body.chunks(chunk_len).map(crc32c::crc32c).collect()
        };
        PreparedRecord {
            kind,
            body,
            chunk_len,
            body_crcs,
        }
    }

    /// The bytes the record takes in a batch.
    pub(crate) fn framed_len(&self) -> u64 {
        (self.body_crcs.len() * format::HEADER_LEN + self.body.len()) as u64
    }

    fn chunks(&self) -> impl Iterator<Item = &'a [u8]> + use<'a, '_> {
        let body = self.body;
        let chunk_len = self.chunk_len;
        (0..self.body_crcs.len()).map(move |i| {
            let start = (i * chunk_len).min(body.len());
            &body[start..(start + chunk_len).min(body.len())]
        })
    }
}

/// The batch being filled by appends.
pub(crate) struct OpenBatch {
    offset: u64,
    bytes: Vec<u8>,
    records: usize,
}

impl OpenBatch {
    /// An empty batch that will start at the aligned offset `offset`, reusing `spare`'s
    /// allocation.
    pub(crate) fn new(offset: u64, mut spare: Vec<u8>) -> OpenBatch {
        spare.clear();
        OpenBatch {
            offset,
            bytes: spare,
            records: 0,
        }
    }

    /// Whether no record was appended yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Where the next frame would go: the end of the last record appended.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }

    /// The bytes the batch would hold after appending a record of `framed_len` bytes.
    pub(crate) fn len_with(&self, framed_len: u64) -> u64 {
        let header = if self.bytes.is_empty() {
            BATCH_FRAME_LEN as u64
        } else {
            0
        };
        self.bytes.len() as u64 + header + framed_len
    }

    /// Appends `record`'s frames, written by a handle of `generation`; returns its position.
    pub(crate) fn push(&mut self, generation: u32, record: &PreparedRecord<'_>) -> LogPosition {
        self.reserve_header();
        let position = LogPosition(self.end());
        let count = record.body_crcs.len();
        for (index, (chunk, crc)) in record.chunks().zip(&record.body_crcs).enumerate() {
            let kind = FrameKind::Record(record.kind, Fragment::of(index, count));
            let header = Header::new(kind, chunk.len() as u32, generation);
            let at = self.end();
            format::put_frame(&mut self.bytes, at, header, chunk, *crc);
        }
        self.records += 1;
        position
    }

    /// Closes the batch: fills in its header, stating that everything before `durable` is
    /// durable, and pads it to `alignment`. An empty batch becomes a header alone: what a
    /// clean close writes so that the last real batch is vouched for.
    pub(crate) fn seal(mut self, generation: u32, durable: u64, alignment: u64) -> SealedBatch {
        self.reserve_header();
        let header = format::batch_header(self.offset, generation, durable);
        self.bytes[..BATCH_FRAME_LEN].copy_from_slice(&header);

        let end = self.end();
        let padding = format::padding_len(end, alignment);
        if padding > 0 {
            format::put_padding(&mut self.bytes, end, generation, padding);
        }
        SealedBatch {
            offset: self.offset,
            bytes: self.bytes,
            records: self.records,
        }
    }

    fn reserve_header(&mut self) {
        if self.bytes.is_empty() {
            self.bytes.resize(BATCH_FRAME_LEN, 0);
        }
    }
}

/// A closed batch, ready for one device write.
pub(crate) struct SealedBatch {
    /// Where the batch starts on the device (aligned).
    pub(crate) offset: u64,
    /// The frames, ending aligned.
    pub(crate) bytes: Vec<u8>,
    /// How many records the batch holds.
    pub(crate) records: usize,
}

impl SealedBatch {
    /// Where the batch ends, and the next one starts.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

impl fmt::Debug for OpenBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBatch")
            .field("offset", &self.offset)
            .field("len", &self.bytes.len())
            .field("records", &self.records)
            .finish()
    }
}

impl fmt::Debug for SealedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBatch")
            .field("offset", &self.offset)
            .field("len", &self.bytes.len())
            .field("records", &self.records)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind() -> RecordKind {
        RecordKind::new(1).expect("a user kind")
    }

    /// Positions follow the batch header, and a sealed batch ends aligned.
    #[test]
    fn records_follow_the_header_and_the_seal_aligns() {
        let mut batch = OpenBatch::new(1024, Vec::new());
        let first = batch.push(1, &PreparedRecord::new(kind(), b"abc", 100));
        let second = batch.push(1, &PreparedRecord::new(kind(), b"", 100));
        assert_eq!(first, LogPosition(1024 + BATCH_FRAME_LEN as u64));
        assert_eq!(second.offset(), first.offset() + 16 + 3);

        let sealed = batch.seal(1, 1024, 512);
        assert_eq!(sealed.offset, 1024);
        assert_eq!(sealed.end() % 512, 0);
        assert_eq!(sealed.records, 2);
    }

    /// A record longer than a page leaves as several fragments, none over the chunk length.
    #[test]
    fn long_records_are_cut_into_chunks() {
        let body: Vec<u8> = (0..250).map(|i| i as u8).collect();
        let record = PreparedRecord::new(kind(), &body, 100);
        let chunks: Vec<_> = record.chunks().collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), body);
        assert_eq!(record.framed_len(), 3 * 16 + 250);
    }

    /// The closing seal is an empty batch: its header and padding, nothing else.
    #[test]
    fn an_empty_seal_is_a_header_and_padding() {
        let sealed = OpenBatch::new(0, Vec::new()).seal(2, 0, 64);
        assert_eq!(sealed.bytes.len(), 64);
        assert_eq!(sealed.records, 0);
    }
}
