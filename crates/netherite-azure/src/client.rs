//! SDK clients that authenticate with the account's SAS: [`SasPolicy`] and
//! [`StorageAccount::container_client`].
//!
//! The SAS goes into each request by a per-call policy rather than into the client's URL, so
//! that a long-lived client sends the signer's current token, re-signed as it ages, instead of
//! the one it was built with.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};

use crate::{Error, SasSigner, StorageAccount};

/// A pipeline policy that appends the account's current SAS to every request's URL.
#[derive(Debug)]
pub struct SasPolicy {
    signer: Arc<SasSigner>,
}

impl SasPolicy {
    /// A policy that signs with `signer`.
    pub fn new(signer: Arc<SasSigner>) -> SasPolicy {
        SasPolicy { signer }
    }
}

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.signer.token().append_to(request.url_mut());
        // The SDK always ends a pipeline with its transport, so a policy has a next one.
        let Some((first, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the SAS policy is the last of its pipeline: no transport follows it",
            ));
        };
        first.send(ctx, request, rest).await
    }
}

impl StorageAccount {
    /// A client for the container `name`, sending the account's SAS with every request.
    ///
    /// `options` are the SDK's (retries, transport); the SAS policy is added to their
    /// per-call policies, and without a transport of their own the client shares the
    /// account's, so that every client of the account draws on one connection pool. The name
    /// is checked against the service's rules first, so that a typo is an error naming it
    /// rather than a 400 from the service.
    pub fn container_client(
        &self,
        name: &str,
        options: ClientOptions,
    ) -> Result<BlobContainerClient, Error> {
        check_container_name(name)?;
        let mut url = self.blob_endpoint().clone();
        url.path_segments_mut()
            .map_err(|()| client_error(self.blob_endpoint().as_str(), "not a base URL"))?
            .pop_if_empty()
            .push(name);

        let mut client_options = options;
        if client_options.transport.is_none() {
            client_options.transport = Some(self.transport());
        }
        let policy = SasPolicy::new(Arc::clone(self.signer()));
        client_options.per_call_policies.push(Arc::new(policy));
        let options = BlobContainerClientOptions {
            client_options,
            ..Default::default()
        };
        let text = url.to_string();
        BlobContainerClient::new(url, None, Some(options))
            .map_err(|e| client_error(&text, &e.to_string()))
    }
}

fn client_error(url: &str, reason: &str) -> Error {
    Error::Client {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Container names: 3 to 63 lowercase letters, digits and hyphens, starting and ending with
/// a letter or digit, no two hyphens in a row.
fn check_container_name(name: &str) -> Result<(), Error> {
    let reason = if !(3..=63).contains(&name.len()) {
        "not 3 to 63 characters long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        "only lowercase letters, digits and hyphens are allowed"
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        "a hyphen may not start or end it, nor follow another"
    } else {
        return Ok(());
    };
    Err(Error::ContainerName {
        name: name.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container client's URL is the endpoint plus the container, with no SAS in it (the
    /// policy adds the SAS per request); a bad container name is refused with its rule.
    #[test]
    fn container_clients_are_built_from_the_endpoint() {
        let account = StorageAccount::parse("UseDevelopmentStorage=true").unwrap();
        let client = account
            .container_client("hub-1", ClientOptions::default())
            .unwrap();
        assert_eq!(
            client.url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/hub-1"
        );

        for bad in ["ab", "Hub", "a--b", "-ab", "a_b"] {
            let Err(error) = account.container_client(bad, ClientOptions::default()) else {
                panic!("{bad} was accepted");
            };
            assert!(
                matches!(error, Error::ContainerName { .. }),
                "{bad}: {error}"
            );
        }
    }
}
