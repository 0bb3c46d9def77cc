//! Opening a device directory: take the lock, read or create the metadata, check every segment
//! file, and recover the size.
//!
//! The size is not stored: it is the end of the highest non-empty segment file, rounded up to
//! the alignment (a crash may leave a file length between sectors; the rest of that sector
//! reads as zeros, which rule 6 of the contract allows). A truncation writes the new start
//! into the metadata before it deletes segments, so segments found wholly below the start
//! were left by a truncation that a crash cut short; they are deleted here.

use std::fs;
use std::path::Path;

use crate::layout::{self, SegmentFile};
use crate::lock::DirLock;
use crate::meta::{self, META_FILE, Meta};
use crate::{Error, FileDeviceOptions};

/// A directory opened for one owner.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The lock that makes this owner the only one.
    pub(crate) lock: DirLock,
    /// The truncation point.
    pub(crate) start: u64,
    /// The recovered size.
    pub(crate) size: u64,
}

/// Opens (creating if needed) the device directory `dir` laid out as `options` say.
pub(crate) fn open_dir(dir: &Path, options: &FileDeviceOptions) -> Result<Opened, Error> {
    options.validate()?;
    fs::create_dir_all(dir).map_err(|source| Error::Directory {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock = DirLock::acquire(dir)?;

    let segments = layout::list_segments(dir)?;
    let meta = load_meta(dir, options, segments.len())?;
    let segments = remove_leftovers(meta.start / meta.segment_bytes, segments)?;
    let size = recover_size(&segments, options)?.max(meta.start);
    meta::reserve_spare(dir);
    Ok(Opened {
        lock,
        start: meta.start,
        size,
    })
}

/// The directory's metadata; a directory without segments gets a fresh one.
fn load_meta(dir: &Path, options: &FileDeviceOptions, segments: usize) -> Result<Meta, Error> {
    if let Some(meta) = meta::read(dir)? {
        check_layout(dir, &meta, options)?;
        return Ok(meta);
    }
    if segments > 0 {
        return Err(Error::Corrupt {
            path: dir.join(META_FILE),
            offset: 0,
            reason: format!("missing, but the directory holds {segments} segment files"),
        });
    }
    let meta = Meta {
        alignment: options.alignment,
        segment_bytes: options.segment_bytes,
        start: 0,
    };
    meta::write(dir, &meta)?;
    tracing::info!(dir = %dir.display(), ?options, "file device directory created");
    Ok(meta)
}

fn check_layout(dir: &Path, stored: &Meta, options: &FileDeviceOptions) -> Result<(), Error> {
    let fields = [
        ("alignment", stored.alignment, options.alignment),
        ("segment_bytes", stored.segment_bytes, options.segment_bytes),
    ];
    for (field, stored, requested) in fields {
        if stored != requested {
            return Err(Error::LayoutMismatch {
                dir: dir.to_path_buf(),
                field,
                stored,
                requested,
            });
        }
    }
    Ok(())
}

/// Deletes the segments below `first_kept`, left by an interrupted truncation; returns the rest.
fn remove_leftovers(
    first_kept: u64,
    segments: Vec<SegmentFile>,
) -> Result<Vec<SegmentFile>, Error> {
    let (doomed, kept): (Vec<_>, Vec<_>) = segments
        .into_iter()
        .partition(|segment| segment.index < first_kept);
    for segment in &doomed {
        fs::remove_file(&segment.path)
            .map_err(|source| Error::io("remove", &segment.path, 0, source))?;
        tracing::warn!(
            path = %segment.path.display(),
            "removed a segment an interrupted truncation left below the start"
        );
    }
    Ok(kept)
}

/// The end of the highest non-empty segment, after checking that no file outgrew its segment.
fn recover_size(segments: &[SegmentFile], options: &FileDeviceOptions) -> Result<u64, Error> {
    let mut size = 0;
    for segment in segments {
        if segment.len > options.segment_bytes {
            return Err(Error::Corrupt {
                path: segment.path.clone(),
                offset: options.segment_bytes,
                reason: format!(
                    "segment file is {} bytes, longer than the segment size {}",
                    segment.len, options.segment_bytes
                ),
            });
        }
        if segment.len == 0 {
            continue;
        }
        let held = segment.len.next_multiple_of(options.alignment);
        let end = segment
            .index
            .checked_mul(options.segment_bytes)
            .and_then(|base| base.checked_add(held))
            .ok_or_else(|| Error::Corrupt {
                path: segment.path.clone(),
                offset: 0,
                reason: "segment index is beyond the largest device offset".into(),
            })?;
        size = size.max(end);
    }
    Ok(size)
}
