//! The metadata file: the layout a directory was created with, and its truncation point.
//!
//! ```text
//!  0        8         12          20              28      36      40
//!  +--------+---------+-----------+---------------+-------+-------+
//!  | magic  | version | alignment | segment_bytes | start | crc32c|
//!  +--------+---------+-----------+---------------+-------+-------+
//! ```
//!
//! Integers are little-endian; the checksum covers the 36 bytes before it. The file is always
//! rewritten whole and atomically (a temporary file, fsync, rename, fsync of the directory),
//! so a crash leaves the old version or the new one; the checksum catches what the file system
//! does not.
//!
//! The temporary file is kept in reserve between rewrites ([`reserve_spare`]) and overwritten
//! in place, because truncation rewrites this file and truncation is what frees space on a
//! full disk: it must not need a fresh block itself. (A copy-on-write file system allocates on
//! every write anyway; there a full disk needs an operator.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{Error, layout};

/// The metadata file's name.
pub(crate) const META_FILE: &str = "meta";

const TEMP_FILE: &str = "meta.tmp";
const MAGIC: &[u8; 8] = b"NTHRFDEV";
const VERSION: u32 = 1;
const META_LEN: usize = 40;
const CRC_AT: usize = 36;

/// What the metadata file records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The write granularity the directory was created with.
    pub(crate) alignment: u64,
    /// The segment size the directory was created with.
    pub(crate) segment_bytes: u64,
    /// The truncation point: bytes below it are gone.
    pub(crate) start: u64,
}

impl Meta {
    fn encode(&self) -> [u8; META_LEN] {
        let mut bytes = [0u8; META_LEN];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.alignment.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.segment_bytes.to_le_bytes());
        bytes[28..36].copy_from_slice(&self.start.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Meta, Error> {
        let corrupt = |offset: usize, reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() != META_LEN {
            let reason = format!("file is {} bytes, expected {META_LEN}", bytes.len());
            return Err(corrupt(bytes.len().min(META_LEN), reason));
        }
        if &bytes[0..8] != MAGIC {
            return Err(corrupt(
                0,
                "not a netherite file device metadata file".into(),
            ));
        }
        let crc = u32::from_le_bytes(field(bytes, CRC_AT));
        if crc != crc32c::crc32c(&bytes[..CRC_AT]) {
            return Err(corrupt(CRC_AT, "checksum mismatch".into()));
        }
        let version = u32::from_le_bytes(field(bytes, 8));
        if version != VERSION {
            return Err(corrupt(8, format!("unsupported format version {version}")));
        }
        Ok(Meta {
            alignment: u64::from_le_bytes(field(bytes, 12)),
            segment_bytes: u64::from_le_bytes(field(bytes, 20)),
            start: u64::from_le_bytes(field(bytes, 28)),
        })
    }
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("decode checked the length, and every field lies inside it")
}

/// The metadata of `dir`, or `None` when the directory has no metadata file yet.
pub(crate) fn read(dir: &Path) -> Result<Option<Meta>, Error> {
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(bytes) => Meta::decode(&path, &bytes).map(Some),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io("read", &path, 0, error)),
    }
}

/// Replaces the metadata of `dir` with `meta`, atomically and durably, through the spare.
pub(crate) fn write(dir: &Path, meta: &Meta) -> Result<(), Error> {
    let temp = dir.join(TEMP_FILE);
    let written = spare(&temp).and_then(|file| {
        file.write_all_at(&meta.encode(), 0)?;
        file.set_len(META_LEN as u64)?;
        crate::segments::count_sync();
        file.sync_all()
    });
    written.map_err(|source| Error::io("write", &temp, 0, source))?;

    let path = dir.join(META_FILE);
    fs::rename(&temp, &path).map_err(|source| Error::io("rename", &path, 0, source))?;
    layout::sync_dir(dir)
}

/// Makes sure the spare file for the next rewrite exists and holds its bytes, while there is
/// room for it. Failing is not fatal (the next rewrite creates it), so it is only logged.
pub(crate) fn reserve_spare(dir: &Path) {
    let temp = dir.join(TEMP_FILE);
    let reserved = spare(&temp).and_then(|file| {
        if file.metadata()?.len() < META_LEN as u64 {
            file.write_all_at(&[0; META_LEN], 0)?;
        }
        Ok(())
    });
    if let Err(error) = reserved {
        tracing::warn!(path = %temp.display(), %error, "cannot reserve the metadata spare");
    }
}

/// Opens the spare for writing in place, creating it if it is missing.
fn spare(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: Meta = Meta {
        alignment: 4096,
        segment_bytes: 1 << 26,
        start: 123 << 12,
    };

    /// Metadata round-trips through its encoding.
    #[test]
    fn round_trip() {
        let path = Path::new("/d/meta");
        assert_eq!(Meta::decode(path, &META.encode()).unwrap(), META);
    }

    /// Each kind of damage is reported with the file and the offset of the damaged field.
    #[test]
    fn damage_names_file_and_offset() {
        let path = Path::new("/d/meta");
        let good = META.encode();
        let mut flipped = good;
        flipped[30] ^= 1;
        let mut foreign = good;
        foreign[0] = b'X';
        let cases: [(&[u8], u64); 4] = [
            (&good[..20], 20),
            (&flipped, 36),
            (&foreign, 0),
            (&[good.as_slice(), &[0]].concat(), 40),
        ];
        for (bytes, expected_offset) in cases {
            match Meta::decode(path, bytes) {
                Err(Error::Corrupt {
                    path: p, offset, ..
                }) => {
                    assert_eq!((p.as_path(), offset), (path, expected_offset));
                }
                other => panic!("expected Corrupt at {expected_offset}, got {other:?}"),
            }
        }
    }

    /// A version this code does not know is refused even with a valid checksum.
    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = META.encode();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        let error = Meta::decode(Path::new("/d/meta"), &bytes).unwrap_err();
        assert!(matches!(error, Error::Corrupt { offset: 8, .. }), "{error}");
    }
}
