//! Raw figures of a disk and of a device: how many small write + sync rounds per second, and
//! sequential write bandwidth with one sync at the end.
//!
//! A durable log can never beat the disk under it, so benchmarks print these figures next to
//! their own, in the same run on the same disk. [`disk_probe`] measures through plain std
//! files (the ceiling); [`probe_device`] runs the same pattern through any [`LogDevice`], so
//! the cost of a device layer shows as the gap between the two.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netherite_core::device::LogDevice;

use crate::Error;

/// What a probe writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How many write + sync rounds to time.
    pub sync_rounds: u32,
    /// The bytes written in each round (4 KiB: one page, one log flush of a quiet partition).
    pub sync_write_bytes: usize,
    /// The bytes written sequentially before the one final sync.
    pub sequential_bytes: u64,
    /// The size of each sequential write.
    pub chunk_bytes: usize,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            sync_rounds: 200,
            sync_write_bytes: 4096,
            sequential_bytes: 64 << 20,
            chunk_bytes: 1 << 20,
        }
    }
}

impl ProbeOptions {
    fn validate(&self) -> Result<(), Error> {
        if self.sync_rounds == 0 || self.sync_write_bytes == 0 || self.chunk_bytes == 0 {
            return Err(Error::InvalidOptions(format!(
                "probe options must be positive: {self:?}"
            )));
        }
        Ok(())
    }

    fn chunks(&self) -> u64 {
        self.sequential_bytes.div_ceil(self.chunk_bytes as u64)
    }
}

/// The figures one probe measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskProbe {
    /// Write + sync rounds per second.
    pub sync_rounds_per_sec: f64,
    /// The mean time of one write + sync round.
    pub sync_round_mean: Duration,
    /// Sequential write bandwidth in bytes per second, the final sync included.
    pub sequential_bytes_per_sec: f64,
    /// What was written.
    pub options: ProbeOptions,
}

impl fmt::Display for DiskProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8.0} syncs/s ({} B + sync, mean {:.3} ms), {:>8.1} MiB/s sequential \
             ({} MiB + 1 sync)",
            self.sync_rounds_per_sec,
            self.options.sync_write_bytes,
            self.sync_round_mean.as_secs_f64() * 1e3,
            self.sequential_bytes_per_sec / f64::from(1 << 20),
            self.options.sequential_bytes >> 20,
        )
    }
}

impl DiskProbe {
    fn from_timings(options: ProbeOptions, sync: Duration, sequential: Duration) -> DiskProbe {
        let written = (options.chunks() * options.chunk_bytes as u64) as f64;
        DiskProbe {
            sync_rounds_per_sec: f64::from(options.sync_rounds) / sync.as_secs_f64(),
            sync_round_mean: sync / options.sync_rounds,
            sequential_bytes_per_sec: written / sequential.as_secs_f64(),
            options,
        }
    }
}

/// Measures the disk under `dir` with a plain file (write + `fdatasync` rounds, then
/// sequential writes and one `fdatasync`), and removes the file afterwards. Blocks.
///
/// ```
/// use netherite_storage_file::{ProbeOptions, disk_probe};
///
/// let dir = tempfile::tempdir()?;
/// let options = ProbeOptions {
///     sync_rounds: 4,
///     sequential_bytes: 1 << 20,
///     ..ProbeOptions::default()
/// };
/// let probe = disk_probe(dir.path(), &options)?;
/// assert!(probe.sync_rounds_per_sec > 0.0);
/// println!("this disk: {probe}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn disk_probe(dir: &Path, options: &ProbeOptions) -> Result<DiskProbe, Error> {
    options.validate()?;
    let scratch = Scratch::create(dir)?;
    let path = &scratch.path;

    let page = vec![0x5a; options.sync_write_bytes];
    let started = Instant::now();
    for round in 0..u64::from(options.sync_rounds) {
        let offset = round * page.len() as u64;
        let written = scratch.file.write_all_at(&page, offset);
        written.map_err(|e| Error::io("probe write", path, offset, e))?;
        scratch
            .file
            .sync_data()
            .map_err(|e| Error::io("probe sync", path, 0, e))?;
    }
    let sync = started.elapsed();

    let chunk = vec![0xa5; options.chunk_bytes];
    let started = Instant::now();
    for index in 0..options.chunks() {
        let offset = index * chunk.len() as u64;
        let written = scratch.file.write_all_at(&chunk, offset);
        written.map_err(|e| Error::io("probe write", path, offset, e))?;
    }
    scratch
        .file
        .sync_data()
        .map_err(|e| Error::io("probe sync", path, 0, e))?;
    let sequential = started.elapsed();

    Ok(DiskProbe::from_timings(*options, sync, sequential))
}

/// Runs the pattern of [`disk_probe`] through `device`: write + flush rounds, then sequential
/// writes and one flush. It appends after the device's size (rounded up to the alignment),
/// and sizes must be multiples of the device's alignment.
pub async fn probe_device(
    device: &dyn LogDevice,
    options: &ProbeOptions,
) -> Result<DiskProbe, netherite_core::Error> {
    options.validate()?;
    let base = device.size().next_multiple_of(device.alignment());

    let page = vec![0x5a; options.sync_write_bytes];
    let started = Instant::now();
    for round in 0..u64::from(options.sync_rounds) {
        device
            .write(base + round * page.len() as u64, &page)
            .await?;
        device.flush().await?;
    }
    let sync = started.elapsed();

    let base = device.size();
    let chunk = vec![0xa5; options.chunk_bytes];
    let started = Instant::now();
    for index in 0..options.chunks() {
        device
            .write(base + index * chunk.len() as u64, &chunk)
            .await?;
    }
    device.flush().await?;
    let sequential = started.elapsed();

    Ok(DiskProbe::from_timings(*options, sync, sequential))
}

/// The probe's file, removed when dropped.
struct Scratch {
    file: File,
    path: PathBuf,
}

impl Scratch {
    fn create(dir: &Path) -> Result<Scratch, Error> {
        let name = format!(".netherite-disk-probe-{}", std::process::id());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, 0, e))?;
        Ok(Scratch { file, path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the probe file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileDevice, FileDeviceOptions};

    fn small() -> ProbeOptions {
        ProbeOptions {
            sync_rounds: 3,
            sync_write_bytes: 4096,
            sequential_bytes: 256 << 10,
            chunk_bytes: 64 << 10,
        }
    }

    /// A probe of a plain directory measures something and leaves no file behind.
    #[test]
    fn disk_probe_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let probe = disk_probe(dir.path(), &small()).unwrap();
        assert!(probe.sync_rounds_per_sec > 0.0 && probe.sequential_bytes_per_sec > 0.0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe.to_string().contains("syncs/s"));
    }

    /// A device probe appends exactly what it says it writes.
    #[tokio::test]
    async fn device_probe_appends() {
        let dir = tempfile::tempdir().unwrap();
        let device = FileDevice::open(dir.path(), FileDeviceOptions::default())
            .await
            .unwrap();
        let options = small();
        probe_device(&device, &options).await.unwrap();
        let expected = u64::from(options.sync_rounds) * 4096 + options.sequential_bytes;
        assert_eq!(device.size(), expected);
    }

    /// Zero-sized probes are refused rather than dividing by zero.
    #[test]
    fn empty_probe_is_refused() {
        let options = ProbeOptions {
            chunk_bytes: 0,
            ..small()
        };
        let dir = tempfile::tempdir().unwrap();
        let error = disk_probe(dir.path(), &options).unwrap_err();
        assert!(matches!(error, Error::InvalidOptions(_)));
    }
}
