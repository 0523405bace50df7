//! End to end: `body_format` graphql, jsonrpc and json through the host, in front
//! of a test origin that speaks GraphQL under `/graphql` and JSON-RPC under `/rpc`.

use super::{setup_with, JSON};
use serde_json::Value;
use std::time::Duration;
use spin_test_host::client::Reply;
use spin_test_host::Route;

fn json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&r.body)))
}

const RPC_VARS: [(&str, &str); 2] = [("body_format", "jsonrpc"), ("rpc_methods", "eth_chainId,eth_getBlockByHash,net_*")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_mutation_sent_twice_reaches_the_origin_twice() {
    let mut s = setup_with(&[("body_format", "graphql")], |_| {}).await;
    let body = br#"{"query":"mutation AddItem { addItem(name: \"x\") { id } }","operationName":"AddItem"}"#;
    for _ in 0..2 {
        let r = s.client.post("/graphql", &[JSON], body).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=mutation");
    }
    assert_eq!(s.origin.count("POST", "/graphql", body), 2);
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_queries_differing_in_whitespace_and_comments_reach_the_origin_once() {
    let mut s = setup_with(&[("body_format", "graphql")], |_| {}).await;
    let variants: [&[u8]; 3] = [
        br#"{"query":"query Me($id: ID!) { user(id: $id) { id, name } }","variables":{"id":"7"}}"#,
        br##"{"variables": {"id": "7"}, "query": "# the current user\nquery Me($id: ID!) {\n  user(id: $id) {\n    id\n    name\n  }\n}\n"}"##,
        br#"{"query":"query Me($id:ID!){user(id:$id){id name}}","variables":{"id":"\u0037"}}"#,
    ];
    let first = s.client.post("/graphql", &[JSON], variants[0]).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    for v in &variants[1..] {
        let r = s.client.post("/graphql", &[JSON], v).await;
        assert_eq!(r.cache_status(), "post-cache; hit; ttl=60", "{}", String::from_utf8_lossy(v));
        assert_eq!(r.body, first.body);
    }
    assert_eq!(s.origin.count_path("POST", "/graphql"), 1);
    // The origin received the client's bytes, not a canonical form.
    assert_eq!(json(&first)["data"]["answer"]["doc"], "query Me($id: ID!) { user(id: $id) { id, name } }");
    // A semantic change is another entry.
    let other = s.client.post("/graphql", &[JSON], br#"{"query":"query Me($id: ID!) { user(id: $id) { id } }","variables":{"id":"7"}}"#).await;
    assert_eq!(other.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let other_var = s.client.post("/graphql", &[JSON], br#"{"query":"query Me($id: ID!) { user(id: $id) { id, name } }","variables":{"id":"8"}}"#).await;
    assert_eq!(other_var.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.origin.count_path("POST", "/graphql"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_answers_with_errors_are_never_replayed() {
    let mut s = setup_with(&[("body_format", "graphql")], |_| {}).await;
    let failing = br#"{"query":"{ failing { id } }"}"#;
    for _ in 0..2 {
        let r = s.client.post("/graphql", &[JSON], failing).await;
        assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=graphql-errors");
        assert_eq!(json(&r)["errors"][0]["message"], "the resolver failed");
    }
    assert_eq!(s.origin.count("POST", "/graphql", failing), 2);
    // Partial results are not stored by default, and are with graphql_store_partial.
    let partial = br#"{"query":"{ partial { id } }"}"#;
    let r = s.client.post("/graphql", &[JSON], partial).await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=graphql-errors");
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
    let mut p = setup_with(&[("body_format", "graphql"), ("graphql_store_partial", "true")], |_| {}).await;
    assert_eq!(p.client.post("/graphql", &[JSON], partial).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(p.client.post("/graphql", &[JSON], partial).await.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(p.client.post("/graphql", &[JSON], failing).await.cache_status(), "post-cache; fwd=uri-miss; detail=graphql-errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_graphql_is_forwarded_and_never_stored() {
    let mut s = setup_with(&[("body_format", "graphql")], |_| {}).await;
    let nested = format!("{{\"query\":\"{}{}\"}}", "{a".repeat(100_000), "}".repeat(100_000));
    let deep_json = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let bodies: [&[u8]; 4] = [b"{\"query\": \"{ a \"}", br#"{"query":"query A { a } query B { b }"}"#, nested.as_bytes(), deep_json.as_bytes()];
    for body in bodies {
        for _ in 0..2 {
            let r = s.client.post("/graphql", &[JSON], body).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=unparsable");
        }
        assert_eq!(s.origin.count("POST", "/graphql", body), 2);
    }
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
    assert_eq!(s.host.stats.failures.load(std::sync::atomic::Ordering::Relaxed), 0, "no trap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpc_calls_with_ids_1_and_2_reach_the_origin_once_and_each_gets_its_id() {
    let mut s = setup_with(&RPC_VARS, |_| {}).await;
    let one = s.client.post("/rpc", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    let two = s.client.post("/rpc", &[JSON], br#"{"jsonrpc":"2.0","method":"eth_chainId","id":2}"#).await;
    let text = s.client.post("/rpc", &[JSON], br#"{"jsonrpc":"2.0","method":"eth_chainId","id":"abc-\u00e9"}"#).await;
    assert_eq!(one.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(two.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(text.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(s.origin.count_path("POST", "/rpc"), 1);
    assert_eq!(json(&one)["id"], 1);
    assert_eq!(json(&two)["id"], 2);
    assert_eq!(json(&text)["id"], "abc-é");
    assert_eq!(json(&two)["result"], json(&one)["result"]);
    // The id is replaced in place: the rest of the stored body is byte-for-byte.
    assert_eq!(String::from_utf8_lossy(&two.body), String::from_utf8_lossy(&one.body).replacen("\"id\":1", "\"id\":2", 1));
    assert_eq!(two.header("content-length").unwrap(), two.body.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonrpc_batch_gets_each_id_back_in_the_origins_order() {
    let mut s = setup_with(&RPC_VARS, |_| {}).await;
    let batch = |a: &str, b: &str| {
        format!(
            r#"[{{"jsonrpc":"2.0","id":{a},"method":"eth_getBlockByHash","params":["0xabc",false]}},{{"jsonrpc":"2.0","id":{b},"method":"net_version"}}]"#
        )
    };
    let first = s.client.post("/rpc", &[JSON], batch("10", "11").as_bytes()).await;
    let second = s.client.post("/rpc", &[JSON], batch("\"x\"", "null").as_bytes()).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(second.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(s.origin.count_path("POST", "/rpc"), 1);
    // The origin answers batches in reverse order; each id stays with its call.
    let (a, b) = (json(&first), json(&second));
    assert_eq!((a[0]["id"].clone(), a[1]["id"].clone()), (Value::from(11), Value::from(10)));
    assert_eq!((b[0]["id"].clone(), b[1]["id"].clone()), (Value::Null, Value::from("x")));
    assert_eq!(b[0]["result"]["method"], "net_version");
    assert_eq!(b[1]["result"]["method"], "eth_getBlockByHash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpc_answers_are_kept_by_their_methods_rule_and_at_the_chain_tip_for_the_tip_ttl() {
    let vars = [
        ("body_format", "jsonrpc"),
        ("rpc_methods", "eth_chainId=forever, eth_getBlockByNumber=600"),
        ("rpc_tip_ttl", "2"),
    ];
    let mut s = setup_with(&vars, |_| {}).await;
    let block = |tag: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["{tag}",false]}}"#);
    let chain_id = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
    let mut statuses = Vec::new();
    for body in [block("latest").into_bytes(), block("0x10").into_bytes(), chain_id.to_vec()] {
        statuses.push(s.client.post("/rpc", &[JSON], &body).await.cache_status());
        statuses.push(s.client.post("/rpc", &[JSON], &body).await.cache_status());
    }
    assert_eq!(
        statuses,
        [
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=2",
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=600",
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=2147483648",
        ]
    );
    assert_eq!(s.origin.count_path("POST", "/rpc"), 3);

    // Past the tip TTL the tip's answer is fetched again; the pinned block and
    // the chain id are still served.
    s.host.advance_clock(3);
    assert_eq!(s.client.post("/rpc", &[JSON], block("latest").as_bytes()).await.cache_status(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(s.client.post("/rpc", &[JSON], block("0x10").as_bytes()).await.cache_status(), "post-cache; hit; ttl=597");
    assert_eq!(s.client.post("/rpc", &[JSON], chain_id).await.cache_status(), "post-cache; hit; ttl=2147483645");
    assert_eq!(s.origin.count_path("POST", "/rpc"), 4);
    s.host.advance_clock(600);
    assert_eq!(s.client.post("/rpc", &[JSON], block("0x10").as_bytes()).await.cache_status(), "post-cache; fwd=stale; detail=storing");

    // `pending` is never looked up nor stored.
    for _ in 0..2 {
        let pending = s.client.post("/rpc", &[JSON], block("pending").as_bytes()).await;
        assert_eq!(pending.cache_status(), "post-cache; fwd=bypass; detail=rpc-uncacheable");
    }
    assert_eq!(s.origin.count_path("POST", "/rpc"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rpc_methods_entry_answers_500_naming_the_variable_and_the_entry() {
    let mut s = setup_with(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_chainId=for-ever")], |_| {}).await;
    let r = s.client.post("/rpc", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    assert_eq!(r.status, 500);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("rpc_methods") && text.contains("eth_chainId=for-ever"), "{text}");
    assert_eq!(s.origin.count_path("POST", "/rpc"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_methods_notifications_and_errors_always_reach_the_origin() {
    let mut s = setup_with(&RPC_VARS, |_| {}).await;
    let cases: [(&[u8], &str); 3] = [
        (br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x1"]}"#, "post-cache; fwd=bypass; detail=rpc-method"),
        (br#"{"jsonrpc":"2.0","method":"eth_chainId"}"#, "post-cache; fwd=bypass; detail=notification"),
        (br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_call"}]"#, "post-cache; fwd=bypass; detail=rpc-method"),
    ];
    for (body, status) in &cases {
        for _ in 0..2 {
            assert_eq!(s.client.post("/rpc", &[JSON], body).await.cache_status(), *status);
        }
        assert_eq!(s.origin.count("POST", "/rpc", body), 2);
    }
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
    // A 10,000-call batch is answered in bounded time, forwarded and not keyed.
    let huge: Vec<String> = (0..10_000).map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_chainId"}}"#)).collect();
    let huge = format!("[{}]", huge.join(","));
    let r = s.client.post("/rpc", &[JSON], huge.as_bytes()).await;
    assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=unparsable");
    assert_eq!(json(&r).as_array().map(Vec::len), Some(10_000));
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
    let mut e = setup_with(&[("body_format", "jsonrpc"), ("rpc_methods", "fail_*")], |_| {}).await;
    let failing_call = br#"{"jsonrpc":"2.0","id":1,"method":"fail_now"}"#;
    for _ in 0..2 {
        let r = e.client.post("/rpc", &[JSON], failing_call).await;
        assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=rpc-error");
        assert!(json(&r)["error"].is_object());
    }
    assert_eq!(e.origin.count("POST", "/rpc", failing_call), 2);
    assert!(e.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpc_without_rpc_methods_answers_500_naming_the_variable() {
    let mut s = setup_with(&[("body_format", "jsonrpc")], |_| {}).await;
    let r = s.client.post("/rpc", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("rpc_methods"), "{:?}", r.body);
    assert_eq!(s.origin.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_merges_member_order_and_whitespace_and_keeps_raw_apart() {
    let mut s = setup_with(&[("body_format", "json")], |_| {}).await;
    let a = s.client.post("/search?cc=max-age%3D60", &[JSON], br#"{"q":"shoes","filters":{"size":42,"color":"red"}}"#).await;
    let b = s.client.post("/search?cc=max-age%3D60", &[JSON], b"{ \"filters\": { \"color\": \"red\", \"size\": 42.0 },\n  \"q\": \"shoes\" }").await;
    assert_eq!(a.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(b.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(b.body, a.body);
    // Not JSON by media type, or no-transform: raw keys, separate entries.
    let text = s.client.post("/search?cc=max-age%3D60", &[("content-type", "text/plain")], br#"{"q":"shoes","filters":{"size":42,"color":"red"}}"#).await;
    assert_eq!(text.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let nt = s.client.post("/search?cc=max-age%3D60", &[JSON, ("cache-control", "no-transform")], b"{ \"q\": \"shoes\", \"filters\": {\"size\":42,\"color\":\"red\"} }").await;
    assert_eq!(nt.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.origin.count_path("POST", "/search"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_routes_graphql_jsonrpc_and_raw_to_one_wasm_with_different_variables() {
    let routes = vec![
        Route::new("/graphql", &[("body_format", "graphql")]),
        Route::new("/rpc/...", &RPC_VARS),
        Route::new("/...", &[]),
    ];
    let mut s = setup_with(&[], |c| c.routes = routes).await;
    let mutation = br#"{"query":"mutation { m }"}"#;
    assert_eq!(s.client.post("/graphql", &[JSON], mutation).await.cache_status(), "post-cache; fwd=bypass; detail=mutation");
    let q1 = s.client.post("/graphql", &[JSON], br#"{"query":"{ a }"}"#).await;
    let q2 = s.client.post("/graphql", &[JSON], br#"{"query":"{a}"}"#).await;
    assert_eq!((q1.cache_status().as_str(), q2.cache_status().as_str()), ("post-cache; fwd=uri-miss; detail=storing", "post-cache; hit; ttl=60"));
    let r1 = s.client.post("/rpc/mainnet", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    let r2 = s.client.post("/rpc/mainnet", &[JSON], br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#).await;
    assert_eq!(r2.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!((json(&r1)["id"].clone(), json(&r2)["id"].clone()), (Value::from(1), Value::from(2)));
    // Elsewhere the raw default: the mutation-looking body is cached by its bytes,
    // and an /rpc body is keyed with its id, so ids 1 and 2 are two entries.
    let raw1 = s.client.post("/other?cc=max-age%3D60", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    let raw2 = s.client.post("/other?cc=max-age%3D60", &[JSON], br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#).await;
    assert_eq!((raw1.cache_status().as_str(), raw2.cache_status().as_str()), ("post-cache; fwd=uri-miss; detail=storing", "post-cache; fwd=uri-miss; detail=storing"));
    assert_eq!(s.origin.count_path("POST", "/graphql"), 2);
    assert_eq!(s.origin.count_path("POST", "/rpc/mainnet"), 1);
    assert_eq!(s.origin.count_path("POST", "/other"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_example_shipped_in_spin_toml_works_as_written() {
    // The example is commented out in spin.toml; uncomment it as a user would.
    let manifest = std::fs::read_to_string(spin_test_host::build::workspace_root().join("spin.toml")).unwrap();
    let (head, example) = manifest.split_once("# One app, three caches").expect("the example is in spin.toml");
    let uncommented: String = example
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix('#')))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .collect::<Vec<_>>()
        .join("\n");
    let manifest = format!("{head}\n{uncommented}");
    let mut s = setup_with(&[], |c| {
        let overrides = std::collections::HashMap::from([("origin".to_string(), c.variables["origin"].clone())]);
        c.routes = spin_test_host::manifest::routes(&manifest, &overrides).unwrap();
        let patterns: Vec<&str> = c.routes.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(patterns, ["/...", "/graphql", "/rpc/..."]);
    })
    .await;
    let m = s.client.post("/graphql", &[JSON], br#"{"query":"mutation { m }"}"#).await;
    assert_eq!(m.cache_status(), "post-cache; fwd=bypass; detail=mutation");
    let a = s.client.post("/rpc/eth", &[JSON], br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).await;
    let b = s.client.post("/rpc/eth", &[JSON], br#"{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}"#).await;
    assert_eq!((a.cache_status().as_str(), b.cache_status().as_str()), ("post-cache; fwd=uri-miss; detail=storing", "post-cache; hit; ttl=60"));
    assert_eq!(json(&b)["id"], 2);
    let raw = s.client.post("/search", &[JSON], b"{}").await;
    assert_eq!(raw.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.client.post("/search", &[JSON], b"{ }").await.cache_status(), "post-cache; fwd=uri-miss; detail=storing", "raw keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_persisted_queries_hit_by_hash_once_their_document_was_seen() {
    use sha2::Digest;
    let mut s = setup_with(&[("body_format", "graphql")], |_| {}).await;
    let doc = "query Items($n: Int) { items(first: $n) { id } }";
    let hash: String = sha2::Sha256::digest(doc.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let ext = format!(r#""extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
    let alone = format!(r#"{{"operationName":"Items","variables":{{"n":3}},{ext}}}"#);
    let full = format!(r#"{{"query":"{doc}","operationName":"Items","variables":{{"n":3}},{ext}}}"#);
    let first = s.client.post("/graphql", &[JSON], alone.as_bytes()).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=persisted-query");
    let registered = s.client.post("/graphql", &[JSON], full.as_bytes()).await;
    assert_eq!(registered.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let hit = s.client.post("/graphql", &[JSON], alone.as_bytes()).await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(hit.body, registered.body);
    assert_eq!(s.origin.count_path("POST", "/graphql"), 2);
    // A hash whose document was never seen to be a query is never stored.
    let mutation_hash = "0".repeat(64);
    let unknown = format!(r#"{{"operationName":"M","extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{mutation_hash}"}}}}}}"#);
    for _ in 0..2 {
        let r = s.client.post("/graphql", &[JSON], unknown.as_bytes()).await;
        assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=persisted-query");
    }
    assert_eq!(s.origin.count("POST", "/graphql", unknown.as_bytes()), 2);
}

/// A GraphQL request for operation `name` whose answer shows `entities`
/// (the test origin echoes `variables.entities` into `data`).
fn gql_showing(name: &str, entities: Value) -> Vec<u8> {
    let query = format!("query {name}($entities: [E]) {{ answer {{ n }} }}");
    serde_json::to_vec(&serde_json::json!({"query": query, "variables": {"entities": entities}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_operations_rule_sets_how_long_its_answers_are_kept_and_never_goes_around_the_cache() {
    let vars = [("body_format", "graphql"), ("graphql_operations", "Short=5, Search*=600, Me=never")];
    let mut s = setup_with(&vars, |_| {}).await;
    let short = gql_showing("Short", Value::Null);
    let search = gql_showing("SearchBooks", Value::Null);
    let other = gql_showing("Other", Value::Null);
    let mut statuses = Vec::new();
    for body in [&short, &search, &other] {
        statuses.push(s.client.post("/graphql", &[JSON], body).await.cache_status());
        statuses.push(s.client.post("/graphql", &[JSON], body).await.cache_status());
    }
    assert_eq!(
        statuses,
        [
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=5",
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=600",
            "post-cache; fwd=uri-miss; detail=storing",
            "post-cache; hit; ttl=60",
        ]
    );
    // Past its rule's seconds the answer is fetched again; the others are still served.
    s.host.advance_clock(6);
    assert_eq!(s.client.post("/graphql", &[JSON], &short).await.cache_status(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(s.client.post("/graphql", &[JSON], &search).await.cache_status(), "post-cache; hit; ttl=594");
    assert_eq!(s.origin.count_path("POST", "/graphql"), 4);
    // `never`: neither looked up nor stored.
    let me = gql_showing("Me", Value::Null);
    for _ in 0..2 {
        assert_eq!(s.client.post("/graphql", &[JSON], &me).await.cache_status(), "post-cache; fwd=bypass; detail=graphql-rule");
    }
    assert_eq!(s.origin.count("POST", "/graphql", &me), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_type_rule_caps_the_answers_that_show_the_type_and_never_keeps_them_out() {
    let vars = [("body_format", "graphql"), ("graphql_operations", "Long=600"), ("graphql_types", "User=10, Cart=never")];
    let mut s = setup_with(&vars, |_| {}).await;
    let user = gql_showing("Long", serde_json::json!([{"__typename": "User", "id": "1"}]));
    assert_eq!(s.client.post("/graphql", &[JSON], &user).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.client.post("/graphql", &[JSON], &user).await.cache_status(), "post-cache; hit; ttl=10", "the type's cap beats the operation's 600");
    s.host.advance_clock(11);
    assert_eq!(s.client.post("/graphql", &[JSON], &user).await.cache_status(), "post-cache; fwd=stale; detail=storing");
    let keys_before = s.host.kv.keys("default").len();
    let cart = gql_showing("Long", serde_json::json!([{"__typename": "User", "id": "1", "cart": {"__typename": "Cart"}}]));
    for _ in 0..2 {
        let r = s.client.post("/graphql", &[JSON], &cart).await;
        assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=graphql-type-rule");
        assert_eq!(json(&r)["data"]["entities"][0]["cart"]["__typename"], "Cart", "the client has its answer");
    }
    assert_eq!(s.origin.count("POST", "/graphql", &cart), 2);
    assert_eq!(s.host.kv.keys("default").len(), keys_before, "nothing written for it");
}

/// A purge by tags through the admin API: how many entries it removed.
async fn purge_tags(s: &mut super::Setup, token: &str, tags: &str) -> u64 {
    let auth = format!("Bearer {token}");
    let headers = [JSON, ("authorization", auth.as_str())];
    let body = format!(r#"{{"tags":{tags}}}"#);
    let r = s.client.send("POST", "/.well-known/post-cache/purge", &headers, body.as_bytes(), spin_test_host::client::Framing::Sized).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json(&r)["purged"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_answer_is_purged_by_an_entity_it_shows_and_the_others_still_hit() {
    const TOKEN: &str = "e2e-purge-token-0123456789";
    let vars = [("body_format", "graphql"), ("purge_token", TOKEN), ("graphql_entity_tags", "3")];
    let mut s = setup_with(&vars, |_| {}).await;
    let user = |id: &str| serde_json::json!({"__typename": "User", "id": id});
    let one = gql_showing("One", serde_json::json!([user("1")]));
    let both = gql_showing("Both", serde_json::json!([user("1"), {"__typename": "Post", "id": 9, "author": user("2")}]));
    let post = gql_showing("Post", serde_json::json!([{"__typename": "Post", "id": 3}]));
    // Four users with a cap of three: the fourth is covered by `User:*`.
    let many = gql_showing("Many", serde_json::json!([user("5"), user("6"), user("7"), user("8")]));
    for body in [&one, &both, &post, &many] {
        assert_eq!(s.client.post("/graphql", &[JSON], body).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    }
    assert_eq!(purge_tags(&mut s, TOKEN, r#"["User:2"]"#).await, 1);
    assert_eq!(s.client.post("/graphql", &[JSON], &both).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    for body in [&one, &post, &many] {
        assert_eq!(s.client.post("/graphql", &[JSON], body).await.cache_status(), "post-cache; hit; ttl=60");
    }
    // Past the cap the type stands in: a purge of `User:*` finds the answer
    // whose `User:8` was not tagged, and only answers that lost a User.
    assert_eq!(purge_tags(&mut s, TOKEN, r#"["User:*"]"#).await, 1);
    assert_eq!(s.client.post("/graphql", &[JSON], &many).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.client.post("/graphql", &[JSON], &one).await.cache_status(), "post-cache; hit; ttl=60");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_removes_exactly_the_cached_queries_that_showed_the_entity_it_touched() {
    // No automatic sweep step: it lists the store, and this counts listings.
    let mut s = setup_with(&[("body_format", "graphql"), ("sweep_every", "0")], |_| {}).await;
    let user = |id: &str| serde_json::json!({"__typename": "User", "id": id});
    let first = gql_showing("First", serde_json::json!([user("1")]));
    let second = gql_showing("Second", serde_json::json!([user("2")]));
    let both = gql_showing("Both", serde_json::json!([user("1"), {"__typename": "Post", "id": 9, "author": user("2")}]));
    for body in [&first, &second, &both] {
        assert_eq!(s.client.post("/graphql", &[JSON], body).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    }
    let mutation = |document: &str, entities: Value| {
        serde_json::to_vec(&serde_json::json!({"query": document, "variables": {"entities": entities}})).unwrap()
    };
    // A mutation that failed (errors, null data) touched nothing.
    let failed = mutation("mutation Failing { failing { id } }", serde_json::json!([user("2")]));
    assert_eq!(s.client.post("/graphql", &[JSON], &failed).await.cache_status(), "post-cache; fwd=bypass; detail=mutation");
    s.host.wait_idle(Duration::from_secs(20)).await;
    for body in [&first, &second, &both] {
        assert_eq!(s.client.post("/graphql", &[JSON], body).await.cache_status(), "post-cache; hit; ttl=60");
    }
    // One that ran and answered User:2 takes the two queries that showed it.
    let update = mutation("mutation Update($entities: [E]) { updateUser { id } }", serde_json::json!([user("2")]));
    assert_eq!(s.client.post("/graphql", &[JSON], &update).await.cache_status(), "post-cache; fwd=bypass; detail=mutation");
    s.host.wait_idle(Duration::from_secs(20)).await;
    assert_eq!(s.client.post("/graphql", &[JSON], &first).await.cache_status(), "post-cache; hit; ttl=60");
    for body in [&second, &both] {
        assert_eq!(s.client.post("/graphql", &[JSON], body).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    }
    assert_eq!(s.host.kv.ops.snapshot().get_keys, 0, "no listing of the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_graphql_invalidation_soft_a_mutation_leaves_the_entries_it_touched_stale() {
    let vars = [("body_format", "graphql"), ("graphql_invalidation", "soft"), ("stale_while_revalidate", "30")];
    let mut s = setup_with(&vars, |_| {}).await;
    let second = gql_showing("Second", serde_json::json!([{"__typename": "User", "id": "2"}]));
    assert_eq!(s.client.post("/graphql", &[JSON], &second).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let update = serde_json::to_vec(&serde_json::json!({"query": "mutation U { u { id } }", "variables": {"entities": [{"__typename": "User", "id": "2"}]}})).unwrap();
    s.client.post("/graphql", &[JSON], &update).await;
    s.host.wait_idle(Duration::from_secs(20)).await;
    let stale = s.client.post("/graphql", &[JSON], &second).await;
    assert_eq!(stale.cache_status(), "post-cache; hit; ttl=0", "served stale while it refreshes");
    s.host.wait_idle(Duration::from_secs(20)).await;
    assert_eq!(s.client.post("/graphql", &[JSON], &second).await.cache_status(), "post-cache; hit; ttl=60", "refreshed");
}
