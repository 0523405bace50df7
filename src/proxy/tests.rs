//! The flow over in-memory fakes: what reaches the store, the origin and the client.

use super::*;
use crate::body::BodySink;
use crate::config::Config;
use crate::store::memory::MemoryStore;
use crate::cache::record::RecordBuilder;
use sha2::Sha256;
use crate::origin::{OriginError, OriginRequest, OriginResponse, OutboundBody};
use std::cell::RefCell;
use std::rc::Rc;

struct Chunks(Vec<Vec<u8>>);

impl BodySource for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        Ok(if self.0.is_empty() { None } else { Some(self.0.remove(0)) })
    }
}

/// An origin that answers every request alike and counts them.
struct FakeOrigin {
    status: u16,
    headers: HeaderList,
    body: Vec<u8>,
    calls: RefCell<Vec<(String, String, HeaderList, Vec<u8>)>>,
    /// When set, every call fails with it instead of answering.
    error: Option<OriginError>,
}

impl Origin for FakeOrigin {
    type Body = Chunks;

    async fn send<S: BodySource>(
        &self,
        request: OriginRequest<'_>,
        body: OutboundBody<'_, S>,
    ) -> Result<OriginResponse<Chunks>, OriginError> {
        let sent = match body {
            OutboundBody::Buffered(bytes) => bytes.to_vec(),
            OutboundBody::Streamed { prefix, rest } => {
                let mut all = prefix.to_vec();
                while let Some(chunk) = rest.next_chunk().await.map_err(OriginError::RequestBody)? {
                    all.extend(chunk);
                }
                all
            }
        };
        self.calls.borrow_mut().push((
            request.method.to_string(),
            request.path_and_query.clone(),
            request.headers.clone(),
            sent,
        ));
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let chunks = self.body.chunks(7).map(<[u8]>::to_vec).collect();
        Ok(OriginResponse { status: self.status, headers: self.headers.clone(), body: Chunks(chunks) })
    }
}

#[derive(Default, Clone)]
struct Captured(Rc<RefCell<Option<(u16, HeaderList, Vec<u8>, bool)>>>);

impl Captured {
    fn status(&self) -> u16 {
        self.0.borrow().as_ref().unwrap().0
    }
    fn header(&self, name: &str) -> Option<String> {
        let answer = self.0.borrow();
        let (_, headers, _, _) = answer.as_ref().unwrap();
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    fn body(&self) -> Vec<u8> {
        self.0.borrow().as_ref().unwrap().2.clone()
    }
    fn finished(&self) -> bool {
        self.0.borrow().as_ref().unwrap().3
    }
}

struct FakeClient(Captured);
struct FakeSink(Captured);

impl Client for FakeClient {
    type Sink = FakeSink;
    fn respond(self, status: u16, headers: HeaderList) -> Result<FakeSink, BodyError> {
        *self.0 .0.borrow_mut() = Some((status, headers, Vec::new(), false));
        Ok(FakeSink(self.0))
    }
}

impl BodySink for FakeSink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        self.0 .0.borrow_mut().as_mut().unwrap().2.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(self) -> Result<(), BodyError> {
        self.0 .0.borrow_mut().as_mut().unwrap().3 = true;
        Ok(())
    }
}

fn config(extra: &[(&str, &str)]) -> Config {
    let vars: Vec<(String, String)> = [("origin", "https://origin.example/api")]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(move |name| Ok(vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())))
        .unwrap()
}

fn origin(cache_control: &str) -> FakeOrigin {
    FakeOrigin {
        status: 200,
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("cache-control".into(), cache_control.as_bytes().to_vec()),
            ("x-multi".into(), b"1".to_vec()),
            ("x-multi".into(), b"2".to_vec()),
            ("connection".into(), b"keep-alive".to_vec()),
        ],
        body: b"{\"answer\":42}".to_vec(),
        calls: RefCell::new(Vec::new()),
        error: None,
    }
}

fn request(method: &str, headers: &[(&str, &str)], body: &[u8]) -> ClientRequest<Chunks> {
    ClientRequest {
        method: method.into(),
        authority: "edge.example".into(),
        path_with_query: "/graphql?x=1".into(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
        // Split the body to check that chunking does not matter.
        body: Chunks(body.chunks(3).map(<[u8]>::to_vec).collect()),
    }
}

/// Sleeps take no time; each sleep may run a scripted action (another request
/// landing in the store meanwhile), and tokens count up.
#[derive(Default)]
struct FakeRuntime {
    slept_ms: RefCell<Vec<u64>>,
    tokens: std::cell::Cell<u64>,
    on_sleep: RefCell<Option<Box<dyn FnMut(usize)>>>,
}

impl crate::runtime::Runtime for FakeRuntime {
    async fn sleep_ms(&self, ms: u64) {
        self.slept_ms.borrow_mut().push(ms);
        let n = self.slept_ms.borrow().len();
        if let Some(action) = self.on_sleep.borrow_mut().as_mut() {
            action(n);
        }
    }
    fn token(&self) -> u64 {
        self.tokens.set(self.tokens.get() + 1);
        0x5eed_0000 + self.tokens.get()
    }
}

fn run(
    config: &Config,
    now: u64,
    req: ClientRequest<Chunks>,
    store: &MemoryStore,
    origin: &FakeOrigin,
) -> Captured {
    run_with(config, now, req, store, origin, &FakeRuntime::default())
}

fn run_with(
    config: &Config,
    now: u64,
    req: ClientRequest<Chunks>,
    store: &MemoryStore,
    origin: &FakeOrigin,
    runtime: &FakeRuntime,
) -> Captured {
    let captured = Captured::default();
    futures::executor::block_on(handle(
        config,
        now,
        req,
        || Ok(store),
        origin,
        FakeClient(captured.clone()),
        runtime,
    ));
    captured
}

const NOW: u64 = 1_700_000_000;

#[test]
fn a_hit_costs_one_store_get_and_replays_the_miss() {
    let (cfg, store, origin) = (config(&[]), MemoryStore::default(), origin("max-age=30"));
    let body = b"{\"query\":\"{ a }\"}";
    let miss = run(&cfg, NOW, request("POST", &[("content-type", "application/json"), ("accept-encoding", "gzip")], body), &store, &origin);
    assert_eq!(miss.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; stored");
    assert!(miss.finished());
    let gets_before = store.gets.get();
    let hit = run(&cfg, NOW + 10, request("POST", &[("content-type", "application/json")], body), &store, &origin);
    assert_eq!(store.gets.get() - gets_before, 1, "one KV get per hit");
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=20");
    // In raw mode the client's Accept-Encoding goes to the origin as it is.
    assert_eq!(crate::cache::headers::values(&origin.calls.borrow()[0].2, "accept-encoding"), [&b"gzip"[..]]);
    assert_eq!(hit.header("age").unwrap(), "10");
    assert_eq!(hit.body(), miss.body());
    assert_eq!(hit.status(), 200);
    assert_eq!(origin.calls.borrow().len(), 1);
    // What the origin got: base path joined, body intact, exact length, no hop-by-hop.
    let (method, path, headers, sent) = origin.calls.borrow()[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/api/graphql?x=1"));
    assert_eq!(sent, body);
    assert!(headers.contains(&("content-length".into(), body.len().to_string().into_bytes())));
    // Connection is hop-by-hop: never stored, never replayed.
    assert!(hit.header("connection").is_none());
}

#[test]
fn a_failing_store_still_answers_from_the_origin() {
    let (cfg, store, origin) = (config(&[]), MemoryStore::default(), origin("max-age=30"));
    store.failing.set(true);
    let answer = run(&cfg, NOW, request("POST", &[], b"x"), &store, &origin);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body(), b"{\"answer\":42}");
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=store-error");
}

#[test]
fn an_unopenable_store_still_answers_from_the_origin() {
    let (cfg, origin) = (config(&[]), origin("max-age=30"));
    let captured = Captured::default();
    futures::executor::block_on(handle(
        &cfg,
        NOW,
        request("POST", &[], b"x"),
        || Err::<&MemoryStore, _>(StoreError("no such store".into())),
        &origin,
        FakeClient(captured.clone()),
        &FakeRuntime::default(),
    ));
    assert_eq!(captured.status(), 200);
    assert_eq!(captured.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=store-error");
}

#[test]
fn a_body_over_the_cap_is_forwarded_whole_and_not_cached() {
    let cfg = config(&[("max_body_bytes", "10")]);
    let (store, origin) = (MemoryStore::default(), origin("max-age=30"));
    let body: Vec<u8> = (0..=255).collect();
    let answer = run(&cfg, NOW, request("POST", &[], &body), &store, &origin);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=body-too-large");
    assert_eq!(origin.calls.borrow()[0].3, body, "prefix and rest arrive in order");
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn non_candidate_methods_pass_through_untouched() {
    let (cfg, store, origin) = (config(&[]), MemoryStore::default(), origin("max-age=30"));
    let answer = run(&cfg, NOW, request("GET", &[("spin-full-url", "x")], b""), &store, &origin);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=method");
    assert_eq!(store.gets.get(), 0);
    assert!(origin.calls.borrow()[0].2.iter().all(|(n, _)| !n.starts_with("spin-")));
}

#[test]
fn an_entry_over_max_entry_bytes_streams_through_unstored() {
    let cfg = config(&[("max_entry_bytes", "1024")]);
    let store = MemoryStore::default();
    let mut big = origin("max-age=30");
    big.body = vec![9; 5000];
    let answer = run(&cfg, NOW, request("POST", &[], b"x"), &store, &big);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=too-large");
    assert_eq!(answer.body(), vec![9; 5000]);
    assert!(answer.finished());
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn a_stale_entry_is_deleted_when_its_fresh_answer_may_not_be_stored() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=30"));
    assert_eq!(store.entries.borrow().len(), 1);
    let answer = run(&cfg, NOW + 60, request("POST", &[], b"q"), &store, &origin("no-store"));
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=stale; detail=no-store");
    assert!(store.entries.borrow().is_empty(), "the stale record is gone");
}

fn answering(body: &str) -> FakeOrigin {
    let mut o = origin("max-age=60");
    o.body = body.as_bytes().to_vec();
    o
}

#[test]
fn a_graphql_mutation_is_never_looked_up_or_stored() {
    let cfg = config(&[("body_format", "graphql")]);
    let (store, origin) = (MemoryStore::default(), answering(r#"{"data":{"addItem":{"id":1}}}"#));
    let body = br#"{"query":"mutation { addItem(name: \"x\") { id } }"}"#;
    for _ in 0..2 {
        let answer = run(&cfg, NOW, request("POST", &[("content-type", "application/json")], body), &store, &origin);
        assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=mutation");
        assert_eq!(answer.body(), origin.body);
    }
    assert_eq!(origin.calls.borrow().len(), 2);
    assert_eq!(origin.calls.borrow()[1].3, body, "forwarded byte for byte");
    assert_eq!(store.gets.get(), 0);
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn graphql_queries_differing_in_whitespace_share_one_entry() {
    let cfg = config(&[("body_format", "graphql")]);
    let (store, origin) = (MemoryStore::default(), answering(r#"{"data":{"me":{"id":"1"}}}"#));
    let json = [("content-type", "application/json"), ("accept-encoding", "gzip, br")];
    let first = run(&cfg, NOW, request("POST", &json, br#"{"query":"{ me { id } }"}"#), &store, &origin);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; stored");
    let second = run(&cfg, NOW, request("POST", &json, br##"{"query":"# mine\n{me{id}}"}"##), &store, &origin);
    // The cache reads what it stores: the origin is asked for it unencoded.
    let sent = &origin.calls.borrow()[0].2;
    assert_eq!(crate::cache::headers::values(sent, "accept-encoding"), [&b"identity"[..]]);
    assert_eq!(second.header("cache-status").unwrap(), "post-cache; hit; ttl=60");
    assert_eq!(second.body(), first.body());
    // The origin saw the client's own bytes, not the canonical form.
    assert_eq!(origin.calls.borrow()[0].3, br#"{"query":"{ me { id } }"}"#);
    assert_eq!(origin.calls.borrow().len(), 1);
}

#[test]
fn a_graphql_answer_with_errors_is_relayed_but_never_stored() {
    let cfg = config(&[("body_format", "graphql")]);
    let store = MemoryStore::default();
    let origin = answering(r#"{"data":null,"errors":[{"message":"boom"}]}"#);
    let json = [("content-type", "application/json")];
    for _ in 0..2 {
        let answer = run(&cfg, NOW, request("POST", &json, br#"{"query":"{ me { id } }"}"#), &store, &origin);
        assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=graphql-errors");
        assert_eq!(answer.body(), origin.body);
        assert_eq!(answer.header("content-length").unwrap(), origin.body.len().to_string());
    }
    assert_eq!(origin.calls.borrow().len(), 2);
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn jsonrpc_calls_with_other_ids_share_an_entry_and_get_their_own_id_back() {
    let cfg = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_chainId")]);
    let store = MemoryStore::default();
    let origin = answering(r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#);
    let json = [("content-type", "application/json")];
    let first = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#), &store, &origin);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; stored");
    let second = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":"second","method":"eth_chainId"}"#), &store, &origin);
    assert_eq!(second.header("cache-status").unwrap(), "post-cache; hit; ttl=60");
    assert_eq!(second.body(), br#"{"jsonrpc":"2.0","id":"second","result":"0x1"}"#);
    assert_eq!(second.header("content-length").unwrap(), second.body().len().to_string());
    assert_eq!(origin.calls.borrow().len(), 1);
    let other = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":3,"method":"eth_sendRawTransaction"}"#), &store, &origin);
    assert_eq!(other.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=rpc-method");
    assert_eq!(origin.calls.borrow().len(), 2);
}

#[test]
fn a_raw_record_under_a_jsonrpc_key_is_a_miss_not_a_replay_with_the_wrong_id() {
    // Equal keys for a record without id slots can only come from a bug or a
    // collision; the record must not be replayed with the id it was stored with.
    let cfg = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_chainId")]);
    let store = MemoryStore::default();
    let origin = answering(r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#);
    let json = [("content-type", "application/json")];
    run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#), &store, &origin);
    let (key, value) = store.entries.borrow().iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
    let rec = crate::cache::record::decode(&value).unwrap();
    let mut builder = RecordBuilder::new(&rec.meta, &[], 0, 1 << 20).unwrap();
    assert!(builder.push_body(rec.body));
    store.entries.borrow_mut().insert(key, builder.finish(&[]).0);
    let again = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#), &store, &origin);
    // Forwarded; the fake origin answers id 1 to the call with id 2, which is no
    // answer to it: relayed, not stored, and the unusable record is gone.
    assert_eq!(again.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=invalid-answer");
    assert_eq!(origin.calls.borrow().len(), 2);
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn a_persisted_query_alone_is_stored_only_after_its_document_was_seen_as_a_query() {
    use sha2::Digest as _;
    let cfg = config(&[("body_format", "graphql")]);
    let (store, origin) = (MemoryStore::default(), answering(r#"{"data":{"item":{"id":1}}}"#));
    let json = [("content-type", "application/json")];
    let doc = "query Q { item { id } }";
    let hash = crate::cache::digest::hex(&Sha256::digest(doc.as_bytes()));
    let ext = format!(r#""extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
    let alone = format!(r#"{{"operationName":"Q",{ext}}}"#);
    let full = format!(r#"{{"query":"{doc}","operationName":"Q",{ext}}}"#);
    let send = |body: &str, now| run(&cfg, now, request("POST", &json, body.as_bytes()), &store, &origin);
    // Unknown hash: forwarded, not stored (it could be a mutation).
    assert_eq!(send(&alone, NOW).header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=persisted-query");
    assert!(store.entries.borrow().is_empty());
    // The document arrives with its hash: stored, and the hash marked as a query.
    assert_eq!(send(&full, NOW).header("cache-status").unwrap(), "post-cache; fwd=uri-miss; stored");
    assert_eq!(store.entries.borrow().len(), 2, "the entry and its marker");
    // The hash alone now hits the same entry, and once it expires is stored again.
    assert_eq!(send(&alone, NOW + 1).header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    assert_eq!(send(&alone, NOW + 120).header("cache-status").unwrap(), "post-cache; fwd=stale; stored");
    assert_eq!(origin.calls.borrow().len(), 3);
}

fn status_of(answer: &Captured) -> String {
    answer.header("cache-status").unwrap()
}

fn only_value(store: &MemoryStore) -> Vec<u8> {
    let entries = store.entries.borrow();
    assert_eq!(entries.len(), 1, "one value in the store");
    entries.values().next().unwrap().clone()
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
    let key = store.entries.borrow().keys().next().unwrap().clone();
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
    let key = store.entries.borrow().keys().next().unwrap().clone();
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

fn failing(status: u16) -> FakeOrigin {
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
    assert_eq!((late.status(), status_of(&late).as_str()), (503, "post-cache; fwd=stale; detail=server-error"));
    let patient = run(&cfg, NOW + 361, request("POST", &[("cache-control", "stale-if-error=600")], b"q"), &store, &failing(503));
    assert_eq!(patient.status(), 200);
    // A 404 is an answer, not an error: it is relayed, and as it may not be
    // stored, the outdated record goes.
    let not_found = run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &failing(404));
    assert_eq!(not_found.status(), 404);
    assert!(store.entries.borrow().is_empty());
}

#[test]
fn must_revalidate_gets_the_error_whatever_the_variables_say() {
    let cfg = config(&[("stale_if_error", "3600"), ("stale_while_revalidate", "3600")]);
    let store = MemoryStore::default();
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=60, must-revalidate"));
    let answer = run(&cfg, NOW + 61, request("POST", &[("cache-control", "max-stale")], b"q"), &store, &failing(503));
    assert_eq!((answer.status(), status_of(&answer).as_str()), (503, "post-cache; fwd=stale; detail=server-error"));
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
    assert_eq!(crate::cache::headers::values(&sent, "if-none-match"), [&b"\"v1\""[..]]);
    assert_eq!(crate::cache::headers::values(&sent, "if-modified-since").len(), 1);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body(), b"{\"answer\":42}");
    assert_eq!(status_of(&answer), "post-cache; fwd=stale; fwd-status=304; stored");
    assert_eq!(answer.header("content-length").unwrap(), "13", "the 304 never changes the length");
    assert!(answer.header("set-cookie").is_none());
    assert_eq!(answer.header("x-new").unwrap(), "yes");
    let rec_bytes = only_value(&store);
    let rec = crate::cache::record::decode(&rec_bytes).unwrap();
    assert_eq!(rec.meta.fresh_until, NOW + 220);
    assert!(rec.headers.iter().any(|(n, v)| *n == "cache-control" && *v == b"max-age=120"));
    assert!(!rec.headers.iter().any(|(n, v)| *n == "cache-control" && *v == b"max-age=60"));
    let hit = run(&cfg, NOW + 110, request("QUERY", &[], b"q"), &store, &unchanged);
    assert_eq!((status_of(&hit).as_str(), hit.body().as_slice()), ("post-cache; hit; ttl=110", &b"{\"answer\":42}"[..]));
}

#[test]
fn a_post_is_refetched_without_validators_since_its_conditionals_mean_412() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &with_validators("max-age=60"));
    let again = with_validators("max-age=60");
    run(&cfg, NOW + 100, request("POST", &[], b"q"), &store, &again);
    assert!(!crate::cache::headers::has(&again.calls.borrow()[0].2, "if-none-match"));
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
    assert_eq!(status_of(&miss), "post-cache; fwd=uri-miss; stored");
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
    let key = store.entries.borrow().keys().next().unwrap().clone();
    key
}

#[test]
fn a_cold_miss_leads_with_a_mark_and_replaces_it_with_the_record() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let o = origin("max-age=60");
    let miss = run(&cfg, NOW, request("POST", &[], b"q"), &store, &o);
    assert_eq!(status_of(&miss), "post-cache; fwd=uri-miss; stored");
    assert_eq!(store.sets.get(), 2, "the mark, then the record");
    assert!(crate::cache::record::decode(&only_value(&store)).is_ok());
    let off = config(&[("collapse_wait_ms", "0")]);
    let quiet = MemoryStore::default();
    run(&off, NOW, request("POST", &[], b"q"), &quiet, &o);
    assert_eq!(quiet.sets.get(), 1, "collapsing off: the record alone");
}

#[test]
fn a_leader_that_stores_nothing_removes_its_mark() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    let failed = run(&cfg, NOW, request("POST", &[], b"q"), &store, &failing(503));
    assert_eq!(failed.status(), 503);
    let mut down = origin("max-age=60");
    down.error = Some(OriginError::Unreachable("refused".into()));
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &down);
    assert!(store.entries.borrow().is_empty(), "no mark left behind to hold others up");
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
    assert_eq!(status_of(&follower), "post-cache; fwd=uri-miss; stored");
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
    assert_eq!(status_of(&answer), "post-cache; fwd=uri-miss; stored");
    assert!(runtime.slept_ms.borrow().is_empty());
}
