//! What every Azure adapter of netherite shares: the storage account named by a connection
//! string, and SDK clients that authenticate with an account SAS signed from its key.
//!
//! The Azure SDK for Rust logs in with Entra ID tokens or with a SAS in the URL, but has no
//! shared-key login. Connection strings carry a shared key, so this crate signs an account SAS
//! from that key itself (HMAC-SHA256 over the service's string-to-sign, see [`sas`]) and adds it
//! to every request through a pipeline policy. The policy asks a [`SasSigner`] for the current
//! token, which signs a fresh one once half of the old one's lifetime has passed: a client
//! built once lives as long as the process, with no token ever close to expiry on the wire.
//!
//! The key is a secret: [`AccountKey`] has no `Display`, its `Debug` is redacted, and no
//! error of this crate quotes it (a malformed connection string names the part that is wrong,
//! never its value when that value is a secret).
//!
//! ```
//! use netherite_azure::StorageAccount;
//!
//! let account = StorageAccount::parse("UseDevelopmentStorage=true")?;
//! assert_eq!(account.name(), "devstoreaccount1");
//! assert_eq!(account.blob_endpoint().as_str(), "http://127.0.0.1:10000/devstoreaccount1");
//! assert!(!format!("{account:?}").contains(netherite_azure::AZURITE_ACCOUNT_KEY));
//! # Ok::<(), netherite_azure::Error>(())
//! ```

mod client;
mod connection;
mod error;
pub mod sas;

pub use client::SasPolicy;
pub use connection::{AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, AccountKey, StorageAccount};
pub use error::Error;
pub use sas::{SasSigner, SasToken, redact_sas};
