//! The hash index: from a key's 64-bit hash to the newest record of its chain.
//!
//! The table is a power-of-two array of 64-byte buckets (one cache line each). A bucket holds
//! seven slots and a link to an overflow bucket. A slot packs a 16-bit *tag* (the top bits of
//! the hash) and a 48-bit address:
//!
//! ```text
//!  hash:  | tag (16 bits) | ...                         | bucket number (low bits) |
//!  slot:  | tag (16 bits) | address of the newest record of the chain (48 bits)   |
//!  bucket: [slot; 7] + overflow link  ->  overflow bucket: [slot; 7] + link -> ...
//! ```
//!
//! All keys whose hashes share a bucket and a tag share one chain: each record holds the
//! address of the previous record of its chain, so a lookup reads the slot, then walks the
//! chain comparing whole keys. The tag makes most walks one record long. A slot whose address
//! is below the log's `begin` points at nothing alive and is free for reuse.
//!
//! The table does not grow: its size is chosen when the store is created (a checkpoint records
//! it). Overflow buckets absorb the excess, at the price of longer bucket scans.
//! TODO: grow the table by splitting buckets when overflow buckets pile up; it matters once a
//! partition holds many times more keys than `index_buckets * 7`.
//!
//! The hash and the tag width are part of the format on the device (the index snapshot stores
//! tags). Unit tests use 2 tag bits instead of 16, so that chains hold several keys and every
//! path of the chain walk is exercised.

use super::address::Address;

/// Slots per bucket; the eighth word is the overflow link.
const SLOTS: usize = 7;

/// Overflow buckets are allocated in chunks of this many, so memory grows in small steps.
const OVERFLOW_CHUNK: usize = 256;

/// How many top bits of the hash the tag keeps (unit tests: fewer, to make chains collide).
const TAG_BITS: u32 = if cfg!(test) { 2 } else { 16 };

const ADDRESS_MASK: u64 = (1 << 48) - 1;

/// A key's 64-bit hash, fixed forever (it is part of the format on the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyHash(u64);

impl KeyHash {
    /// Hashes `key`. Keys are mostly short (instance ids), so the hash reads a key of up to
    /// 16 bytes as two (overlapping) words and mixes them with one 64x64->128-bit multiply;
    /// longer keys fold in 16 bytes per multiply first.
    pub(crate) fn of(key: &[u8]) -> KeyHash {
        const K0: u64 = 0x9e37_79b9_7f4a_7c15;
        const K1: u64 = 0xd6e8_feb8_6659_fd93;
        const K2: u64 = 0xa076_1d64_78bd_642f;
        let len = key.len();
        let mut seed = K0 ^ (len as u64).wrapping_mul(K1);
        let (a, b) = if len <= 16 {
            short_words(key)
        } else {
            let mut rest = key;
            while rest.len() > 16 {
                seed = fold(word(rest, 0) ^ K1, word(rest, 8) ^ seed);
                rest = &rest[16..];
            }
            (word(key, len - 16), word(key, len - 8))
        };
        let h = fold(a ^ K1, b ^ seed);
        KeyHash(fold(h ^ K2, (len as u64) ^ K0))
    }

    /// The tag of this hash, already shifted into a slot's top bits.
    fn tag(self, bits: u32) -> u64 {
        (self.0 >> (64 - bits)) << 48
    }
}

/// The multiply of two words, its high and low halves folded together.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The little-endian word at `at`.
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Two words covering a key of at most 16 bytes (overlapping when it is shorter).
fn short_words(key: &[u8]) -> (u64, u64) {
    let len = key.len();
    let half = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().expect("4")));
    match len {
        8.. => (word(key, 0), word(key, len - 8)),
        4.. => (half(0), half(len - 4)),
        1.. => {
            let spread = u64::from(key[0]) << 16 | u64::from(key[len / 2]) << 8;
            (spread | u64::from(key[len - 1]), 0)
        }
        0 => (0, 0),
    }
}

/// One cache line: seven slots and the overflow link (0: none; else a bucket id).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    slots: [u64; SLOTS],
    overflow: u64,
}

/// Where a slot lives: a bucket id (primary buckets first, then overflow) and a slot number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotRef {
    bucket: usize,
    slot: usize,
    tag: u64,
}

/// The hash table of chain heads.
pub(crate) struct Index {
    tag_bits: u32,
    primary: Vec<Bucket>,
    overflow: Vec<Box<[Bucket]>>,
    overflow_len: usize,
}

/// Counts rather than contents: an index holds up to millions of slots.
impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("buckets", &self.primary.len())
            .field("overflow_buckets", &self.overflow_len)
            .field("memory_bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

impl Index {
    /// An empty index of `buckets` primary buckets (a power of two).
    pub(crate) fn new(buckets: u64) -> Index {
        Index::with_tag_bits(buckets, TAG_BITS)
    }

    /// An empty index whose tags keep `tag_bits` (1 to 16) bits of the hash.
    fn with_tag_bits(buckets: u64, tag_bits: u32) -> Index {
        debug_assert!(buckets.is_power_of_two() && (1..=16).contains(&tag_bits));
        Index {
            tag_bits,
            primary: vec![Bucket::default(); buckets as usize],
            overflow: Vec::new(),
            overflow_len: 0,
        }
    }

    /// The number of primary buckets.
    pub(crate) fn bucket_count(&self) -> u64 {
        self.primary.len() as u64
    }

    /// The bytes the table holds, overflow chunks included.
    pub(crate) fn memory_bytes(&self) -> u64 {
        let buckets = self.primary.len() + self.overflow.len() * OVERFLOW_CHUNK;
        (buckets * size_of::<Bucket>()) as u64
    }

    /// The bytes the next overflow chunk would add.
    pub(crate) fn growth_bytes() -> u64 {
        (OVERFLOW_CHUNK * size_of::<Bucket>()) as u64
    }

    /// Whether the next overflow bucket needs a new chunk.
    pub(crate) fn chunk_full(&self) -> bool {
        self.overflow_len == self.overflow.len() * OVERFLOW_CHUNK
    }

    fn home(&self, hash: KeyHash) -> usize {
        (hash.0 & (self.primary.len() as u64 - 1)) as usize
    }

    fn bucket(&self, id: usize) -> &Bucket {
        match id.checked_sub(self.primary.len()) {
            None => &self.primary[id],
            Some(o) => &self.overflow[o / OVERFLOW_CHUNK][o % OVERFLOW_CHUNK],
        }
    }

    fn bucket_mut(&mut self, id: usize) -> &mut Bucket {
        match id.checked_sub(self.primary.len()) {
            None => &mut self.primary[id],
            Some(o) => &mut self.overflow[o / OVERFLOW_CHUNK][o % OVERFLOW_CHUNK],
        }
    }

    /// The head of the chain of `hash`, or [`Address::NONE`].
    pub(crate) fn find(&self, hash: KeyHash) -> Address {
        let tag = hash.tag(self.tag_bits);
        let mut id = self.home(hash);
        loop {
            let bucket = self.bucket(id);
            for &slot in &bucket.slots {
                if slot != 0 && slot & !ADDRESS_MASK == tag {
                    return Address::new(slot & ADDRESS_MASK);
                }
            }
            match bucket.overflow {
                0 => return Address::NONE,
                next => id = next as usize,
            }
        }
    }

    /// The slot of `hash`'s chain with the chain's head ([`Address::NONE`] for a new chain),
    /// claiming a free slot (empty, or pointing below `begin`) if the tag has none. `None`
    /// when the bucket and its overflow buckets are full: then [`Index::add_slot`].
    pub(crate) fn find_slot(
        &mut self,
        hash: KeyHash,
        begin: Address,
    ) -> Option<(SlotRef, Address)> {
        let tag = hash.tag(self.tag_bits);
        let mut id = self.home(hash);
        let mut free = None;
        loop {
            let bucket = self.bucket(id);
            for (slot, &value) in bucket.slots.iter().enumerate() {
                let address = value & ADDRESS_MASK;
                if value != 0 && value & !ADDRESS_MASK == tag {
                    let head = if address < begin.get() { 0 } else { address };
                    return Some((
                        SlotRef {
                            bucket: id,
                            slot,
                            tag,
                        },
                        Address::new(head),
                    ));
                }
                if free.is_none() && (value == 0 || address < begin.get()) {
                    free = Some(SlotRef {
                        bucket: id,
                        slot,
                        tag,
                    });
                }
            }
            match bucket.overflow {
                0 => break,
                next => id = next as usize,
            }
        }
        let slot = free?;
        self.bucket_mut(slot.bucket).slots[slot.slot] = 0;
        Some((slot, Address::NONE))
    }

    /// A slot for `hash`'s new chain in a new overflow bucket, when [`Index::find_slot`]
    /// found none.
    pub(crate) fn add_slot(&mut self, hash: KeyHash) -> SlotRef {
        let mut last = self.home(hash);
        while let next @ 1.. = self.bucket(last).overflow {
            last = next as usize;
        }
        self.add_overflow(last, hash.tag(self.tag_bits))
    }

    /// Links a new overflow bucket after bucket `last` and returns its first slot.
    fn add_overflow(&mut self, last: usize, tag: u64) -> SlotRef {
        if self.overflow_len == self.overflow.len() * OVERFLOW_CHUNK {
            let chunk = vec![Bucket::default(); OVERFLOW_CHUNK].into_boxed_slice();
            self.overflow.push(chunk);
        }
        let id = self.primary.len() + self.overflow_len;
        self.overflow_len += 1;
        self.bucket_mut(last).overflow = id as u64;
        SlotRef {
            bucket: id,
            slot: 0,
            tag,
        }
    }

    /// Points the slot at `address`, the new head of its chain.
    pub(crate) fn set(&mut self, slot: SlotRef, address: Address) {
        debug_assert!(address <= Address::MAX && !address.is_none());
        self.bucket_mut(slot.bucket).slots[slot.slot] = slot.tag | address.get();
    }

    /// Every slot whose address is at or above `begin`, as (primary bucket number, slot word).
    pub(crate) fn live_slots(&self, begin: Address) -> impl Iterator<Item = (u32, u64)> + '_ {
        (0..self.primary.len()).flat_map(move |home| {
            let mut chain = Vec::new();
            let mut id = home;
            loop {
                let bucket = self.bucket(id);
                chain.extend(
                    bucket
                        .slots
                        .iter()
                        .copied()
                        .filter(|&slot| slot != 0 && slot & ADDRESS_MASK >= begin.get()),
                );
                match bucket.overflow {
                    0 => break,
                    next => id = next as usize,
                }
            }
            let home = u32::try_from(home).expect("bucket count fits u32 (checked by config)");
            chain.into_iter().map(move |slot| (home, slot))
        })
    }

    /// Puts a slot word read from a snapshot back into primary bucket `home`.
    pub(crate) fn restore_slot(&mut self, home: u32, word: u64) {
        let mut id = home as usize;
        loop {
            let bucket = self.bucket(id);
            if let Some(slot) = bucket.slots.iter().position(|&s| s == 0) {
                self.bucket_mut(id).slots[slot] = word;
                return;
            }
            match bucket.overflow {
                0 => break,
                next => id = next as usize,
            }
        }
        let slot = self.add_overflow(id, word & !ADDRESS_MASK);
        self.bucket_mut(slot.bucket).slots[0] = word;
    }

    /// The address a slot word points at.
    pub(crate) fn slot_address(word: u64) -> Address {
        Address::new(word & ADDRESS_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_for(index: &mut Index, hash: KeyHash, begin: Address) -> (SlotRef, Address) {
        index
            .find_slot(hash, begin)
            .unwrap_or_else(|| (index.add_slot(hash), Address::NONE))
    }

    #[test]
    fn hash_spreads_similar_keys() {
        let hashes: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| KeyHash::of(format!("key-{i:06}").as_bytes()).0)
            .collect();
        assert_eq!(hashes.len(), 10_000);
        assert_ne!(KeyHash::of(b""), KeyHash::of(b"\0"));
        assert_ne!(KeyHash::of(b"abcdefgh"), KeyHash::of(b"abcdefgh\0"));
    }

    /// With one bucket and 16 tag bits, 40 keys need overflow buckets; each hash finds the
    /// head it was given, and a slot whose head fell below `begin` is free again.
    #[test]
    fn slots_overflow_and_reuse() {
        let mut index = Index::with_tag_bits(1, 16);
        let hashes: Vec<KeyHash> = (0u64..40).map(|i| KeyHash::of(&i.to_le_bytes())).collect();
        for (i, &hash) in hashes.iter().enumerate() {
            let (slot, head) = slot_for(&mut index, hash, Address::FIRST);
            assert!(head.is_none());
            index.set(slot, Address::new(1000 + i as u64));
        }
        for (i, &hash) in hashes.iter().enumerate() {
            assert_eq!(index.find(hash), Address::new(1000 + i as u64));
        }
        assert_eq!(index.overflow_len, 40 / SLOTS);

        let (slot, head) = slot_for(&mut index, hashes[0], Address::new(5000));
        assert!(head.is_none(), "heads below begin are free");
        index.set(slot, Address::new(6000));
        assert_eq!(index.find(hashes[0]), Address::new(6000));
    }

    /// With the unit tests' 2 tag bits, keys share chains: at most 4 heads per bucket.
    #[test]
    fn few_tag_bits_make_keys_share_chains() {
        let mut index = Index::new(1);
        for i in 0u64..40 {
            let (slot, _) = slot_for(&mut index, KeyHash::of(&i.to_le_bytes()), Address::FIRST);
            index.set(slot, Address::new(1000 + i));
        }
        assert!(index.live_slots(Address::FIRST).count() <= 4);
    }

    #[test]
    fn restored_slots_are_found_again() {
        let mut index = Index::with_tag_bits(4, 16);
        for i in 0u64..100 {
            let (slot, _) = slot_for(&mut index, KeyHash::of(&i.to_le_bytes()), Address::FIRST);
            index.set(slot, Address::new(64 + i * 8));
        }
        let mut copy = Index::with_tag_bits(4, 16);
        for (home, word) in index.live_slots(Address::FIRST) {
            copy.restore_slot(home, word);
        }
        for i in 0u64..100 {
            let hash = KeyHash::of(&i.to_le_bytes());
            assert_eq!(copy.find(hash), index.find(hash));
        }
    }
}
