//! Failure details: what went wrong in an activity, a sub-orchestration or an orchestration.
//!
//! A failure may have an inner failure, and that one another: a chain. Encoding and decoding a
//! chain recurse once per level, so chains are bounded ([`FAILURE_DEPTH_MAX`]): a record
//! holding a deeper one is refused with a typed error instead of exhausting the stack, which
//! would otherwise happen on every replay of the log that holds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most levels a chain of failures (a failure and its inner failures) may have in a
/// record (limit `failure_depth_max`). It is above the nesting a gRPC message can carry, and
/// [`FailureDetails::caused_by`] keeps every chain it builds within it.
pub const FAILURE_DEPTH_MAX: usize = 128;

/// A failure with its type, message, optional stack trace and the failure that caused it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// The kind of error, for example an exception's type name.
    pub error_type: String,
    /// A human-readable message.
    pub error_message: String,
    /// Where it happened, when the worker supplied it.
    pub stack_trace: Option<String>,
    /// The failure that caused this one.
    #[serde(with = "nesting")]
    pub inner_failure: Option<Box<FailureDetails>>,
    /// Whether retry policies should give up immediately.
    pub is_non_retriable: bool,
    /// Extra properties; each value is JSON text.
    pub properties: BTreeMap<String, String>,
}

impl FailureDetails {
    /// A failure with just a type and a message.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        FailureDetails {
            error_type: error_type.into(),
            error_message: error_message.into(),
            ..FailureDetails::default()
        }
    }

    /// The same failure, caused by `inner`.
    ///
    /// The chain keeps at most [`FAILURE_DEPTH_MAX`] levels: past that, the innermost
    /// failures are dropped, so a failure passed up through many levels still encodes.
    pub fn caused_by(mut self, mut inner: FailureDetails) -> Self {
        inner.keep_levels(FAILURE_DEPTH_MAX - 1);
        drop_chain(self.inner_failure.replace(Box::new(inner)));
        self
    }

    /// How many levels the chain has: 1 for a failure without an inner one.
    pub fn depth(&self) -> usize {
        std::iter::successors(Some(self), |failure| failure.inner_failure.as_deref()).count()
    }

    /// Drops the inner failures below the first `levels` levels (this one always stays).
    fn keep_levels(&mut self, levels: usize) {
        let mut level = self;
        for _ in 1..levels.max(1) {
            match level.inner_failure.as_deref_mut() {
                Some(inner) => level = inner,
                None => return,
            }
        }
        drop_chain(level.inner_failure.take());
    }
}

/// Drops a chain one level at a time: the derived drop would recurse once per level.
fn drop_chain(mut chain: Option<Box<FailureDetails>>) {
    while let Some(mut failure) = chain {
        chain = failure.inner_failure.take();
    }
}

/// Serde for `inner_failure` that counts the levels of the chain being encoded or decoded.
///
/// The count lives in a thread-local: encoding and decoding a value run on one thread from
/// start to end, and a guard puts the count back on every way out, errors included.
mod nesting {
    use std::cell::Cell;

    use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser};

    use super::{FAILURE_DEPTH_MAX, FailureDetails};

    thread_local! {
        static LEVEL: Cell<usize> = const { Cell::new(0) };
    }

    /// One level entered; leaving it (dropping the guard) counts it back down.
    struct Level;

    impl Level {
        fn enter() -> Result<Level, String> {
            let level = LEVEL.with(Cell::get) + 1;
            if level > FAILURE_DEPTH_MAX {
                return Err(format!(
                    "failure chain deeper than failure_depth_max {FAILURE_DEPTH_MAX}"
                ));
            }
            LEVEL.with(|cell| cell.set(level));
            Ok(Level)
        }
    }

    impl Drop for Level {
        fn drop(&mut self) {
            LEVEL.with(|cell| cell.set(cell.get() - 1));
        }
    }

    pub(super) fn serialize<S: Serializer>(
        inner: &Option<Box<FailureDetails>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let _level = Level::enter().map_err(ser::Error::custom)?;
        inner.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Box<FailureDetails>>, D::Error> {
        let _level = Level::enter().map_err(de::Error::custom)?;
        Option::<Box<FailureDetails>>::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `levels` failures named after their levels, built level by level.
    fn chain(levels: usize, name: impl Fn(usize) -> FailureDetails) -> FailureDetails {
        let mut failure = name(0);
        for level in 1..levels {
            let mut outer = name(level);
            outer.inner_failure = Some(Box::new(failure));
            failure = outer;
        }
        failure
    }

    fn named(level: usize) -> FailureDetails {
        FailureDetails::new(format!("E{level}"), "failed")
    }

    /// The postcard bytes of a chain of `levels` empty failures, written by hand, so a test
    /// can hold a chain too deep to build.
    fn chain_bytes(levels: usize) -> Vec<u8> {
        // Per level: type "", message "", no stack trace, then `Some` (or `None` at the end).
        let mut bytes = [0, 0, 0, 1].repeat(levels - 1);
        bytes.extend([0, 0, 0, 0]);
        // Closing each level: not non-retriable, no properties.
        bytes.extend([0, 0].repeat(levels));
        bytes
    }

    /// A chain at the bound encodes and decodes; one level more is refused both ways, with an
    /// error rather than a stack overflow.
    #[test]
    fn chains_are_bounded_both_ways() {
        let empty = chain(3, |_| FailureDetails::default());
        assert_eq!(
            postcard::to_stdvec(&empty).ok(),
            Some(chain_bytes(3)),
            "bytes by hand"
        );

        let deepest = chain(FAILURE_DEPTH_MAX, named);
        let bytes = postcard::to_stdvec(&deepest).expect("at the bound");
        let decoded: FailureDetails = postcard::from_bytes(&bytes).expect("at the bound");
        assert_eq!(decoded, deepest);

        assert!(postcard::to_stdvec(&chain(FAILURE_DEPTH_MAX + 1, named)).is_err());
        for levels in [FAILURE_DEPTH_MAX + 1, 100_000] {
            let refused = postcard::from_bytes::<FailureDetails>(&chain_bytes(levels));
            assert!(refused.is_err(), "{levels} levels");
        }
        let after = postcard::from_bytes::<FailureDetails>(&chain_bytes(2));
        assert_eq!(
            after.map(|f| f.depth()).ok(),
            Some(2),
            "the count was put back"
        );
    }

    /// Wrapping keeps a chain within the bound by dropping its innermost failures.
    #[test]
    fn caused_by_keeps_the_outer_levels() {
        let outer = || FailureDetails::new("Outer", "wraps");
        let wrapped = outer().caused_by(chain(FAILURE_DEPTH_MAX, named));

        assert_eq!(wrapped.depth(), FAILURE_DEPTH_MAX);
        let kept = wrapped.inner_failure.as_deref().expect("an inner failure");
        assert_eq!(kept.error_type, format!("E{}", FAILURE_DEPTH_MAX - 1));
        assert!(postcard::to_stdvec(&wrapped).is_ok());
        assert_eq!(outer().caused_by(chain(2, named)).depth(), 3);
    }
}
