//! The request flow over the [`Store`], [`Origin`] and [`Client`] traits:
//! bypass, hit, miss. Decisions come from the pure `cache` modules; this file
//! only sequences I/O, and a store failure only ever costs the cache, never
//! the request.

use crate::body::{pump, respond_full, BodyError, BodySink, BodySource, Client};
use crate::cache::digest::Digest32;
use crate::cache::headers::{self, HeaderList};
use crate::cache::key::{self, KeyInput};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{
    decide_request, decide_response, vary_digest, BypassReason, NotStoredReason, RequestDecision,
    Storability, StoragePolicy, CREDENTIAL_HEADERS,
};
use crate::cache::record::{self, RecordBuilder, RecordMeta};
use crate::config::Config;
use crate::origin::{Origin, OriginError, OriginRequest, OriginResponse, OutboundBody};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};

/// The client's request: head already parsed, body still streaming.
pub struct ClientRequest<B> {
    pub method: String,
    pub authority: String,
    pub path_with_query: String,
    pub headers: HeaderList,
    pub body: B,
}

/// Handles one request end to end. `now` is Unix seconds.
pub async fn handle<B, S, O, C>(
    config: &Config,
    now: u64,
    mut request: ClientRequest<B>,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    origin: &O,
    client: C,
) where
    B: BodySource,
    S: Store,
    O: Origin,
    C: Client,
{
    let decision = decide_request(
        config.is_candidate(&request.method),
        &request.headers,
        config.credentials,
    );
    let (refresh, only_if_cached, scoped) = match decision {
        RequestDecision::Bypass(reason) => {
            let outcome = Outcome::Bypass(reason);
            return forward_streaming(config, &mut request, &[], origin, client, outcome).await;
        }
        RequestDecision::Lookup { only_if_cached, scoped } => (false, only_if_cached, scoped),
        RequestDecision::Refresh { scoped } => (true, false, scoped),
    };

    // Read the body while hashing its raw bytes, up to the cap.
    let declared = content_length(&request.headers);
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        let outcome = Outcome::Bypass(BypassReason::BodyTooLarge);
        return forward_streaming(config, &mut request, &[], origin, client, outcome).await;
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut hasher = Sha256::new();
    loop {
        match request.body.next_chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > config.max_body_bytes {
                    let outcome = Outcome::Bypass(BypassReason::BodyTooLarge);
                    return forward_streaming(config, &mut request, &body, origin, client, outcome)
                        .await;
                }
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(e) => return bad_request_body(client, e).await,
        }
    }
    let body_digest: Digest32 = hasher.finalize().into();
    let cache_key = derive_key(config, &request, scoped, body_digest).kv_key();

    let store = match open_store() {
        Ok(store) => store,
        Err(e) => {
            log_store_error("open", &e);
            let outcome = Outcome::Bypass(BypassReason::StoreError);
            return forward_buffered(config, &request, &body, origin, client, outcome).await;
        }
    };

    // Whether a record sits under the key that this request will not use.
    let mut replaceable = false;
    let fwd = if refresh {
        Fwd::Request
    } else {
        match store.get(&cache_key) {
            Err(e) => {
                log_store_error("get", &e);
                let outcome = Outcome::Bypass(BypassReason::StoreError);
                return forward_buffered(config, &request, &body, origin, client, outcome).await;
            }
            Ok(stored) => match usable_record(stored.as_deref(), body_digest, &request.headers, now) {
                Ok(rec) => return replay(client, &rec, now).await,
                Err(fwd) => {
                    replaceable = stored.is_some();
                    fwd
                }
            },
        }
    };
    if only_if_cached {
        // RFC 9111 §5.2.1.7: "If it receives this directive, a cache SHOULD
        // either respond using a stored response consistent with the other
        // constraints of the request or respond with a 504 (Gateway Timeout)".
        let msg = "post-cache: no fresh stored response and the request is only-if-cached\n";
        return plain(client, 504, Outcome::OnlyIfCachedMiss, msg).await;
    }

    let response = match send(config, &request, &body, origin).await {
        Ok(r) => r,
        Err(e) => return origin_failed(config, client, fwd, e).await,
    };
    let policy = StoragePolicy {
        cacheable_statuses: &config.cacheable_statuses,
        default_ttl: config.default_ttl,
    };
    match decide_response(response.status, &response.headers, &policy, now) {
        Storability::DoNotStore(reason) => {
            if replaceable {
                forget(&store, &cache_key);
            }
            relay(response, client, Outcome::Forwarded { fwd, stored: Err(reason) }, &[]).await
        }
        Storability::Store { ttl, initial_age, vary } => {
            let meta = RecordMeta {
                stored_at: now,
                fresh_until: now + ttl,
                initial_age: initial_age.min(u64::from(u32::MAX)) as u32,
                status: response.status,
                request_digest: body_digest,
                vary_digest: vary_digest(&request.headers, &vary),
                vary,
            };
            let entry = Entry { store: &store, key: &cache_key, meta, fwd, replaceable };
            capture_and_store(config, response, entry, client).await
        }
    }
}

/// The stored record if it may answer this request, or why the request goes forward.
fn usable_record<'a>(
    stored: Option<&'a [u8]>,
    body_digest: Digest32,
    request_headers: &[(String, Vec<u8>)],
    now: u64,
) -> Result<record::Record<'a>, Fwd> {
    let stored = stored.ok_or(Fwd::UriMiss)?;
    // A record that does not decode, or was written for another body, is a
    // miss; storing the fresh answer overwrites it.
    let rec = record::decode(stored).map_err(|e| {
        eprintln!("post-cache: unusable record replaced: {e:?}");
        Fwd::UriMiss
    })?;
    if rec.meta.request_digest != body_digest {
        eprintln!("post-cache: record for another body replaced");
        return Err(Fwd::UriMiss);
    }
    if rec.meta.vary_digest != vary_digest(request_headers, &rec.meta.vary) {
        return Err(Fwd::VaryMiss);
    }
    if rec.ttl(now) == 0 {
        return Err(Fwd::Stale);
    }
    Ok(rec)
}

/// Answers from a stored record: its status and header lines in order, its
/// body, and `Age`.
async fn replay(client: impl Client, rec: &record::Record<'_>, now: u64) {
    let mut head: HeaderList = rec
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    head.push(("age".into(), rec.age(now).to_string().into_bytes()));
    push_length(&mut head, rec.meta.status, rec.body.len());
    push_status(&mut head, Outcome::Hit { ttl: rec.ttl(now) });
    report(respond_full(client, rec.meta.status, head, rec.body).await);
}

/// Where and what a storable miss is written.
struct Entry<'a, S> {
    store: &'a S,
    key: &'a str,
    meta: RecordMeta,
    fwd: Fwd,
    /// A stale, mismatched or corrupt record holds the key.
    replaceable: bool,
}

/// Reads a storable response into a record (up to `max_entry_bytes`), writes it to
/// the store, then answers from the same buffer, so `Cache-Status` tells the truth
/// about the write. A body that outgrows the record is streamed on, not stored.
async fn capture_and_store<B: BodySource, S: Store>(
    config: &Config,
    mut response: OriginResponse<B>,
    entry: Entry<'_, S>,
    client: impl Client,
) {
    let too_large = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::TooLarge) };
    let declared = content_length(&response.headers).unwrap_or(0) as usize;
    let stored_headers = headers::for_client(&response.headers, &["content-length", "age"]);
    let mut builder = match RecordBuilder::new(&entry.meta, &stored_headers, declared, config.max_entry_bytes) {
        Some(b) if declared <= config.max_entry_bytes => b,
        _ => {
            if entry.replaceable {
                forget(entry.store, entry.key);
            }
            return relay(response, client, too_large, &[]).await;
        }
    };
    loop {
        match response.body.next_chunk().await {
            Ok(Some(chunk)) => {
                if !builder.push_body(&chunk) {
                    if entry.replaceable {
                        forget(entry.store, entry.key);
                    }
                    let prefix = [builder.body(), &chunk].concat();
                    return relay(response, client, too_large, &prefix).await;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let msg = format!("post-cache: the origin's response body failed: {e}\n");
                let outcome = Outcome::OriginFailed { fwd: entry.fwd, detail: "origin-body" };
                return plain(client, 502, outcome, &msg).await;
            }
        }
    }
    let (bytes, body_start) = builder.finish();
    let stored = entry.store.set(entry.key, &bytes).map_err(|e| {
        log_store_error("set", &e);
        NotStoredReason::StoreError
    });
    let mut head = stored_headers;
    if entry.meta.initial_age > 0 {
        head.push(("age".into(), entry.meta.initial_age.to_string().into_bytes()));
    }
    push_length(&mut head, entry.meta.status, bytes.len() - body_start);
    push_status(&mut head, Outcome::Forwarded { fwd: entry.fwd, stored });
    report(respond_full(client, entry.meta.status, head, &bytes[body_start..]).await);
}

/// Forwards a request around the cache, streaming both bodies; `prefix` is what
/// was already read of the request body.
async fn forward_streaming<B: BodySource, O: Origin>(
    config: &Config,
    request: &mut ClientRequest<B>,
    prefix: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
) {
    let head = OriginRequest {
        method: &request.method,
        path_and_query: origin_path(config, &request.path_with_query),
        headers: headers::for_origin(&request.headers, false),
    };
    let body = OutboundBody::Streamed { prefix, rest: &mut request.body };
    match origin.send(head, body).await {
        Ok(response) => relay(response, client, outcome, &[]).await,
        Err(e) => origin_failed(config, client, Fwd::Bypass, e).await,
    }
}

/// Forwards a fully read request and relays the answer without storing it.
async fn forward_buffered<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    body: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
) {
    match send(config, request, body, origin).await {
        Ok(response) => relay(response, client, outcome, &[]).await,
        Err(e) => origin_failed(config, client, Fwd::Bypass, e).await,
    }
}

/// Sends a fully read request body, with its exact `content-length`.
async fn send<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    bytes: &[u8],
    origin: &O,
) -> Result<OriginResponse<O::Body>, OriginError> {
    let mut headers = headers::for_origin(&request.headers, true);
    headers.push(("content-length".into(), bytes.len().to_string().into_bytes()));
    let head = OriginRequest {
        method: &request.method,
        path_and_query: origin_path(config, &request.path_with_query),
        headers,
    };
    origin.send(head, OutboundBody::<B>::Buffered(bytes)).await
}

/// Streams an origin response to the client: `prefix` (already read) first,
/// then the rest. A body that fails midway aborts the client's response.
async fn relay<B: BodySource>(
    mut response: OriginResponse<B>,
    client: impl Client,
    outcome: Outcome,
    prefix: &[u8],
) {
    let mut head = headers::for_client(&response.headers, &[]);
    push_status(&mut head, outcome);
    let result = async {
        let mut sink = client.respond(response.status, head)?;
        if !prefix.is_empty() {
            sink.write(prefix).await?;
        }
        pump(&mut response.body, &mut sink).await?;
        sink.finish()
    };
    report(result.await);
}

async fn origin_failed(config: &Config, client: impl Client, fwd: Fwd, error: OriginError) {
    let (status, detail, msg) = match &error {
        OriginError::Timeout(what) => (
            504,
            "origin-timeout",
            format!("post-cache: the origin did not answer within {} s ({what})\n", config.origin_timeout),
        ),
        OriginError::Unreachable(what) => (
            502,
            "origin-unreachable",
            format!("post-cache: the origin could not be reached ({what})\n"),
        ),
        OriginError::Denied => (
            502,
            "origin-denied",
            "post-cache: the host denied the request to the origin; is it in allowed_outbound_hosts?\n"
                .to_string(),
        ),
        OriginError::RequestBody(e) => {
            return bad_request_body(client, e.clone()).await;
        }
    };
    eprintln!("post-cache: origin error: {error:?}");
    plain(client, status, Outcome::OriginFailed { fwd, detail }, &msg).await
}

async fn bad_request_body(client: impl Client, error: BodyError) {
    eprintln!("post-cache: request body failed: {error}");
    let msg = format!("post-cache: the request body could not be read: {error}\n");
    let mut head = vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())];
    push_length(&mut head, 400, msg.len());
    report(respond_full(client, 400, head, msg.as_bytes()).await);
}

/// A short plain-text answer of the proxy's own.
async fn plain(client: impl Client, status: u16, outcome: Outcome, msg: &str) {
    let mut head = vec![
        ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
        ("cache-control".into(), b"no-store".to_vec()),
    ];
    push_length(&mut head, status, msg.len());
    push_status(&mut head, outcome);
    report(respond_full(client, status, head, msg.as_bytes()).await);
}

fn derive_key<B>(config: &Config, request: &ClientRequest<B>, scoped: bool, body_digest: Digest32) -> key::CacheKey {
    let (path, query) = match request.path_with_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (request.path_with_query.as_str(), ""),
    };
    let key_headers: Vec<(&str, Vec<&[u8]>)> = config
        .key_headers
        .iter()
        .map(|name| (name.as_str(), headers::values(&request.headers, name)))
        .collect();
    let credential_scope = scoped.then(|| {
        let credentials: Vec<(&str, Vec<&[u8]>)> = CREDENTIAL_HEADERS
            .iter()
            .map(|name| (*name, headers::values(&request.headers, name)))
            .collect();
        key::credential_scope(config.credential_salt.as_bytes(), &credentials)
    });
    key::derive(&KeyInput {
        method: &request.method,
        host: &request.authority,
        path,
        query,
        headers: &key_headers,
        credential_scope,
        body_digest,
    })
}

fn origin_path(config: &Config, path_with_query: &str) -> String {
    let pq = if path_with_query.is_empty() { "/" } else { path_with_query };
    format!("{}{}", config.origin.base_path, pq)
}

fn content_length(headers: &[(String, Vec<u8>)]) -> Option<u64> {
    let values = headers::values(headers, "content-length");
    std::str::from_utf8(values.first()?).ok()?.trim().parse().ok()
}

/// RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any
/// response with a status code of 1xx (Informational) or 204 (No Content)."
fn push_length(head: &mut HeaderList, status: u16, len: usize) {
    if status >= 200 && status != 204 && status != 304 {
        head.push(("content-length".into(), len.to_string().into_bytes()));
    }
}

fn push_status(head: &mut HeaderList, outcome: Outcome) {
    head.push(("cache-status".into(), outcome.header_value().into_bytes()));
}

/// Deletes a record the fresh answer could not replace, so it is not read again.
fn forget(store: &impl Store, key: &str) {
    if let Err(e) = store.delete(key) {
        log_store_error("delete", &e);
    }
}

fn log_store_error(op: &str, e: &StoreError) {
    eprintln!("post-cache: key-value {op} failed, serving without cache: {e}");
}

fn report(result: Result<(), BodyError>) {
    if let Err(e) = result {
        eprintln!("post-cache: response to the client failed: {e}");
    }
}

#[cfg(test)]
mod tests;
