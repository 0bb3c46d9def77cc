//! Where a device's bytes live: the blob names under its prefix, and how a range of the device
//! splits into pieces, each inside one segment and small enough for one request.
//!
//! ```text
//!  prefix "hub/p03/log/"
//!  ├── meta                          block blob: layout, epoch, truncation point, segments
//!  ├── segment-0000000000000000      page blob: device bytes [0, S)
//!  ├── segment-0000000000000001      page blob: device bytes [S, 2S)
//!  └── ...
//! ```
//!
//! Segment numbers are 16 hex digits, so that names sort in device order.

use crate::Error;
use crate::options::PUT_BYTES_MAX;

/// The name of the metadata blob under the prefix.
const META_NAME: &str = "meta";

/// What every segment blob's name starts with, after the prefix.
const SEGMENT_NAME: &str = "segment-";

/// The longest prefix accepted, leaving room under the service's 1,024-character name limit.
pub(crate) const PREFIX_BYTES_MAX: usize = 512;

/// The blob names and segment geometry of one device.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    prefix: String,
    segment_bytes: u64,
}

/// A part of a device range that one request serves: inside one segment, at most
/// [`PUT_BYTES_MAX`] long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The segment's number.
    pub(crate) segment: u64,
    /// Where the piece starts inside the segment.
    pub(crate) offset: u64,
    /// How many bytes it spans.
    pub(crate) len: u64,
    /// Where the piece starts in the range it was cut from.
    pub(crate) at: u64,
}

impl Layout {
    /// The layout of the device under `prefix`, whose segments hold `segment_bytes` each.
    /// The prefix is used as given (`hub/p03/log/` puts the blobs in a virtual folder); it
    /// must be a valid start of a blob name.
    pub(crate) fn new(prefix: &str, segment_bytes: u64) -> Result<Layout, Error> {
        let reason = if prefix.len() > PREFIX_BYTES_MAX {
            "is longer than 512 bytes"
        } else if prefix.starts_with('/') {
            "starts with a slash"
        } else if prefix.chars().any(|c| c.is_control() || c == '\\') {
            "holds a control character or a backslash"
        } else {
            return Ok(Layout {
                prefix: prefix.to_string(),
                segment_bytes,
            });
        };
        Err(Error::InvalidOptions(format!(
            "blob prefix {prefix:?} {reason}"
        )))
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The metadata blob's name.
    pub(crate) fn meta_blob(&self) -> String {
        format!("{}{META_NAME}", self.prefix)
    }

    /// The name of segment `index`.
    pub(crate) fn segment_blob(&self, index: u64) -> String {
        format!("{}{SEGMENT_NAME}{index:016x}", self.prefix)
    }

    /// The segment number a blob name stands for, if it is one of this device's segments.
    pub(crate) fn segment_index(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(&self.prefix)?
            .strip_prefix(SEGMENT_NAME)?;
        if digits.len() != 16 {
            return None;
        }
        u64::from_str_radix(digits, 16).ok()
    }

    /// The segment holding device offset `offset`.
    pub(crate) fn segment_of(&self, offset: u64) -> u64 {
        offset / self.segment_bytes
    }

    /// The pieces of the device range `[offset, offset + len)`, in order. The caller has
    /// checked that the range does not overflow.
    pub(crate) fn pieces(&self, offset: u64, len: u64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < len {
            let device_offset = offset + at;
            let inside = device_offset % self.segment_bytes;
            let piece_len = (len - at)
                .min(self.segment_bytes - inside)
                .min(PUT_BYTES_MAX);
            pieces.push(Piece {
                segment: device_offset / self.segment_bytes,
                offset: inside,
                len: piece_len,
                at,
            });
            at += piece_len;
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Names sort in device order and read back to their numbers; other blobs are not segments.
    #[test]
    fn names_round_trip() {
        let layout = Layout::new("hub/p03/log/", 1 << 30).unwrap();
        assert_eq!(layout.meta_blob(), "hub/p03/log/meta");
        assert_eq!(
            layout.segment_blob(10),
            "hub/p03/log/segment-000000000000000a"
        );
        assert!(layout.segment_blob(9) < layout.segment_blob(10));
        assert_eq!(
            layout.segment_index(&layout.segment_blob(u64::MAX)),
            Some(u64::MAX)
        );
        for other in [
            "hub/p03/log/meta",
            "hub/p04/log/segment-0000000000000001",
            "x",
        ] {
            assert_eq!(layout.segment_index(other), None, "{other}");
        }
        for bad in ["/abs/", "a\\b/", "tab\t/"] {
            assert!(Layout::new(bad, 512).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Pieces tile the range exactly, in order; none crosses a segment boundary or exceeds
        /// the per-request limit, and each is as long as those two bounds allow.
        #[test]
        fn pieces_tile_the_range(
            segment_pages in 1u64..20_000,
            offset_pages in 0u64..100_000,
            len_pages in 0u64..40_000,
        ) {
            let layout = Layout::new("p/", segment_pages * 512).unwrap();
            let (offset, len) = (offset_pages * 512, len_pages * 512);
            let pieces = layout.pieces(offset, len);

            let mut next = 0;
            for piece in &pieces {
                prop_assert_eq!(piece.at, next);
                let device_offset = offset + piece.at;
                prop_assert_eq!(piece.segment, layout.segment_of(device_offset));
                prop_assert_eq!(piece.offset, device_offset % layout.segment_bytes());
                prop_assert!(piece.len > 0 && piece.len <= PUT_BYTES_MAX);
                prop_assert!(piece.offset + piece.len <= layout.segment_bytes());
                let room = (layout.segment_bytes() - piece.offset).min(PUT_BYTES_MAX);
                prop_assert!(piece.len == room || piece.at + piece.len == len);
                prop_assert_eq!(piece.len % 512, 0);
                next += piece.len;
            }
            prop_assert_eq!(next, len);
        }
    }
}
