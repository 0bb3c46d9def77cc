//! The layout options of a file device: its alignment and its segment size.
//!
//! Both are fixed when a directory is created and recorded in its metadata file; reopening
//! with other values is an [`Error::LayoutMismatch`], because the same bytes would then be
//! looked for in other files.

use crate::Error;

/// The default write granularity: the page size of the kernel's cache and the sector size of
/// most disks, so no two writes ever share a sector.
pub const ALIGNMENT_DEFAULT: u64 = 4096;

/// The default segment file size, 64 MiB: large enough that a flush touches one or two files,
/// small enough that truncation gives space back in useful steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// How a [`FileDevice`](crate::FileDevice) lays its bytes out in files.
///
/// ```
/// use netherite_storage_file::FileDeviceOptions;
///
/// let options = FileDeviceOptions::default().with_segment_bytes(1 << 20);
/// assert_eq!(options.alignment, 4096);
/// assert_eq!(options.segment_bytes, 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDeviceOptions {
    /// The write granularity in bytes, a power of two ([`ALIGNMENT_DEFAULT`]).
    pub alignment: u64,
    /// The size of one segment file, a multiple of the alignment ([`SEGMENT_BYTES_DEFAULT`]).
    pub segment_bytes: u64,
}

impl Default for FileDeviceOptions {
    fn default() -> FileDeviceOptions {
        FileDeviceOptions {
            alignment: ALIGNMENT_DEFAULT,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }
}

impl FileDeviceOptions {
    /// These options with segment files of `segment_bytes` bytes.
    pub fn with_segment_bytes(self, segment_bytes: u64) -> FileDeviceOptions {
        FileDeviceOptions {
            segment_bytes,
            ..self
        }
    }

    /// These options with writes aligned to `alignment` bytes.
    pub fn with_alignment(self, alignment: u64) -> FileDeviceOptions {
        FileDeviceOptions { alignment, ..self }
    }

    /// Checks the rules on the fields.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.alignment.is_power_of_two() {
            return Err(Error::InvalidOptions(format!(
                "alignment {} is not a power of two",
                self.alignment
            )));
        }
        if self.segment_bytes == 0 || !self.segment_bytes.is_multiple_of(self.alignment) {
            return Err(Error::InvalidOptions(format!(
                "segment_bytes {} is not a positive multiple of the alignment {}",
                self.segment_bytes, self.alignment
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid, and each rule on the fields is enforced with a typed error.
    #[test]
    fn options_are_checked() {
        assert!(FileDeviceOptions::default().validate().is_ok());
        let bad = [
            FileDeviceOptions::default().with_alignment(0),
            FileDeviceOptions::default().with_alignment(3000),
            FileDeviceOptions::default().with_segment_bytes(0),
            FileDeviceOptions::default().with_segment_bytes(4096 + 512),
        ];
        for options in bad {
            let error = options.validate().unwrap_err();
            assert!(matches!(error, Error::InvalidOptions(_)), "{options:?}");
        }
    }
}
