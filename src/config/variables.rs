//! The table of variables: each row its name, its default as written in
//! spin.toml, its parser and a line of documentation. `Config::from_lookup`
//! reads these rows; tests hold spin.toml's `[variables]` and the documented
//! variable table against `VARIABLES`.

use super::parse::{
    BearerToken, FieldName, KeyFieldList, KeyHeaders, Number, OneOf, PathPrefix, Rules, Statuses, Text, Tokens, Url, FLAG,
};
use crate::cache::mark::MAX_MARK_SECONDS;
use crate::cache::policy::CredentialMode;
use crate::cache::tags::MAX_TAGS;
use crate::protocol::{BodyFormat, GraphQlInvalidation};

/// What the table says of a variable whatever its parser: what spin.toml and
/// the documentation must agree with.
#[derive(Debug)]
pub struct Row {
    pub name: &'static str,
    /// As written in spin.toml; `None`: required.
    pub default: Option<&'static str>,
    /// Declared `secret = true` in spin.toml.
    pub secret: bool,
    pub doc: &'static str,
}

impl Row {
    /// What reading the variable needs: no documentation beyond what a missing
    /// required variable is told.
    pub const fn key(&self) -> Key {
        let required = match self.default {
            None => Some(self.doc),
            Some(_) => None,
        };
        Key { name: self.name, default: self.default, required }
    }
}

/// What reading a variable needs of its row.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub default: Option<&'static str>,
    /// For a required variable, what the error says to give.
    pub required: Option<&'static str>,
}

/// A row with its parser.
pub struct Var<P> {
    pub row: Row,
    pub parser: P,
}

const fn var<P>(name: &'static str, default: &'static str, parser: P, doc: &'static str) -> Var<P> {
    Var { row: Row { name, default: Some(default), secret: false, doc }, parser }
}

const fn required<P>(name: &'static str, parser: P, doc: &'static str) -> Var<P> {
    Var { row: Row { name, default: None, secret: false, doc }, parser }
}

const fn secret<P>(name: &'static str, default: &'static str, parser: P, doc: &'static str) -> Var<P> {
    Var { row: Row { name, default: Some(default), secret: true, doc }, parser }
}

/// Every variable, in spin.toml's order.
pub const VARIABLES: [&Row; 36] = [
    &ORIGIN.row,
    &DEFAULT_TTL.row,
    &ORIGIN_TIMEOUT.row,
    &MAX_BODY_BYTES.row,
    &MAX_ENTRY_BYTES.row,
    &MAX_VALUE_BYTES.row,
    &CACHE_METHODS.row,
    &KEY_HEADERS.row,
    &CACHEABLE_STATUSES.row,
    &STORE_SERVER_ERRORS.row,
    &SCOPE_BY_CREDENTIAL.row,
    &CREDENTIAL_SALT.row,
    &KV_STORE.row,
    &BODY_FORMAT.row,
    &RPC_METHODS.row,
    &GRAPHQL_STORE_PARTIAL.row,
    &RPC_STORE_NULL.row,
    &RPC_TIP_TTL.row,
    &GRAPHQL_OPERATIONS.row,
    &GRAPHQL_TYPES.row,
    &GRAPHQL_KEY_FIELDS.row,
    &GRAPHQL_ENTITY_TAGS.row,
    &GRAPHQL_INVALIDATION.row,
    &STALE_WHILE_REVALIDATE.row,
    &STALE_IF_ERROR.row,
    &TARGETED_CACHE_CONTROL.row,
    &COLLAPSE_WAIT_MS.row,
    &COLLAPSE_COLD_MISSES.row,
    &ADMIN_PATH.row,
    &PURGE_TOKEN.row,
    &RELAY_TAGS.row,
    &INVALIDATE_ON_UNSAFE.row,
    &INVALIDATE_ON_MUTATION.row,
    &SWEEP_EVERY.row,
    &MAX_ENTRIES.row,
    &PERSISTED_QUERY_MAX_AGE.row,
];

pub const ORIGIN: Var<Url> =
    required("origin", Url, "the base URL of the origin, e.g. https://api.example.com");

pub const DEFAULT_TTL: Var<Number> =
    var("default_ttl", "60", Number::ANY, "Seconds a response stays fresh when the origin states no freshness.");

/// A stale-refresh mark lasts `origin_timeout` plus 2 s (`REFRESH_SLACK_SECONDS`
/// in proxy/stale.rs) and a mark claiming more than `MAX_MARK_SECONDS` never
/// counts as live: a longer timeout would let every stale hit refresh.
pub const MAX_ORIGIN_TIMEOUT: u64 = MAX_MARK_SECONDS - 2;

pub const ORIGIN_TIMEOUT: Var<Number> = var(
    "origin_timeout",
    "30",
    Number { min: 1, max: MAX_ORIGIN_TIMEOUT },
    "Seconds to connect to the origin and to receive the first byte of its answer.",
);

/// Larger entries would make one miss's memory and writes unreasonable.
pub const MAX_MAX_ENTRY_BYTES: u64 = 1 << 30;

/// A body this size is held in memory whole; a larger bound would also not fit
/// a wasm32 `usize` once past 4 GiB.
pub const MAX_BODY_BYTES: Var<Number> = var(
    "max_body_bytes",
    "1048576",
    Number { min: 0, max: MAX_MAX_ENTRY_BYTES },
    "Request bodies larger than this are forwarded, not cached.",
);

/// 16 MiB, stored in values of at most `max_value_bytes`.
pub const MAX_ENTRY_BYTES: Var<Number> = var(
    "max_entry_bytes",
    "16777216",
    Number { min: 1024, max: MAX_MAX_ENTRY_BYTES },
    "The largest response stored (head and body).",
);

/// Smaller values would need thousands of writes per entry.
pub const MIN_VALUE_BYTES: u64 = 4096;

/// The default is the 1 MB (1,000,000 bytes) value cap of hosted Spin KV.
pub const MAX_VALUE_BYTES: Var<Number> = var(
    "max_value_bytes",
    "1000000",
    Number { min: MIN_VALUE_BYTES, max: u32::MAX as u64 },
    "The largest value written to the store; larger entries are split into segments.",
);

pub const CACHE_METHODS: Var<Tokens> = var(
    "cache_methods",
    "POST,QUERY",
    Tokens { upper: true, what: "an HTTP method" },
    "Methods that are cache candidates.",
);

/// The same bytes under another `Content-Encoding` are another request (an
/// error answer to a compressed body must not answer the plain one).
pub const KEY_HEADERS: Var<KeyHeaders> = var(
    "key_headers",
    "content-type,content-encoding",
    KeyHeaders,
    "Request headers whose values are part of the key; empty for none.",
);

/// RFC 9110 §15.1: the heuristically cacheable status codes, stored without
/// explicit freshness. Any other final status needs explicit freshness.
pub const CACHEABLE_STATUSES: Var<Statuses> = var(
    "cacheable_statuses",
    "200,203,204,300,301,404,405,410,414,501",
    Statuses,
    "Statuses stored without explicit freshness, for default_ttl.",
);

/// RFC 9111 §3 lets a cache store a 5xx that has explicit freshness.
pub const STORE_SERVER_ERRORS: Var<OneOf<bool>> =
    var("store_server_errors", "true", FLAG, "Whether a 5xx may be stored at all.");

pub const SCOPE_BY_CREDENTIAL: Var<OneOf<CredentialMode>> = var(
    "scope_by_credential",
    "false",
    OneOf(&[("true", CredentialMode::Scoped), ("false", CredentialMode::Bypass)]),
    "Whether requests with Authorization or Cookie are cached per credential instead of bypassing the cache.",
);

/// A shorter salt is guessable.
pub const MIN_SALT_CHARS: usize = 16;

pub const CREDENTIAL_SALT: Var<Text> =
    secret("credential_salt", "", Text, "Secret salt of the credential scope.");

pub const KV_STORE: Var<Text> = var("kv_store", "default", Text, "Label of the Spin key-value store.");

pub const BODY_FORMAT: Var<OneOf<BodyFormat>> = var(
    "body_format",
    "raw",
    OneOf(&[
        ("raw", BodyFormat::Raw),
        ("json", BodyFormat::Json),
        ("graphql", BodyFormat::GraphQl),
        ("jsonrpc", BodyFormat::JsonRpc),
    ]),
    "How request bodies are keyed.",
);

pub const RPC_METHODS: Var<Rules> =
    var("rpc_methods", "", Rules, "JSON-RPC methods that may be cached; `*` ends a prefix.");

pub const GRAPHQL_STORE_PARTIAL: Var<OneOf<bool>> = var(
    "graphql_store_partial",
    "false",
    FLAG,
    "Whether GraphQL answers with errors beside non-null data are stored.",
);

pub const RPC_STORE_NULL: Var<OneOf<bool>> =
    var("rpc_store_null", "false", FLAG, "Whether JSON-RPC answers whose result is null are stored.");

/// A block every few seconds on the common chains: longer serves answers
/// several blocks behind.
pub const RPC_TIP_TTL: Var<Number> = var(
    "rpc_tip_ttl",
    "2",
    Number::ANY,
    "Most seconds a JSON-RPC answer that follows the chain tip is kept; 0: not cached.",
);

pub const GRAPHQL_OPERATIONS: Var<Rules> = var(
    "graphql_operations",
    "",
    Rules,
    "Lifetime of a GraphQL operation's answers by its name: `name[=SECONDS|forever|never]`, `*` ends a prefix.",
);

pub const GRAPHQL_TYPES: Var<Rules> = var(
    "graphql_types",
    "",
    Rules,
    "Most seconds a GraphQL answer showing a type is kept: `Type=SECONDS` or `Type=never`.",
);

pub const GRAPHQL_KEY_FIELDS: Var<KeyFieldList> = var(
    "graphql_key_fields",
    "id",
    KeyFieldList,
    "The field that keys a GraphQL entity: names tried in order, `Type=field` per type.",
);

/// Every entity tag is one store write per miss: the default keeps a list
/// answer's writes small, and past it the types stand in (`Type:*`). At most
/// the tags an origin may send.
pub const GRAPHQL_ENTITY_TAGS: Var<Number> = var(
    "graphql_entity_tags",
    "16",
    Number { min: 0, max: MAX_TAGS as u64 },
    "Most entity tags (`Type:key`) per stored GraphQL answer; past it, `Type:*`.",
);

pub const GRAPHQL_INVALIDATION: Var<OneOf<GraphQlInvalidation>> = var(
    "graphql_invalidation",
    "entities",
    OneOf(&[
        ("entities", GraphQlInvalidation::Entities),
        ("soft", GraphQlInvalidation::Soft),
        ("off", GraphQlInvalidation::Off),
    ]),
    "What a GraphQL mutation whose answer ran does to the entries showing the entities it names.",
);

pub const STALE_WHILE_REVALIDATE: Var<Number> = var(
    "stale_while_revalidate",
    "0",
    Number::ANY,
    "Seconds a stale entry is answered while one request refreshes it, unless the answer says.",
);

pub const STALE_IF_ERROR: Var<Number> = var(
    "stale_if_error",
    "0",
    Number::ANY,
    "Seconds a stale entry stands in for an origin that fails, unless the answer says.",
);

pub const TARGETED_CACHE_CONTROL: Var<FieldName> = var(
    "targeted_cache_control",
    "post-cache-control",
    FieldName,
    "This cache's own targeted cache-control field (RFC 9213); empty for none.",
);

/// Longer waits would hold clients longer than most origins take.
pub const MAX_COLLAPSE_WAIT_MS: u64 = 10_000;

pub const COLLAPSE_WAIT_MS: Var<Number> = var(
    "collapse_wait_ms",
    "300",
    Number { min: 0, max: MAX_COLLAPSE_WAIT_MS },
    "Milliseconds a miss waits for another request fetching the same key; 0 turns collapsing off.",
);

pub const COLLAPSE_COLD_MISSES: Var<OneOf<bool>> = var(
    "collapse_cold_misses",
    "false",
    FLAG,
    "Whether a miss on a key that holds nothing is collapsed too.",
);

const ADMIN_PATH_DEFAULT: &str = "/.well-known/post-cache/";

pub const ADMIN_PATH: Var<PathPrefix> = var(
    "admin_path",
    ADMIN_PATH_DEFAULT,
    PathPrefix { example: ADMIN_PATH_DEFAULT },
    "Where the admin API lives.",
);

/// A shorter bearer token is guessable.
pub const MIN_TOKEN_CHARS: usize = 24;

pub const PURGE_TOKEN: Var<BearerToken> = secret(
    "purge_token",
    "",
    BearerToken { min_chars: MIN_TOKEN_CHARS },
    "Bearer token of the admin API; empty turns the API off.",
);

pub const RELAY_TAGS: Var<OneOf<bool>> =
    var("relay_tags", "false", FLAG, "Whether Surrogate-Key and Cache-Tag reach the client.");

/// RFC 9111 §4.4 says a cache MUST: on by default now that the URL's index
/// names its entries (no listing of the store).
pub const INVALIDATE_ON_UNSAFE: Var<OneOf<bool>> = var(
    "invalidate_on_unsafe",
    "true",
    FLAG,
    "Whether a successful unsafe request forgets the entries of its URL (RFC 9111 §4.4).",
);

pub const INVALIDATE_ON_MUTATION: Var<OneOf<bool>> = var(
    "invalidate_on_mutation",
    "false",
    FLAG,
    "Whether a successful GraphQL mutation forgets every entry of its endpoint.",
);

/// See the README's housekeeping section for what a step costs.
pub const SWEEP_EVERY: Var<Number> = var(
    "sweep_every",
    "32",
    Number::ANY,
    "A bounded sweep step runs after one stored miss in this many on average; 0 never.",
);

pub const MAX_ENTRIES: Var<Number> =
    var("max_entries", "0", Number::ANY, "A sweep step evicts down to this many entries; 0 for no bound.");

/// A persisted query's document does not change under its hash; the bound
/// only keeps hashes nobody sends any more from filling the store.
pub const PERSISTED_QUERY_MAX_AGE: Var<Number> = var(
    "persisted_query_max_age",
    "604800",
    Number::at_least(1),
    "Seconds a persisted query's marker is kept before a sweep deletes it.",
);
