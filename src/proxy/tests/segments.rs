//! Entries larger than one stored value: segmented writes, streamed replays,
//! broken segments and the segments of replaced entries.

use super::*;

/// Values of at most 4 KiB, so a 20 KB answer takes a head and 4–5 segments.
fn small_values(extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![("max_value_bytes", "4096")];
    vars.extend_from_slice(extra);
    config(&vars)
}

fn large(len: usize, seed: u8) -> FakeOrigin {
    let mut origin = origin("max-age=60");
    origin.body = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    origin
}

const BODY: &[u8] = b"{\"query\":\"{ list }\"}";
const JSON: (&str, &str) = ("content-type", "application/json");

fn segment_keys(store: &MemoryStore) -> Vec<String> {
    let mut keys: Vec<String> = store.entries.borrow().keys().filter(|k| !crate::cache::key::is_entry_key(k) && !crate::cache::key::is_index_key(k)).cloned().collect();
    keys.sort();
    keys
}

fn entry_key(store: &MemoryStore) -> String {
    store.entries.borrow().keys().find(|k| crate::cache::key::is_entry_key(k)).cloned().expect("an entry")
}

#[test]
fn an_answer_larger_than_one_value_is_stored_in_segments_and_replayed_byte_identical() {
    let (cfg, store, origin) = (small_values(&[]), MemoryStore::default(), large(20_000, 1));
    let miss = run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &origin);
    assert_eq!(miss.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(miss.body(), origin.body);
    assert!(store.entries.borrow().values().all(|v| v.len() <= 4096), "every value under the cap");
    let segments = segment_keys(&store);
    // A head with ~3.7 KB of the body, then 4 values of 4,096 bytes.
    assert_eq!(segments.len(), 4, "{segments:?}");
    assert!(segments.iter().all(|k| k.starts_with(&format!("{}:", entry_key(&store)))));
    let gets = store.gets.get();
    let hit = run(&cfg, NOW + 5, request("POST", &[JSON], BODY), &store, &origin);
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=55");
    assert_eq!(hit.body(), origin.body);
    assert!(hit.finished());
    assert_eq!(hit.header("content-length").unwrap(), "20000");
    assert_eq!(store.gets.get() - gets, 1 + 4, "the head, then each segment once");
    assert_eq!(origin.calls.borrow().len(), 1);
}

/// Flips a bit of segment `index`, or deletes it.
fn damage_segment(store: &MemoryStore, index: u32, corrupt: bool) {
    let key = segment_keys(store).into_iter().find(|k| k.ends_with(&format!(":{index}"))).unwrap();
    if corrupt {
        store.entries.borrow_mut().get_mut(&key).unwrap()[100] ^= 1;
    } else {
        store.entries.borrow_mut().remove(&key);
    }
}

#[test]
fn a_missing_or_corrupt_first_segment_is_a_miss_that_deletes_the_entry_and_fetches_again() {
    for corrupt in [false, true] {
        let (cfg, store, origin) = (small_values(&[]), MemoryStore::default(), large(20_000, 2));
        run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &origin);
        damage_segment(&store, 0, corrupt);
        let again = run(&cfg, NOW + 5, request("POST", &[JSON], BODY), &store, &origin);
        assert_eq!(again.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing", "corrupt: {corrupt}");
        assert_eq!(again.body(), origin.body);
        assert_eq!(origin.calls.borrow().len(), 2);
        // The re-fetch stored a clean entry, and the broken one left nothing.
        assert_eq!(segment_keys(&store).len(), 4);
        let hit = run(&cfg, NOW + 6, request("POST", &[JSON], BODY), &store, &origin);
        assert_eq!((hit.body(), hit.finished()), (origin.body.clone(), true));
    }
}

#[test]
fn a_segment_lost_mid_body_aborts_the_response_and_deletes_the_entry() {
    for corrupt in [false, true] {
        let (cfg, store, origin) = (small_values(&[]), MemoryStore::default(), large(20_000, 3));
        run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &origin);
        damage_segment(&store, 2, corrupt);
        let broken = run(&cfg, NOW + 5, request("POST", &[JSON], BODY), &store, &origin);
        assert_eq!(broken.header("content-length").unwrap(), "20000");
        assert!(!broken.finished(), "aborted, not passed off as complete");
        assert!(broken.body().len() < 20_000);
        assert_eq!(broken.body()[..], origin.body[..broken.body().len()], "what was sent is the right prefix");
        assert!(store.cache_keys().is_empty(), "head and segments deleted: {:?}", store.entries.borrow().keys());
        let refetched = run(&cfg, NOW + 6, request("POST", &[JSON], BODY), &store, &origin);
        assert_eq!((refetched.body(), refetched.finished()), (origin.body.clone(), true));
        assert_eq!(origin.calls.borrow().len(), 2);
    }
}

#[test]
fn a_failed_segment_write_writes_no_head_and_deletes_the_segments_written() {
    let (cfg, store, origin) = (small_values(&[("collapse_wait_ms", "0")]), MemoryStore::default(), large(20_000, 4));
    store.sets_before_failing.set(Some(3));
    let miss = run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &origin);
    assert_eq!(miss.body(), origin.body);
    assert!(store.cache_keys().is_empty(), "{:?}", store.entries.borrow().keys());
    store.sets_before_failing.set(None);
    let next = run(&cfg, NOW + 1, request("POST", &[JSON], BODY), &store, &origin);
    assert_eq!(next.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
}

#[test]
fn a_replaced_entry_leaves_no_segments_once_the_grace_has_passed() {
    // Leaked so that the sleep below can look at it.
    let store: &'static MemoryStore = Box::leak(Box::default());
    let cfg = small_values(&[]);
    run(&cfg, NOW, request("POST", &[JSON], BODY), store, &large(20_000, 5));
    let old = segment_keys(store);
    let runtime = FakeRuntime::default();
    runtime.tokens.set(100); // another generation than the first run's
    let old_still_there = Rc::new(RefCell::new(None));
    let (seen, keys) = (old_still_there.clone(), old.clone());
    *runtime.on_sleep.borrow_mut() = Some(Box::new(move |_| {
        // During the grace the old segments are still readable.
        *seen.borrow_mut() = Some(keys.iter().all(|k| store.entries.borrow().contains_key(k)));
    }));
    let newer = large(30_000, 6);
    let refreshed = run_with(&cfg, NOW + 120, request("POST", &[JSON], BODY), store, &newer, &runtime);
    assert_eq!(refreshed.body(), newer.body);
    assert!(runtime.slept_ms.borrow().contains(&crate::proxy::segments::GRACE_MS));
    assert_eq!(*old_still_there.borrow(), Some(true));
    let now = segment_keys(store);
    assert!(now.iter().all(|k| !old.contains(k)), "old segments deleted");
    let head = store.entries.borrow()[&entry_key(store)].clone();
    assert_eq!(now.len() as u32, crate::cache::record::segment_set(&head).unwrap().count, "the new entry's only: {now:?}");
    let hit = run(&cfg, NOW + 121, request("POST", &[JSON], BODY), store, &newer);
    assert_eq!(hit.body(), newer.body);
}

#[test]
fn an_entry_that_shrinks_to_one_value_deletes_its_old_segments() {
    let (cfg, store) = (small_values(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 7));
    run(&cfg, NOW + 120, request("POST", &[JSON], BODY), &store, &large(100, 8));
    assert!(segment_keys(&store).is_empty());
    assert_eq!(store.cache_keys().len(), 1);
}

#[test]
fn jsonrpc_ids_are_spliced_into_a_segmented_answer() {
    let cfg = small_values(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_getBlockByNumber")]);
    let store = MemoryStore::default();
    let filler = "ab".repeat(6_000);
    let answer = format!(r#"{{"jsonrpc":"2.0","result":{{"txs":"{filler}"}},"id":7}}"#);
    let origin = answering(&answer);
    let call = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_getBlockByNumber","params":["0x1",true]}}"#);
    let first = run(&cfg, NOW, request("POST", &[JSON], call("7").as_bytes()), &store, &origin);
    assert_eq!(first.body(), answer.as_bytes());
    assert!(!segment_keys(&store).is_empty(), "segmented");
    let second = run(&cfg, NOW + 1, request("POST", &[JSON], call("\"later\"").as_bytes()), &store, &origin);
    assert_eq!(second.header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    let expected = answer.replace(r#""id":7}"#, r#""id":"later"}"#);
    assert_eq!(String::from_utf8(second.body()).unwrap(), expected);
    assert_eq!(second.header("content-length").unwrap(), expected.len().to_string());
    assert_eq!(origin.calls.borrow().len(), 1);
}

#[test]
fn a_purge_of_one_request_deletes_its_segments_too() {
    let cfg = small_values(&[("purge_token", "an-admin-token-of-24-chars-or-more")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &large(20_000, 9));
    let mut stats = request("GET", &[("authorization", "Bearer an-admin-token-of-24-chars-or-more")], b"");
    stats.path_with_query = "/.well-known/post-cache/stats".into();
    let stats = String::from_utf8(run(&cfg, NOW + 1, stats, &store, &large(1, 0)).body()).unwrap();
    assert!(stats.starts_with(r#"{"entries":1,"tag_markers":0,"segments":4,"indexes":1,"other_keys":0,"store_keys":6,"#), "{stats}");
    // BODY in base64.
    let purge = r#"{"request":{"method":"POST","path":"/graphql","query":"x=1","headers":{"content-type":"application/json"},"body_base64":"eyJxdWVyeSI6InsgbGlzdCB9In0="}}"#;
    let mut req = request("POST", &[("authorization", "Bearer an-admin-token-of-24-chars-or-more")], purge.as_bytes());
    req.path_with_query = "/.well-known/post-cache/purge".into();
    let answer = run(&cfg, NOW + 1, req, &store, &large(1, 0));
    assert_eq!(answer.status(), 200, "{}", String::from_utf8_lossy(&answer.body()));
    assert_eq!(String::from_utf8(answer.body()).unwrap(), r#"{"purged":1,"soft":false}"#);
    assert!(store.cache_keys().is_empty(), "{:?}", store.entries.borrow().keys());
}

/// An origin answering 200 KB in 4 KB chunks, chunked (no length), that notes
/// whether the client already had the response's head when its body ended.
struct WatchedOrigin {
    client: Captured,
    head_before_end: Rc<std::cell::Cell<Option<bool>>>,
}

struct WatchedBody {
    left: usize,
    client: Captured,
    head_before_end: Rc<std::cell::Cell<Option<bool>>>,
}

impl BodySource for WatchedBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        if self.left == 0 {
            self.head_before_end.set(Some(self.client.0.borrow().is_some()));
            return Ok(None);
        }
        self.left -= 1;
        Ok(Some(vec![b'x'; 4096]))
    }
}

impl Origin for WatchedOrigin {
    type Body = WatchedBody;

    async fn send<S: BodySource>(&self, _: crate::origin::OriginRequest<'_>, _: OutboundBody<'_, S>) -> Result<OriginResponse<WatchedBody>, OriginError> {
        let headers = vec![("cache-control".into(), b"max-age=60".to_vec())];
        let body = WatchedBody { left: 50, client: self.client.clone(), head_before_end: self.head_before_end.clone() };
        Ok(OriginResponse { status: 200, headers, body })
    }
}

#[test]
fn a_large_answer_reaches_the_client_as_it_arrives_and_is_stored_once_complete() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let captured = Captured::default();
    let head_before_end = Rc::new(std::cell::Cell::new(None));
    let origin = WatchedOrigin { client: captured.clone(), head_before_end: head_before_end.clone() };
    futures::executor::block_on(handle(&cfg, NOW, request("POST", &[JSON], BODY), || Ok(&store), &origin, FakeClient(captured.clone()), &FakeRuntime::default()));
    assert_eq!(head_before_end.get(), Some(true), "the head went out before the origin's body ended");
    assert_eq!(captured.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(captured.header("content-length"), None, "the length was not known when the head went out");
    assert_eq!((captured.body().len(), captured.finished()), (200 * 1024, true));
    let hit = run(&cfg, NOW + 1, request("POST", &[JSON], BODY), &store, &large(1, 0));
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    assert_eq!(hit.body(), vec![b'x'; 200 * 1024]);
    assert_eq!(hit.header("content-length").unwrap(), "204800");
}

#[test]
fn a_small_answer_is_read_whole_before_its_head_goes_out() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let captured = Captured::default();
    let head_before_end = Rc::new(std::cell::Cell::new(None));
    let watched = WatchedOriginSmall(WatchedOrigin { client: captured.clone(), head_before_end: head_before_end.clone() });
    futures::executor::block_on(handle(&cfg, NOW, request("POST", &[JSON], BODY), || Ok(&store), &watched, FakeClient(captured.clone()), &FakeRuntime::default()));
    assert_eq!(head_before_end.get(), Some(false), "nothing went out before the whole answer was read");
    assert_eq!(captured.header("content-length").unwrap(), (8 * 4096).to_string());
}

/// [`WatchedOrigin`] answering 32 KB, under the read-ahead.
struct WatchedOriginSmall(WatchedOrigin);

impl Origin for WatchedOriginSmall {
    type Body = WatchedBody;

    async fn send<S: BodySource>(&self, r: crate::origin::OriginRequest<'_>, b: OutboundBody<'_, S>) -> Result<OriginResponse<WatchedBody>, OriginError> {
        let mut response = self.0.send(r, b).await?;
        response.body.left = 8;
        Ok(response)
    }
}

#[test]
fn a_304_rewrites_a_segmented_head_only_and_a_background_one_reads_no_segments() {
    let (cfg, store) = (small_values(&[]), MemoryStore::default());
    let mut first = large(20_000, 11);
    first.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    first.headers[1].1 = b"max-age=60, stale-while-revalidate=600".to_vec();
    run(&cfg, NOW, request("QUERY", &[JSON], BODY), &store, &first);
    let segments_before = segment_keys(&store);
    let mut unchanged = origin("max-age=120, stale-while-revalidate=600");
    unchanged.status = 304;
    unchanged.body = Vec::new();
    unchanged.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    // Stale: answered at once from the store, then refreshed in the background.
    let (gets, sets) = (store.gets.get(), store.sets.get());
    let stale = run(&cfg, NOW + 100, request("QUERY", &[JSON], BODY), &store, &unchanged);
    assert_eq!(stale.header("cache-status").unwrap(), "post-cache; hit; ttl=-40");
    assert_eq!(stale.body(), first.body);
    assert_eq!(unchanged.calls.borrow().len(), 1, "refreshed");
    let n = segments_before.len();
    // The key is read again before the mark and before the rewrite: neither
    // may land on an entry replaced or purged meanwhile.
    assert_eq!(store.gets.get() - gets, 1 + n + 3, "head, the client's segments, the key before the mark, the mark read back, the key before the rewrite: none for the 304");
    assert_eq!(store.sets.get() - sets, 2, "the mark, then the rewritten head");
    assert_eq!(segment_keys(&store), segments_before, "the segments are kept");
    let hit = run(&cfg, NOW + 110, request("QUERY", &[JSON], BODY), &store, &unchanged);
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=110");
    assert_eq!(hit.body(), first.body);
}

#[test]
fn a_segmented_entry_stands_in_for_a_failing_origin_and_is_kept() {
    let (cfg, store) = (small_values(&[]), MemoryStore::default());
    let mut first = large(20_000, 12);
    first.headers[1].1 = b"max-age=60, stale-if-error=600".to_vec();
    run(&cfg, NOW, request("POST", &[JSON], BODY), &store, &first);
    let keys_before = store.cache_keys().len();
    let down = super::stale::failing(503);
    let answer = run(&cfg, NOW + 100, request("POST", &[JSON], BODY), &store, &down);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=stale; fwd-status=503; ttl=-40; detail=stale-if-error");
    assert_eq!((answer.body(), answer.finished()), (first.body.clone(), true));
    assert_eq!(answer.header("content-length").unwrap(), "20000");
    assert_eq!(store.cache_keys().len(), keys_before, "head and segments kept for the next error");
}
