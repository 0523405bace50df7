//! The request flow over the [`Store`], [`Origin`], [`Client`] and [`Runtime`]
//! traits. [`handle`] routes a request — admin, around the cache, or keyed —
//! and a keyed request becomes a [`Flow`] whose methods are the steps, one file
//! each, from the top down:
//!
//! - `lookup`: what the key held decides: replay, stale answer and refresh, or fetch;
//! - `collapse`: of many misses of one key, one fetches (a lead, a guard);
//! - `stale`: the refresh after a stale answer;
//! - `miss`: the fetch, the answer to the client, and what may be stored;
//! - `store`: the record written, a revalidated one rewritten, an old one forgotten;
//! - `replay`, `segments`: answers from the store, whole or segment by segment;
//! - `forward`: around the cache; `keying`: the body read and keyed;
//! - `found`: what the key held, without I/O; `flow`: the request's context;
//! - `respond`: answers to the client and the framing they share.
//!
//! Decisions come from the pure `cache` and `protocol` modules; these files
//! only sequence I/O, and a store failure only ever costs the cache, never the
//! request.

mod admin;
mod collapse;
mod flow;
mod forward;
mod found;
mod housekeeping;
mod index;
mod invalidate;
mod keying;
mod lookup;
mod miss;
mod replay;
mod respond;
mod segments;
mod stale;
mod store;

pub use flow::ClientRequest;

use crate::body::{BodySource, Client};
use crate::cache::cache_control::CacheControl;
use crate::cache::invalidation;
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{decide_request, BypassReason, RequestDecision};
use crate::config::Config;
use crate::protocol::GraphQlInvalidation;
use crate::http::headers;
use crate::origin::Origin;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};
use flow::{Flow, Parts};
use found::Held;
use respond::Respond;

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
    let client = Respond::To(client);
    // Everything that is routed, goes on to the origin or into a key has its dot
    // segments removed first: the base path is a boundary.
    match crate::http::path::normalize(&request.path_with_query) {
        Ok(path) => request.path_with_query = path,
        Err(e) => return respond::bad_path(client, e).await,
    }
    let token_set = !config.purge_token.is_empty();
    if let Some(endpoint) = crate::admin::route(&config.admin_path, token_set, &request.method, &request.path_with_query) {
        return admin::handle(config, now, endpoint, &mut request, open_store, runtime, client).await;
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
                    invalidate::forget_urls(config, now, &request, &answered, open_store, runtime).await;
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
            // A GraphQL mutation writes behind its endpoint: its answer (read as
            // it is relayed) says whether it ran and which entities it touched.
            let by_entities = config.graphql_invalidation != GraphQlInvalidation::Off;
            if !(reason.may_mutate() && (by_entities || config.invalidate_on_mutation)) {
                forward::buffered(config, &request, &body, origin, client, outcome).await;
                return;
            }
            let answered = forward::buffered_reading(config, &request, &body, origin, client, outcome).await;
            if let Some(answered) = answered {
                invalidate::after_mutation(config, now, &request, &answered, open_store, runtime).await;
            }
            return;
        }
        Err(keying::NotKeyed::BodyFailed(e)) => return respond::bad_request_body(client, e).await,
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
    let flow = Flow::<Parts<B, S, O, R, C>> {
        config,
        now,
        request: &request,
        request_cc: &request_cc,
        keyed: &keyed,
        store: &store,
        origin,
        runtime,
        held: stored.as_deref(),
    };
    let retired = if refresh {
        // A refresh does not use what the key holds: if its answer may not be
        // stored, that is left as it is.
        flow.fetch(Fwd::Request, Held::Empty, client).await.retired
    } else {
        flow.serve(only_if_cached, client).await
    };
    // After the response: the segments of a replaced entry, once no replay
    // that started before can still need them.
    flow.sweep(retired).await;
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
    respond::log_store_error(op, &error);
    forward::buffered(config, request, body, origin, client, Outcome::Bypass(BypassReason::StoreError)).await;
}

#[cfg(test)]
mod tests;
