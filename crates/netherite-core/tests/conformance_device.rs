//! The `LogDevice` conformance suite against the memory device, proof that the suite catches
//! broken devices, and one story per fault knob of `MemoryDisk`.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use netherite_core::Error;
use netherite_core::codec::{self, Record};
use netherite_core::device::conformance::{self, DeviceFixture};
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDevice, MemoryDisk};
use serde::{Deserialize, Serialize};

const A: u64 = 512;

fn disk() -> MemoryDisk {
    MemoryDisk::new(A).expect("512 is a power of two")
}

fn block(seed: u8, sectors: u64) -> Vec<u8> {
    (0..sectors * A).map(|i| seed ^ (i as u8) | 1).collect()
}

/// The memory device keeps every rule, at the alignments of page blobs and of files.
#[tokio::test]
async fn memory_device_passes_the_suite() {
    for alignment in [512, 4096] {
        let report = conformance::run(|| MemoryDisk::new(alignment).expect("power of two")).await;
        assert!(report.skipped().is_empty(), "{report}");
    }
}

/// With alignment 1 every write is aligned, so the misalignment check says it was skipped.
#[tokio::test]
async fn byte_aligned_device_skips_the_misalignment_check() {
    let report = conformance::run(|| MemoryDisk::new(1).expect("power of two")).await;
    assert_eq!(report.skipped(), vec!["misaligned_write_is_invalid"]);
}

/// Torn writes at a crash are legal (rule 6), so the suite passes with them switched on.
#[tokio::test]
async fn suite_passes_with_torn_writes() {
    for seed in 0..4 {
        let faults = DeviceFaults {
            seed,
            torn_writes: true,
            ..DeviceFaults::none()
        };
        conformance::run(|| disk().with_faults(faults.clone())).await;
    }
}

/// A fixture whose every "new owner" gets the very same handle: nobody is ever fenced.
struct NeverFences {
    disk: MemoryDisk,
    handle: Mutex<Option<Arc<dyn LogDevice>>>,
}

#[async_trait]
impl DeviceFixture for NeverFences {
    async fn open(&self) -> Result<Arc<dyn LogDevice>, Error> {
        let mut handle = self
            .handle
            .lock()
            .expect("no check panics holding the lock");
        Ok(handle
            .get_or_insert_with(|| Arc::new(self.disk.open()))
            .clone())
    }
}

/// The suite has teeth: a device that never fences an old owner fails the fencing check.
#[tokio::test]
async fn suite_catches_a_device_that_never_fences() {
    let make = || NeverFences {
        disk: disk(),
        handle: Mutex::new(None),
    };
    let report = conformance::evaluate(make).await;
    assert!(
        report.failed().contains(&"new_owner_fences_the_old"),
        "{report}"
    );
    assert!(
        report.skipped().contains(&"flushed_writes_survive_a_crash"),
        "{report}"
    );
}

/// A device whose flush returns Ok without making anything durable.
#[derive(Debug)]
struct LyingFlush(MemoryDevice);

#[async_trait]
impl LogDevice for LyingFlush {
    fn alignment(&self) -> u64 {
        self.0.alignment()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.0.write(offset, bytes).await
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        self.0.read(offset, len).await
    }
    async fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
    async fn truncate_before(&self, offset: u64) -> Result<(), Error> {
        self.0.truncate_before(offset).await
    }
    async fn release(&self) -> Result<(), Error> {
        self.0.release().await
    }
}

struct LyingFlushFixture(MemoryDisk);

#[async_trait]
impl DeviceFixture for LyingFlushFixture {
    async fn open(&self) -> Result<Arc<dyn LogDevice>, Error> {
        Ok(Arc::new(LyingFlush(self.0.open())))
    }
    async fn crash(&self) -> bool {
        self.0.crash();
        true
    }
}

/// The suite has teeth: a flush that makes nothing durable fails the crash check, and since
/// it does not look at the owner either, the fencing check.
#[tokio::test]
async fn suite_catches_a_flush_that_lies() {
    let report = conformance::evaluate(|| LyingFlushFixture(disk())).await;
    let expected = vec!["flushed_writes_survive_a_crash", "new_owner_fences_the_old"];
    assert_eq!(report.failed(), expected, "{report}");
}

/// A crash without fault knobs keeps exactly what was flushed and fences every old handle.
#[tokio::test]
async fn crash_drops_unflushed_writes_and_fences_handles() {
    let disk = disk();
    let device = disk.open();
    device.write(0, &block(1, 2)).await.unwrap();
    device.flush().await.unwrap();
    device.write(2 * A, &block(2, 2)).await.unwrap();
    device.write(0, &block(3, 1)).await.unwrap();
    assert_eq!(disk.unflushed_writes(), 2);

    disk.crash();
    assert!(matches!(
        device.write(4 * A, &block(4, 1)).await,
        Err(Error::Fenced(_))
    ));
    let reopened = disk.open();
    assert_eq!(reopened.size(), 2 * A);
    assert_eq!(
        reopened.read(0, (2 * A) as usize).await.unwrap(),
        block(1, 2)
    );
}

/// What a torn crash may leave: the durable image plus the first `kept` unflushed writes, the
/// last of them cut after `sectors` sectors.
fn torn_image(writes: &[(u64, Vec<u8>)], kept: usize, sectors: u64) -> Vec<u8> {
    let mut image = block(9, 1);
    for (i, (offset, bytes)) in writes[..kept].iter().enumerate() {
        let len = if i + 1 == kept {
            (sectors * A) as usize
        } else {
            bytes.len()
        };
        let end = *offset as usize + len;
        if image.len() < end {
            image.resize(end, 0);
        }
        image[*offset as usize..end].copy_from_slice(&bytes[..len]);
    }
    image
}

/// With torn writes on, a crash keeps a prefix of the unflushed writes and cuts the last one
/// kept at a sector boundary; across seeds, whole losses, whole keeps and tears all happen.
#[tokio::test]
async fn torn_writes_keep_a_prefix_cut_at_a_sector() {
    let writes: Vec<(u64, Vec<u8>)> = (0..4).map(|i| (A + i * 3 * A, block(i as u8, 3))).collect();
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let disk = disk().with_faults(DeviceFaults {
            seed,
            torn_writes: true,
            ..DeviceFaults::none()
        });
        let device = disk.open();
        device.write(0, &block(9, 1)).await.unwrap();
        device.flush().await.unwrap();
        for (offset, bytes) in &writes {
            device.write(*offset, bytes).await.unwrap();
        }

        disk.crash();
        let image = disk.open().read(0, disk.size() as usize).await.unwrap();
        let found = (0..=4usize)
            .flat_map(|kept| (0..=3u64).map(move |sectors| (kept, sectors)))
            .find(|&(kept, sectors)| torn_image(&writes, kept, sectors) == image);
        outcomes.insert(found.expect("the image is a torn prefix"));
    }
    assert!(outcomes.contains(&(0, 0)), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|&(kept, s)| kept > 0 && s > 0 && s < 3),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|&(kept, s)| kept == 4 && s == 3),
        "{outcomes:?}"
    );
}

/// The same seed and the same calls give the same crash, byte for byte.
#[tokio::test]
async fn same_seed_replays_the_same_crash() {
    let run = |seed| async move {
        let disk = disk().with_faults(DeviceFaults {
            seed,
            torn_writes: true,
            ..DeviceFaults::none()
        });
        let device = disk.open();
        for i in 0..6 {
            device.write(i * 2 * A, &block(i as u8, 2)).await.unwrap();
        }
        disk.crash();
        disk.open().read(0, disk.size() as usize).await.unwrap()
    };
    for seed in 0..8 {
        assert_eq!(run(seed).await, run(seed).await);
    }
}

/// A failed flush is a retryable error and leaves the writes it should have covered at the
/// mercy of a crash; a later good flush covers them.
#[tokio::test]
async fn failed_flush_leaves_writes_not_durable() {
    let disk = disk().with_faults(DeviceFaults {
        flush_failure_rate: 1.0,
        ..DeviceFaults::none()
    });
    let device = disk.open();
    device.write(0, &block(5, 1)).await.unwrap();
    let error = device.flush().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Io {
                operation: "flush",
                ..
            }
        ) && error.is_retryable()
    );
    assert_eq!(device.read(0, A as usize).await.unwrap(), block(5, 1));

    disk.crash();
    assert_eq!(disk.open().size(), 0);

    // Once flushes work again, the same story ends with the data kept.
    disk.set_faults(DeviceFaults::none());
    let device = disk.open();
    device.write(0, &block(5, 1)).await.unwrap();
    device.flush().await.unwrap();
    disk.crash();
    assert_eq!(disk.open().read(0, A as usize).await.unwrap(), block(5, 1));
}

/// A logged event, as the commit log would store it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Logged(String);

impl Record for Logged {
    fn kind(&self) -> u32 {
        1
    }
    fn is_known_kind(kind: u32) -> bool {
        kind == 1
    }
}

/// A corrupted read flips one byte of what is returned, never of what is stored, and the
/// record codec reports it as a checksum mismatch at the record's offset.
#[tokio::test]
async fn corrupted_read_flips_one_byte_and_the_codec_catches_it() {
    let disk = disk();
    let device = disk.open();
    let frame = codec::encode(&Logged("hello".into())).unwrap();
    let mut page = frame.clone();
    page.resize(A as usize, 0);
    device.write(A, &page).await.unwrap();

    disk.set_faults(DeviceFaults {
        seed: 3,
        read_corruption_rate: 1.0,
        ..DeviceFaults::none()
    });
    let read = device.read(A, frame.len()).await.unwrap();
    assert_eq!(read.iter().zip(&frame).filter(|(a, b)| a != b).count(), 1);
    let read = device.read(A, frame.len()).await.unwrap();
    let decoded = codec::decode::<Logged>(&read, "p00/log", A);
    assert!(matches!(
        decoded,
        Err(Error::ChecksumMismatch { offset: A, .. })
    ));

    disk.set_faults(DeviceFaults::none());
    assert_eq!(device.read(A, A as usize).await.unwrap(), page);
}

/// A truncation holds across a crash, and the durable bytes above it stay.
#[tokio::test]
async fn truncation_survives_a_crash() {
    let disk = disk();
    let device = disk.open();
    device.write(0, &block(6, 4)).await.unwrap();
    device.flush().await.unwrap();
    device.write(4 * A, &block(7, 2)).await.unwrap();
    device.truncate_before(2 * A).await.unwrap();

    disk.crash();
    let device = disk.open();
    assert!(matches!(
        device.read(A, 1).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(device.size(), 4 * A);
    assert_eq!(
        device.read(2 * A, (2 * A) as usize).await.unwrap(),
        block(6, 4)[(2 * A) as usize..]
    );
}

/// Bad arguments are typed errors, not panics: a wild offset hits the size limit, a bad
/// alignment is refused at creation.
#[tokio::test]
async fn bad_arguments_are_typed_errors() {
    let device = disk().with_bytes_max(1 << 20).open();
    let wild = device.write(1 << 40, &block(1, 1)).await;
    assert!(matches!(
        wild,
        Err(Error::LimitExceeded {
            limit: "device_bytes_max",
            ..
        })
    ));
    let overflow = device.write(u64::MAX - (A - 1), &block(1, 1)).await;
    assert!(matches!(overflow, Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        MemoryDisk::new(3),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        MemoryDisk::new(0),
        Err(Error::InvalidArgument { .. })
    ));
}
