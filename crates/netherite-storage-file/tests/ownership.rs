//! The directory lock as the ownership fence: one owner at a time, in this process or across
//! processes, and the lock goes away with its holder.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use netherite_core::device::LogDevice;
use netherite_storage_file::{Error, FileDevice, FileDeviceOptions};

/// Set in the child process of `another_process_holds_the_lock_until_killed`.
const CHILD_DIR: &str = "NETHERITE_FILE_LOCK_CHILD_DIR";

/// A second open in the same process fails with an error naming the directory; release and
/// drop each let the next owner in, and a released handle is fenced.
#[tokio::test]
async fn one_owner_per_directory_in_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileDeviceOptions::default();
    let first = FileDevice::open(dir.path(), options).await.unwrap();

    // Phase 1: a second open is refused, naming the directory and this process.
    let error = FileDevice::open(dir.path(), options).await.unwrap_err();
    let Error::Locked {
        dir: locked,
        holder,
        ..
    } = &error
    else {
        panic!("expected Locked, got {error:?}");
    };
    assert_eq!(locked, dir.path());
    assert!(holder.ends_with("this process"), "{holder}");
    assert!(matches!(
        netherite_core::Error::from(error),
        netherite_core::Error::Fenced(_)
    ));

    // Phase 2: after release, the old handle is fenced and the next owner gets in.
    first.write(0, &[1; 4096]).await.unwrap();
    first.release().await.unwrap();
    let fenced = first.write(4096, &[2; 4096]).await.unwrap_err();
    assert!(
        matches!(fenced, netherite_core::Error::Fenced(_)),
        "{fenced}"
    );
    let second = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!(second.size(), 4096);

    // Phase 3: dropping a handle unlocks the directory too.
    drop(second);
    FileDevice::open(dir.path(), options).await.unwrap();
}

/// Release is idempotent, and calls after it fail as fenced rather than touching the files.
#[tokio::test]
async fn a_released_handle_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let device = FileDevice::open(dir.path(), FileDeviceOptions::default())
        .await
        .unwrap();
    device.write(0, &[3; 4096]).await.unwrap();
    device.release().await.unwrap();
    device.release().await.unwrap();

    let errors = [
        device.flush().await.unwrap_err(),
        device.truncate_before(0).await.unwrap_err(),
        device.read(0, 1).await.unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, netherite_core::Error::Fenced(_)), "{error}");
    }
}

/// Another process holding the directory keeps this one out, with an error naming that
/// process; when it is killed (kill -9, no chance to clean up) the kernel drops its lock and
/// this process gets in.
#[tokio::test]
async fn another_process_holds_the_lock_until_killed() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        return hold_until_killed(PathBuf::from(dir)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = FileDeviceOptions::default();

    // Phase 1: the child opens the device and says so.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "another_process_holds_the_lock_until_killed"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The test harness may print the test's name on the same line, before the child's words.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let said = stdout.lines().map_while(Result::ok).find_map(|line| {
        let (_, pid) = line.split_once("holding ")?;
        Some(pid.to_string())
    });
    assert_eq!(said, Some(child.id().to_string()));

    // Phase 2: this process is refused, and told who holds the directory.
    let error = FileDevice::open(dir.path(), options).await.unwrap_err();
    let Error::Locked { holder, .. } = &error else {
        child.kill().unwrap();
        panic!("expected Locked, got {error:?}");
    };
    assert_eq!(*holder, format!("pid {}", child.id()));

    // Phase 3: kill -9; the lock dies with the process.
    child.kill().unwrap();
    child.wait().unwrap();
    let device = FileDevice::open(dir.path(), options).await.unwrap();
    assert_eq!(device.read(0, 4).await.unwrap(), vec![9; 4]);
}

/// The child's side: open, write a page, say so, then wait to be killed (or give up after a
/// minute, so that a lost parent does not leave it behind).
async fn hold_until_killed(dir: PathBuf) {
    let options = FileDeviceOptions::default();
    let device = FileDevice::open(&dir, options)
        .await
        .expect("the child opens");
    device.write(0, &[9; 4096]).await.expect("the child writes");
    println!("holding {}", std::process::id());
    tokio::time::sleep(Duration::from_secs(60)).await;
    panic!("the parent did not kill this child within a minute");
}
