//! Account SAS tokens signed from the account key.
//!
//! An account SAS is a set of query parameters: what it allows (`sp`, `ss`, `srt`), until
//! when (`se`), over which protocols (`spr`), under which service version (`sv`), and `sig`,
//! the base64 of an HMAC-SHA256, keyed with the decoded account key, over these fields joined
//! by newlines in the order the service fixes for versions from 2020-12-06 on:
//!
//! ```text
//! account \n permissions \n services \n resource types \n start \n expiry \n ip range \n
//! protocols \n version \n encryption scope \n
//! ```
//!
//! The tokens signed here allow everything a log device and its tests do on blobs (read, add,
//! create, write, delete, list; on the service, containers and blobs) and nothing on queues,
//! tables or files. They carry no start time, so a clock running ahead does not make a fresh
//! token "not yet valid"; they expire one lifetime after signing (an hour by default) and the
//! [`SasSigner`] signs a new one when half of that has passed, so a token on the wire always
//! has half a lifetime left: the local clock may lag the service's by that much.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use azure_core::http::Url;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::AccountKey;

/// The service version the tokens are signed under (`sv`).
pub const SAS_VERSION: &str = "2025-11-05";

/// How long a token lives unless told otherwise.
pub(crate) const SAS_LIFETIME_DEFAULT: Duration = Duration::from_secs(3600);

/// The shortest lifetime a signer accepts; shorter ones are raised to it.
pub const SAS_LIFETIME_MIN: Duration = Duration::from_secs(60);

/// Read, add, create, write, delete, list.
const PERMISSIONS: &str = "racwdl";
/// The blob service only.
const SERVICES: &str = "b";
/// The service, containers and objects (blobs).
const RESOURCE_TYPES: &str = "sco";

/// A signed account SAS: query parameters to append to a request's URL. Its `Debug` hides
/// the signature, which is a credential until it expires.
#[derive(Clone)]
pub struct SasToken {
    pairs: Vec<(&'static str, String)>,
    /// Seconds since the Unix epoch.
    expiry: i64,
}

impl SasToken {
    /// Appends the token's parameters to `url`, after the ones it has.
    pub fn append_to(&self, url: &mut Url) {
        let mut query = url.query_pairs_mut();
        for (key, value) in &self.pairs {
            query.append_pair(key, value);
        }
    }

    /// When the token expires, in seconds since the Unix epoch.
    pub fn expiry(&self) -> i64 {
        self.expiry
    }

    /// The value of one parameter (`sig` included), for tests.
    pub fn get(&self, key: &str) -> Option<&str> {
        let pair = self.pairs.iter().find(|(k, _)| *k == key);
        pair.map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("expiry", &self.expiry)
            .field("sig", &"<redacted>")
            .finish()
    }
}

/// Signs account SAS tokens for one account, and keeps the current one until half of its
/// lifetime has passed. Shared by every client of the account.
pub struct SasSigner {
    account: String,
    key: AccountKey,
    /// Whether tokens allow https only (`spr=https`) or http too (for an emulator).
    https_only: bool,
    lifetime: Duration,
    current: Mutex<Option<SasToken>>,
}

impl SasSigner {
    /// A signer for `account` with `key`, whose tokens live `lifetime` (at least
    /// [`SAS_LIFETIME_MIN`]) and allow plain http unless `https_only`.
    pub fn new(account: String, key: AccountKey, https_only: bool, lifetime: Duration) -> Self {
        SasSigner {
            account,
            key,
            https_only,
            lifetime: lifetime.max(SAS_LIFETIME_MIN),
            current: Mutex::new(None),
        }
    }

    /// The same signer with another token lifetime.
    pub(crate) fn with_lifetime(&self, lifetime: Duration) -> SasSigner {
        SasSigner::new(
            self.account.clone(),
            self.key.clone(),
            self.https_only,
            lifetime,
        )
    }

    /// The key tokens are signed with.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &AccountKey {
        &self.key
    }

    /// The token to send now.
    pub fn token(&self) -> SasToken {
        self.token_at(unix_now())
    }

    /// The token to send at `now` (seconds since the Unix epoch): the current one while more
    /// than half of its lifetime is left, else a new one.
    pub fn token_at(&self, now: i64) -> SasToken {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let half = (self.lifetime.as_secs() / 2) as i64;
        if let Some(token) = current
            .as_ref()
            .filter(|t| t.expiry.saturating_sub(now) > half)
        {
            return token.clone();
        }
        let token = self.sign(now.saturating_add(self.lifetime.as_secs() as i64));
        tracing::debug!(account = %self.account, expiry = token.expiry, "signed an account SAS");
        *current = Some(token.clone());
        token
    }

    /// Signs a token that expires at `expiry` (seconds since the Unix epoch).
    pub fn sign(&self, expiry: i64) -> SasToken {
        let expiry_text = format_utc(expiry);
        let protocols = if self.https_only {
            "https"
        } else {
            "https,http"
        };
        let text = string_to_sign(&self.account, &expiry_text, protocols);
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.bytes())
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let pairs = vec![
            ("sv", SAS_VERSION.to_string()),
            ("ss", SERVICES.to_string()),
            ("srt", RESOURCE_TYPES.to_string()),
            ("sp", PERMISSIONS.to_string()),
            ("se", expiry_text),
            ("spr", protocols.to_string()),
            ("sig", signature),
        ];
        SasToken { pairs, expiry }
    }
}

impl fmt::Debug for SasSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasSigner")
            .field("account", &self.account)
            .field("https_only", &self.https_only)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The account SAS string-to-sign (service versions 2020-12-06 and later), with no start
/// time, no IP range and no encryption scope.
fn string_to_sign(account: &str, expiry: &str, protocols: &str) -> String {
    let fields = [
        account,
        PERMISSIONS,
        SERVICES,
        RESOURCE_TYPES,
        "",
        expiry,
        "",
        protocols,
        SAS_VERSION,
        "",
    ];
    let mut text = fields.join("\n");
    text.push('\n');
    text
}

/// `YYYY-MM-DDThh:mm:ssZ`, the form the service expects for `se`.
fn format_utc(unix_seconds: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `text` with the value of every `sig=` parameter replaced by `<redacted>`.
///
/// Errors from the HTTP layer quote the request's URL, SAS included; whatever of theirs goes
/// to a log or into an error message passes through here first.
pub fn redact_sas(text: &str) -> String {
    const MARK: &str = "sig=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let value = at + MARK.len();
        out.push_str(&rest[..value]);
        out.push_str("<redacted>");
        let end = rest[value..]
            .find(|c: char| c == '&' || c == ')' || c == '"' || c.is_whitespace())
            .map_or(rest.len(), |n| value + n);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    since.map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AZURITE_ACCOUNT_KEY;

    fn azurite_signer(lifetime: Duration) -> SasSigner {
        let key = AccountKey::from_base64(AZURITE_ACCOUNT_KEY).unwrap();
        SasSigner::new("devstoreaccount1".into(), key, false, lifetime)
    }

    /// The string-to-sign has the service's ten fields in its order, empty where unused, and
    /// ends with a newline.
    #[test]
    fn the_string_to_sign_has_the_service_layout() {
        let text = string_to_sign("acct", "2030-01-02T03:04:05Z", "https");
        assert_eq!(
            text,
            "acct\nracwdl\nb\nsco\n\n2030-01-02T03:04:05Z\n\nhttps\n2025-11-05\n\n"
        );
    }

    /// The signature matches one computed independently (Python's hmac module) for the
    /// emulator's public key, and the token carries every field the service needs.
    #[test]
    fn a_token_is_signed_with_the_key() {
        let expiry = 1_893_553_445; // 2030-01-02T03:04:05Z
        let token = azurite_signer(SAS_LIFETIME_DEFAULT).sign(expiry);
        assert_eq!(token.get("se"), Some("2030-01-02T03:04:05Z"));
        assert_eq!(token.get("spr"), Some("https,http"));
        assert_eq!(
            token.get("sig"),
            Some("EZ818ufsLFRJL7YlBJ6d2ZBKhU8Z/Vil+w8wFLF4diI=")
        );
        assert!(!format!("{token:?}").contains("EZ818"));

        let mut url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/c?comp=list").unwrap();
        token.append_to(&mut url);
        let query = url.query().unwrap();
        assert!(query.starts_with("comp=list&sv=2025-11-05&"), "{query}");
        assert!(query.ends_with("sig=EZ818ufsLFRJL7YlBJ6d2ZBKhU8Z%2FVil%2Bw8wFLF4diI%3D"));
    }

    /// Every signature in a text is hidden, whatever ends it, and the rest is kept.
    #[test]
    fn signatures_are_redacted_from_messages() {
        let text = "error sending request for url (http://h/c/b?comp=page&sig=ab%2Fc&sv=1): \
                    refused; again sig=xyz";
        assert_eq!(
            redact_sas(text),
            "error sending request for url (http://h/c/b?comp=page&sig=<redacted>&sv=1): \
             refused; again sig=<redacted>"
        );
        assert_eq!(redact_sas("no secret here"), "no secret here");
    }

    /// A token is reused while more than half of its lifetime is left, and re-signed after.
    #[test]
    fn tokens_are_re_signed_at_half_life() {
        let signer = azurite_signer(Duration::from_secs(600));
        let first = signer.token_at(1_000_000);
        assert_eq!(first.expiry(), 1_000_600);
        assert_eq!(signer.token_at(1_000_299).expiry(), 1_000_600);
        assert_eq!(signer.token_at(1_000_300).expiry(), 1_000_900);

        let short = azurite_signer(Duration::from_secs(1));
        assert_eq!(
            short.token_at(0).expiry(),
            SAS_LIFETIME_MIN.as_secs() as i64
        );
    }
}
