//! Pages of results and the tokens that resume after them.
//!
//! A token is the key, (created, id), of the last result a page returned; the next page starts
//! strictly after it. The key need not be in the index any more: an instance deleted between
//! two pages still marks a place in the order, so paging never skips or repeats a survivor.
//! Because the order is the same in every partition, one token also serves every partition of
//! a task hub: each resumes after the same key, and their pages merge in order.
//!
//! As a string a token reads `n1.<secs>.<nanos>.<id as lowercase hex>`: ASCII only, whatever the
//! id holds, so it travels safely as the protocol's continuation token. Callers treat it as
//! opaque; the leading tag lets the format change later without misreading old tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::key::{KeyRef, SortKey};
use crate::{Error, InstanceId, Timestamp};

/// Results per page when a request asks for 0, the protocol's "server default".
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// The most results one page holds; a request for more gets this many.
pub const PAGE_SIZE_MAX: usize = 1000;

/// The tag that opens every token string of the current format.
const TOKEN_TAG: &str = "n1";

/// The operation named in errors about token strings.
const TOKEN_PARSE: &str = "parse page token";

/// Which page to serve: where to resume and how many results at most.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Resume strictly after this token's key; `None` starts at the beginning.
    pub after: Option<PageToken>,
    /// Results wanted; 0 means [`PAGE_SIZE_DEFAULT`], and more than [`PAGE_SIZE_MAX`] is cut.
    pub size: usize,
}

/// One page of results, ordered by (created, instance id).
///
/// Every page but the last holds exactly the served page size; `next` is `None` exactly when no
/// later result exists, so a query over a few instances never ends on an empty page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The instances on this page, in result order.
    pub ids: Vec<InstanceId>,
    /// The token for the following page, when there is one.
    pub next: Option<PageToken>,
}

/// Where a page ended: the following page starts strictly after this key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageToken {
    key: SortKey,
}

impl PageRequest {
    /// The first page, with room for `size` results.
    pub fn first(size: usize) -> PageRequest {
        PageRequest { after: None, size }
    }

    /// The page after `token`, with room for `size` results.
    pub fn after(token: PageToken, size: usize) -> PageRequest {
        PageRequest {
            after: Some(token),
            size,
        }
    }

    /// The page size served: `size`, with 0 read as the default and large sizes capped.
    pub fn size_served(&self) -> usize {
        match self.size {
            0 => PAGE_SIZE_DEFAULT,
            size => size.min(PAGE_SIZE_MAX),
        }
    }
}

impl Page {
    /// The page of `size` results from `found`, the first up to `size + 1` matches in order;
    /// a match past the page proves a next page exists.
    pub(super) fn from_found(found: &[KeyRef<'_>], size: usize) -> Page {
        let last_on_page = size.checked_sub(1).and_then(|last| found.get(last));
        let next = last_on_page
            .filter(|_| found.len() > size)
            .map(|&(created, id)| PageToken::resuming_after(created, id.clone()));
        let ids = found
            .iter()
            .take(size)
            .map(|(_, id)| (*id).clone())
            .collect();
        Page { ids, next }
    }
}

impl PageToken {
    /// The token of the place right after (`created`, `id`) in result order.
    ///
    /// Pages carry their own tokens; this is for a caller that merges pages from several
    /// partitions and must say where the merged page ended.
    pub fn resuming_after(created: Timestamp, id: InstanceId) -> PageToken {
        PageToken {
            key: SortKey { created, id },
        }
    }

    /// The key the next page starts after.
    pub(super) fn key(&self) -> &SortKey {
        &self.key
    }

    /// The token as a string, to hand to a client as a continuation token.
    pub fn to_token_string(&self) -> String {
        let SortKey { created, id } = &self.key;
        let hex = hex_encode(id.as_str().as_bytes());
        format!("{TOKEN_TAG}.{}.{}.{hex}", created.secs, created.nanos)
    }

    /// The token a string made by [`PageToken::to_token_string`] stands for.
    ///
    /// Anything else is an [`Error::InvalidArgument`] saying what is wrong with it.
    pub fn parse(text: &str) -> Result<PageToken, Error> {
        let mut parts = text.split('.');
        let parts = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        let (Some(TOKEN_TAG), Some(secs), Some(nanos), Some(hex), None) = parts else {
            return Err(garbage("not of the form n1.<secs>.<nanos>.<hex id>"));
        };

        let secs = secs
            .parse()
            .map_err(|_| garbage("seconds are not an i64"))?;
        let nanos = nanos
            .parse()
            .ok()
            .filter(|&nanos: &u32| nanos < 1_000_000_000)
            .ok_or_else(|| garbage("nanoseconds are not in 0..1000000000"))?;
        let bytes = hex_decode(hex).ok_or_else(|| garbage("the id is not hex"))?;
        let id = String::from_utf8(bytes).map_err(|_| garbage("the id is not UTF-8"))?;
        Ok(PageToken::resuming_after(
            Timestamp { secs, nanos },
            InstanceId(id),
        ))
    }
}

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token_string())
    }
}

impl FromStr for PageToken {
    type Err = Error;

    fn from_str(text: &str) -> Result<PageToken, Error> {
        PageToken::parse(text)
    }
}

/// The error for a token string that is not one.
fn garbage(reason: &str) -> Error {
    Error::InvalidArgument {
        operation: TOKEN_PARSE,
        reason: format!("page token {reason}"),
    }
}

/// `bytes` as lowercase hex, two digits a byte.
fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// The bytes of a hex string (either case), or `None` if it is not hex.
fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The value of one hex digit.
fn nibble(digit: u8) -> Option<u8> {
    let value = char::from(digit).to_digit(16)?;
    u8::try_from(value).ok()
}
