//! [`StorageAccount`]: a storage account as a connection string names it.
//!
//! A connection string is `KEY=VALUE` settings separated by semicolons. The ones read here:
//! `DefaultEndpointsProtocol` (`https` unless told), `AccountName`, `AccountKey` (base64),
//! `BlobEndpoint` (wins over the derived one), `EndpointSuffix` (`core.windows.net` unless
//! told), and `UseDevelopmentStorage=true`, which means Azurite's well-known account on its
//! default port (a `BlobEndpoint` beside it moves it to another address). Setting names are
//! matched without regard to case, as the other Azure SDKs do; settings for other services
//! (`QueueEndpoint`, ...) are ignored.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use azure_core::http::{Transport, Url, new_http_client};
use base64::Engine;

use crate::Error;
use crate::sas::{SAS_LIFETIME_DEFAULT, SasSigner};

/// The account name of the storage emulator (Azurite), the same on every machine.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// The account key of the storage emulator (Azurite), public and the same on every machine.
pub const AZURITE_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where Azurite serves blobs by default: its port 10000, the account name as the first path
/// segment.
const AZURITE_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

const ENDPOINT_SUFFIX_DEFAULT: &str = "core.windows.net";

/// A storage account's shared key, decoded. Its `Debug` is redacted and it has no `Display`.
#[derive(Clone)]
pub struct AccountKey(Arc<[u8]>);

impl AccountKey {
    /// Decodes a key as connection strings and the portal show it (standard base64).
    pub fn from_base64(text: &str) -> Result<AccountKey, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            // The decoder's message names the offending character: part of the secret.
            .map_err(|_| Error::Invalid {
                key: "AccountKey",
                reason: "not standard base64".into(),
            })?;
        if bytes.is_empty() {
            return Err(Error::Invalid {
                key: "AccountKey",
                reason: "empty".into(),
            });
        }
        Ok(AccountKey(bytes.into()))
    }

    /// The key's bytes, to sign with.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// A storage account: its name, its key, where its blob service is, and the signer of the
/// SAS tokens its clients send.
///
/// ```
/// use netherite_azure::StorageAccount;
///
/// let account = StorageAccount::parse(
///     "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=a2V5;\
///      EndpointSuffix=core.windows.net",
/// )?;
/// assert_eq!(account.blob_endpoint().as_str(), "https://myaccount.blob.core.windows.net/");
/// assert!(!format!("{account:?}").contains("a2V5"));
/// # Ok::<(), netherite_azure::Error>(())
/// ```
#[derive(Clone)]
pub struct StorageAccount {
    name: String,
    blob_endpoint: Url,
    signer: Arc<SasSigner>,
    /// The HTTP client (and its connection pool) of every SDK client built from this account
    /// and its clones, made on first use.
    http: Arc<OnceLock<Transport>>,
}

impl StorageAccount {
    /// Reads a connection string. Errors name the setting that is missing or wrong, and never
    /// quote the key.
    pub fn parse(connection_string: &str) -> Result<StorageAccount, Error> {
        let settings = Settings::parse(connection_string)?;
        let (name, key, blob_endpoint) = settings.resolve()?;
        StorageAccount::new(name, key, blob_endpoint)
    }

    /// The account `name` with `key`, its blob service at `blob_endpoint`.
    pub fn new(name: String, key: AccountKey, blob_endpoint: Url) -> Result<StorageAccount, Error> {
        check_account_name(&name)?;
        let blob_endpoint = check_endpoint("BlobEndpoint", blob_endpoint)?;
        let https_only = blob_endpoint.scheme() == "https";
        let signer = SasSigner::new(name.clone(), key, https_only, SAS_LIFETIME_DEFAULT);
        Ok(StorageAccount {
            name,
            blob_endpoint,
            signer: Arc::new(signer),
            http: Arc::default(),
        })
    }

    /// This account with SAS tokens that live `lifetime` (one hour by default), re-signed
    /// when half of it has passed.
    pub fn with_sas_lifetime(self, lifetime: Duration) -> StorageAccount {
        let signer = self.signer.with_lifetime(lifetime);
        StorageAccount {
            signer: Arc::new(signer),
            ..self
        }
    }

    /// The account name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The blob service's base URL (no SAS in it).
    pub fn blob_endpoint(&self) -> &Url {
        &self.blob_endpoint
    }

    /// The signer of this account's SAS tokens, shared by every client built from it.
    pub fn signer(&self) -> &Arc<SasSigner> {
        &self.signer
    }

    /// The HTTP transport shared by every client built from this account: one connection
    /// pool per account, not one per client (a partition has three devices, each with its
    /// own client).
    pub(crate) fn transport(&self) -> Transport {
        self.http
            .get_or_init(|| Transport::new(new_http_client(None)))
            .clone()
    }
}

impl fmt::Debug for StorageAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageAccount")
            .field("name", &self.name)
            .field("blob_endpoint", &self.blob_endpoint.as_str())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The settings of a connection string that this crate reads, as written.
#[derive(Default)]
struct Settings<'a> {
    protocol: Option<&'a str>,
    name: Option<&'a str>,
    key: Option<&'a str>,
    blob_endpoint: Option<&'a str>,
    suffix: Option<&'a str>,
    development: Option<&'a str>,
    sas: Option<&'a str>,
}

impl<'a> Settings<'a> {
    fn parse(text: &'a str) -> Result<Settings<'a>, Error> {
        let mut settings = Settings::default();
        for (index, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, value) = part
                .split_once('=')
                .ok_or(Error::NotAPair { index: index + 1 })?;
            settings.set(key.trim(), value.trim())?;
        }
        Ok(settings)
    }

    /// Stores one setting; unknown names are ignored.
    fn set(&mut self, key: &str, value: &'a str) -> Result<(), Error> {
        let (name, slot) = match key.to_ascii_lowercase().as_str() {
            "defaultendpointsprotocol" => ("DefaultEndpointsProtocol", &mut self.protocol),
            "accountname" => ("AccountName", &mut self.name),
            "accountkey" => ("AccountKey", &mut self.key),
            "blobendpoint" => ("BlobEndpoint", &mut self.blob_endpoint),
            "endpointsuffix" => ("EndpointSuffix", &mut self.suffix),
            "usedevelopmentstorage" => ("UseDevelopmentStorage", &mut self.development),
            "sharedaccesssignature" => ("SharedAccessSignature", &mut self.sas),
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(Error::Duplicate { key: name });
        }
        Ok(())
    }

    /// The account name, key and blob endpoint these settings name.
    fn resolve(&self) -> Result<(String, AccountKey, Url), Error> {
        if self.development()? {
            return self.resolve_development();
        }
        let name = self.name.ok_or(Error::Missing { key: "AccountName" })?;
        let key = match (self.key, self.sas) {
            (Some(key), _) => AccountKey::from_base64(key)?,
            (None, Some(_)) => return Err(sas_unsupported()),
            (None, None) => return Err(Error::Missing { key: "AccountKey" }),
        };
        let endpoint = match self.blob_endpoint {
            Some(endpoint) => parse_url("BlobEndpoint", endpoint)?,
            None => self.derived_endpoint(name)?,
        };
        Ok((name.to_string(), key, endpoint))
    }

    fn development(&self) -> Result<bool, Error> {
        match self.development.map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Error::Invalid {
                key: "UseDevelopmentStorage",
                reason: "must be true or false".into(),
            }),
        }
    }

    /// Azurite's account: its name and key are fixed, so giving them too is a mistake.
    fn resolve_development(&self) -> Result<(String, AccountKey, Url), Error> {
        if self.name.is_some() || self.key.is_some() {
            return Err(Error::Invalid {
                key: "UseDevelopmentStorage",
                reason: "names the emulator's own account; drop AccountName and AccountKey".into(),
            });
        }
        let endpoint = self.blob_endpoint.unwrap_or(AZURITE_BLOB_ENDPOINT);
        let key = AccountKey::from_base64(AZURITE_ACCOUNT_KEY)?;
        let endpoint = parse_url("BlobEndpoint", endpoint)?;
        Ok((AZURITE_ACCOUNT.to_string(), key, endpoint))
    }

    /// `<protocol>://<account>.blob.<suffix>`.
    fn derived_endpoint(&self, name: &str) -> Result<Url, Error> {
        let protocol = self.protocol.unwrap_or("https").to_ascii_lowercase();
        if protocol != "https" && protocol != "http" {
            return Err(Error::Invalid {
                key: "DefaultEndpointsProtocol",
                reason: format!("{protocol:?} is neither https nor http"),
            });
        }
        let suffix = self.suffix.unwrap_or(ENDPOINT_SUFFIX_DEFAULT);
        if suffix.is_empty() || suffix.contains(['/', ':', '@']) {
            return Err(Error::Invalid {
                key: "EndpointSuffix",
                reason: format!("{suffix:?} is not a domain name"),
            });
        }
        check_account_name(name)?;
        parse_url(
            "EndpointSuffix",
            &format!("{protocol}://{name}.blob.{suffix}"),
        )
    }
}

fn sas_unsupported() -> Error {
    Error::Invalid {
        key: "SharedAccessSignature",
        reason: "connection strings with a SAS instead of a key are not supported; give \
                 AccountName and AccountKey"
            .into(),
    }
}

/// The endpoint in `text`. Errors never quote the text whole: a SAS URL or a key pasted in
/// the wrong place would show in them.
fn parse_url(key: &'static str, text: &str) -> Result<Url, Error> {
    let url = Url::parse(text).map_err(|e| Error::Invalid {
        key,
        reason: format!("it is not a URL: {e}"),
    })?;
    check_endpoint(key, url)
}

/// An endpoint is an http(s) base URL with a host and no query; its path loses a trailing
/// slash, so that a container name can be appended as one more segment.
fn check_endpoint(key: &'static str, mut url: Url) -> Result<Url, Error> {
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.path()
    );
    let invalid = |reason: &str| Error::Invalid {
        key,
        reason: format!("{shown:?} {reason}"),
    };
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(invalid("is neither https nor http"));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "has a query or fragment (a SAS goes in no endpoint)",
        ));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

/// Storage account names: 3 to 24 lowercase letters and digits.
fn check_account_name(name: &str) -> Result<(), Error> {
    let valid = (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        return Ok(());
    }
    Err(Error::Invalid {
        key: "AccountName",
        reason: format!("{name:?} is not 3 to 24 lowercase letters and digits"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    fn parse(text: &str) -> Result<StorageAccount, Error> {
        StorageAccount::parse(text)
    }

    /// A full connection string from the portal gives the account, the key and the derived
    /// endpoint; the key shows in no Debug output.
    #[test]
    fn a_portal_connection_string_parses() {
        let text = format!(
            "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey={KEY};\
             EndpointSuffix=core.windows.net"
        );
        let account = parse(&text).unwrap();
        assert_eq!(account.name(), "myaccount");
        assert_eq!(
            account.blob_endpoint().as_str(),
            "https://myaccount.blob.core.windows.net/"
        );
        assert_eq!(account.signer().key().bytes(), b"secret-key-bytes");
        let debug = format!("{account:?} {:?}", account.signer());
        assert!(!debug.contains(KEY) && !debug.contains("secret"), "{debug}");
    }

    /// Names are matched without regard to case, blanks and empty parts are ignored, other
    /// services' settings too; an explicit BlobEndpoint wins over the derived one.
    #[test]
    fn settings_are_read_loosely() {
        let text = format!(
            " accountname=acct1 ; ACCOUNTKEY={KEY};;QueueEndpoint=http://q;\
             BlobEndpoint=http://10.0.0.1:99/acct1/ ;"
        );
        let account = parse(&text).unwrap();
        assert_eq!(account.name(), "acct1");
        assert_eq!(account.blob_endpoint().as_str(), "http://10.0.0.1:99/acct1");

        let sovereign = format!("AccountName=acct1;AccountKey={KEY};EndpointSuffix=core.x.cn");
        let url = parse(&sovereign).unwrap().blob_endpoint().clone();
        assert_eq!(url.as_str(), "https://acct1.blob.core.x.cn/");
    }

    /// UseDevelopmentStorage=true is Azurite's well-known account, on its default port or at
    /// a BlobEndpoint given beside it.
    #[test]
    fn development_storage_is_azurite() {
        let account = parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(account.name(), AZURITE_ACCOUNT);
        assert_eq!(account.blob_endpoint().as_str(), AZURITE_BLOB_ENDPOINT);

        let moved =
            "UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:4242/devstoreaccount1";
        let account = parse(moved).unwrap();
        assert_eq!(account.blob_endpoint().port(), Some(4242));

        let conflict = format!("UseDevelopmentStorage=true;AccountKey={KEY}");
        let error = parse(&conflict).unwrap_err();
        assert!(matches!(
            error,
            Error::Invalid {
                key: "UseDevelopmentStorage",
                ..
            }
        ));
    }

    /// Each malformed string names what is wrong, and no message quotes the key.
    #[test]
    fn malformed_strings_name_the_setting_and_hide_the_key() {
        let secret = "not-base64-but-secret!";
        let cases: Vec<(String, &str)> = vec![
            (format!("AccountKey={KEY}"), "AccountName is missing"),
            ("AccountName=acct1".into(), "AccountKey is missing"),
            (
                format!("AccountName=acct1;AccountKey={secret}"),
                "AccountKey is invalid",
            ),
            (format!("AccountName=acct1;{secret}"), "part 2"),
            (
                format!("AccountName=acct1;AccountName=b;AccountKey={KEY}"),
                "given twice",
            ),
            (
                format!("AccountName=Bad_Name;AccountKey={KEY}"),
                "AccountName is invalid",
            ),
            (
                format!("AccountName=a1b;AccountKey={KEY};BlobEndpoint=ftp://x"),
                "BlobEndpoint",
            ),
            (
                format!("AccountName=a1b;AccountKey={KEY};DefaultEndpointsProtocol=tcp"),
                "tcp",
            ),
            (
                "AccountName=a1b;SharedAccessSignature=sv=1&sig=abc".into(),
                "not supported",
            ),
            (
                format!("AccountName=a1b;AccountKey={KEY};BlobEndpoint=https://h/?sig={secret}"),
                "query or fragment",
            ),
            (
                format!("AccountName=a1b;AccountKey={KEY};BlobEndpoint=https://[{secret}"),
                "not a URL",
            ),
            ("UseDevelopmentStorage=maybe".into(), "true or false"),
            (String::new(), "AccountName is missing"),
        ];
        for (text, expected) in cases {
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(
                !message.contains(secret) && !message.contains(KEY),
                "{message}"
            );
        }
    }
}
