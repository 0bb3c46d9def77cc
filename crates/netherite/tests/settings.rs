//! Settings from each source and their precedence (environment > file > defaults), bad values
//! named with their setting and source, and the task hub file: created once, checked on
//! reopen, refused when it disagrees or is damaged.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netherite::Error;
use netherite::settings::{Secret, Settings, StorageKind};
use netherite::taskhub::{self, TASKHUB_FILE, TaskHub};

const NO_ENV: [(&str, &str); 0] = [];

fn write_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("netherite.toml");
    std::fs::write(&path, text).expect("the settings file is written");
    path
}

/// The defaults are the documented ones and pass their own checks.
#[test]
fn defaults_are_documented_values() {
    let settings = Settings::default();
    assert_eq!(settings.partition_count, 12);
    assert_eq!(settings.data_dir, Path::new("./netherite-data"));
    assert_eq!(settings.checkpoint_log_bytes_max, 20 << 20);
    assert_eq!(settings.checkpoint_events_max, 10_000);
    assert_eq!(settings.checkpoint_idle, Duration::from_secs(60));
    assert_eq!(settings.payload_bytes_max, 1 << 20);
    settings.validate().expect("valid defaults");
}

/// Settings built in code are checked by `validate`, which names the setting.
#[test]
fn code_settings_are_validated() {
    let settings = Settings::default().with_partition_count(0);
    let error = settings.validate().expect_err("zero partitions");
    assert!(
        matches!(
            &error,
            Error::InvalidSetting { setting: "partition_count", origin, .. } if origin == "code"
        ),
        "{error}"
    );
    let settings = Settings {
        checkpoint_idle: Duration::ZERO,
        ..Settings::default()
    };
    let error = settings.validate().expect_err("no idle time");
    assert!(error.to_string().contains("checkpoint_idle"), "{error}");
    let settings = Settings {
        partition_lease: Duration::from_millis(100),
        ..Settings::default()
    };
    let error = settings.validate().expect_err("a lease too short to renew");
    assert!(error.to_string().contains("partition_lease"), "{error}");
}

/// Every setting can come from a TOML file, as an integer or as a string with a unit; what
/// the file leaves out keeps its default.
#[test]
fn a_file_sets_every_setting() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = write_file(
        dir.path(),
        r#"
            partition_count = 4
            data_dir = "/var/lib/hub"
            checkpoint_log_bytes_max = "64 MiB"
            checkpoint_events_max = 5_000
            checkpoint_idle = "30s"
            activities_concurrency_max = "8"
            orchestrations_concurrency_max = 16
            payload_bytes_max = 65536
            partition_lease = "4s"
            storage = "pageblob"
            storage_connection = "UseDevelopmentStorage=true"
            storage_container = "hub-a"
            storage_lease = "20s"
        "#,
    );
    let settings = Settings::from_toml_file(&path).expect("a good file");
    let expected = Settings {
        partition_count: 4,
        data_dir: "/var/lib/hub".into(),
        checkpoint_log_bytes_max: 64 << 20,
        checkpoint_events_max: 5_000,
        checkpoint_idle: Duration::from_secs(30),
        activities_concurrency_max: 8,
        orchestrations_concurrency_max: 16,
        payload_bytes_max: 65536,
        partition_lease: Duration::from_secs(4),
        storage: StorageKind::PageBlob,
        storage_connection: Some(Secret::new("UseDevelopmentStorage=true")),
        storage_container: "hub-a".into(),
        storage_lease: Duration::from_secs(20),
    };
    assert_eq!(settings, expected);

    let partial = write_file(dir.path(), "partition_count = 2\n");
    let settings = Settings::from_toml_file(&partial).expect("a good file");
    assert_eq!(settings, Settings::default().with_partition_count(2));
}

/// Environment variables override the file, which overrides the defaults; variables that
/// name no setting are ignored.
#[test]
fn environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = write_file(
        dir.path(),
        "partition_count = 4\ncheckpoint_idle = \"30s\"\n",
    );
    let env = [
        ("NETHERITE_PARTITION_COUNT", "6"),
        ("NETHERITE_DATA_DIR", "/srv/netherite"),
        ("NETHERITE_PAYLOAD_BYTES_MAX", "2 MiB"),
        ("NETHERITE_SOMETHING_ELSE", "ignored"),
        ("PATH", "/usr/bin"),
    ];
    let settings = Settings::load_with_env(Some(&path), env).expect("good values");

    assert_eq!(settings.partition_count, 6, "environment over file");
    assert_eq!(
        settings.checkpoint_idle,
        Duration::from_secs(30),
        "file over default"
    );
    assert_eq!(settings.data_dir, Path::new("/srv/netherite"));
    assert_eq!(settings.payload_bytes_max, 2 << 20);
    assert_eq!(settings.checkpoint_events_max, 10_000, "default kept");

    let without_file = Settings::load_with_env(None, NO_ENV).expect("defaults");
    assert_eq!(without_file, Settings::default());
}

/// The environment variable that marks the child run of the next test.
const CHILD_ENV: &str = "NETHERITE_SETTINGS_TEST_CHILD";

/// `Settings::load` reads the real process environment: the test runs itself as a child with
/// variables set and checks what the child loaded.
#[test]
fn load_reads_the_process_environment() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let settings = Settings::load(None).expect("good values");
        assert_eq!(settings.partition_count, 7);
        assert_eq!(settings.checkpoint_idle, Duration::from_millis(1500));
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let status = Command::new(exe)
        .args(["load_reads_the_process_environment", "--exact"])
        .env(CHILD_ENV, "1")
        .env("NETHERITE_PARTITION_COUNT", "7")
        .env("NETHERITE_CHECKPOINT_IDLE", "1500ms")
        .status()
        .expect("the child runs");
    assert!(status.success(), "the child saw other settings: {status}");
}

/// A bad value is refused with the setting's name, where it came from and the value.
#[test]
fn bad_values_name_setting_and_source() {
    let cases = [
        (
            "NETHERITE_PARTITION_COUNT",
            "0",
            "partition_count",
            "not within 1..=1024",
        ),
        (
            "NETHERITE_PARTITION_COUNT",
            "twelve",
            "partition_count",
            "`twelve`",
        ),
        (
            "NETHERITE_PARTITION_COUNT",
            "5000",
            "partition_count",
            "5000",
        ),
        (
            "NETHERITE_CHECKPOINT_IDLE",
            "60",
            "checkpoint_idle",
            "needs a unit",
        ),
        (
            "NETHERITE_CHECKPOINT_EVENTS_MAX",
            "0",
            "checkpoint_events_max",
            "below the minimum, 1",
        ),
        (
            "NETHERITE_PAYLOAD_BYTES_MAX",
            "1 TB",
            "payload_bytes_max",
            "unknown unit `TB`",
        ),
        (
            "NETHERITE_PAYLOAD_BYTES_MAX",
            "1 GiB",
            "payload_bytes_max",
            "64 MiB",
        ),
        ("NETHERITE_DATA_DIR", "", "data_dir", "empty"),
        (
            "NETHERITE_STORAGE_LEASE",
            "20500ms",
            "storage_lease",
            "whole number of seconds",
        ),
        (
            "NETHERITE_ACTIVITIES_CONCURRENCY_MAX",
            "-1",
            "activities_concurrency_max",
            "`-1`",
        ),
    ];
    for (variable, value, setting, says) in cases {
        let error = Settings::load_with_env(None, [(variable, value)]).expect_err(variable);
        let Error::InvalidSetting {
            setting: named,
            origin,
            ..
        } = &error
        else {
            panic!("{variable}={value}: expected InvalidSetting, got {error:?}");
        };
        assert_eq!((*named, origin.as_str()), (setting, variable));
        println!("{error}");
        assert!(
            error.to_string().contains(says),
            "{error} should say {says}"
        );
    }
}

/// In a file, a bad value names the file; an unknown key, a wrong type or broken TOML is a
/// settings-file error naming the file and the problem, never quoting what may be a secret.
#[test]
fn bad_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad_value = write_file(dir.path(), "checkpoint_log_bytes_max = \"lots\"\n");
    let error = Settings::from_toml_file(&bad_value).expect_err("bad value");
    let message = error.to_string();
    assert!(message.contains("checkpoint_log_bytes_max"), "{message}");
    assert!(
        message.contains(&bad_value.display().to_string()),
        "{message}"
    );

    let cases = [
        ("partiton_count = 4\n", "unknown setting `partiton_count`"),
        ("partition_count = true\n", "expected a number or a string"),
        ("partition_count = = 4\n", "TOML"),
    ];
    for (text, says) in cases {
        let path = write_file(dir.path(), text);
        let error = Settings::from_toml_file(&path).expect_err(text);
        let message = error.to_string();
        println!("{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        if says != "TOML" {
            assert!(message.contains(says), "{message} should say {says}");
        }
    }

    let unquoted = write_file(
        dir.path(),
        "partition_count = 4\nstorage_connection = AccountName=a;AccountKey=SECRETKEY\n",
    );
    let message = Settings::from_toml_file(&unquoted)
        .expect_err("not TOML")
        .to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(
        !message.contains("SECRETKEY"),
        "the key is quoted: {message}"
    );
    let table = write_file(dir.path(), "storage_connection = [\"SECRETKEY\"]\n");
    let message = Settings::from_toml_file(&table)
        .expect_err("an array")
        .to_string();
    assert!(
        !message.contains("SECRETKEY"),
        "the key is quoted: {message}"
    );

    let missing = dir.path().join("absent.toml");
    let error = Settings::load_with_env(Some(&missing), NO_ENV).expect_err("no file");
    assert!(matches!(error, Error::SettingsFile { .. }), "{error}");
}

/// The task hub file is written on first use and read back on reopen; the directory is
/// locked while open.
#[test]
fn the_hub_file_is_written_once_and_read_back() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let settings = Settings::default()
        .with_data_dir(&data)
        .with_partition_count(3);

    let hub = TaskHub::open_with(&settings).expect("a new hub");
    let created = hub.meta().clone();
    assert_eq!(created.partition_count, 3);
    assert_eq!(
        hub.input_dir(netherite_core::PartitionId(2)),
        data.join("p02/input")
    );
    let again = TaskHub::open_with(&settings).expect_err("locked while open");
    assert!(matches!(again, Error::TaskHubLocked { .. }), "{again}");
    drop(hub);

    let hub = TaskHub::open_with(&settings).expect("reopened");
    assert_eq!(hub.meta(), &created, "the file is not rewritten");
    assert_eq!(taskhub::read(&data).expect("readable"), Some(created));
}

/// Reopening with another partition count is refused with a message that says both counts.
#[test]
fn a_partition_count_mismatch_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    drop(TaskHub::open(dir.path(), 12).expect("a new hub"));

    let error = TaskHub::open(dir.path(), 4).expect_err("the count is fixed");
    let expected = format!(
        "task hub {} was created with 12 partitions; settings ask for 4",
        dir.path().display()
    );
    assert_eq!(error.to_string(), expected);
}

/// A damaged task hub file is refused, naming the file; so is a directory with partition
/// folders but no task hub file.
#[test]
fn a_corrupt_hub_file_is_refused() {
    let cases: [&[u8]; 4] = [
        b"format_version = 1\npartition_count = \n",
        b"format_version = 1\ncreated_unix_ms = 5\n",
        b"format_version = 1\npartition_count = 0\ncreated_unix_ms = 5\n",
        b"\xff\xfe garbage",
    ];
    for bytes in cases {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(TASKHUB_FILE);
        std::fs::write(&path, bytes).expect("the file is written");
        let error = TaskHub::open(dir.path(), 4).expect_err("corrupt");
        assert!(matches!(error, Error::TaskHubCorrupt { .. }), "{error}");
        println!("{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(dir.path().join("p00/input")).expect("a partition folder");
    let error = TaskHub::open(dir.path(), 4).expect_err("no hub file");
    assert!(error.to_string().contains("missing"), "{error}");
}

/// A storage connection string is a secret: settings print without it, and an error about
/// the storage never quotes it; pageblob storage without one is refused.
#[test]
fn the_storage_connection_is_never_printed() {
    let key = "AccountKey=c2VjcmV0LWtleQ==";
    let env = [
        ("NETHERITE_STORAGE", "pageblob"),
        ("NETHERITE_STORAGE_CONNECTION", key),
    ];
    let settings = Settings::load_with_env(None, env).expect("good values");
    assert_eq!(settings.storage, StorageKind::PageBlob);
    assert!(
        !format!("{settings:?}").contains("c2VjcmV0"),
        "{settings:?}"
    );

    let missing = Settings {
        storage: StorageKind::PageBlob,
        ..Settings::default()
    };
    let error = missing.validate().expect_err("no connection string");
    assert!(error.to_string().contains("storage_connection"), "{error}");

    let env = [("NETHERITE_STORAGE", "s3")];
    let error = Settings::load_with_env(None, env).expect_err("no such storage");
    assert!(error.to_string().contains("file or pageblob"), "{error}");
}
