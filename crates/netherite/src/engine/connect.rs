//! Connecting to a transport's service at start: the node's name, and the retries while the
//! service does not answer yet.
//!
//! A node often starts together with the services it needs (a broker, a namespace behind a
//! flaky network), so a start tries again with a doubling pause, 0.5 s up to 16 s, eight
//! tries in all (about a minute), each failure logged; then it fails with the last error. An
//! error no retry changes (bad options, a hub of another partition count) fails at once.

use std::future::Future;
use std::time::Duration;

use netherite_core::transport::NodeId;

use crate::Error;
use crate::settings::{Settings, StorageKind};

/// How often connecting is tried before the start gives up.
const CONNECT_ATTEMPTS_MAX: u32 = 8;
/// The pause after the first failed try; it doubles up to [`CONNECT_PAUSE_MAX`].
const CONNECT_PAUSE_MIN: Duration = Duration::from_millis(500);
/// The longest pause between two tries.
const CONNECT_PAUSE_MAX: Duration = Duration::from_secs(16);

/// Refuses settings whose `storage` is not `wanted`, the one storage the transport's nodes can
/// share; `why` says so to the user. Refused rather than ignored: a node must not keep state
/// where the others cannot find it.
pub(super) fn require_storage(
    settings: &Settings,
    wanted: StorageKind,
    why: &str,
) -> Result<(), Error> {
    if settings.storage == wanted {
        return Ok(());
    }
    Err(Error::InvalidSetting {
        setting: "storage",
        origin: "settings".into(),
        reason: why.into(),
    })
}

/// A name for this node, unique among the nodes of a hub: the process id and a random tag.
pub(super) fn node_id() -> NodeId {
    let tag = crate::host::random_u128() as u32;
    NodeId::new(format!("node-{}-{tag:08x}", std::process::id()))
}

/// Runs `connect` until it succeeds, fails in a way no retry changes, or has been tried
/// [`CONNECT_ATTEMPTS_MAX`] times; `service` names what it connects to, for the logs and the
/// error.
pub(super) async fn retrying<T, F, Fut>(service: &str, connect: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, netherite_core::Error>>,
{
    let (mut attempt, mut pause) = (1, CONNECT_PAUSE_MIN);
    loop {
        match connect().await {
            Ok(connected) => return Ok(connected),
            Err(error) if error.is_retryable() && attempt < CONNECT_ATTEMPTS_MAX => {
                tracing::warn!(service, attempt, %error, retry_in = ?pause,
                    "not reachable; trying again");
                tokio::time::sleep(pause).await;
                (attempt, pause) = (attempt + 1, (pause * 2).min(CONNECT_PAUSE_MAX));
            }
            Err(source) => {
                return Err(Error::Transport {
                    what: format!("connecting to {service}"),
                    source,
                });
            }
        }
    }
}
