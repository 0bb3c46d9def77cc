//! [`LocalFixture`]: the local transport on a temporary directory, for the core's transport
//! conformance suite (feature `testing`).
//!
//! Nodes connected while a transport is open share it; connecting after every handle was
//! dropped reopens the directory, so the suite's restart check reads back from disk.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use netherite_core::transport::NodeId;
use netherite_core::transport::Transport;
use netherite_core::transport::conformance::TransportFixture;
use tempfile::TempDir;
use tokio::sync::Mutex;

use super::{Inner, LocalTransport, LocalTransportOptions};
use crate::Error;

/// A task hub in a temporary directory (removed on drop) that the conformance suite connects
/// nodes to.
///
/// ```
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// use netherite::transport::testing::LocalFixture;
/// use netherite_core::transport::conformance::TransportFixture;
/// use netherite_core::transport::NodeId;
///
/// let fixture = LocalFixture::temporary(2)?;
/// let node = fixture.connect(&NodeId::new("a")).await?;
/// assert_eq!(node.partition_count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LocalFixture {
    dir: TempDir,
    partition_count: u32,
    options: LocalTransportOptions,
    live: Mutex<Weak<Inner>>,
}

impl LocalFixture {
    /// A fresh task hub of `partition_count` partitions in a new temporary directory.
    pub fn temporary(partition_count: u32) -> Result<LocalFixture, Error> {
        let dir = tempfile::tempdir().map_err(|source| Error::DataDir {
            operation: "create a temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;
        Ok(LocalFixture {
            dir,
            partition_count,
            options: LocalTransportOptions::default(),
            live: Mutex::new(Weak::new()),
        })
    }

    /// The task hub's directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

#[async_trait]
impl TransportFixture for LocalFixture {
    async fn connect(&self, node: &NodeId) -> Result<Arc<dyn Transport>, netherite_core::Error> {
        let mut live = self.live.lock().await;
        if let Some(inner) = live.upgrade() {
            let transport = LocalTransport {
                inner,
                node: node.clone(),
            };
            return Ok(Arc::new(transport));
        }

        let opened =
            LocalTransport::open_dir(self.path(), self.partition_count, self.options.clone())
                .await
                .map_err(into_core)?;
        *live = Arc::downgrade(&opened.inner);
        Ok(Arc::new(opened.connect(node.clone())))
    }
}

fn into_core(error: Error) -> netherite_core::Error {
    match error {
        Error::Transport { source, .. } => source,
        other => netherite_core::Error::Io {
            operation: "open",
            reason: other.to_string(),
        },
    }
}
