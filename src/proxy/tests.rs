//! The flow over in-memory fakes: what reaches the store, the origin and the client.

use super::*;
use crate::body::{BodyError, BodySink};
use crate::http::headers::HeaderList;
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
/// landing in the store meanwhile), and tokens count up. The settle delays
/// before an index is checked again are counted apart (`settled`), so the
/// other waits read as before indexes.
#[derive(Default)]
struct FakeRuntime {
    slept_ms: RefCell<Vec<u64>>,
    settled: std::cell::Cell<usize>,
    /// Runs at each settle delay: what another request does meanwhile.
    on_settle: RefCell<Option<Box<dyn FnMut()>>>,
    tokens: std::cell::Cell<u64>,
    on_sleep: RefCell<Option<Box<dyn FnMut(usize)>>>,
}

impl crate::runtime::Runtime for FakeRuntime {
    async fn sleep_ms(&self, ms: u64) {
        if ms == super::index::SETTLE_MS {
            self.settled.set(self.settled.get() + 1);
            if let Some(action) = self.on_settle.borrow_mut().as_mut() {
                action();
            }
            return;
        }
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
    assert_eq!(miss.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert!(miss.finished());
    let gets_before = store.gets.get();
    let hit = run(&cfg, NOW + 10, request("POST", &[("content-type", "application/json")], body), &store, &origin);
    assert_eq!(store.gets.get() - gets_before, 1, "one KV get per hit");
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=20");
    // In raw mode the client's Accept-Encoding goes to the origin as it is.
    assert_eq!(crate::http::headers::values(&origin.calls.borrow()[0].2, "accept-encoding"), [&b"gzip"[..]]);
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
    assert!(store.cache_keys().is_empty());
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
    assert!(store.cache_keys().is_empty());
}

#[test]
fn a_stale_entry_is_deleted_when_its_fresh_answer_may_not_be_stored() {
    let (cfg, store) = (config(&[]), MemoryStore::default());
    run(&cfg, NOW, request("POST", &[], b"q"), &store, &origin("max-age=30"));
    assert_eq!(store.cache_keys().len(), 1);
    let answer = run(&cfg, NOW + 60, request("POST", &[], b"q"), &store, &origin("no-store"));
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=stale; detail=no-store");
    assert!(store.cache_keys().is_empty(), "the stale record is gone");
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
    assert!(store.cache_keys().is_empty());
}

#[test]
fn graphql_queries_differing_in_whitespace_share_one_entry() {
    let cfg = config(&[("body_format", "graphql")]);
    let (store, origin) = (MemoryStore::default(), answering(r#"{"data":{"me":{"id":"1"}}}"#));
    let json = [("content-type", "application/json"), ("accept-encoding", "gzip, br")];
    let first = run(&cfg, NOW, request("POST", &json, br#"{"query":"{ me { id } }"}"#), &store, &origin);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    let second = run(&cfg, NOW, request("POST", &json, br##"{"query":"# mine\n{me{id}}"}"##), &store, &origin);
    // The cache reads what it stores: the origin is asked for it unencoded.
    let sent = &origin.calls.borrow()[0].2;
    assert_eq!(crate::http::headers::values(sent, "accept-encoding"), [&b"identity"[..]]);
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
    assert!(store.cache_keys().is_empty());
}

#[test]
fn jsonrpc_calls_with_other_ids_share_an_entry_and_get_their_own_id_back() {
    let cfg = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_chainId")]);
    let store = MemoryStore::default();
    let origin = answering(r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#);
    let json = [("content-type", "application/json")];
    let first = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#), &store, &origin);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
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
    let key = store.cache_keys()[0].clone();
    let value = store.entries.borrow()[&key].clone();
    let rec = crate::cache::record::decode(&value).unwrap();
    let mut builder = RecordBuilder::new(&rec.meta, &[], 0, 1 << 20).unwrap();
    assert!(builder.push_body(rec.body));
    store.entries.borrow_mut().insert(key, builder.finish(&[]).0);
    let again = run(&cfg, NOW, request("POST", &json, br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#), &store, &origin);
    // Forwarded; the fake origin answers id 1 to the call with id 2, which is no
    // answer to it: relayed, not stored, and the unusable record is gone.
    assert_eq!(again.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=invalid-answer");
    assert_eq!(origin.calls.borrow().len(), 2);
    assert!(store.cache_keys().is_empty());
}

#[test]
fn a_persisted_query_alone_is_stored_only_after_its_document_was_seen_as_a_query() {
    use sha2::Digest as _;
    let cfg = config(&[("body_format", "graphql")]);
    let (store, origin) = (MemoryStore::default(), answering(r#"{"data":{"item":{"id":1}}}"#));
    let json = [("content-type", "application/json")];
    let doc = "query Q { item { id } }";
    let hash = crate::http::digest::hex(&Sha256::digest(doc.as_bytes()));
    let ext = format!(r#""extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
    let alone = format!(r#"{{"operationName":"Q",{ext}}}"#);
    let full = format!(r#"{{"query":"{doc}","operationName":"Q",{ext}}}"#);
    let send = |body: &str, now| run(&cfg, now, request("POST", &json, body.as_bytes()), &store, &origin);
    // Unknown hash: forwarded, not stored (it could be a mutation).
    assert_eq!(send(&alone, NOW).header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=persisted-query");
    assert!(store.cache_keys().is_empty());
    // The document arrives with its hash: stored, and the hash marked as a query.
    assert_eq!(send(&full, NOW).header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(store.cache_keys().len(), 2, "the entry and its marker");
    // The hash alone now hits the same entry, and once it expires is stored again.
    assert_eq!(send(&alone, NOW + 1).header("cache-status").unwrap(), "post-cache; hit; ttl=59");
    assert_eq!(send(&alone, NOW + 120).header("cache-status").unwrap(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(origin.calls.borrow().len(), 3);
}

#[path = "tests/stale.rs"]
mod stale;
#[path = "tests/admin.rs"]
mod admin;
#[path = "tests/segments.rs"]
mod segments;
#[path = "tests/hardening.rs"]
mod hardening;
#[path = "tests/protocol.rs"]
mod protocol;
#[path = "tests/sweep.rs"]
mod sweep;
#[path = "tests/index.rs"]
mod index;
