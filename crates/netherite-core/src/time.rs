//! Time as the state machine sees it: a value that arrives with events, never read from a clock.
//!
//! [`Timestamp`] keeps seconds and nanoseconds exactly like `google.protobuf.Timestamp`, so a
//! timer's `fireAt` comes back to a worker bit for bit as it was sent (workers compare it).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time: seconds and nanoseconds since the Unix epoch (UTC).
///
/// Ordering is chronological. Arithmetic saturates instead of overflowing, so a timer due in a
/// hundred years is a valid, far-away timestamp rather than a wrapped one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z; may be negative.
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

const NANOS_PER_SEC: u32 = 1_000_000_000;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };
    /// The latest representable time.
    pub const MAX: Timestamp = Timestamp {
        secs: i64::MAX,
        nanos: NANOS_PER_SEC - 1,
    };

    /// A timestamp from seconds and nanoseconds; nanoseconds past a second carry over.
    pub fn new(secs: i64, nanos: u32) -> Timestamp {
        let carry = i64::from(nanos / NANOS_PER_SEC);
        Timestamp {
            secs: secs.saturating_add(carry),
            nanos: nanos % NANOS_PER_SEC,
        }
    }

    /// A timestamp from milliseconds since the epoch.
    pub fn from_millis(millis: i64) -> Timestamp {
        let secs = millis.div_euclid(1000);
        let nanos = (millis.rem_euclid(1000) as u32) * 1_000_000;
        Timestamp { secs, nanos }
    }

    /// Milliseconds since the epoch, saturating at the ends of `i64`.
    pub fn as_millis(self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// This time plus `d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let nanos = self.nanos + d.subsec_nanos();
        let carry = i64::from(nanos / NANOS_PER_SEC);
        match self
            .secs
            .checked_add(secs)
            .and_then(|s| s.checked_add(carry))
        {
            Some(secs) => Timestamp {
                secs,
                nanos: nanos % NANOS_PER_SEC,
            },
            None => Timestamp::MAX,
        }
    }

    /// How long after `earlier` this time is; zero when it is not after it.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        if self <= earlier {
            return Duration::ZERO;
        }
        let mut secs = self.secs.abs_diff(earlier.secs);
        let nanos = if self.nanos >= earlier.nanos {
            self.nanos - earlier.nanos
        } else {
            secs -= 1;
            self.nanos + NANOS_PER_SEC - earlier.nanos
        };
        Duration::new(secs, nanos)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs, self.nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_including_negative() {
        for ms in [0, 1, 999, 1000, -1, -1001, 1_700_000_000_123] {
            assert_eq!(Timestamp::from_millis(ms).as_millis(), ms);
        }
    }

    #[test]
    fn adding_saturates_instead_of_overflowing() {
        let far = Timestamp::new(i64::MAX - 1, 900_000_000);
        assert_eq!(far.saturating_add(Duration::from_secs(10)), Timestamp::MAX);
        let sixty_days = Duration::from_secs(60 * 24 * 3600);
        let t = Timestamp::new(1_000, 5).saturating_add(sixty_days);
        assert_eq!(t, Timestamp::new(1_000 + 60 * 24 * 3600, 5));
    }

    #[test]
    fn since_is_exact_and_never_negative() {
        let a = Timestamp::new(10, 900_000_000);
        let b = Timestamp::new(12, 100_000_000);
        assert_eq!(b.saturating_since(a), Duration::from_millis(1200));
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
