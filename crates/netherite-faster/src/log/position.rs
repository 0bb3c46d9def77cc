//! Positions and record kinds: the two small values every caller of the log handles.

use std::fmt;

use crate::Error;

/// Where something starts in the commit log: a byte offset on the device.
///
/// A record's position is the offset of its first byte; [`LogRecord::end`] is where whatever
/// follows it starts. Both are valid places to start a scan or to recover from, and positions
/// only grow. They are not dense: the engine keeps its own dense commit positions and maps
/// them onto these.
///
/// [`LogRecord::end`]: super::LogRecord::end
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition(pub u64);

impl LogPosition {
    /// The start of a log that was never truncated.
    pub const ZERO: LogPosition = LogPosition(0);

    /// The byte offset on the device.
    pub fn offset(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// What a record holds, as its writer labels it: a number up to [`RecordKind::MAX`].
///
/// The log stores the kind and hands it back on scans; it gives it no meaning. Values above
/// `MAX` are kept for the log's own frames (batch headers and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKind(u16);

impl RecordKind {
    /// The largest kind a caller may use.
    pub const MAX: u16 = 0xFEFF;

    /// The kind `value`, or [`Error::InvalidArgument`] when it is above [`RecordKind::MAX`].
    ///
    /// ```
    /// use netherite_faster::log::RecordKind;
    ///
    /// assert_eq!(RecordKind::new(7)?.value(), 7);
    /// assert!(RecordKind::new(0xFFFF).is_err());
    /// # Ok::<(), netherite_faster::Error>(())
    /// ```
    pub fn new(value: u16) -> Result<RecordKind, Error> {
        if value > RecordKind::MAX {
            return Err(Error::InvalidArgument {
                operation: "RecordKind::new",
                reason: format!("kind {value:#x} is above {:#x}", RecordKind::MAX),
            });
        }
        Ok(RecordKind(value))
    }

    /// The number.
    pub fn value(self) -> u16 {
        self.0
    }

    /// A kind read back from a frame whose header already passed its checks.
    pub(crate) fn from_frame(value: u16) -> RecordKind {
        RecordKind(value)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
