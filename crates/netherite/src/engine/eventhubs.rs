//! Starting a node of a task hub on Azure: partition inputs on Event Hubs, partition state in
//! page blobs (feature `eventhubs`).

use std::sync::Arc;

use netherite_transport_eventhubs::{EventHubsOptions, EventHubsTransport};

use super::{Engine, EngineBuilder, connect, start_node};
use crate::Error;
use crate::host::PageBlobStorage;
use crate::settings::{Settings, StorageKind};

impl EngineBuilder {
    /// Starts a node of the task hub whose partition inputs are on Event Hubs (`options`; its
    /// partition count is the settings') and whose partition state is in page blobs (the
    /// settings' `storage` must be `pageblob`; see [`PageBlobStorage`]). The ownership records
    /// of the transport propose which node hosts which partition; the page blobs' leases
    /// decide. Returns once the node follows the proposals, before any partition is hosted
    /// (see [`Engine::start_shared`]).
    ///
    /// A namespace that does not answer is tried again with a growing pause, for about a
    /// minute in all, each failure logged; then the start fails with the last error. The
    /// storage account gets the page blobs' own tries (five, each waiting up to its request
    /// timeout, 10 s) before the start fails with [`Error::HubStorage`]. An event hub of
    /// another partition count is refused at once.
    pub async fn start_on_eventhubs(self, mut options: EventHubsOptions) -> Result<Engine, Error> {
        let settings = &self.settings;
        check_storage(settings)?;
        options.partition_count = settings.partition_count;
        let storage = Arc::new(PageBlobStorage::open(settings, None).await?);
        let node = connect::node_id();
        let what = format!("event hubs namespace {}", options.connection.namespace());
        let transport = connect::retrying(&what, || {
            EventHubsTransport::connect(node.clone(), options.clone())
        })
        .await?;
        match start_node(self, Arc::new(transport.clone()), storage).await {
            Ok(mut engine) => {
                engine.eventhubs = Some(transport);
                Ok(engine)
            }
            Err(error) => {
                transport.close().await;
                Err(error)
            }
        }
    }
}

/// Event Hubs nodes keep partition state where every node reaches it: in page blobs.
fn check_storage(settings: &Settings) -> Result<(), Error> {
    settings.validate()?;
    let why = "the Event Hubs transport keeps partition state in page blobs: set storage to \
               pageblob";
    connect::require_storage(settings, StorageKind::PageBlob, why)
}
