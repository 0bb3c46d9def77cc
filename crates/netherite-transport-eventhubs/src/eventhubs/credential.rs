//! The token credential the Event Hubs client is given: shared access signatures signed from
//! the connection string's key.
//!
//! The SDK asks for a token when it authorizes a link and again before the token expires; each
//! call signs a new one for the credential's event hub. The SDK hands the token to the service
//! with the claims-based-security token type `jwt`, the only one it sends: that the service
//! takes a shared access signature under that type is assumed here and has not been tried
//! against a live namespace.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;

use crate::EventHubsConnection;

/// Signs tokens for one event hub of a namespace.
#[derive(Debug)]
pub(crate) struct SasCredential {
    connection: EventHubsConnection,
    hub: String,
    lifetime: Duration,
}

impl SasCredential {
    /// Tokens for event hub `hub`, each valid for `lifetime`.
    pub(crate) fn new(connection: EventHubsConnection, hub: &str, lifetime: Duration) -> Self {
        SasCredential {
            connection,
            hub: hub.to_string(),
            lifetime,
        }
    }
}

#[async_trait]
impl TokenCredential for SasCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let (token, expiry) = self
            .connection
            .token(&self.hub, SystemTime::now(), self.lifetime)
            .map_err(|e| {
                azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    e.to_string(),
                )
            })?;
        let expiry = i64::try_from(expiry).unwrap_or(i64::MAX);
        let expires_on = OffsetDateTime::from_unix_timestamp(expiry)
            .unwrap_or_else(|_| OffsetDateTime::now_utc() + self.lifetime);
        Ok(AccessToken::new(Secret::new(token), expires_on))
    }
}
