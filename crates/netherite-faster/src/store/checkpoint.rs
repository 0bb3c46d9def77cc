//! Consistent checkpoints (fold-over) and recovery to the newest intact one.
//!
//! A checkpoint takes four steps, each finished before the next starts:
//!
//! 1. **Fold over**: every record up to the tail is written to the log device and becomes
//!    read-only; the tail moves to a fresh page. From now on nothing below that point changes,
//!    so the device holds the log exactly as of the checkpoint.
//! 2. **Index snapshot**: the index's live slots are written to the log device right after the
//!    records, behind a skip header that tells scans to jump over them. The tail moves past.
//! 3. **Flush** the log device: records and snapshot are durable.
//! 4. **Manifest**, last: one checksummed sector-aligned slot on the checkpoint device names the
//!    snapshot, the log's `begin` and end, the version and the caller's blob; then a flush.
//!
//! The checkpoint device has two manifest slots, and version `v` goes to slot `v % 2`: a new
//! manifest never overwrites the newest complete one, so a torn manifest costs one checkpoint,
//! not the store. A failed attempt keeps its version, so a retry writes the same slot again.
//! The log device keeps everything from the lower `begin` of the two newest checkpoints.
//!
//! Recovery reads both slots and tries the newest valid manifest first: its snapshot must be
//! all there and match its checksum. If not, it falls back to the older one. Every refusal is
//! reported with the device and offset it concerns. Before returning, recovery erases any
//! manifest newer than the one it used, because the log past the recovered tail is about to be
//! overwritten and that manifest would no longer describe it. Records written after the
//! recovered checkpoint are ignored: the tail restarts where the checkpoint left it.
//!
//! The engine must keep its own commit log from the position in the *older* retained
//! checkpoint's blob, since recovery may fall back to it.

use std::cmp::Reverse;

use netherite_core::device::LogDevice;

use super::address::Address;
use super::config::{StoreConfig, StoreDevices};
use super::index::Index;
use super::kv::Store;
use super::manifest::{
    MANIFEST_FIXED_LEN, MANIFEST_HEAD_LEN, Manifest, clear_slots, read_manifest, slot_bytes,
    write_manifest,
};
use super::record::{HEADER_LEN, Header, Kind, RecordRef};
use crate::{Error, Place, reread_if_corrupt};

/// One index slot in a snapshot: the primary bucket (u32) and the slot word (u64).
const SNAPSHOT_ENTRY_LEN: u64 = 12;

/// What a checkpoint holds, as its manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The checkpoint's number; each complete checkpoint's is one above the one before.
    pub version: u64,
    /// The log's `begin` at the checkpoint.
    pub begin: Address,
    /// The end of the records the checkpoint covers.
    pub end: Address,
    /// The caller's bytes, e.g. the partition's commit-log and input positions.
    pub blob: Vec<u8>,
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// The checkpoint the store was recovered to.
    pub checkpoint: CheckpointInfo,
    /// What recovery passed over, newest first, each naming its device and offset: a missing
    /// slot, a damaged manifest, a snapshot cut short. Empty when all was well.
    pub skipped: Vec<Error>,
}

impl Store {
    /// Creates an empty store on `devices` and makes it durable as checkpoint 1 (empty blob).
    ///
    /// Refuses with [`Error::StoreExists`] when the checkpoint device holds a valid manifest
    /// (an existing store is opened with [`Store::recover`]), and with [`Error::NewerFormat`]
    /// when it holds one a newer program wrote. A missing or damaged manifest is overwritten.
    pub async fn create(devices: StoreDevices, config: StoreConfig) -> Result<Store, Error> {
        config.validate(devices.log.alignment())?;
        for slot in 0..2 {
            let name = &devices.checkpoints_name;
            match read_manifest(&*devices.checkpoints, name, slot).await {
                Ok(manifest) => {
                    let version = manifest.version;
                    return Err(Error::StoreExists { version });
                }
                Err(error) if is_damage(&error) => {}
                Err(error) => return Err(error),
            }
        }
        clear_slots(&*devices.checkpoints, &[0, 1]).await?;
        let mut store = Store::empty(config, devices);
        store.checkpoint(&[]).await?;
        tracing::info!("store created");
        Ok(store)
    }

    /// Opens the store on `devices` at its newest intact checkpoint.
    ///
    /// Falls back to the older checkpoint when the newer one's manifest or snapshot is
    /// missing, damaged or cut short; [`Recovered::skipped`] says what was passed over. Fails
    /// with [`Error::NoIntactCheckpoint`] when neither can be loaded, and (nothing erased) with
    /// a device error when a device fails rather than its bytes, or [`Error::NewerFormat`]
    /// when a newer program wrote a manifest.
    pub async fn recover(
        devices: StoreDevices,
        config: StoreConfig,
    ) -> Result<(Store, Recovered), Error> {
        let mut skipped = Vec::new();
        let mut manifests = Vec::new();
        for slot in 0..2 {
            match read_manifest(&*devices.checkpoints, &devices.checkpoints_name, slot).await {
                Ok(manifest) => manifests.push((slot, manifest)),
                Err(error) if is_damage(&error) => skipped.push(error),
                Err(error) => return Err(error),
            }
        }
        manifests.sort_by_key(|(_, manifest)| Reverse(manifest.version));

        for (slot, manifest) in &manifests {
            let alignment = devices.log.alignment();
            if !manifest.page_bytes.is_multiple_of(alignment) {
                return Err(Error::InvalidConfig(format!(
                    "checkpoint {} has pages of {} bytes, which {} cannot write (alignment {})",
                    manifest.version, manifest.page_bytes, devices.log_name, alignment
                )));
            }
            match load_index(&*devices.log, &devices.log_name, manifest, &config).await {
                Ok(index) => {
                    let older = manifests.iter().find(|(_, m)| m.version < manifest.version);
                    let keep = [Some(*slot), older.map(|(s, _)| *s)];
                    let erase: Vec<u64> = (0..2).filter(|s| !keep.contains(&Some(*s))).collect();
                    clear_slots(&*devices.checkpoints, &erase).await?;
                    let older = older.map(|(_, m)| Address::new(m.begin));
                    let store = Store::recovered(devices, config, manifest, index, older);
                    return Ok((store, recovered(manifest, skipped)));
                }
                Err(error) if is_damage(&error) => skipped.push(error),
                Err(error) => return Err(error),
            }
        }
        let attempts = skipped.iter().map(ToString::to_string).collect();
        Err(Error::NoIntactCheckpoint { attempts })
    }

    /// The store of a loaded checkpoint, with nothing in memory but the index.
    fn recovered(
        devices: StoreDevices,
        mut config: StoreConfig,
        manifest: &Manifest,
        index: Index,
        older_begin: Option<Address>,
    ) -> Store {
        config.page_bytes = manifest.page_bytes;
        config.index_buckets = manifest.index_buckets;
        let (begin, tail) = (Address::new(manifest.begin), Address::new(manifest.resume));
        let mut store = Store::assemble(config, devices, index, begin, tail);
        store.checkpoints.next_version = manifest.version + 1;
        store.checkpoints.retained_begins = [Some(Address::new(manifest.begin)), older_begin];
        tracing::info!(
            version = manifest.version,
            begin = manifest.begin,
            end = manifest.end,
            "store recovered"
        );
        store
    }

    /// Takes a consistent checkpoint of the store, `blob` included, and returns it once it is
    /// durable. On an error the store stays usable and the next attempt reuses the version;
    /// whether the failed attempt became durable is unknown (recovery may find it or not).
    pub async fn checkpoint(&mut self, blob: &[u8]) -> Result<CheckpointInfo, Error> {
        let blob_max =
            slot_bytes(&*self.checkpoints.device) as usize - MANIFEST_HEAD_LEN - MANIFEST_FIXED_LEN;
        if blob.len() > blob_max {
            return Err(Error::LimitExceeded {
                limit: "checkpoint_blob_bytes_max",
                actual: blob.len() as u64,
                max: blob_max as u64,
            });
        }
        // Steps 1 to 3 (module docs): the log and the index on the device, durable.
        let begin = self.log.regions().begin;
        let end = self.log.fold_over().await?;
        let snapshot_at = self.log.regions().tail;
        let (entries, crc, resume) = self.write_snapshot(snapshot_at, begin).await?;
        self.log.skip_to(resume);
        self.log.device().flush().await?;

        // Step 4: the manifest, which makes the checkpoint visible to recovery.
        let manifest = Manifest {
            version: self.checkpoints.next_version,
            page_bytes: self.log.page_bytes(),
            index_buckets: self.index.bucket_count(),
            begin: begin.get(),
            end: end.get(),
            snapshot_at: snapshot_at.get(),
            snapshot_entries: entries,
            snapshot_crc: crc,
            resume: resume.get(),
            blob: blob.to_vec(),
        };
        write_manifest(&*self.checkpoints.device, &manifest).await?;

        // Durable: from now on recovery may pick this checkpoint or, failing it, the previous.
        self.checkpoints.next_version += 1;
        self.checkpoints.retained_begins = [Some(begin), self.checkpoints.retained_begins[0]];
        tracing::debug!(version = manifest.version, %begin, %end, entries, "store checkpoint");
        self.reclaim().await;
        Ok(recovered(&manifest, Vec::new()).checkpoint)
    }

    /// Writes the index's live slots at `at` behind a skip header; returns the number of
    /// entries, their checksum and the address after the region.
    async fn write_snapshot(
        &mut self,
        at: Address,
        begin: Address,
    ) -> Result<(u64, u32, Address), Error> {
        let page = self.log.page_bytes();
        let budget = self.frames_budget(0)?;
        self.log.make_room(page, budget).await?;

        let entries = self.index.live_slots(begin).count() as u64;
        let region = (HEADER_LEN as u64 + entries * SNAPSHOT_ENTRY_LEN).next_multiple_of(page);
        let mut buffer = vec![0u8; HEADER_LEN];
        Header::skip(region).write(&mut buffer);
        let (mut crc, mut offset) = (0u32, at.get());
        let device = self.log.device().clone();
        for (home, word) in self.index.live_slots(begin) {
            let start = buffer.len();
            buffer.extend_from_slice(&home.to_le_bytes());
            buffer.extend_from_slice(&word.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &buffer[start..]);
            if buffer.len() as u64 >= page {
                device.write(offset, &buffer[..page as usize]).await?;
                buffer.drain(..page as usize);
                offset += page;
            }
        }
        let sector = device.alignment();
        buffer.resize((buffer.len() as u64).next_multiple_of(sector) as usize, 0);
        device.write(offset, &buffer).await?;
        Ok((entries, crc, at.add(region)))
    }

    /// Lets the log device reclaim what no retained checkpoint and no live record needs.
    /// A failure is only logged: the space is reclaimed on a later call.
    pub(crate) async fn reclaim(&mut self) {
        let mut target = self.log.regions().begin;
        for begin in self.checkpoints.retained_begins.into_iter().flatten() {
            target = target.min(begin);
        }
        let device = self.log.device();
        let target = target.min(Address::new(device.size()));
        if target <= self.checkpoints.truncated {
            return;
        }
        match device.truncate_before(target.get()).await {
            Ok(()) => self.checkpoints.truncated = target,
            Err(error) => tracing::warn!(%error, %target, "store log truncation failed"),
        }
    }
}

fn recovered(manifest: &Manifest, skipped: Vec<Error>) -> Recovered {
    Recovered {
        checkpoint: CheckpointInfo {
            version: manifest.version,
            begin: Address::new(manifest.begin),
            end: Address::new(manifest.end),
            blob: manifest.blob.clone(),
        },
        skipped,
    }
}

/// Whether `error` is about stored bytes (recovery may fall back) rather than a device that
/// failed or a budget too small for the checkpoint (recovery must stop and erase nothing).
fn is_damage(error: &Error) -> bool {
    matches!(
        error,
        Error::Corrupt { .. }
            | Error::Truncated { .. }
            | Error::Missing { .. }
            | Error::Device(netherite_core::Error::InvalidArgument { .. })
    )
}

/// Loads the index snapshot a manifest names, rereading once if a check fails (a read may
/// be damaged on its way).
async fn load_index(
    log: &dyn LogDevice,
    name: &str,
    manifest: &Manifest,
    config: &StoreConfig,
) -> Result<Index, Error> {
    // The manifest's rules bound pages and buckets, so none of this overflows. Each entry
    // takes a slot of at least 8 bytes, so the count alone may show the index cannot fit.
    let pages = 4 * manifest.page_bytes;
    fits_budget(manifest.index_buckets * 64 + pages, config)?;
    fits_budget(manifest.snapshot_entries.saturating_mul(8), config)?;
    let index = reread_if_corrupt(|| read_snapshot(log, name, manifest)).await?;
    // Overflow buckets may have made the index larger than the bucket count says.
    fits_budget(index.memory_bytes() + pages, config)?;
    Ok(index)
}

/// Fails unless `bytes` fit in the memory budget.
fn fits_budget(bytes: u64, config: &StoreConfig) -> Result<(), Error> {
    if bytes > config.memory_bytes_max {
        return Err(Error::LimitExceeded {
            limit: "memory_bytes_max",
            actual: bytes,
            max: config.memory_bytes_max,
        });
    }
    Ok(())
}

/// Reads the snapshot at `manifest.snapshot_at` into a new index, checking every entry.
async fn read_snapshot(
    log: &dyn LogDevice,
    name: &str,
    manifest: &Manifest,
) -> Result<Index, Error> {
    let at = manifest.snapshot_at;
    let what = format!(
        "index snapshot of checkpoint {} in {name}",
        manifest.version
    );
    let place = Place::new(what, at);
    let data_len = manifest.snapshot_entries.saturating_mul(SNAPSHOT_ENTRY_LEN);
    let needed = data_len.saturating_add(HEADER_LEN as u64);
    let available = log.size().saturating_sub(at);
    if available < needed {
        return Err(place.truncated(needed, available));
    }
    let head = log.read(at, HEADER_LEN).await?;
    if !skip_header_matches(&head, manifest, needed) {
        return Err(place.corrupt("the skip header does not match the manifest"));
    }

    let mut index = Index::new(manifest.index_buckets);
    let chunk = manifest.page_bytes / SNAPSHOT_ENTRY_LEN * SNAPSHOT_ENTRY_LEN;
    let (mut crc, mut offset) = (0u32, at + HEADER_LEN as u64);
    while offset < at + needed {
        let len = chunk.min(at + needed - offset);
        let bytes = log.read(offset, len as usize).await?;
        crc = crc32c::crc32c_append(crc, &bytes);
        for entry in bytes.chunks_exact(SNAPSHOT_ENTRY_LEN as usize) {
            let home = u32::from_le_bytes(entry[..4].try_into().expect("4 bytes"));
            let word = u64::from_le_bytes(entry[4..].try_into().expect("8 bytes"));
            check_entry(manifest, home, word).map_err(|reason| place.corrupt(reason))?;
            index.restore_slot(home, word);
        }
        offset += len;
    }
    if crc != manifest.snapshot_crc {
        return Err(place.corrupt("checksum mismatch"));
    }
    Ok(index)
}

/// Whether the header in front of a snapshot is an intact skip header over the region the
/// manifest implies.
fn skip_header_matches(head: &[u8], manifest: &Manifest, needed: u64) -> bool {
    let region = manifest.resume - manifest.snapshot_at;
    RecordRef::new(head).is_some_and(|r| r.verify())
        && Header::parse(head).kind() == Kind::Skip(region)
        && region == needed.next_multiple_of(manifest.page_bytes)
}

/// The rules every snapshot entry keeps.
fn check_entry(manifest: &Manifest, home: u32, word: u64) -> Result<(), String> {
    let address = Index::slot_address(word).get();
    if u64::from(home) >= manifest.index_buckets {
        return Err(format!(
            "bucket {home} is past the index's {}",
            manifest.index_buckets
        ));
    }
    if address < manifest.begin || address >= manifest.end {
        return Err(format!(
            "slot points at {address}, outside the checkpoint's records"
        ));
    }
    Ok(())
}
