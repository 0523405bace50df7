//! Invalidation after the response: a successful PUT, PATCH, DELETE or
//! non-candidate POST forgets the stored entries of its URL (RFC 9111 §4.4),
//! and a GraphQL mutation that ran forgets the entries showing what it
//! touched. Both are purges (`admin::purge_keys`): an index names the entries,
//! so the cost follows how many there are, not the size of the store.

use super::admin::{purge_keys, recheck, Failed, Purged};
use super::flow::ClientRequest;
use super::forward::Answered;
use crate::admin::purge::{PurgeRequest, Target};
use crate::cache::invalidation::{invalidated_paths, non_error};
use crate::cache::tags::MAX_TAGS;
use crate::protocol::{entities, graphql, GraphQlInvalidation};
use crate::config::Config;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};

/// Rounds of a purge's bound one invalidation goes through at most: it runs
/// after the response, but not for ever.
const MAX_ROUNDS: usize = 16;

/// Deletes every entry of the request's path (and same-host `Location` /
/// `Content-Location` paths), whatever their method, query or body. Returns how
/// many went.
pub async fn forget_urls<B, S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    request: &ClientRequest<B>,
    answered: &Answered,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    runtime: &R,
) -> u64 {
    let (targets, what) = url_targets(request, answered);
    match open_store() {
        Ok(store) => forget(config, now, &request.authority, targets, false, &store, runtime, &what).await,
        Err(e) => {
            eprintln!("post-cache: invalidation by {what} skipped: key-value store: {e}");
            0
        }
    }
}

fn url_targets<B>(request: &ClientRequest<B>, answered: &Answered) -> (Vec<Target>, String) {
    let path = request.path_with_query.split('?').next().unwrap_or("/");
    let paths = invalidated_paths(&request.authority, path, &answered.locations);
    let targets = paths.into_iter().map(|p| Target::Url { host: None, path: p, query: None }).collect();
    (targets, format!("{} {path}", request.method))
}

/// After a GraphQL mutation's answer: if it ran (non-null `data`, a 2xx or
/// 3xx status), the entries showing the entities it touched are purged (softly
/// with `graphql_invalidation = "soft"`), and with `invalidate_on_mutation`
/// every entry of its endpoint. An answer that could not be read (over the
/// capture bound, compressed, broken) names no entity: only the endpoint-wide
/// invalidation, when on, covers it.
pub async fn after_mutation<B, S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    request: &ClientRequest<B>,
    answered: &Answered,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    runtime: &R,
) -> u64 {
    let body = answered.body.as_deref();
    if !(graphql::mutation_ran(body) && non_error(answered.status)) {
        return 0;
    }
    let mut targets = Vec::new();
    let soft = config.graphql_invalidation == GraphQlInvalidation::Soft;
    if config.graphql_invalidation != GraphQlInvalidation::Off {
        let keys = &config.protocol.graphql_key_fields;
        match body.and_then(|b| entities::touched_by_mutation(b, keys, MAX_TAGS)) {
            Some(tags) if !tags.is_empty() => targets.push(Target::Tags(tags)),
            Some(_) => {}
            None => eprintln!("post-cache: a mutation's answer could not be read; no entity is invalidated"),
        }
    }
    if targets.is_empty() && !config.invalidate_on_mutation {
        return 0;
    }
    let store = match open_store() {
        Ok(store) => store,
        Err(e) => {
            eprintln!("post-cache: invalidation after a mutation skipped: key-value store: {e}");
            return 0;
        }
    };
    let mut forgotten = forget(config, now, &request.authority, targets, soft, &store, runtime, "a mutation's entities").await;
    if config.invalidate_on_mutation {
        let (urls, what) = url_targets(request, answered);
        forgotten += forget(config, now, &request.authority, urls, false, &store, runtime, &what).await;
    }
    forgotten
}

/// Purges each target in turn, through as many rounds as its bound needs (up
/// to [`MAX_ROUNDS`]); logs and returns how many entries went.
#[allow(clippy::too_many_arguments)]
pub async fn forget<S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    authority: &str,
    targets: Vec<Target>,
    soft: bool,
    store: &S,
    runtime: &R,
    what: &str,
) -> u64 {
    let mut total = 0;
    for target in targets {
        let mut purge = PurgeRequest { target, soft, resume_after: None };
        for _ in 0..MAX_ROUNDS {
            // An invalidation does not list the store for a URL without an
            // index: most unsafe requests are to URLs with nothing stored.
            match purge_keys(config, now, authority, &purge, store, runtime, false).await {
                Ok(Purged { purged, resume, written }) => {
                    total += purged;
                    match recheck(store, runtime, now, &written).await {
                        Ok(more) => total += more,
                        Err(e) => eprintln!("post-cache: invalidation by {what}: a second look at its indexes failed: {e}"),
                    }
                    match resume {
                        Some(cursor) => purge.resume_after = Some(cursor).filter(|c| !c.is_empty()),
                        None => break,
                    }
                }
                Err(Failed { error, purged, .. }) => {
                    eprintln!("post-cache: invalidation by {what} stopped: key-value store: {error}");
                    return total + purged;
                }
            }
        }
    }
    if total > 0 {
        eprintln!("post-cache: {what} invalidated {total} entries");
    }
    total
}
