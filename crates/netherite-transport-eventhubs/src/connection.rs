//! Event Hubs connection strings, and the shared access signatures signed from their keys.
//!
//! A connection string names the namespace and a shared access policy:
//! `Endpoint=sb://<namespace>/;SharedAccessKeyName=<policy>;SharedAccessKey=<key>`, or a
//! signature made elsewhere: `Endpoint=...;SharedAccessSignature=SharedAccessSignature sr=...`.
//! The transport uses two event hubs of the namespace (partition inputs and client
//! responses), so the policy must be the namespace's: a string with `EntityPath` (a policy of
//! one event hub) is refused.
//!
//! The SDK's client takes a token credential only, so the transport signs the tokens itself
//! ([`EventHubsConnection::token`]): the resource is `amqps://<namespace>/<event hub>`,
//! lowercase, and the signature is the base64 HMAC-SHA256, keyed with the key's bytes as
//! written, of the url-encoded resource, a newline and the expiry in Unix seconds.
//!
//! The key and any signature are secrets: `Debug` shows neither, and errors name the part of
//! the string that is wrong, never its value.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use netherite_core::Error;
use sha2::Sha256;

/// How a connection proves its rights.
#[derive(Clone)]
enum Auth {
    /// A policy's name and key: tokens are signed on demand.
    Key { name: String, key: Arc<str> },
    /// A signature made elsewhere, used as it is until it expires.
    Signature { token: Arc<str>, expiry: u64 },
}

/// A parsed Event Hubs connection string; its secret never shows in `Debug`.
#[derive(Clone)]
pub struct EventHubsConnection {
    namespace: String,
    auth: Auth,
}

impl fmt::Debug for EventHubsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = match &self.auth {
            Auth::Key { name, .. } => name.as_str(),
            Auth::Signature { .. } => "(a signature)",
        };
        f.debug_struct("EventHubsConnection")
            .field("namespace", &self.namespace)
            .field("policy", &policy)
            .finish_non_exhaustive()
    }
}

impl EventHubsConnection {
    /// Parses `text`, refusing what the transport cannot use.
    ///
    /// ```
    /// use netherite_transport_eventhubs::EventHubsConnection;
    ///
    /// let text = "Endpoint=sb://demo.servicebus.windows.net/;\
    ///             SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0";
    /// let connection = EventHubsConnection::parse(text)?;
    /// assert_eq!(connection.namespace(), "demo.servicebus.windows.net");
    /// assert!(!format!("{connection:?}").contains("c2VjcmV0"));
    /// # Ok::<(), netherite_core::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<EventHubsConnection, Error> {
        let mut parts = Parts::default();
        let nonempty = text.split(';').map(str::trim).filter(|p| !p.is_empty());
        for (index, part) in nonempty.enumerate() {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("part {} has no '='", index + 1)))?;
            parts.set(index + 1, key.trim(), value.trim())?;
        }
        parts.finish()
    }

    /// The namespace's host name (and port, if the endpoint gave one).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A token for event hub `hub`, valid for `lifetime` from `now`, and its expiry in Unix
    /// seconds.
    pub(crate) fn token(
        &self,
        hub: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<(String, u64), Error> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match &self.auth {
            Auth::Key { name, key } => {
                let expiry = now.saturating_add(lifetime.as_secs().max(1));
                let resource = format!("amqps://{}/{hub}", self.namespace).to_lowercase();
                Ok((sign(&resource, name, key.as_bytes(), expiry), expiry))
            }
            Auth::Signature { expiry, .. } if *expiry <= now => Err(invalid(
                "its SharedAccessSignature has expired; give a fresh one".into(),
            )),
            Auth::Signature { token, expiry } => Ok((token.to_string(), *expiry)),
        }
    }
}

/// The parts of a connection string seen so far.
#[derive(Default)]
struct Parts {
    endpoint: Option<String>,
    key_name: Option<String>,
    key: Option<String>,
    signature: Option<String>,
}

impl Parts {
    /// Takes part number `number`. An unknown name is reported by the part's number only: a
    /// key pasted without its name would otherwise be quoted in the error.
    fn set(&mut self, number: usize, key: &str, value: &str) -> Result<(), Error> {
        let slot = match key.to_ascii_lowercase().as_str() {
            "endpoint" => &mut self.endpoint,
            "sharedaccesskeyname" => &mut self.key_name,
            "sharedaccesskey" => &mut self.key,
            "sharedaccesssignature" => &mut self.signature,
            "entitypath" => {
                return Err(invalid(
                    "it names one event hub (EntityPath); the transport uses two, so it needs \
                     a policy of the namespace"
                        .into(),
                ));
            }
            "usedevelopmentemulator" => {
                return Err(invalid("the Event Hubs emulator is not supported".into()));
            }
            _ => {
                return Err(invalid(format!(
                    "part {number} has an unknown name (the known ones are Endpoint, \
                     SharedAccessKeyName, SharedAccessKey and SharedAccessSignature)"
                )));
            }
        };
        if value.is_empty() {
            return Err(invalid(format!("{key} is empty")));
        }
        *slot = Some(value.to_string());
        Ok(())
    }

    fn finish(self) -> Result<EventHubsConnection, Error> {
        let endpoint = self
            .endpoint
            .ok_or_else(|| invalid("Endpoint is missing".into()))?;
        let namespace = namespace(&endpoint)?;
        let auth = match (self.key_name, self.key, self.signature) {
            (Some(name), Some(key), None) => Auth::Key {
                name,
                key: key.into(),
            },
            (None, None, Some(token)) => Auth::Signature {
                expiry: expiry(&token)?,
                token: token.into(),
            },
            _ => {
                return Err(invalid(
                    "it needs SharedAccessKeyName and SharedAccessKey, or else \
                     SharedAccessSignature"
                        .into(),
                ));
            }
        };
        Ok(EventHubsConnection { namespace, auth })
    }
}

/// The host (and port) of an `sb://host/` endpoint.
fn namespace(endpoint: &str) -> Result<String, Error> {
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| invalid("Endpoint is not sb://<namespace>/".into()))?;
    let host = rest.split('/').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("sb") || host.is_empty() {
        return Err(invalid("Endpoint is not sb://<namespace>/".into()));
    }
    Ok(host.to_ascii_lowercase())
}

/// The expiry (`se`) of a ready-made signature.
fn expiry(token: &str) -> Result<u64, Error> {
    let fields = token
        .strip_prefix("SharedAccessSignature ")
        .unwrap_or(token);
    let se = fields
        .split('&')
        .find_map(|field| field.strip_prefix("se="));
    se.and_then(|se| se.parse().ok())
        .ok_or_else(|| invalid("SharedAccessSignature has no expiry (se=)".into()))
}

/// A shared access signature for `resource`, signed with the policy `key_name`'s `key`.
pub(crate) fn sign(resource: &str, key_name: &str, key: &[u8], expiry: u64) -> String {
    let resource = url_encode(resource);
    let to_sign = format!("{resource}\n{expiry}");
    // Any key length is accepted by HMAC; the fallback (an empty signature, refused by the
    // service) cannot occur.
    let signature = Hmac::<Sha256>::new_from_slice(key).map_or_else(
        |_| String::new(),
        |mut mac| {
            mac.update(to_sign.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        },
    );
    format!(
        "SharedAccessSignature sr={resource}&sig={}&se={expiry}&skn={}",
        url_encode(&signature),
        url_encode(key_name)
    )
}

/// `text` with every byte but `A-Z a-z 0-9 - _ . ~` written as `%XX`.
fn url_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn invalid(reason: String) -> Error {
    Error::InvalidArgument {
        operation: "eventhubs connection string",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Endpoint=sb://Demo.servicebus.windows.net/;\
                        SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0LWtleQ==";

    /// The signature matches one computed independently (Python's hmac, urllib and base64
    /// modules) for the same resource, key and expiry.
    #[test]
    fn signatures_match_an_independent_computation() {
        let token = sign(
            "amqps://example.servicebus.windows.net/partitions",
            "root",
            b"c2VjcmV0LWtleQ==",
            1_700_000_000,
        );
        assert_eq!(
            token,
            "SharedAccessSignature \
             sr=amqps%3A%2F%2Fexample.servicebus.windows.net%2Fpartitions\
             &sig=SsdTobI7nlB%2F7aHHn46NzcFIwbPP1SR0McWc%2Bh3wGtc%3D&se=1700000000&skn=root"
        );
    }

    /// A key policy signs a token per event hub, expiring after the lifetime; the key never
    /// shows in `Debug`.
    #[test]
    fn a_key_signs_tokens_per_event_hub() {
        let connection = EventHubsConnection::parse(GOOD).unwrap();
        assert_eq!(connection.namespace(), "demo.servicebus.windows.net");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let (token, expiry) = connection
            .token("Clients", now, Duration::from_secs(3_600))
            .unwrap();
        assert_eq!(expiry, 4_600);
        assert!(token.contains("sr=amqps%3A%2F%2Fdemo.servicebus.windows.net%2Fclients&"));
        assert!(!format!("{connection:?}").contains("c2VjcmV0"));
    }

    /// A ready-made signature is used as it is until its own expiry, then refused.
    #[test]
    fn a_given_signature_is_used_until_it_expires() {
        let text = "Endpoint=sb://demo.servicebus.windows.net;\
                    SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=2000&skn=root";
        let connection = EventHubsConnection::parse(text).unwrap();
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let (token, expiry) = connection.token("h", at(1_000), Duration::ZERO).unwrap();
        let given = "SharedAccessSignature sr=x&sig=y&se=2000&skn=root";
        assert_eq!((token.as_str(), expiry), (given, 2_000));
        assert!(connection.token("h", at(2_000), Duration::ZERO).is_err());
        assert!(!format!("{connection:?}").contains("sig=y"));
    }

    /// Strings the transport cannot use are refused with the reason, and the reason never
    /// quotes a secret.
    #[test]
    fn unusable_strings_are_refused_without_quoting_secrets() {
        let bad = [
            "SharedAccessKeyName=root;SharedAccessKey=SECRET",
            "Endpoint=https://demo.servicebus.windows.net/;SharedAccessKeyName=root;\
             SharedAccessKey=SECRET",
            "Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKey=SECRET",
            &format!("{GOOD};EntityPath=partitions"),
            &format!("{GOOD};UseDevelopmentEmulator=true"),
            &format!("{GOOD};Colour=blue"),
            "Endpoint=sb://demo/;SharedAccessKeyName=root;SharedAccessKey=",
            "Endpoint=sb://demo/;SharedAccessSignature=SharedAccessSignature sig=SECRET",
            "Endpoint=sb://demo/;SharedAccessKeyName=root;SECRET=abc",
            "Endpoint=sb://demo/;SharedAccessKeyName=root;SECRETSECRET==",
            "just text",
        ];
        for text in bad {
            let error = EventHubsConnection::parse(text).expect_err(text);
            assert!(matches!(error, Error::InvalidArgument { .. }), "{text}");
            assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }
}
