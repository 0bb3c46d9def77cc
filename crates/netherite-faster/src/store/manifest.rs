//! Checkpoint manifests: what they hold, how they are laid out in their slots, and how a
//! slot is read back and judged missing, cut short or damaged.
//!
//! ```text
//!  0        8          12         16                                       slot end
//!  +--------+----------+----------+---------------------------------+--------+
//!  | magic  | body len | body crc | body: format, version, page     | zeros  |
//!  |        | u32 LE   | u32 LE   | size, buckets, begin, end,      |        |
//!  |        |          |          | snapshot at/entries/crc, resume,|        |
//!  |        |          |          | blob length, blob               |        |
//!  +--------+----------+----------+---------------------------------+--------+
//! ```
//!
//! A slot is at least 4096 bytes and a whole number of the device's sectors; slot `i` starts
//! at `i * slot bytes`. A slot of zeros is missing; anything else that fails a check is
//! damaged, and the error names the slot, its device and its offset.
//!
//! A later format keeps the magic, the head and the format number at the start of the body,
//! so that an intact manifest of a newer format is told apart from damage: it is refused with
//! [`Error::NewerFormat`], never passed over and erased as a damaged one would be.

use netherite_core::device::LogDevice;

use super::address::Address;
use super::config::PAGE_BYTES_MAX;
use crate::{Error, Place, reread_if_corrupt};

/// The manifest format this program writes and reads.
const MANIFEST_FORMAT: u32 = 1;
/// The first bytes of every manifest.
const MANIFEST_MAGIC: &[u8; 8] = b"NHSTORE\x01";
/// Magic, body length, body checksum.
pub(crate) const MANIFEST_HEAD_LEN: usize = 16;
/// The fixed fields of a manifest body.
pub(crate) const MANIFEST_FIXED_LEN: usize = 4 + 8 * 8 + 4 + 8 + 4;
/// The least bytes of a manifest slot; the slot is also a whole number of device sectors.
const MANIFEST_SLOT_MIN: u64 = 4096;
/// A manifest as stored in a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) version: u64,
    pub(crate) page_bytes: u64,
    pub(crate) index_buckets: u64,
    pub(crate) begin: u64,
    pub(crate) end: u64,
    pub(crate) snapshot_at: u64,
    pub(crate) snapshot_entries: u64,
    pub(crate) snapshot_crc: u32,
    pub(crate) resume: u64,
    pub(crate) blob: Vec<u8>,
}

/// The bytes of one manifest slot on `device`.
pub(crate) fn slot_bytes(device: &dyn LogDevice) -> u64 {
    MANIFEST_SLOT_MIN.max(device.alignment())
}

/// Writes the manifest into its slot and flushes the checkpoint device.
pub(crate) async fn write_manifest(
    device: &dyn LogDevice,
    manifest: &Manifest,
) -> Result<(), Error> {
    let mut body = Vec::with_capacity(MANIFEST_FIXED_LEN + manifest.blob.len());
    body.extend_from_slice(&MANIFEST_FORMAT.to_le_bytes());
    for field in [
        manifest.version,
        manifest.page_bytes,
        manifest.index_buckets,
        manifest.begin,
        manifest.end,
        manifest.snapshot_at,
        manifest.snapshot_entries,
    ] {
        body.extend_from_slice(&field.to_le_bytes());
    }
    body.extend_from_slice(&manifest.snapshot_crc.to_le_bytes());
    body.extend_from_slice(&manifest.resume.to_le_bytes());
    let blob_len = u32::try_from(manifest.blob.len()).expect("blob length checked");
    body.extend_from_slice(&blob_len.to_le_bytes());
    body.extend_from_slice(&manifest.blob);

    let len = slot_bytes(device);
    let mut bytes = vec![0u8; len as usize];
    bytes[..8].copy_from_slice(MANIFEST_MAGIC);
    bytes[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
    bytes[12..16].copy_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes[MANIFEST_HEAD_LEN..MANIFEST_HEAD_LEN + body.len()].copy_from_slice(&body);
    device.write(manifest.version % 2 * len, &bytes).await?;
    device.flush().await?;
    Ok(())
}

/// Overwrites `slots` with zeros and flushes, so no recovery reads them again.
pub(crate) async fn clear_slots(device: &dyn LogDevice, slots: &[u64]) -> Result<(), Error> {
    if slots.is_empty() {
        return Ok(());
    }
    let len = slot_bytes(device);
    for &slot in slots {
        device.write(slot * len, &vec![0u8; len as usize]).await?;
        tracing::debug!(slot, "store manifest slot erased");
    }
    device.flush().await?;
    Ok(())
}

/// Reads and checks the manifest in `slot`, rereading once if a check fails (a read may be
/// damaged on its way, and a manifest judged damaged is erased when another is used).
pub(crate) async fn read_manifest(
    device: &dyn LogDevice,
    name: &str,
    slot: u64,
) -> Result<Manifest, Error> {
    reread_if_corrupt(|| read_manifest_once(device, name, slot)).await
}

async fn read_manifest_once(
    device: &dyn LogDevice,
    name: &str,
    slot: u64,
) -> Result<Manifest, Error> {
    let len = slot_bytes(device);
    let offset = slot * len;
    let available = device.size().saturating_sub(offset).min(len);
    let bytes = match available {
        0 => Vec::new(),
        _ => device.read(offset, available as usize).await?,
    };
    let place = Place::new(format!("manifest slot {slot} of {name}"), offset);
    if bytes.iter().take(MANIFEST_HEAD_LEN).all(|&b| b == 0) {
        return Err(place.missing());
    }
    if bytes.len() < MANIFEST_HEAD_LEN {
        return Err(place.truncated(MANIFEST_HEAD_LEN as u64, available));
    }
    if &bytes[..8] != MANIFEST_MAGIC {
        return Err(place.corrupt("not a store manifest (magic bytes differ)"));
    }
    let body_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as u64;
    if body_len > len - MANIFEST_HEAD_LEN as u64 {
        return Err(place.corrupt(format!("body length {body_len} is larger than the slot")));
    }
    let end = MANIFEST_HEAD_LEN + body_len as usize;
    if bytes.len() < end {
        return Err(place.truncated(end as u64, available));
    }
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let body = &bytes[MANIFEST_HEAD_LEN..end];
    if crc32c::crc32c(body) != crc {
        return Err(place.corrupt("checksum mismatch"));
    }
    decode(body, &place)
}

/// Decodes a manifest body whose checksum passed, after its format number.
fn decode(body: &[u8], place: &Place) -> Result<Manifest, Error> {
    let mut reader = FieldReader { bytes: body, at: 0 };
    match reader.u32().map_err(|reason| place.corrupt(reason))? {
        MANIFEST_FORMAT => decode_body(reader).map_err(|reason| place.corrupt(reason)),
        format if format > MANIFEST_FORMAT => Err(place.newer_format(format, MANIFEST_FORMAT)),
        format => Err(place.corrupt(format!("no manifest format is numbered {format}"))),
    }
}

/// Decodes the rest of a manifest body whose checksum passed and whose format is this one.
fn decode_body(mut reader: FieldReader<'_>) -> Result<Manifest, String> {
    let mut manifest = Manifest {
        version: reader.u64()?,
        page_bytes: reader.u64()?,
        index_buckets: reader.u64()?,
        begin: reader.u64()?,
        end: reader.u64()?,
        snapshot_at: reader.u64()?,
        snapshot_entries: reader.u64()?,
        snapshot_crc: reader.u32()?,
        resume: reader.u64()?,
        blob: Vec::new(),
    };
    let blob_len = reader.u32()? as usize;
    manifest.blob = reader.take(blob_len)?.to_vec();
    check_manifest(&manifest)?;
    Ok(manifest)
}

/// The rules every manifest this program wrote keeps. Later arithmetic on the fields relies
/// on them: pages are bounded, and the snapshot and the resumed tail start pages.
fn check_manifest(m: &Manifest) -> Result<(), String> {
    let page_ok = m.page_bytes.is_power_of_two() && (4096..=PAGE_BYTES_MAX).contains(&m.page_bytes);
    let buckets_ok = m.index_buckets.is_power_of_two() && m.index_buckets <= 1 << 32;
    let order_ok = Address::FIRST.get() <= m.begin
        && m.begin <= m.end
        && m.end <= m.snapshot_at
        && m.snapshot_at < m.resume
        && m.resume <= Address::MAX.get();
    let pages_ok = page_ok
        && m.snapshot_at.is_multiple_of(m.page_bytes)
        && m.resume.is_multiple_of(m.page_bytes);
    if !(buckets_ok && order_ok && pages_ok) {
        return Err(format!("fields break the manifest's rules: {m:?}"));
    }
    Ok(())
}

/// Reads little-endian fields in order.
struct FieldReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl FieldReader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("body ends inside a field at byte {}", self.at))?;
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: 7,
            page_bytes: 4096,
            index_buckets: 16,
            begin: 64,
            end: 9000,
            snapshot_at: 12288,
            snapshot_entries: 3,
            snapshot_crc: 0xdead_beef,
            resume: 16384,
            blob: b"positions".to_vec(),
        }
    }

    /// A manifest reads back as written from its slot (version 7: slot 1), and a flipped
    /// byte or a cut-off write is reported with the slot's offset.
    #[tokio::test]
    async fn manifest_round_trips_and_damage_names_its_offset() {
        let disk = netherite_core::device::MemoryDisk::new(512).expect("power of two");
        let device = disk.open();
        write_manifest(&device, &sample()).await.expect("written");
        assert_eq!(
            read_manifest(&device, "cp", 1).await.expect("valid"),
            sample()
        );
        let missing = read_manifest(&device, "cp", 0)
            .await
            .expect_err("slot 0 is empty");
        assert!(
            matches!(missing, Error::Missing { offset: 0, .. }),
            "{missing}"
        );

        let mut bytes = device.read(4096, 4096).await.expect("slot");
        bytes[30] ^= 1;
        device.write(4096, &bytes).await.expect("damaged");
        let error = read_manifest(&device, "cp", 1).await.expect_err("damaged");
        assert!(
            matches!(error, Error::Corrupt { offset: 4096, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("manifest slot 1"), "{error}");
    }

    /// Fields no writer of this format produces are damage even under a valid checksum:
    /// pages past the limit (whose arithmetic would overflow), a snapshot or a tail off a
    /// page start.
    #[tokio::test]
    async fn fields_past_their_rules_are_damage() {
        let disk = netherite_core::device::MemoryDisk::new(512).expect("power of two");
        let device = disk.open();
        let wild = [
            Manifest {
                page_bytes: 1 << 63,
                ..sample()
            },
            Manifest {
                snapshot_at: 12288 + 512,
                ..sample()
            },
            Manifest {
                resume: 16384 + 8,
                ..sample()
            },
        ];
        for manifest in wild {
            write_manifest(&device, &manifest).await.expect("written");
            let error = read_manifest(&device, "cp", 1).await.expect_err("refused");
            assert!(
                matches!(&error, Error::Corrupt { reason, .. } if reason.contains("rules")),
                "{error}"
            );
        }
    }
}
