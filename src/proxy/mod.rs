//! The request flow over the [`Store`], [`Origin`] and [`Client`] traits, one file
//! per path: [`keying`] reads the body and derives the key, [`lookup`] replays a
//! usable record, [`miss`] fetches and stores, [`forward`] goes around the cache.
//! Decisions come from the pure `cache` and `protocol` modules; these files only
//! sequence I/O, and a store failure only ever costs the cache, never the request.

mod forward;
mod keying;
mod lookup;
mod miss;

use crate::body::{BodyError, BodySource, Client};
use crate::cache::headers::{self, HeaderList};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{decide_request, BypassReason, RequestDecision};
use crate::config::Config;
use crate::origin::Origin;
use crate::store::{Store, StoreError};
use keying::Keyed;

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
    let decision = decide_request(config.is_candidate(&request.method), &request.headers, config.credentials);
    let (refresh, only_if_cached, scoped) = match decision {
        RequestDecision::Bypass(reason) => {
            let outcome = Outcome::Bypass(reason);
            return forward::streaming(config, &mut request, &[], origin, client, outcome).await;
        }
        RequestDecision::Lookup { only_if_cached, scoped } => (false, only_if_cached, scoped),
        RequestDecision::Refresh { scoped } => (true, false, scoped),
    };

    let keyed = match keying::read_and_key(config, &mut request, scoped).await {
        Ok(keyed) => keyed,
        Err(keying::NotKeyed::TooLarge(prefix)) => {
            let outcome = Outcome::Bypass(BypassReason::BodyTooLarge);
            return forward::streaming(config, &mut request, &prefix, origin, client, outcome).await;
        }
        Err(keying::NotKeyed::Bypass(body, reason)) => {
            let outcome = Outcome::Bypass(BypassReason::Protocol(reason));
            return forward::buffered(config, &request, &body, origin, client, outcome).await;
        }
        Err(keying::NotKeyed::BodyFailed(e)) => return forward::bad_request_body(client, e).await,
    };
    let Keyed { body, .. } = &keyed;

    let store = match open_store() {
        Ok(store) => store,
        Err(e) => {
            log_store_error("open", &e);
            let outcome = Outcome::Bypass(BypassReason::StoreError);
            return forward::buffered(config, &request, body, origin, client, outcome).await;
        }
    };

    // Whether a record sits under the key that this request will not use.
    let mut replaceable = false;
    let fwd = if refresh {
        Fwd::Request
    } else {
        match store.get(&keyed.kv_key) {
            Err(e) => {
                log_store_error("get", &e);
                let outcome = Outcome::Bypass(BypassReason::StoreError);
                return forward::buffered(config, &request, body, origin, client, outcome).await;
            }
            Ok(stored) => match lookup::usable_record(stored.as_deref(), &keyed, &request.headers, now) {
                Ok(usable) => return lookup::replay(client, &usable, now).await,
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
        return forward::plain(client, 504, Outcome::OnlyIfCachedMiss, msg).await;
    }
    miss::fetch_and_store(config, now, &request, &keyed, &store, fwd, replaceable, origin, client).await
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
