//! The options of a page-blob device: its layout, its lease, and how hard it tries.
//!
//! The segment size is fixed when a device is created and recorded in its metadata blob;
//! reopening with another is an [`Error::LayoutMismatch`]. Everything else may change
//! between opens.

use std::time::Duration;

use crate::Error;

/// The page size of page blobs: every write is a whole number of 512-byte pages.
pub const ALIGNMENT: u64 = 512;

/// The default segment size, 1 GiB: page blobs are sparse, so a large segment costs nothing
/// until written, and truncation gives space back in 1 GiB steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;

/// The most bytes the service takes in one put-pages request (4 MiB); longer writes are sent
/// as several.
pub const PUT_BYTES_MAX: u64 = 4 << 20;

/// The largest segment a page blob can hold (8 TiB, the service's page-blob limit).
pub const SEGMENT_BYTES_MAX: u64 = 8 << 40;

/// The default lease: 30 s, renewed every 10 s. A crashed owner's device can be opened again
/// at most this long after the crash.
pub const LEASE_DURATION_DEFAULT: Duration = Duration::from_secs(30);

/// The default bound on bytes above the truncation point (limit `device_bytes_max`), 64 TiB:
/// a write far past the end has every segment below it created first, so a wild offset must be
/// a typed error, not a million blob creations.
pub const DEVICE_BYTES_MAX_DEFAULT: u64 = 64 << 40;

/// The longest owner name recorded in the metadata blob.
pub const OWNER_BYTES_MAX: usize = 256;

/// How a [`PageBlobDevice`](crate::PageBlobDevice) lays its bytes out and talks to the
/// service.
///
/// ```
/// use std::time::Duration;
///
/// use netherite_storage_pageblob::PageBlobOptions;
///
/// let options = PageBlobOptions::default()
///     .with_segment_bytes(64 << 20)
///     .with_open_wait_max(Duration::from_secs(5));
/// assert!(options.validate().is_ok());
/// assert_eq!(options.renew_every(), Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageBlobOptions {
    /// The size of one segment blob: a positive multiple of [`ALIGNMENT`], at most
    /// [`SEGMENT_BYTES_MAX`] ([`SEGMENT_BYTES_DEFAULT`]).
    pub segment_bytes: u64,
    /// The most bytes a device holds above its truncation point ([`DEVICE_BYTES_MAX_DEFAULT`]).
    pub device_bytes_max: u64,
    /// The lease's duration, 15 to 60 s as the service allows ([`LEASE_DURATION_DEFAULT`]).
    pub lease_duration: Duration,
    /// How long an open waits for another owner's lease to be released or run out before it
    /// fails as fenced; zero fails at once. 35 s by default, a little more than the default
    /// lease, so that the lease of an owner that crashed runs out while the open waits.
    pub open_wait_max: Duration,
    /// How long one request may take before it counts as failed (and is retried).
    pub request_timeout: Duration,
    /// How many times a call is tried before its failure is returned (at least 1).
    pub attempts_max: u32,
    /// The pause before the first retry; it doubles with each retry, up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest pause between two tries.
    pub backoff_max: Duration,
    /// Who opens the device, recorded in the metadata blob so that a waiting owner can say who
    /// holds it (at most [`OWNER_BYTES_MAX`] bytes; `pid <n>` by default).
    pub owner: String,
}

impl Default for PageBlobOptions {
    fn default() -> PageBlobOptions {
        PageBlobOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            device_bytes_max: DEVICE_BYTES_MAX_DEFAULT,
            lease_duration: LEASE_DURATION_DEFAULT,
            open_wait_max: LEASE_DURATION_DEFAULT + Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            attempts_max: 5,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            owner: format!("pid {}", std::process::id()),
        }
    }
}

impl PageBlobOptions {
    /// These options with segments of `segment_bytes` bytes.
    pub fn with_segment_bytes(self, segment_bytes: u64) -> PageBlobOptions {
        PageBlobOptions {
            segment_bytes,
            ..self
        }
    }

    /// These options with a lease of `lease_duration`.
    pub fn with_lease_duration(self, lease_duration: Duration) -> PageBlobOptions {
        PageBlobOptions {
            lease_duration,
            ..self
        }
    }

    /// These options with an open that waits at most `open_wait_max` for another owner.
    pub fn with_open_wait_max(self, open_wait_max: Duration) -> PageBlobOptions {
        PageBlobOptions {
            open_wait_max,
            ..self
        }
    }

    /// These options with `owner` as the name recorded for the holder.
    pub fn with_owner(self, owner: impl Into<String>) -> PageBlobOptions {
        PageBlobOptions {
            owner: owner.into(),
            ..self
        }
    }

    /// How often the lease is renewed in the background: a third of its duration, so that two
    /// renewals in a row may fail before it runs out.
    pub fn renew_every(&self) -> Duration {
        self.lease_duration / 3
    }

    /// Checks the rules on the fields.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidOptions(reason));
        let s = self.segment_bytes;
        if s == 0 || !s.is_multiple_of(ALIGNMENT) || s > SEGMENT_BYTES_MAX {
            return invalid(format!(
                "segment_bytes {s} is not a positive multiple of {ALIGNMENT} up to \
                 {SEGMENT_BYTES_MAX}"
            ));
        }
        let lease = self.lease_duration;
        if !(15..=60).contains(&lease.as_secs()) || lease.subsec_nanos() != 0 {
            return invalid(format!(
                "lease_duration {lease:?} is not whole seconds in 15..=60"
            ));
        }
        if self.attempts_max == 0 || self.request_timeout.is_zero() {
            return invalid("attempts_max and request_timeout must be positive".into());
        }
        if self.device_bytes_max < self.segment_bytes {
            return invalid(format!(
                "device_bytes_max {} is below one segment",
                self.device_bytes_max
            ));
        }
        if self.owner.len() > OWNER_BYTES_MAX {
            return invalid(format!("owner is longer than {OWNER_BYTES_MAX} bytes"));
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
        assert!(PageBlobOptions::default().validate().is_ok());
        let base = PageBlobOptions::default;
        let bad = [
            base().with_segment_bytes(0),
            base().with_segment_bytes(1000),
            base().with_segment_bytes(SEGMENT_BYTES_MAX + 512),
            base().with_lease_duration(Duration::from_secs(10)),
            base().with_lease_duration(Duration::from_secs(61)),
            base().with_lease_duration(Duration::from_millis(20_500)),
            base().with_owner("x".repeat(OWNER_BYTES_MAX + 1)),
            PageBlobOptions {
                attempts_max: 0,
                ..base()
            },
            PageBlobOptions {
                device_bytes_max: 512,
                ..base()
            },
        ];
        for options in bad {
            let error = options.validate().unwrap_err();
            assert!(matches!(error, Error::InvalidOptions(_)), "{options:?}");
        }
    }
}
