//! Opening a device directory: take the fence, read or create the metadata, check every
//! segment file, and recover the size.
//!
//! The fence is the directory lock, taken first, or a lease given by the caller, under whose
//! guard the whole open runs: it writes metadata and deletes leftovers, which only the owner
//! may do.
//!
//! The size is not stored: it is the end of the highest non-empty segment file, rounded up to
//! the alignment (a crash may leave a file length between sectors; the rest of that sector
//! reads as zeros, which rule 6 of the contract allows). A truncation writes the new start
//! into the metadata before it deletes segments, so segments found wholly below the start
//! were left by a truncation that a crash cut short; they are deleted here.
//!
//! Every segment from the start up to the highest file exists at full length (`segments`
//! keeps that rule), so a missing or short one among them is damage: the open fails with
//! [`Error::Corrupt`] naming the file, rather than letting its bytes read as zeros. A cut in
//! the highest file cannot be told from a crash: the layer above judges that from its records.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fence::Fence;
use crate::layout::{self, SegmentFile};
use crate::lock::DirLock;
use crate::meta::{self, META_FILE, Meta};
use crate::segments::{Found, missing_segment};
use crate::{Error, FileDeviceOptions, Lease};

/// A directory opened for one owner.
#[derive(Debug)]
pub(crate) struct Opened {
    /// What makes this owner the only one.
    pub(crate) fence: Fence,
    /// The truncation point.
    pub(crate) start: u64,
    /// The recovered size.
    pub(crate) size: u64,
    /// What the segment files need to know of the directory.
    pub(crate) found: Found,
}

/// Opens (creating if needed) the device directory `dir` laid out as `options` say, fenced by
/// `lease` if given, else by the directory lock.
pub(crate) fn open_dir(
    dir: &Path,
    options: &FileDeviceOptions,
    lease: Option<Arc<Lease>>,
) -> Result<Opened, Error> {
    options.validate()?;
    let Some(lease) = lease else {
        create_dir(dir)?;
        let fence = Fence::Dir(DirLock::acquire(dir)?);
        return load(dir, options, fence);
    };
    let fence = Fence::Lease(Arc::clone(&lease));
    lease.guard("open", || {
        create_dir(dir)?;
        load(dir, options, fence)
    })
}

/// Reads the directory as its owner: removes what an interrupted truncation left, checks the
/// segments, and recovers the size.
fn load(dir: &Path, options: &FileDeviceOptions, fence: Fence) -> Result<Opened, Error> {
    let segments = layout::list_segments(dir)?;
    let meta = load_meta(dir, options, segments.len())?;
    let first_kept = meta.start / meta.segment_bytes;
    let segments = remove_leftovers(first_kept, segments)?;
    check_complete(dir, first_kept, &segments, options)?;
    let size = recover_size(&segments, options)?.max(meta.start);
    meta::reserve_spare(dir);
    let dir_meta = fs::metadata(dir).map_err(|source| directory_error(dir, source))?;
    let found = Found {
        first_kept,
        highest: segments.last().map(|segment| segment.index),
        dir_id: (dir_meta.dev(), dir_meta.ino()),
    };
    Ok(Opened {
        fence,
        start: meta.start,
        size,
        found,
    })
}

/// Creates `dir` and its missing parents, durably: each new directory's entry in its parent
/// is synced, so a crash cannot take the whole device away with it.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|source| directory_error(dir, source))?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        layout::sync_dir(parent)?;
    }
    Ok(())
}

fn directory_error(dir: &Path, source: std::io::Error) -> Error {
    Error::Directory {
        path: dir.to_path_buf(),
        source,
    }
}

/// Checks that every segment from `first_kept` below the highest is there at full length.
fn check_complete(
    dir: &Path,
    first_kept: u64,
    segments: &[SegmentFile],
    options: &FileDeviceOptions,
) -> Result<(), Error> {
    let Some(highest) = segments.last() else {
        return Ok(());
    };
    let mut present = segments.iter().peekable();
    for index in first_kept..highest.index {
        let Some(segment) = present.next_if(|segment| segment.index == index) else {
            let path = dir.join(layout::segment_name(index));
            return Err(missing_segment(path, index, options.segment_bytes));
        };
        if segment.len < options.segment_bytes {
            return Err(Error::Corrupt {
                path: segment.path.clone(),
                offset: segment.len,
                reason: format!(
                    "the segment file is cut short: {} bytes where every segment below the \
                     highest ({}) holds {}",
                    segment.len, highest.index, options.segment_bytes
                ),
            });
        }
    }
    Ok(())
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
