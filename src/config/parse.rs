//! The parsers of the variable table. Each turns a variable's trimmed text into
//! its value or says what is wrong with it; the reader names the variable.

use super::origin::OriginUrl;
use crate::cache::policy::CREDENTIAL_HEADERS;
use crate::protocol::entities::KeyFields;
use crate::protocol::rules::RuleList;

/// How a variable's text becomes its value.
pub trait Parse {
    type Out;
    /// Whether an empty value stands for the default (a flag, a word, a label)
    /// rather than for itself (an empty list, no field, a number that is not one).
    const BLANK_IS_DEFAULT: bool = false;
    fn parse(&self, text: &str) -> Result<Self::Out, String>;
}

/// A base URL, `http[s]://host[:port][/base/path]`.
pub struct Url;

impl Parse for Url {
    type Out = OriginUrl;
    fn parse(&self, text: &str) -> Result<OriginUrl, String> {
        OriginUrl::parse(text)
    }
}

/// A whole number within bounds: seconds, milliseconds, bytes or a count.
pub struct Number {
    pub min: u64,
    pub max: u64,
}

impl Number {
    pub const ANY: Number = Number { min: 0, max: u64::MAX };

    pub const fn at_least(min: u64) -> Number {
        Number { min, max: u64::MAX }
    }
}

impl Parse for Number {
    type Out = u64;
    fn parse(&self, text: &str) -> Result<u64, String> {
        let n: u64 = text.parse().map_err(|_| format!("must be a whole number, got {text:?}"))?;
        if n < self.min {
            return Err(format!("must be at least {}, got {text:?}", self.min));
        }
        if n > self.max {
            return Err(format!("must be at most {}, got {n}", self.max));
        }
        Ok(n)
    }
}

/// One of a few words, each standing for a value.
pub struct OneOf<T: 'static>(pub &'static [(&'static str, T)]);

/// `true` or `false`.
pub const FLAG: OneOf<bool> = OneOf(&[("true", true), ("false", false)]);

impl<T: Copy> Parse for OneOf<T> {
    type Out = T;
    const BLANK_IS_DEFAULT: bool = true;
    fn parse(&self, text: &str) -> Result<T, String> {
        match self.0.iter().find(|(word, _)| *word == text) {
            Some((_, value)) => Ok(*value),
            None => Err(format!("must be {}, got {text:?}", self.words())),
        }
    }
}

impl<T> OneOf<T> {
    /// "a, b or c".
    fn words(&self) -> String {
        let mut out = String::new();
        for (i, (word, _)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(if i + 1 == self.0.len() { " or " } else { ", " });
            }
            out.push_str(word);
        }
        out
    }
}

/// A comma-separated list of tokens (HTTP methods or header names), blank
/// entries dropped, each folded to one case.
pub struct Tokens {
    pub upper: bool,
    /// What each entry must be, as in "… is not an HTTP method".
    pub what: &'static str,
}

impl Parse for Tokens {
    type Out = Vec<String>;
    fn parse(&self, text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let entry = if self.upper { entry.to_ascii_uppercase() } else { entry.to_ascii_lowercase() };
            if !is_token(&entry) {
                return Err(format!("{entry:?} is not {}", self.what));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Request header names whose values are part of the key.
pub struct KeyHeaders;

impl Parse for KeyHeaders {
    type Out = Vec<String>;
    fn parse(&self, text: &str) -> Result<Vec<String>, String> {
        let names = Tokens { upper: false, what: "a header name" }.parse(text)?;
        match names.iter().find(|name| CREDENTIAL_HEADERS.contains(&name.as_str())) {
            Some(credential) => {
                Err(format!("{credential:?} would put a credential in the key; use scope_by_credential"))
            }
            None => Ok(names),
        }
    }
}

/// A comma-separated list of final HTTP status codes that may be stored.
pub struct Statuses;

impl Parse for Statuses {
    type Out = Vec<u16>;
    fn parse(&self, text: &str) -> Result<Vec<u16>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<u16>() {
                // RFC 9111 §3: only final statuses are stored, and a 206 or 304 only by
                // a cache that understands them; this one stores neither (a stored 304
                // would be replayed to clients that sent no conditional).
                Ok(n @ (100..=199 | 206 | 304)) => {
                    Err(format!("{n} is never stored: a 1xx is interim, a 206 partial, a 304 the answer to a conditional"))
                }
                Ok(n) if (200..=599).contains(&n) => Ok(n),
                _ => Err(format!("{s:?} is not an HTTP status code")),
            })
            .collect()
    }
}

/// Rules by name (JSON-RPC methods, GraphQL operations or types),
/// comma-separated, each `name[=SECONDS|forever|never]`; `*` may end a name.
pub struct Rules;

impl Parse for Rules {
    type Out = RuleList;
    fn parse(&self, text: &str) -> Result<RuleList, String> {
        RuleList::parse(text)
    }
}

/// GraphQL key fields: `id, _id, Product=sku`.
pub struct KeyFieldList;

impl Parse for KeyFieldList {
    type Out = KeyFields;
    fn parse(&self, text: &str) -> Result<KeyFields, String> {
        KeyFields::parse(text)
    }
}

/// Any text; empty stands for the default.
pub struct Text;

impl Parse for Text {
    type Out = String;
    const BLANK_IS_DEFAULT: bool = true;
    fn parse(&self, text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
}

/// A header field name, folded to lower case; empty for none.
pub struct FieldName;

impl Parse for FieldName {
    type Out = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        let name = text.to_ascii_lowercase();
        if !name.is_empty() && !is_token(&name) {
            return Err(format!("{name:?} is not a header name"));
        }
        Ok(name)
    }
}

/// A path prefix that starts and ends with `/` and is not the root.
pub struct PathPrefix {
    /// Shown in the error message.
    pub example: &'static str,
}

impl Parse for PathPrefix {
    type Out = String;
    const BLANK_IS_DEFAULT: bool = true;
    fn parse(&self, text: &str) -> Result<String, String> {
        if !text.starts_with('/') || !text.ends_with('/') || text == "/" || text.contains(['?', '#']) {
            return Err(format!(
                "must be a path that starts and ends with '/', e.g. {:?}, got {text:?}",
                self.example
            ));
        }
        Ok(text.to_string())
    }
}

/// A bearer token of at least `min_chars` characters, or empty for no admin API.
pub struct BearerToken {
    pub min_chars: usize,
}

impl Parse for BearerToken {
    type Out = String;
    fn parse(&self, text: &str) -> Result<String, String> {
        if !text.is_empty() && text.chars().count() < self.min_chars {
            return Err(format!(
                "must be at least {} characters (or empty to turn the admin API off)",
                self.min_chars
            ));
        }
        Ok(text.to_string())
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
