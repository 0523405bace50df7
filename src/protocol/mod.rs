//! Request body formats the cache understands. Pure: no Spin, no clock, no I/O.
//!
//! [`key_request`] decides how a body enters the cache key (its raw bytes, or a
//! canonical form that equal requests share) or that it must go around the cache;
//! [`check_answer`] decides whether the origin's answer to it may be stored.
//! The request forwarded to the origin is always the client's bytes, unchanged.

pub mod entities;
pub mod evm;
pub mod graphql;
pub mod json;
pub mod jsonrpc;
pub mod rules;

use crate::http::digest::{hex, Digest32, FieldHasher};
use entities::{KeyFields, MAX_ENTITY_TAG_BYTES};
use graphql::OperationKind;
use sha2::{Digest, Sha256};
use json::{Node, Value};
use jsonrpc::{IdSlot, MethodList, RpcLifetimes, RpcRefusal, RpcRequest};
pub use rules::Limit;
use rules::{RuleList, RuleTtl};

/// `body_format`: how request bodies are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// SHA-256 of the raw bytes.
    Raw,
    /// RFC 8785 canonical JSON, falling back to raw.
    Json,
    /// GraphQL over HTTP: queries keyed canonically, mutations never cached.
    GraphQl,
    /// JSON-RPC 2.0: keyed without `id`, listed methods only.
    JsonRpc,
}

impl BodyFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(Self::Raw),
            "json" => Some(Self::Json),
            "graphql" => Some(Self::GraphQl),
            "jsonrpc" => Some(Self::JsonRpc),
            _ => None,
        }
    }

    /// The mode's tag in the key input, so two modes never share an entry.
    pub fn tag(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Json => 1,
            Self::GraphQl => 2,
            Self::JsonRpc => 3,
        }
    }
}

/// The protocol settings of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolConfig {
    pub format: BodyFormat,
    /// `rpc_methods`: the JSON-RPC methods that may be cached.
    pub rpc_methods: MethodList,
    /// `graphql_store_partial`: store answers that carry `errors` beside non-null `data`.
    pub graphql_store_partial: bool,
    /// `rpc_store_null`: store JSON-RPC answers whose `result` is `null`.
    pub rpc_store_null: bool,
    /// `default_ttl` and `rpc_tip_ttl`, which the rules of `rpc_methods` use.
    pub rpc_lifetimes: RpcLifetimes,
    /// `graphql_operations`: lifetimes by operation name.
    pub graphql_operations: RuleList,
    /// `graphql_types`: caps on the lifetime of an answer that shows a type.
    pub graphql_types: RuleList,
    /// `graphql_key_fields`: the field that keys an entity.
    pub graphql_key_fields: KeyFields,
    /// `graphql_entity_tags`: at most this many entity tags per entry.
    pub graphql_entity_tags: usize,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            format: BodyFormat::Raw,
            rpc_methods: MethodList::default(),
            graphql_store_partial: false,
            rpc_store_null: false,
            rpc_lifetimes: RpcLifetimes { default_ttl: 60, tip_ttl: 2 },
            graphql_operations: RuleList::default(),
            graphql_types: RuleList::default(),
            graphql_key_fields: KeyFields::default(),
            graphql_entity_tags: 16,
        }
    }
}

/// `graphql_invalidation`: what a mutation whose answer ran does to the
/// entries that show the entities its answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphQlInvalidation {
    /// Purges them.
    Entities,
    /// Marks them stale: the next request refreshes them.
    Soft,
    /// Leaves them.
    Off,
}

/// How a request body is keyed; each variant says what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keying {
    /// Key on SHA-256 of the raw body with the `raw` tag (also the `json` fallback).
    Raw,
    /// Key on SHA-256 of `material` with the format's tag; check the answer with
    /// `check` before storing it, and replay it through `check` too.
    Canonical { material: Vec<u8>, check: AnswerCheck },
    /// Forward the body unchanged; neither look up nor store.
    Bypass(ProtocolBypass),
}

/// Why a recognised protocol request goes around the cache (`detail=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolBypass {
    /// A GraphQL mutation or subscription.
    Mutation,
    /// The body could not be read as the format requires, or the operation to
    /// execute could not be determined.
    Unparsable,
    /// A GraphQL batch holding a persisted query sent as a hash alone: no document
    /// tells whether it is a query or a mutation.
    PersistedQuery,
    /// A JSON-RPC method not in `rpc_methods`.
    RpcMethod,
    /// A JSON-RPC notification (no `id`).
    Notification,
    /// A JSON-RPC call whose answer changes between blocks (`pending`), that
    /// sends or signs, or follows the chain tip with `rpc_tip_ttl` 0.
    RpcUncacheable,
    /// A GraphQL POST whose URL query names `query`, `operationName`,
    /// `variables` or `extensions`: common servers (express-graphql and others)
    /// run those instead of the body's, so the body tells nothing.
    UrlParams,
    /// A GraphQL operation that `graphql_operations` names `=never`.
    GraphQlRule,
}

impl ProtocolBypass {
    pub fn detail(self) -> &'static str {
        match self {
            Self::Mutation => "mutation",
            Self::Unparsable => "unparsable",
            Self::PersistedQuery => "persisted-query",
            Self::RpcMethod => "rpc-method",
            Self::Notification => "notification",
            Self::RpcUncacheable => "rpc-uncacheable",
            Self::UrlParams => "url-params",
            Self::GraphQlRule => "graphql-rule",
        }
    }

    /// Whether the request may run a GraphQL mutation: a mutation, or an
    /// operation in the URL that was never read.
    pub fn may_mutate(self) -> bool {
        matches!(self, Self::Mutation | Self::UrlParams)
    }
}

/// What must hold of the origin's answer before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerCheck {
    Nothing,
    /// No top-level `errors` (per element of a batch). `limit`: what the
    /// operations' rules allow (the stricter over a batch).
    GraphQl { batch: bool, persisted: Option<Persisted>, limit: Limit },
    /// Answers exactly these calls, none with `error`; replays get the caller's ids.
    JsonRpc(RpcRequest),
}

impl AnswerCheck {
    /// What the body format's rules allow of the answer's lifetime.
    pub fn limit(&self) -> Limit {
        match self {
            AnswerCheck::JsonRpc(request) => request.limit,
            AnswerCheck::GraphQl { limit, .. } => *limit,
            AnswerCheck::Nothing => Limit::default(),
        }
    }
}

/// An Apollo persisted query (`extensions.persistedQuery.sha256Hash`): keyed on
/// the hash, so the request with its document and the later ones with the hash
/// alone share an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// Names the hash and operation; a marker under it records that they run a query.
    pub marker: Digest32,
    /// The request carried the document, it matches the hash, and it runs a query:
    /// store the answer and the marker. Otherwise (the hash alone) the answer may be
    /// stored only if the marker is there.
    pub proven_query: bool,
}

/// Why an answer is not stored (`detail=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRefusal {
    GraphQlErrors,
    RpcError,
    /// A JSON-RPC `result` of `null` (in any call of a batch): "not there yet"
    /// (a receipt before its transaction is mined), kept only with `rpc_store_null`.
    RpcEmpty,
    /// Not an answer in the protocol's shape (not JSON, ids that do not match).
    Invalid,
    /// A GraphQL answer that shows a type `graphql_types` names `=never`.
    GraphQlTypeRule,
    /// A GraphQL answer whose entities could not all be tagged: more types lost
    /// an entity to the cap than an entry may carry, or a type name too long
    /// for a tag. A purge of its entities could not find it.
    GraphQlEntities,
}

impl AnswerRefusal {
    pub fn detail(self) -> &'static str {
        match self {
            Self::GraphQlErrors => "graphql-errors",
            Self::RpcError => "rpc-error",
            Self::RpcEmpty => "rpc-empty",
            Self::Invalid => "invalid-answer",
            Self::GraphQlTypeRule => "graphql-type-rule",
            Self::GraphQlEntities => "graphql-entities",
        }
    }
}

/// Decides how a request body is keyed. `url_query` is the request URL's query
/// (after `?`, "" for none); `content_type` is the request's first `Content-Type`
/// value; `no_transform` is the request's `Cache-Control: no-transform`.
pub fn key_request(
    config: &ProtocolConfig,
    url_query: &str,
    content_type: Option<&[u8]>,
    no_transform: bool,
    body: &[u8],
) -> Keying {
    let media = content_type.map(media_type).unwrap_or_default();
    match config.format {
        BodyFormat::Raw => Keying::Raw,
        BodyFormat::Json => {
            if no_transform || !is_json(&media) {
                return Keying::Raw;
            }
            match json::canonicalize(body) {
                Ok(material) => Keying::Canonical { material, check: AnswerCheck::Nothing },
                Err(_) => Keying::Raw,
            }
        }
        // The body is not what such a server runs: neither key nor store it.
        BodyFormat::GraphQl if graphql::url_names_operation(url_query) => Keying::Bypass(ProtocolBypass::UrlParams),
        BodyFormat::GraphQl => graphql_request(config, &media, body),
        BodyFormat::JsonRpc => {
            if !(media.is_empty() || is_json(&media)) {
                return Keying::Bypass(ProtocolBypass::Unparsable);
            }
            match jsonrpc::read_request(body, &config.rpc_methods, config.rpc_lifetimes) {
                Ok(mut request) => {
                    let material = std::mem::take(&mut request.material);
                    Keying::Canonical { material, check: AnswerCheck::JsonRpc(request) }
                }
                Err(RpcRefusal::Unparsable) => Keying::Bypass(ProtocolBypass::Unparsable),
                Err(RpcRefusal::Notification) => Keying::Bypass(ProtocolBypass::Notification),
                Err(RpcRefusal::Method) => Keying::Bypass(ProtocolBypass::RpcMethod),
                Err(RpcRefusal::Uncacheable) => Keying::Bypass(ProtocolBypass::RpcUncacheable),
            }
        }
    }
}

/// The lower-case media type without parameters.
fn media_type(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// `application/json` or any `+json` suffix (RFC 6839).
fn is_json(media: &str) -> bool {
    media == "application/json" || (media.ends_with("+json") && media.contains('/'))
}

/// GraphQL over HTTP: a JSON envelope (or a batch of them), or an
/// `application/graphql` document.
fn graphql_request(config: &ProtocolConfig, media: &str, body: &[u8]) -> Keying {
    let unparsable = Keying::Bypass(ProtocolBypass::Unparsable);
    let mut material = Vec::with_capacity(body.len());
    if media == "application/graphql" {
        let Ok(source) = std::str::from_utf8(body) else { return unparsable };
        push_field(&mut material, b"document");
        return match field_in_place(&mut material, |m| query_into(source, None, m)) {
            Ok(name) => match operation_limit(config, name) {
                Some(limit) => Keying::Canonical { material, check: AnswerCheck::GraphQl { batch: false, persisted: None, limit } },
                None => Keying::Bypass(ProtocolBypass::GraphQlRule),
            },
            Err(bypass) => Keying::Bypass(bypass),
        };
    }
    if !is_json(media) {
        return unparsable;
    }
    let Ok(root) = json::parse(body) else { return unparsable };
    let (batch, envelopes): (bool, Vec<&Node<'_>>) = match &root.value {
        Value::Array(items) if !items.is_empty() && items.len() <= jsonrpc::MAX_BATCH => (true, items.iter().collect()),
        Value::Object(_) => (false, vec![&root]),
        _ => return unparsable,
    };
    push_field(&mut material, if batch { b"batch" } else { b"single" });
    // A batch is cached only if every operation in it is a query; the first
    // refusal in order is reported. A rule's `never` is reported only once
    // every operation was read: a mutation later in the batch must still be
    // seen as one (invalidation asks).
    let mut persisted = None;
    let mut limit: Option<Limit> = None;
    let mut never = false;
    for envelope in envelopes {
        let name = match graphql_envelope(envelope, &mut material) {
            Err(bypass) => return Keying::Bypass(bypass),
            // A batch has no single marker to consult for a hash sent alone.
            Ok((Some(p), _)) if batch && !p.proven_query => return Keying::Bypass(ProtocolBypass::PersistedQuery),
            Ok((p, name)) => {
                persisted = p.filter(|_| !batch);
                name
            }
        };
        match operation_limit(config, name.as_deref()) {
            Some(op) => limit = Some(limit.map_or(op, |l| l.stricter(op, config.rpc_lifetimes.default_ttl))),
            None => never = true,
        }
    }
    if never {
        return Keying::Bypass(ProtocolBypass::GraphQlRule);
    }
    Keying::Canonical { material, check: AnswerCheck::GraphQl { batch, persisted, limit: limit.unwrap_or_default() } }
}

/// What `graphql_operations` allows an operation's answer; `None`: `never`.
/// An anonymous operation has no name to match: only a `*` entry governs it.
fn operation_limit(config: &ProtocolConfig, name: Option<&str>) -> Option<Limit> {
    match config.graphql_operations.rule(name.unwrap_or("")) {
        Some(ttl) => ttl.limit(),
        None => Some(Limit::default()),
    }
}

/// Appends one `{query, operationName, variables, extensions}` envelope's key
/// material: the canonical document (or, for a persisted query, the word
/// `persisted`: its hash stands for the document), then every other member in
/// canonical JSON (so `operationName`, `variables`, `extensions` and anything
/// unknown count). Also returns the operation's name: the one the document's
/// selected operation has, or for a hash alone `operationName`.
fn graphql_envelope(envelope: &Node<'_>, material: &mut Vec<u8>) -> Result<(Option<Persisted>, Option<String>), ProtocolBypass> {
    let Value::Object(_) = envelope.value else { return Err(ProtocolBypass::Unparsable) };
    let member = |name| envelope.value.member(name).map_err(|_| ProtocolBypass::Unparsable);
    let operation_name = match member("operationName")? {
        None | Some(Node { value: Value::Null, .. }) => None,
        Some(Node { value: Value::String(s), .. }) => Some(s.decode()),
        Some(_) => return Err(ProtocolBypass::Unparsable),
    };
    match member("variables")? {
        None | Some(Node { value: Value::Null | Value::Object(_), .. }) => {}
        Some(_) => return Err(ProtocolBypass::Unparsable),
    }
    let hash = persisted_hash(member("extensions")?)?;
    let query = match member("query")? {
        Some(Node { value: Value::String(s), .. }) => Some(s.decode()),
        None | Some(Node { value: Value::Null, .. }) => None,
        Some(_) => return Err(ProtocolBypass::Unparsable),
    };
    let (persisted, name) = match (query, &hash) {
        (Some(query), None) => {
            let name = field_in_place(material, |m| query_into(&query, operation_name.as_deref(), m))?;
            (None, name.map(str::to_string))
        }
        (Some(query), Some(hash)) => {
            // Apollo: the hash is the SHA-256 of the query text as sent. One that
            // does not match is refused by the server; it must not key an entry.
            if hex(&Sha256::digest(query.as_bytes())) != *hash {
                return Err(ProtocolBypass::Unparsable);
            }
            let name = query_into(&query, operation_name.as_deref(), &mut Vec::new())?.map(str::to_string);
            push_field(material, b"persisted");
            (Some(Persisted { marker: marker(hash, operation_name.as_deref()), proven_query: true }), name)
        }
        (None, Some(hash)) => {
            push_field(material, b"persisted");
            let persisted = Persisted { marker: marker(hash, operation_name.as_deref()), proven_query: false };
            (Some(persisted), operation_name.as_deref().map(str::to_string))
        }
        (None, None) => return Err(ProtocolBypass::Unparsable),
    };
    field_in_place(material, |m| {
        json::write_canonical_except(&envelope.value, "query", m).map_err(|_| ProtocolBypass::Unparsable)
    })?;
    Ok((persisted, name))
}

/// `extensions.persistedQuery.sha256Hash` in lower case, if the envelope has one.
fn persisted_hash(extensions: Option<&Node<'_>>) -> Result<Option<String>, ProtocolBypass> {
    let Some(extensions) = extensions else { return Ok(None) };
    let unparsable = |_| ProtocolBypass::Unparsable;
    let Some(persisted) = extensions.value.member("persistedQuery").map_err(unparsable)? else { return Ok(None) };
    match persisted.value.member("sha256Hash").map_err(unparsable)? {
        Some(Node { value: Value::String(h), .. }) if h.decode().len() == 64 && h.decode().bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.decode().to_ascii_lowercase()))
        }
        _ => Err(ProtocolBypass::Unparsable),
    }
}

/// The marker digest of a persisted query's hash and operation.
fn marker(hash: &str, operation_name: Option<&str>) -> Digest32 {
    let mut h = FieldHasher::new();
    h.field(b"post-cache persisted query").field(hash.as_bytes());
    match operation_name {
        Some(name) => h.field(b"named").field(name.as_bytes()),
        None => h.field(b"anonymous"),
    };
    h.finish()
}

/// Appends the canonical document if the operation it executes is a query,
/// and returns that operation's name.
fn query_into<'s>(source: &'s str, operation_name: Option<&str>, out: &mut Vec<u8>) -> Result<Option<&'s str>, ProtocolBypass> {
    let (operations, _) = graphql::read_into(source, out).map_err(|_| ProtocolBypass::Unparsable)?;
    let selected = graphql::select(&operations, operation_name).map_err(|_| ProtocolBypass::Unparsable)?;
    match selected.kind {
        OperationKind::Query => Ok(selected.name),
        OperationKind::Mutation | OperationKind::Subscription => Err(ProtocolBypass::Mutation),
    }
}

/// Appends one length-prefixed field.
fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one length-prefixed field that `write` appends in place.
fn field_in_place<T, E>(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Result<T, E>) -> Result<T, E> {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    let written = write(out)?;
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_be_bytes());
    Ok(written)
}

/// What an answer that may be stored brings to its entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFacts {
    /// Where a JSON-RPC answer's ids sit.
    pub id_slots: Vec<IdSlot>,
    /// A GraphQL answer's entity tags (`Type:key`, and `Type:*` past the cap).
    pub tags: Vec<String>,
    /// The most seconds `graphql_types` lets the answer be fresh: the smallest
    /// rule over the types it shows; `None`: no bound.
    pub cap: Option<u64>,
}

/// Most `Type:*` tags one entry carries, as for an origin's tags.
const MAX_TYPE_TAGS: usize = 128;

/// Decides whether an answer may be stored; for JSON-RPC, also where its ids
/// sit, for GraphQL what its data shows (its entity tags, its types' cap).
/// Runs on misses only, after the client has the answer.
pub fn check_answer(config: &ProtocolConfig, check: &AnswerCheck, body: &[u8]) -> Result<AnswerFacts, AnswerRefusal> {
    match check {
        AnswerCheck::Nothing => Ok(AnswerFacts::default()),
        AnswerCheck::GraphQl { batch, .. } => {
            let root = json::parse(body).map_err(|_| AnswerRefusal::Invalid)?;
            let answers: Vec<&Node<'_>> = match (&root.value, batch) {
                (Value::Array(items), true) => items.iter().collect(),
                (Value::Object(_), false) => vec![&root],
                _ => return Err(AnswerRefusal::Invalid),
            };
            for answer in answers {
                graphql_answer(&answer.value, config.graphql_store_partial)?;
            }
            let data = graphql::answer_data(&root).ok_or(AnswerRefusal::Invalid)?.data;
            graphql_facts(config, &data)
        }
        AnswerCheck::JsonRpc(request) => match jsonrpc::check_answer(request, body, config.rpc_store_null) {
            Ok(id_slots) => Ok(AnswerFacts { id_slots, ..AnswerFacts::default() }),
            Err(jsonrpc::AnswerRefusal::Error) => Err(AnswerRefusal::RpcError),
            Err(jsonrpc::AnswerRefusal::Null) => Err(AnswerRefusal::RpcEmpty),
            Err(jsonrpc::AnswerRefusal::Mismatch) => Err(AnswerRefusal::Invalid),
        },
    }
}

/// The entity tags and the type rules' cap of a GraphQL answer's `data`.
fn graphql_facts(config: &ProtocolConfig, data: &[&Node<'_>]) -> Result<AnswerFacts, AnswerRefusal> {
    let found = entities::discover(data, &config.graphql_key_fields, config.graphql_entity_tags);
    // Past the cap an entry is found by `Type:*`: each must fit a tag, and
    // their number is bounded as an origin's tags are.
    let type_tags_fit = found.dropped_types.len() <= MAX_TYPE_TAGS
        && found.dropped_types.iter().all(|t| entities::type_tag(t).len() <= MAX_ENTITY_TAG_BYTES);
    if !type_tags_fit {
        return Err(AnswerRefusal::GraphQlEntities);
    }
    let mut cap: Option<u64> = None;
    for type_name in &found.types {
        match config.graphql_types.rule(type_name) {
            Some(RuleTtl::Never) => return Err(AnswerRefusal::GraphQlTypeRule),
            Some(RuleTtl::Seconds(n)) => cap = Some(cap.map_or(u64::from(n), |c| c.min(u64::from(n)))),
            // A bare name or `forever` bounds nothing: the origin and the
            // operation's rule decide.
            Some(RuleTtl::Default | RuleTtl::Forever) | None => {}
        }
    }
    Ok(AnswerFacts { id_slots: Vec::new(), tags: found.entry_tags(), cap })
}

/// GraphQL spec §7.1: a response with a non-empty `errors` list is not stored,
/// unless partial results may be and `data` is not null.
fn graphql_answer(answer: &Value<'_>, store_partial: bool) -> Result<(), AnswerRefusal> {
    let Value::Object(_) = answer else { return Err(AnswerRefusal::Invalid) };
    let member = |name| answer.member(name).map_err(|_| AnswerRefusal::Invalid);
    let has_errors = match member("errors")? {
        None | Some(Node { value: Value::Null, .. }) => false,
        Some(Node { value: Value::Array(errors), .. }) => !errors.is_empty(),
        Some(_) => true,
    };
    if !has_errors {
        return Ok(());
    }
    let has_data = matches!(member("data")?, Some(node) if node.value != Value::Null);
    if store_partial && has_data {
        Ok(())
    } else {
        Err(AnswerRefusal::GraphQlErrors)
    }
}

#[cfg(test)]
mod tests;
