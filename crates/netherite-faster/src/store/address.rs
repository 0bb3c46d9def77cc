//! Logical addresses in the store's log, and the four boundaries that split it into regions.
//!
//! An address is a byte offset, and the same number is the offset on the log device: a record
//! at address `a` lives at device offset `a`, whether or not it is still in memory. Addresses
//! only grow; compaction moves `begin` forward and never reuses an address.
//!
//! ```text
//!   begin            head              read_only                 tail
//!     |               |                    |                       |
//!     +---------------+--------------------+-----------------------+- - - - -
//!     | on the device | in memory,         | in memory, mutable:   | next
//!     | only: a read  | read-only: written | updated in place; an  | record
//!     | is a device   | to the device; an  | upsert here touches   | goes
//!     | read          | update copies the  | no other page         | here
//!     |               | record to the tail |                       |
//!     +---------------+--------------------+-----------------------+- - - - -
//!   below begin: dead (compacted away); the device may reclaim it
//! ```
//!
//! The rule that keeps checkpoints simple: a page is written to the device exactly when it
//! falls below `read_only`, and nothing below `read_only` ever changes again. So the device
//! always holds every byte below `read_only`, and a checkpoint only has to move `read_only`
//! up to the tail (a "fold-over") to make the whole log immutable and written.

use std::fmt;

/// A byte offset in the store's log (and on its device).
///
/// ```
/// use netherite_faster::store::Address;
///
/// let a = Address::new(100);
/// assert_eq!(a.round_up(64), Address::new(128));
/// assert!(Address::NONE < Address::FIRST);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(u64);

impl Address {
    /// No record: the end of every chain, and an empty index slot.
    pub const NONE: Address = Address(0);

    /// Where the first record of a new store goes. The bytes below it are never used, so that
    /// no record can sit at [`Address::NONE`].
    pub const FIRST: Address = Address(64);

    /// The largest address the index can hold (48 bits, 256 TiB of log ever written).
    pub const MAX: Address = Address((1 << 48) - 1);

    /// The address at byte offset `offset`.
    pub const fn new(offset: u64) -> Address {
        Address(offset)
    }

    /// The byte offset.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether this is [`Address::NONE`].
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// This address plus `bytes` (at most `u64::MAX`: a length read from damaged bytes must
    /// not overflow before a check can refuse it).
    pub const fn add(self, bytes: u64) -> Address {
        Address(self.0.saturating_add(bytes))
    }

    /// The smallest multiple of `unit` (a power of two) at or above this address; the
    /// largest one when no multiple above fits in a `u64`.
    pub const fn round_up(self, unit: u64) -> Address {
        let mask = mask(unit);
        match self.0.checked_add(mask) {
            Some(above) => Address(above & !mask),
            None => Address(self.0 & !mask),
        }
    }

    /// The largest multiple of `unit` (a power of two) at or below this address.
    pub const fn round_down(self, unit: u64) -> Address {
        Address(self.0 & !mask(unit))
    }
}

/// The low bits below `unit`, a power of two (0 counts as 1, so no input underflows).
const fn mask(unit: u64) -> u64 {
    unit.saturating_sub(1)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The boundaries of the log's regions, lowest first: `begin <= head <= read_only <= tail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    /// The oldest address still part of the store; everything below is dead.
    pub begin: Address,
    /// The lowest address held in memory; below it, reads go to the device.
    pub head: Address,
    /// Below it, records are immutable and written to the device.
    pub read_only: Address,
    /// Where the next record goes.
    pub tail: Address,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_multiples_and_moves_the_rest() {
        assert_eq!(Address::new(0).round_up(512), Address::new(0));
        assert_eq!(Address::new(512).round_up(512), Address::new(512));
        assert_eq!(Address::new(513).round_up(512), Address::new(1024));
        assert_eq!(Address::new(1023).round_down(512), Address::new(512));
    }

    /// The ends of the number line round without overflowing, whatever the unit.
    #[test]
    fn rounding_never_overflows() {
        assert_eq!(Address::new(u64::MAX).round_up(64).get(), !63);
        assert_eq!(Address::new(5).round_up(0), Address::new(5));
        assert_eq!(Address::new(5).round_down(0), Address::new(5));
    }
}
