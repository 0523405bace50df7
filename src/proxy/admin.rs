//! The admin API against the store: purge (by URL, tag, exact request, or
//! everything; hard or soft), sweep and stats. Decisions and parsing are in
//! `crate::admin`; what a sweep judges dead is `cache::sweep`.

use super::housekeeping::{self, Pass};
use super::segments;
use super::flow::{ClientRequest, Keyed};
use super::keying;
use super::respond::report;
use crate::admin::purge::{self, ExactRequest, PurgeRequest, Target};
use crate::admin::{authorize, json_string, Denied, Endpoint};
use crate::body::{respond_full, BodySource, Client};
use crate::cache::cache_control::CacheControl;
use crate::http::headers::{has, values, HeaderList};
use crate::cache::key::{self, entry_of_tag_marker, is_entry_key, query_prefix, tag_prefix, uri_prefix, ANY_SCHEME_PREFIX};
use crate::cache::policy::{CredentialMode, CREDENTIAL_HEADERS};
use crate::cache::record::{self, RECORD_VERSION};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Store operations (deletes or soft-purge rewrites) one purge request does at
/// most; the rest is left for a request with the `continue` cursor, so a large
/// purge stays inside the platform's limits on one request's time.
pub const MAX_OPERATIONS: usize = 1000;

/// Values read (for their size) by one stats request at most.
pub const MAX_STATS_READS: usize = 1000;

/// Answers one admin request.
pub async fn handle<B: BodySource, S: Store>(
    config: &Config,
    now: u64,
    endpoint: Endpoint,
    request: &mut ClientRequest<B>,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    client: impl Client,
) {
    match authorize(&request.headers, &config.purge_token) {
        Ok(()) => {}
        Err(denied) => return unauthorized(client, denied).await,
    }
    match endpoint {
        Endpoint::Unknown { known_path: true } => {
            return json(client, 405, r#"{"error":"use POST for purge and sweep, GET for stats"}"#.into()).await
        }
        Endpoint::Unknown { known_path: false } => {
            return json(client, 404, r#"{"error":"unknown admin endpoint: there are purge, sweep and stats"}"#.into()).await
        }
        Endpoint::Purge | Endpoint::Stats | Endpoint::Sweep => {}
    }
    let store = match open_store() {
        Ok(store) => store,
        Err(e) => return store_failed(client, &e, 0, None).await,
    };
    if endpoint == Endpoint::Stats {
        return stats(config, now, &store, client).await;
    }
    // An exact request's body comes base64-encoded in JSON: room for the largest
    // body post-cache keys, and its headers.
    let limit = config.max_body_bytes / 3 * 4 + 64 * 1024;
    let body = match read_limited(&mut request.body, limit).await {
        Ok(Some(body)) => body,
        Ok(None) => return bad_request(client, "body", &format!("is larger than {limit} bytes")).await,
        Err(e) => return bad_request(client, "body", &format!("could not be read: {e}")).await,
    };
    if endpoint == Endpoint::Sweep {
        return match crate::admin::sweep::parse(&body) {
            Ok(resume_after) => run_sweep(config, now, resume_after.as_deref(), &store, client).await,
            Err(e) => bad_request(client, e.field, &e.problem).await,
        };
    }
    let purge = match purge::parse(&body) {
        Ok(purge) => purge,
        Err(e) => return bad_request(client, e.field, &e.problem).await,
    };
    run_purge(config, now, &request.authority, &purge, &store, client).await
}

async fn run_purge<S: Store>(config: &Config, now: u64, authority: &str, purge: &PurgeRequest, store: &S, client: impl Client) {
    // Which keys to act on, in order: entries, and for tags and everything also
    // the markers and other keys post-cache wrote (told apart by their shape).
    let mut work = match &purge.target {
        Target::Request(exact) => exact_key(config, authority, exact).await.into_iter().collect(),
        target => match store.keys() {
            Ok(keys) => select(target, authority, keys),
            Err(e) => return store_failed(client, &e, 0, None).await,
        },
    };
    work.sort_unstable();
    work.dedup();
    if let Some(after) = &purge.resume_after {
        work.retain(|k| k > after);
    }
    let (mut purged, mut operations, mut last) = (0u64, 0usize, None::<String>);
    for key in &work {
        let is_entry = is_entry_key(key);
        if operations >= MAX_OPERATIONS {
            let body = format!(r#"{{"purged":{purged},"soft":{},"continue":{}}}"#, purge.soft, json_string(last.as_deref().unwrap_or("")));
            return json(client, 200, body).await;
        }
        let done = if purge.soft && is_entry {
            soften(store, key, now)
        } else if purge.soft {
            Ok(false) // a soft purge keeps the tag markers: the entries stay
        } else {
            delete_counting(store, key, !matches!(purge.target, Target::Request(_)))
        };
        match done {
            Ok(counted) => purged += u64::from(counted && is_entry),
            Err(e) => return store_failed(client, &e, purged, last.as_deref()).await,
        }
        operations += 1;
        last = Some(key.clone());
    }
    json(client, 200, format!(r#"{{"purged":{purged},"soft":{}}}"#, purge.soft)).await
}

/// Deletes what can never be served again, in key order, up to
/// [`MAX_OPERATIONS`] store operations (gets and deletes); answers the counts
/// per kind, and a `continue` cursor when it stopped at the bound.
async fn run_sweep<S: Store>(config: &Config, now: u64, resume_after: Option<&str>, store: &S, client: impl Client) {
    let keys = match housekeeping::listing(store) {
        Ok(keys) => keys,
        Err(e) => return sweep_failed(client, &e, &Default::default(), None).await,
    };
    let mut pass = Pass::new(store, config, now, Some(&keys), false);
    let mut last: Option<&str> = None;
    for key in keys.iter().filter(|k| resume_after.is_none_or(|after| k.as_str() > after)) {
        if pass.operations >= MAX_OPERATIONS {
            let body = format!(r#"{{"deleted":{{{}}},"continue":{}}}"#, pass.dead.json_members(), json_string(last.unwrap_or("")));
            return json(client, 200, body).await;
        }
        if let Err(e) = pass.visit(key) {
            return sweep_failed(client, &e, &pass.dead, last).await;
        }
        last = Some(key);
    }
    json(client, 200, format!(r#"{{"deleted":{{{}}}}}"#, pass.dead.json_members())).await
}

/// A store failure mid-sweep: what was deleted, and where to continue.
async fn sweep_failed(client: impl Client, e: &StoreError, dead: &crate::cache::sweep::Counts, last: Option<&str>) {
    eprintln!("post-cache: admin request failed: key-value store: {e}");
    let resume = last.map(|k| format!(r#","continue":{}"#, json_string(k))).unwrap_or_default();
    let body = format!(r#"{{"error":{},"deleted":{{{}}}{resume}}}"#, json_string(&format!("the key-value store failed: {e}")), dead.json_members());
    json(client, 503, body).await
}

/// The keys the target covers, from the store's listing.
fn select(target: &Target, authority: &str, mut keys: Vec<String>) -> Vec<String> {
    match target {
        Target::Url { host, path, query } => {
            let host = host.as_deref().unwrap_or(authority);
            // Requests are keyed with their dot segments removed.
            let normalized = crate::http::path::normalize(path);
            let path = normalized.as_deref().unwrap_or(path);
            let prefix = match query {
                Some(q) => query_prefix(host, path, q),
                None => uri_prefix(host, path),
            };
            keys.retain(|k| k.starts_with(&prefix));
            keys
        }
        Target::Tags(tags) => {
            let prefixes: Vec<String> = tags.iter().map(|t| tag_prefix(t)).collect();
            keys.sort_unstable();
            // A marker whose entry is gone (replaced without the tag, purged by
            // URL) is deleted with the others; only entries still there count.
            let entries: Vec<String> = keys
                .iter()
                .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
                .filter_map(|m| entry_of_tag_marker(m))
                .filter(|e| keys.binary_search(e).is_ok())
                .collect();
            // A segmented entry's segments sit under its key: they go with it.
            let segments: Vec<String> = entries
                .iter()
                .flat_map(|e| {
                    let under = format!("{e}:");
                    let from = keys.partition_point(|k| *k < under);
                    keys[from..].iter().take_while(move |k| k.starts_with(&under)).cloned().collect::<Vec<_>>()
                })
                .collect();
            keys.retain(|k| prefixes.iter().any(|p| k.starts_with(p)));
            keys.extend(entries);
            keys.extend(segments);
            keys
        }
        Target::All => {
            keys.retain(|k| k.starts_with(ANY_SCHEME_PREFIX));
            keys
        }
        Target::Request(_) => Vec::new(),
    }
}

/// Deletes a key and says whether it was there: known for listed keys (whose
/// segments are listed too), read first for an exact request's key (whose
/// segments, if it has any, are deleted with it).
fn delete_counting<S: Store>(store: &S, key: &str, listed: bool) -> Result<bool, StoreError> {
    if listed {
        store.delete(key)?;
        return Ok(true);
    }
    let stored = store.get(key)?;
    store.delete(key)?;
    if let Some(set) = stored.as_deref().and_then(record::segment_set) {
        segments::delete_set(store, key, set);
    }
    Ok(stored.is_some())
}

/// Marks a stored entry stale now (a mark alone or a foreign value is left).
fn soften<S: Store>(store: &S, key: &str, now: u64) -> Result<bool, StoreError> {
    let Some(bytes) = store.get(key)? else { return Ok(false) };
    match record::expired_by(&bytes, now) {
        Some(expired) => store.set(key, &expired).map(|()| true),
        None => Ok(false),
    }
}

/// The key the described request would be looked up under, keyed exactly as
/// the live request is (body format included); `None` when such a request is
/// never cached (its body is over `max_body_bytes`, its format bypasses it, or
/// it carries credentials and scoping is off).
async fn exact_key(config: &Config, authority: &str, exact: &ExactRequest) -> Option<String> {
    let credentials = CREDENTIAL_HEADERS.iter().any(|n| has(&exact.headers, n));
    let scoped = match (credentials, config.credentials) {
        (false, _) => false,
        (true, CredentialMode::Scoped) => true,
        (true, CredentialMode::Bypass) => return None,
    };
    let path_with_query = if exact.query.is_empty() { exact.path.clone() } else { format!("{}?{}", exact.path, exact.query) };
    let mut described = ClientRequest {
        method: exact.method.clone(),
        authority: exact.host.clone().unwrap_or_else(|| authority.to_string()),
        path_with_query,
        headers: exact.headers.clone(),
        body: Once(Some(exact.body.clone())),
    };
    let no_transform = CacheControl::parse(&values(&exact.headers, "cache-control")).no_transform;
    match keying::read_and_key(config, &mut described, scoped, no_transform).await {
        Ok(Keyed { kv_key, .. }) => Some(kv_key),
        Err(_) => None,
    }
}

/// A body already in memory.
struct Once(Option<Vec<u8>>);

impl BodySource for Once {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, crate::body::BodyError> {
        Ok(self.0.take())
    }
}

async fn read_limited<B: BodySource>(body: &mut B, limit: usize) -> Result<Option<Vec<u8>>, crate::body::BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > limit {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// Entry count from the store's listing; bytes and what is dead from up to
/// [`MAX_STATS_READS`] entries read; segments and tag markers judged dead
/// from the listing and those entries, without reading more.
async fn stats<S: Store>(config: &Config, now: u64, store: &S, client: impl Client) {
    let keys = match store.keys() {
        Ok(keys) => keys,
        Err(e) => return store_failed(client, &e, 0, None).await,
    };
    let mut ours: Vec<String> = keys.iter().filter(|k| k.starts_with(ANY_SCHEME_PREFIX)).cloned().collect();
    ours.sort_unstable();
    let entries = ours.iter().filter(|k| is_entry_key(k)).count();
    let tag_markers = ours.iter().filter(|k| entry_of_tag_marker(k).is_some()).count();
    let segments = ours.iter().filter(|k| key::is_segment_key(k)).count();
    let mut pass = Pass::new(store, config, now, Some(&ours), true);
    for key in ours.iter().filter(|k| is_entry_key(k)) {
        if pass.operations >= MAX_STATS_READS {
            break;
        }
        if let Err(e) = pass.visit(key) {
            return store_failed(client, &e, 0, None).await;
        }
    }
    let read = pass.operations;
    for key in &ours {
        pass.judge_from_listing(key);
    }
    let dead = pass.dead;
    let body = format!(
        r#"{{"entries":{entries},"tag_markers":{tag_markers},"segments":{segments},"other_keys":{},"store_keys":{},"entry_bytes":{},"dead_entries":{},"dead_marks":{},"orphan_segments":{},"orphan_tag_markers":{},"entries_measured":{read},"key_scheme":{},"record_version":{RECORD_VERSION}}}"#,
        ours.len() - entries - tag_markers - segments,
        keys.len(),
        pass.bytes_read,
        dead.entries,
        dead.marks,
        dead.segments,
        dead.tag_markers,
        key::KEY_SCHEME,
    );
    json(client, 200, body).await
}

async fn unauthorized(client: impl Client, denied: Denied) {
    let challenge = match denied {
        Denied::Missing => r#"Bearer realm="post-cache""#,
        Denied::Wrong => r#"Bearer realm="post-cache", error="invalid_token""#,
    };
    let mut head = json_head(r#"{"error":"the admin API needs Authorization: Bearer <purge_token>"}"#.len());
    head.push(("www-authenticate".into(), challenge.as_bytes().to_vec()));
    report(respond_full(client, 401, head, br#"{"error":"the admin API needs Authorization: Bearer <purge_token>"}"#).await);
}

async fn bad_request(client: impl Client, field: &str, problem: &str) {
    let body = format!(r#"{{"error":{},"field":{}}}"#, json_string(&format!("{field} {problem}")), json_string(field));
    json(client, 400, body).await
}

/// A store failure is never a 200: it says how far the purge got.
async fn store_failed(client: impl Client, e: &StoreError, purged: u64, last: Option<&str>) {
    eprintln!("post-cache: admin request failed: key-value store: {e}");
    let resume = last.map(|k| format!(r#","continue":{}"#, json_string(k))).unwrap_or_default();
    let body = format!(r#"{{"error":{},"purged":{purged}{resume}}}"#, json_string(&format!("the key-value store failed: {e}")));
    json(client, 503, body).await
}

fn json_head(len: usize) -> HeaderList {
    vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("cache-control".into(), b"no-store".to_vec()),
        ("content-length".into(), len.to_string().into_bytes()),
    ]
}

async fn json(client: impl Client, status: u16, body: String) {
    report(respond_full(client, status, json_head(body.len()), body.as_bytes()).await);
}
