//! The sweep, the automatic step and a full store, over the in-memory fakes.

use super::*;
use super::stale::failing;
use crate::cache::key::{is_entry_key, is_segment_key, persisted_marker_key};

const TOKEN: &str = "0123456789abcdef-purge-token";

fn admin(cfg: &Config, now: u64, store: &MemoryStore, method: &str, endpoint: &str, body: &str) -> Captured {
    let bearer = format!("Bearer {TOKEN}");
    let mut req = request(method, &[("authorization", bearer.as_str())], body.as_bytes());
    req.path_with_query = format!("/.well-known/post-cache/{endpoint}");
    run(cfg, now, req, store, &failing(599))
}

fn at(path: &str, body: &[u8]) -> ClientRequest<Chunks> {
    let mut req = request("POST", &[], body);
    req.path_with_query = path.into();
    req
}

fn json(answer: &Captured) -> String {
    String::from_utf8(answer.body()).unwrap()
}

fn count(store: &MemoryStore, pick: impl Fn(&str) -> bool) -> usize {
    store.entries.borrow().keys().filter(|k| pick(k)).count()
}

fn tagged(cache_control: &str, tags: &str) -> FakeOrigin {
    let mut o = origin(cache_control);
    o.headers.push(("surrogate-key".into(), tags.as_bytes().to_vec()));
    o
}

/// No automatic step: what is in the store is what the requests left.
fn quiet(extra: &[(&str, &str)]) -> Config {
    let vars: Vec<(&str, &str)> = [("purge_token", TOKEN), ("sweep_every", "0")].into_iter().chain(extra.iter().copied()).collect();
    config(&vars)
}

#[test]
fn a_sweep_deletes_expired_entries_old_marks_earlier_schemes_and_index_lines_of_gone_entries() {
    let cfg = quiet(&[("stale_while_revalidate", "0")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, at("/a", b"short"), &store, &tagged("max-age=10", "red blue"));
    run(&cfg, NOW, at("/a", b"long"), &store, &tagged("max-age=1000", "red"));
    run(&cfg, NOW, at("/a", b"grace"), &store, &origin("max-age=10, stale-if-error=100"));
    let mark_key = "post-cache:v3:2f2fc8f94e7370f580da6daba5a31d3c:725a3e8448f6dcac:c7827273a98be7be093e63ed963a5ca5877dc02b0967ba3838ca528d2d802aca";
    let mark = crate::cache::mark::Mark { until: NOW + 10, token: 1 }.encode();
    store.entries.borrow_mut().insert(mark_key.into(), mark);
    store.entries.borrow_mut().insert("someone-else".into(), b"x".to_vec());
    let scheme_2 = "post-cache:v2:0e4a5f7d60727eb51504d7fa796aa33f:3eb1722f977c48fa:f79820be5f535b2b2d3a1a83a42b0a93378d61c148c18b4bb2430ee1ecb6747a";
    store.entries.borrow_mut().insert(scheme_2.into(), b"an entry of an earlier build".to_vec());
    assert_eq!(store.cache_keys().len(), 3 + 1 + 1 + 1, "entries, no markers: their tags are indexed");
    assert_eq!(store.index_keys().len(), 3, "red, blue and /a");

    let early = admin(&cfg, NOW + 5, &store, "POST", "sweep", "");
    assert_eq!(json(&early), r#"{"deleted":{"entries":0,"marks":0,"segments":0,"tag_markers":0,"persisted_markers":0,"indexes":0,"earlier_scheme":1}}"#);
    let answer = admin(&cfg, NOW + 20, &store, "POST", "sweep", "");
    assert_eq!(answer.status(), 200);
    assert_eq!(json(&answer), r#"{"deleted":{"entries":1,"marks":1,"segments":0,"tag_markers":0,"persisted_markers":0,"indexes":0,"earlier_scheme":0}}"#);
    // Left: the long entry, the one in its stale-if-error window, another app's key.
    assert_eq!(store.cache_keys().len(), 3, "{:?}", store.entries.borrow().keys());
    assert_eq!(store.index_keys().len(), 3, "indexes written lately are left alone");
    // Once the indexes have settled, the lines of gone entries go, and an index left empty.
    let settled = admin(&cfg, NOW + crate::cache::index::SETTLE_SECONDS, &store, "POST", "sweep", "");
    assert_eq!(json(&settled), r#"{"deleted":{"entries":0,"marks":0,"segments":0,"tag_markers":0,"persisted_markers":0,"indexes":1,"earlier_scheme":0}}"#);
    let lines = |key: &str| crate::cache::index::Index::decode(&store.entries.borrow()[key]).lines.len();
    assert!(!store.entries.borrow().contains_key(&crate::cache::key::tag_index_key("blue")), "blue named only the short entry");
    assert_eq!(lines(&crate::cache::key::tag_index_key("red")), 1, "red names the long entry alone");
    assert_eq!(lines(&crate::cache::key::uri_index_key("edge.example", "/a")), 2, "/a names the long and the grace entries");
    let long = run(&cfg, NOW + 20, at("/a", b"long"), &store, &origin("max-age=1000"));
    assert_eq!(long.header("cache-status").unwrap(), "post-cache; hit; ttl=980");
    assert!(store.entries.borrow().contains_key("someone-else"));
}

#[test]
fn a_sweep_stops_at_its_bound_and_continues_from_its_cursor() {
    let cfg = quiet(&[]);
    let store = MemoryStore::default();
    for i in 0..(crate::proxy::admin::MAX_OPERATIONS / 2 + 10) {
        run(&cfg, NOW, at("/a", i.to_string().as_bytes()), &store, &origin("max-age=1"));
    }
    let first = json(&admin(&cfg, NOW + 10, &store, "POST", "sweep", ""));
    let cursor = first.split(r#""continue":"#).nth(1).expect(&first).trim_end_matches('}').to_string();
    assert!(first.starts_with(r#"{"deleted":{"entries":500,"#), "{first}");
    let rest = json(&admin(&cfg, NOW + 10, &store, "POST", "sweep", &format!(r#"{{"continue":{cursor}}}"#)));
    assert_eq!(rest, r#"{"deleted":{"entries":10,"marks":0,"segments":0,"tag_markers":0,"persisted_markers":0,"indexes":0,"earlier_scheme":0}}"#);
    assert!(store.cache_keys().is_empty());
}

#[test]
fn the_sweep_needs_the_token_and_a_good_body() {
    let cfg = quiet(&[]);
    let store = MemoryStore::default();
    let mut req = request("POST", &[], b"");
    req.path_with_query = "/.well-known/post-cache/sweep".into();
    assert_eq!(run(&cfg, NOW, req, &store, &failing(599)).status(), 401);
    let bad = admin(&cfg, NOW, &store, "POST", "sweep", r#"{"continue":1}"#);
    assert_eq!((bad.status(), json(&bad).contains(r#""field":"continue""#)), (400, true));
    assert_eq!(admin(&cfg, NOW, &store, "GET", "sweep", "").status(), 405);
}

#[test]
fn segments_whose_head_is_gone_or_replaced_are_swept_after_the_grace() {
    let cfg = quiet(&[("max_value_bytes", "4096")]);
    let store = MemoryStore::default();
    let mut big = origin("max-age=1000");
    big.body = vec![b'x'; 20_000];
    run(&cfg, NOW, at("/big", b"1"), &store, &big);
    let segments = count(&store, is_segment_key);
    assert!(segments >= 4, "{segments}");
    // An orphan set from a replaced generation, and one whose head is gone.
    let head_key = store.entries.borrow().keys().find(|k| is_entry_key(k)).unwrap().clone();
    let orphan_of_replaced = crate::cache::key::segment_key(&head_key, 0xdead, 0);
    let headless = crate::cache::key::segment_key(&head_key.replace("/big", "x").replacen('0', "1", 1), 0xbeef, 0);
    store.entries.borrow_mut().insert(orphan_of_replaced.clone(), b"old".to_vec());
    store.entries.borrow_mut().insert(headless.clone(), b"lost".to_vec());
    let within_grace = json(&admin(&cfg, NOW + 1, &store, "POST", "sweep", ""));
    assert!(within_grace.contains(r#""segments":1,"#), "only the headless one: {within_grace}");
    let later = json(&admin(&cfg, NOW + 100, &store, "POST", "sweep", ""));
    assert!(later.contains(r#""segments":1,"#), "{later}");
    assert!(!store.entries.borrow().contains_key(&orphan_of_replaced));
    assert_eq!(count(&store, is_segment_key), segments, "the live entry's own segments stay");
    let hit = run(&cfg, NOW + 100, at("/big", b"1"), &store, &big);
    assert_eq!(hit.body().len(), 20_000);
    // Once it expires, the head and every segment go together, and the index
    // of its URL, which named it alone.
    let expired = json(&admin(&cfg, NOW + 2000, &store, "POST", "sweep", ""));
    assert_eq!(expired, format!(r#"{{"deleted":{{"entries":1,"marks":0,"segments":{segments},"tag_markers":0,"persisted_markers":0,"indexes":1,"earlier_scheme":0}}}}"#));
    assert!(store.cache_keys().is_empty());
}

#[test]
fn tag_markers_carry_their_entry_s_last_usable_moment_and_old_ones_are_judged_by_the_entry() {
    let cfg = quiet(&[]);
    let store = MemoryStore::default();
    // Markers are written for a tag whose index is full.
    let full = crate::cache::index::Index { epoch: 1, full: true, written: NOW - 100, lines: Vec::new() };
    store.entries.borrow_mut().insert(crate::cache::key::tag_index_key("red"), full.encode());
    run(&cfg, NOW, at("/a", b"1"), &store, &tagged("max-age=60, stale-while-revalidate=30", "red"));
    let marker = store.entries.borrow().keys().find(|k| k.contains(":tag:")).unwrap().clone();
    assert_eq!(store.entries.borrow()[&marker], format!("t:{}", NOW + 90).into_bytes());
    // A marker from before values carried a time: its live entry keeps it.
    store.entries.borrow_mut().insert(marker.clone(), b"t".to_vec());
    let gets = store.gets.get();
    assert!(json(&admin(&cfg, NOW + 10, &store, "POST", "sweep", "")).contains(r#""tag_markers":0,"#));
    assert!(store.entries.borrow().contains_key(&marker));
    assert!(store.gets.get() - gets >= 2, "the marker and its entry were read");
    // A marker whose entry was purged by URL goes without a read.
    let purge = admin(&cfg, NOW + 10, &store, "POST", "purge", r#"{"url":"/a"}"#);
    assert_eq!(purge.status(), 200);
    let gets = store.gets.get();
    assert!(json(&admin(&cfg, NOW + 10, &store, "POST", "sweep", "")).contains(r#""tag_markers":1,"#));
    assert_eq!(store.gets.get(), gets);
    assert!(store.cache_keys().is_empty());
}

#[test]
fn an_index_that_cannot_be_written_leaves_no_entry_a_purge_by_tag_would_miss() {
    let cfg = quiet(&[]);
    let store = MemoryStore::default();
    store.index_sets_fail.set(true);
    let origin = tagged("max-age=60", "red blue");
    let miss = run(&cfg, NOW, at("/a", b"1"), &store, &origin);
    assert_eq!(miss.status(), 200, "the client has its answer");
    assert_eq!(count(&store, is_entry_key), 0, "no head without its index lines");
    store.index_sets_fail.set(false);
    let purge = admin(&cfg, NOW, &store, "POST", "purge", r#"{"tags":["blue"]}"#);
    assert_eq!(purge.status(), 200);
    let after = run(&cfg, NOW + 1, at("/a", b"1"), &store, &origin);
    assert_ne!(after.header("cache-status").unwrap(), "post-cache; hit; ttl=59", "purged by tag, yet served");
}

#[test]
fn persisted_query_markers_carry_their_time_and_are_swept_after_the_bound() {
    let cfg = quiet(&[("persisted_query_max_age", "100")]);
    let store = MemoryStore::default();
    let (fresh, old, untimed) = (persisted_marker_key(&[1; 32]), persisted_marker_key(&[2; 32]), persisted_marker_key(&[3; 32]));
    for (key, value) in [(&fresh, crate::cache::sweep::persisted_marker_value(NOW)), (&old, crate::cache::sweep::persisted_marker_value(NOW - 100)), (&untimed, b"query".to_vec())] {
        store.entries.borrow_mut().insert(key.clone(), value);
    }
    assert!(json(&admin(&cfg, NOW, &store, "POST", "sweep", "")).contains(r#""persisted_markers":2,"#));
    assert_eq!(store.entries.borrow().keys().collect::<Vec<_>>(), [&fresh]);
}

#[test]
fn stats_count_dead_entries_and_orphans() {
    let cfg = quiet(&[]);
    let store = MemoryStore::default();
    run(&cfg, NOW, at("/a", b"1"), &store, &tagged("max-age=10", "red"));
    run(&cfg, NOW, at("/a", b"2"), &store, &tagged("max-age=100", "red"));
    store.entries.borrow_mut().insert("post-cache:v3:tag:0123456789abcdef0123456789abcdef:00000000000000000000000000000000:0000000000000000:0000000000000000000000000000000000000000000000000000000000000000".into(), b"t".to_vec());
    let stats = json(&admin(&cfg, NOW + 50, &store, "GET", "stats", ""));
    assert!(stats.contains(r#""dead_entries":1,"dead_marks":0,"orphan_segments":0,"orphan_tag_markers":1,"#), "{stats}");
    assert_eq!(store.cache_keys().len(), 3, "stats delete nothing");
}

#[test]
fn the_automatic_step_runs_after_stored_misses_and_keeps_an_expiring_store_small() {
    let cfg = config(&[("sweep_every", "4")]);
    let store = MemoryStore::default();
    let runtime = FakeRuntime::default();
    for i in 0..400u64 {
        // Each entry is usable for 5 s; requests come 1 s apart.
        run_with(&cfg, NOW + i, at("/a", i.to_string().as_bytes()), &store, &origin("max-age=5"), &runtime);
    }
    let entries = count(&store, is_entry_key);
    assert!(entries < 60, "{entries} entries of which at most 5 are live");
    let never = config(&[("sweep_every", "0")]);
    let unswept = MemoryStore::default();
    for i in 0..100u64 {
        run_with(&never, NOW + i, at("/a", i.to_string().as_bytes()), &unswept, &origin("max-age=5"), &runtime);
    }
    assert_eq!(count(&unswept, is_entry_key), 100);
}

#[test]
fn max_entries_evicts_the_entries_that_expire_first() {
    let cfg = config(&[("sweep_every", "1"), ("max_entries", "10")]);
    let store = MemoryStore::default();
    let runtime = FakeRuntime::default();
    for i in 0..30u64 {
        run_with(&cfg, NOW, at("/a", i.to_string().as_bytes()), &store, &origin(&format!("max-age={}", 1000 + i)), &runtime);
        assert!(count(&store, is_entry_key) <= 10);
    }
    let latest = run_with(&cfg, NOW, at("/a", b"29"), &store, &origin("max-age=1029"), &runtime);
    assert_eq!(latest.header("cache-status").unwrap(), "post-cache; hit; ttl=1029");
}

#[test]
fn a_full_store_gets_room_made_and_every_answer_stays_right() {
    let cfg = config(&[("sweep_every", "0")]);
    let store = CappedStore { inner: MemoryStore::default(), cap: 8 };
    let runtime = FakeRuntime::default();
    for i in 0..40u64 {
        let o = tagged("max-age=1000", "red");
        let mut answer_origin = o;
        answer_origin.body = format!("{{\"n\":{i}}}").into_bytes();
        let captured = Captured::default();
        futures::executor::block_on(handle(&cfg, NOW, at("/a", i.to_string().as_bytes()), || Ok(&store), &answer_origin, FakeClient(captured.clone()), &runtime));
        assert_eq!(captured.body(), format!("{{\"n\":{i}}}").into_bytes());
        assert!(store.inner.entries.borrow().len() <= 8);
    }
    // Room was made: the latest answers are stored again.
    assert!(count(&store.inner, is_entry_key) >= 2, "{:?}", store.inner.entries.borrow().keys());
}

/// A store that refuses to add a key past `cap` keys, as a hosted store's quota.
struct CappedStore {
    inner: MemoryStore,
    cap: usize,
}

impl crate::store::Store for &CappedStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (&self.inner).get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let entries = self.inner.entries.borrow();
        let full = !entries.contains_key(key) && entries.len() >= self.cap;
        drop(entries);
        if full {
            return Err(StoreError("set: key quota exceeded".into()));
        }
        (&self.inner).set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        (&self.inner).delete(key)
    }
    fn keys(&self) -> Result<Vec<String>, StoreError> {
        (&self.inner).keys()
    }
}
