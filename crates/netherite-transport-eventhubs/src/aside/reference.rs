//! The small event that stands in the queue for a payload stored aside.
//!
//! ```text
//!  bytes 0..4    entry: which payload of the blob this is (big-endian)
//!  bytes 4..8    entries: how many payloads the blob holds
//!  bytes 8..16   offset of the payload in the blob
//!  bytes 16..24  length of the payload
//!  the rest      the blob's name, UTF-8
//! ```

/// The fixed part of an encoded reference.
const FIXED_BYTES: usize = 24;
/// The longest blob name a reference may carry (the service allows 1,024 characters).
const NAME_BYTES_MAX: usize = 1024;

/// Where one stored-aside payload is: a byte range of one blob, and its place among the
/// payloads of that blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The blob's name in the container.
    pub(crate) blob: String,
    /// Which payload of the blob this is, counted from 0 in send order.
    pub(crate) entry: u32,
    /// How many payloads the blob holds: the reference with `entry == entries - 1` is the last
    /// of its blob in the queue.
    pub(crate) entries: u32,
    /// Where the payload starts in the blob.
    pub(crate) offset: u64,
    /// How many bytes it has.
    pub(crate) length: u64,
}

impl Reference {
    /// Whether this is the last reference to its blob.
    pub(crate) fn is_last(&self) -> bool {
        self.entry.saturating_add(1) == self.entries
    }

    /// The bytes of this reference.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(FIXED_BYTES + self.blob.len());
        bytes.extend_from_slice(&self.entry.to_be_bytes());
        bytes.extend_from_slice(&self.entries.to_be_bytes());
        bytes.extend_from_slice(&self.offset.to_be_bytes());
        bytes.extend_from_slice(&self.length.to_be_bytes());
        bytes.extend_from_slice(self.blob.as_bytes());
        bytes
    }

    /// The reference in `bytes`, or what is wrong with them.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Reference, String> {
        let short = || format!("{} bytes, fewer than {FIXED_BYTES}", bytes.len());
        let (entry, rest) = bytes.split_first_chunk::<4>().ok_or_else(short)?;
        let (entries, rest) = rest.split_first_chunk::<4>().ok_or_else(short)?;
        let (offset, rest) = rest.split_first_chunk::<8>().ok_or_else(short)?;
        let (length, name) = rest.split_first_chunk::<8>().ok_or_else(short)?;
        let reference = Reference {
            blob: String::from_utf8(name.to_vec()).map_err(|_| "a name that is not UTF-8")?,
            entry: u32::from_be_bytes(*entry),
            entries: u32::from_be_bytes(*entries),
            offset: u64::from_be_bytes(*offset),
            length: u64::from_be_bytes(*length),
        };
        reference.check()?;
        Ok(reference)
    }

    fn check(&self) -> Result<(), String> {
        if self.blob.is_empty() || self.blob.len() > NAME_BYTES_MAX {
            return Err(format!("a name of {} bytes", self.blob.len()));
        }
        if self.entry >= self.entries {
            return Err(format!("entry {} of {}", self.entry, self.entries));
        }
        if self.offset.checked_add(self.length).is_none() {
            return Err("a byte range past any blob".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference {
            blob: "hub/aside/p0001/1700000000000-0123456789abcdef".into(),
            entry: 2,
            entries: 3,
            offset: 4_000_000,
            length: 1_500_000,
        }
    }

    /// A reference comes back as written, and knows whether it is its blob's last.
    #[test]
    fn references_round_trip() {
        let last = reference();
        assert_eq!(Reference::decode(&last.encode()), Ok(last.clone()));
        assert!(last.is_last());
        let first = Reference { entry: 0, ..last };
        assert!(!first.is_last());
    }

    /// Damaged references are refused with the reason, never trusted: cut short, no name, an
    /// entry past the count, a range past the end of any blob.
    #[test]
    fn damaged_references_are_refused() {
        let bytes = reference().encode();
        assert!(Reference::decode(&bytes[..10]).is_err());
        assert!(Reference::decode(&bytes[..FIXED_BYTES]).is_err());
        let past = Reference {
            entry: 3,
            ..reference()
        };
        assert!(Reference::decode(&past.encode()).is_err());
        let endless = Reference {
            offset: u64::MAX,
            ..reference()
        };
        assert!(Reference::decode(&endless.encode()).is_err());
        let mut not_utf8 = bytes;
        not_utf8.push(0xff);
        assert!(Reference::decode(&not_utf8).is_err());
    }
}
