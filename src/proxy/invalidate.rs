//! Invalidation by unsafe methods (RFC 9111 §4.4), after the response: a
//! successful PUT, PATCH, DELETE or non-candidate POST (or, when configured, a
//! GraphQL mutation) forgets the stored entries of its URL. Spin's KV has no
//! prefix listing, so this lists the whole store: its cost grows with the store
//! (see the README), which is why it runs after the client has its answer.

use super::forward::Answered;
use super::flow::ClientRequest;
use crate::cache::invalidation::invalidated_paths;
use crate::cache::key::uri_prefix;
use crate::store::{Store, StoreError};

/// Deletes every entry of the request's path (and same-host `Location` /
/// `Content-Location` paths), whatever their method, query or body. Returns how
/// many went.
pub fn forget_urls<B, S: Store>(
    request: &ClientRequest<B>,
    answered: &Answered,
    open_store: impl FnOnce() -> Result<S, StoreError>,
) -> usize {
    let path = request.path_with_query.split('?').next().unwrap_or("/");
    let paths = invalidated_paths(&request.authority, path, &answered.locations);
    let prefixes: Vec<String> = paths.iter().map(|p| uri_prefix(&request.authority, p)).collect();
    let result = open_store().and_then(|store| {
        let doomed: Vec<String> = store.keys()?.into_iter().filter(|k| prefixes.iter().any(|p| k.starts_with(p))).collect();
        for key in &doomed {
            store.delete(key)?;
        }
        Ok(doomed.len())
    });
    match result {
        Ok(n) => {
            if n > 0 {
                eprintln!("post-cache: {} {} invalidated {n} entries", request.method, path);
            }
            n
        }
        Err(e) => {
            eprintln!("post-cache: invalidation of {path} skipped: key-value store: {e}");
            0
        }
    }
}
