//! Opening the local transport on a task hub's directory (feature `file`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use netherite_core::PartitionId;
use netherite_storage_file::{FileDevice, FileDeviceOptions};

use super::{LocalTransport, LocalTransportOptions, LogPosition, QueueDevice};
use crate::Error;
use crate::taskhub::TaskHub;

/// The pause between two attempts to open a queue directory that is still locked.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

impl LocalTransport {
    /// Opens the input queues of every partition of `hub`, in `<data_dir>/pNN/input/`, and
    /// recovers them: what a send acknowledged before a crash is there, at its position.
    pub async fn open(
        hub: &TaskHub,
        options: LocalTransportOptions,
    ) -> Result<LocalTransport, Error> {
        let mut devices = Vec::with_capacity(hub.partition_count() as usize);
        for p in 0..hub.partition_count() {
            let dir = hub.input_dir(PartitionId(p));
            devices.push(open_device(&dir, &options).await?);
        }
        let transport = LocalTransport::build(devices, options, Some(hub.clone())).await?;
        tracing::info!(
            dir = %hub.dir().display(),
            partitions = hub.partition_count(),
            "local transport opened"
        );
        Ok(transport)
    }

    /// Opens (or creates) the task hub in `dir` with `partition_count` partitions, then its
    /// transport; see [`TaskHub::open`] for the checks on the directory.
    pub async fn open_dir(
        dir: impl AsRef<Path>,
        partition_count: u32,
        options: LocalTransportOptions,
    ) -> Result<LocalTransport, Error> {
        let dir = dir.as_ref().to_path_buf();
        let hub = tokio::task::spawn_blocking(move || TaskHub::open(dir, partition_count))
            .await
            .map_err(|e| Error::Transport {
                what: "opening the task hub".into(),
                source: netherite_core::Error::Io {
                    operation: "open",
                    reason: e.to_string(),
                },
            })??;
        LocalTransport::open(&hub, options).await
    }
}

/// Opens the file device of one queue, waiting up to `lock_wait` for a handle of this process
/// that is going away to let go of it.
async fn open_device(dir: &Path, options: &LocalTransportOptions) -> Result<QueueDevice, Error> {
    let file_options = FileDeviceOptions::default().with_segment_bytes(options.segment_bytes);
    let deadline = tokio::time::Instant::now() + options.lock_wait;
    loop {
        match FileDevice::open(dir, file_options).await {
            Ok(device) => {
                let start = LogPosition(device.start());
                let device = Arc::new(device);
                return Ok(QueueDevice { device, start });
            }
            Err(netherite_storage_file::Error::Locked { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(LOCK_RETRY_PAUSE).await;
            }
            Err(error) => {
                return Err(Error::Transport {
                    what: format!("opening the input queue in {}", dir.display()),
                    source: error.into(),
                });
            }
        }
    }
}
