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
    ///
    /// The fields are public, so `nanos` may hold a second or more; it carries over as in
    /// [`Timestamp::new`] rather than overflowing.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let nanos = u64::from(self.nanos) + u64::from(d.subsec_nanos());
        let carry = nanos / u64::from(NANOS_PER_SEC);
        let secs = i64::try_from(d.as_secs().saturating_add(carry)).unwrap_or(i64::MAX);
        match self.secs.checked_add(secs) {
            Some(secs) => Timestamp {
                secs,
                nanos: (nanos % u64::from(NANOS_PER_SEC)) as u32,
            },
            None => Timestamp::MAX,
        }
    }

    /// How long after `earlier` this time is; zero when it is not after it, and
    /// `Duration::MAX` at most.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        let (late, early) = (self.normalized(), earlier.normalized());
        if late <= early {
            return Duration::ZERO;
        }
        let mut secs = late.secs.abs_diff(early.secs);
        let nanos = if late.nanos >= early.nanos {
            late.nanos - early.nanos
        } else {
            secs -= 1;
            late.nanos + NANOS_PER_SEC - early.nanos
        };
        Duration::new(secs, nanos)
    }

    /// The same time with `nanos` below a second (a carry saturates at the latest time).
    fn normalized(self) -> Timestamp {
        Timestamp::new(self.secs, self.nanos)
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

    /// Out-of-range nanoseconds (the fields are public) carry over instead of overflowing.
    #[test]
    fn arithmetic_tolerates_nanos_past_a_second() {
        let odd = Timestamp {
            secs: 1,
            nanos: u32::MAX,
        };
        let later = odd.saturating_add(Duration::new(0, 999_999_999));
        assert_eq!(later, Timestamp::new(6, 294_967_294));
        assert_eq!(
            odd.saturating_since(Timestamp::EPOCH),
            Duration::new(5, 294_967_295)
        );
        assert_eq!(
            Timestamp::MAX
                .saturating_since(Timestamp::new(i64::MIN, 0))
                .as_secs(),
            u64::MAX
        );
        let odd_max = Timestamp {
            secs: i64::MAX,
            nanos: u32::MAX,
        };
        assert_eq!(odd_max.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(odd_max.saturating_since(Timestamp::MAX), Duration::ZERO);
    }

    #[test]
    fn since_is_exact_and_never_negative() {
        let a = Timestamp::new(10, 900_000_000);
        let b = Timestamp::new(12, 100_000_000);
        assert_eq!(b.saturating_since(a), Duration::from_millis(1200));
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
