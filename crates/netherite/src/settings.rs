//! The engine's settings, from code, from a TOML file and from environment variables.
//!
//! [`Settings`] is a plain struct with [`Default`]: build it with a struct literal in code, or
//! load it with [`Settings::load`], which starts from the defaults, applies a TOML file if one
//! is given, then the environment. The later source wins: **environment > file > defaults**.
//! Every value is checked where it is read, and a bad one is an [`Error::InvalidSetting`]
//! naming the setting, where the value came from and the value itself; a file that names a
//! setting that does not exist is refused too, so a typo cannot go unnoticed.
//!
//! | setting (TOML key)               | environment (`NETHERITE_` + ...) | default            |
//! |----------------------------------|----------------------------------|--------------------|
//! | `partition_count`                | `PARTITION_COUNT`                | `12`               |
//! | `data_dir`                       | `DATA_DIR`                       | `./netherite-data` |
//! | `checkpoint_log_bytes_max`       | `CHECKPOINT_LOG_BYTES_MAX`       | `20 MiB`           |
//! | `checkpoint_events_max`          | `CHECKPOINT_EVENTS_MAX`          | `10000`            |
//! | `checkpoint_idle`                | `CHECKPOINT_IDLE`                | `60s`              |
//! | `activities_concurrency_max`     | `ACTIVITIES_CONCURRENCY_MAX`     | `100`              |
//! | `orchestrations_concurrency_max` | `ORCHESTRATIONS_CONCURRENCY_MAX` | `100`              |
//! | `payload_bytes_max`              | `PAYLOAD_BYTES_MAX`              | `1 MiB`            |
//! | `partition_lease`                | `PARTITION_LEASE`                | `10s`              |
//! | `storage`                        | `STORAGE`                        | `file`             |
//! | `storage_connection`             | `STORAGE_CONNECTION`             | none               |
//! | `storage_container`              | `STORAGE_CONTAINER`              | `netherite`        |
//! | `storage_lease`                  | `STORAGE_LEASE`                  | `30s`              |
//!
//! So `partition_count` is `NETHERITE_PARTITION_COUNT` in the environment. Value syntax, the
//! same in a file and in the environment:
//!
//! - counts are whole numbers, `_` allowed as a separator (`10_000`);
//! - byte sizes are a whole number of bytes, or a number with a unit `B`, `KiB`, `MiB` or
//!   `GiB` (`20 MiB`, `512KiB`);
//! - durations are a number with a unit `ms`, `s`, `m` or `h` (`60s`, `500ms`);
//! - `data_dir` is a path; a relative one is relative to the working directory of the
//!   process (not to the settings file);
//! - `storage` is `file` (partition state in `data_dir`) or `pageblob` (in Azure page blobs,
//!   feature `pageblob`, in the container `storage_container` of the storage account that the
//!   connection string `storage_connection` names; `UseDevelopmentStorage=true` is Azurite).
//!   The connection string is a secret: it is never printed, and an error about it never
//!   quotes it.
//!
//! In a TOML file, numbers may be written as TOML integers or as strings:
//!
//! ```toml
//! partition_count = 4
//! data_dir = "/var/lib/netherite"
//! checkpoint_log_bytes_max = "64 MiB"
//! checkpoint_idle = "30s"
//! ```
//!
//! The partition count is fixed when a data directory is first used (see
//! [`taskhub`](crate::taskhub)); changing it later is refused when the directory is reopened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// The largest partition count a task hub may have.
pub const PARTITION_COUNT_MAX: u32 = 1024;

/// The largest `payload_bytes_max` accepted: 64 MiB. Larger payloads belong in blob storage,
/// with a reference in the workflow.
pub const PAYLOAD_BYTES_LIMIT: u64 = 64 << 20;

/// The longest `checkpoint_idle` accepted: 30 days.
pub const CHECKPOINT_IDLE_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The shortest and longest `partition_lease` accepted: 1 second and 10 minutes.
pub const PARTITION_LEASE_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));

/// The shortest and longest `storage_lease`: 15 and 60 seconds, what blob leases allow.
pub const STORAGE_LEASE_RANGE: (Duration, Duration) =
    (Duration::from_secs(15), Duration::from_secs(60));

/// Everything the engine can be told from outside; see the [module docs](self) for the
/// sources, their precedence and the value syntax.
///
/// ```
/// use netherite::settings::Settings;
///
/// let settings = Settings {
///     partition_count: 4,
///     data_dir: "/tmp/my-hub".into(),
///     ..Settings::default()
/// };
/// settings.validate()?;
/// assert_eq!(settings.payload_bytes_max, 1 << 20);
/// # Ok::<(), netherite::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How many partitions the task hub has; fixed when its data directory is created.
    pub partition_count: u32,
    /// The directory that holds the task hub: its `taskhub.toml` and one folder per partition.
    pub data_dir: PathBuf,
    /// A partition checkpoints once its commit log grew by this many bytes since the last one.
    pub checkpoint_log_bytes_max: u64,
    /// A partition checkpoints once it applied this many events since the last one.
    pub checkpoint_events_max: u64,
    /// A partition that applied events but has been idle this long checkpoints.
    pub checkpoint_idle: Duration,
    /// The most activities that run at the same time on this node.
    pub activities_concurrency_max: u32,
    /// The most orchestration episodes that run at the same time on this node.
    pub orchestrations_concurrency_max: u32,
    /// The largest input, output or event payload accepted; a larger one is refused with an
    /// error naming this limit.
    pub payload_bytes_max: u64,
    /// When several nodes share the data directory (a task hub on Kafka), how long a node's
    /// claim on a partition lasts without renewal: a node that dies has its partitions taken
    /// over this long after its last renewal at the latest. Renewed every quarter of it.
    pub partition_lease: Duration,
    /// Where partitions keep their state.
    pub storage: StorageKind,
    /// The Azure Storage connection string, for `pageblob` storage.
    pub storage_connection: Option<Secret>,
    /// The container holding the task hub's page blobs, for `pageblob` storage: one task hub
    /// per container.
    pub storage_container: String,
    /// For `pageblob` storage, how long a process's lease on a partition's blobs lasts without
    /// renewal (15 to 60 s, as the service allows): a process that dies has its partitions
    /// opened again this long after its last renewal at the latest.
    pub storage_lease: Duration,
}

/// Where partitions keep their state (the partitions' commit logs and checkpoints; a local
/// transport keeps its input queues in `data_dir` either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// Files in `data_dir`.
    #[default]
    File,
    /// Azure page blobs (feature `pageblob`).
    PageBlob,
}

/// A secret given from outside, such as a connection string: cloned and compared like a
/// string, never printed (`Debug` shows only that it is there).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the code that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            partition_count: 12,
            data_dir: PathBuf::from("./netherite-data"),
            checkpoint_log_bytes_max: 20 << 20,
            checkpoint_events_max: 10_000,
            checkpoint_idle: Duration::from_secs(60),
            activities_concurrency_max: 100,
            orchestrations_concurrency_max: 100,
            payload_bytes_max: 1 << 20,
            partition_lease: Duration::from_secs(10),
            storage: StorageKind::File,
            storage_connection: None,
            storage_container: "netherite".into(),
            storage_lease: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// These settings with `partition_count` partitions.
    pub fn with_partition_count(self, partition_count: u32) -> Settings {
        Settings {
            partition_count,
            ..self
        }
    }

    /// These settings with the task hub in `data_dir`.
    pub fn with_data_dir(self, data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            data_dir: data_dir.into(),
            ..self
        }
    }

    /// The defaults, then the TOML file `file` if given, then the `NETHERITE_*` environment
    /// variables of this process.
    pub fn load(file: Option<&Path>) -> Result<Settings, Error> {
        Settings::load_with_env(file, process_env())
    }

    /// Like [`load`](Self::load), with `env` standing for the process environment: for
    /// embedding and tests, which should not change the real one.
    pub fn load_with_env<K, V>(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Settings, Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut settings = match file {
            Some(path) => Settings::from_toml_file(path)?,
            None => Settings::default(),
        };
        settings.apply_env(env)?;
        Ok(settings)
    }

    /// The defaults, then the `NETHERITE_*` environment variables of this process.
    pub fn from_env() -> Result<Settings, Error> {
        Settings::load(None)
    }

    /// The defaults, then the settings in the TOML file at `path`.
    pub fn from_toml_file(path: &Path) -> Result<Settings, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::SettingsFile {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        Settings::from_toml_text(&text, path)
    }

    /// The defaults, then the settings in `text`, TOML read from the file `path` (named in
    /// errors).
    pub fn from_toml_text(text: &str, path: &Path) -> Result<Settings, Error> {
        let file_error = |reason: String| Error::SettingsFile {
            path: path.to_path_buf(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(toml_error(text, &e)))?;

        let mut settings = Settings::default();
        let origin = format!("file {}", path.display());
        for (key, value) in &table {
            let field = FIELDS.iter().find(|f| f.key == key).ok_or_else(|| {
                file_error(format!("unknown setting `{key}`; known: {}", known_keys()))
            })?;
            let text = toml_text(value).map_err(|reason| field.error(&origin, reason))?;
            field.apply(&mut settings, &text, &origin)?;
        }
        Ok(settings)
    }

    /// Overrides these settings with every `NETHERITE_*` variable of `env` that names one;
    /// other variables are ignored.
    pub fn apply_env<K, V>(&mut self, env: impl IntoIterator<Item = (K, V)>) -> Result<(), Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in env {
            let Some(field) = FIELDS.iter().find(|f| f.env == name.as_ref()) else {
                continue;
            };
            field.apply(self, value.as_ref(), field.env)?;
        }
        Ok(())
    }

    /// Checks every value against its rules; settings built in code should be checked so.
    pub fn validate(&self) -> Result<(), Error> {
        let code = |setting: &'static str, check: Result<(), String>| {
            check.map_err(|reason| Error::InvalidSetting {
                setting,
                origin: "code".into(),
                reason,
            })
        };
        code(
            "partition_count",
            check_partition_count(self.partition_count),
        )?;
        code("data_dir", check_data_dir(&self.data_dir))?;
        code(
            "checkpoint_log_bytes_max",
            check_positive(self.checkpoint_log_bytes_max),
        )?;
        code(
            "checkpoint_events_max",
            check_positive(self.checkpoint_events_max),
        )?;
        code("checkpoint_idle", check_idle(self.checkpoint_idle))?;
        code(
            "activities_concurrency_max",
            check_positive(self.activities_concurrency_max.into()),
        )?;
        code(
            "orchestrations_concurrency_max",
            check_positive(self.orchestrations_concurrency_max.into()),
        )?;
        code("payload_bytes_max", check_payload(self.payload_bytes_max))?;
        code("partition_lease", check_lease(self.partition_lease))?;
        let connection = self.storage_connection.as_ref();
        code(
            "storage_connection",
            check_connection(self.storage, connection),
        )?;
        code("storage_lease", check_storage_lease(self.storage_lease))
    }
}

/// One setting: its names in a file and in the environment, and how a text value sets it.
struct Field {
    key: &'static str,
    env: &'static str,
    set: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Field {
    fn apply(&self, settings: &mut Settings, text: &str, origin: &str) -> Result<(), Error> {
        (self.set)(settings, text).map_err(|reason| self.error(origin, reason))
    }

    fn error(&self, origin: &str, reason: String) -> Error {
        Error::InvalidSetting {
            setting: self.key,
            origin: origin.to_owned(),
            reason,
        }
    }
}

const FIELDS: &[Field] = &[
    Field {
        key: "partition_count",
        env: "NETHERITE_PARTITION_COUNT",
        set: |s, text| {
            let count = parse_count(text)?;
            let count = u32::try_from(count).map_err(|_| too_large(text))?;
            check_partition_count(count)?;
            s.partition_count = count;
            Ok(())
        },
    },
    Field {
        key: "data_dir",
        env: "NETHERITE_DATA_DIR",
        set: |s, text| {
            let dir = PathBuf::from(text);
            check_data_dir(&dir)?;
            s.data_dir = dir;
            Ok(())
        },
    },
    Field {
        key: "checkpoint_log_bytes_max",
        env: "NETHERITE_CHECKPOINT_LOG_BYTES_MAX",
        set: |s, text| {
            s.checkpoint_log_bytes_max = parse_bytes(text).and_then(positive)?;
            Ok(())
        },
    },
    Field {
        key: "checkpoint_events_max",
        env: "NETHERITE_CHECKPOINT_EVENTS_MAX",
        set: |s, text| {
            s.checkpoint_events_max = parse_count(text).and_then(positive)?;
            Ok(())
        },
    },
    Field {
        key: "checkpoint_idle",
        env: "NETHERITE_CHECKPOINT_IDLE",
        set: |s, text| {
            let idle = parse_duration(text)?;
            check_idle(idle)?;
            s.checkpoint_idle = idle;
            Ok(())
        },
    },
    Field {
        key: "activities_concurrency_max",
        env: "NETHERITE_ACTIVITIES_CONCURRENCY_MAX",
        set: |s, text| {
            s.activities_concurrency_max = parse_u32(text).and_then(positive)?;
            Ok(())
        },
    },
    Field {
        key: "orchestrations_concurrency_max",
        env: "NETHERITE_ORCHESTRATIONS_CONCURRENCY_MAX",
        set: |s, text| {
            s.orchestrations_concurrency_max = parse_u32(text).and_then(positive)?;
            Ok(())
        },
    },
    Field {
        key: "payload_bytes_max",
        env: "NETHERITE_PAYLOAD_BYTES_MAX",
        set: |s, text| {
            let max = parse_bytes(text)?;
            check_payload(max)?;
            s.payload_bytes_max = max;
            Ok(())
        },
    },
    Field {
        key: "partition_lease",
        env: "NETHERITE_PARTITION_LEASE",
        set: |s, text| {
            let lease = parse_duration(text)?;
            check_lease(lease)?;
            s.partition_lease = lease;
            Ok(())
        },
    },
    Field {
        key: "storage",
        env: "NETHERITE_STORAGE",
        set: |s, text| {
            s.storage = parse_storage(text)?;
            Ok(())
        },
    },
    Field {
        key: "storage_connection",
        env: "NETHERITE_STORAGE_CONNECTION",
        // Never quoted back: it holds the account's key.
        set: |s, text| {
            s.storage_connection = Some(Secret::new(text.trim()));
            Ok(())
        },
    },
    Field {
        key: "storage_container",
        env: "NETHERITE_STORAGE_CONTAINER",
        set: |s, text| {
            s.storage_container = text.trim().to_string();
            Ok(())
        },
    },
    Field {
        key: "storage_lease",
        env: "NETHERITE_STORAGE_LEASE",
        set: |s, text| {
            let lease = parse_duration(text)?;
            check_storage_lease(lease)?;
            s.storage_lease = lease;
            Ok(())
        },
    },
];

fn known_keys() -> String {
    let keys: Vec<_> = FIELDS.iter().map(|f| f.key).collect();
    keys.join(", ")
}

/// The `NETHERITE_*` variables of this process whose names and values are UTF-8.
///
/// A non-UTF-8 value of a variable that names a setting is passed on as an empty string, so
/// that it is refused with the variable's name rather than silently skipped.
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            if !name.starts_with("NETHERITE_") {
                return None;
            }
            Some((name, value.into_string().unwrap_or_default()))
        })
        .collect()
}

/// What is wrong with text that is not TOML, placed by line and column. The offending line
/// is not quoted: it may hold a connection string.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return format!("not TOML: {message}");
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    format!("not TOML at line {line}, column {column}: {message}")
}

/// A TOML value as the text the setting parsers read. Other values are not quoted back, since
/// they may hold a secret.
fn toml_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "expected a number or a string, found a {}",
            other.type_str()
        )),
    }
}

fn too_large(text: &str) -> String {
    format!("`{text}` is too large")
}

/// A whole number, `_` allowed between digits.
fn parse_count(text: &str) -> Result<u64, String> {
    let digits: String = text.trim().chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{text}` is not a whole number"));
    }
    digits.parse().map_err(|_| too_large(text))
}

fn parse_u32(text: &str) -> Result<u32, String> {
    u32::try_from(parse_count(text)?).map_err(|_| too_large(text))
}

/// Splits `20 MiB` into `(20, "MiB")`.
fn split_unit(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let number = parse_count(&text[..end]).map_err(|_| format!("`{text}` has no number"))?;
    Ok((number, text[end..].trim()))
}

/// A byte size: a number of bytes, or a number with a unit `B`, `KiB`, `MiB` or `GiB`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text)?;
    let shift = match unit {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; use B, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| too_large(text))
}

/// A duration: a number with a unit `ms`, `s`, `m` or `h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("`{text}` needs a unit: ms, s, m or h")),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; use ms, s, m or h"
            ));
        }
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| too_large(text))?;
    Ok(Duration::from_millis(millis))
}

fn positive<T: PartialEq + Default + std::fmt::Display>(value: T) -> Result<T, String> {
    if value == T::default() {
        return Err(format!("{value} is below the minimum, 1"));
    }
    Ok(value)
}

fn check_positive(value: u64) -> Result<(), String> {
    positive(value).map(|_| ())
}

fn check_partition_count(count: u32) -> Result<(), String> {
    if (1..=PARTITION_COUNT_MAX).contains(&count) {
        return Ok(());
    }
    Err(format!("{count} is not within 1..={PARTITION_COUNT_MAX}"))
}

fn check_data_dir(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("the path is empty".into());
    }
    Ok(())
}

fn check_idle(idle: Duration) -> Result<(), String> {
    if idle.is_zero() || idle > CHECKPOINT_IDLE_LIMIT {
        return Err(format!(
            "{idle:?} is not within 1ms..={}h",
            CHECKPOINT_IDLE_LIMIT.as_secs() / 3600
        ));
    }
    Ok(())
}

fn check_lease(lease: Duration) -> Result<(), String> {
    let (min, max) = PARTITION_LEASE_RANGE;
    if lease < min || lease > max {
        return Err(format!("{lease:?} is not within {min:?}..={max:?}"));
    }
    Ok(())
}

fn check_connection(storage: StorageKind, connection: Option<&Secret>) -> Result<(), String> {
    let missing = connection.is_none_or(|secret| secret.expose().trim().is_empty());
    if storage == StorageKind::PageBlob && missing {
        return Err("pageblob storage needs a storage connection string".into());
    }
    Ok(())
}

fn check_storage_lease(lease: Duration) -> Result<(), String> {
    let (min, max) = STORAGE_LEASE_RANGE;
    if lease < min || lease > max {
        return Err(format!("{lease:?} is not within {min:?}..={max:?}"));
    }
    if lease.subsec_nanos() != 0 {
        return Err(format!(
            "{lease:?} is not a whole number of seconds, which blob leases are taken in"
        ));
    }
    Ok(())
}

fn parse_storage(text: &str) -> Result<StorageKind, String> {
    match text.trim() {
        "file" => Ok(StorageKind::File),
        "pageblob" => Ok(StorageKind::PageBlob),
        other => Err(format!("{other:?} is not a storage kind: file or pageblob")),
    }
}

fn check_payload(max: u64) -> Result<(), String> {
    if max == 0 || max > PAYLOAD_BYTES_LIMIT {
        return Err(format!(
            "{max} bytes is not within 1..={PAYLOAD_BYTES_LIMIT} (64 MiB)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units are read the same way for every byte size and duration.
    #[test]
    fn values_parse_with_units() {
        assert_eq!(parse_bytes("20 MiB"), Ok(20 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
        assert_eq!(parse_bytes("3 GiB"), Ok(3 << 30));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250 ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_count("10_000"), Ok(10_000));
    }

    /// Each malformed value says what is wrong with it.
    #[test]
    fn malformed_values_say_why() {
        let cases = [
            (parse_bytes("20 MB"), "unknown unit `MB`"),
            (parse_bytes("MiB"), "has no number"),
            (parse_bytes("-5"), "has no number"),
            (parse_bytes("99999999999 GiB"), "too large"),
            (parse_duration("60").map(|_| 0), "needs a unit"),
            (parse_duration("1 week").map(|_| 0), "unknown unit `week`"),
            (parse_count("twelve"), "not a whole number"),
            (parse_count("99999999999999999999999"), "too large"),
        ];
        for (result, expected) in cases {
            let reason = result.expect_err(expected);
            assert!(reason.contains(expected), "{reason} should say {expected}");
        }
    }
}
