//! Seeded fault knobs for the in-memory device, and the small generator behind every knob.
//!
//! Faults are drawn from a generator seeded by the test, so a run that found a bug replays
//! exactly when its calls come in the same order (one task, or a current-thread runtime).

/// What can go wrong on a [`MemoryDisk`](super::MemoryDisk). The default is a perfect disk.
///
/// Rates are chances per operation: `0.0` never, `1.0` always.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceFaults {
    /// The seed of the generator that decides every fault.
    pub seed: u64,
    /// On [`crash`](super::MemoryDisk::crash), keep a random prefix of the writes that were not
    /// yet durable and tear the last one kept at a random sector boundary. When off, a crash
    /// drops every write that was not durable.
    pub torn_writes: bool,
    /// Chance that a flush fails with a retryable [`Io`](crate::Error::Io) error, leaving the
    /// writes it should have covered not durable.
    pub flush_failure_rate: f64,
    /// Chance that a read returns its bytes with one byte flipped; the stored bytes stay intact.
    pub read_corruption_rate: f64,
}

impl DeviceFaults {
    /// No faults at all.
    pub fn none() -> DeviceFaults {
        DeviceFaults::default()
    }
}

/// SplitMix64: tiny, fast and good enough to pick faults; not for anything secret.
#[derive(Clone, Debug)]
pub(crate) struct FaultRng {
    state: u64,
}

impl FaultRng {
    /// A generator whose sequence is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> FaultRng {
        FaultRng { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `rate`; draws nothing when the rate is zero, so a knob that is
    /// off does not shift the draws of the others.
    pub(crate) fn chance(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    }

    /// A number in `0..n`, or 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed gives the same faults; this is what makes a failing run replayable.
    #[test]
    fn same_seed_same_draws() {
        let draws = |seed| {
            let mut rng = FaultRng::new(seed);
            (0..16).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn chance_respects_its_ends_and_roughly_its_middle() {
        let mut rng = FaultRng::new(1);
        assert!((0..100).all(|_| !rng.chance(0.0)));
        assert!((0..100).all(|_| rng.chance(1.0)));
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }
}
