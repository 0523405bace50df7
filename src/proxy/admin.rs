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
use super::index;
use crate::cache::key::{
    self, entry_of_tag_marker, is_entry_key, query_prefix, tag_index_key, tag_prefix, uri_index_key, uri_prefix, ANY_SCHEME_PREFIX, KEY_PREFIX,
};
use crate::runtime::Runtime;
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
pub async fn handle<B: BodySource, S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    endpoint: Endpoint,
    request: &mut ClientRequest<B>,
    open_store: impl FnOnce() -> Result<S, StoreError>,
    runtime: &R,
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
    run_purge(config, now, &request.authority, &purge, &store, runtime, client).await
}

/// Entries one purge request takes out of indexes at most (each costs a read
/// and a delete): the rest stay in their indexes for the next request.
pub const MAX_INDEXED_ENTRIES: usize = MAX_OPERATIONS / 2;

async fn run_purge<S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    authority: &str,
    purge: &PurgeRequest,
    store: &S,
    runtime: &R,
    client: impl Client,
) {
    let written = match purge_keys(config, now, authority, purge, store, runtime, true).await {
        Ok(Purged { purged, resume, written }) => {
            let resume = resume.map(|cursor| format!(r#","continue":{}"#, json_string(&cursor))).unwrap_or_default();
            json(client, 200, format!(r#"{{"purged":{purged},"soft":{}{resume}}}"#, purge.soft)).await;
            written
        }
        Err(Failed { error, purged, last }) => return store_failed(client, &error, purged, last.as_deref()).await,
    };
    if let Err(e) = recheck(store, runtime, now, &written).await {
        eprintln!("post-cache: a purge's second look at its indexes failed: key-value store: {e}");
    }
}

/// What a purge did: entries purged, where to continue if it stopped at a
/// bound, and the indexes it wrote back with their new epochs (for
/// [`recheck`]).
pub struct Purged {
    pub purged: u64,
    pub resume: Option<String>,
    pub written: Vec<(String, u64)>,
}

/// After the settle delay, a purge's second look at the indexes it wrote
/// back: a writer that read one before the purge and wrote it back after has
/// put back what it read, with its own line — the entries named then go too.
/// Runs after the answer (the client does not wait for it); returns how many
/// entries it deleted.
pub async fn recheck<S: Store, R: Runtime>(store: &S, runtime: &R, now: u64, written: &[(String, u64)]) -> Result<u64, StoreError> {
    if written.is_empty() {
        return Ok(0);
    }
    runtime.sleep_ms(index::SETTLE_MS).await;
    let mut purged = 0;
    for (key, epoch) in written {
        for entry in retake(store, key, *epoch, now, runtime.token())? {
            purged += u64::from(act(store, &entry, false, false, now)?);
        }
    }
    Ok(purged)
}

/// A store failure in a purge: what was done, and the last key done.
pub struct Failed {
    pub error: StoreError,
    pub purged: u64,
    pub last: Option<String>,
}

/// Purges what `purge` names, within the bounds of one request;
/// `list_missing`: a URL without an index is listed ([`from_indexes`]).
pub async fn purge_keys<S: Store, R: Runtime>(
    config: &Config,
    now: u64,
    authority: &str,
    purge: &PurgeRequest,
    store: &S,
    runtime: &R,
    list_missing: bool,
) -> Result<Purged, Failed> {
    let failed = |error, purged, last: Option<&String>| Failed { error, purged, last: last.cloned() };
    let mut purged = 0u64;
    // Tags and URLs: the entries their indexes name first, all of them in this
    // request (they are out of their index now); a full index adds a listing.
    let from_index = match &purge.target {
        Target::Tags(_) | Target::Url { .. } => {
            from_indexes(&purge.target, authority, store, purge.soft, list_missing, now, runtime).map_err(|e| failed(e, 0, None))?
        }
        Target::Request(_) | Target::All => FromIndexes::default(),
    };
    for key in &from_index.entries {
        purged += u64::from(act(store, key, purge.soft, false, now).map_err(|e| failed(e, purged, None))?);
    }
    // Which keys to act on from a listing, in order: entries, and for tags and
    // everything also the markers and other keys post-cache wrote (told apart
    // by their shape).
    let mut work = match &purge.target {
        Target::Request(exact) => exact_key(config, authority, exact).await.into_iter().collect(),
        Target::Tags(_) | Target::Url { .. } if !from_index.list => Vec::new(),
        target => {
            let keys = store.keys().map_err(|e| failed(e, purged, None))?;
            select(target, &from_index.full_tags, authority, keys)
        }
    };
    work.sort_unstable();
    work.dedup();
    if let Some(after) = &purge.resume_after {
        work.retain(|k| k > after);
    }
    let (mut operations, mut last) = (0usize, None::<String>);
    let listed = !matches!(purge.target, Target::Request(_));
    for key in &work {
        if operations >= MAX_OPERATIONS {
            return Ok(Purged { purged, resume: Some(last.unwrap_or_default()), written: from_index.epochs });
        }
        purged += u64::from(act(store, key, purge.soft, listed, now).map_err(|e| failed(e, purged, last.as_ref()))?);
        operations += 1;
        last = Some(key.clone());
    }
    if !purge.soft {
        // A full index whose entries and markers are all gone starts again.
        for key in &from_index.restart {
            index::restart(store, key, now, runtime.token()).map_err(|e| failed(e, purged, None))?;
        }
    }
    // Indexes that still name entries: the same request again takes the next ones.
    Ok(Purged { purged, resume: from_index.more.then(String::new), written: from_index.epochs })
}

/// Purges one key: an entry softened, or any key deleted; whether it was an
/// entry that was there.
fn act<S: Store>(store: &S, key: &str, soft: bool, listed: bool, now: u64) -> Result<bool, StoreError> {
    let is_entry = is_entry_key(key);
    if soft && is_entry {
        soften(store, key, now)
    } else if soft {
        Ok(false) // a soft purge keeps the tag markers: the entries stay
    } else {
        delete_counting(store, key, listed).map(|there| there && is_entry)
    }
}

/// What the indexes of a purge's tags or URL gave.
#[derive(Default)]
struct FromIndexes {
    /// Entry keys they named (their segments are found by reading them).
    entries: Vec<String>,
    /// Each index written back, and the epoch it was given.
    epochs: Vec<(String, u64)>,
    /// Some index is full: the store must be listed too.
    list: bool,
    /// The tags whose indexes are full (their markers are listed).
    full_tags: Vec<String>,
    /// Full indexes that start again once the listing's work is done.
    restart: Vec<String>,
    /// Entries were left in an index by the bound.
    more: bool,
}

/// The entries the indexes of a purge's tags or URL name. A URL without an
/// index is listed when `list_missing` (an operator's purge: in a store that
/// evicts keys, an index may be gone while its entries are not); else, and for
/// a tag, whose entries no listing can find, it names nothing.
fn from_indexes<S: Store, R: Runtime>(
    target: &Target,
    authority: &str,
    store: &S,
    soft: bool,
    list_missing: bool,
    now: u64,
    runtime: &R,
) -> Result<FromIndexes, StoreError> {
    let mut out = FromIndexes::default();
    let mut take = |key: String, select: &dyn Fn(&str) -> bool, restartable: bool, tag: Option<&String>| -> Result<(), StoreError> {
        let room = MAX_INDEXED_ENTRIES.saturating_sub(out.entries.len());
        if room == 0 {
            // Left for the next request, unread and unwritten.
            out.more = true;
            return Ok(());
        }
        let epoch = runtime.token();
        match index::take(store, &key, select, room, !soft, now, epoch)? {
            index::Taken::Entries(entries) => {
                out.more |= entries.len() == room;
                out.entries.extend(entries);
                if !soft {
                    out.epochs.push((key, epoch));
                }
            }
            index::Taken::Full(entries) => {
                out.entries.extend(entries);
                out.list = true;
                out.full_tags.extend(tag.cloned());
                if restartable {
                    out.restart.push(key);
                }
            }
            index::Taken::Missing => out.list |= tag.is_none() && list_missing,
        }
        Ok(())
    };
    match target {
        Target::Tags(tags) => {
            for tag in tags {
                take(tag_index_key(tag), &|_: &str| true, true, Some(tag))?;
            }
        }
        Target::Url { host, path, query } => {
            let host = host.as_deref().unwrap_or(authority);
            let normalized = crate::http::path::normalize(path);
            let path = normalized.as_deref().unwrap_or(path);
            let line_prefix = query.as_ref().map(|q| query_prefix(host, path, q)[KEY_PREFIX.len()..].to_string());
            let select = |line: &str| line_prefix.as_ref().is_none_or(|p| line.starts_with(p.as_str()));
            take(uri_index_key(host, path), &select, query.is_none(), None)?;
        }
        Target::Request(_) | Target::All => {}
    }
    Ok(out)
}

/// A purge's second look at an index it wrote back with `epoch`: if a writer
/// has since written back an older read (the epoch changed), the entries
/// named now are taken as well.
fn retake<S: Store>(store: &S, key: &str, epoch: u64, now: u64, new_epoch: u64) -> Result<Vec<String>, StoreError> {
    if index::epoch_is(store, key, epoch)? {
        return Ok(Vec::new());
    }
    match index::take(store, key, |_: &str| true, MAX_INDEXED_ENTRIES, true, now, new_epoch)? {
        index::Taken::Entries(entries) | index::Taken::Full(entries) => Ok(entries),
        index::Taken::Missing => Ok(Vec::new()),
    }
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

/// The keys the target covers, from the store's listing (for tags, those
/// of `full_tags`: the others' indexes named theirs).
fn select(target: &Target, full_tags: &[String], authority: &str, mut keys: Vec<String>) -> Vec<String> {
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
        Target::Tags(_) => {
            let prefixes: Vec<String> = full_tags.iter().map(|t| tag_prefix(t)).collect();
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
    let indexes = ours.iter().filter(|k| key::is_index_key(k)).count();
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
        r#"{{"entries":{entries},"tag_markers":{tag_markers},"segments":{segments},"indexes":{indexes},"other_keys":{},"store_keys":{},"entry_bytes":{},"dead_entries":{},"dead_marks":{},"orphan_segments":{},"orphan_tag_markers":{},"entries_measured":{read},"key_scheme":{},"record_version":{RECORD_VERSION}}}"#,
        ours.len() - entries - tag_markers - segments - indexes,
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
