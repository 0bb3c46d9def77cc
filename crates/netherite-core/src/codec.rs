//! The record format of logged events: versioned, compact binary frames, each with checksums.
//!
//! A frame is a fixed 12-byte header followed by a body:
//!
//! ```text
//!  0            4            8            12   13          13+k
//!  +------------+------------+------------+----+-----------+---------------------+
//!  | body_len   | body_crc   | head_crc   | v  | kind      | value (postcard)    |
//!  | u32 LE     | u32 LE     | u32 LE     | u8 | LEB128    |                     |
//!  +------------+------------+------------+----+-----------+---------------------+
//!  '------------- header (12 bytes) ------''------------ body (body_len bytes) ----'
//!
//!  head_crc = crc32c(bytes 0..8)       body_crc = crc32c(body)
//! ```
//!
//! The header carries its own checksum so that a damaged length is reported as corruption
//! instead of sending the reader past the end of the buffer. With the length trusted, the
//! three ways a record can be bad are told apart:
//!
//! - the buffer ends inside a record whose header is intact: [`Error::Truncated`], what a torn
//!   or unfinished tail looks like;
//! - a checksum fails: [`Error::ChecksumMismatch`], corruption (or a tail torn inside a sector
//!   the reader cannot tell from corruption; the commit log decides that from where the last
//!   good flush ended);
//! - the checksums pass but the body is not understood: [`Error::UnsupportedVersion`],
//!   [`Error::UnknownEventKind`] or [`Error::Malformed`].
//!
//! Every error names the source and the offset where the record starts. CRC-32C catches every
//! change confined to 32 consecutive bits, so a single damaged byte is always detected.
//!
//! The `kind` tag duplicates what postcard encodes for an enum's variant, on purpose: a reader
//! learns the kind before it parses the value, so a record written by a newer program is
//! reported as an unknown kind rather than as garbage. Kind numbers are stable forever; enum
//! variants are only ever appended, because postcard numbers them by declaration order.
//!
//! Aligned devices pad with zeros after the last record. A frame always holds non-zero bytes
//! (its length and its version), so [`RecordReader`] treats a remainder of only zeros as the
//! end of the records, and a single damaged byte can never pass for padding.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// The format version this program writes and the only one it reads.
pub const FORMAT_VERSION: u8 = 1;

/// The length of a frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// The largest body a frame may carry (limit `record_bytes_max`).
pub const RECORD_BYTES_MAX: usize = 64 << 20;

/// The longest LEB128 encoding of a `u32`.
const KIND_LEN_MAX: usize = 5;

/// A value that can be logged: the update events of the partition state machine.
///
/// # Examples
///
/// ```
/// use netherite_core::codec::{self, Record};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum Event {
///     Started { name: String },
///     Finished,
/// }
///
/// impl Record for Event {
///     fn kind(&self) -> u32 {
///         match self {
///             Event::Started { .. } => 1,
///             Event::Finished => 2,
///         }
///     }
///     fn is_known_kind(kind: u32) -> bool {
///         matches!(kind, 1 | 2)
///     }
/// }
///
/// let event = Event::Started { name: "hello".into() };
/// let bytes = codec::encode(&event)?;
/// let (decoded, used) = codec::decode::<Event>(&bytes, "example", 0)?;
/// assert_eq!((decoded, used), (event, bytes.len()));
/// # Ok::<(), netherite_core::Error>(())
/// ```
pub trait Record: Serialize + DeserializeOwned {
    /// The stable kind tag of this value, written into the frame ahead of the value.
    fn kind(&self) -> u32;

    /// Whether this program can decode values of `kind`.
    fn is_known_kind(kind: u32) -> bool;
}

/// Encodes `record` as one frame.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(record, &mut out)?;
    Ok(out)
}

/// Appends the frame of `record` to `out` and returns its length; `out` is unchanged on error.
pub fn encode_into<R: Record>(record: &R, out: &mut Vec<u8>) -> Result<usize, Error> {
    let value = postcard::to_stdvec(record).map_err(|e| Error::Encode(e.to_string()))?;
    let mut body = Vec::with_capacity(1 + KIND_LEN_MAX + value.len());
    body.push(FORMAT_VERSION);
    push_varint(&mut body, record.kind());
    body.extend_from_slice(&value);
    if body.len() > RECORD_BYTES_MAX {
        return Err(Error::LimitExceeded {
            limit: "record_bytes_max",
            actual: body.len() as u64,
            max: RECORD_BYTES_MAX as u64,
        });
    }

    let body_len = u32::try_from(body.len()).expect("bounded by RECORD_BYTES_MAX");
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&body_len.to_le_bytes());
    head[4..8].copy_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let head_crc = crc32c::crc32c(&head[0..8]);
    head[8..12].copy_from_slice(&head_crc.to_le_bytes());

    out.extend_from_slice(&head);
    out.extend_from_slice(&body);
    Ok(HEADER_LEN + body.len())
}

/// Checks the header at the start of `bytes` and returns the length of the whole frame.
///
/// A reader that pulls records from a device in pieces reads [`HEADER_LEN`] bytes, learns here
/// how many more to fetch, then calls [`decode`]. `offset` is where `bytes` starts in
/// `source_name`, for error messages.
pub fn frame_len(bytes: &[u8], source_name: &str, offset: u64) -> Result<usize, Error> {
    let at = Position {
        source_name,
        offset,
    };
    Ok(HEADER_LEN + read_header(bytes, &at)?.body_len)
}

/// Decodes the frame at the start of `bytes`, returning the value and the bytes it used.
///
/// `offset` is where `bytes` starts in `source_name`; every error names both.
pub fn decode<R: Record>(
    bytes: &[u8],
    source_name: &str,
    offset: u64,
) -> Result<(R, usize), Error> {
    let at = Position {
        source_name,
        offset,
    };
    let header = read_header(bytes, &at)?;
    let frame_len = HEADER_LEN + header.body_len;
    if bytes.len() < frame_len {
        return Err(at.truncated(frame_len, bytes.len()));
    }

    let body = &bytes[HEADER_LEN..frame_len];
    if crc32c::crc32c(body) != header.body_crc {
        return Err(at.checksum_mismatch());
    }
    Ok((decode_body(body, &at)?, frame_len))
}

/// The fields of a header whose checksum passed.
struct Header {
    body_len: usize,
    body_crc: u32,
}

/// Where a record starts, for error messages.
struct Position<'a> {
    source_name: &'a str,
    offset: u64,
}

impl Position<'_> {
    fn checksum_mismatch(&self) -> Error {
        Error::ChecksumMismatch {
            source_name: self.source_name.to_owned(),
            offset: self.offset,
        }
    }

    fn truncated(&self, needed: usize, available: usize) -> Error {
        Error::Truncated {
            source_name: self.source_name.to_owned(),
            offset: self.offset,
            needed: needed as u64,
            available: available as u64,
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> Error {
        Error::Malformed {
            source_name: self.source_name.to_owned(),
            offset: self.offset,
            reason: reason.into(),
        }
    }
}

/// Reads and checks a header; the body length is trustworthy once this returns.
fn read_header(bytes: &[u8], at: &Position<'_>) -> Result<Header, Error> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Err(at.truncated(HEADER_LEN, bytes.len()));
    };
    let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4-byte slice"));
    if crc32c::crc32c(&head[0..8]) != word(8) {
        return Err(at.checksum_mismatch());
    }

    // An authentic header with an impossible length was written by a different program.
    let body_len = word(0) as usize;
    if body_len < 2 {
        return Err(at.malformed(format!(
            "body of {body_len} bytes cannot hold version and kind"
        )));
    }
    if body_len > RECORD_BYTES_MAX {
        return Err(at.malformed(format!(
            "body of {body_len} bytes exceeds record_bytes_max {RECORD_BYTES_MAX}"
        )));
    }
    Ok(Header {
        body_len,
        body_crc: word(4),
    })
}

/// Decodes a body whose checksum passed: version, kind, then the value.
fn decode_body<R: Record>(body: &[u8], at: &Position<'_>) -> Result<R, Error> {
    let version = body[0];
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            source_name: at.source_name.to_owned(),
            offset: at.offset,
            version,
        });
    }
    let (kind, kind_len) = read_varint(&body[1..]).ok_or_else(|| at.malformed("bad kind tag"))?;
    if !R::is_known_kind(kind) {
        return Err(Error::UnknownEventKind {
            source_name: at.source_name.to_owned(),
            offset: at.offset,
            kind,
        });
    }

    let value_bytes = &body[1 + kind_len..];
    let (value, rest) =
        postcard::take_from_bytes::<R>(value_bytes).map_err(|e| at.malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(at.malformed(format!("{} bytes left after the value", rest.len())));
    }
    if value.kind() != kind {
        let found = value.kind();
        return Err(at.malformed(format!("kind tag {kind} but the value is of kind {found}")));
    }
    Ok(value)
}

/// Appends `value` as unsigned LEB128.
fn push_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 `u32`; `None` if it is cut short or overflows.
fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(KIND_LEN_MAX).enumerate() {
        let bits = u32::from(byte & 0x7f);
        if i == KIND_LEN_MAX - 1 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads the records of a buffer one after the other, stopping at the end or at zero padding.
///
/// The reader stops for good at the first error, and [`RecordReader::offset`] then names the
/// start of the bad record: the point where a commit log with a torn tail is cut.
#[derive(Debug)]
pub struct RecordReader<'a, R> {
    bytes: &'a [u8],
    source_name: &'a str,
    base_offset: u64,
    pos: usize,
    failed: bool,
    _records: PhantomData<fn() -> R>,
}

impl<'a, R: Record> RecordReader<'a, R> {
    /// A reader over `bytes`, which start at `base_offset` of `source_name`.
    pub fn new(bytes: &'a [u8], source_name: &'a str, base_offset: u64) -> Self {
        RecordReader {
            bytes,
            source_name,
            base_offset,
            pos: 0,
            failed: false,
            _records: PhantomData,
        }
    }

    /// The offset of the next record to read: after the last good record.
    pub fn offset(&self) -> u64 {
        self.base_offset + self.pos as u64
    }

    /// The next record and its offset; `None` at the end of the buffer or of the records.
    pub fn next_record(&mut self) -> Result<Option<(u64, R)>, Error> {
        let rest = &self.bytes[self.pos..];
        if self.failed || rest.is_empty() {
            return Ok(None);
        }

        let offset = self.offset();
        match decode::<R>(rest, self.source_name, offset) {
            Ok((record, used)) => {
                self.pos += used;
                Ok(Some((offset, record)))
            }
            // A failed frame made only of zeros is the padding after the last record.
            Err(_) if rest.iter().all(|&b| b == 0) => {
                self.pos = self.bytes.len();
                Ok(None)
            }
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }
}

impl<R: Record> Iterator for RecordReader<'_, R> {
    type Item = Result<(u64, R), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// Update events as the state machine might define them; `Future` stands for a kind written
    /// by a newer program, so this program does not know it.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Event {
        Created { id: String, at: u64 },
        Progress(u32),
        Done,
        Future,
    }

    impl Record for Event {
        fn kind(&self) -> u32 {
            match self {
                Event::Created { .. } => 1,
                Event::Progress(_) => 2,
                Event::Done => 300,
                Event::Future => 77,
            }
        }

        fn is_known_kind(kind: u32) -> bool {
            matches!(kind, 1 | 2 | 300)
        }
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            ("[a-z0-9!@]{0,24}", any::<u64>()).prop_map(|(id, at)| Event::Created { id, at }),
            any::<u32>().prop_map(Event::Progress),
            Just(Event::Done),
        ]
    }

    fn encode_all(events: &[Event]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for e in events {
            offsets.push(bytes.len() as u64);
            encode_into(e, &mut bytes).unwrap();
        }
        (bytes, offsets)
    }

    /// A frame around `body` with correct checksums, as a different writer would make it.
    fn frame_with_body(body: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; HEADER_LEN];
        frame[0..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        frame[4..8].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
        let head_crc = crc32c::crc32c(&frame[0..8]);
        frame[8..12].copy_from_slice(&head_crc.to_le_bytes());
        frame.extend_from_slice(body);
        frame
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever is encoded decodes to the same value, using exactly its own bytes.
        #[test]
        fn round_trip(events in proptest::collection::vec(event(), 0..8)) {
            let (bytes, offsets) = encode_all(&events);
            let read: Vec<(u64, Event)> =
                RecordReader::new(&bytes, "log", 0).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(read.iter().map(|(o, _)| *o).collect::<Vec<_>>(), offsets);
            prop_assert_eq!(read.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), events);
        }

        /// Changing any single byte of a buffer of records is detected, the error names the
        /// damaged record, and every record before it still reads.
        #[test]
        fn every_single_byte_corruption_is_detected(
            events in proptest::collection::vec(event(), 1..5),
            pick in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut bytes, offsets) = encode_all(&events);
            let at = pick.index(bytes.len());
            bytes[at] ^= flip;
            let damaged = offsets.iter().rposition(|&o| o as usize <= at).unwrap();

            let mut reader = RecordReader::<Event>::new(&bytes, "log", 1000);
            for expected in &events[..damaged] {
                prop_assert_eq!(&reader.next_record().unwrap().unwrap().1, expected);
            }
            let error = reader.next_record().unwrap_err();
            let is_mismatch = matches!(
                error,
                Error::ChecksumMismatch { offset, .. } if offset == 1000 + offsets[damaged]
            );
            prop_assert!(is_mismatch, "{error}");
            prop_assert_eq!(reader.offset(), 1000 + offsets[damaged]);
        }

        /// A buffer cut anywhere inside its last record reads the records before it, then
        /// reports a truncation (never corruption) at the last record's offset.
        #[test]
        fn cut_tail_is_truncation_not_corruption(
            events in proptest::collection::vec(event(), 1..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let (bytes, offsets) = encode_all(&events);
            let last = *offsets.last().unwrap() as usize;
            let end = last + cut.index(bytes.len() - last);
            let mut reader = RecordReader::<Event>::new(&bytes[..end], "log", 0);
            for expected in &events[..events.len() - 1] {
                prop_assert_eq!(&reader.next_record().unwrap().unwrap().1, expected);
            }
            match reader.next_record() {
                Ok(None) => prop_assert_eq!(end, last),
                Err(Error::Truncated { offset, available, .. }) => {
                    prop_assert_eq!(offset, last as u64);
                    prop_assert_eq!(available, (end - last) as u64);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    /// Zero padding after the last record, as an aligned device leaves it, ends the reading.
    #[test]
    fn zero_padding_ends_the_records() {
        let (mut bytes, _) = encode_all(&[Event::Done, Event::Progress(9)]);
        let records_end = bytes.len() as u64;
        bytes.resize(512, 0);
        let mut reader = RecordReader::<Event>::new(&bytes, "log", 0);
        assert_eq!(reader.next_record().unwrap().unwrap().1, Event::Done);
        assert_eq!(reader.next_record().unwrap().unwrap().1, Event::Progress(9));
        assert_eq!(reader.offset(), records_end);
        assert!(reader.next_record().unwrap().is_none());
    }

    /// A record of a kind this program does not know is a typed error naming its offset.
    #[test]
    fn unknown_kind_names_the_offset() {
        let (bytes, offsets) = encode_all(&[Event::Done, Event::Future]);
        let mut reader = RecordReader::<Event>::new(&bytes, "p03/commit-log", 4096);
        assert!(reader.next_record().unwrap().is_some());
        let error = reader.next_record().unwrap_err();
        assert!(matches!(
            &error,
            Error::UnknownEventKind { source_name, offset, kind: 77 }
                if source_name == "p03/commit-log" && *offset == 4096 + offsets[1]
        ));
        assert!(error.to_string().contains("p03/commit-log"));
    }

    /// A frame from a newer format version is refused, even though its checksums pass.
    #[test]
    fn newer_version_is_unsupported() {
        let mut body = encode(&Event::Progress(1)).unwrap()[HEADER_LEN..].to_vec();
        body[0] = FORMAT_VERSION + 1;
        let frame = frame_with_body(&body);
        let error = decode::<Event>(&frame, "log", 8).unwrap_err();
        assert!(matches!(
            error,
            Error::UnsupportedVersion {
                offset: 8,
                version: 2,
                ..
            }
        ));
    }

    /// Bodies that pass their checksums but lie are malformed: a kind tag that disagrees with
    /// the value, trailing bytes, a value that does not parse, an overlong kind tag.
    #[test]
    fn lying_bodies_are_malformed() {
        let value = postcard::to_stdvec(&Event::Progress(5)).unwrap();
        let mut wrong_kind = vec![FORMAT_VERSION, 1];
        wrong_kind.extend_from_slice(&value);
        let mut trailing = vec![FORMAT_VERSION, 2];
        trailing.extend_from_slice(&value);
        trailing.push(0);
        let garbage = vec![FORMAT_VERSION, 2, 0xff];
        let overlong_kind = vec![FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0x7f, 0];

        for body in [wrong_kind, trailing, garbage, overlong_kind] {
            let frame = frame_with_body(&body);
            let error = decode::<Event>(&frame, "log", 0).unwrap_err();
            assert!(matches!(error, Error::Malformed { .. }), "{error}");
        }
    }

    /// The header alone tells how long the frame is, so a device reader can fetch the rest.
    #[test]
    fn frame_len_reads_the_header_only() {
        let frame = encode(&Event::Created {
            id: "a".repeat(300),
            at: 1,
        })
        .unwrap();
        assert_eq!(
            frame_len(&frame[..HEADER_LEN], "log", 0).unwrap(),
            frame.len()
        );
        let short = frame_len(&frame[..5], "log", 0).unwrap_err();
        assert!(matches!(
            short,
            Error::Truncated {
                needed: 12,
                available: 5,
                ..
            }
        ));
    }

    /// Kind tags round-trip through LEB128 at every length, and overflow is refused.
    #[test]
    fn varint_edges() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut out = Vec::new();
            push_varint(&mut out, value);
            assert_eq!(read_varint(&out), Some((value, out.len())));
        }
        assert_eq!(read_varint(&[0x80, 0x80]), None);
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), None);
    }
}
