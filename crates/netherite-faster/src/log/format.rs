//! The bytes on the device: frames, their checksum, batch headers and padding.
//!
//! Everything in the log is a frame: a 16-byte header and a body.
//!
//! ```text
//!  0         4         8         12      14      15      16
//!  +---------+---------+---------+-------+-------+-------+----------------------+
//!  | crc     | len     | gen     | kind  | flags | ver   | body (len bytes)     |
//!  | u32 LE  | u32 LE  | u32 LE  | u16 LE| u8    | u8    |                      |
//!  +---------+---------+---------+-------+-------+-------+----------------------+
//!
//!  crc = crc32c(body ++ header bytes 4..16 ++ the frame's device offset as u64 LE)
//! ```
//!
//! - `kind` is the caller's [`RecordKind`], or one of two kinds kept for the log: a *batch
//!   header* (body: the durable point when the batch was written, u64 LE) opens every batch,
//!   and *padding* closes a batch whose end is not aligned (its body is not checksummed).
//! - `flags` says which fragment of a record the frame holds: first, middle, last, or all of
//!   it. A record longer than a page is cut into fragments of at most a page each.
//! - `gen` is the generation of the log handle that wrote the frame: one more than every
//!   generation on the device when the log was opened. A frame left over from an abandoned
//!   write can therefore never pass for part of a newer batch, even at the very same offset.
//! - The device offset inside the checksum means a frame is only valid where it was written.
//! - `ver` is never zero, so zeroed space never parses as a frame. A later version keeps the
//!   header's layout and its checksum rule, so that this version can recognise an intact
//!   frame of a newer one (`newer_version`) and refuse the log, rather than take it for a
//!   torn tail and write over it.

use super::RecordKind;

/// The length of a frame header.
pub(crate) const HEADER_LEN: usize = 16;

/// The format version this code writes and the only one it reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// The longest frame body a reader accepts, whatever the writer's page size was; this bounds
/// what one damaged length field can make a reader fetch.
pub(crate) const FRAME_BODY_MAX: u32 = 16 << 20;

/// The length of a batch header frame.
pub(crate) const BATCH_FRAME_LEN: usize = HEADER_LEN + 8;

const KIND_BATCH: u16 = 0xFFFE;
const KIND_PADDING: u16 = 0xFFFF;
const FLAG_FIRST: u8 = 0b01;
const FLAG_LAST: u8 = 0b10;

/// Which part of a record a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// The whole record.
    Whole,
    /// The first of several fragments.
    First,
    /// Neither the first nor the last.
    Middle,
    /// The last of several fragments.
    Last,
}

impl Fragment {
    /// The fragment of `count` frames at `index`.
    pub(crate) fn of(index: usize, count: usize) -> Fragment {
        match (index == 0, index + 1 == count) {
            (true, true) => Fragment::Whole,
            (true, false) => Fragment::First,
            (false, false) => Fragment::Middle,
            (false, true) => Fragment::Last,
        }
    }

    /// Whether a record starts with this frame.
    pub(crate) fn starts_record(self) -> bool {
        matches!(self, Fragment::Whole | Fragment::First)
    }

    /// Whether a record ends with this frame.
    pub(crate) fn ends_record(self) -> bool {
        matches!(self, Fragment::Whole | Fragment::Last)
    }

    fn flags(self) -> u8 {
        match self {
            Fragment::Whole => FLAG_FIRST | FLAG_LAST,
            Fragment::First => FLAG_FIRST,
            Fragment::Middle => 0,
            Fragment::Last => FLAG_LAST,
        }
    }

    fn from_flags(flags: u8) -> Fragment {
        match (flags & FLAG_FIRST != 0, flags & FLAG_LAST != 0) {
            (true, true) => Fragment::Whole,
            (true, false) => Fragment::First,
            (false, false) => Fragment::Middle,
            (false, true) => Fragment::Last,
        }
    }
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Opens a batch; the body is the durable point when the batch was written.
    Batch,
    /// Fills a batch up to the next aligned offset; the body is not checksummed.
    Padding,
    /// A caller's record, or a fragment of one.
    Record(RecordKind, Fragment),
}

impl FrameKind {
    fn kind_and_flags(self) -> (u16, u8) {
        match self {
            FrameKind::Batch => (KIND_BATCH, Fragment::Whole.flags()),
            FrameKind::Padding => (KIND_PADDING, Fragment::Whole.flags()),
            FrameKind::Record(kind, fragment) => (kind.value(), fragment.flags()),
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The checksum stored in the frame.
    pub(crate) crc: u32,
    /// The body length.
    pub(crate) body_len: u32,
    /// The generation of the handle that wrote the frame.
    pub(crate) generation: u32,
    /// What the frame is.
    pub(crate) kind: FrameKind,
}

impl Header {
    /// A header for a new frame; the checksum is filled in by [`put_frame`].
    pub(crate) fn new(kind: FrameKind, body_len: u32, generation: u32) -> Header {
        Header {
            crc: 0,
            body_len,
            generation,
            kind,
        }
    }

    /// The header and body length together.
    pub(crate) fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// How many body bytes the checksum covers: all of them, except for padding.
    pub(crate) fn checked_body_len(&self) -> usize {
        match self.kind {
            FrameKind::Padding => 0,
            _ => self.body_len as usize,
        }
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes`, or says why they are no header.
    /// The checksum is not checked here: it needs the body.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, &'static str> {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let (kind, flags, version) = (
            u16::from_le_bytes([bytes[12], bytes[13]]),
            bytes[14],
            bytes[15],
        );
        if version != FORMAT_VERSION {
            return Err("no frame: unknown format version");
        }
        if flags & !(FLAG_FIRST | FLAG_LAST) != 0 {
            return Err("no frame: reserved flag bits are set");
        }
        let body_len = word(4);
        if body_len > FRAME_BODY_MAX {
            return Err("no frame: the body length is beyond the format's limit");
        }
        let fragment = Fragment::from_flags(flags);
        let kind = match kind {
            KIND_BATCH if body_len as usize == BATCH_FRAME_LEN - HEADER_LEN => FrameKind::Batch,
            KIND_BATCH => return Err("no frame: a batch header of the wrong length"),
            KIND_PADDING => FrameKind::Padding,
            kind if kind > RecordKind::MAX => return Err("no frame: a reserved kind"),
            kind => FrameKind::Record(RecordKind::from_frame(kind), fragment),
        };
        if !matches!(kind, FrameKind::Record(..)) && fragment != Fragment::Whole {
            return Err("no frame: a batch header or padding marked as a fragment");
        }
        Ok(Header {
            crc: word(0),
            body_len,
            generation: word(8),
            kind,
        })
    }

    /// The checksum of this frame at device offset `offset`, given the checksum of the
    /// covered body bytes (`crc32c(body)`, 0 for an empty body).
    pub(crate) fn checksum(&self, offset: u64, body_crc: u32) -> u32 {
        frame_checksum(&self.encode(), offset, body_crc)
    }

    /// Whether the stored checksum matches `body` (the covered bytes) at `offset`.
    pub(crate) fn verify(&self, offset: u64, body: &[u8]) -> bool {
        self.crc == self.checksum(offset, crc32c::crc32c(body))
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let (kind, flags) = self.kind.kind_and_flags();
        let mut bytes = [0; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.crc.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.body_len.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.generation.to_le_bytes());
        bytes[12..14].copy_from_slice(&kind.to_le_bytes());
        bytes[14] = flags;
        bytes[15] = FORMAT_VERSION;
        bytes
    }
}

/// The checksum rule of every version: over the covered body, the header after its checksum
/// field, and the frame's device offset.
pub(crate) fn frame_checksum(header: &[u8; HEADER_LEN], offset: u64, body_crc: u32) -> u32 {
    let crc = crc32c::crc32c_append(body_crc, &header[4..]);
    crc32c::crc32c_append(crc, &offset.to_le_bytes())
}

/// A header of a version newer than this one: its version and how many body bytes its
/// checksum covers (all, except for padding), for [`newer_frame_intact`]. `None` for any
/// other header.
pub(crate) fn newer_version(bytes: &[u8; HEADER_LEN]) -> Option<(u8, usize)> {
    let version = bytes[15];
    let body_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version <= FORMAT_VERSION || body_len > FRAME_BODY_MAX {
        return None;
    }
    let padding = u16::from_le_bytes([bytes[12], bytes[13]]) == KIND_PADDING;
    Some((version, if padding { 0 } else { body_len as usize }))
}

/// Whether a header from [`newer_version`] and the body bytes its checksum covers are intact
/// at device offset `offset`.
pub(crate) fn newer_frame_intact(header: &[u8; HEADER_LEN], offset: u64, body: &[u8]) -> bool {
    let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    stored == frame_checksum(header, offset, crc32c::crc32c(body))
}

/// Appends a frame that will sit at device offset `offset` to `out`: its header, with the
/// checksum computed from `body_crc` (`crc32c` of the covered body bytes), then `body`.
pub(crate) fn put_frame(
    out: &mut Vec<u8>,
    offset: u64,
    mut header: Header,
    body: &[u8],
    body_crc: u32,
) {
    header.crc = header.checksum(offset, body_crc);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
}

/// The batch header frame at `offset`, saying that everything before `durable` is durable.
pub(crate) fn batch_header(offset: u64, generation: u32, durable: u64) -> Vec<u8> {
    let body = durable.to_le_bytes();
    let header = Header::new(FrameKind::Batch, body.len() as u32, generation);
    let mut out = Vec::with_capacity(BATCH_FRAME_LEN);
    put_frame(&mut out, offset, header, &body, crc32c::crc32c(&body));
    out
}

/// The durable point a batch header's body states.
pub(crate) fn batch_durable(body: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(body.try_into().ok()?))
}

/// How many bytes of padding close a batch ending at `end`: none when `end` is aligned,
/// otherwise enough to reach an aligned offset with room for the padding frame's header.
pub(crate) fn padding_len(end: u64, alignment: u64) -> u64 {
    let misalignment = end % alignment;
    if misalignment == 0 {
        return 0;
    }
    let mut gap = alignment - misalignment;
    while gap < HEADER_LEN as u64 {
        gap += alignment;
    }
    gap
}

/// Appends a padding frame of `len` bytes (from [`padding_len`], non-zero) at `offset`.
pub(crate) fn put_padding(out: &mut Vec<u8>, offset: u64, generation: u32, len: u64) {
    let body_len = len - HEADER_LEN as u64;
    let header = Header::new(FrameKind::Padding, body_len as u32, generation);
    put_frame(out, offset, header, &[], 0);
    out.resize(out.len() + body_len as usize, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u16, fragment: Fragment) -> FrameKind {
        FrameKind::Record(RecordKind::new(kind).expect("a user kind"), fragment)
    }

    /// A frame reads back as written, and only at the offset it was written for.
    #[test]
    fn frame_round_trips_and_is_bound_to_its_offset() {
        let mut out = Vec::new();
        let header = Header::new(record(9, Fragment::First), 5, 3);
        put_frame(&mut out, 4096, header, b"hello", crc32c::crc32c(b"hello"));

        let decoded =
            Header::decode(out[..HEADER_LEN].try_into().expect("16 bytes")).expect("a header");
        assert_eq!(decoded.kind, record(9, Fragment::First));
        assert_eq!((decoded.body_len, decoded.generation), (5, 3));
        assert!(decoded.verify(4096, &out[HEADER_LEN..]));
        assert!(!decoded.verify(4097, &out[HEADER_LEN..]));
        assert!(!decoded.verify(4096, b"hellO"));
    }

    /// Zeroed space, unknown versions and impossible lengths are no frames.
    #[test]
    fn decode_refuses_what_no_writer_produces() {
        assert!(Header::decode(&[0; HEADER_LEN]).is_err());

        let mut bytes = [0; HEADER_LEN];
        bytes[15] = FORMAT_VERSION;
        bytes[4..8].copy_from_slice(&(FRAME_BODY_MAX + 1).to_le_bytes());
        assert!(Header::decode(&bytes).is_err());

        bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
        bytes[12..14].copy_from_slice(&KIND_BATCH.to_le_bytes());
        bytes[14] = FLAG_FIRST | FLAG_LAST;
        assert!(
            Header::decode(&bytes).is_err(),
            "a batch header is 8 bytes of body"
        );

        bytes[14] = 0b100 | FLAG_FIRST;
        bytes[12..14].copy_from_slice(&7u16.to_le_bytes());
        assert!(Header::decode(&bytes).is_err(), "reserved flags");
    }

    /// Padding always ends a batch on an aligned offset and always has room for its header.
    #[test]
    fn padding_reaches_the_next_aligned_offset() {
        for alignment in [1u64, 8, 64, 512, 4096] {
            for end in [0u64, 1, 15, 16, 17, 500, 511, 512, 4095, 10_000] {
                let len = padding_len(end, alignment);
                assert_eq!(
                    (end + len) % alignment,
                    0,
                    "end {end} alignment {alignment}"
                );
                assert!(len == 0 || len >= HEADER_LEN as u64);
                assert!(len < alignment + HEADER_LEN as u64);
            }
        }
    }

    /// Padding verifies without its body, so the reader never needs to fetch it.
    #[test]
    fn padding_checksum_covers_the_header_only() {
        let mut out = Vec::new();
        put_padding(&mut out, 100, 2, 60);
        assert_eq!(out.len(), 60);
        let header =
            Header::decode(out[..HEADER_LEN].try_into().expect("16 bytes")).expect("a header");
        assert_eq!(header.kind, FrameKind::Padding);
        assert_eq!(header.checked_body_len(), 0);
        assert!(header.verify(100, &[]));
    }

    /// A batch header verifies at its offset and states the durable point it was given.
    #[test]
    fn batch_header_carries_its_durable_point() {
        let bytes = batch_header(512, 4, 300);
        assert_eq!(bytes.len(), BATCH_FRAME_LEN);
        let header =
            Header::decode(bytes[..HEADER_LEN].try_into().expect("16 bytes")).expect("a header");
        assert_eq!(header.kind, FrameKind::Batch);
        assert!(header.verify(512, &bytes[HEADER_LEN..]));
        assert_eq!(batch_durable(&bytes[HEADER_LEN..]), Some(300));
    }

    /// A frame of a newer version, intact, is recognised as such; with a byte changed, or
    /// at another offset, it is not.
    #[test]
    fn an_intact_frame_of_a_newer_version_is_recognised() {
        let mut out = Vec::new();
        let header = Header::new(record(3, Fragment::Whole), 4, 1);
        put_frame(&mut out, 512, header, b"body", crc32c::crc32c(b"body"));
        let mut bytes: [u8; HEADER_LEN] = out[..HEADER_LEN].try_into().expect("16 bytes");
        assert_eq!(newer_version(&bytes), None, "this version's own frame");

        bytes[15] = FORMAT_VERSION + 1;
        let crc = frame_checksum(&bytes, 512, crc32c::crc32c(b"body"));
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(newer_version(&bytes), Some((FORMAT_VERSION + 1, 4)));
        assert!(newer_frame_intact(&bytes, 512, b"body"));
        assert!(!newer_frame_intact(&bytes, 1024, b"body"));
        assert!(!newer_frame_intact(&bytes, 512, b"bodY"));
    }

    /// A split record's frames say first, middle, last; the flags round trip.
    #[test]
    fn fragments_number_a_split_record() {
        assert_eq!(Fragment::of(0, 1), Fragment::Whole);
        let three: Vec<_> = (0..3).map(|i| Fragment::of(i, 3)).collect();
        assert_eq!(three, [Fragment::First, Fragment::Middle, Fragment::Last]);
        for fragment in three {
            assert_eq!(Fragment::from_flags(fragment.flags()), fragment);
        }
    }
}
