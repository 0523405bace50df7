//! Configuration: plain data with defaults, built from a variable lookup function
//! so it can be tested without Spin. Every error names the variable at fault.

use crate::cache::mark::MAX_MARK_SECONDS;
use crate::cache::policy::{CredentialMode, StatusPolicy};
use crate::protocol::jsonrpc::MethodList;
use crate::protocol::{BodyFormat, ProtocolConfig};
use std::fmt;

/// The configuration of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub origin: OriginUrl,
    /// Freshness (seconds) when the origin states none.
    pub default_ttl: u64,
    /// Connect and first-byte timeout for origin requests (seconds).
    pub origin_timeout: u64,
    /// Request bodies larger than this are forwarded, not cached.
    pub max_body_bytes: usize,
    /// The largest response stored (head + body), split over several values
    /// when it is larger than `max_value_bytes`.
    pub max_entry_bytes: usize,
    /// The largest value written to the KV store: a record, or one body segment.
    pub max_value_bytes: usize,
    /// Upper-case methods that are cache candidates.
    pub cache_methods: Vec<String>,
    /// Lower-case request header names whose values are part of the key.
    pub key_headers: Vec<String>,
    /// `cacheable_statuses` (stored without explicit freshness) and
    /// `store_server_errors`.
    pub cacheable_statuses: StatusPolicy,
    pub credentials: CredentialMode,
    /// Secret salt of the credential scope; non-empty when scoping is on.
    pub credential_salt: String,
    /// Label of the Spin key-value store.
    pub kv_store: String,
    /// `body_format`, `rpc_methods`, `graphql_store_partial`, `rpc_store_null`.
    pub protocol: ProtocolConfig,
    /// Seconds a stored answer may be served stale while one request refreshes it,
    /// for answers that do not say (`stale-while-revalidate`).
    pub stale_while_revalidate: u64,
    /// Seconds a stored answer may stand in for an origin that fails, for answers
    /// that do not say (`stale-if-error`).
    pub stale_if_error: u64,
    /// Lower-case name of this cache's own targeted cache-control field ("" for none).
    pub targeted_cache_control: String,
    /// How long a miss waits for another request already fetching the same key
    /// (milliseconds); 0 turns collapsing off.
    pub collapse_wait_ms: u64,
    /// Whether a miss on a key that holds nothing writes a mark too (one write
    /// and one read before the origin is asked), so that a burst on a new key
    /// collapses; expired entries are always collapsed.
    pub collapse_cold_misses: bool,
    /// Where the admin API lives: starts and ends with `/`.
    pub admin_path: String,
    /// The admin API's bearer token (a secret variable); empty turns the API off.
    pub purge_token: String,
    /// Whether `Surrogate-Key` / `Cache-Tag` reach the client.
    pub relay_tags: bool,
    /// Whether a successful PUT, PATCH, DELETE or non-candidate POST forgets the
    /// entries of its URL (RFC 9111 §4.4).
    pub invalidate_on_unsafe: bool,
    /// Whether a successful GraphQL mutation forgets every entry of its endpoint.
    pub invalidate_on_mutation: bool,
    /// A bounded step of the sweep runs after one stored miss in this many on
    /// average (0: never).
    pub sweep_every: u64,
    /// When a sweep step counts more entries, it evicts down to this (0: no bound).
    pub max_entries: u64,
    /// Seconds a persisted query's marker is kept before a sweep deletes it.
    pub persisted_query_max_age: u64,
}

/// The origin base URL, split for building outbound requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    pub https: bool,
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub base_path: String,
}

/// A variable that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "variable `{}`: {}", self.variable, self.problem)
    }
}

/// Defaults, as also written in spin.toml and the README.
pub mod defaults {
    pub const DEFAULT_TTL: u64 = 60;
    pub const ORIGIN_TIMEOUT: u64 = 30;
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    /// 16 MiB, stored in values of at most `MAX_VALUE_BYTES`.
    pub const MAX_ENTRY_BYTES: usize = 16 << 20;
    /// Larger entries would make one miss's memory and writes unreasonable.
    pub const MAX_MAX_ENTRY_BYTES: u64 = 1 << 30;
    /// The 1 MB (1,000,000 bytes) value cap of hosted Spin KV.
    pub const MAX_VALUE_BYTES: usize = 1_000_000;
    /// Smaller values would need thousands of writes per entry.
    pub const MIN_VALUE_BYTES: u64 = 4096;
    pub const CACHE_METHODS: &str = "POST,QUERY";
    /// The same bytes under another `Content-Encoding` are another request (an
    /// error answer to a compressed body must not answer the plain one).
    pub const KEY_HEADERS: &str = "content-type,content-encoding";
    /// RFC 9110 §15.1: the heuristically cacheable status codes, stored without
    /// explicit freshness. Any other final status needs explicit freshness.
    pub const CACHEABLE_STATUSES: &str = "200,203,204,300,301,404,405,410,414,501";
    /// RFC 9111 §3 lets a cache store a 5xx that has explicit freshness.
    pub const STORE_SERVER_ERRORS: bool = true;
    /// A stale-refresh mark lasts `origin_timeout` plus 2 s (`REFRESH_SLACK_SECONDS`
    /// in proxy/stale.rs) and a mark claiming more than `MAX_MARK_SECONDS` never
    /// counts as live: a longer timeout would let every stale hit refresh.
    pub const MAX_ORIGIN_TIMEOUT: u64 = super::MAX_MARK_SECONDS - 2;
    pub const KV_STORE: &str = "default";
    pub const TARGETED_CACHE_CONTROL: &str = "post-cache-control";
    pub const COLLAPSE_WAIT_MS: u64 = 300;
    /// Longer waits would hold clients longer than most origins take.
    pub const MAX_COLLAPSE_WAIT_MS: u64 = 10_000;
    /// Off by default: Spin's KV can only list the whole store (46 ms and 16 MiB of
    /// guest memory per write at 100,000 entries, see the README).
    pub const INVALIDATE_ON_UNSAFE: bool = false;
    pub const ADMIN_PATH: &str = "/.well-known/post-cache/";
    /// A shorter bearer token is guessable.
    pub const MIN_TOKEN_CHARS: usize = 24;
    /// One bounded sweep step per this many stored misses (see the README's
    /// housekeeping section for what a step costs).
    pub const SWEEP_EVERY: u64 = 32;
    /// A persisted query's document does not change under its hash; the bound
    /// only keeps hashes nobody sends any more from filling the store.
    pub const PERSISTED_QUERY_MAX_AGE: u64 = 7 * 24 * 3600;
}

/// A variable lookup: `Ok(None)` when the variable is undefined, `Err` when the
/// provider failed.
pub trait Lookup: Fn(&'static str) -> Result<Option<String>, String> {}
impl<F: Fn(&'static str) -> Result<Option<String>, String>> Lookup for F {}

impl Config {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> Result<Option<String>, ConfigError> {
            lookup(name)
                .map(|v| v.map(|s| s.trim().to_string()))
                .map_err(|e| err(name, format!("could not be read: {e}")))
        };
        let origin = match get("origin")? {
            Some(url) if !url.is_empty() => OriginUrl::parse(&url).map_err(|p| err("origin", p))?,
            _ => return Err(err("origin", "is required: the base URL of the origin, e.g. https://api.example.com".into())),
        };
        let number = |name: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match get(name)? {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    Ok(_) => Err(err(name, format!("must be at least {min}, got {v:?}"))),
                    Err(_) => Err(err(name, format!("must be a whole number, got {v:?}"))),
                },
            }
        };
        let at_most = |name: &'static str, n: u64, max: u64| -> Result<u64, ConfigError> {
            if n > max {
                return Err(err(name, format!("must be at most {max}, got {n}")));
            }
            Ok(n)
        };
        let list = |name: &'static str, default: &str| -> Result<Vec<String>, ConfigError> {
            let raw = get(name)?.unwrap_or_else(|| default.to_string());
            Ok(raw
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect())
        };

        let cache_methods: Vec<String> = list("cache_methods", defaults::CACHE_METHODS)?
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        if let Some(bad) = cache_methods.iter().find(|m| !is_token(m)) {
            return Err(err("cache_methods", format!("{bad:?} is not an HTTP method")));
        }
        let key_headers: Vec<String> = list("key_headers", defaults::KEY_HEADERS)?
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(bad) = key_headers.iter().find(|h| !is_token(h)) {
            return Err(err("key_headers", format!("{bad:?} is not a header name")));
        }
        if let Some(cred) = key_headers
            .iter()
            .find(|h| crate::cache::policy::CREDENTIAL_HEADERS.contains(&h.as_str()))
        {
            return Err(err(
                "key_headers",
                format!("{cred:?} would put a credential in the key; use scope_by_credential"),
            ));
        }
        let heuristic = list("cacheable_statuses", defaults::CACHEABLE_STATUSES)?
            .iter()
            .map(|s| match s.parse::<u16>() {
                // RFC 9111 §3: only final statuses are stored, and a 206 or 304 only by
                // a cache that understands them; this one stores neither (a stored 304
                // would be replayed to clients that sent no conditional).
                Ok(n @ (100..=199 | 206 | 304)) => {
                    Err(err("cacheable_statuses", format!("{n} is never stored: a 1xx is interim, a 206 partial, a 304 the answer to a conditional")))
                }
                Ok(n) if (200..=599).contains(&n) => Ok(n),
                _ => Err(err("cacheable_statuses", format!("{s:?} is not an HTTP status code"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = match get("scope_by_credential")?.as_deref() {
            None | Some("") | Some("false") => CredentialMode::Bypass,
            Some("true") => CredentialMode::Scoped,
            Some(other) => {
                return Err(err("scope_by_credential", format!("must be true or false, got {other:?}")))
            }
        };
        let credential_salt = get("credential_salt")?.unwrap_or_default();
        if credentials == CredentialMode::Scoped && credential_salt.len() < 16 {
            return Err(err(
                "credential_salt",
                "must be a secret of at least 16 characters when scope_by_credential is true".into(),
            ));
        }
        let format = match get("body_format")?.as_deref() {
            None | Some("") => BodyFormat::Raw,
            Some(name) => BodyFormat::parse(name).ok_or_else(|| {
                err("body_format", format!("must be raw, json, graphql or jsonrpc, got {name:?}"))
            })?,
        };
        let rpc_methods = MethodList::parse(&get("rpc_methods")?.unwrap_or_default()).map_err(|p| err("rpc_methods", p))?;
        if format == BodyFormat::JsonRpc && rpc_methods.is_empty() {
            return Err(err(
                "rpc_methods",
                "is required when body_format is jsonrpc: the methods that may be cached, e.g. eth_chainId,eth_getBlockByHash,net_*".into(),
            ));
        }
        let graphql_store_partial = match get("graphql_store_partial")?.as_deref() {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(err("graphql_store_partial", format!("must be true or false, got {other:?}"))),
        };
        let rpc_store_null = match get("rpc_store_null")?.as_deref() {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(err("rpc_store_null", format!("must be true or false, got {other:?}"))),
        };
        let targeted_cache_control = get("targeted_cache_control")?
            .unwrap_or_else(|| defaults::TARGETED_CACHE_CONTROL.to_string())
            .to_ascii_lowercase();
        if !targeted_cache_control.is_empty() && !is_token(&targeted_cache_control) {
            return Err(err("targeted_cache_control", format!("{targeted_cache_control:?} is not a header name")));
        }
        let collapse_wait_ms = at_most("collapse_wait_ms", number("collapse_wait_ms", defaults::COLLAPSE_WAIT_MS, 0)?, defaults::MAX_COLLAPSE_WAIT_MS)?;
        let admin_path = get("admin_path")?.filter(|p| !p.is_empty()).unwrap_or_else(|| defaults::ADMIN_PATH.to_string());
        if !admin_path.starts_with('/') || !admin_path.ends_with('/') || admin_path == "/" || admin_path.contains(['?', '#']) {
            return Err(err("admin_path", format!("must be a path that starts and ends with '/', e.g. {:?}, got {admin_path:?}", defaults::ADMIN_PATH)));
        }
        let purge_token = get("purge_token")?.unwrap_or_default();
        if !purge_token.is_empty() && purge_token.chars().count() < defaults::MIN_TOKEN_CHARS {
            return Err(err(
                "purge_token",
                format!("must be at least {} characters (or empty to turn the admin API off)", defaults::MIN_TOKEN_CHARS),
            ));
        }
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(name)?.as_deref() {
                None | Some("") => Ok(default),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(err(name, format!("must be true or false, got {other:?}"))),
            }
        };
        let cacheable_statuses =
            StatusPolicy { heuristic, server_errors: flag("store_server_errors", defaults::STORE_SERVER_ERRORS)? };
        let kv_store = get("kv_store")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| defaults::KV_STORE.to_string());

        Ok(Config {
            origin,
            default_ttl: number("default_ttl", defaults::DEFAULT_TTL, 0)?,
            origin_timeout: at_most("origin_timeout", number("origin_timeout", defaults::ORIGIN_TIMEOUT, 1)?, defaults::MAX_ORIGIN_TIMEOUT)?,
            max_body_bytes: number("max_body_bytes", defaults::MAX_BODY_BYTES as u64, 0)? as usize,
            max_entry_bytes: at_most("max_entry_bytes", number("max_entry_bytes", defaults::MAX_ENTRY_BYTES as u64, 1024)?, defaults::MAX_MAX_ENTRY_BYTES)? as usize,
            max_value_bytes: at_most("max_value_bytes", number("max_value_bytes", defaults::MAX_VALUE_BYTES as u64, defaults::MIN_VALUE_BYTES)?, u64::from(u32::MAX))? as usize,
            cache_methods,
            key_headers,
            cacheable_statuses,
            credentials,
            credential_salt,
            kv_store,
            protocol: ProtocolConfig { format, rpc_methods, graphql_store_partial, rpc_store_null },
            stale_while_revalidate: number("stale_while_revalidate", 0, 0)?,
            stale_if_error: number("stale_if_error", 0, 0)?,
            targeted_cache_control,
            collapse_wait_ms,
            admin_path,
            purge_token,
            relay_tags: flag("relay_tags", false)?,
            collapse_cold_misses: flag("collapse_cold_misses", false)?,
            invalidate_on_unsafe: flag("invalidate_on_unsafe", defaults::INVALIDATE_ON_UNSAFE)?,
            invalidate_on_mutation: flag("invalidate_on_mutation", false)?,
            sweep_every: number("sweep_every", defaults::SWEEP_EVERY, 0)?,
            max_entries: number("max_entries", 0, 0)?,
            persisted_query_max_age: number("persisted_query_max_age", defaults::PERSISTED_QUERY_MAX_AGE, 1)?,
        })
    }

    /// Response fields meant for this cache, not relayed or replayed to the
    /// client: the targeted cache-control fields (RFC 9213), and the tags unless
    /// `relay_tags`. ("" stands for a field that is not there.)
    pub fn targeted_fields(&self) -> [&str; 4] {
        let [surrogate, cache_tag] = crate::cache::tags::TAG_FIELDS;
        let (surrogate, cache_tag) = if self.relay_tags { ("", "") } else { (surrogate, cache_tag) };
        [crate::cache::targeted::CDN_CACHE_CONTROL, &self.targeted_cache_control, surrogate, cache_tag]
    }

    pub fn is_candidate(&self, method: &str) -> bool {
        self.cache_methods.iter().any(|m| m == method)
    }
}

impl OriginUrl {
    /// Parses `http[s]://authority[/base/path]`; no query, fragment or user info.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} needs a host and no user info"));
        }
        if !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
        {
            return Err(format!("{url:?} has an invalid host"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("{url:?} must not have a query or fragment"));
        }
        Ok(OriginUrl {
            https,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn err(variable: &'static str, problem: String) -> ConfigError {
    ConfigError { variable, problem }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |name| Ok(map.get(name).cloned()))
    }

    #[test]
    fn defaults_apply() {
        let c = config(&[("origin", "https://api.example.com/v1/")]).unwrap();
        assert_eq!(
            c.origin,
            OriginUrl { https: true, authority: "api.example.com".into(), base_path: "/v1".into() }
        );
        assert_eq!(c.default_ttl, 60);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.max_entry_bytes, 16 << 20);
        assert_eq!(c.max_value_bytes, 1_000_000);
        assert_eq!(c.cache_methods, vec!["POST", "QUERY"]);
        assert_eq!(c.key_headers, vec!["content-type", "content-encoding"]);
        assert_eq!(c.cacheable_statuses.heuristic, vec![200, 203, 204, 300, 301, 404, 405, 410, 414, 501]);
        assert!(c.cacheable_statuses.server_errors);
        assert_eq!(c.origin_timeout, 30);
        assert_eq!(c.credentials, CredentialMode::Bypass);
        assert_eq!((c.stale_while_revalidate, c.stale_if_error), (0, 0));
        assert_eq!(c.targeted_cache_control, "post-cache-control");
        assert_eq!(c.collapse_wait_ms, 300);
        assert_eq!((c.admin_path.as_str(), c.purge_token.as_str()), ("/.well-known/post-cache/", ""));
        assert!(!c.relay_tags && !c.invalidate_on_mutation && !c.invalidate_on_unsafe);
        assert_eq!(c.kv_store, "default");
        assert_eq!(c.protocol, ProtocolConfig::default());
        assert!(c.is_candidate("QUERY") && !c.is_candidate("GET"));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "origin"),
            (&[("origin", "")], "origin"),
            (&[("origin", "ftp://x")], "origin"),
            (&[("origin", "http://x?y")], "origin"),
            (&[("origin", "http://u@x")], "origin"),
            (&[("origin", "http://x"), ("default_ttl", "ten")], "default_ttl"),
            (&[("origin", "http://x"), ("origin_timeout", "0")], "origin_timeout"),
            (&[("origin", "http://x"), ("max_body_bytes", "-1")], "max_body_bytes"),
            (&[("origin", "http://x"), ("max_entry_bytes", "10")], "max_entry_bytes"),
            (&[("origin", "http://x"), ("max_entry_bytes", "2000000000")], "max_entry_bytes"),
            (&[("origin", "http://x"), ("max_value_bytes", "100")], "max_value_bytes"),
            (&[("origin", "http://x"), ("cache_methods", "POST,BAD METHOD")], "cache_methods"),
            (&[("origin", "http://x"), ("key_headers", "authorization")], "key_headers"),
            (&[("origin", "http://x"), ("cacheable_statuses", "200,abc")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("cacheable_statuses", "200,600")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("cacheable_statuses", "200,304")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("cacheable_statuses", "100,200")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("cacheable_statuses", "199")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("cacheable_statuses", "206")], "cacheable_statuses"),
            (&[("origin", "http://x"), ("store_server_errors", "no")], "store_server_errors"),
            (&[("origin", "http://x"), ("origin_timeout", "599")], "origin_timeout"),
            (&[("origin", "http://x"), ("origin_timeout", "18446744073709551615")], "origin_timeout"),
            (&[("origin", "http://x"), ("scope_by_credential", "yes")], "scope_by_credential"),
            (&[("origin", "http://x"), ("scope_by_credential", "true")], "credential_salt"),
            (&[("origin", "http://x"), ("body_format", "xml")], "body_format"),
            (&[("origin", "http://x"), ("body_format", "jsonrpc")], "rpc_methods"),
            (&[("origin", "http://x"), ("body_format", "jsonrpc"), ("rpc_methods", " , ")], "rpc_methods"),
            (&[("origin", "http://x"), ("rpc_methods", "eth_*x")], "rpc_methods"),
            (&[("origin", "http://x"), ("graphql_store_partial", "1")], "graphql_store_partial"),
            (&[("origin", "http://x"), ("rpc_store_null", "yes")], "rpc_store_null"),
            (&[("origin", "http://x"), ("stale_if_error", "-1")], "stale_if_error"),
            (&[("origin", "http://x"), ("stale_while_revalidate", "1h")], "stale_while_revalidate"),
            (&[("origin", "http://x"), ("targeted_cache_control", "my field")], "targeted_cache_control"),
            (&[("origin", "http://x"), ("collapse_wait_ms", "60000")], "collapse_wait_ms"),
            (&[("origin", "http://x"), ("purge_token", "short-token")], "purge_token"),
            (&[("origin", "http://x"), ("admin_path", "/admin")], "admin_path"),
            (&[("origin", "http://x"), ("admin_path", "/")], "admin_path"),
            (&[("origin", "http://x"), ("relay_tags", "yes")], "relay_tags"),
            (&[("origin", "http://x"), ("invalidate_on_unsafe", "1")], "invalidate_on_unsafe"),
        ];
        for (vars, variable) in cases {
            let e = config(vars).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?}: {e}");
            assert!(e.to_string().contains(variable));
        }
    }

    #[test]
    fn every_variable_read_is_declared_in_spin_toml_and_passed_to_the_component() {
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            asked.borrow_mut().push(name);
            Ok(if name == "origin" { Some("http://x".into()) } else { None })
        });
        let manifest = include_str!("../spin.toml");
        for name in asked.borrow().iter() {
            assert!(manifest.contains(&format!("\n{name} = {{ ")), "{name} not declared in [variables]");
            assert!(manifest.contains(&format!("\n{name} = \"{{{{ {name} }}}}\"")), "{name} not passed to the component");
        }
        assert!(asked.borrow().len() >= 25, "{:?}", asked.borrow());
    }

    #[test]
    fn stale_and_collapse_variables_are_read() {
        let c = config(&[
            ("origin", "http://x"),
            ("stale_while_revalidate", "30"),
            ("stale_if_error", "86400"),
            ("targeted_cache_control", "Edge-Cache-Control"),
            ("collapse_wait_ms", "0"),
        ])
        .unwrap();
        assert_eq!((c.stale_while_revalidate, c.stale_if_error, c.collapse_wait_ms), (30, 86_400, 0));
        assert_eq!(c.targeted_fields(), ["cdn-cache-control", "edge-cache-control", "surrogate-key", "cache-tag"]);
        let no_own = config(&[("origin", "http://x"), ("targeted_cache_control", "")]).unwrap();
        assert_eq!(no_own.targeted_cache_control, "");
    }

    #[test]
    fn provider_failure_is_reported() {
        let e = Config::from_lookup(|_| Err("vault unreachable".into())).unwrap_err();
        assert_eq!(e.variable, "origin");
        assert!(e.problem.contains("vault unreachable"));
    }

    #[test]
    fn lists_are_normalised() {
        let c = config(&[
            ("origin", "http://127.0.0.1:8080"),
            ("cache_methods", " post , query,"),
            ("key_headers", "Content-Type, X-Tenant"),
            ("scope_by_credential", "true"),
            ("credential_salt", "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(c.cache_methods, vec!["POST", "QUERY"]);
        assert_eq!(c.key_headers, vec!["content-type", "x-tenant"]);
        assert_eq!(c.credentials, CredentialMode::Scoped);
        assert_eq!(c.origin.base_path, "");
    }

    #[test]
    fn protocol_variables_are_read() {
        let c = config(&[
            ("origin", "http://x"),
            ("body_format", "jsonrpc"),
            ("rpc_methods", "eth_chainId, net_*"),
            ("graphql_store_partial", "true"),
            ("rpc_store_null", "true"),
        ])
        .unwrap();
        assert_eq!(c.protocol.format, BodyFormat::JsonRpc);
        assert!(c.protocol.rpc_methods.allows("net_version"));
        assert!(c.protocol.graphql_store_partial && c.protocol.rpc_store_null);
        assert_eq!(config(&[("origin", "http://x"), ("body_format", "graphql")]).unwrap().protocol.format, BodyFormat::GraphQl);
    }

    #[test]
    fn empty_key_headers_means_none() {
        let c = config(&[("origin", "http://x"), ("key_headers", "")]).unwrap();
        assert!(c.key_headers.is_empty());
    }

    #[test]
    fn an_origin_timeout_leaves_room_for_a_live_refresh_mark() {
        use crate::cache::mark::Mark;
        let c = config(&[("origin", "http://x"), ("origin_timeout", "598")]).unwrap();
        // What a stale refresh claims: the timeout and its slack.
        let now = 1_700_000_000;
        let mark = Mark { until: now + c.origin_timeout + 2, token: 1 };
        assert!(mark.live(now));
        let e = config(&[("origin", "http://x"), ("origin_timeout", "599")]).unwrap_err();
        assert!(e.problem.contains("at most 598"), "{e}");
    }

    #[test]
    fn statuses_that_are_never_stored_are_refused_and_5xx_can_be_refused() {
        let e = config(&[("origin", "http://x"), ("cacheable_statuses", "200,304")]).unwrap_err();
        assert_eq!(e.variable, "cacheable_statuses");
        assert!(e.problem.contains("304"), "{e}");
        let c = config(&[("origin", "http://x"), ("cacheable_statuses", "200,302"), ("store_server_errors", "false")]).unwrap();
        assert_eq!(c.cacheable_statuses, StatusPolicy { heuristic: vec![200, 302], server_errors: false });
    }

    #[test]
    fn rpc_methods_ending_in_a_multi_byte_character_are_read() {
        let c = config(&[("origin", "http://x"), ("rpc_methods", "eth_é,net_ü*, ça")]).unwrap();
        let methods = &c.protocol.rpc_methods;
        assert!(methods.allows("eth_é") && methods.allows("net_über") && methods.allows("ça") && !methods.allows("eth_e"));
        let e = config(&[("origin", "http://x"), ("rpc_methods", "a*é")]).unwrap_err();
        assert_eq!(e.variable, "rpc_methods");
    }

    #[test]
    fn the_same_bytes_with_and_without_content_encoding_get_different_keys_by_default() {
        use crate::http::headers::values;
        use crate::cache::key::{derive, KeyInput};
        let c = config(&[("origin", "http://x")]).unwrap();
        let key = |headers: &[(String, Vec<u8>)]| {
            let key_headers: Vec<(&str, Vec<&[u8]>)> = c.key_headers.iter().map(|n| (n.as_str(), values(headers, n))).collect();
            derive(&KeyInput {
                method: "POST",
                host: "x",
                path: "/",
                query: "",
                headers: &key_headers,
                credential_scope: None,
                body_format: 0,
                body_digest: [7; 32],
            })
        };
        let plain = vec![("content-type".to_string(), b"application/json".to_vec())];
        let mut gzip = plain.clone();
        gzip.push(("Content-Encoding".to_string(), b"gzip".to_vec()));
        assert_ne!(key(&plain), key(&gzip));
    }
}
