//! The admin API and invalidation over the in-memory fakes.

use super::*;
use crate::cache::key::tag_index_key;
use super::stale::failing;

const TOKEN: &str = "0123456789abcdef-purge-token";

fn admin_config() -> Config {
    config(&[("purge_token", TOKEN)])
}

fn admin(cfg: &Config, store: &MemoryStore, method: &str, endpoint: &str, auth: Option<&str>, body: &str) -> Captured {
    let mut headers = vec![("content-type", "application/json")];
    let bearer = auth.map(|t| format!("Bearer {t}"));
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let mut req = request(method, &headers, body.as_bytes());
    req.path_with_query = format!("/.well-known/post-cache/{endpoint}");
    run(cfg, NOW, req, store, &failing(599))
}

fn at(path: &str, method: &str, body: &[u8], headers: &[(&str, &str)]) -> ClientRequest<Chunks> {
    let mut req = request(method, headers, body);
    req.path_with_query = path.into();
    req
}

/// Stores entries for `/a` (three bodies, one with `?q=1`) and `/b` (one), some tagged.
fn filled(cfg: &Config) -> MemoryStore {
    let store = MemoryStore::default();
    let mut tagged = origin("max-age=60");
    tagged.headers.push(("surrogate-key".into(), b"red blue".to_vec()));
    run(cfg, NOW, at("/a", "POST", b"1", &[]), &store, &tagged);
    run(cfg, NOW, at("/a", "POST", b"2", &[]), &store, &origin("max-age=60"));
    run(cfg, NOW, at("/a?q=1", "POST", b"1", &[]), &store, &origin("max-age=60"));
    let mut blue = origin("max-age=60");
    blue.headers.push(("cache-tag".into(), b"blue".to_vec()));
    run(cfg, NOW, at("/b", "POST", b"1", &[]), &store, &blue);
    store
}

fn entry_count(store: &MemoryStore) -> usize {
    store.entries.borrow().keys().filter(|k| crate::cache::key::is_entry_key(k)).count()
}

#[test]
fn tags_are_indexed_with_one_index_each_and_not_relayed() {
    let cfg = admin_config();
    let store = MemoryStore::default();
    let mut tagged = origin("max-age=60");
    tagged.headers.push(("surrogate-key".into(), b"red blue".to_vec()));
    let miss = run(&cfg, NOW, at("/a", "POST", b"1", &[]), &store, &tagged);
    assert_eq!(store.cache_keys().len(), 1, "the entry, no marker");
    let entry = store.cache_keys()[0].clone();
    let line = crate::cache::key::entry_suffix(&entry).unwrap();
    let mut indexes = store.index_keys();
    indexes.sort();
    let mut expected = vec![tag_index_key("red"), tag_index_key("blue"), crate::cache::key::uri_index_key("edge.example", "/a")];
    expected.sort();
    assert_eq!(indexes, expected, "one index per tag and one for the URL");
    for key in &indexes {
        let index = crate::cache::index::Index::decode(&store.entries.borrow()[key]);
        assert_eq!(index.lines, [line], "{key}");
    }
    assert_eq!((store.index_gets.get(), store.index_sets.get()), (6, 3), "each read and written once, and read again after the response");
    let hit = run(&cfg, NOW, at("/a", "POST", b"1", &[]), &store, &tagged);
    for answer in [miss, hit] {
        assert!(answer.header("surrogate-key").is_none());
    }
    let relaying = config(&[("relay_tags", "true")]);
    let relayed = run(&relaying, NOW, at("/c", "POST", b"1", &[]), &store, &tagged);
    assert_eq!(relayed.header("surrogate-key").as_deref(), Some("red blue"));
}

#[test]
fn purge_by_url_removes_exactly_that_urls_entries_and_by_query_only_that_query() {
    let cfg = admin_config();
    let store = filled(&cfg);
    assert_eq!(entry_count(&store), 4);
    let one_query = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"url":"/a?q=1"}"#);
    assert_eq!((one_query.status(), one_query.body()), (200, br#"{"purged":1,"soft":false}"#.to_vec()));
    // The path as requests are keyed: dot segments removed.
    let answer = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"url":"/x/../a"}"#);
    assert_eq!(answer.body(), br#"{"purged":2,"soft":false}"#.to_vec());
    assert_eq!(entry_count(&store), 1);
    let b = run(&cfg, NOW, at("/b", "POST", b"1", &[]), &store, &origin("max-age=60"));
    assert_eq!(b.header("cache-status").unwrap(), "post-cache; hit; ttl=60");
}

#[test]
fn purge_by_tag_removes_the_tagged_entries_and_their_markers() {
    let cfg = admin_config();
    let store = filled(&cfg);
    let answer = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"tags":["blue"]}"#);
    assert_eq!(answer.body(), br#"{"purged":2,"soft":false}"#.to_vec());
    assert_eq!(entry_count(&store), 2);
    let red = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"tags":["red"]}"#);
    assert_eq!(red.body(), br#"{"purged":0,"soft":false}"#.to_vec(), "its entry went with blue");
    assert_eq!(store.cache_keys().len(), 2, "no markers left");
}

#[test]
fn purge_of_an_exact_request_removes_the_entry_that_request_would_hit() {
    let cfg = admin_config();
    let store = filled(&cfg);
    let body = r#"{"request":{"method":"POST","path":"/a","headers":{"content-type":"application/json"},"body_base64":"Mg=="}}"#;
    // The fakes' requests carry no content-type: this one keys differently.
    assert_eq!(admin(&cfg, &store, "POST", "purge", Some(TOKEN), body).body(), br#"{"purged":0,"soft":false}"#.to_vec());
    let body = r#"{"request":{"method":"POST","path":"/a","body_base64":"Mg=="}}"#;
    assert_eq!(admin(&cfg, &store, "POST", "purge", Some(TOKEN), body).body(), br#"{"purged":1,"soft":false}"#.to_vec());
    assert_eq!(entry_count(&store), 3);
    let gone = run(&cfg, NOW, at("/a", "POST", b"2", &[]), &store, &origin("max-age=60"));
    assert_eq!(gone.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
}

#[test]
fn purge_all_leaves_keys_post_cache_did_not_write() {
    let cfg = admin_config();
    let store = filled(&cfg);
    store.entries.borrow_mut().insert("session:42".into(), b"theirs".to_vec());
    let answer = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"all":true}"#);
    assert_eq!(answer.body(), br#"{"purged":4,"soft":false}"#.to_vec());
    assert_eq!(store.entries.borrow().keys().cloned().collect::<Vec<_>>(), ["session:42"]);
}

#[test]
fn a_soft_purge_leaves_entries_stale_so_their_windows_still_serve() {
    let cfg = admin_config();
    let store = MemoryStore::default();
    run(&cfg, NOW, at("/s", "POST", b"1", &[]), &store, &origin("max-age=600, stale-while-revalidate=60"));
    let answer = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"url":"/s","soft":true}"#);
    assert_eq!(answer.body(), br#"{"purged":1,"soft":true}"#.to_vec());
    let runtime = FakeRuntime::default();
    let o = origin("max-age=600, stale-while-revalidate=60");
    let stale = run_with(&cfg, NOW + 1, at("/s", "POST", b"1", &[]), &store, &o, &runtime);
    assert_eq!(stale.header("cache-status").unwrap(), "post-cache; hit; ttl=-1");
    assert_eq!(o.calls.borrow().len(), 1, "one refresh");
}

#[test]
fn wrong_missing_and_almost_right_tokens_delete_nothing() {
    let cfg = admin_config();
    let store = filled(&cfg);
    let before = store.cache_keys().len();
    let almost = &TOKEN[..TOKEN.len() - 1];
    for auth in [None, Some("wrong-token-wrong-token-xx"), Some(almost)] {
        let answer = admin(&cfg, &store, "POST", "purge", auth, r#"{"all":true}"#);
        assert_eq!(answer.status(), 401, "{auth:?}");
        assert!(answer.header("www-authenticate").unwrap().starts_with("Bearer realm=\"post-cache\""));
    }
    assert_eq!(store.cache_keys().len(), before);
}

#[test]
fn bad_purge_bodies_get_400_naming_the_field_and_store_errors_never_200() {
    let cfg = admin_config();
    let store = filled(&cfg);
    let answer = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"tags":"red"}"#);
    assert_eq!(answer.status(), 400);
    assert_eq!(answer.body(), br#"{"error":"tags must be an array of strings","field":"tags"}"#.to_vec());
    store.failing.set(true);
    let failed = admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"all":true}"#);
    assert_eq!(failed.status(), 503);
    assert!(String::from_utf8(failed.body()).unwrap().contains("\"purged\":0"));
    assert_eq!(admin(&cfg, &store, "GET", "purge", Some(TOKEN), "").status(), 405);
    assert_eq!(admin(&cfg, &store, "POST", "nope", Some(TOKEN), "").status(), 404);
}

#[test]
fn stats_count_entries_and_markers() {
    let cfg = admin_config();
    let store = filled(&cfg);
    let answer = admin(&cfg, &store, "GET", "stats", Some(TOKEN), "");
    let text = String::from_utf8(answer.body()).unwrap();
    assert!(text.starts_with(r#"{"entries":4,"tag_markers":0,"segments":0,"indexes":4,"other_keys":0,"store_keys":8,"entry_bytes":"#), "{text}");
    assert!(text.ends_with(r#""entries_measured":4,"key_scheme":3,"record_version":4}"#), "{text}");
}

#[test]
fn without_a_token_the_admin_path_goes_to_the_origin() {
    let cfg = config(&[]);
    let store = MemoryStore::default();
    let mut req = request("POST", &[], br#"{"all":true}"#);
    req.path_with_query = "/.well-known/post-cache/purge".into();
    let o = origin("max-age=60");
    let answer = run(&cfg, NOW, req, &store, &o);
    assert_eq!(answer.header("cache-status").unwrap(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(o.calls.borrow().len(), 1);
}

#[test]
fn a_large_purge_stops_at_its_bound_and_continues_from_the_cursor() {
    // More entries than one URL's index holds: once full, the index keeps no
    // lines and the URL's key prefix finds its entries, in a listing bounded
    // per request.
    let cfg = admin_config();
    let store = MemoryStore::default();
    let o = origin("max-age=60");
    let bound = crate::proxy::admin::MAX_OPERATIONS;
    assert!(bound > crate::cache::index::MAX_LINES);
    let n = bound + 5;
    for i in 0..n {
        run(&cfg, NOW, at("/many", "POST", i.to_string().as_bytes(), &[]), &store, &o);
    }
    let index = crate::cache::index::Index::decode(&store.entries.borrow()[&crate::cache::key::uri_index_key("edge.example", "/many")]);
    assert!(index.full && index.lines.is_empty(), "a full URL index keeps no lines: the key prefix finds its entries");
    let first = String::from_utf8(admin(&cfg, &store, "POST", "purge", Some(TOKEN), r#"{"url":"/many"}"#).body()).unwrap();
    let cursor = first.split("\"continue\":\"").nth(1).unwrap().trim_end_matches("\"}").to_string();
    assert!(first.starts_with(&format!(r#"{{"purged":{bound},"#)), "{first}");
    assert_eq!(entry_count(&store), 5);
    let rest = admin(&cfg, &store, "POST", "purge", Some(TOKEN), &format!(r#"{{"url":"/many","continue":"{cursor}"}}"#));
    assert_eq!(rest.body(), br#"{"purged":5,"soft":false}"#.to_vec());
    assert_eq!(entry_count(&store), 0);
    let restarted = crate::cache::index::Index::decode(&store.entries.borrow()[&crate::cache::key::uri_index_key("edge.example", "/many")]);
    assert!(!restarted.full && restarted.lines.is_empty(), "the full index starts again once all is gone");
}

#[test]
fn a_successful_put_forgets_the_entries_of_its_url_and_a_failed_one_does_not() {
    let cfg = config(&[("invalidate_on_unsafe", "true")]);
    let store = filled(&cfg);
    run(&cfg, NOW, at("/a", "PUT", b"x", &[]), &store, &failing(500));
    assert_eq!(entry_count(&store), 4, "an error answer invalidates nothing");
    let mut moved = origin("no-store");
    moved.status = 201;
    moved.headers.push(("location".into(), b"/b".to_vec()));
    run(&cfg, NOW, at("/a?q=1", "PUT", b"x", &[]), &store, &moved);
    assert_eq!(entry_count(&store), 0, "/a with any query, and /b named by Location");
    let off = config(&[("invalidate_on_unsafe", "false")]);
    let kept = filled(&off);
    run(&off, NOW, at("/a", "DELETE", b"", &[]), &kept, &origin("no-store"));
    assert_eq!(entry_count(&kept), 4, "turned off");
    let default = config(&[]);
    let forgotten = filled(&default);
    run(&default, NOW, at("/a", "DELETE", b"", &[]), &forgotten, &origin("no-store"));
    assert_eq!(entry_count(&forgotten), 1, "on by default: /b stays");
}

#[test]
fn a_graphql_mutation_forgets_its_endpoints_queries_only_when_asked() {
    let json = [("content-type", "application/json")];
    let query = br#"{"query":"{ items { id } }"}"#;
    let mutation = br#"{"query":"mutation { addItem { id } }"}"#;
    for (flag, left) in [("false", 1), ("true", 0)] {
        let cfg = config(&[("body_format", "graphql"), ("invalidate_on_mutation", flag)]);
        let store = MemoryStore::default();
        let o = answering(r#"{"data":{"items":[]}}"#);
        run(&cfg, NOW, at("/graphql", "POST", query, &json), &store, &o);
        assert_eq!(entry_count(&store), 1);
        let m = run(&cfg, NOW, at("/graphql", "POST", mutation, &json), &store, &o);
        assert_eq!(m.header("cache-status").unwrap(), "post-cache; fwd=bypass; detail=mutation");
        assert_eq!(entry_count(&store), left, "invalidate_on_mutation={flag}");
    }
}
