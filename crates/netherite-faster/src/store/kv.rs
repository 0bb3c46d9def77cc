//! The store itself: point operations over the index and the hybrid log.
//!
//! Every write goes to the newest record of its key when that record is in the mutable region
//! and the new value fits its capacity (an update in place); otherwise a new record goes to
//! the tail, linked to the chain's old head, and the index slot moves to it. Reads walk the
//! chain from the slot down, in memory first, then on the device.

use std::sync::Arc;

use netherite_core::device::LogDevice;

use super::address::{Address, Regions};
use super::config::{KEY_BYTES_MAX, StoreConfig, StoreDevices};
use super::index::{Index, KeyHash, SlotRef};
use super::log::HybridLog;
use super::record::{RecordMut, RecordRef, record_len, write_record};
use crate::Error;

/// A hybrid-log key-value store over a [`LogDevice`]. See the [module docs](super).
///
/// One writer at a time: updates take `&mut self`. Reads take `&self` and may run together.
#[derive(Debug)]
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) index: Index,
    pub(crate) log: HybridLog,
    pub(crate) checkpoints: CheckpointState,
}

/// Where the checkpoints stand: what the next one is called and which must stay readable.
#[derive(Debug)]
pub(crate) struct CheckpointState {
    pub(crate) device: Arc<dyn LogDevice>,
    /// The version the next checkpoint gets; a failed attempt does not use it up.
    pub(crate) next_version: u64,
    /// `begin` of the newest complete checkpoint and of the one before it: recovery may need
    /// either, so the device keeps everything from the lower of the two.
    pub(crate) retained_begins: [Option<Address>; 2],
    /// How far the log device has been truncated.
    pub(crate) truncated: Address,
}

/// Figures about a store, for tests, logs and dashboards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// The log's region boundaries.
    pub regions: Regions,
    /// What the budget counts: pages in memory plus the index.
    pub memory_bytes: u64,
    /// The index's share of `memory_bytes`.
    pub index_bytes: u64,
    /// The version of the next checkpoint.
    pub next_checkpoint: u64,
}

/// What one step down a chain found.
#[derive(Debug)]
pub(crate) enum Link {
    /// The record of the key looked for.
    Match(Hit),
    /// Another key's record; the chain goes on here.
    Next(Address),
}

/// Where the newest record of a key was found.
#[derive(Debug)]
pub(crate) enum Hit {
    /// In memory at this address.
    Memory(Address),
    /// On the device: the whole record, verified.
    Device(Vec<u8>),
}

impl Store {
    /// A store over `devices` with an empty index, not yet checkpointed.
    pub(crate) fn empty(config: StoreConfig, devices: StoreDevices) -> Store {
        let index = Index::new(config.index_buckets);
        Store::assemble(config, devices, index, Address::FIRST, Address::FIRST)
    }

    /// A store over `devices` with `index`, whose live records span `begin..tail`, none in
    /// memory, before its first checkpoint.
    pub(crate) fn assemble(
        config: StoreConfig,
        devices: StoreDevices,
        index: Index,
        begin: Address,
        tail: Address,
    ) -> Store {
        let record_max = config.record_bytes_max();
        let log_name = devices.log_name.into();
        let log = HybridLog::new(
            devices.log,
            log_name,
            config.page_bytes,
            record_max,
            begin,
            tail,
        );
        Store {
            index,
            config,
            log,
            checkpoints: CheckpointState {
                device: devices.checkpoints,
                next_version: 1,
                retained_begins: [None, None],
                truncated: Address::NONE,
            },
        }
    }

    /// The value of `key`, or `None` if it has none. Reads the device if the record was
    /// evicted from memory.
    pub async fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let head = self.index.find(KeyHash::of(key));
        let value_of = |record: RecordRef<'_>| {
            (!record.header.is_tombstone()).then(|| record.value().to_vec())
        };
        // The fast path: the whole walk in memory, no future state kept across an await.
        let head = match self.probe_memory(key, head) {
            Probe::Found(_, record) => return Ok(value_of(record)),
            Probe::Absent => return Ok(None),
            Probe::OnDevice(address) => address,
        };
        // Boxed, so that the fast path's future stays small.
        let hit = Box::pin(self.find(key, head)).await?;
        Ok(hit.and_then(|hit| self.with_record(&hit, value_of)))
    }

    /// Sets the value of `key`.
    ///
    /// Fails with [`Error::LimitExceeded`] (nothing changed) when the key or the record is too
    /// large or the memory budget cannot hold the index and one page.
    pub async fn upsert(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.check_record(key, value.len())?;
        let (slot, head) = self.slot_for(KeyHash::of(key)).await?;
        if let Some(address) = self.find_mutable(key, head)
            && self.update_in_place(address, Some(value))
        {
            return Ok(());
        }
        self.append(slot, head, key, Some(value)).await
    }

    /// Replaces the value of `key` by what `update` makes of the current one (`None`: no
    /// value). `update` returning `None` deletes the key. `update` runs exactly once.
    pub async fn rmw<F>(&mut self, key: &[u8], update: F) -> Result<(), Error>
    where
        F: FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        if key.len() > KEY_BYTES_MAX {
            return Err(key_too_long(key));
        }
        let (slot, head) = self.slot_for(KeyHash::of(key)).await?;
        let hit = self.find(key, head).await?;
        let (old_exists, new) = match &hit {
            None => (false, update(None)),
            Some(hit) => self.with_record(hit, |record| {
                let old = (!record.header.is_tombstone()).then(|| record.value());
                (old.is_some(), update(old))
            }),
        };
        if let Some(value) = &new {
            self.check_record(key, value.len())?;
        }
        if let Some(Hit::Memory(address)) = hit
            && self.update_in_place(address, new.as_deref())
        {
            return Ok(());
        }
        if new.is_none() && !old_exists {
            return Ok(());
        }
        self.append(slot, head, key, new.as_deref()).await
    }

    /// Deletes `key`; deleting a key without a value is not an error.
    pub async fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        if key.len() > KEY_BYTES_MAX {
            return Err(key_too_long(key));
        }
        let hash = KeyHash::of(key);
        let head = self.index.find(hash);
        match self.probe_memory(key, head) {
            Probe::Absent => return Ok(()),
            Probe::Found(address, record) => {
                if record.header.is_tombstone() || self.update_in_place(address, None) {
                    return Ok(());
                }
            }
            Probe::OnDevice(_) => {}
        }
        let (slot, head) = self.slot_for(hash).await?;
        self.append(slot, head, key, None).await
    }

    /// Gives up ownership of both devices so that the next owner may open them at once
    /// (a clean stop; what was not checkpointed is lost, as in a crash).
    pub async fn release(self) -> Result<(), Error> {
        self.log.device().release().await?;
        self.checkpoints.device.release().await?;
        Ok(())
    }

    /// The bytes the memory budget counts: the pages in memory and the index.
    pub fn memory_bytes(&self) -> u64 {
        self.log.frames_bytes() + self.index.memory_bytes()
    }

    /// Figures about the store.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            regions: self.log.regions(),
            memory_bytes: self.memory_bytes(),
            index_bytes: self.index.memory_bytes(),
            next_checkpoint: self.checkpoints.next_version,
        }
    }

    /// The settings in force (page size and bucket count as recovered, if they differ).
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The newest record of `key` at or above `begin`, walking from `head`.
    pub(crate) async fn find(&self, key: &[u8], head: Address) -> Result<Option<Hit>, Error> {
        let begin = self.log.begin();
        let mut address = head;
        while address >= begin {
            match self.chain_step(key, address).await? {
                Link::Match(hit) => return Ok(Some(hit)),
                Link::Next(previous) => address = previous,
            }
        }
        Ok(None)
    }

    /// One step down a chain: the record at `address` if it is `key`'s, else the address of
    /// the record before it (strictly lower, or the chain is damaged).
    pub(crate) async fn chain_step(&self, key: &[u8], address: Address) -> Result<Link, Error> {
        let previous = if let Some(record) = self.log.record_at(address) {
            if record.key() == key {
                return Ok(Link::Match(Hit::Memory(address)));
            }
            record.header.previous
        } else {
            let bytes = self.log.read_from_device(address, key.len()).await?;
            let record = RecordRef::new(&bytes).expect("a verified whole record");
            if record.key() == key {
                return Ok(Link::Match(Hit::Device(bytes)));
            }
            record.header.previous
        };
        if previous >= address.get() {
            let place = self.log.place(address);
            return Err(place.corrupt(format!("chain goes up to {previous}")));
        }
        Ok(Link::Next(Address::new(previous)))
    }

    /// Runs `f` on the record behind `hit`.
    pub(crate) fn with_record<R>(&self, hit: &Hit, f: impl FnOnce(RecordRef<'_>) -> R) -> R {
        match hit {
            Hit::Memory(address) => f(self.log.record_at(*address).expect("hit in memory")),
            Hit::Device(bytes) => f(RecordRef::new(bytes).expect("a verified whole record")),
        }
    }

    /// Walks the chain from `head` as far as it stays in memory.
    fn probe_memory(&self, key: &[u8], head: Address) -> Probe<'_> {
        let begin = self.log.begin();
        let mut address = head;
        while address >= begin {
            let Some(record) = self.log.record_at(address) else {
                return Probe::OnDevice(address);
            };
            if record.key() == key {
                return Probe::Found(address, record);
            }
            address = Address::new(record.header.previous);
        }
        Probe::Absent
    }

    /// The newest record of `key` if it lies in the mutable region.
    fn find_mutable(&self, key: &[u8], head: Address) -> Option<Address> {
        let read_only = self.log.read_only();
        let mut address = head;
        while address >= read_only {
            let record = self.log.record_at(address)?;
            if record.key() == key {
                return Some(address);
            }
            address = Address::new(record.header.previous);
        }
        None
    }

    /// Updates the record at `address` in place if it is mutable and the value fits.
    fn update_in_place(&mut self, address: Address, value: Option<&[u8]>) -> bool {
        self.log
            .mutable_bytes_at(address)
            .is_some_and(|bytes| RecordMut::new(bytes).update(value))
    }

    /// The index slot of `hash`'s chain and its head. When the chain needs a new overflow
    /// bucket and that needs a new chunk, old pages make room for it first.
    pub(crate) async fn slot_for(&mut self, hash: KeyHash) -> Result<(SlotRef, Address), Error> {
        let begin = self.log.begin();
        if let Some(found) = self.index.find_slot(hash, begin) {
            return Ok(found);
        }
        if self.index.chunk_full() {
            let budget = self.frames_budget(Index::growth_bytes())?;
            self.log.make_room(0, budget).await?;
        }
        Ok((self.index.add_slot(hash), Address::NONE))
    }

    /// Appends a record for `key` at the tail, chained to `head`, and points `slot` at it.
    pub(crate) async fn append(
        &mut self,
        slot: SlotRef,
        head: Address,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), Error> {
        let len = record_len(key.len(), value.map_or(0, <[u8]>::len));
        // Index slots hold 48-bit addresses: refuse rather than wrap (256 TiB ever written).
        let end = self.log.regions().tail.add(len + 2 * self.log.page_bytes());
        if end > Address::MAX {
            return Err(Error::LimitExceeded {
                limit: "log_address_max",
                actual: end.get(),
                max: Address::MAX.get(),
            });
        }
        let budget = self.frames_budget(0)?;
        let mutable = budget / 100 * u64::from(self.config.mutable_percent);
        let address = self.log.allocate(len, budget, mutable).await?;
        let bytes = self
            .log
            .mutable_bytes_at(address)
            .expect("the tail is mutable");
        write_record(&mut bytes[..len as usize], head.get(), key, value);
        self.index.set(slot, address);
        Ok(())
    }

    /// What the budget leaves for pages once the index (and `extra` index bytes) are paid.
    pub(crate) fn frames_budget(&self, extra: u64) -> Result<u64, Error> {
        let index = self.index.memory_bytes() + extra;
        let budget = self.config.memory_bytes_max;
        budget.checked_sub(index).ok_or(Error::LimitExceeded {
            limit: "memory_bytes_max",
            actual: index,
            max: budget,
        })
    }

    fn check_record(&self, key: &[u8], value_len: usize) -> Result<(), Error> {
        if key.len() > KEY_BYTES_MAX {
            return Err(key_too_long(key));
        }
        let len = record_len(key.len(), value_len);
        let max = self.config.record_bytes_max();
        if len > max {
            return Err(Error::LimitExceeded {
                limit: "record_bytes_max",
                actual: len,
                max,
            });
        }
        Ok(())
    }
}

/// How far a walk in memory got.
enum Probe<'a> {
    /// The newest record of the key is in memory here.
    Found(Address, RecordRef<'a>),
    /// The whole chain is in memory and holds no record of the key.
    Absent,
    /// The chain continues on the device, at this address.
    OnDevice(Address),
}

fn key_too_long(key: &[u8]) -> Error {
    Error::LimitExceeded {
        limit: "key_bytes_max",
        actual: key.len() as u64,
        max: KEY_BYTES_MAX as u64,
    }
}
