//! The metadata blob: what the owners of a device record about it, each write made under the
//! device's lease and conditioned on the ETag its writer last saw.
//!
//! ```text
//!  0      8       9        16          24      32      40         48       50     50+n
//!  | magic | version | zero | segment_bytes | epoch | start | segments | owner n | owner | crc32c
//! ```
//!
//! Integers are little-endian; the checksum covers every byte before it. `epoch` counts the
//! owners that ever opened the device (each open takes the next one, see `segments`), `start`
//! is the truncation point, and `segments` bounds the segment blobs that may exist: an owner
//! raises it here, under its lease, before it creates a segment, so the next owner knows
//! every segment an older one could ever write to. `owner` names the last owner, for the
//! message of one that waits for it.

use azure_core::http::Etag;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlockBlobClientUploadOptions};

use crate::service::{Failure, Service};
use crate::{ALIGNMENT, Error, OWNER_BYTES_MAX};

const MAGIC: &[u8; 8] = b"NTHRPBDV";
const VERSION: u8 = 1;
/// The bytes before the owner's name.
const HEADER_BYTES: usize = 50;
const CRC_BYTES: usize = 4;

/// The content of the metadata blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) segment_bytes: u64,
    pub(crate) epoch: u64,
    pub(crate) start: u64,
    pub(crate) segments: u64,
    pub(crate) owner: String,
}

/// A metadata record and the ETag of the blob it was read from or written to.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) meta: Meta,
    pub(crate) etag: Etag,
}

impl Meta {
    /// The record of a device nobody has opened yet.
    pub(crate) fn fresh(segment_bytes: u64) -> Meta {
        Meta {
            segment_bytes,
            epoch: 0,
            start: 0,
            segments: 0,
            owner: String::new(),
        }
    }

    /// Who holds or last held the device, for messages.
    pub(crate) fn holder(&self) -> String {
        let owner = if self.owner.is_empty() {
            "nobody yet"
        } else {
            &self.owner
        };
        format!("{owner}, epoch {}", self.epoch)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let owner = self.owner.as_bytes();
        let owner = &owner[..owner.len().min(OWNER_BYTES_MAX)];
        let mut bytes = Vec::with_capacity(HEADER_BYTES + owner.len() + CRC_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&[0; 7]);
        for field in [self.segment_bytes, self.epoch, self.start, self.segments] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        bytes.extend_from_slice(&(owner.len() as u16).to_le_bytes());
        bytes.extend_from_slice(owner);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes the record of the blob `blob`; anything but a whole, checked record of a known
    /// version is [`Error::Corrupt`].
    pub(crate) fn decode(blob: &str, bytes: &[u8]) -> Result<Meta, Error> {
        let corrupt = |reason: String| Error::corrupt(blob, reason);
        if bytes.len() < HEADER_BYTES + CRC_BYTES || &bytes[..8] != MAGIC {
            return Err(corrupt(format!(
                "not a device record ({} bytes)",
                bytes.len()
            )));
        }
        if bytes[8] != VERSION {
            return Err(corrupt(format!("unknown record version {}", bytes[8])));
        }
        let owner_len = u16::from_le_bytes([bytes[48], bytes[49]]) as usize;
        let body = HEADER_BYTES + owner_len;
        if bytes.len() != body + CRC_BYTES {
            return Err(corrupt(format!(
                "{} bytes, the record says {}",
                bytes.len(),
                body + 4
            )));
        }
        let stored = u32::from_le_bytes(le_array(&bytes[body..]));
        if crc32c::crc32c(&bytes[..body]) != stored {
            return Err(corrupt("checksum mismatch".into()));
        }
        let field = |at: usize| u64::from_le_bytes(le_array(&bytes[at..at + 8]));
        let owner = String::from_utf8_lossy(&bytes[HEADER_BYTES..body]).into_owned();
        let meta = Meta {
            segment_bytes: field(16),
            epoch: field(24),
            start: field(32),
            segments: field(40),
            owner,
        };
        meta.check().map_err(corrupt)?;
        Ok(meta)
    }

    /// The rules every record written keeps: segments of whole pages, a device end that fits
    /// 64 bits, the truncation point below it.
    fn check(&self) -> Result<(), String> {
        let s = self.segment_bytes;
        if s == 0 || !s.is_multiple_of(ALIGNMENT) {
            return Err(format!(
                "segment_bytes {s} is not a positive multiple of {ALIGNMENT}"
            ));
        }
        let end = self.segments.checked_mul(s);
        if end.is_none_or(|end| self.start > end) {
            let (start, segments) = (self.start, self.segments);
            return Err(format!(
                "start {start} is past {segments} segments of {s} bytes"
            ));
        }
        Ok(())
    }
}

/// The first `N` bytes of `bytes`; callers have checked the length.
fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(&bytes[..N]);
    array
}

/// Reads the metadata blob `blob`, or `None` if there is none.
pub(crate) async fn read(service: &Service, blob: &str) -> Result<Option<Stored>, Error> {
    let client = service.blob(blob);
    let result = service
        .call("read metadata", blob, || async {
            let options = BlobClientDownloadOptions {
                parallel: Some(std::num::NonZero::<usize>::MIN),
                ..Default::default()
            };
            let download = client.download(Some(options)).await?;
            let etag = download.properties.etag.clone();
            Ok((download.body.collect().await?, etag))
        })
        .await;
    let (bytes, etag) = match result {
        Ok(found) => found,
        Err(failure) if failure.is(404, "BlobNotFound") => return Ok(None),
        Err(failure) => return Err(service.error("read metadata", blob, failure)),
    };
    let etag = etag.ok_or_else(|| Error::corrupt(blob, "the service sent no ETag"))?;
    let meta = Meta::decode(blob, &bytes)?;
    Ok(Some(Stored { meta, etag }))
}

/// Creates the metadata blob `blob` holding `meta` unless it exists; never overwrites.
pub(crate) async fn create(service: &Service, blob: &str, meta: &Meta) -> Result<(), Error> {
    let options = BlockBlobClientUploadOptions {
        if_none_match: Some(Etag::from("*")),
        ..Default::default()
    };
    match put(service, "create metadata", blob, meta, options).await {
        Ok(_) => Ok(()),
        Err(failure) if failure.is(409, "BlobAlreadyExists") => Ok(()),
        Err(failure) => Err(service.error("create metadata", blob, failure)),
    }
}

/// Replaces the metadata blob `blob` with `meta`, if it still has the ETag `etag` and the
/// lease `lease_id` is held; returns the new ETag.
///
/// A precondition failure is read back. If the blob now holds exactly `meta`, an earlier try
/// of this very call landed and its answer was lost. If it holds another record of this
/// owner's epoch, an earlier call that was reported as failed (no answer in time) landed
/// late: nobody else writes under a held lease, and `meta` was made only from writes this
/// owner saw succeed, so it is written over that record once. Any other record is another
/// owner's: fenced.
pub(crate) async fn write(
    service: &Service,
    blob: &str,
    meta: &Meta,
    etag: &Etag,
    lease_id: &str,
) -> Result<Etag, Error> {
    let leased = |etag: &Etag| BlockBlobClientUploadOptions {
        if_match: Some(etag.clone()),
        lease_id: Some(lease_id.to_string()),
        ..Default::default()
    };
    let failure = match put(service, "write metadata", blob, meta, leased(etag)).await {
        Ok(etag) => return Ok(etag),
        Err(failure) if failure.is(412, "ConditionNotMet") => failure,
        Err(failure) => return Err(service.error("write metadata", blob, failure)),
    };
    match read(service, blob).await? {
        Some(now) if now.meta == *meta => Ok(now.etag),
        Some(now) if now.meta.epoch == meta.epoch => {
            tracing::info!(
                blob,
                "metadata held a late write of this owner; written over"
            );
            put(service, "write metadata", blob, meta, leased(&now.etag))
                .await
                .map_err(|failure| service.error("write metadata", blob, failure))
        }
        _ => Err(Error::fenced(
            "write metadata",
            blob,
            format!(
                "the metadata blob changed under this owner ({})",
                failure.code()
            ),
        )),
    }
}

/// Uploads `meta` to `blob` with `options`; returns the new ETag.
async fn put(
    service: &Service,
    operation: &'static str,
    blob: &str,
    meta: &Meta,
    options: BlockBlobClientUploadOptions<'static>,
) -> Result<Etag, Failure> {
    let client = service.blob(blob).block_blob_client();
    let bytes = azure_core::Bytes::from(meta.encode());
    let result = service
        .call(operation, blob, || {
            client.upload(bytes.clone().into(), Some(options.clone()))
        })
        .await?;
    result.etag.ok_or(Failure::Broken {
        reason: "the service sent no ETag".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record reads back as written; every damaged copy of it, and every record that breaks
    /// the layout's rules, is refused as corrupt.
    #[test]
    fn records_round_trip_and_damage_is_caught() {
        let meta = Meta {
            segment_bytes: 1 << 30,
            epoch: 7,
            start: 4096,
            segments: 3,
            owner: "node-a pid 12".into(),
        };
        let bytes = meta.encode();
        assert_eq!(Meta::decode("m", &bytes).unwrap(), meta);
        assert_eq!(meta.holder(), "node-a pid 12, epoch 7");

        let mut damaged = Vec::new();
        for at in [0, 8, 20, 49, bytes.len() - 1] {
            let mut copy = bytes.clone();
            copy[at] ^= 0x40;
            damaged.push(copy);
        }
        damaged.push(bytes[..bytes.len() - 1].to_vec());
        damaged.push([bytes.as_slice(), &[0]].concat());
        damaged.push(Vec::new());
        let impossible = [
            Meta {
                segment_bytes: 1000,
                ..meta.clone()
            },
            Meta {
                segments: u64::MAX,
                ..meta.clone()
            },
            Meta {
                start: 4 << 30,
                ..meta.clone()
            },
        ];
        damaged.extend(impossible.iter().map(Meta::encode));
        for copy in damaged {
            let error = Meta::decode("m", &copy).unwrap_err();
            assert!(matches!(error, Error::Corrupt { .. }), "{error}");
        }
    }
}
