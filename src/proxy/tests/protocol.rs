//! What the body formats decide, seen through the flow: which answers a GraphQL
//! mutation invalidates on, parameters in a GraphQL URL, JSON-RPC empty results,
//! GraphQL type rules and entity tags on an answer too large to check before it
//! is sent.

use super::*;

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

fn to(path: &str, body: &[u8]) -> ClientRequest<Chunks> {
    let mut req = request("POST", &JSON, body);
    req.path_with_query = path.into();
    req
}

fn entries(store: &MemoryStore) -> usize {
    store.entries.borrow().keys().filter(|k| crate::cache::key::is_entry_key(k)).count()
}

const QUERY: &[u8] = br#"{"query":"{ items { id } }"}"#;
const MUTATION: &[u8] = br#"{"query":"mutation { addItem { id } }"}"#;

/// A store holding one cached query of `/graphql`.
fn one_query(cfg: &Config) -> MemoryStore {
    let store = MemoryStore::default();
    run(cfg, NOW, to("/graphql", QUERY), &store, &answering(r#"{"data":{"items":[]}}"#));
    assert_eq!(entries(&store), 1);
    store
}

fn invalidating() -> Config {
    config(&[("body_format", "graphql"), ("invalidate_on_mutation", "true")])
}

#[test]
fn a_mutation_answered_with_errors_and_null_data_leaves_the_queries_stored() {
    let cfg = invalidating();
    let store = one_query(&cfg);
    let failed = answering(r#"{"errors":[{"message":"not allowed"}],"data":null}"#);
    let answer = run(&cfg, NOW, to("/graphql", MUTATION), &store, &failed);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=mutation");
    assert_eq!(answer.body(), failed.body, "relayed unchanged");
    assert!(answer.finished());
    // The answer is read, so it is asked for unencoded.
    assert_eq!(crate::http::headers::values(&failed.calls.borrow()[0].2, "accept-encoding"), [&b"identity"[..]]);
    assert_eq!(entries(&store), 1, "a mutation that did not run changed nothing");
    // Refused before execution: no `data` at all.
    run(&cfg, NOW, to("/graphql", MUTATION), &store, &answering(r#"{"errors":[{"message":"bad"}]}"#));
    assert_eq!(entries(&store), 1);
    let ran = answering(r#"{"data":{"addItem":{"id":7}}}"#);
    run(&cfg, NOW, to("/graphql", MUTATION), &store, &ran);
    assert_eq!(entries(&store), 0, "a mutation that ran forgets the endpoint's queries");
}

#[test]
fn a_mutation_answer_that_cannot_be_read_invalidates_as_if_it_ran() {
    let cfg = invalidating();
    // Over the capture bound: relayed whole, not kept.
    let store = one_query(&cfg);
    let padding = "x".repeat(forward::ANSWER_CAPTURE_BYTES);
    let big = answering(&format!(r#"{{"errors":[{{"message":"{padding}"}}],"data":null}}"#));
    let answer = run(&cfg, NOW, to("/graphql", MUTATION), &store, &big);
    assert_eq!(answer.body(), big.body);
    assert!(answer.finished());
    assert_eq!(entries(&store), 0);
    // Compressed in spite of `identity`: not read.
    let store = one_query(&cfg);
    let mut gzipped = answering(r#"{"errors":[{"message":"x"}],"data":null}"#);
    gzipped.headers.push(("content-encoding".into(), b"gzip".to_vec()));
    run(&cfg, NOW, to("/graphql", MUTATION), &store, &gzipped);
    assert_eq!(entries(&store), 0);
    // Just under the bound it is read, and a failed mutation forgets nothing.
    let store = one_query(&cfg);
    let frame = r#"{"errors":[{"message":""}],"data":null}"#.len();
    let padding = "x".repeat(forward::ANSWER_CAPTURE_BYTES - frame);
    let at_bound = answering(&format!(r#"{{"errors":[{{"message":"{padding}"}}],"data":null}}"#));
    assert_eq!(at_bound.body.len(), forward::ANSWER_CAPTURE_BYTES);
    run(&cfg, NOW, to("/graphql", MUTATION), &store, &at_bound);
    assert_eq!(entries(&store), 1);
}

#[test]
fn a_mutation_is_not_read_when_it_invalidates_nothing() {
    let cfg = config(&[("body_format", "graphql"), ("graphql_invalidation", "off")]);
    let store = one_query(&cfg);
    let mut ran = answering(r#"{"data":{"addItem":{"id":7}}}"#);
    ran.headers.push(("content-encoding".into(), b"gzip".to_vec()));
    let answer = run(&cfg, NOW, request("POST", &[JSON[0], ("accept-encoding", "gzip")], MUTATION), &store, &ran);
    assert_eq!(answer.header("content-encoding").unwrap(), "gzip");
    assert_eq!(crate::http::headers::values(&ran.calls.borrow()[0].2, "accept-encoding"), [&b"gzip"[..]]);
    assert_eq!(entries(&store), 1);
    // By default it is read, for the entities it touched: asked for unencoded.
    let by_default = config(&[("body_format", "graphql")]);
    let plain = answering(r#"{"data":{"addItem":{"id":7}}}"#);
    run(&by_default, NOW, request("POST", &[JSON[0], ("accept-encoding", "gzip")], MUTATION), &store, &plain);
    assert_eq!(crate::http::headers::values(&plain.calls.borrow()[0].2, "accept-encoding"), [&b"identity"[..]]);
    assert_eq!(entries(&store), 1, "it showed no entity: nothing to forget");
}

#[test]
fn a_graphql_post_with_parameters_in_its_url_is_neither_looked_up_nor_stored() {
    let cfg = config(&[("body_format", "graphql")]);
    let store = one_query(&cfg);
    let gets = store.gets.get();
    let origin = answering(r#"{"data":{"items":[{"id":1}]}}"#);
    for path in ["/graphql?query=mutation%7BaddItem%7Bid%7D%7D", "/graphql?%71uery=%7Bitems%7Bid%7D%7D", "/graphql?x=1&operationName=Q"] {
        let answer = run(&cfg, NOW, to(path, QUERY), &store, &origin);
        assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=url-params", "{path}");
        assert_eq!(answer.body(), origin.body);
    }
    assert_eq!(store.gets.get(), gets, "never looked up");
    assert_eq!(origin.calls.borrow().len(), 3);
    assert_eq!(entries(&store), 1, "never stored");
    // The URL may carry a mutation: with invalidate_on_mutation it counts as one.
    let cfg = invalidating();
    run(&cfg, NOW, to("/graphql?query=mutation%7BaddItem%7Bid%7D%7D", QUERY), &store, &origin);
    assert_eq!(entries(&store), 0);
}

#[test]
fn a_jsonrpc_null_result_is_relayed_but_not_stored_unless_allowed() {
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionReceipt","params":["0xab"]}"#;
    let pending = answering(r#"{"jsonrpc":"2.0","id":1,"result":null}"#);
    let cfg = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_*")]);
    let store = MemoryStore::default();
    for _ in 0..2 {
        let answer = run(&cfg, NOW, request("POST", &JSON, call), &store, &pending);
        assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=rpc-empty");
        assert_eq!(answer.body(), pending.body);
    }
    assert_eq!(pending.calls.borrow().len(), 2);
    assert_eq!(entries(&store), 0);
    let allowing = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_*"), ("rpc_store_null", "true")]);
    run(&allowing, NOW, request("POST", &JSON, call), &store, &pending);
    let hit = run(&allowing, NOW, request("POST", &JSON, call), &store, &pending);
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=60");
}

#[test]
fn a_jsonrpc_batch_with_one_null_result_is_not_stored_but_empty_values_are() {
    let cfg = config(&[("body_format", "jsonrpc"), ("rpc_methods", "eth_*")]);
    let store = MemoryStore::default();
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"eth_getCode","params":["0x1","0x10"]},{"jsonrpc":"2.0","id":2,"method":"eth_getTransactionReceipt","params":["0xab"]}]"#;
    let one_null = answering(r#"[{"jsonrpc":"2.0","id":1,"result":"0x"},{"jsonrpc":"2.0","id":2,"result":null}]"#);
    let answer = run(&cfg, NOW, request("POST", &JSON, batch), &store, &one_null);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=rpc-empty");
    assert_eq!(entries(&store), 0);
    let empties = answering(r#"[{"jsonrpc":"2.0","id":1,"result":"0x"},{"jsonrpc":"2.0","id":2,"result":[]}]"#);
    let answer = run(&cfg, NOW, request("POST", &JSON, batch), &store, &empties);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(entries(&store), 1);
}

/// A GraphQL answer over the read-ahead (teed: checked once the client has
/// it) that shows these objects.
fn teed_answer(shows: &str) -> FakeOrigin {
    let padding = "x".repeat(forward::READ_AHEAD);
    answering(&format!(r#"{{"data":{{"pad":"{padding}","shows":[{shows}]}}}}"#))
}

#[test]
fn a_teed_graphql_answer_is_capped_by_its_types_rule_and_tagged_with_its_entities() {
    let cfg = config(&[("body_format", "graphql"), ("graphql_types", "User=10, Cart=never")]);
    let store = MemoryStore::default();
    let origin = teed_answer(r#"{"__typename":"User","id":"7"}"#);
    let first = run(&cfg, NOW, to("/graphql", QUERY), &store, &origin);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(entries(&store), 1);
    let entry = store.entries.borrow().keys().find(|k| crate::cache::key::is_entry_key(k)).unwrap().clone();
    let index = crate::cache::index::Index::decode(&store.entries.borrow()[&crate::cache::key::tag_index_key("User:7")]);
    assert_eq!(index.lines, [crate::cache::key::entry_suffix(&entry).unwrap()], "the entity's index names the entry");
    // max-age=60 from the origin, 10 from the type's rule: the rule wins.
    let hit = run(&cfg, NOW + 4, to("/graphql", QUERY), &store, &origin);
    assert_eq!(hit.header("cache-status").unwrap(), "post-cache; hit; ttl=6");
    let again = run(&cfg, NOW + 11, to("/graphql", QUERY), &store, &origin);
    assert_eq!(again.header("cache-status").unwrap(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(origin.calls.borrow().len(), 2);
}

#[test]
fn a_teed_graphql_answer_showing_a_never_type_is_sent_whole_and_not_stored() {
    let cfg = config(&[("body_format", "graphql"), ("graphql_types", "Cart=never")]);
    let store = MemoryStore::default();
    let origin = teed_answer(r#"{"__typename":"Cart"}"#);
    for _ in 0..2 {
        let answer = run(&cfg, NOW, to("/graphql", QUERY), &store, &origin);
        assert_eq!(answer.body(), origin.body, "the client has its answer");
        assert!(answer.finished());
    }
    assert_eq!(entries(&store), 0);
    assert_eq!(origin.calls.borrow().len(), 2);
}

#[test]
fn a_304_keeps_the_bound_a_graphql_types_rule_put_on_the_record() {
    // A QUERY request: a POST is refetched without validators.
    let query_method = || {
        let mut req = request("QUERY", &JSON, QUERY);
        req.path_with_query = "/graphql".into();
        req
    };
    let cfg = config(&[("body_format", "graphql"), ("graphql_types", "User=10")]);
    let store = MemoryStore::default();
    let mut shows_user = answering(r#"{"data":{"me":{"__typename":"User","id":"7"}}}"#);
    shows_user.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    let first = run(&cfg, NOW, query_method(), &store, &shows_user);
    assert_eq!(first.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(run(&cfg, NOW + 4, query_method(), &store, &shows_user).header("cache-status").unwrap(), "post-cache; hit; ttl=6");
    // Expired after 10 s (the origin said 60): revalidated, and the 304's
    // max-age=60 does not lift the type's bound.
    let mut unchanged = origin("max-age=60");
    unchanged.status = 304;
    unchanged.body = Vec::new();
    unchanged.headers.push(("etag".into(), b"\"v1\"".to_vec()));
    let revalidated = run(&cfg, NOW + 20, query_method(), &store, &unchanged);
    assert_eq!(revalidated.header("cache-status").unwrap(), "post-cache; fwd=stale; fwd-status=304; stored");
    assert_eq!(run(&cfg, NOW + 21, query_method(), &store, &shows_user).header("cache-status").unwrap(), "post-cache; hit; ttl=9");
}
