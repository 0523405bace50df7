//! What a request does to entries it read earlier, once other requests have
//! changed the store meanwhile; paths that must not leave the origin's base;
//! `Vary` matched against what was sent.

use super::*;
use std::collections::HashMap;

const BODY: &[u8] = b"{\"query\":\"{ list }\"}";
const JSON: (&str, &str) = ("content-type", "application/json");

/// Values of at most 4 KiB, so a 20 KB answer takes a head and 4 segments.
fn small_values(extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![("max_value_bytes", "4096")];
    vars.extend_from_slice(extra);
    config(&vars)
}

fn large(len: usize, seed: u8, cache_control: &str) -> FakeOrigin {
    let mut origin = origin(cache_control);
    origin.body = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    origin
}

fn entry_key(store: &MemoryStore) -> Option<String> {
    store.entries.borrow().keys().find(|k| crate::cache::key::is_entry_key(k)).cloned()
}

fn segment_keys(entries: &HashMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<String> = entries.keys().filter(|k| crate::cache::key::is_segment_key(k)).cloned().collect();
    keys.sort();
    keys
}

/// Runs `action` once, before the first get whose key passes `when`.
fn once_before_get(
    store: &MemoryStore,
    when: impl Fn(&str) -> bool + 'static,
    action: impl FnOnce(&str, &mut HashMap<String, Vec<u8>>) + 'static,
) {
    let mut action = Some(action);
    *store.before_get.borrow_mut() = Some(Box::new(move |key, entries| {
        if when(key) {
            if let Some(action) = action.take() {
                action(key, entries);
            }
        }
    }));
}

fn is_segment(key: &str) -> bool {
    crate::cache::key::is_segment_key(key)
}

#[test]
fn a_slow_replay_that_finds_its_segment_gone_deletes_only_the_entry_it_read() {
    let cfg = small_values(&[]);
    // The newer entry, as another request wrote it (another generation).
    let (newer_store, runtime) = (MemoryStore::default(), FakeRuntime::default());
    runtime.tokens.set(100);
    let newer_origin = large(20_000, 2, "max-age=60");
    run_with(&cfg, NOW, request("POST", &[JSON], BODY), &newer_store, &newer_origin, &runtime);
    let newer = newer_store.entries.borrow().clone();
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 1, "max-age=60"));
    let old_segments = segment_keys(&store.entries.borrow());
    // While a slow client reads the old entry, it is replaced, and the grace
    // deletes its old segments before the replay reaches segment 2.
    let replaced = newer.clone();
    once_before_get(&store, |k| k.ends_with(":2"), move |key, entries| {
        entries.extend(replaced);
        entries.remove(key);
    });
    let slow = run(&cfg, NOW + 5, request("POST", &[JSON], BODY), &store, &newer_origin);
    assert!(!slow.finished(), "the old replay is cut short");
    let head = entry_key(&store).expect("the newer head is kept");
    assert_eq!(store.entries.borrow()[&head], newer[&head]);
    assert_eq!(segment_keys(&store.entries.borrow()), segment_keys(&newer), "the newer entry's segments, and none of the old");
    assert!(old_segments.iter().all(|k| !newer.contains_key(k)));
    let hit = run(&cfg, NOW + 6, request("POST", &[JSON], BODY), &store, &newer_origin);
    assert_eq!((hit.header("cache-status").unwrap().as_str(), hit.body()), ("post-cache; hit; ttl=54", newer_origin.body.clone()));
    assert_eq!(newer_origin.calls.borrow().len(), 1, "no refetch: the newer entry was never lost");
}

#[test]
fn a_stale_refresh_does_not_bring_back_an_entry_purged_while_its_replay_ran() {
    let cfg = small_values(&[]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 3, "max-age=60, stale-while-revalidate=30"));
    // A purge deletes the head (it comes first in the listing) while the
    // stale replay reads its segments.
    once_before_get(&store, |k| k.ends_with(":1"), |key, entries| {
        let head = key.rsplitn(3, ':').nth(2).unwrap().to_string();
        entries.remove(&head);
    });
    let mut down = origin("max-age=60");
    down.error = Some(OriginError::Unreachable("refused".into()));
    let stale = run(&cfg, NOW + 70, request("POST", &[JSON], BODY), &store, &down);
    assert_eq!(stale.header("cache-status").unwrap(), "post-cache; hit; ttl=-10");
    assert!(stale.finished());
    assert_eq!(entry_key(&store), None, "the purged head stays purged: no mark written back into it");
    assert_eq!(down.calls.borrow().len(), 0, "and nothing to refresh");
}

#[test]
fn a_304_does_not_write_back_an_entry_purged_while_the_origin_was_asked() {
    let cfg = small_values(&[("collapse_wait_ms", "0")]);
    let store = MemoryStore::default();
    let mut first = large(20_000, 4, "max-age=60");
    first.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    run(&cfg, NOW, request("QUERY", &[JSON], BODY), &store, &first);
    // The purge lands after the lookup: the head goes while segment 0 is read.
    once_before_get(&store, is_segment, |key, entries| {
        let head = key.rsplitn(3, ':').nth(2).unwrap().to_string();
        entries.remove(&head);
    });
    let mut unchanged = origin("max-age=120");
    unchanged.status = 304;
    unchanged.body = Vec::new();
    unchanged.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    let answer = run(&cfg, NOW + 100, request("QUERY", &[JSON], BODY), &store, &unchanged);
    assert_eq!(unchanged.calls.borrow().len(), 1);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=stale; fwd-status=304; detail=superseded");
    assert_eq!(answer.body(), first.body, "the client still gets the answer it revalidated");
    assert_eq!(entry_key(&store), None, "the purged head is not written back");
}

#[test]
fn an_answer_that_may_not_be_stored_leaves_a_newer_entry_written_meanwhile() {
    let cfg = small_values(&[("collapse_wait_ms", "0")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 5, "max-age=60"));
    // Another request stores a newer, whole entry while this one looks up.
    let newer_store = MemoryStore::default();
    run(&cfg, NOW + 90, request("POST", &[JSON], BODY), &newer_store, &origin("max-age=60"));
    let newer = newer_store.entries.borrow().clone();
    once_before_get(&store, is_segment, move |_, entries| entries.extend(newer));
    let mut refused = origin("no-store");
    refused.status = 404;
    let answer = run(&cfg, NOW + 100, request("POST", &[JSON], BODY), &store, &refused);
    assert_eq!(answer.status(), 404);
    let hit = run(&cfg, NOW + 101, request("POST", &[JSON], BODY), &store, &refused);
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=49", "the newer entry was kept");
}

#[test]
fn a_collapse_claim_does_not_write_its_mark_into_an_entry_replaced_since_the_lookup() {
    let cfg = small_values(&[]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 6, "max-age=60"));
    let newer_store = MemoryStore::default();
    run(&cfg, NOW + 90, request("POST", &[JSON], BODY), &newer_store, &origin("max-age=60"));
    let newer = newer_store.entries.borrow().clone();
    let replaced = newer.clone();
    once_before_get(&store, is_segment, move |_, entries| entries.extend(replaced));
    let mut failing = origin("no-store");
    failing.status = 503;
    run(&cfg, NOW + 100, request("POST", &[JSON], BODY), &store, &failing);
    let head = entry_key(&store).expect("an entry");
    assert_eq!(store.entries.borrow()[&head], newer[&head], "the newer entry, untouched: no stale mark written into old bytes");
}

#[test]
fn dot_segments_are_removed_before_the_base_path_and_a_path_climbing_out_of_it_is_refused() {
    let cfg = config(&[]);
    let (store, origin) = (MemoryStore::default(), origin("max-age=60"));
    let mut inside = request("POST", &[], b"q");
    inside.path_with_query = "/v1/./../graphql?x=1".into();
    let answer = run(&cfg, NOW, inside, &store, &origin);
    assert_eq!(answer.status(), 200);
    assert_eq!(origin.calls.borrow()[0].1, "/api/graphql?x=1");
    // The query is the origin's business, dots and all.
    let mut query = request("POST", &[], b"q");
    query.path_with_query = "/graphql?x=/../y".into();
    run(&cfg, NOW, query, &store, &origin);
    assert_eq!(origin.calls.borrow()[1].1, "/api/graphql?x=/../y");
    // The same resource spelled plainly is the same entry.
    let plain = run(&cfg, NOW + 1, request("POST", &[], b"q"), &store, &origin);
    assert_eq!(plain.header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    for path in ["/../admin", "/%2e%2e/admin", "/graphql/..%2f..%2fadmin", "/a/../../admin"] {
        let mut outside = request("POST", &[], b"q");
        outside.path_with_query = path.into();
        let refused = run(&cfg, NOW, outside, &store, &origin);
        assert_eq!(refused.status(), 400, "{path}");
        let mut get = request("GET", &[], b"");
        get.path_with_query = path.into();
        assert_eq!(run(&cfg, NOW, get, &store, &origin).status(), 400, "{path}, passed through or not");
    }
    assert_eq!(origin.calls.borrow().len(), 2, "nothing outside the base reached the origin");
}

#[test]
fn behind_vary_accept_encoding_graphql_clients_of_every_encoding_share_the_entry_asked_for_identity() {
    let cfg = config(&[("body_format", "graphql")]);
    let mut origin = origin("max-age=60");
    origin.headers.push(("vary".into(), b"Accept-Encoding".to_vec()));
    origin.body = br#"{"data":{"me":{"id":"1"}}}"#.to_vec();
    let store = MemoryStore::default();
    let body = br#"{"query":"{ me { id } }"}"#;
    let gzip = run(&cfg, NOW, request("POST", &[JSON, ("accept-encoding", "gzip")], body), &store, &origin);
    assert_eq!(gzip.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    for encoding in ["br", "gzip", "identity"] {
        let hit = run(&cfg, NOW + 1, request("POST", &[JSON, ("accept-encoding", encoding)], body), &store, &origin);
        assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=59", "{encoding}");
    }
    let none = run(&cfg, NOW + 1, request("POST", &[JSON], body), &store, &origin);
    assert_eq!(none.header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    assert_eq!(origin.calls.borrow().len(), 1);
    // In raw mode the client's own Accept-Encoding goes to the origin, and is what varies.
    let raw = config(&[]);
    let raw_store = MemoryStore::default();
    run(&raw, NOW, request("POST", &[("accept-encoding", "gzip")], body), &raw_store, &origin);
    let other = run(&raw, NOW + 1, request("POST", &[("accept-encoding", "br")], body), &raw_store, &origin);
    assert_eq!(other.header("cache-status").unwrap(), "post-cache; fwd=vary-miss; detail=storing");
}

#[test]
fn a_cold_miss_writes_no_mark_unless_collapse_cold_misses_asks_for_it() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let miss = run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    assert_eq!(miss.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!((store.sets.get(), store.gets.get()), (1, 1), "the lookup and the record: no mark, no read-back");
    let cold = config(&[("collapse_cold_misses", "true")]);
    let marked = MemoryStore::default();
    run(&cold, NOW, request("POST", &[], b"q"), &marked, &origin("max-age=60"));
    assert_eq!((marked.sets.get(), marked.gets.get()), (2, 2), "the mark and its read-back first");
    // An expired entry is marked either way.
    let sets = store.sets.get();
    let refetch = run(&cfg, NOW + 61, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    assert_eq!(refetch.header("cache-status").unwrap(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(store.sets.get() - sets, 2, "the mark in the expired record, then the record");
}

#[test]
fn a_background_refresh_answered_with_a_storable_error_keeps_the_record_that_stands_in_for_errors() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60, stale-while-revalidate=30, stale-if-error=600"));
    let before = &store.entries.borrow()[&store.cache_keys()[0]].clone();
    let mut down = origin("max-age=60");
    down.status = 503;
    down.body = b"down".to_vec();
    let stale = run(&cfg, NOW + 70, request("POST", &[], b"q"), &store, &down);
    assert_eq!(stale.header("cache-status").unwrap(), "post-cache; hit; ttl=-10");
    assert_eq!(down.calls.borrow().len(), 1, "the refresh asked the origin");
    let kept = crate::cache::record::decode(&store.entries.borrow()[&store.cache_keys()[0]]).unwrap().body.to_vec();
    assert_eq!(kept, b"{\"answer\":42}", "the 503 did not replace it");
    assert!(crate::cache::record::same_entry(&store.entries.borrow()[&store.cache_keys()[0]], &before));
    // A later client whose origin fails still gets it.
    let later = run(&cfg, NOW + 200, request("POST", &[], b"q"), &store, &down);
    assert_eq!((later.status(), later.body()), (200, b"{\"answer\":42}".to_vec()));
}

#[test]
fn a_no_cache_refetch_that_brings_back_the_same_large_answer_rewrites_only_its_head() {
    let cfg = small_values(&[]);
    let store = MemoryStore::default();
    let mut same = large(20_000, 7, "max-age=60");
    same.headers.push(("surrogate-key".into(), b"list page-1".to_vec()));
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &same);
    let segments = segment_keys(&store.entries.borrow());
    assert_eq!(segments.len(), 4);
    let keys_before = store.cache_keys().len();
    let sets = store.sets.get();
    let refetched = run(&cfg, NOW + 30, request("POST", &[JSON, ("cache-control", "no-cache")], BODY), &store, &same);
    assert_eq!(refetched.header("cache-status").unwrap(), "post-cache; fwd=request; detail=storing");
    assert_eq!(refetched.body(), same.body);
    assert_eq!(store.sets.get() - sets, 1, "the head alone: no segment, no tag marker written again");
    assert_eq!(segment_keys(&store.entries.borrow()), segments, "the same segments");
    assert_eq!(store.cache_keys().len(), keys_before);
    let hit = run(&cfg, NOW + 40, request("POST", &[JSON], BODY), &store, &same);
    assert_eq!((hit.header("cache-status").unwrap().as_str(), hit.body()), ("post-cache; hit; ttl=50", same.body.clone()));
    // A changed answer is written whole, under a new generation.
    let changed = large(20_000, 8, "max-age=60");
    let sets = store.sets.get();
    run(&cfg, NOW + 41, request("POST", &[JSON, ("cache-control", "no-cache")], BODY), &store, &changed);
    assert_eq!(store.sets.get() - sets, 5, "a head and 4 segments");
    let hit = run(&cfg, NOW + 42, request("POST", &[JSON], BODY), &store, &changed);
    assert_eq!(hit.body(), changed.body);
}
