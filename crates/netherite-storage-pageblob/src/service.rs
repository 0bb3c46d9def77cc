//! [`Service`]: the container as the device talks to it.
//!
//! Every call is bounded in time (`request_timeout`) and tried up to `attempts_max` times,
//! with a pause that doubles from `backoff_min` up to `backoff_max`, when it fails in a way a
//! retry may change: no answer in time, a broken connection, throttling (408, 429) or a server
//! error (500, 502, 503, 504). The SDK's own retries are turned off, so these are the only
//! ones and their bound is the one documented. Any other answer comes back at once as a
//! [`Failure::Status`], which the caller reads (a 409 on a lease means something else than a
//! 409 on a create) before [`Service::error`] gives it its default meaning.
//!
//! Every call this device makes is safe to repeat: writes put the same bytes at the same
//! place, and the conditional ones (create if absent, metadata if unchanged) are checked
//! again by their callers when a repeat finds its own earlier try already applied.

use std::future::Future;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use netherite_azure::{StorageAccount, redact_sas};

use crate::{Error, PageBlobOptions};

/// The statuses worth another try: timeouts, throttling, server errors.
const RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// One container of one account, with the device's retry policy.
pub(crate) struct Service {
    container: BlobContainerClient,
    account: String,
    container_name: String,
    retry: Retry,
}

#[derive(Clone, Copy, Debug)]
struct Retry {
    attempts_max: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    request_timeout: Duration,
}

/// How a call failed, once the retries it deserved are spent.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The service answered with an error status no retry changes.
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// Every try failed in a way worth retrying.
    Exhausted { attempts: u32, reason: String },
    /// The SDK failed without an answer to read (a response it could not decode).
    Broken { reason: String },
}

impl Failure {
    /// Whether the service answered `status` with the error code `code`.
    pub(crate) fn is(&self, status: u16, code: &str) -> bool {
        matches!(self, Failure::Status { status: s, code: c, .. } if *s == status && c == code)
    }

    /// Whether the service refused a lease: a 409 or 412 whose code is about a lease.
    pub(crate) fn is_lease_conflict(&self) -> bool {
        matches!(self, Failure::Status { status: 409 | 412, code, .. } if code.contains("Lease"))
    }

    /// The service's error code, or an empty string.
    pub(crate) fn code(&self) -> &str {
        match self {
            Failure::Status { code, .. } => code,
            _ => "",
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("account", &self.account)
            .field("container", &self.container_name)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Service {
    /// The container `container` of `account`, tried as `options` say.
    pub(crate) fn new(
        account: &StorageAccount,
        container: &str,
        options: &PageBlobOptions,
    ) -> Result<Service, Error> {
        let client_options = ClientOptions {
            retry: RetryOptions::none(),
            ..Default::default()
        };
        Ok(Service {
            container: account.container_client(container, client_options)?,
            account: account.name().to_string(),
            container_name: container.to_string(),
            retry: Retry {
                attempts_max: options.attempts_max.max(1),
                backoff_min: options.backoff_min,
                backoff_max: options.backoff_max,
                request_timeout: options.request_timeout,
            },
        })
    }

    pub(crate) fn container(&self) -> &BlobContainerClient {
        &self.container
    }

    pub(crate) fn container_name(&self) -> &str {
        &self.container_name
    }

    /// A client for the blob `name` of the container.
    pub(crate) fn blob(&self, name: &str) -> BlobClient {
        self.container.blob_client(name)
    }

    /// Runs `attempt` until it succeeds, fails in a way no retry changes, or has been tried
    /// `attempts_max` times; each try may take `request_timeout`.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        blob: &str,
        attempt: F,
    ) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        self.call_with(operation, blob, Duration::ZERO, attempt)
            .await
    }

    /// Like [`call`](Self::call), for a write that must not land after anything written
    /// later (a page, rewritten when the log's last page fills up): `attempt` sends
    /// [`server_timeout`](Self::server_timeout) with its request, past which the service
    /// gives the request up. A try that got no answer in time may still be carried out until
    /// then, so after one the call waits that long before it tries again or gives up: when it
    /// returns, no try of it can land any more.
    pub(crate) async fn call_timed<T, F, Fut>(
        &self,
        operation: &'static str,
        blob: &str,
        attempt: F,
    ) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let settle = Duration::from_secs(self.server_timeout().unsigned_abs().into());
        self.call_with(operation, blob, settle, attempt).await
    }

    /// The loop of both calls: after a try without an answer it waits at least `settle`.
    async fn call_with<T, F, Fut>(
        &self,
        operation: &'static str,
        blob: &str,
        settle: Duration,
        attempt: F,
    ) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut unanswered = false;
            let reason = match tokio::time::timeout(self.retry.request_timeout, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => classify(&error)?,
                Err(_) => {
                    unanswered = true;
                    format!("no answer within {:?}", self.retry.request_timeout)
                }
            };
            let settle = if unanswered { settle } else { Duration::ZERO };
            if tries >= self.retry.attempts_max {
                tokio::time::sleep(settle).await;
                tracing::warn!(operation, blob, tries, reason, "page blob call gave up");
                return Err(Failure::Exhausted {
                    attempts: tries,
                    reason,
                });
            }
            let pause = self.backoff(tries).max(settle);
            tracing::debug!(
                operation,
                blob,
                tries,
                reason,
                ?pause,
                "page blob call retried"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// The service-side limit of a request, in whole seconds: `request_timeout`, at least one.
    pub(crate) fn server_timeout(&self) -> i32 {
        let seconds = self.retry.request_timeout.as_secs().max(1);
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }

    /// The pause after the `tries`-th failed try.
    fn backoff(&self, tries: u32) -> Duration {
        let factor = 1u32 << tries.saturating_sub(1).min(16);
        self.retry
            .backoff_min
            .saturating_mul(factor)
            .min(self.retry.backoff_max)
    }

    /// The default meaning of a failure of `operation` on `blob`: the container missing,
    /// credentials refused, a lease conflict (fenced), or an I/O failure.
    pub(crate) fn error(&self, operation: &'static str, blob: &str, failure: Failure) -> Error {
        match failure {
            Failure::Status {
                status: 404,
                ref code,
                ..
            } if code == "ContainerNotFound" => Error::ContainerNotFound {
                account: self.account.clone(),
                container: self.container_name.clone(),
            },
            Failure::Status { status, code, .. } if status == 401 || status == 403 => {
                self.denied(operation, status, code)
            }
            ref lease if lease.is_lease_conflict() => {
                let reason = format!("the service refused the lease ({})", lease.code());
                Error::fenced(operation, blob, reason)
            }
            Failure::Status {
                status,
                code,
                message,
            } => Error::Refused {
                operation,
                blob: blob.to_string(),
                status,
                code,
                message,
            },
            Failure::Exhausted { attempts, reason } => Error::Unavailable {
                operation,
                blob: blob.to_string(),
                attempts,
                reason,
            },
            Failure::Broken { reason } => Error::Unavailable {
                operation,
                blob: blob.to_string(),
                attempts: 1,
                reason,
            },
        }
    }

    fn denied(&self, operation: &'static str, status: u16, code: String) -> Error {
        Error::Denied {
            account: self.account.clone(),
            container: self.container_name.clone(),
            operation,
            status,
            code,
        }
    }
}

/// How many times a blob found missing is created again within one call before the call
/// gives up: a blob that keeps vanishing is being deleted by someone else.
pub(crate) const VANISHED_TRIES_MAX: u32 = 3;

/// The error of a call that found `blob` missing after each of its creations.
pub(crate) fn vanished(operation: &'static str, blob: &str) -> Error {
    Error::Unavailable {
        operation,
        blob: blob.to_string(),
        attempts: VANISHED_TRIES_MAX,
        reason: "the blob was missing again after each creation".into(),
    }
}

/// Reads an SDK error: `Ok(reason)` when it is worth another try, `Err` when not.
fn classify(error: &azure_core::Error) -> Result<String, Failure> {
    match error.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_default();
            if RETRY_STATUSES.contains(&status) {
                return Ok(format!("{status} {code}"));
            }
            Err(Failure::Status {
                status,
                code,
                message: describe(error),
            })
        }
        ErrorKind::Connection | ErrorKind::Io => Ok(describe(error)),
        _ => Err(Failure::Broken {
            reason: describe(error),
        }),
    }
}

/// An SDK error with its causes ("failed to execute request: ...: Connection refused"), any
/// SAS redacted: the HTTP layer's causes quote the request's URL.
fn describe(error: &azure_core::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    redact_sas(&text)
}

#[cfg(test)]
mod tests {
    use netherite_azure::StorageAccount;
    use tokio::time::Instant;

    use super::*;

    /// A service whose tries take up to 2 s, two of them, 10 ms apart.
    fn service() -> Service {
        let account = StorageAccount::parse("UseDevelopmentStorage=true").expect("Azurite's");
        let options = PageBlobOptions {
            request_timeout: Duration::from_secs(2),
            attempts_max: 2,
            backoff_min: Duration::from_millis(10),
            ..PageBlobOptions::default()
        };
        Service::new(&account, "hub", &options).expect("valid options")
    }

    fn silent() -> impl Future<Output = azure_core::Result<()>> {
        std::future::pending()
    }

    /// A timed call whose tries get no answer waits out the service's timeout after each one,
    /// the last included, so no try lands after it returns; an untimed call only backs off.
    #[tokio::test(start_paused = true)]
    async fn a_timed_call_outwaits_its_unanswered_tries() {
        let service = service();
        assert_eq!(service.server_timeout(), 2);

        let began = Instant::now();
        let timed = service.call_timed("write", "b", silent).await;
        assert!(matches!(timed, Err(Failure::Exhausted { attempts: 2, .. })));
        assert!(
            began.elapsed() >= Duration::from_secs(8),
            "two tries, two waits"
        );

        let began = Instant::now();
        let untimed = service.call("read", "b", silent).await;
        assert!(matches!(
            untimed,
            Err(Failure::Exhausted { attempts: 2, .. })
        ));
        let took = began.elapsed();
        assert!(took >= Duration::from_millis(4_010) && took < Duration::from_secs(5));
    }
}
