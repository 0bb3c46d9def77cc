//! The layout of one record in the store's log.
//!
//! ```text
//!  0          8        12         16         20    21      24         28       32
//!  +----------+--------+----------+----------+-----+-------+----------+--------+------+-------+
//!  | previous | key    | value    | value    |flags| zero  | checksum | zero   | key  | value |
//!  | u64 LE   | len u32| len u32  | cap u32  | u8  |       | u32 LE   |        |      | (cap) |
//!  +----------+--------+----------+----------+-----+-------+----------+--------+------+-------+
//!  checksum = crc32c(bytes 0..24, bytes 28..32, key, value[..value len])
//! ```
//!
//! Records start at multiples of 8 and never cross a page, except a record larger than a page,
//! which starts a page and gets pages of its own. The value has a capacity (the padding up to
//! the next multiple of 8 is free room), so an in-place update may grow it a little.
//!
//! Three kinds of header tell a reader how to move on. A *record* (flag `RECORD`) is followed by
//! the next record. A *pad* (flag `PAD`, or a header of zeros) ends the page: the next record
//! starts the next page. A *skip* (flag `SKIP`) marks a region that holds no records, an index
//! snapshot: its `previous` field holds the region's length.

/// The length of a record header.
pub(crate) const HEADER_LEN: usize = 32;

/// Records start at multiples of this.
pub(crate) const RECORD_ALIGN: u64 = 8;

/// Set on every real record.
pub(crate) const FLAG_RECORD: u8 = 1;
/// The record says the key is deleted; it has no value.
pub(crate) const FLAG_TOMBSTONE: u8 = 2;
/// The rest of the page is empty.
pub(crate) const FLAG_PAD: u8 = 4;
/// A region without records follows; `previous` holds its length from the header on.
pub(crate) const FLAG_SKIP: u8 = 8;

/// The fixed part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The previous record of the same index chain, or the length of a skip region.
    pub(crate) previous: u64,
    pub(crate) key_len: u32,
    pub(crate) value_len: u32,
    pub(crate) value_cap: u32,
    pub(crate) flags: u8,
    pub(crate) checksum: u32,
}

/// What a header says about the bytes that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A record with a key.
    Record,
    /// The page ends here.
    Pad,
    /// A region of this many bytes (from the header on) holds no records.
    Skip(u64),
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`.
    pub(crate) fn parse(bytes: &[u8]) -> Header {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        Header {
            previous: u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            key_len: u32_at(8),
            value_len: u32_at(12),
            value_cap: u32_at(16),
            flags: bytes[20],
            checksum: u32_at(24),
        }
    }

    /// A header for a pad, ending the page.
    pub(crate) fn pad() -> Header {
        Header::marker(FLAG_PAD, 0)
    }

    /// A header for a region of `len` bytes without records.
    pub(crate) fn skip(len: u64) -> Header {
        Header::marker(FLAG_SKIP, len)
    }

    fn marker(flag: u8, previous: u64) -> Header {
        let mut header = Header {
            previous,
            key_len: 0,
            value_len: 0,
            value_cap: 0,
            flags: FLAG_RECORD | flag,
            checksum: 0,
        };
        let mut bytes = [0u8; HEADER_LEN];
        header.write(&mut bytes);
        header.checksum = checksum(&bytes, &[], &[]);
        header
    }

    /// Writes this header into the first [`HEADER_LEN`] bytes of `out`.
    pub(crate) fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.previous.to_le_bytes());
        out[8..12].copy_from_slice(&self.key_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.value_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.value_cap.to_le_bytes());
        out[20] = self.flags;
        out[21..24].fill(0);
        out[24..28].copy_from_slice(&self.checksum.to_le_bytes());
        out[28..32].fill(0);
    }

    /// What kind of header this is; a header of zeros is a pad.
    pub(crate) fn kind(&self) -> Kind {
        if self.flags & FLAG_RECORD == 0 || self.flags & FLAG_PAD != 0 {
            Kind::Pad
        } else if self.flags & FLAG_SKIP != 0 {
            Kind::Skip(self.previous)
        } else {
            Kind::Record
        }
    }

    /// Whether the record deletes its key.
    pub(crate) fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// The bytes the record takes in the log, padding included.
    pub(crate) fn record_len(&self) -> u64 {
        record_len(self.key_len as usize, self.value_cap as usize)
    }
}

/// The bytes a record with this key length and value capacity takes in the log.
pub(crate) fn record_len(key_len: usize, value_cap: usize) -> u64 {
    (HEADER_LEN as u64 + key_len as u64 + value_cap as u64).next_multiple_of(RECORD_ALIGN)
}

/// The checksum of a record: its header (without the checksum), key and value.
fn checksum(header_bytes: &[u8], key: &[u8], value: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header_bytes[..24]);
    let crc = crc32c::crc32c_append(crc, &header_bytes[28..HEADER_LEN]);
    let crc = crc32c::crc32c_append(crc, key);
    crc32c::crc32c_append(crc, value)
}

/// Writes a whole record into `out`, which holds exactly [`record_len`] bytes.
///
/// `value` is `None` for a tombstone.
pub(crate) fn write_record(out: &mut [u8], previous: u64, key: &[u8], value: Option<&[u8]>) {
    let value_bytes = value.unwrap_or(&[]);
    let key_end = HEADER_LEN + key.len();
    let cap = out.len() - key_end;
    let mut header = Header {
        previous,
        key_len: u32::try_from(key.len()).expect("key length checked by the store"),
        value_len: u32::try_from(value_bytes.len()).expect("value length checked by the store"),
        value_cap: u32::try_from(cap).expect("record length checked by the store"),
        flags: FLAG_RECORD | if value.is_none() { FLAG_TOMBSTONE } else { 0 },
        checksum: 0,
    };
    header.write(out);
    out[HEADER_LEN..key_end].copy_from_slice(key);
    out[key_end..key_end + value_bytes.len()].copy_from_slice(value_bytes);
    out[key_end + value_bytes.len()..].fill(0);
    header.checksum = checksum(&out[..HEADER_LEN], key, value_bytes);
    header.write(out);
}

/// A record in a byte slice that starts at its header and holds all of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordRef<'a> {
    pub(crate) header: Header,
    bytes: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record at the start of `bytes`, if `bytes` holds all of it.
    pub(crate) fn new(bytes: &'a [u8]) -> Option<RecordRef<'a>> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let header = Header::parse(bytes);
        let len = usize::try_from(header.record_len()).ok()?;
        (bytes.len() >= len).then(|| RecordRef {
            header,
            bytes: &bytes[..len],
        })
    }

    /// The key.
    pub(crate) fn key(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..HEADER_LEN + self.header.key_len as usize]
    }

    /// The value (empty for a tombstone).
    pub(crate) fn value(&self) -> &'a [u8] {
        let start = HEADER_LEN + self.header.key_len as usize;
        &self.bytes[start..start + self.header.value_len as usize]
    }

    /// Whether the stored checksum matches the bytes and the lengths fit the capacity.
    pub(crate) fn verify(&self) -> bool {
        self.header.value_len <= self.header.value_cap
            && checksum(self.bytes, self.key(), self.value()) == self.header.checksum
    }
}

/// The in-place update of a record in the mutable region.
pub(crate) struct RecordMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> RecordMut<'a> {
    /// The record at the start of `bytes` (which holds all of it).
    pub(crate) fn new(bytes: &'a mut [u8]) -> RecordMut<'a> {
        RecordMut { bytes }
    }

    /// Replaces the value (`None`: marks the record a tombstone) if it fits the capacity.
    /// Returns whether it did.
    pub(crate) fn update(&mut self, value: Option<&[u8]>) -> bool {
        let mut header = Header::parse(self.bytes);
        let value_bytes = value.unwrap_or(&[]);
        if value_bytes.len() > header.value_cap as usize {
            return false;
        }
        let start = HEADER_LEN + header.key_len as usize;
        let end = start + value_bytes.len();
        self.bytes[start..end].copy_from_slice(value_bytes);
        self.bytes[end..start + header.value_cap as usize].fill(0);
        header.value_len = value_bytes.len() as u32;
        header.flags = FLAG_RECORD | if value.is_none() { FLAG_TOMBSTONE } else { 0 };
        header.write(self.bytes);
        let key = &self.bytes[HEADER_LEN..start];
        header.checksum = checksum(&self.bytes[..HEADER_LEN], key, &self.bytes[start..end]);
        header.write(self.bytes);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(previous: u64, key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
        let len = record_len(key.len(), value.map_or(0, <[u8]>::len)) as usize;
        let mut bytes = vec![0xAA; len];
        write_record(&mut bytes, previous, key, value);
        bytes
    }

    /// A record reads back as written, and its checksum notices a single flipped byte.
    #[test]
    fn record_round_trips_and_detects_damage() {
        let mut bytes = written(4096, b"key", Some(b"value"));
        let record = RecordRef::new(&bytes).expect("whole record");
        assert_eq!(record.header.previous, 4096);
        assert_eq!((record.key(), record.value()), (&b"key"[..], &b"value"[..]));
        assert_eq!(record.header.kind(), Kind::Record);
        assert!(record.verify() && !record.header.is_tombstone());

        assert_eq!(bytes.len(), 40, "no padding: every byte is covered");
        for at in 0..bytes.len() {
            bytes[at] ^= 0x10;
            let damaged = RecordRef::new(&bytes).map(|r| r.verify());
            assert_ne!(damaged, Some(true), "flip at {at} went unnoticed");
            bytes[at] ^= 0x10;
        }
    }

    /// In place, a value may grow into the padding but not past it; a tombstone drops it.
    #[test]
    fn in_place_update_respects_capacity() {
        let mut bytes = written(0, b"k", Some(b"ab"));
        assert_eq!(bytes.len(), 40, "32 + 1 + 2 rounds up to 40: capacity 7");
        assert!(RecordMut::new(&mut bytes).update(Some(b"abcdefg")));
        assert!(!RecordMut::new(&mut bytes).update(Some(b"abcdefgh")));
        let record = RecordRef::new(&bytes).expect("whole");
        assert_eq!(record.value(), b"abcdefg");
        assert!(record.verify());

        assert!(RecordMut::new(&mut bytes).update(None));
        let record = RecordRef::new(&bytes).expect("whole");
        assert!(record.header.is_tombstone() && record.value().is_empty() && record.verify());
    }

    #[test]
    fn zeros_pad_and_skip_tell_the_reader_how_to_move_on() {
        assert_eq!(Header::parse(&[0; HEADER_LEN]).kind(), Kind::Pad);
        let mut bytes = [0u8; HEADER_LEN];
        Header::pad().write(&mut bytes);
        assert_eq!(Header::parse(&bytes).kind(), Kind::Pad);
        Header::skip(8192).write(&mut bytes);
        let header = Header::parse(&bytes);
        assert_eq!(header.kind(), Kind::Skip(8192));
        assert!(RecordRef::new(&bytes).expect("header only").verify());
    }
}
