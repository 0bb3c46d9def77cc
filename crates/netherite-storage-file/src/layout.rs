//! Where the bytes of a device live: the files of its directory, and how a device range
//! splits over segment files.
//!
//! ```text
//!  device offsets: 0            S            2S           3S
//!                  +------------+------------+------------+--
//!                  | segment 0  | segment 1  | segment 2  |
//!                  +------------+------------+------------+--
//!  directory:      segment-000000000000   segment-000000000001   ...   meta   LOCK
//! ```
//!
//! Segment `i` holds device bytes `[i * S, (i + 1) * S)` at file offsets `[0, S)`. The highest
//! file is created by the first write that lands in it and may be shorter than `S`; every
//! segment from the truncation point below it exists at full length (sparse where never
//! written), so a missing or short one is damage. What a file does not hold reads as zeros.
//! Files named otherwise are left alone, so a device may live at the root of a volume next to
//! `lost+found`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::Error;

/// The lock file whose exclusive lock marks the owner of the directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

const SEGMENT_PREFIX: &str = "segment-";

/// The file name of segment `index`.
pub(crate) fn segment_name(index: u64) -> String {
    format!("{SEGMENT_PREFIX}{index:012}")
}

/// The segment index a file name stands for, if it names a segment.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The part of a device range that falls into one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The segment's index.
    pub(crate) segment: u64,
    /// Where the piece starts in the segment file.
    pub(crate) file_offset: u64,
    /// Where the piece starts in the caller's buffer.
    pub(crate) at: usize,
    /// The piece's length in bytes.
    pub(crate) len: usize,
}

impl Piece {
    /// The device offset the piece starts at.
    pub(crate) fn device_offset(&self, segment_bytes: u64) -> u64 {
        self.segment * segment_bytes + self.file_offset
    }
}

/// The pieces of device range `[offset, offset + len)`, in order; the caller checked that the
/// range does not overflow.
pub(crate) fn pieces(offset: u64, len: usize, segment_bytes: u64) -> impl Iterator<Item = Piece> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at == len {
            return None;
        }
        let device_offset = offset + at as u64;
        let file_offset = device_offset % segment_bytes;
        let room = segment_bytes - file_offset;
        let piece_len = usize::try_from(room).map_or(len - at, |room| room.min(len - at));
        let piece = Piece {
            segment: device_offset / segment_bytes,
            file_offset,
            at,
            len: piece_len,
        };
        at += piece_len;
        Some(piece)
    })
}

/// A segment file found in the directory.
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    /// The segment's index.
    pub(crate) index: u64,
    /// The file.
    pub(crate) path: PathBuf,
    /// The file's length in bytes.
    pub(crate) len: u64,
}

/// The segment files of `dir`, by index.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, Error> {
    let entries = fs::read_dir(dir).map_err(|source| directory_error(dir, source))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| directory_error(dir, source))?;
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        let path = entry.path();
        let metadata = entry
            .metadata()
            .map_err(|source| Error::io("stat", &path, 0, source))?;
        let len = metadata.len();
        segments.push(SegmentFile { index, path, len });
    }
    segments.sort_by_key(|segment| segment.index);
    Ok(segments)
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    crate::segments::count_sync();
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| Error::io("fsync directory", dir, 0, source))
}

fn directory_error(dir: &Path, source: std::io::Error) -> Error {
    Error::Directory {
        path: dir.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Segment names round-trip, and names that merely look alike are not segments.
    #[test]
    fn segment_names() {
        assert_eq!(segment_name(7), "segment-000000000007");
        for index in [0, 7, 999_999_999_999, 1 << 40, u64::MAX] {
            assert_eq!(parse_segment_name(&segment_name(index)), Some(index));
        }
        for name in [
            "segment-",
            "segment-12a",
            "segment--1",
            "meta",
            "LOCK",
            "lost+found",
        ] {
            assert_eq!(parse_segment_name(name), None, "{name}");
        }
    }

    /// A write that spans three segments splits at each boundary.
    #[test]
    fn a_range_splits_at_segment_boundaries() {
        let split: Vec<Piece> = pieces(4096, 3 * 8192, 8192).collect();
        let expected = [
            (0, 4096, 0, 4096),
            (1, 0, 4096, 8192),
            (2, 0, 12288, 8192),
            (3, 0, 20480, 4096),
        ];
        let expected: Vec<Piece> = expected
            .into_iter()
            .map(|(segment, file_offset, at, len)| Piece {
                segment,
                file_offset,
                at,
                len,
            })
            .collect();
        assert_eq!(split, expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Pieces tile the range exactly, in order, each inside one segment.
        #[test]
        fn pieces_tile_the_range(
            offset in 0u64..1 << 40,
            len in 0usize..100_000,
            segment_bytes in 1u64..50_000,
        ) {
            let mut next = 0usize;
            for piece in pieces(offset, len, segment_bytes) {
                prop_assert_eq!(piece.at, next);
                prop_assert!(piece.len > 0);
                prop_assert!(piece.file_offset + piece.len as u64 <= segment_bytes);
                prop_assert_eq!(piece.device_offset(segment_bytes), offset + piece.at as u64);
                next += piece.len;
            }
            prop_assert_eq!(next, len);
        }
    }
}
