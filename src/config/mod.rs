//! Configuration: plain data built from a variable lookup function, so it can
//! be tested without Spin. The variables are one table (`variables.rs`): name,
//! default, parser and a line of documentation each. Every error names the
//! variable at fault.

mod origin;
mod parse;
pub mod variables;

use crate::cache::policy::{CredentialMode, StatusPolicy};
use crate::protocol::jsonrpc::RpcLifetimes;
use crate::protocol::{BodyFormat, GraphQlInvalidation, ProtocolConfig};
pub use origin::OriginUrl;
use parse::Parse;
use std::fmt;
use variables::{self as v, Key};

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
    /// `body_format` and the rules of its protocol (`rpc_*`, `graphql_*`).
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
    /// What a GraphQL mutation whose answer ran does to the entries that show
    /// the entities it names.
    pub graphql_invalidation: GraphQlInvalidation,
    /// A bounded step of the sweep runs after one stored miss in this many on
    /// average (0: never).
    pub sweep_every: u64,
    /// When a sweep step counts more entries, it evicts down to this (0: no bound).
    pub max_entries: u64,
    /// Seconds a persisted query's marker is kept before a sweep deletes it.
    pub persisted_query_max_age: u64,
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

/// A variable lookup: `Ok(None)` when the variable is undefined, `Err` when the
/// provider failed.
pub trait Lookup: Fn(&'static str) -> Result<Option<String>, String> {}
impl<F: Fn(&'static str) -> Result<Option<String>, String>> Lookup for F {}

impl Config {
    /// Reads every row of the variable table, then the checks that span
    /// variables.
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, ConfigError> {
        // A row's key and parser are taken apart at compile time, so that the
        // documentation of the rows does not reach the component.
        macro_rules! read {
            ($var:ident) => {
                read(&lookup, const { v::$var.row.key() }, const { v::$var.parser })?
            };
        }
        let origin = read!(ORIGIN);
        let default_ttl = read!(DEFAULT_TTL);
        let origin_timeout = read!(ORIGIN_TIMEOUT);
        let max_body_bytes = read!(MAX_BODY_BYTES);
        let max_entry_bytes = read!(MAX_ENTRY_BYTES);
        let max_value_bytes = read!(MAX_VALUE_BYTES);
        let cache_methods = read!(CACHE_METHODS);
        let key_headers = read!(KEY_HEADERS);
        let heuristic = read!(CACHEABLE_STATUSES);
        let server_errors = read!(STORE_SERVER_ERRORS);
        let credentials = read!(SCOPE_BY_CREDENTIAL);
        let credential_salt = read!(CREDENTIAL_SALT);
        let kv_store = read!(KV_STORE);
        let format = read!(BODY_FORMAT);
        let rpc_methods = read!(RPC_METHODS);
        let graphql_store_partial = read!(GRAPHQL_STORE_PARTIAL);
        let rpc_store_null = read!(RPC_STORE_NULL);
        let rpc_tip_ttl = read!(RPC_TIP_TTL);
        let graphql_operations = read!(GRAPHQL_OPERATIONS);
        let graphql_types = read!(GRAPHQL_TYPES);
        let graphql_key_fields = read!(GRAPHQL_KEY_FIELDS);
        let graphql_entity_tags = read!(GRAPHQL_ENTITY_TAGS);
        let graphql_invalidation = read!(GRAPHQL_INVALIDATION);
        let stale_while_revalidate = read!(STALE_WHILE_REVALIDATE);
        let stale_if_error = read!(STALE_IF_ERROR);
        let targeted_cache_control = read!(TARGETED_CACHE_CONTROL);
        let collapse_wait_ms = read!(COLLAPSE_WAIT_MS);
        let collapse_cold_misses = read!(COLLAPSE_COLD_MISSES);
        let admin_path = read!(ADMIN_PATH);
        let purge_token = read!(PURGE_TOKEN);
        let relay_tags = read!(RELAY_TAGS);
        let invalidate_on_unsafe = read!(INVALIDATE_ON_UNSAFE);
        let invalidate_on_mutation = read!(INVALIDATE_ON_MUTATION);
        let sweep_every = read!(SWEEP_EVERY);
        let max_entries = read!(MAX_ENTRIES);
        let persisted_query_max_age = read!(PERSISTED_QUERY_MAX_AGE);

        // Across variables.
        if credentials == CredentialMode::Scoped && credential_salt.len() < v::MIN_SALT_CHARS {
            return Err(err(
                v::CREDENTIAL_SALT.row.name,
                format!(
                    "must be a secret of at least {} characters when scope_by_credential is true",
                    v::MIN_SALT_CHARS
                ),
            ));
        }
        if format == BodyFormat::JsonRpc && rpc_methods.is_empty() {
            return Err(err(
                v::RPC_METHODS.row.name,
                "is required when body_format is jsonrpc: the methods that may be cached, e.g. eth_chainId,eth_getBlockByHash,net_*".into(),
            ));
        }

        Ok(Config {
            origin,
            default_ttl,
            origin_timeout,
            max_body_bytes: max_body_bytes as usize,
            max_entry_bytes: max_entry_bytes as usize,
            max_value_bytes: max_value_bytes as usize,
            cache_methods,
            key_headers,
            cacheable_statuses: StatusPolicy { heuristic, server_errors },
            credentials,
            credential_salt,
            kv_store,
            protocol: ProtocolConfig {
                format,
                rpc_methods,
                graphql_store_partial,
                rpc_store_null,
                rpc_lifetimes: RpcLifetimes { default_ttl, tip_ttl: rpc_tip_ttl },
                graphql_operations,
                graphql_types,
                graphql_key_fields,
                graphql_entity_tags: graphql_entity_tags as usize,
            },
            stale_while_revalidate,
            stale_if_error,
            targeted_cache_control,
            collapse_wait_ms,
            collapse_cold_misses,
            admin_path,
            purge_token,
            relay_tags,
            invalidate_on_unsafe,
            invalidate_on_mutation,
            graphql_invalidation,
            sweep_every,
            max_entries,
            persisted_query_max_age,
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

/// One row's value, parsed from the lookup's text (trimmed) or from the row's
/// default when the variable is undefined (or blank, where the parser says blank
/// means the default).
fn read<P: Parse>(lookup: &impl Lookup, row: Key, parser: P) -> Result<P::Out, ConfigError> {
    let value = lookup(row.name).map_err(|e| err(row.name, format!("could not be read: {e}")))?;
    let text = text_of(value.as_deref(), row, P::BLANK_IS_DEFAULT)?;
    parser.parse(text).map_err(|problem| err(row.name, problem))
}

/// The text a row's value is parsed from.
fn text_of(value: Option<&str>, row: Key, blank_is_default: bool) -> Result<&str, ConfigError> {
    match value.map(str::trim) {
        Some(text) if !text.is_empty() || !(blank_is_default || row.required.is_some()) => Ok(text),
        _ => match (row.default, row.required) {
            (Some(default), _) => Ok(default),
            (None, what) => Err(err(row.name, format!("is required: {}", what.unwrap_or_default()))),
        },
    }
}

fn err(variable: &'static str, problem: String) -> ConfigError {
    ConfigError { variable, problem }
}

#[cfg(test)]
mod tests;
