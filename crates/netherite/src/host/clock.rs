//! Time and seeds for update events: the one place the engine reads a clock or a random source.
//!
//! The state machine never reads either; every [`UpdateEvent`](netherite_core::partition::
//! UpdateEvent) carries the time and seed the host gave it, and replay reuses them. The host's
//! clock never goes backwards within a run (a wall clock may be stepped back by NTP), so the
//! times a partition logs only grow.

use std::time::{SystemTime, UNIX_EPOCH};

use netherite_core::Timestamp;

/// The wall clock as a [`Timestamp`]; the epoch if the system clock is before it.
pub(crate) fn system_now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    Timestamp::new(secs, since.subsec_nanos())
}

/// A clock whose readings never decrease.
#[derive(Debug, Default)]
pub(crate) struct EventClock {
    last: Timestamp,
}

impl EventClock {
    /// The time for the next event: the wall clock, or the last reading if that was later.
    pub(crate) fn now(&mut self) -> Timestamp {
        self.at_least(system_now())
    }

    /// The time for the next event, but no earlier than `floor`.
    pub(crate) fn at_least(&mut self, floor: Timestamp) -> Timestamp {
        self.last = self.last.max(floor).max(system_now());
        self.last
    }
}

/// Seeds for update events: a 128-bit generator seeded once from the operating system.
///
/// Seeds only need to differ from one event to the next and from one run to the next (a seed
/// picks the ids an event mints, and `Recovered` rebases work numbers with it), so one draw
/// from the OS per partition start and a cheap mixing step per event are enough.
#[derive(Debug)]
pub(crate) struct Seeds {
    state: u128,
}

impl Seeds {
    /// A generator seeded from the OS; from the clock if the OS has no randomness to give.
    pub(crate) fn from_os() -> Seeds {
        let mut bytes = [0u8; 16];
        let state = match getrandom::fill(&mut bytes) {
            Ok(()) => u128::from_le_bytes(bytes),
            Err(error) => {
                tracing::warn!(%error, "no OS randomness; seeding update events from the clock");
                let now = system_now();
                (u128::from(now.secs as u64) << 64) | u128::from(now.nanos)
            }
        };
        Seeds { state }
    }

    /// The next seed.
    pub(crate) fn next(&mut self) -> u128 {
        // An odd increment visits every value once; the multiply-xorshift scrambles neighbours
        // so that consecutive seeds share no long runs of bits.
        const INCREMENT: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
        const MULTIPLIER: u128 = 0xd1b5_4a32_d192_ed03_aef1_b7c6_9d2e_4b67;
        self.state = self.state.wrapping_add(INCREMENT);
        let mut z = self.state;
        z = (z ^ (z >> 67)).wrapping_mul(MULTIPLIER);
        z ^ (z >> 61)
    }
}

/// A random 128-bit value from the OS, for ids made outside any partition (clients).
pub(crate) fn random_u128() -> u128 {
    Seeds::from_os().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading below an earlier one is lifted to it; a floor in the future is honoured.
    #[test]
    fn event_clock_never_goes_back() {
        let mut clock = EventClock::default();
        let far = system_now().saturating_add(std::time::Duration::from_secs(3600));
        assert_eq!(clock.at_least(far), far);
        assert_eq!(
            clock.now(),
            far,
            "the wall clock is behind the last reading"
        );
    }

    /// Consecutive seeds differ, and two generators do not start alike.
    #[test]
    fn seeds_differ() {
        let mut seeds = Seeds::from_os();
        let drawn: std::collections::BTreeSet<u128> = (0..1000).map(|_| seeds.next()).collect();
        assert_eq!(drawn.len(), 1000);
        assert_ne!(Seeds::from_os().next(), Seeds::from_os().next());
    }
}
