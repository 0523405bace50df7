//! Indexes per tag and per URL: purges read them instead of listing the
//! store, and writers and purges that race over one index find out.

use super::*;
use super::stale::failing;
use crate::cache::index::Index;
use crate::cache::key::{entry_suffix, is_entry_key, tag_index_key, uri_index_key};

const TOKEN: &str = "0123456789abcdef-purge-token";

fn at(path: &str, method: &str, body: &[u8]) -> ClientRequest<Chunks> {
    let mut req = request(method, &[], body);
    req.path_with_query = path.into();
    req
}

fn tagged(tags: &str) -> FakeOrigin {
    let mut o = origin("max-age=60");
    o.headers.push(("surrogate-key".into(), tags.as_bytes().to_vec()));
    o
}

fn purge(cfg: &Config, store: &MemoryStore, body: &str, runtime: &FakeRuntime) -> String {
    let auth = format!("Bearer {TOKEN}");
    let mut req = request("POST", &[("authorization", auth.as_str())], body.as_bytes());
    req.path_with_query = "/.well-known/post-cache/purge".into();
    String::from_utf8(run_with(cfg, NOW, req, store, &failing(599), runtime).body()).unwrap()
}

fn index(store: &MemoryStore, key: &str) -> Index {
    Index::decode(&store.entries.borrow()[key])
}

fn entries(store: &MemoryStore) -> Vec<String> {
    let mut keys: Vec<String> = store.entries.borrow().keys().filter(|k| is_entry_key(k)).cloned().collect();
    keys.sort();
    keys
}

fn status(answer: &Captured) -> String {
    answer.header("cache-status").unwrap()
}

#[test]
fn a_purge_by_tag_or_url_reads_indexes_and_never_lists_the_store() {
    let cfg = config(&[("purge_token", TOKEN), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    for (path, body, tags) in [("/a", "1", "red"), ("/a", "2", "blue"), ("/b", "1", "red"), ("/c", "1", "green")] {
        run(&cfg, NOW, at(path, "POST", body.as_bytes()), &store, &tagged(tags));
    }
    let runtime = FakeRuntime::default();
    assert_eq!(purge(&cfg, &store, r#"{"tags":["red"]}"#, &runtime), r#"{"purged":2,"soft":false}"#);
    assert_eq!(purge(&cfg, &store, r#"{"url":"/c"}"#, &runtime), r#"{"purged":1,"soft":false}"#);
    assert_eq!(store.listings.get(), 0, "no get-keys");
    assert_eq!(status(&run(&cfg, NOW, at("/a", "POST", b"2"), &store, &tagged("blue"))), "post-cache; hit; ttl=60");
    for (path, body) in [("/a", "1"), ("/b", "1"), ("/c", "1")] {
        assert_eq!(status(&run(&cfg, NOW, at(path, "POST", body.as_bytes()), &store, &tagged("x"))), "post-cache; fwd=uri-miss; detail=storing", "{path}");
    }
    assert_eq!(store.listings.get(), 0);
}

#[test]
fn a_put_invalidates_through_its_urls_index_without_listing_the_store() {
    let cfg = config(&[("invalidate_on_unsafe", "true"), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    for (path, body) in [("/a", "1"), ("/a?q=2", "2"), ("/b", "1")] {
        run(&cfg, NOW, at(path, "POST", body.as_bytes()), &store, &origin("max-age=60"));
    }
    run(&cfg, NOW, at("/a", "PUT", b"x"), &store, &origin("no-store"));
    assert_eq!(entries(&store).len(), 1, "both entries of /a went, /b stays");
    assert_eq!(store.listings.get(), 0, "no get-keys");
    assert!(index(&store, &uri_index_key("edge.example", "/a")).lines.is_empty());
}

#[test]
fn a_writer_whose_index_line_was_lost_to_another_writer_adds_it_again() {
    let cfg = config(&[("sweep_every", "0")]);
    let store = MemoryStore::default();
    let red = tag_index_key("red");
    let runtime = FakeRuntime::default();
    let store_ref: *const MemoryStore = &store;
    let red_key = red.clone();
    *runtime.on_settle.borrow_mut() = Some(Box::new(move || {
        // Another writer read the index before this one wrote it and wrote
        // back what it read with its own line: this one's line is gone.
        // SAFETY: the store outlives the run, which is single-threaded.
        let store = unsafe { &*store_ref };
        let mut other = Index::decode(&store.entries.borrow()[&red_key]);
        other.lines = vec!["0".repeat(32) + ":" + &"0".repeat(16) + ":" + &"0".repeat(64)];
        store.entries.borrow_mut().insert(red_key.clone(), other.encode());
    }));
    run_with(&cfg, NOW, at("/a", "POST", b"1"), &store, &tagged("red"), &runtime);
    let entry = entries(&store).pop().expect("the entry stays");
    let lines = index(&store, &red).lines;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&entry_suffix(&entry).unwrap().to_string()), "added again");
}

#[test]
fn a_writer_that_finds_a_purge_ran_while_it_stored_deletes_its_own_entry() {
    let cfg = config(&[("sweep_every", "0")]);
    let store = MemoryStore::default();
    let runtime = FakeRuntime::default();
    let store_ref: *const MemoryStore = &store;
    let red = tag_index_key("red");
    *runtime.on_settle.borrow_mut() = Some(Box::new(move || {
        // A purge of red read the index before the entry's head was written,
        // deleted nothing of it, and wrote the index back in a new epoch.
        // SAFETY: the store outlives the run, which is single-threaded.
        let store = unsafe { &*store_ref };
        store.entries.borrow_mut().insert(red.clone(), Index::new(0xabcd, NOW).encode());
    }));
    let miss = run_with(&cfg, NOW, at("/a", "POST", b"1"), &store, &tagged("red"), &runtime);
    assert_eq!(status(&miss), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(runtime.settled.get(), 1);
    assert!(entries(&store).is_empty(), "a purge may have missed it: it goes");
}

#[test]
fn a_purge_whose_index_a_slow_writer_wrote_back_takes_that_writers_entry_too() {
    let cfg = config(&[("purge_token", TOKEN), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    let red = tag_index_key("red");
    run(&cfg, NOW, at("/a", "POST", b"1"), &store, &tagged("red"));
    let before_writer = store.entries.borrow()[&red].clone();
    // The slow writer: it read the index (above), stored its entry, and its
    // write-back of the index lands only after the purge wrote it.
    run(&cfg, NOW, at("/b", "POST", b"1"), &store, &tagged("red"));
    let written_back = store.entries.borrow()[&red].clone();
    store.entries.borrow_mut().insert(red.clone(), before_writer);
    let runtime = FakeRuntime::default();
    // Tokens are random in a real runtime: the purge's epoch is not the writers'.
    runtime.tokens.set(100);
    let store_ref: *const MemoryStore = &store;
    *runtime.on_settle.borrow_mut() = Some(Box::new(move || {
        // SAFETY: the store outlives the run, which is single-threaded.
        unsafe { &*store_ref }.entries.borrow_mut().insert(red.clone(), written_back.clone());
    }));
    // The answer counts what was purged before it; the second look, after it.
    assert_eq!(purge(&cfg, &store, r#"{"tags":["red"]}"#, &runtime), r#"{"purged":1,"soft":false}"#);
    assert_eq!(runtime.settled.get(), 1);
    assert!(entries(&store).is_empty(), "the slow writer's entry went too: {:?}", entries(&store));
}

#[test]
fn a_full_tag_index_falls_back_to_markers_and_a_listing_and_then_starts_again() {
    let cfg = config(&[("purge_token", TOKEN), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    let n = crate::cache::index::MAX_LINES + 3;
    for i in 0..n {
        run(&cfg, NOW, at("/a", "POST", i.to_string().as_bytes()), &store, &tagged("red"));
    }
    let red = tag_index_key("red");
    assert!(index(&store, &red).full);
    let markers = store.entries.borrow().keys().filter(|k| k.contains(":tag:")).count();
    assert_eq!(markers, 3, "one marker for each entry past the bound");
    let runtime = FakeRuntime::default();
    assert_eq!(purge(&cfg, &store, r#"{"tags":["red"]}"#, &runtime), format!(r#"{{"purged":{n},"soft":false}}"#));
    assert_eq!(store.listings.get(), 1, "the listing for the markers");
    assert!(entries(&store).is_empty());
    assert_eq!(index(&store, &red), Index::new(index(&store, &red).epoch, NOW), "open and empty again");
    run(&cfg, NOW, at("/a", "POST", b"again"), &store, &tagged("red"));
    assert_eq!(index(&store, &red).lines.len(), 1);
}

#[test]
fn an_operators_purge_lists_the_store_for_a_url_whose_index_is_gone_and_an_invalidation_does_not() {
    let cfg = config(&[("purge_token", TOKEN), ("invalidate_on_unsafe", "true"), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, at("/a", "POST", b"1"), &store, &origin("max-age=60"));
    // A store that evicts keys lost the URL's index.
    store.entries.borrow_mut().remove(&uri_index_key("edge.example", "/a"));
    run(&cfg, NOW, at("/a", "PUT", b"x"), &store, &origin("no-store"));
    assert_eq!((entries(&store).len(), store.listings.get()), (1, 0), "an invalidation reads the index alone");
    assert_eq!(purge(&cfg, &store, r#"{"url":"/a"}"#, &FakeRuntime::default()), r#"{"purged":1,"soft":false}"#);
    assert_eq!((entries(&store).len(), store.listings.get()), (0, 1), "the operator's purge listed the store");
}

#[test]
fn only_a_writer_that_wrote_an_index_waits_to_check_it_after_the_response() {
    let cfg = config(&[("sweep_every", "0")]);
    let store = MemoryStore::default();
    let first = FakeRuntime::default();
    run_with(&cfg, NOW, at("/a", "POST", b"1"), &store, &tagged("red"), &first);
    assert_eq!(first.settled.get(), 1, "a new entry's lines were written");
    let refresh = FakeRuntime::default();
    let sets = store.index_sets.get();
    let again = run_with(&cfg, NOW + 61, at("/a", "POST", b"1"), &store, &tagged("red"), &refresh);
    assert_eq!(status(&again), "post-cache; fwd=stale; detail=storing");
    assert_eq!((store.index_sets.get() - sets, refresh.settled.get()), (0, 0), "its lines were there: nothing written, nothing to check");
}

#[test]
fn a_purge_takes_at_most_its_bound_from_indexes_and_says_to_continue() {
    let cfg = config(&[("purge_token", TOKEN), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    let bound = crate::proxy::admin::MAX_INDEXED_ENTRIES;
    for i in 0..bound + 5 {
        run(&cfg, NOW, at("/a", "POST", i.to_string().as_bytes()), &store, &tagged("red"));
    }
    assert!(!index(&store, &tag_index_key("red")).full);
    let runtime = FakeRuntime::default();
    let first = purge(&cfg, &store, r#"{"tags":["red"]}"#, &runtime);
    assert_eq!(first, format!(r#"{{"purged":{bound},"soft":false,"continue":""}}"#));
    assert_eq!(index(&store, &tag_index_key("red")).lines.len(), 5, "the rest stay in the index");
    assert_eq!(purge(&cfg, &store, r#"{"tags":["red"],"continue":""}"#, &runtime), r#"{"purged":5,"soft":false}"#);
    assert!(entries(&store).is_empty());
    assert_eq!(store.listings.get(), 0);
}

#[test]
fn an_index_past_a_purges_bound_is_left_unread_and_unwritten_for_the_next_request() {
    let cfg = config(&[("purge_token", TOKEN), ("sweep_every", "0")]);
    let store = MemoryStore::default();
    let bound = crate::proxy::admin::MAX_INDEXED_ENTRIES;
    for i in 0..bound {
        run(&cfg, NOW, at("/a", "POST", i.to_string().as_bytes()), &store, &tagged("red"));
    }
    run(&cfg, NOW, at("/b", "POST", b"1"), &store, &tagged("blue"));
    let blue_before = store.entries.borrow()[&tag_index_key("blue")].clone();
    let runtime = FakeRuntime::default();
    runtime.tokens.set(100);
    let first = purge(&cfg, &store, r#"{"tags":["red","blue"]}"#, &runtime);
    assert_eq!(first, format!(r#"{{"purged":{bound},"soft":false,"continue":""}}"#));
    assert_eq!(store.entries.borrow()[&tag_index_key("blue")], blue_before, "blue's index was not rewritten");
    assert_eq!(purge(&cfg, &store, r#"{"tags":["red","blue"],"continue":""}"#, &runtime), r#"{"purged":1,"soft":false}"#);
    assert!(entries(&store).is_empty());
}
