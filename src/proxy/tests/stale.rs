//! Stale serving, revalidation, targeted cache control and collapsed misses over
//! the in-memory fakes.

use super::*;

fn status_of(answer: &Captured) -> String {
    answer.header("cache-status").unwrap()
}

fn only_value(store: &MemoryStore) -> Vec<u8> {
    let keys = store.cache_keys();
    assert_eq!(keys.len(), 1, "one value in the store besides its URL's index");
    store.entries.borrow()[&keys[0]].clone()
}

#[test]
fn a_stale_hit_inside_its_window_answers_at_once_then_refreshes_the_record() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let first = origin("max-age=60, stale-while-revalidate=30");
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &first);
    let mut newer = origin("max-age=60, stale-while-revalidate=30");
    newer.body = b"{\"answer\":43}".to_vec();
    let runtime = FakeRuntime::default();
    let sets_before = store.sets.get();
    let stale = run_with(&cfg, NOW + 70, request("POST", &[], b"q"), &store, &newer, &runtime);
    assert_eq!(status_of(&stale), "post-cache; hit; ttl=-10");
    assert_eq!(stale.header("age").unwrap(), "70");
    assert_eq!(stale.body(), b"{\"answer\":42}", "the stale body answers");
    assert!(stale.finished());
    // After the answer: one mark write, a settle, a read back, one fetch, one record write.
    assert_eq!(runtime.slept_ms.borrow().as_slice(), [crate::proxy::stale::SETTLE_MS]);
    assert_eq!(newer.calls.borrow().len(), 1);
    assert_eq!(store.sets.get() - sets_before, 2);
    let rec_bytes = only_value(&store);
    let rec = crate::cache::record::decode(&rec_bytes).unwrap();
    assert_eq!((rec.body, rec.mark, rec.meta.fresh_until), (&b"{\"answer\":43}"[..], None, NOW + 130));
    assert_eq!(status_of(&run(&cfg, NOW + 71, request("POST", &[], b"q"), &store, &newer)), "post-cache; hit; ttl=59");
}

#[test]
fn a_stale_hit_whose_record_carries_a_live_mark_leaves_the_refresh_to_its_writer() {
    let (cfg, store) = (config(&[("stale_while_revalidate", "30")]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let key = store.cache_keys()[0].clone();
    let marked = crate::cache::record::with_mark(&only_value(&store), Some(crate::cache::mark::Mark { until: NOW + 80, token: 7 })).unwrap();
    store.entries.borrow_mut().insert(key, marked);
    let (sets, later) = (store.sets.get(), origin("max-age=60"));
    let stale = run(&cfg, NOW + 65, request("POST", &[], b"q"), &store, &later);
    assert_eq!(status_of(&stale), "post-cache; hit; ttl=-5");
    assert_eq!((later.calls.borrow().len(), store.sets.get()), (0, sets), "no refresh, no write");
}

#[test]
fn a_refresh_that_loses_the_mark_race_does_not_reach_the_origin() {
    let (cfg, store) = (config(&[("stale_while_revalidate", "30")]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let key = store.cache_keys()[0].clone();
    let runtime = FakeRuntime::default();
    // While this request lets marks settle, another request's mark replaces its own.
    let (store_ref, rival_key) = (&store as *const MemoryStore, key.clone());
    *runtime.on_sleep.borrow_mut() = Some(Box::new(move |_| {
        // SAFETY: the store outlives the run, which is single-threaded.
        let store = unsafe { &*store_ref };
        let current = store.entries.borrow()[&rival_key].clone();
        let rival = crate::cache::mark::Mark { until: NOW + 90, token: 99 };
        let theirs = crate::cache::record::with_mark(&current, Some(rival)).unwrap();
        store.entries.borrow_mut().insert(rival_key.clone(), theirs);
    }));
    let later = origin("max-age=60");
    let stale = run_with(&cfg, NOW + 61, request("POST", &[], b"q"), &store, &later, &runtime);
    assert_eq!(status_of(&stale), "post-cache; hit; ttl=-1");
    assert_eq!(later.calls.borrow().len(), 0, "the rival refreshes, not this request");
}

pub(super) fn failing(status: u16) -> FakeOrigin {
    let mut o = origin("no-store");
    o.status = status;
    o.body = b"origin down".to_vec();
    o
}

#[test]
fn stale_if_error_answers_the_stale_record_while_its_window_lasts_and_the_error_after() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60, stale-if-error=300"));
    for status in [500, 502, 503, 504] {
        let answer = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &failing(status));
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body(), b"{\"answer\":42}");
        let want = format!("post-cache; fwd=stale; fwd-status={status}; ttl=-40; detail=stale-if-error");
        assert_eq!(status_of(&answer), want);
    }
    for error in [OriginError::Timeout("connect".into()), OriginError::Unreachable("refused".into())] {
        let mut down = origin("max-age=60");
        down.error = Some(error);
        let answer = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &down);
        assert_eq!((answer.status(), status_of(&answer).as_str()), (200, "post-cache; fwd=stale; ttl=-40; detail=stale-if-error"));
    }
    // Past the window the error goes through, and the record stays for clients
    // whose own stale-if-error reaches further.
    let late = run(&cfg, NOW + 361, request("POST", &[], b"q"), &store, &failing(503));
    // (A 5xx is judged like any status now: this one says no-store.)
    assert_eq!((late.status(), status_of(&late).as_str()), (503, "post-cache; fwd=stale; detail=no-store"));
    let patient = run(&cfg, NOW + 361, request("POST", &[("cache-control", "stale-if-error=600")], b"q"), &store, &failing(503));
    assert_eq!(patient.status(), 200);
    // A 404 is an answer, not an error: it is relayed, and as it may not be
    // stored, the outdated record goes.
    let not_found = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &failing(404));
    assert_eq!(not_found.status(), 404);
    assert!(store.cache_keys().is_empty());
}

#[test]
fn must_revalidate_gets_the_error_whatever_the_variables_say() {
    let cfg = config(&[("stale_if_error", "3600"), ("stale_while_revalidate", "3600")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60, must-revalidate"));
    let answer = run(&cfg, NOW + 61, request("POST", &[("cache-control", "max-stale")], b"q"), &store, &failing(503));
    assert_eq!((answer.status(), status_of(&answer).as_str()), (503, "post-cache; fwd=stale; detail=no-store"));
}

#[test]
fn a_client_refusing_a_fresh_record_still_gets_it_when_the_origin_fails() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let answer = run(&cfg, NOW + 30, request("POST", &[("cache-control", "min-fresh=40")], b"q"), &store, &failing(502));
    assert_eq!(status_of(&answer), "post-cache; fwd=request; fwd-status=502; ttl=30; detail=stale-if-error");
}

fn with_validators(cache_control: &str) -> FakeOrigin {
    let mut o = origin(cache_control);
    o.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    o.headers.push(("last-modified".into(), b"Tue, 14 Nov 2023 22:00:00 GMT".to_vec()));
    o
}

#[test]
fn a_304_refreshes_the_stored_headers_and_freshness_and_answers_the_stored_body() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("QUERY", &[], b"q"), &store, &with_validators("max-age=60"));
    let mut unchanged = origin("max-age=120");
    unchanged.status = 304;
    unchanged.body = Vec::new();
    unchanged.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    unchanged.headers.push(("content-length".into(), b"999".to_vec()));
    unchanged.headers.push(("set-cookie".into(), b"sid=1".to_vec()));
    unchanged.headers.push(("x-new".into(), b"yes".to_vec()));
    let answer = run(&cfg, NOW + 100, request("QUERY", &[], b"q"), &store, &unchanged);
    let (_, _, sent, _) = unchanged.calls.borrow()[0].clone();
    assert_eq!(crate::http::headers::values(&sent, "if-none-match"), [&b"\"v1\""[..]]);
    assert_eq!(crate::http::headers::values(&sent, "if-modified-since").len(), 1);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body(), b"{\"answer\":42}");
    assert_eq!(status_of(&answer), "post-cache; fwd=stale; fwd-status=304; stored");
    assert_eq!(answer.header("content-length").unwrap(), "13", "the 304 never changes the length");
    assert_eq!(answer.header("set-cookie").as_deref(), Some("sid=1"), "the client that asked gets its cookie");
    assert_eq!(answer.header("x-new").unwrap(), "yes");
    let rec_bytes = only_value(&store);
    let rec = crate::cache::record::decode(&rec_bytes).unwrap();
    assert!(!rec.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("set-cookie")), "but the record keeps none");
    assert_eq!(rec.meta.fresh_until, NOW + 220);
    assert!(rec.headers.iter().any(|(n, v)| *n == "cache-control" && *v == b"max-age=120"));
    assert!(!rec.headers.iter().any(|(n, v)| *n == "cache-control" && *v == b"max-age=60"));
    let hit = run(&cfg, NOW + 110, request("QUERY", &[], b"q"), &store, &unchanged);
    assert_eq!((status_of(&hit).as_str(), hit.body().as_slice()), ("post-cache; hit; ttl=110", &b"{\"answer\":42}"[..]));
    assert!(hit.header("set-cookie").is_none(), "nor does the next client");
}

#[test]
fn a_post_is_refetched_without_validators_since_its_conditionals_mean_412() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &with_validators("max-age=60"));
    let again = with_validators("max-age=60");
    run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &again);
    assert!(!crate::http::headers::has(&again.calls.borrow()[0].2, "if-none-match"));
}

#[test]
fn a_hit_matching_the_clients_validator_is_answered_304_for_query_but_a_conditional_post_is_forwarded() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let o = with_validators("max-age=60");
    run(&cfg, NOW, request("QUERY", &[], b"q"), &store, &o);
    let not_modified = run(&cfg, NOW + 1, request("QUERY", &[("if-none-match", "W/\"v1\", \"other\"")], b"q"), &store, &o);
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.body().is_empty());
    assert_eq!(not_modified.header("etag").unwrap(), "\"v1\"");
    assert!(not_modified.header("content-length").is_none() && not_modified.header("x-multi").is_none());
    assert_eq!(status_of(&not_modified), "post-cache; hit; ttl=59");
    let changed = run(&cfg, NOW + 1, request("QUERY", &[("if-none-match", "\"v0\"")], b"q"), &store, &o);
    assert_eq!(changed.status(), 200);
    let since = run(&cfg, NOW + 1, request("QUERY", &[("if-modified-since", "Tue, 14 Nov 2023 22:00:00 GMT")], b"q"), &store, &o);
    assert_eq!(since.status(), 304);
    let post = run(&cfg, NOW + 1, request("POST", &[("if-none-match", "\"v1\"")], b"q"), &store, &o);
    assert_eq!(status_of(&post), "post-cache; fwd=bypass; detail=conditional");
    assert_eq!(o.calls.borrow().len(), 2);
}

#[test]
fn cdn_cache_control_governs_storage_and_is_neither_relayed_nor_replayed() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let mut o = origin("no-store");
    o.headers.push(("CDN-Cache-Control".into(), b"max-age=600".to_vec()));
    o.headers.push(("post-cache-control".into(), b"max-age=900".to_vec()));
    let miss = run(&cfg, NOW, request("POST", &[], b"q"), &store, &o);
    assert_eq!(status_of(&miss), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(miss.header("cache-control").unwrap(), "no-store", "browsers still get Cache-Control");
    let hit = run(&cfg, NOW + 800, request("POST", &[], b"q"), &store, &o);
    assert_eq!(status_of(&hit), "post-cache; hit; ttl=100");
    for answer in [&miss, &hit] {
        let headers = answer.0.borrow().as_ref().unwrap().1.clone();
        assert!(!headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("cdn-cache-control") || n == "post-cache-control"));
    }
    // Passed through around the cache, the targeted fields stay here too.
    let bypass = run(&cfg, NOW, request("GET", &[], b""), &store, &o);
    assert!(bypass.header("CDN-Cache-Control").is_none());
}

fn the_key(cfg: &Config, body: &[u8]) -> String {
    let store = MemoryStore::default();
    run(cfg, NOW, request("POST", &[], body), &store, &origin("max-age=60"));
    let key = store.cache_keys()[0].clone();
    key
}

#[test]
fn a_cold_miss_leads_with_a_mark_and_replaces_it_with_the_record() {
    let (cfg, store) = (config(&[("collapse_cold_misses", "true")]), MemoryStore::default());
    let o = origin("max-age=60");
    let miss = run(&cfg, NOW, request("POST", &[], b"q"), &store, &o);
    assert_eq!(status_of(&miss), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(store.sets.get(), 2, "the mark, then the record");
    assert!(crate::cache::record::decode(&only_value(&store)).is_ok());
    let off = config(&[("collapse_wait_ms", "0")]);
    let quiet = MemoryStore::default();
    run(&off, NOW, request("POST", &[], b"q"), &quiet, &o);
    assert_eq!(quiet.sets.get(), 1, "collapsing off: the record alone");
}

#[test]
fn a_leader_that_stores_nothing_removes_its_mark() {
    let (cfg, store) = (config(&[("collapse_cold_misses", "true")]), MemoryStore::default());
    let failed = run(&cfg, NOW, request("POST", &[], b"q"), &store, &failing(503));
    assert_eq!(failed.status(), 503);
    let mut down = origin("max-age=60");
    down.error = Some(OriginError::Unreachable("refused".into()));
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &down);
    assert!(store.cache_keys().is_empty(), "no mark left behind to hold others up");
}

#[test]
fn a_follower_answers_from_the_record_its_leader_stores() {
    let cfg = config(&[]);
    let key = the_key(&cfg, b"q");
    let store = MemoryStore::default();
    store.entries.borrow_mut().insert(key.clone(), crate::cache::mark::Mark { until: NOW + 2, token: 1 }.encode());
    // The leader's record lands during the follower's second poll interval.
    let leader_store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[], b"q"), &leader_store, &origin("max-age=60"));
    let record = only_value(&leader_store);
    let runtime = FakeRuntime::default();
    let store_ref = &store as *const MemoryStore;
    *runtime.on_sleep.borrow_mut() = Some(Box::new(move |n| {
        if n == 2 {
            // SAFETY: the store outlives the run, which is single-threaded.
            unsafe { &*store_ref }.entries.borrow_mut().insert(key.clone(), record.clone());
        }
    }));
    let o = origin("max-age=60");
    let follower = run_with(&cfg, NOW, request("POST", &[], b"q"), &store, &o, &runtime);
    assert_eq!(status_of(&follower), "post-cache; hit; ttl=60; collapsed");
    assert_eq!(follower.body(), b"{\"answer\":42}");
    assert_eq!(o.calls.borrow().len(), 0);
    assert_eq!(runtime.slept_ms.borrow().as_slice(), [10, 20]);
}

#[test]
fn a_follower_goes_to_the_origin_itself_once_the_wait_cap_passes() {
    let cfg = config(&[("collapse_wait_ms", "250")]);
    let key = the_key(&cfg, b"q");
    let store = MemoryStore::default();
    store.entries.borrow_mut().insert(key, crate::cache::mark::Mark { until: NOW + 2, token: 1 }.encode());
    let (runtime, o) = (FakeRuntime::default(), origin("max-age=60"));
    let follower = run_with(&cfg, NOW, request("POST", &[], b"q"), &store, &o, &runtime);
    assert_eq!(runtime.slept_ms.borrow().as_slice(), [10, 20, 40, 80, 100], "backoff up to the cap, no further");
    assert_eq!(status_of(&follower), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(o.calls.borrow().len(), 1);
}

#[test]
fn an_expired_mark_holds_nobody() {
    let cfg = config(&[]);
    let key = the_key(&cfg, b"q");
    let store = MemoryStore::default();
    store.entries.borrow_mut().insert(key, crate::cache::mark::Mark { until: NOW, token: 1 }.encode());
    let runtime = FakeRuntime::default();
    let answer = run_with(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"), &runtime);
    assert_eq!(status_of(&answer), "post-cache; fwd=uri-miss; detail=storing");
    assert!(runtime.slept_ms.borrow().is_empty());
}

#[test]
fn an_expired_record_carries_its_refetching_leaders_mark_until_the_new_record_replaces_it() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let sets = store.sets.get();
    let o = origin("max-age=60");
    let answer = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &o);
    assert_eq!(status_of(&answer), "post-cache; fwd=stale; detail=storing");
    assert_eq!(store.sets.get() - sets, 2, "the marked expired record, then the new one");
    let rec_bytes = only_value(&store);
    let rec = crate::cache::record::decode(&rec_bytes).unwrap();
    assert_eq!((rec.mark, rec.meta.fresh_until), (None, NOW + 160));
    // A request that finds the expired record marked waits for the leader.
    let key = store.cache_keys()[0].clone();
    let marked = crate::cache::record::with_mark(&rec_bytes, Some(crate::cache::mark::Mark { until: NOW + 200, token: 3 })).unwrap();
    store.entries.borrow_mut().insert(key, marked);
    let runtime = FakeRuntime::default();
    let waited = run_with(&cfg, NOW + 190, request("POST", &[], b"q"), &store, &o, &runtime);
    assert_eq!(runtime.slept_ms.borrow().iter().sum::<u64>(), 300, "waited out the cap for a leader that never stored");
    assert_eq!(status_of(&waited), "post-cache; fwd=stale; detail=storing");
}

#[test]
fn a_leader_refetching_an_expired_record_puts_it_back_unmarked_when_the_origin_fails() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let before = only_value(&store);
    let failed = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &failing(503));
    assert_eq!(failed.status(), 503);
    assert_eq!(only_value(&store), before, "the record as it was, without the mark");
}

#[test]
fn a_client_refusing_a_fresh_record_does_not_mark_it() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60"));
    let sets = store.sets.get();
    let answer = run(&cfg, NOW + 30, request("POST", &[("cache-control", "max-age=10")], b"q"), &store, &origin("max-age=60"));
    assert_eq!(status_of(&answer), "post-cache; fwd=request; detail=storing");
    assert_eq!(store.sets.get() - sets, 1, "the new record only");
}
