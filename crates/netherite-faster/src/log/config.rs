//! The commit log's settings and limits, checked once when the log opens.

use std::time::Duration;

use super::format::{BATCH_FRAME_LEN, FRAME_BODY_MAX, HEADER_LEN};
use crate::Error;

/// How a [`CommitLog`](super::CommitLog) is shaped and bounded.
///
/// Only `page_bytes` and the limits shape what is written; a log may be reopened with other
/// settings, because readers rely on the format alone.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// A name for errors and logs, e.g. `partition 3 commit log`.
    pub name: String,
    /// The most bytes one frame (header and body) takes: a record whose frame would be
    /// longer is split into fragments of at most this size. At least 64.
    pub page_bytes: u32,
    /// The most bytes a record's body may hold; a longer one is refused with
    /// [`Error::LimitExceeded`] naming `record_bytes_max`.
    pub record_bytes_max: u32,
    /// The most bytes appended but not yet durable (the batch being filled plus the batch
    /// being written). An append that would pass it waits until a flush frees room: this is
    /// the log's back-pressure, and it bounds the log's memory to about this much.
    pub buffer_bytes_max: u64,
    /// How often the flusher tries a device write or flush that fails with a retryable error
    /// before it stops the log.
    pub attempts_max: u32,
    /// The pause before the first retry; it doubles with each further one. Zero retries at
    /// once.
    pub retry_delay: Duration,
    /// How often a reader fetches a frame that fails its checks before it believes the
    /// bytes: one corrupted read must not end a log.
    pub read_attempts_max: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            name: "commit log".into(),
            page_bytes: 1 << 20,
            record_bytes_max: 4 << 20,
            buffer_bytes_max: 16 << 20,
            attempts_max: 5,
            retry_delay: Duration::from_millis(2),
            read_attempts_max: 3,
        }
    }
}

impl LogConfig {
    /// The default settings under the name `name`.
    pub fn named(name: impl Into<String>) -> LogConfig {
        LogConfig {
            name: name.into(),
            ..LogConfig::default()
        }
    }

    /// The bytes a record of `body_len` bytes takes in a batch, headers included.
    pub(crate) fn framed_len(&self, body_len: usize) -> u64 {
        let chunk = self.fragment_body_max();
        let fragments = body_len.div_ceil(chunk).max(1);
        (fragments * HEADER_LEN + body_len) as u64
    }

    /// The most body bytes one fragment carries.
    pub(crate) fn fragment_body_max(&self) -> usize {
        self.page_bytes as usize - HEADER_LEN
    }

    /// Checks the settings against each other and against a device of `alignment`.
    pub(crate) fn validate(&self, alignment: u64) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            operation: "CommitLog::open",
            reason,
        };
        if self.page_bytes < 64 || self.page_bytes > FRAME_BODY_MAX {
            return Err(invalid(format!(
                "page_bytes {} is not within 64..={FRAME_BODY_MAX}",
                self.page_bytes
            )));
        }
        if self.attempts_max == 0 || self.read_attempts_max == 0 {
            return Err(invalid(
                "attempts_max and read_attempts_max must be at least 1".into(),
            ));
        }
        let batch_max = self.largest_batch(alignment);
        if batch_max > self.buffer_bytes_max {
            return Err(invalid(format!(
                "buffer_bytes_max {} cannot hold a batch with one record of record_bytes_max \
                 {} ({batch_max} bytes with headers and padding)",
                self.buffer_bytes_max, self.record_bytes_max
            )));
        }
        Ok(())
    }

    /// The bytes of a batch holding one record of `record_bytes_max`, padding included.
    fn largest_batch(&self, alignment: u64) -> u64 {
        let padding_max = alignment + HEADER_LEN as u64;
        BATCH_FRAME_LEN as u64 + self.framed_len(self.record_bytes_max as usize) + padding_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults hold a largest record on devices of 512 B to 64 KiB sectors.
    #[test]
    fn defaults_are_valid_for_common_alignments() {
        for alignment in [512, 4096, 64 << 10] {
            LogConfig::default()
                .validate(alignment)
                .expect("valid defaults");
        }
    }

    /// A record is cut into page-sized fragments, each with its own header.
    #[test]
    fn framed_length_counts_one_header_per_fragment() {
        let config = LogConfig {
            page_bytes: 116,
            ..LogConfig::default()
        };
        assert_eq!(config.framed_len(0), 16);
        assert_eq!(config.framed_len(100), 116);
        assert_eq!(config.framed_len(101), 133);
        assert_eq!(config.framed_len(250), 298);
    }

    /// A buffer too small for the largest record would stall an append forever.
    #[test]
    fn buffer_must_hold_the_largest_record() {
        let config = LogConfig {
            record_bytes_max: 1 << 20,
            buffer_bytes_max: 1 << 20,
            ..LogConfig::default()
        };
        let error = config.validate(512).expect_err("too small");
        assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
    }
}
