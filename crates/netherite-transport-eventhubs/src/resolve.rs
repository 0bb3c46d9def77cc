//! Learning the sequence numbers of the events a send appended.
//!
//! Event Hubs acknowledges a batch without saying which sequence numbers it gave, and the
//! contract wants them back from `send`. A node sends to one partition one call at a time
//! (a lock per partition), and around the call it asks the service for the partition's last
//! sequence number, before and after:
//!
//! ```text
//!   before = 41         the call appends its n = 3 events         after = 44
//!   ... 40 41 | 42 43 44 |            gap = after - before = 3 = n: the events are 42, 43, 44
//!   ... 40 41 | 42 x 43 44 45 |       gap = 4 > n: another node sent in between
//! ```
//!
//! Every event number appended in the gap belongs to a send that overlapped this one. When the
//! gap is exactly `n`, those are this call's events, in order (batches are appended whole and
//! one after the other). Otherwise (others sent too, or the SDK retried a batch and appended
//! it twice) the sender reads the partition back from `before` and picks its own events by the
//! tag in their header ([`Finder`]), taking the first copy of each.
//!
//! This assumes that the service's last sequence number reflects every acknowledged event,
//! and that an acknowledged batch was appended. The SDK reports the AMQP outcomes Released and
//! Modified as success (with a warning in its log), so a batch answered so would be taken for
//! appended on the exact path; whether Event Hubs ever answers so was not checked here. A
//! read-back finds such a batch missing and fails the send.

use netherite_core::{Error, InputPosition};

use crate::position::position;
use crate::wire::Tag;

/// What the sequence numbers around a send tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The positions of the send's events, in order.
    Exact(Vec<InputPosition>),
    /// The gap holds other events too: read back from `before` to find them.
    ReadBack,
}

/// The positions of `count` events sent between the last sequence numbers `before` and
/// `after`, if the numbers tell them.
pub(crate) fn resolve(before: i64, after: i64, count: usize) -> Result<Resolved, Error> {
    let gap = i128::from(after) - i128::from(before);
    if gap != count as i128 {
        return Ok(Resolved::ReadBack);
    }
    let first = before.saturating_add(1);
    let numbers = (0..count as i64).map(|i| first.saturating_add(i));
    Ok(Resolved::Exact(
        numbers.map(position).collect::<Result<_, _>>()?,
    ))
}

/// Picks a send's events out of a read-back, by their tags.
#[derive(Debug)]
pub(crate) struct Finder {
    send: u64,
    found: Vec<Option<InputPosition>>,
    missing: usize,
}

impl Finder {
    /// Looks for events `0..count` of the send tagged `send`.
    pub(crate) fn new(send: u64, count: usize) -> Finder {
        Finder {
            send,
            found: vec![None; count],
            missing: count,
        }
    }

    /// Takes note of an event read back at `position` with `tag`.
    pub(crate) fn offer(&mut self, position: InputPosition, tag: Tag) {
        if tag.send != self.send {
            return;
        }
        let slot = usize::try_from(tag.index)
            .ok()
            .and_then(|i| self.found.get_mut(i));
        if let Some(slot @ None) = slot {
            *slot = Some(position);
            self.missing -= 1;
        }
    }

    /// Whether every event was found.
    pub(crate) fn is_done(&self) -> bool {
        self.missing == 0
    }

    /// The positions found, in send order; an error when some are missing (the outcome of the
    /// send is then unknown) or out of order.
    pub(crate) fn positions(self) -> Result<Vec<InputPosition>, Error> {
        let count = self.found.len();
        let positions: Vec<InputPosition> = self.found.into_iter().flatten().collect();
        if positions.len() != count {
            return Err(Error::Io {
                operation: "send",
                reason: format!(
                    "{} of the {count} events sent were not found in the partition; \
                     the outcome of the send is unknown",
                    count - positions.len()
                ),
            });
        }
        if positions.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Io {
                operation: "send",
                reason: format!("the events sent came back out of order: {positions:?}"),
            });
        }
        Ok(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(send: u64, index: u32) -> Tag {
        Tag { send, index }
    }

    /// A gap of exactly the batch's size gives its positions; a first send into an empty
    /// partition starts at 0.
    #[test]
    fn an_undisturbed_send_is_resolved_exactly() {
        let exact = |ps: &[u64]| Resolved::Exact(ps.iter().map(|p| InputPosition(*p)).collect());
        assert_eq!(resolve(41, 44, 3).unwrap(), exact(&[42, 43, 44]));
        assert_eq!(resolve(-1, 1, 2).unwrap(), exact(&[0, 1]));
        assert_eq!(resolve(9, 9, 0).unwrap(), exact(&[]));
    }

    /// A wider gap (others sent too, or a batch was appended twice) or a narrower one (the
    /// send did not land whole) needs a read-back.
    #[test]
    fn a_disturbed_send_is_read_back() {
        assert_eq!(resolve(41, 45, 3).unwrap(), Resolved::ReadBack);
        assert_eq!(resolve(41, 43, 3).unwrap(), Resolved::ReadBack);
    }

    /// The finder keeps the first copy of each of its events and ignores everyone else's.
    #[test]
    fn the_finder_picks_its_own_first_copies() {
        let mut finder = Finder::new(7, 3);
        finder.offer(InputPosition(42), tag(7, 0));
        finder.offer(InputPosition(43), tag(8, 0));
        finder.offer(InputPosition(44), tag(7, 1));
        assert!(!finder.is_done());
        finder.offer(InputPosition(45), tag(7, 0));
        finder.offer(InputPosition(46), tag(7, 2));
        finder.offer(InputPosition(47), tag(7, 9));
        assert!(finder.is_done());
        let positions = finder.positions().unwrap();
        assert_eq!(
            positions,
            [42, 44, 46].map(InputPosition).to_vec(),
            "first copies, in order"
        );
    }

    /// Events that never showed up leave the outcome unknown: a retryable error.
    #[test]
    fn missing_events_are_an_io_error() {
        let mut finder = Finder::new(7, 2);
        finder.offer(InputPosition(42), tag(7, 1));
        assert!(matches!(finder.positions(), Err(Error::Io { .. })));
    }
}
