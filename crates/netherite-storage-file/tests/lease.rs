//! The lease as the ownership fence: it passes to the next owner on release or expiry, and a
//! device whose lease was taken over is refused at its next operation, even when its process
//! was stopped past the lease and wakes up late.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use netherite_core::device::LogDevice;
use netherite_storage_file::{Acquired, Error, FileDevice, FileDeviceOptions, Lease};

/// Set in the child process of `a_paused_writer_is_fenced_when_it_wakes`: the volume.
const CHILD_VOLUME: &str = "NETHERITE_FILE_LEASE_CHILD_VOLUME";
/// The child's lease runs out soon after it stops, so the parent need not wait long.
const CHILD_TTL: Duration = Duration::from_millis(300);
/// What the child writes to page 0 once, then to page 1 over and over.
const CHILD_FIRST: u8 = 0xC0;
const CHILD_MARKER: u8 = 0xC1;
/// What the parent writes to page 1 once it holds the lease.
const PARENT_BYTES: u8 = 0xB2;
const PAGE: usize = 4096;
const LONG: Duration = Duration::from_secs(30);

/// The lease file and a device directory of one partition on a volume.
fn partition(volume: &Path) -> (PathBuf, PathBuf) {
    let partition = volume.join("p0");
    (partition.join("LEASE"), partition.join("log"))
}

fn take(path: &Path, owner: &str, ttl: Duration) -> Lease {
    match Lease::acquire(path, owner, ttl).expect("the lease file reads") {
        Acquired::Taken(lease) => lease,
        held => panic!("expected {owner} to take the lease, got {held:?}"),
    }
}

/// Takes the lease for `owner`, waiting for the holder's lease to run out.
fn take_when_free(path: &Path, owner: &str, ttl: Duration) -> Lease {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Lease::acquire(path, owner, ttl).expect("the lease file reads") {
            Acquired::Taken(lease) => return lease,
            Acquired::Held { expires_in, .. } => {
                assert!(Instant::now() < deadline, "the lease never ran out");
                std::thread::sleep(expires_in + Duration::from_millis(10));
            }
        }
    }
}

fn held_by(acquired: Acquired) -> (String, u64, Duration) {
    match acquired {
        Acquired::Held {
            owner,
            epoch,
            expires_in,
        } => (owner, epoch, expires_in),
        Acquired::Taken(lease) => panic!("expected the lease held, {lease:?} took it"),
    }
}

/// While a lease runs, another owner is told who holds it and for how long; once released it
/// passes on at once, under the next epoch.
#[test]
fn a_held_lease_passes_on_release() {
    let volume = tempfile::tempdir().unwrap();
    let (path, _) = partition(volume.path());
    let a = take(&path, "node-a", LONG);
    assert_eq!((a.epoch(), a.owner(), a.ttl()), (1, "node-a", LONG));

    // Phase 1: node-b is refused and told whom it waits for.
    let (owner, epoch, expires_in) = held_by(Lease::acquire(&path, "node-b", LONG).unwrap());
    assert_eq!((owner.as_str(), epoch), ("node-a", 1));
    assert!(expires_in > LONG - Duration::from_secs(5), "{expires_in:?}");

    // Phase 2: released, the lease is node-b's without waiting for the ttl.
    a.release().unwrap();
    let b = take(&path, "node-b", LONG);
    assert_eq!(b.epoch(), 2);
}

/// A lease that is not renewed runs out and passes to the next owner; the old holder's
/// renewal then fails, naming the lease file and both epochs.
#[test]
fn an_expired_lease_passes_on() {
    let volume = tempfile::tempdir().unwrap();
    let (path, _) = partition(volume.path());
    let a = take(&path, "node-a", Duration::from_millis(500));
    held_by(Lease::acquire(&path, "node-b", LONG).unwrap());

    std::thread::sleep(Duration::from_millis(600));
    let b = take(&path, "node-b", LONG);
    assert_eq!(b.epoch(), 2);

    let error = a.renew().unwrap_err();
    let Error::LeaseLost {
        epoch,
        holder_epoch,
        ref holder,
        ..
    } = error
    else {
        panic!("expected LeaseLost, got {error:?}");
    };
    assert_eq!((epoch, holder_epoch, holder.as_str()), (1, 2, "node-b"));
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

/// Each renewal pushes the lease's expiry out to a whole ttl again, and the lease stays
/// node-a's throughout.
#[test]
fn renewals_keep_the_lease() {
    let volume = tempfile::tempdir().unwrap();
    let (path, _) = partition(volume.path());
    let a = take(&path, "node-a", Duration::from_secs(3));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        let (_, _, before) = held_by(Lease::acquire(&path, "node-b", LONG).unwrap());
        a.renew().unwrap();
        let (owner, _, after) = held_by(Lease::acquire(&path, "node-b", LONG).unwrap());
        assert_eq!(owner, "node-a");
        assert!(after > before, "renewed to {after:?}, was {before:?}");
    }
}

/// A node that comes back under the same name takes its lease at once, under a new epoch,
/// and the handle it had before is fenced.
#[test]
fn the_same_owner_takes_its_lease_again() {
    let volume = tempfile::tempdir().unwrap();
    let (path, _) = partition(volume.path());
    let before = take(&path, "node-a", LONG);
    let again = take(&path, "node-a", LONG);
    assert_eq!(again.epoch(), 2);
    let error = before.renew().unwrap_err();
    assert!(matches!(error, Error::LeaseLost { .. }), "{error}");
}

/// Once another owner took the lease over and opened the directory, every operation of the
/// old device fails as the contract's `Fenced`, naming the lease and both epochs, and the new
/// owner's bytes stay as it wrote them.
#[tokio::test]
async fn a_taken_over_device_is_fenced() {
    let volume = tempfile::tempdir().unwrap();
    let (path, dir) = partition(volume.path());
    let options = FileDeviceOptions::default();

    // Phase 1: node-a holds a short lease and writes.
    let a_lease = Arc::new(take(&path, "node-a", Duration::from_millis(200)));
    let a = FileDevice::open_leased(&dir, options, Arc::clone(&a_lease))
        .await
        .unwrap();
    a.write(0, &[1; PAGE]).await.unwrap();
    a.flush().await.unwrap();

    // Phase 2: node-b waits the lease out, takes it over, opens the directory and writes.
    let b_lease = take_when_free(&path, "node-b", LONG);
    assert_eq!(b_lease.epoch(), 2);
    let b = FileDevice::open_leased(&dir, options, Arc::new(b_lease))
        .await
        .unwrap();
    assert_eq!(b.read(0, PAGE).await.unwrap(), vec![1; PAGE]);
    b.write(PAGE as u64, &[2; PAGE]).await.unwrap();
    b.flush().await.unwrap();

    // Phase 3: node-a's writes, flushes, reads and truncations are all refused.
    let refused = [
        a.write(PAGE as u64, &[9; PAGE]).await.unwrap_err(),
        a.flush().await.unwrap_err(),
        a.read(0, PAGE).await.unwrap_err(),
        a.truncate_before(PAGE as u64).await.unwrap_err(),
    ];
    for error in refused {
        let netherite_core::Error::Fenced(text) = &error else {
            panic!("expected Fenced, got {error:?}");
        };
        let parts = [
            path.display().to_string(),
            "epoch 1".into(),
            "epoch 2".into(),
        ];
        for part in parts {
            assert!(text.contains(&part), "{part}: {text}");
        }
    }
    let renewal = a_lease.renew().unwrap_err();
    assert!(matches!(renewal, Error::LeaseLost { .. }), "{renewal}");

    // Phase 4: node-b's bytes are intact.
    assert_eq!(b.read(PAGE as u64, PAGE).await.unwrap(), vec![2; PAGE]);
    assert_eq!((b.size(), b.start()), (2 * PAGE as u64, 0));
}

/// One lease covers several devices: releasing a device leaves the lease (and the other
/// devices) as they were; releasing the lease fences every device left and lets the next
/// owner in at once.
#[tokio::test]
async fn one_lease_covers_the_devices_of_a_partition() {
    let volume = tempfile::tempdir().unwrap();
    let (path, log_dir) = partition(volume.path());
    let store_dir = log_dir.with_file_name("store");
    let options = FileDeviceOptions::default();
    let lease = Arc::new(take(&path, "node-a", LONG));
    let log = FileDevice::open_leased(&log_dir, options, Arc::clone(&lease));
    let store = FileDevice::open_leased(&store_dir, options, Arc::clone(&lease));
    let (log, store) = (log.await.unwrap(), store.await.unwrap());

    // Phase 1: a released device leaves the lease held.
    log.release().await.unwrap();
    store.write(0, &[5; PAGE]).await.unwrap();
    held_by(Lease::acquire(&path, "node-b", LONG).unwrap());

    // Phase 2: a released lease fences the devices under it.
    lease.release().unwrap();
    let error = store.write(PAGE as u64, &[6; PAGE]).await.unwrap_err();
    assert!(matches!(error, netherite_core::Error::Fenced(_)), "{error}");
    assert!(error.to_string().contains("released"), "{error}");
    assert_eq!(take(&path, "node-b", LONG).epoch(), 2);
}

/// A lease file holding anything but a lease record is refused with an error naming it, not
/// taken for a free lease; damaged under its holder, it stops the devices as `Malformed`.
#[tokio::test]
async fn a_corrupt_lease_file_is_refused() {
    let volume = tempfile::tempdir().unwrap();
    let (path, dir) = partition(volume.path());
    fs::create_dir_all(path.parent().unwrap()).unwrap();

    // Phase 1: a file that is not a lease record.
    fs::write(&path, b"epoch=1 owner=node-a\n").unwrap();
    let error = Lease::acquire(&path, "node-b", LONG).unwrap_err();
    let Error::Corrupt { path: named, .. } = &error else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert_eq!(named, &path);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );

    // Phase 2: a good record damaged while its holder writes.
    fs::remove_file(&path).unwrap();
    let lease = Arc::new(take(&path, "node-a", LONG));
    let device = FileDevice::open_leased(&dir, FileDeviceOptions::default(), lease)
        .await
        .unwrap();
    device.write(0, &[1; PAGE]).await.unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xff], 20).unwrap();
    let error = device.write(PAGE as u64, &[2; PAGE]).await.unwrap_err();
    let netherite_core::Error::Malformed { source_name, .. } = &error else {
        panic!("expected Malformed, got {error:?}");
    };
    assert_eq!(*source_name, path.display().to_string());
}

/// A writer stopped (SIGSTOP) past its lease, in another process, wakes up after another owner
/// took the lease over and wrote: its next write is refused as `Fenced`, and none of its bytes
/// land after the takeover.
#[tokio::test]
async fn a_paused_writer_is_fenced_when_it_wakes() {
    if let Some(volume) = std::env::var_os(CHILD_VOLUME) {
        return write_until_fenced(PathBuf::from(volume)).await;
    }
    let volume = tempfile::tempdir().unwrap();
    let (path, dir) = partition(volume.path());

    // Phase 1: the child takes the lease, writes page 0, then keeps rewriting page 1.
    let mut child = Child::spawn(volume.path());
    child.expect_line("writing");
    std::thread::sleep(Duration::from_millis(20));

    // Phase 2: the child is stopped; this process waits its lease out and takes over.
    child.signal("STOP");
    child.wait_stopped();
    let lease = take_over(&path, &child).await;
    assert_eq!(lease.epoch(), 2);
    let options = FileDeviceOptions::default();
    let device = FileDevice::open_leased(&dir, options, Arc::new(lease))
        .await
        .unwrap();
    assert_eq!(device.read(0, PAGE).await.unwrap(), vec![CHILD_FIRST; PAGE]);
    device
        .write(PAGE as u64, &[PARENT_BYTES; PAGE])
        .await
        .unwrap();
    device.flush().await.unwrap();

    // Phase 3: woken, the child finds its next write refused as Fenced, and says so.
    child.signal("CONT");
    let said = child.expect_line("fenced");
    assert!(
        said.contains("epoch 1") && said.contains("epoch 2"),
        "{said}"
    );
    child.wait_success();

    // Phase 4: page 1 holds this process's bytes, on the device and in the file itself.
    let page = device.read(PAGE as u64, PAGE).await.unwrap();
    assert_eq!(page, vec![PARENT_BYTES; PAGE]);
    let file = fs::read(dir.join("segment-000000000000")).unwrap();
    assert_eq!(file.len(), 2 * PAGE);
    assert!(file[PAGE..].iter().all(|&b| b == PARENT_BYTES));
}

/// Takes the lease from the stopped child. A child stopped inside an operation holds the lease
/// file's shared lock, and the takeover waits for it: then the child is woken, finishes that
/// operation (it began under its own epoch), and the takeover goes through.
async fn take_over(path: &Path, child: &Child) -> Lease {
    let path = path.to_path_buf();
    let mut task = tokio::task::spawn_blocking(move || take_when_free(&path, "parent", LONG));
    if let Ok(taken) = tokio::time::timeout(Duration::from_secs(3), &mut task).await {
        return taken.expect("the takeover task ends");
    }
    child.signal("CONT");
    task.await.expect("the takeover task ends")
}

/// The child's side: take the lease, open the device, write page 0, say so, then rewrite page
/// 1 every 2 ms until a write is refused, and say why.
async fn write_until_fenced(volume: PathBuf) {
    let (path, dir) = partition(&volume);
    let lease = Arc::new(take(&path, "child", CHILD_TTL));
    let options = FileDeviceOptions::default();
    let device = FileDevice::open_leased(&dir, options, lease)
        .await
        .expect("the child opens");
    device
        .write(0, &[CHILD_FIRST; PAGE])
        .await
        .expect("the child writes");
    println!("child: writing as pid {}", std::process::id());

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written = 0u64;
    while Instant::now() < deadline {
        match device.write(PAGE as u64, &[CHILD_MARKER; PAGE]).await {
            Ok(()) => written += 1,
            Err(netherite_core::Error::Fenced(reason)) => {
                println!("child: fenced after {written} writes: {reason}");
                return;
            }
            Err(other) => panic!("child: the write failed otherwise: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("child: never fenced");
}

/// The child process, killed if the test ends early (a stopped child would stay forever).
struct Child {
    process: std::process::Child,
    lines: Receiver<String>,
}

impl Child {
    fn spawn(volume: &Path) -> Child {
        let test_binary = std::env::current_exe().expect("the test binary's path");
        let mut process = Command::new(test_binary)
            .args(["--exact", "a_paused_writer_is_fenced_when_it_wakes"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_VOLUME, volume)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the child starts");
        let stdout = process.stdout.take().expect("stdout is piped");
        let stdout = BufReader::new(stdout);
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Child { process, lines }
    }

    /// The next line the child says with `child: {word}`, which the test harness may put after
    /// its own words on the same line.
    fn expect_line(&self, word: &str) -> String {
        let tag = format!("child: {word}");
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(10));
            let line = line.unwrap_or_else(|e| panic!("the child never said {tag:?}: {e}"));
            if line.contains(&tag) {
                return line;
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.process.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// Waits until the kernel reports the child stopped, so that it cannot run on.
    fn wait_stopped(&self) {
        let stat = format!("/proc/{}/stat", self.process.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = fs::read_to_string(&stat).expect("the child's stat file reads");
            // The state follows the command name, which is in parentheses.
            let state = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            if state == Some("T") {
                return;
            }
            assert!(Instant::now() < deadline, "the child did not stop: {text}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn wait_success(&mut self) {
        let status = self.process.wait().expect("the child is waited for");
        assert!(status.success(), "the child failed: {status}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The child may have exited already; then there is nothing left to do.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
