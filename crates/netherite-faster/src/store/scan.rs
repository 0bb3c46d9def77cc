//! Scans of the log in address order, and iteration over the live records.
//!
//! A scan steps from header to header: a record is followed by the next record, a pad sends
//! it to the next page, a skip header jumps over an index snapshot. Bytes come from memory
//! where the log still holds them and from the device (one page per read) below that; records
//! read from the device are verified.
//!
//! A record is *live* when the index's chain for its key reaches it before any other record of
//! the key, and it is not a tombstone. Iteration yields exactly the live records, so it sees
//! each key with a value once, however many older versions the log still holds.

use super::address::Address;
use super::index::KeyHash;
use super::kv::{Link, Store};
use super::log::HybridLog;
use super::record::{HEADER_LEN, Header, Kind, RecordRef};
use crate::Error;
use crate::reader::Reader;

/// One step of a scan: a record, or a stretch without records (a pad or a skip region).
#[derive(Debug)]
pub(crate) struct Step {
    /// Where the step starts.
    pub(crate) address: Address,
    /// Where the next step starts.
    pub(crate) next: Address,
    /// The whole record, if the step is one.
    pub(crate) record: Option<Vec<u8>>,
}

/// A position in the log moving up to an end.
#[derive(Debug)]
pub(crate) struct LogCursor {
    position: Address,
    end: Address,
    /// Reads the device a page at most at a time.
    reader: Reader,
}

impl LogCursor {
    /// A cursor over `start..end`; `start` must be where a step starts.
    pub(crate) fn new(start: Address, end: Address) -> LogCursor {
        LogCursor {
            position: start,
            end,
            reader: Reader::default(),
        }
    }

    /// Moves the cursor up to `floor` if it is below (the log's begin moved past it).
    pub(crate) fn skip_below(&mut self, floor: Address) {
        self.position = self.position.max(floor);
    }

    /// The next step, or `None` at the end.
    pub(crate) async fn next(&mut self, log: &HybridLog) -> Result<Option<Step>, Error> {
        let address = self.position;
        if address >= self.end {
            return Ok(None);
        }
        let page = log.page_bytes();
        let page_end = address.round_down(page).add(page);
        let step = if page_end.get() - address.get() < HEADER_LEN as u64 {
            Step {
                address,
                next: page_end,
                record: None,
            }
        } else if let Some(bytes) = log.bytes_at(address) {
            step_in_memory(log, address, page_end, bytes)?
        } else {
            self.step_on_device(log, address, page_end).await?
        };
        if step.next > page_end && step.next > self.end {
            let reason = format!(
                "a skip region reaches {}, past the end {}",
                step.next, self.end
            );
            return Err(log.place(address).corrupt(reason));
        }
        self.position = step.next;
        Ok(Some(step))
    }

    /// Reads the step at `address` from the device, through the page buffer.
    async fn step_on_device(
        &mut self,
        log: &HybridLog,
        address: Address,
        page_end: Address,
    ) -> Result<Step, Error> {
        let bytes = self.page_bytes_at(log, address, page_end).await?;
        // Every header read from the device is checked before the scan trusts its lengths;
        // a damaged one is read again once, straight from the device.
        let header = Header::parse(bytes);
        if header.kind() != Kind::Record {
            if marker_intact(bytes) {
                return marker_step(log, address, page_end, &header);
            }
            let fresh = log.device().read(address.get(), HEADER_LEN).await?;
            if !marker_intact(&fresh) {
                return Err(log.place(address).corrupt(damaged_marker(&fresh)));
            }
            return marker_step(log, address, page_end, &Header::parse(&fresh));
        }
        let whole = RecordRef::new(bytes).filter(|record| record.verify());
        let record = match whole {
            Some(record) => bytes[..record.header.record_len() as usize].to_vec(),
            None => {
                log.read_from_device(address, header.key_len as usize)
                    .await?
            }
        };
        let len = RecordRef::new(&record)
            .expect("a whole record")
            .header
            .record_len();
        Ok(Step {
            address,
            next: address.add(len),
            record: Some(record),
        })
    }

    /// The bytes from `address` to the end of its page, read from the device when the
    /// reader's window does not hold them; at least a header's worth. Reads start at
    /// `address`, never below: the device may have reclaimed the start of the page.
    async fn page_bytes_at(
        &mut self,
        log: &HybridLog,
        address: Address,
        page_end: Address,
    ) -> Result<&[u8], Error> {
        let at = address.get();
        let end = page_end.get().min(log.device().size());
        if end < at + HEADER_LEN as u64 {
            let available = end.saturating_sub(at);
            return Err(log.place(address).truncated(HEADER_LEN as u64, available));
        }
        self.reader
            .get(&**log.device(), at, (end - at) as usize, end)
            .await
    }
}

/// The step at `address`, whose bytes (to the end of its frame) are in memory.
fn step_in_memory(
    log: &HybridLog,
    address: Address,
    page_end: Address,
    bytes: &[u8],
) -> Result<Step, Error> {
    let header = Header::parse(bytes);
    if header.kind() != Kind::Record {
        return marker_step(log, address, page_end, &header);
    }
    let record = RecordRef::new(bytes).ok_or_else(|| {
        log.place(address)
            .corrupt("a record in memory runs past its frame")
    })?;
    let len = record.header.record_len();
    Ok(Step {
        address,
        next: address.add(len),
        record: Some(bytes[..len as usize].to_vec()),
    })
}

/// Whether the header at the start of `bytes` is a pad or skip header whose checksum holds.
///
/// Zeros are not: the log writes every page it hands out with an explicit pad header where its
/// records end, so zeros where a scan expects a header mean the page was lost (a block the
/// file system zeroed, a hole in a file). Taking them for a pad would skip the page's records
/// silently, and a compaction would then drop them.
fn marker_intact(bytes: &[u8]) -> bool {
    RecordRef::new(bytes).is_some_and(|r| r.verify())
}

/// Why a pad or skip header read from the device cannot be trusted.
fn damaged_marker(bytes: &[u8]) -> String {
    if bytes.iter().all(|&b| b == 0) {
        "zeros where a header must be: the page was lost".into()
    } else {
        "a damaged pad or skip header".into()
    }
}

/// The step of a pad or skip header.
fn marker_step(
    log: &HybridLog,
    address: Address,
    page_end: Address,
    header: &Header,
) -> Result<Step, Error> {
    let next = match header.kind() {
        Kind::Skip(len) if len >= HEADER_LEN as u64 => address.add(len),
        Kind::Skip(len) => {
            return Err(log
                .place(address)
                .corrupt(format!("a skip region of length {len}")));
        }
        Kind::Pad | Kind::Record => page_end,
    };
    Ok(Step {
        address,
        next,
        record: None,
    })
}

/// Iterates over the live records of a [`Store`], in log order.
///
/// The cursor does not borrow the store, so the store may change between calls; then keys
/// written meanwhile may be missed or seen twice, but a key untouched since the cursor was
/// made is seen exactly once.
///
/// ```
/// # use std::sync::Arc;
/// # use netherite_core::device::MemoryDisk;
/// # use netherite_faster::store::{Store, StoreConfig, StoreDevices};
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
/// # runtime.block_on(async {
/// # let devices = StoreDevices::new(
/// #     Arc::new(MemoryDisk::new(512)?.open()),
/// #     Arc::new(MemoryDisk::new(512)?.open()),
/// # );
/// # let config = StoreConfig { memory_bytes_max: 1 << 20, index_buckets: 64, page_bytes: 4096,
/// #     ..StoreConfig::default() };
/// let mut store = Store::create(devices, config).await?;
/// store.upsert(b"a", b"1").await?;
/// store.upsert(b"a", b"2").await?;
/// let mut live = store.live_records();
/// assert_eq!(live.next(&store).await?, Some((b"a".to_vec(), b"2".to_vec())));
/// assert_eq!(live.next(&store).await?, None);
/// # Ok::<(), netherite_faster::Error>(())
/// # }).expect("example runs");
/// ```
#[derive(Debug)]
pub struct LiveRecords {
    cursor: LogCursor,
}

impl LiveRecords {
    /// The next live record as (key, value), or `None` when the scan reached the tail the
    /// store had when the cursor was made.
    pub async fn next(&mut self, store: &Store) -> Result<Option<(Vec<u8>, Vec<u8>)>, Error> {
        loop {
            self.cursor.skip_below(store.log.regions().begin);
            let Some(step) = self.cursor.next(&store.log).await? else {
                return Ok(None);
            };
            let Some(bytes) = step.record else {
                continue;
            };
            let record = RecordRef::new(&bytes).expect("a step holds its whole record");
            if store.is_live(&record, step.address).await? {
                return Ok(Some((record.key().to_vec(), record.value().to_vec())));
            }
        }
    }
}

impl Store {
    /// A cursor over the live records, from `begin` to the current tail.
    pub fn live_records(&self) -> LiveRecords {
        let regions = self.log.regions();
        LiveRecords {
            cursor: LogCursor::new(regions.begin, regions.tail),
        }
    }

    /// Whether `record`, found at `address`, is the newest of its key and not a tombstone.
    ///
    /// Walks the chain down to `address` without reading the record there: reaching it before
    /// any other record of the key proves it the newest. Cold keys, whose chain head is the
    /// record itself, cost no read at all.
    pub(crate) async fn is_live(
        &self,
        record: &RecordRef<'_>,
        address: Address,
    ) -> Result<bool, Error> {
        if record.header.is_tombstone() {
            return Ok(false);
        }
        let key = record.key();
        let mut at = self.index.find(KeyHash::of(key));
        while at > address {
            match self.chain_step(key, at).await? {
                Link::Match(_) => return Ok(false),
                Link::Next(previous) => at = previous,
            }
        }
        Ok(at == address)
    }
}
