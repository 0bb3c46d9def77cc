//! Starting a node of a task hub whose partition inputs are on Kafka (feature `kafka`).

use std::sync::Arc;

use netherite_transport_kafka::{KafkaOptions, KafkaTransport};

use super::{Engine, EngineBuilder, connect, start_node};
use crate::Error;
use crate::host::FileStorage;
use crate::settings::{Settings, StorageKind};
use crate::taskhub::TaskHub;

impl EngineBuilder {
    /// Starts a node of the task hub whose partition inputs are on Kafka (`options`; its
    /// partition count is the settings') and whose partition state is in `settings.data_dir`,
    /// a directory every node of the hub shares (a persistent volume). The Kafka consumer
    /// group proposes which node hosts which partition; each partition's lease in the
    /// directory decides (see [`crate::host::FileStorage::leased`]). Returns once the node
    /// follows the group, before any partition is hosted (see [`Engine::start_shared`]).
    ///
    /// A broker that does not answer is tried again with a growing pause, for about a minute
    /// in all, each failure logged; then the start fails with the last error. Topics made for
    /// another partition count are refused at once.
    pub async fn start_on_kafka(self, mut options: KafkaOptions) -> Result<Engine, Error> {
        let settings = &self.settings;
        check_storage(settings)?;
        let hub = open_shared_hub(settings).await?;
        options.partition_count = settings.partition_count;
        let node = connect::node_id();
        let what = format!("kafka at {}", options.brokers);
        let transport = connect::retrying(&what, || {
            KafkaTransport::connect(node.clone(), options.clone())
        })
        .await?;
        let lease = settings.partition_lease;
        let storage = Arc::new(FileStorage::leased(hub, node.to_string(), lease));
        match start_node(self, Arc::new(transport.clone()), storage).await {
            Ok(mut engine) => {
                engine.kafka = Some(transport);
                Ok(engine)
            }
            Err(error) => {
                transport.close();
                Err(error)
            }
        }
    }
}

/// Kafka nodes keep partition state in the shared data directory; page blobs under Kafka are
/// refused rather than ignored.
fn check_storage(settings: &Settings) -> Result<(), Error> {
    let why = "the Kafka transport keeps partition state in the shared data directory \
               (storage = \"file\"); page blobs with Kafka are not supported yet";
    connect::require_storage(settings, StorageKind::File, why)
}

/// Opens the task hub in the data directory as one node of several sharing it, off the async
/// threads: opening reads and may write files.
async fn open_shared_hub(settings: &Settings) -> Result<TaskHub, Error> {
    settings.validate()?;
    let (dir, count) = (settings.data_dir.clone(), settings.partition_count);
    tokio::task::spawn_blocking(move || TaskHub::open_shared(&dir, count))
        .await
        .map_err(|e| Error::Closed(format!("opening the task hub: {e}")))?
}
