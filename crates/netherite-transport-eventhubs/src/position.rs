//! Positions are Event Hubs sequence numbers.
//!
//! Event Hubs numbers the events of each partition from 0, one apart, never reusing a number.
//! That is exactly what the transport contract asks of positions, so a position is the
//! sequence number itself, and resuming at position `p` asks the service for the events whose
//! sequence number is at least `p` (an inclusive start). A checkpoint records the position
//! after the last event processed (`InputEvent::next_position`), so a restarted partition
//! starts right after it.
//!
//! ```text
//!   one Event Hubs partition, by sequence number
//!
//!     expired by retention   retained events                  not sent yet
//!   |  0  1  ...  b-1  |  b  b+1  ...  last  |  last+1  ...
//!                         ^ first_available     ^ a subscription from here waits
//!   subscribing below first_available is an InvalidArgument (rule 8 of the contract), and
//!   so is subscribing past last+1 (a position from another event hub of the same name)
//! ```
//!
//! The service reports `b` (the beginning) and `last` for each partition. An empty partition
//! that once held events reports its last number still; its first available number is the
//! next one.

use netherite_core::{Error, InputPosition};

/// What the service says a partition holds, in sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retained {
    /// The number of the oldest event still held (meaningless when `empty`).
    pub(crate) beginning: i64,
    /// The number of the newest event ever enqueued, `-1` if none ever was.
    pub(crate) last: i64,
    /// Whether no event is held now.
    pub(crate) empty: bool,
}

impl Retained {
    /// The first sequence number a receiver can still get.
    pub(crate) fn first_available(&self) -> i64 {
        if self.empty {
            self.last.saturating_add(1).max(0)
        } else {
            self.beginning.max(0)
        }
    }

    /// Refuses a subscription that would start below what the partition still holds, or past
    /// the number its next event will get: a checkpoint taken on another event hub of the same
    /// name (one deleted and created again) must not wait for events that never come.
    pub(crate) fn check_start(&self, from: InputPosition) -> Result<(), Error> {
        let first = self.first_available();
        if i128::from(from.0) < i128::from(first) {
            return Err(Error::InvalidArgument {
                operation: "subscribe",
                reason: format!(
                    "position {from} is gone from the event hub (its retention starts at {first})"
                ),
            });
        }
        let next = self.last.saturating_add(1).max(0);
        if i128::from(from.0) > i128::from(next) {
            return Err(Error::InvalidArgument {
                operation: "subscribe",
                reason: format!(
                    "position {from} is past the end of the event hub's partition (its next \
                     event is {next}): the event hub is not the one the position came from"
                ),
            });
        }
        Ok(())
    }

    /// `from`, or the first available position when retention already dropped it.
    pub(crate) fn clamp_start(&self, from: InputPosition) -> InputPosition {
        let first = u64::try_from(self.first_available()).unwrap_or(0);
        InputPosition(from.0.max(first))
    }
}

/// The sequence number a position stands for.
pub(crate) fn sequence_number(position: InputPosition) -> Result<i64, Error> {
    i64::try_from(position.0).map_err(|_| Error::InvalidArgument {
        operation: "subscribe",
        reason: format!("position {position} is past any Event Hubs sequence number"),
    })
}

/// The position of the event the service numbered `sequence_number`.
pub(crate) fn position(sequence_number: i64) -> Result<InputPosition, Error> {
    u64::try_from(sequence_number)
        .map(InputPosition)
        .map_err(|_| Error::Io {
            operation: "eventhubs",
            reason: format!("the service gave the negative sequence number {sequence_number}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A position and a sequence number are the same number, both ways; what one side cannot
    /// hold is an error, not a wrap.
    #[test]
    fn positions_are_sequence_numbers() {
        for n in [0_i64, 1, 41, i64::MAX] {
            let p = position(n).unwrap();
            assert_eq!(p.0, n as u64);
            assert_eq!(sequence_number(p).unwrap(), n);
        }
        assert!(matches!(position(-1), Err(Error::Io { .. })));
        let too_far = InputPosition(i64::MAX as u64 + 1);
        assert!(matches!(
            sequence_number(too_far),
            Err(Error::InvalidArgument { .. })
        ));
    }

    /// A fresh partition starts at 0; a partition with events starts at its beginning; one whose
    /// events all expired starts after the last number it gave.
    #[test]
    fn the_first_available_number_follows_retention() {
        let fresh = Retained {
            beginning: 0,
            last: -1,
            empty: true,
        };
        let holding = Retained {
            beginning: 7,
            last: 20,
            empty: false,
        };
        let expired = Retained {
            beginning: 0,
            last: 20,
            empty: true,
        };
        assert_eq!(fresh.first_available(), 0);
        assert_eq!(holding.first_available(), 7);
        assert_eq!(expired.first_available(), 21);
    }

    /// A partition input refuses a start below retention or past the next event; a client's
    /// responses start at the oldest held instead.
    #[test]
    fn starts_below_retention_are_refused_or_clamped() {
        let holding = Retained {
            beginning: 7,
            last: 20,
            empty: false,
        };
        assert!(holding.check_start(InputPosition(7)).is_ok());
        assert!(holding.check_start(InputPosition(21)).is_ok());
        let refused = holding.check_start(InputPosition::START);
        assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
        let past_the_end = holding.check_start(InputPosition(22));
        assert!(matches!(past_the_end, Err(Error::InvalidArgument { .. })));

        assert_eq!(holding.clamp_start(InputPosition::START), InputPosition(7));
        assert_eq!(holding.clamp_start(InputPosition(9)), InputPosition(9));
    }
}
