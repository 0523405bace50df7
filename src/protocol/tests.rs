//! How each body format keys requests and judges answers.

use super::*;

fn config(format: BodyFormat) -> ProtocolConfig {
    ProtocolConfig {
        format,
        rpc_methods: MethodList::parse("eth_chainId,eth_call,net_*").unwrap(),
        graphql_store_partial: false,
        rpc_store_null: false,
        ..ProtocolConfig::default()
    }
}

const JSON: Option<&[u8]> = Some(b"application/json");

fn material(format: BodyFormat, content_type: Option<&[u8]>, body: &str) -> Vec<u8> {
    match key_request(&config(format), "", content_type, false, body.as_bytes()) {
        Keying::Canonical { material, .. } => material,
        other => panic!("{body}: {other:?}"),
    }
}

fn bypass(format: BodyFormat, content_type: Option<&[u8]>, body: &str) -> ProtocolBypass {
    match key_request(&config(format), "", content_type, false, body.as_bytes()) {
        Keying::Bypass(reason) => reason,
        other => panic!("{body}: {other:?}"),
    }
}

#[test]
fn raw_mode_never_parses() {
    assert_eq!(key_request(&config(BodyFormat::Raw), "", JSON, false, b"{\"a\":1}"), Keying::Raw);
}

#[test]
fn json_mode_keys_whitespace_and_order_variants_alike() {
    let a = material(BodyFormat::Json, JSON, r#"{"q": "shoes", "page": 2}"#);
    let b = material(BodyFormat::Json, Some(b"application/vnd.api+json; charset=utf-8"), "{\"page\":2.0,\n\"q\":\"shoes\"}");
    assert_eq!(a, b);
    assert_ne!(a, material(BodyFormat::Json, JSON, r#"{"q": "shoes", "page": 3}"#));
}

#[test]
fn json_mode_falls_back_to_raw_for_other_bodies() {
    let cfg = config(BodyFormat::Json);
    let raw = |ct: Option<&[u8]>, no_transform: bool, body: &[u8]| key_request(&cfg, "", ct, no_transform, body);
    assert_eq!(raw(Some(b"text/plain"), false, b"{}"), Keying::Raw);
    assert_eq!(raw(None, false, b"{}"), Keying::Raw);
    assert_eq!(raw(JSON, true, b"{}"), Keying::Raw, "no-transform");
    assert_eq!(raw(JSON, false, b"{\"a\":"), Keying::Raw, "does not parse");
    assert_eq!(raw(JSON, false, br#"{"a":1,"a":2}"#), Keying::Raw, "duplicate members");
    assert_eq!(raw(JSON, false, b"[9007199254740993]"), Keying::Raw, "inexact number");
}

fn gql(query: &str) -> String {
    format!("{{\"query\":{}}}", serde_json_string(query))
}

/// A JSON string literal (test helper; the product never writes JSON strings this way).
fn serde_json_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .map(|c| match c {
            '"' => "\\\"".to_string(),
            '\\' => "\\\\".to_string(),
            '\n' => "\\n".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("\"{escaped}\"")
}

#[test]
fn graphql_queries_differing_in_comments_and_whitespace_share_material() {
    let a = material(BodyFormat::GraphQl, JSON, &gql("{ user(id: 1) { name } }"));
    let b = material(BodyFormat::GraphQl, JSON, &gql("# who\nquery {\n  user(id: 1) {\n    name,\n  }\n}"));
    assert_ne!(a, b, "`query` and the shorthand are different documents");
    let c = material(BodyFormat::GraphQl, JSON, &gql("{user(id:1){name}} # trailing"));
    assert_eq!(a, c);
}

#[test]
fn graphql_semantic_changes_change_material() {
    let body = |q: &str, vars: &str, op: &str| format!("{{\"query\":{},\"variables\":{vars}{op}}}", serde_json_string(q));
    let base = material(BodyFormat::GraphQl, JSON, &body("query Q($id: ID) { user(id: $id) { name } }", r#"{"id":1}"#, ""));
    let same = material(
        BodyFormat::GraphQl,
        JSON,
        &body("query Q($id: ID) {user(id: $id) {name}}", r#"{ "id" : 1 }"#, r#","operationName":null"#),
    );
    assert_ne!(base, same, "an explicit null operationName is another envelope member");
    let cases = [
        body("query Q($id: ID) { user(id: $id) { name } }", r#"{"id":2}"#, ""),
        body("query Q($id: ID) { u: user(id: $id) { name } }", r#"{"id":1}"#, ""),
        body("query Q($id: ID) { user(id: $id) { name } }", r#"{"id":1}"#, r#","operationName":"Q""#),
        body("query Q($id: ID) { user(id: $id) { name } }", r#"{"id":1}"#, r#","extensions":{"x":1}"#),
    ];
    for c in &cases {
        assert_ne!(material(BodyFormat::GraphQl, JSON, c), base, "{c}");
    }
}

#[test]
fn graphql_mutations_and_subscriptions_are_never_cached() {
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &gql("mutation { addItem(x: 1) { id } }")), ProtocolBypass::Mutation);
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &gql("subscription { s }")), ProtocolBypass::Mutation);
    let doc = serde_json_string("query A { a } mutation B { b }");
    assert_eq!(
        bypass(BodyFormat::GraphQl, JSON, &format!("{{\"query\":{doc},\"operationName\":\"B\"}}")),
        ProtocolBypass::Mutation
    );
    material(BodyFormat::GraphQl, JSON, &format!("{{\"query\":{doc},\"operationName\":\"A\"}}"));
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &format!("{{\"query\":{doc}}}")), ProtocolBypass::Unparsable);
    assert_eq!(
        bypass(BodyFormat::GraphQl, Some(b"application/graphql"), "mutation { m }"),
        ProtocolBypass::Mutation
    );
}

#[test]
fn graphql_batches_are_cached_only_when_every_operation_is_a_query() {
    let q = gql("{ a }");
    let m = gql("mutation { b }");
    material(BodyFormat::GraphQl, JSON, &format!("[{q},{q}]"));
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &format!("[{q},{m}]")), ProtocolBypass::Mutation);
    assert_ne!(material(BodyFormat::GraphQl, JSON, &format!("[{q}]")), material(BodyFormat::GraphQl, JSON, &q));
}

#[test]
fn graphql_bodies_that_cannot_be_classified_are_unparsable() {
    for (ct, body) in [
        (JSON, "not json"),
        (JSON, r#"{"query": 5}"#),
        (JSON, r#"{"query": "{ a }", "query": "mutation { b }"}"#),
        (JSON, r#"{"query": "{ a }", "variables": [1]}"#),
        (JSON, r#"{"query": "{ a }", "operationName": 3}"#),
        (JSON, r#"{"query": "type T { a: Int }"}"#),
        (JSON, r#"{"variables": {}}"#),
        (JSON, "[]"),
        (Some(b"multipart/form-data; boundary=x"), "--x"),
        (None, r#"{"query": "{ a }"}"#),
    ] {
        assert_eq!(bypass(BodyFormat::GraphQl, ct, body), ProtocolBypass::Unparsable, "{body}");
    }
    let bad_hash = r#"{"operationName":"Q","extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}"#;
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, bad_hash), ProtocolBypass::Unparsable);
}

/// An Apollo persisted query: with its document, and with the hash alone.
fn apq(query: Option<&str>, hash: &str) -> String {
    let ext = format!(r#""extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
    match query {
        Some(q) => format!(r#"{{"query":{},"operationName":"Q","variables":{{"a":1}},{ext}}}"#, serde_json_string(q)),
        None => format!(r#"{{"operationName":"Q","variables":{{"a":1}},{ext}}}"#),
    }
}

fn sha256_hex(s: &str) -> String {
    crate::http::digest::hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(s)))
}

#[test]
fn persisted_queries_share_one_key_with_and_without_their_document() {
    let doc = "query Q($a: Int) { item(id: $a) { id } }";
    let hash = sha256_hex(doc);
    let keyed = |body: &str| match key_request(&config(BodyFormat::GraphQl), "", JSON, false, body.as_bytes()) {
        Keying::Canonical { material, check: AnswerCheck::GraphQl { persisted: Some(p), .. } } => (material, p),
        other => panic!("{body}: {other:?}"),
    };
    let (full, proven) = keyed(&apq(Some(doc), &hash));
    let (alone, unproven) = keyed(&apq(None, &hash));
    assert_eq!(full, alone);
    assert!(proven.proven_query && !unproven.proven_query);
    assert_eq!(proven.marker, unproven.marker);
    // The hash's case is kept in the key (Apollo sends lower case), not in the marker.
    assert_eq!(keyed(&apq(None, &hash.to_ascii_uppercase())).1.marker, proven.marker);
    // Another operation name is another marker and another key.
    let (other, other_p) = keyed(&apq(None, &hash).replace(r#""Q""#, r#""R""#));
    assert_ne!(other, alone);
    assert_ne!(other_p.marker, unproven.marker);
}

#[test]
fn persisted_mutations_and_wrong_hashes_are_never_proven() {
    let mutation = "mutation Q { add { id } }";
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &apq(Some(mutation), &sha256_hex(mutation))), ProtocolBypass::Mutation);
    let doc = "query Q { a }";
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &apq(Some(doc), &sha256_hex("query Q { b }"))), ProtocolBypass::Unparsable);
    // A batch cannot consult one marker for a hash sent alone.
    let alone = apq(None, &sha256_hex(doc));
    assert_eq!(bypass(BodyFormat::GraphQl, JSON, &format!("[{alone}]")), ProtocolBypass::PersistedQuery);
}

#[test]
fn graphql_answers_with_errors_are_not_stored_unless_partial_results_may_be() {
    let mut cfg = config(BodyFormat::GraphQl);
    let single = AnswerCheck::GraphQl { batch: false, persisted: None, limit: Limit::default() };
    let check = |cfg: &ProtocolConfig, c: &AnswerCheck, body: &str| check_answer(cfg, c, body.as_bytes());
    let stored = Ok(AnswerFacts::default());
    assert_eq!(check(&cfg, &single, r#"{"data":{"a":1}}"#), stored);
    assert_eq!(check(&cfg, &single, r#"{"data":{"a":1},"errors":[]}"#), stored);
    let partial = r#"{"data":{"a":null},"errors":[{"message":"x"}]}"#;
    let failed = r#"{"data":null,"errors":[{"message":"x"}]}"#;
    assert_eq!(check(&cfg, &single, partial), Err(AnswerRefusal::GraphQlErrors));
    assert_eq!(check(&cfg, &single, failed), Err(AnswerRefusal::GraphQlErrors));
    assert_eq!(check(&cfg, &single, "<html>"), Err(AnswerRefusal::Invalid));
    let batch = AnswerCheck::GraphQl { batch: true, persisted: None, limit: Limit::default() };
    assert_eq!(check(&cfg, &batch, &format!(r#"[{{"data":{{}}}},{failed}]"#)), Err(AnswerRefusal::GraphQlErrors));
    assert_eq!(check(&cfg, &batch, r#"{"data":{}}"#), Err(AnswerRefusal::Invalid));
    cfg.graphql_store_partial = true;
    assert_eq!(check(&cfg, &single, partial), stored);
    assert_eq!(check(&cfg, &single, failed), Err(AnswerRefusal::GraphQlErrors));
}

#[test]
fn jsonrpc_mode_reports_each_refusal() {
    let rpc = BodyFormat::JsonRpc;
    assert_eq!(bypass(rpc, JSON, r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction"}"#), ProtocolBypass::RpcMethod);
    assert_eq!(bypass(rpc, JSON, r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#), ProtocolBypass::Notification);
    assert_eq!(bypass(rpc, JSON, r#"{"jsonrpc":"2.0","id":1}"#), ProtocolBypass::Unparsable);
    assert_eq!(bypass(rpc, Some(b"text/plain"), r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#), ProtocolBypass::Unparsable);
    let a = material(rpc, JSON, r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#);
    let b = material(rpc, None, r#"{"jsonrpc":"2.0","id":"x","method":"eth_chainId"}"#);
    assert_eq!(a, b);
}

#[test]
fn jsonrpc_answers_are_checked_against_their_calls() {
    let cfg = config(BodyFormat::JsonRpc);
    let Keying::Canonical { check, .. } = key_request(&cfg, "", JSON, false, br#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}"#) else {
        panic!()
    };
    assert_eq!(check_answer(&cfg, &check, br#"{"jsonrpc":"2.0","id":7,"result":"0x1"}"#).unwrap().id_slots.len(), 1);
    assert_eq!(
        check_answer(&cfg, &check, br#"{"jsonrpc":"2.0","id":7,"error":{"code":1}}"#),
        Err(AnswerRefusal::RpcError)
    );
    assert_eq!(check_answer(&cfg, &check, br#"{"jsonrpc":"2.0","id":8,"result":"0x1"}"#), Err(AnswerRefusal::Invalid));
}

#[test]
fn format_names_parse_and_tags_differ() {
    let all = ["raw", "json", "graphql", "jsonrpc"].map(|n| BodyFormat::parse(n).unwrap());
    let mut tags: Vec<u8> = all.iter().map(|f| f.tag()).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 4);
    assert_eq!(BodyFormat::parse("GraphQL"), None);
}

#[test]
fn a_graphql_request_with_parameters_in_its_url_goes_around_the_cache() {
    let cfg = config(BodyFormat::GraphQl);
    let query = gql("{ me { id } }");
    let keyed = |url_query: &str, ct: Option<&[u8]>, body: &str| key_request(&cfg, url_query, ct, false, body.as_bytes());
    assert!(matches!(keyed("page=2", JSON, &query), Keying::Canonical { .. }));
    // express-graphql runs the URL's `query` (here a mutation), not the body's.
    for url_query in ["query=mutation%7Bx%7D", "operationName=M", "%71uery=x", "variables=%7B%7D", "a=1&extensions="] {
        assert_eq!(keyed(url_query, JSON, &query), Keying::Bypass(ProtocolBypass::UrlParams), "{url_query}");
        assert_eq!(keyed(url_query, Some(b"application/graphql"), "{ me { id } }"), Keying::Bypass(ProtocolBypass::UrlParams));
    }
    assert_eq!(ProtocolBypass::UrlParams.detail(), "url-params");
    assert!(ProtocolBypass::UrlParams.may_mutate() && ProtocolBypass::Mutation.may_mutate());
    assert!(!ProtocolBypass::Unparsable.may_mutate());
    // Other formats do not read GraphQL parameters.
    assert!(matches!(key_request(&config(BodyFormat::Json), "query=x", JSON, false, query.as_bytes()), Keying::Canonical { .. }));
}

#[test]
fn a_jsonrpc_null_result_is_not_stored_unless_rpc_store_null() {
    let mut cfg = config(BodyFormat::JsonRpc);
    let Keying::Canonical { check, .. } = key_request(&cfg, "", JSON, false, br#"{"jsonrpc":"2.0","id":7,"method":"eth_call"}"#) else {
        panic!()
    };
    let pending = br#"{"jsonrpc":"2.0","id":7,"result":null}"#;
    assert_eq!(check_answer(&cfg, &check, pending), Err(AnswerRefusal::RpcEmpty));
    assert_eq!(AnswerRefusal::RpcEmpty.detail(), "rpc-empty");
    cfg.rpc_store_null = true;
    assert_eq!(check_answer(&cfg, &check, pending).unwrap().id_slots.len(), 1);
}

fn graphql_config(operations: &str, types: &str) -> ProtocolConfig {
    ProtocolConfig {
        graphql_operations: RuleList::parse(operations).unwrap(),
        graphql_types: RuleList::parse(types).unwrap(),
        ..config(BodyFormat::GraphQl)
    }
}

fn graphql_keying(cfg: &ProtocolConfig, content_type: Option<&[u8]>, body: &str) -> Result<Limit, ProtocolBypass> {
    match key_request(cfg, "", content_type, false, body.as_bytes()) {
        Keying::Canonical { check: check @ AnswerCheck::GraphQl { .. }, .. } => Ok(check.limit()),
        Keying::Bypass(reason) => Err(reason),
        other => panic!("{body}: {other:?}"),
    }
}

#[test]
fn an_operations_rule_is_found_by_its_name_or_operation_name() {
    let cfg = graphql_config("GetUser=60, Search*=10, Me=never", "");
    let sixty = Limit { when_silent: Some(60), at_most: Some(60) };
    let keyed = |body: &str| graphql_keying(&cfg, JSON, body);
    assert_eq!(keyed(&gql("query GetUser { user { id } }")), Ok(sixty));
    assert_eq!(keyed(&gql("query SearchBooks { books { id } }")), Ok(Limit { when_silent: Some(10), at_most: Some(10) }));
    assert_eq!(keyed(&gql("query Other { a }")), Ok(Limit::default()), "no rule: default_ttl and the origin");
    assert_eq!(keyed(&gql("{ me { id } }")), Ok(Limit::default()), "anonymous: only `*` matches");
    assert_eq!(keyed(&gql("query Me { me { id } }")), Err(ProtocolBypass::GraphQlRule));
    assert_eq!(ProtocolBypass::GraphQlRule.detail(), "graphql-rule");
    // The operation the server runs is the one `operationName` selects.
    let two = r#"{"query":"query GetUser { user { id } } query Me { me { id } }","operationName":"GetUser"}"#;
    assert_eq!(keyed(two), Ok(sixty));
    assert_eq!(keyed(&two.replace(r#""GetUser"}"#, r#""Me"}"#)), Err(ProtocolBypass::GraphQlRule));
    // A document sent as application/graphql.
    assert_eq!(graphql_keying(&cfg, Some(b"application/graphql"), "query Me { me { id } }"), Err(ProtocolBypass::GraphQlRule));
    // A persisted query sent by its hash alone is known by its operationName.
    let hash = sha256_hex("query Q { a }");
    let cfg_q = graphql_config("Q=never", "");
    assert_eq!(graphql_keying(&cfg_q, JSON, &apq(None, &hash)), Err(ProtocolBypass::GraphQlRule));
    assert_eq!(graphql_keying(&cfg_q, JSON, &apq(Some("query Q { a }"), &hash)), Err(ProtocolBypass::GraphQlRule));
    // `*` alone governs every operation, anonymous ones too.
    let all = graphql_config("*=5", "");
    assert_eq!(graphql_keying(&all, JSON, &gql("{ a }")), Ok(Limit { when_silent: Some(5), at_most: Some(5) }));
}

#[test]
fn a_batch_is_kept_as_its_strictest_operation_allows_and_a_mutation_in_it_is_still_one() {
    let cfg = graphql_config("A=60, B=10, N=never", "");
    let batch = |ops: &[&str]| format!("[{}]", ops.iter().map(|q| gql(q)).collect::<Vec<_>>().join(","));
    let ten = Limit { when_silent: Some(10), at_most: Some(10) };
    assert_eq!(graphql_keying(&cfg, JSON, &batch(&["query A { a }", "query B { b }"])), Ok(ten));
    assert_eq!(graphql_keying(&cfg, JSON, &batch(&["query A { a }", "query N { n }"])), Err(ProtocolBypass::GraphQlRule));
    assert_eq!(
        graphql_keying(&cfg, JSON, &batch(&["query N { n }", "mutation M { m }"])),
        Err(ProtocolBypass::Mutation),
        "a never rule must not hide a mutation"
    );
}

#[test]
fn a_graphql_answer_brings_its_entity_tags_and_its_types_cap() {
    let cfg = ProtocolConfig { graphql_entity_tags: 2, ..graphql_config("", "User=300, Post=30, Cart=never, Tag=forever") };
    let single = AnswerCheck::GraphQl { batch: false, persisted: None, limit: Limit::default() };
    let check = |cfg: &ProtocolConfig, body: &str| check_answer(cfg, &single, body.as_bytes());
    let answer = r#"{"data":{"me":{"__typename":"User","id":"1","posts":[{"__typename":"Post","id":"7"},{"__typename":"Post","id":"8"}]}}}"#;
    let facts = check(&cfg, answer).unwrap();
    assert_eq!(facts.tags, ["User:1", "Post:7", "Post:*"]);
    assert_eq!(facts.cap, Some(30), "the smallest rule over the types found");
    assert!(facts.id_slots.is_empty());
    let users = r#"{"data":{"u":{"__typename":"User","id":"1"},"t":{"__typename":"Tag","id":"x"}}}"#;
    assert_eq!(check(&cfg, users).unwrap().cap, Some(300));
    assert_eq!(check(&cfg, r#"{"data":{"t":{"__typename":"Tag","id":"x"}}}"#).unwrap().cap, None);
    let cart = r#"{"data":{"me":{"__typename":"User","id":"1","cart":{"__typename":"Cart"}}}}"#;
    assert_eq!(check(&cfg, cart), Err(AnswerRefusal::GraphQlTypeRule), "a type without a key counts too");
    assert_eq!(AnswerRefusal::GraphQlTypeRule.detail(), "graphql-type-rule");
    // Errors keep an answer out before its data is read.
    assert_eq!(check(&cfg, r#"{"data":null,"errors":[{"message":"x"}]}"#), Err(AnswerRefusal::GraphQlErrors));
}

#[test]
fn an_answer_whose_entities_cannot_all_be_tagged_is_not_stored() {
    let cfg = ProtocolConfig { graphql_entity_tags: 0, ..config(BodyFormat::GraphQl) };
    let single = AnswerCheck::GraphQl { batch: false, persisted: None, limit: Limit::default() };
    let objects: Vec<String> = (0..=MAX_TYPE_TAGS).map(|i| format!(r#"{{"__typename":"T{i}","id":"1"}}"#)).collect();
    let many = format!(r#"{{"data":{{"l":[{}]}}}}"#, objects.join(","));
    assert_eq!(check_answer(&cfg, &single, many.as_bytes()), Err(AnswerRefusal::GraphQlEntities));
    let fewer = format!(r#"{{"data":{{"l":[{}]}}}}"#, objects[..MAX_TYPE_TAGS].join(","));
    assert_eq!(check_answer(&cfg, &single, fewer.as_bytes()).unwrap().tags.len(), MAX_TYPE_TAGS);
    let long_type = format!(r#"{{"data":{{"a":{{"__typename":"{}","id":"1"}}}}}}"#, "T".repeat(127));
    assert_eq!(check_answer(&cfg, &single, long_type.as_bytes()), Err(AnswerRefusal::GraphQlEntities));
}
