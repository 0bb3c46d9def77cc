//! The conformance suite every [`LogDevice`] backend runs (feature `testing`).
//!
//! A backend supplies a [`DeviceFixture`]: a way to open one fresh device as a new owner, and
//! optionally to simulate a crash. Its test is then one line:
//!
//! ```
//! # let runtime = tokio::runtime::Builder::new_current_thread()
//! #     .enable_all().build().expect("runtime");
//! # runtime.block_on(async {
//! use netherite_core::device::{MemoryDisk, conformance};
//!
//! conformance::run(|| MemoryDisk::new(512).expect("power of two")).await;
//! # });
//! ```
//!
//! Each check opens a fresh fixture, so checks cannot disturb one another. The numbers in the
//! check names' docs refer to the rules on [`LogDevice`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{LogDevice, MemoryDisk};
use crate::Error;
use crate::conformance::{Check, CheckFuture, Step, ensure, ensure_eq, ensure_error, run_checks};
pub use crate::conformance::{CheckOutcome, CheckResult, SuiteReport, Verdict};

/// A backend's way to give the suite devices.
#[async_trait]
pub trait DeviceFixture: Send + Sync {
    /// Opens this fixture's device as a new owner, fencing every handle opened before
    /// (rule 8). The first call opens an empty device.
    async fn open(&self) -> Result<Arc<dyn LogDevice>, Error>;

    /// Simulates a crash of the machine holding the device (rule 6): what was not durable may
    /// be lost, and the handles of the crashed process are dead. Returns `false` when the
    /// backend cannot simulate a crash; the checks that need one are then skipped.
    async fn crash(&self) -> bool {
        false
    }
}

#[async_trait]
impl DeviceFixture for MemoryDisk {
    async fn open(&self) -> Result<Arc<dyn LogDevice>, Error> {
        Ok(Arc::new(MemoryDisk::open(self)))
    }

    async fn crash(&self) -> bool {
        MemoryDisk::crash(self);
        true
    }
}

/// Runs every check against fixtures from `make` and panics with the report if any failed.
pub async fn run<F: DeviceFixture + 'static>(make: impl Fn() -> F) -> SuiteReport {
    evaluate(make).await.assert_passed()
}

/// Runs every check against fixtures from `make` and returns the report, failures included.
pub async fn evaluate<F: DeviceFixture + 'static>(make: impl Fn() -> F) -> SuiteReport {
    run_checks("LogDevice", CHECKS, || Box::new(make()) as Box<Fixture>).await
}

/// The names of the checks, in the order they run.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|c| c.name).collect()
}

type Fixture = dyn DeviceFixture;

const CHECKS: &[Check<Fixture>] = &[
    Check {
        name: "alignment_is_a_power_of_two",
        run: alignment_is_a_power_of_two,
    },
    Check {
        name: "write_then_read_round_trip",
        run: write_then_read_round_trip,
    },
    Check {
        name: "misaligned_write_is_invalid",
        run: misaligned_write_is_invalid,
    },
    Check {
        name: "read_past_end_is_invalid",
        run: read_past_end_is_invalid,
    },
    Check {
        name: "write_past_the_offset_space_is_invalid",
        run: write_past_the_offset_space_is_invalid,
    },
    Check {
        name: "size_gaps_and_overwrites",
        run: size_gaps_and_overwrites,
    },
    Check {
        name: "flushed_writes_survive_a_crash",
        run: flushed_writes_survive_a_crash,
    },
    Check {
        name: "flushed_writes_survive_reopen",
        run: flushed_writes_survive_reopen,
    },
    Check {
        name: "truncate_before",
        run: truncate_before,
    },
    Check {
        name: "truncation_point_never_moves_back",
        run: truncation_point_never_moves_back,
    },
    Check {
        name: "new_owner_fences_the_old",
        run: new_owner_fences_the_old,
    },
    Check {
        name: "release_fences_the_handle",
        run: release_fences_the_handle,
    },
    Check {
        name: "concurrent_writes_at_different_offsets",
        run: concurrent_writes,
    },
];

fn invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}

fn fenced(e: &Error) -> bool {
    matches!(e, Error::Fenced(_))
}

/// Recognizable bytes: `len` of them, different for each `seed`.
fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// Rule 1: the alignment is a power of two, and a fresh device is empty.
fn alignment_is_a_power_of_two(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        ensure(a.is_power_of_two(), || {
            format!("alignment {a} is not a power of two")
        })?;
        ensure_eq(device.size(), 0, "size of a fresh device")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 2: written bytes read back, at any offset and length inside them.
fn write_then_read_round_trip(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        let data = pattern(2 * a, 1);
        device.write(0, &data).await.step("write")?;

        ensure_eq(
            device.read(0, data.len()).await.step("read")?,
            data.clone(),
            "whole read",
        )?;
        let part = device.read(1, a as usize).await.step("unaligned read")?;
        ensure_eq(part, data[1..1 + a as usize].to_vec(), "unaligned read")?;
        let empty = device.read(2 * a, 0).await.step("empty read at the end")?;
        ensure_eq(empty, Vec::new(), "empty read")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 1: a misaligned offset or length is refused and changes nothing.
fn misaligned_write_is_invalid(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        if a == 1 {
            return Ok(Verdict::Skipped("alignment 1: every write is aligned"));
        }
        let result = device.write(1, &pattern(a, 2)).await;
        ensure_error(result, invalid, "write at a misaligned offset")?;
        let result = device.write(0, &pattern(a + 1, 2)).await;
        ensure_error(result, invalid, "write of a misaligned length")?;
        ensure_eq(device.size(), 0, "size after refused writes")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 3: reading past the size is refused, also when the range overflows.
fn read_past_end_is_invalid(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        device.write(0, &pattern(a, 3)).await.step("write")?;
        ensure_error(
            device.read(0, a as usize + 1).await,
            invalid,
            "read across the end",
        )?;
        ensure_error(device.read(a, 1).await, invalid, "read at the end")?;
        ensure_error(
            device.read(u64::MAX, 2).await,
            invalid,
            "read overflowing u64",
        )?;
        Ok(Verdict::Passed)
    })
}

/// Rules 1 and 10: an aligned write whose end would pass `u64::MAX` is refused, not wrapped,
/// and changes nothing.
fn write_past_the_offset_space_is_invalid(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        device.write(0, &pattern(a, 4)).await.step("write")?;
        let last_sector = u64::MAX - (a - 1);
        ensure_error(
            device.write(last_sector, &pattern(a, 5)).await,
            invalid,
            "write ending past u64::MAX",
        )?;
        ensure_eq(device.size(), a, "size after the refused write")?;
        let read = device.read(0, a as usize).await.step("read")?;
        ensure_eq(read, pattern(a, 4), "bytes after the refused write")?;
        Ok(Verdict::Passed)
    })
}

/// Rules 2 and 3: the size is the end of the highest write, a gap reads as zeros, and an
/// overwrite replaces what was there.
fn size_gaps_and_overwrites(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        device
            .write(2 * a, &pattern(a, 4))
            .await
            .step("write after a gap")?;
        ensure_eq(device.size(), 3 * a, "size after a write past a gap")?;
        let gap = device.read(0, 2 * a as usize).await.step("read the gap")?;
        ensure(gap.iter().all(|&b| b == 0), || {
            "a gap must read as zeros".into()
        })?;

        device
            .write(0, &pattern(a, 5))
            .await
            .step("write into the gap")?;
        ensure_eq(device.size(), 3 * a, "size after a write below the end")?;
        device
            .write(2 * a, &pattern(a, 6))
            .await
            .step("overwrite")?;
        let read = device
            .read(2 * a, a as usize)
            .await
            .step("read the overwrite")?;
        ensure_eq(read, pattern(a, 6), "bytes after an overwrite")?;
        Ok(Verdict::Passed)
    })
}

/// Rules 4 and 6: after a flush returned, a crash keeps every byte written before it.
fn flushed_writes_survive_a_crash(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        let data = pattern(4 * a, 7);
        device
            .write(0, &data[..(2 * a) as usize])
            .await
            .step("first write")?;
        device
            .write(2 * a, &data[(2 * a) as usize..])
            .await
            .step("second write")?;
        device.flush().await.step("flush")?;
        device
            .write(4 * a, &pattern(a, 8))
            .await
            .step("unflushed write")?;

        if !fixture.crash().await {
            return Ok(Verdict::Skipped("the fixture cannot simulate a crash"));
        }
        let device = fixture.open().await.step("reopen after the crash")?;
        ensure(device.size() >= 4 * a, || {
            format!("size {} after crash", device.size())
        })?;
        let read = device
            .read(0, data.len())
            .await
            .step("read after the crash")?;
        ensure_eq(read, data, "flushed bytes after a crash")?;
        Ok(Verdict::Passed)
    })
}

/// Rules 4 and 8: a new owner sees every byte that was flushed before it opened.
fn flushed_writes_survive_reopen(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        let data = pattern(3 * a, 9);
        device.write(0, &data).await.step("write")?;
        device.flush().await.step("flush")?;
        device.release().await.step("release")?;

        let next = fixture.open().await.step("reopen")?;
        ensure_eq(next.size(), 3 * a, "size seen by the next owner")?;
        ensure_eq(
            next.read(0, data.len()).await.step("read")?,
            data,
            "bytes after reopen",
        )?;
        Ok(Verdict::Passed)
    })
}

/// Rule 7: below the truncation point reads and writes fail; above it nothing changes.
fn truncate_before(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        let data = pattern(4 * a, 10);
        device.write(0, &data).await.step("write")?;
        device.flush().await.step("flush")?;
        device.truncate_before(2 * a).await.step("truncate")?;

        let below = device.read(2 * a - 1, 1).await;
        ensure_error(below, invalid, "read below the point")?;
        let below = device.write(a, &pattern(a, 11)).await;
        ensure_error(below, invalid, "write below the point")?;
        let kept = device.read(2 * a, 2 * a as usize).await.step("read")?;
        ensure_eq(
            kept,
            data[(2 * a) as usize..].to_vec(),
            "bytes above the point",
        )?;
        ensure_eq(device.size(), 4 * a, "size after truncation")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 7: the truncation point never moves back and cannot pass the size; appending goes on.
fn truncation_point_never_moves_back(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        device.write(0, &pattern(4 * a, 10)).await.step("write")?;
        device.truncate_before(2 * a).await.step("truncate")?;

        let earlier = device.truncate_before(a).await;
        earlier.step("truncate to an earlier point")?;
        let below = device.read(a, 1).await;
        ensure_error(below, invalid, "read after moving the point back")?;
        let past = device.truncate_before(5 * a).await;
        ensure_error(past, invalid, "truncate past the size")?;
        let append = device.write(4 * a, &pattern(a, 12)).await;
        append.step("append after truncation")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 8: once a new owner opened the device, the old handle's writes, flushes and
/// truncations fail with `Fenced` and change nothing.
fn new_owner_fences_the_old(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let old = fixture.open().await.step("open")?;
        let a = old.alignment();
        old.write(0, &pattern(2 * a, 13)).await.step("write")?;
        old.flush().await.step("flush")?;
        let new = fixture.open().await.step("open as a new owner")?;

        ensure_error(
            old.write(0, &pattern(a, 14)).await,
            fenced,
            "old owner's write",
        )?;
        ensure_error(old.flush().await, fenced, "old owner's flush")?;
        ensure_error(
            old.truncate_before(a).await,
            fenced,
            "old owner's truncation",
        )?;

        let read = new.read(0, 2 * a as usize).await.step("new owner's read")?;
        ensure_eq(read, pattern(2 * a, 13), "bytes after the fenced writes")?;
        new.write(2 * a, &pattern(a, 15))
            .await
            .step("new owner's write")?;
        new.flush().await.step("new owner's flush")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 8: a released handle is fenced at once, and the next owner gets in.
fn release_fences_the_handle(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        device.write(0, &pattern(a, 16)).await.step("write")?;
        device.flush().await.step("flush")?;
        device.release().await.step("release")?;
        ensure_error(
            device.write(a, &pattern(a, 17)).await,
            fenced,
            "write after release",
        )?;

        let next = fixture.open().await.step("open after release")?;
        next.write(a, &pattern(a, 18))
            .await
            .step("next owner's write")?;
        ensure_eq(next.size(), 2 * a, "size after the next owner's write")?;
        Ok(Verdict::Passed)
    })
}

/// Rule 9: writes to disjoint ranges may run together; each lands where it was aimed.
fn concurrent_writes(fixture: &Fixture) -> CheckFuture<'_> {
    Box::pin(async move {
        const WRITERS: u64 = 8;
        let device = fixture.open().await.step("open")?;
        let a = device.alignment();
        let mut writers = tokio::task::JoinSet::new();
        for i in 0..WRITERS {
            let device = Arc::clone(&device);
            writers.spawn(async move { device.write(i * a, &pattern(a, i as u8)).await });
        }
        while let Some(done) = writers.join_next().await {
            done.map_err(|e| format!("writer task died: {e}"))?
                .step("concurrent write")?;
        }

        device.flush().await.step("flush")?;
        ensure_eq(device.size(), WRITERS * a, "size after concurrent writes")?;
        for i in 0..WRITERS {
            let read = device.read(i * a, a as usize).await.step("read")?;
            ensure_eq(read, pattern(a, i as u8), "bytes of one concurrent write")?;
        }
        Ok(Verdict::Passed)
    })
}
