//! Seeded fault knobs for the in-memory transport.
//!
//! Each knob plays one of the ways a real broker keeps its at-least-once promise badly but
//! legally, so the engine's dedup and retry paths get exercised without Kafka in the loop.
//! Faults are drawn from a generator seeded by the test, so a run replays exactly when its
//! calls come in the same order (one task, or a current-thread runtime).

use std::time::Duration;

/// What can go wrong in a [`MemoryHub`](super::MemoryHub). The default is a perfect broker.
///
/// Rates are chances per operation: `0.0` never, `1.0` always.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransportFaults {
    /// The seed of the generator that decides every fault.
    pub seed: u64,
    /// Chance that a send is lost before it becomes durable: nothing is appended and the
    /// sender gets a retryable [`Io`](crate::Error::Io) error.
    pub drop_rate: f64,
    /// Chance that a payload is appended twice, at two positions (a producer retry after a
    /// lost acknowledgement). The send reports the first.
    pub duplicate_rate: f64,
    /// Chance, per delivered event, that the subscription first jumps back up to
    /// [`REDELIVER_DEPTH_MAX`] positions and delivers those events again.
    pub redeliver_rate: f64,
    /// Chance, per delivered event, that its delivery is held back.
    pub delay_rate: f64,
    /// The longest a delayed delivery is held back.
    pub delay_max: Duration,
    /// Chance that a position is skipped before an append, leaving a gap.
    pub gap_rate: f64,
}

/// The farthest back, in positions, a redelivery fault rewinds a subscription.
pub const REDELIVER_DEPTH_MAX: u64 = 16;

/// The widest gap, in positions, a gap fault leaves.
pub const GAP_MAX: u64 = 8;

impl TransportFaults {
    /// No faults at all.
    pub fn none() -> TransportFaults {
        TransportFaults::default()
    }
}
