//! The request flow over the [`Store`], [`Origin`], [`Client`] and [`Runtime`]
//! traits, one file per path: [`keying`] reads the body and derives the key,
//! [`lookup`] examines and replays a stored record, [`miss`] fetches, revalidates
//! and stores, [`stale`] refreshes after a stale answer, [`collapse`] lets one
//! miss of many fetch, [`segments`] stores and replays entries larger than one
//! value, [`forward`] goes around the cache. Decisions come from the
//! pure `cache` and `protocol` modules; these files only sequence I/O, and a
//! store failure only ever costs the cache, never the request.

mod admin;
mod collapse;
mod forward;
mod housekeeping;
mod invalidate;
mod keying;
mod lookup;
mod miss;
mod segments;
pub(crate) mod stale;

use crate::body::{BodyError, BodySource, Client};
use crate::cache::cache_control::CacheControl;
use crate::cache::freshness::{decide_stored, StoredUse};
use crate::http::headers::{self, HeaderList};
use crate::cache::invalidation;
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{decide_request, BypassReason, RequestDecision};
use crate::cache::segment::SegmentSet;
use crate::config::Config;
use crate::origin::Origin;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};
use keying::Keyed;
use std::cell::Cell;
use lookup::Found;
use miss::Prior;

/// The client's request: head already parsed, body still streaming.
pub struct ClientRequest<B> {
    pub method: String,
    pub authority: String,
    pub path_with_query: String,
    pub headers: HeaderList,
    pub body: B,
}

/// What every path of one keyed request shares.
pub struct Flow<'a, B, S, O> {
    pub config: &'a Config,
    /// Unix seconds when the request arrived.
    pub now: u64,
    pub request: &'a ClientRequest<B>,
    /// The request's `Cache-Control`, parsed once.
    pub request_cc: &'a CacheControl,
    pub keyed: &'a Keyed,
    pub store: &'a S,
    pub origin: &'a O,
    /// What the key held at lookup. If it was a segmented head, its segments
    /// are retired when it is replaced or deleted (decoded only then, not on
    /// the hit path).
    pub held: Option<&'a [u8]>,
    /// The held head's segments, once retired: deleted after the response and
    /// the grace.
    pub retired: Cell<Option<SegmentSet>>,
    /// Draws a random generation id for a segmented write.
    pub new_generation: &'a dyn Fn() -> u64,
}

/// Handles one request end to end. `now` is Unix seconds.
pub async fn handle<B, S, O, C, R>(
    config: &Config,
    now: u64,
    mut request: ClientRequest<B>,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    origin: &O,
    client: C,
    runtime: &R,
) where
    B: BodySource,
    S: Store,
    O: Origin,
    C: Client,
    R: Runtime,
{
    // One destination type for the client and for a background refresh, so the
    // miss path is compiled once.
    let client = stale::Respond::To(client);
    // Everything that is routed, goes on to the origin or into a key has its dot
    // segments removed first: the base path is a boundary.
    match crate::http::path::normalize(&request.path_with_query) {
        Ok(path) => request.path_with_query = path,
        Err(e) => return bad_path(client, e).await,
    }
    let token_set = !config.purge_token.is_empty();
    if let Some(endpoint) = crate::admin::route(&config.admin_path, token_set, &request.method, &request.path_with_query) {
        return admin::handle(config, now, endpoint, &mut request, open_store, client).await;
    }
    let candidate = config.is_candidate(&request.method);
    let request_cc = CacheControl::parse(&headers::values(&request.headers, "cache-control"));
    let decision = decide_request(&request.method, candidate, &request.headers, &request_cc, config.credentials);
    let (refresh, only_if_cached, scoped) = match decision {
        RequestDecision::Bypass(reason) => {
            let outcome = Outcome::Bypass(reason);
            let answered = forward::streaming(config, &mut request, &[], origin, client, outcome).await;
            // After the response: the client does not wait for the invalidation.
            if let Some(answered) = answered {
                if config.invalidate_on_unsafe && invalidation::invalidates(&request.method, candidate, answered.status) {
                    invalidate::forget_urls(&request, &answered, open_store);
                }
            }
            return;
        }
        RequestDecision::Lookup { only_if_cached, scoped } => (false, only_if_cached, scoped),
        RequestDecision::Refresh { scoped } => (true, false, scoped),
    };

    let keyed = match keying::read_and_key(config, &mut request, scoped, request_cc.no_transform).await {
        Ok(keyed) => keyed,
        Err(keying::NotKeyed::TooLarge(prefix)) => {
            let outcome = Outcome::Bypass(BypassReason::BodyTooLarge);
            forward::streaming(config, &mut request, &prefix, origin, client, outcome).await;
            return;
        }
        Err(keying::NotKeyed::Bypass(body, reason)) => {
            let outcome = Outcome::Bypass(BypassReason::Protocol(reason));
            // A GraphQL mutation writes behind its endpoint; forgetting every
            // query of the endpoint is opt-in, and only for a mutation whose
            // answer (read as it is relayed) shows that it ran.
            if !(reason.may_mutate() && config.invalidate_on_mutation) {
                forward::buffered(config, &request, &body, origin, client, outcome).await;
                return;
            }
            let answered = forward::buffered_reading(config, &request, &body, origin, client, outcome).await;
            if let Some(answered) = answered {
                let ran = crate::protocol::graphql::mutation_ran(answered.body.as_deref());
                if ran && invalidation::non_error(answered.status) {
                    invalidate::forget_urls(&request, &answered, open_store);
                }
            }
            return;
        }
        Err(keying::NotKeyed::BodyFailed(e)) => return forward::bad_request_body(client, e).await,
    };

    let store = match open_store() {
        Ok(store) => store,
        Err(e) => return around_failed_store(config, &request, &keyed.body, origin, client, "open", e).await,
    };
    // A refresh replaces the entry whatever it holds, but reads it too: the
    // segments of a head it replaces must be deleted with it.
    let stored = match store.get(&keyed.kv_key) {
        Ok(stored) => stored,
        Err(_) if refresh => None,
        Err(e) => return around_failed_store(config, &request, &keyed.body, origin, client, "get", e).await,
    };
    let new_generation = || runtime.token();
    let flow = Flow {
        config,
        now,
        request: &request,
        request_cc: &request_cc,
        keyed: &keyed,
        store: &store,
        origin,
        held: stored.as_deref(),
        retired: Cell::new(None),
        new_generation: &new_generation,
    };
    if refresh {
        miss::fetch_and_store(&flow, Fwd::Request, Prior::Nothing { replaceable: false }, client).await;
    } else {
        serve_keyed(&flow, stored.as_deref(), only_if_cached, runtime, client).await;
    }
    // After the response: the segments of a replaced entry, once no replay
    // that started before can still need them.
    segments::sweep(&flow, runtime).await;
}

/// A keyed request's lookup and what follows from it: replay, stale answer and
/// refresh, or a (collapsed) fetch.
async fn serve_keyed<B: BodySource, S: Store, O: Origin, R: Runtime, C: Client>(
    flow: &Flow<'_, B, S, O>,
    stored: Option<&[u8]>,
    only_if_cached: bool,
    runtime: &R,
    client: stale::Respond<C>,
) {
    let (now, keyed, request_cc) = (flow.now, flow.keyed, flow.request_cc);
    match lookup::examine(stored, keyed, &flow.request.headers).filter_ready(flow) {
        Found::Record(usable) => match decide_stored(&usable.record.meta, request_cc, now) {
            StoredUse::Fresh { ttl } => lookup::replay(flow, client, &usable, Outcome::Hit { ttl }).await,
            StoredUse::StaleWhileRevalidate { stale_for } => {
                lookup::replay(flow, client, &usable, Outcome::StaleHit { ttl: -(stale_for as i64) }).await;
                // The client has its answer; this instance lives until the
                // handler returns, so the refresh happens now, once per key.
                if !usable.record.mark.is_some_and(|m| m.live(now)) {
                    stale::refresh::<_, _, _, _, C>(flow, stored.unwrap_or_default(), &usable, runtime).await;
                }
            }
            StoredUse::Refetch { stale_for, serve_on_error } => {
                if only_if_cached {
                    return only_if_cached_miss(client).await;
                }
                let fwd = if stale_for == 0 && usable.record.ttl(now) > 0 { Fwd::Request } else { Fwd::Stale };
                let prior = Prior::Stale { usable: &usable, serve_on_error, background: false };
                if fwd == Fwd::Request {
                    // Fresh for everyone else: nobody to collapse with.
                    miss::fetch_and_store(flow, fwd, prior, client).await;
                    return;
                }
                let held = collapse::Held::Record(stored.unwrap_or_default(), usable.record.mark);
                collapse::fetch_collapsed(flow, fwd, prior, held, runtime, client).await
            }
        },
        Found::Nothing { fwd, held } => {
            if only_if_cached {
                return only_if_cached_miss(client).await;
            }
            let prior = Prior::Nothing { replaceable: !matches!(held, collapse::Held::Empty) };
            collapse::fetch_collapsed(flow, fwd, prior, held, runtime, client).await
        }
    }
}

/// A store that cannot be opened or read costs the cache, not the request: the
/// request goes around it.
async fn around_failed_store<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    body: &[u8],
    origin: &O,
    client: impl Client,
    op: &str,
    error: StoreError,
) {
    log_store_error(op, &error);
    forward::buffered(config, request, body, origin, client, Outcome::Bypass(BypassReason::StoreError)).await;
}

/// RFC 9111 §5.2.1.7: "If it receives this directive, a cache SHOULD either
/// respond using a stored response consistent with the other constraints of the
/// request or respond with a 504 (Gateway Timeout)".
async fn only_if_cached_miss(client: impl Client) {
    let msg = "post-cache: no usable stored response and the request is only-if-cached\n";
    forward::plain(client, 504, Outcome::OnlyIfCachedMiss, msg).await
}

/// RFC 9110 §15.5.1: 400 (Bad Request) "due to something that is perceived to
/// be a client error (e.g., malformed request syntax ...)": a path that would
/// leave the origin's base path is never sent on.
async fn bad_path(client: impl Client, error: crate::http::path::PathError) {
    let msg = format!("post-cache: the request path is refused ({error:?}): it would leave the origin's base path\n");
    let mut head = vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())];
    push_length(&mut head, 400, msg.len());
    report(crate::body::respond_full(client, 400, head, msg.as_bytes()).await);
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

/// Deletes what this request read under its key (a record the fresh answer
/// could not replace, or another request's unusable bytes) so it is not read
/// again — only while the key still holds it: an entry another request wrote
/// since, or a purge, is left alone. The store has no compare-and-delete, so
/// this reads the key first; the window left is between that read and the
/// delete.
fn forget<B, S: Store, O>(flow: &Flow<'_, B, S, O>) {
    let Some(held) = flow.held else { return };
    match flow.store.get(&flow.keyed.kv_key) {
        Ok(Some(now)) if crate::cache::record::same_entry(&now, held) => delete_entry(flow),
        Ok(_) => {}
        Err(e) => log_store_error("get", &e),
    }
}

/// Deletes the key's value, known to be this request's to delete, and retires
/// the segments of the head read at lookup, if it had any.
fn delete_entry<B, S: Store, O>(flow: &Flow<'_, B, S, O>) {
    match flow.store.delete(&flow.keyed.kv_key) {
        Ok(()) => segments::retire_previous(flow, None),
        Err(e) => log_store_error("delete", &e),
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
