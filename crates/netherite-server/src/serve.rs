//! `netherite serve`: the engine on the embedded default and the sidecar service in front.
//!
//! [`serve`] opens the task hub in the settings' data directory, starts the engine with a
//! [`RemoteWork`] queue (so that orchestrations and activities no Rust registry knows wait for
//! the protocol's workers), and serves `TaskHubSidecarService` on the given address until the
//! shutdown future resolves; then it stops taking calls and shuts the engine down with a last
//! checkpoint. HTTP/2 keep-alive pings go out on idle connections, and client pings are
//! accepted, so long-lived work-item streams survive idle proxies.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use netherite::Netherite;
use netherite::remote::RemoteWork;
use netherite::sdk::Registry;
use netherite::settings::Settings;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::pb::task_hub_sidecar_service_server::TaskHubSidecarServiceServer;
use crate::service::{Sidecar, decode_bytes_max};

/// The address `netherite serve` listens on unless told otherwise: every SDK's default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4001";
/// How often an idle connection is pinged at the HTTP/2 level.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The engine did not start (its data directory, its settings or its storage).
    #[error("the engine did not start")]
    Engine(#[from] netherite::Error),
    /// The address could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Where the engine's partition inputs live; state is where the settings' `storage` says.
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// The embedded default: durable queues on local files, one node.
    #[default]
    Local,
    /// Topics on Kafka (feature `kafka`), one node of the hub or several, sharing the data
    /// directory.
    #[cfg(feature = "kafka")]
    Kafka(Box<netherite::kafka::KafkaOptions>),
    /// Event hubs in an Azure namespace (feature `eventhubs`), state in page blobs; one node of
    /// the hub or several.
    #[cfg(feature = "eventhubs")]
    EventHubs(Box<netherite::eventhubs::EventHubsOptions>),
}

/// Binds `address`, starts the engine with `settings` and `registry` on `backend`, and serves
/// until `shutdown` resolves; `ready` is told the bound address (useful with port 0).
pub async fn serve(
    settings: Settings,
    registry: Registry,
    backend: Backend,
    address: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Listen { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { address, source })?;
    let work = RemoteWork::new();
    let payload_max = settings.payload_bytes_max;
    let builder = Netherite::builder()
        .settings(settings)
        .registry(registry)
        .remote_work(work.clone());
    let engine = match backend {
        Backend::Local => builder.start().await?,
        #[cfg(feature = "kafka")]
        Backend::Kafka(options) => builder.start_on_kafka(*options).await?,
        #[cfg(feature = "eventhubs")]
        Backend::EventHubs(options) => builder.start_on_eventhubs(*options).await?,
    };
    let sidecar = Sidecar::new(engine.client(), work);
    let stopper = sidecar.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("stopping: work-item streams and waits end now");
        stopper.stop();
    };
    let service = TaskHubSidecarServiceServer::new(sidecar)
        .max_decoding_message_size(decode_bytes_max(payload_max))
        .max_encoding_message_size(usize::MAX);
    tracing::info!(address = %bound, "serving the Durable Task protocol");
    ready(bound);

    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_EVERY))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await;
    let stopped = engine.shutdown().await;
    served?;
    stopped?;
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: a worker's answer and the next work item
/// are small messages that must not wait for the peer's delayed acknowledgement (that wait is
/// about 40 ms a round trip on Linux).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
