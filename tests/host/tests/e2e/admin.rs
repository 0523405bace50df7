//! End to end: the admin API (purge by URL, tag, exact request, everything, soft)
//! and invalidation by unsafe methods, against the host's `get-keys`.

use super::{setup_with, Setup, JSON};
use spin_test_host::client::{Framing, Reply};
use std::sync::atomic::Ordering;
use std::time::Duration;

const TOKEN: &str = "e2e-purge-token-0123456789";

async fn admin_setup() -> Setup {
    setup_with(&[("purge_token", TOKEN)], |_| {}).await
}

async fn purge(s: &mut Setup, auth: Option<&str>, body: &str) -> Reply {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let mut headers = vec![JSON];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    s.client.send("POST", "/.well-known/post-cache/purge", &headers, body.as_bytes(), Framing::Sized).await.unwrap()
}

fn entries(s: &Setup) -> Vec<String> {
    let mut keys: Vec<String> = s.host.kv.keys_but_indexes("default").into_iter().filter(|k| !k.contains(":tag:")).collect();
    keys.sort();
    keys
}

/// `/one` with three bodies (two tagged `t1`, one `t2`), `/two` with two (one tagged `t1`).
async fn fill(s: &mut Setup) {
    for (path, body) in [
        ("/one?cc=max-age%3D600&tags=t1", "1"),
        ("/one?cc=max-age%3D600&tags=t1%20t2", "2"),
        ("/one?cc=max-age%3D600", "3"),
        ("/two?cc=max-age%3D600&tags=t1", "1"),
        ("/two?cc=max-age%3D600", "2"),
    ] {
        let r = s.client.post(path, &[JSON], body.as_bytes()).await;
        assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
        assert!(r.header("surrogate-key").is_none(), "tags are not relayed");
    }
    assert_eq!(entries(s).len(), 5);
}

fn purged(r: &Reply) -> u64 {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["purged"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_url_then_by_tag_then_exact_request_each_remove_exactly_their_entries() {
    let mut s = admin_setup().await;
    fill(&mut s).await;
    let all = entries(&s);
    // By URL: the three entries of /one, whatever their query or body.
    assert_eq!(purged(&purge(&mut s, Some(TOKEN), r#"{"url":"/one"}"#).await), 3);
    let left = entries(&s);
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|k| all.contains(k)));
    let hit = s.client.post("/two?cc=max-age%3D600", &[JSON], b"2").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=600");
    let miss = s.client.post("/one?cc=max-age%3D600", &[JSON], b"3").await;
    assert_eq!(miss.cache_status(), "post-cache; fwd=uri-miss; detail=storing");

    // By tag: the one t1 entry left (of /two); the untagged ones stay.
    assert_eq!(purged(&purge(&mut s, Some(TOKEN), r#"{"tags":["t1"]}"#).await), 1);
    assert_eq!(entries(&s).len(), 2);
    let gone = s.client.post("/two?cc=max-age%3D600&tags=t1", &[JSON], b"1").await;
    assert_eq!(gone.cache_status(), "post-cache; fwd=uri-miss; detail=storing");

    // Exact request: keyed as the live one, content-type included.
    let exact = r#"{"request":{"method":"POST","path":"/two","query":"cc=max-age%3D600","headers":{"content-type":"application/json"},"body_base64":"Mg=="}}"#;
    assert_eq!(purged(&purge(&mut s, Some(TOKEN), exact).await), 1);
    let again = s.client.post("/two?cc=max-age%3D600", &[JSON], b"2").await;
    assert_eq!(again.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let other = s.client.post("/one?cc=max-age%3D600", &[JSON], b"3").await;
    assert_eq!(other.cache_status(), "post-cache; hit; ttl=600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_all_leaves_keys_post_cache_did_not_write() {
    let mut s = admin_setup().await;
    fill(&mut s).await;
    s.host.kv.insert("default", "app:settings", b"theirs".to_vec());
    assert_eq!(purged(&purge(&mut s, Some(TOKEN), r#"{"all":true}"#).await), 5);
    assert_eq!(s.host.kv.keys_but_indexes("default"), ["app:settings"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_purge_then_a_request_gives_a_stale_hit_and_one_refresh() {
    let mut s = admin_setup().await;
    const PATH: &str = "/soft?cc=max-age%3D600%2C%20stale-while-revalidate%3D60";
    let first = s.client.post(PATH, &[JSON], b"1").await;
    assert_eq!(purged(&purge(&mut s, Some(TOKEN), r#"{"url":"/soft","soft":true}"#).await), 1);
    let stale = s.client.post(PATH, &[JSON], b"1").await;
    assert_eq!(stale.cache_status(), "post-cache; hit; ttl=0");
    assert_eq!(stale.body, first.body);
    s.host.wait_idle(Duration::from_secs(10)).await;
    assert_eq!(s.origin.count("POST", "/soft", b"1"), 2, "the first miss and one refresh");
    let fresh = s.client.post(PATH, &[JSON], b"1").await;
    assert_eq!(fresh.cache_status(), "post-cache; hit; ttl=600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_url_makes_its_next_post_a_miss() {
    let mut s = setup_with(&[("purge_token", TOKEN), ("invalidate_on_unsafe", "true")], |_| {}).await;
    fill(&mut s).await;
    let put = s.client.send("PUT", "/one", &[JSON], b"{}", Framing::Sized).await.unwrap();
    assert_eq!(put.status, 200);
    let r = s.client.post("/one?cc=max-age%3D600", &[JSON], b"3").await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let kept = s.client.post("/two?cc=max-age%3D600", &[JSON], b"2").await;
    assert_eq!(kept.cache_status(), "post-cache; hit; ttl=600");
    // A PUT the origin refuses invalidates nothing.
    let refused = s.client.send("PUT", "/two?status=409", &[JSON], b"{}", Framing::Sized).await.unwrap();
    assert_eq!(refused.status, 409);
    let still = s.client.post("/two?cc=max-age%3D600", &[JSON], b"2").await;
    assert_eq!(still.cache_status(), "post-cache; hit; ttl=600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_and_almost_right_tokens_delete_nothing() {
    let mut s = admin_setup().await;
    fill(&mut s).await;
    let almost = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
    for auth in [None, Some("not-the-token-not-the-token"), Some(almost.as_str()), Some(&TOKEN[..TOKEN.len() - 1])] {
        let r = purge(&mut s, auth, r#"{"all":true}"#).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    assert_eq!(entries(&s).len(), 5);
    assert_eq!(s.origin.count_path("POST", "/.well-known/post-cache/purge"), 0, "never forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_admin_path_goes_to_the_origin() {
    let mut s = setup_with(&[], |_| {}).await;
    let r = purge(&mut s, Some(TOKEN), r#"{"all":true}"#).await;
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=bypass; detail=auth"));
    assert_eq!(s.origin.count_path("POST", "/.well-known/post-cache/purge"), 1, "forwarded like any request");
    let r = s.client.post("/.well-known/post-cache/purge", &[JSON], br#"{"all":true}"#).await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.origin.count_path("POST", "/.well-known/post-cache/purge"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_never_answers_200_and_stats_count_what_is_there() {
    let mut s = admin_setup().await;
    fill(&mut s).await;
    let stats = s.client.send("GET", "/.well-known/post-cache/stats", &[("authorization", &format!("Bearer {TOKEN}"))], b"", Framing::Sized).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    let counts = ["entries", "tag_markers", "indexes", "record_version"].map(|k| v[k].as_u64());
    assert_eq!(counts, [Some(5), Some(0), Some(4), Some(4)], "t1, t2, /one and /two are indexed");
    assert!(v["entry_bytes"].as_u64().unwrap() > 5 * 100);
    let kv = s.host.kv.clone();
    for fault in [&kv.faults.fail, &kv.faults.fail_listing] {
        fault.store(true, Ordering::SeqCst);
        let r = purge(&mut s, Some(TOKEN), r#"{"all":true}"#).await;
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains(r#""purged":0"#));
        fault.store(false, Ordering::SeqCst);
    }
    assert_eq!(entries(&s).len(), 5);
    // An invalidating PUT reads its URL's index: a store that cannot list
    // still has /one's entries forgotten; one that fails costs the cache,
    // not the PUT.
    let mut w = setup_with(&[("invalidate_on_unsafe", "true"), ("sweep_every", "0")], |_| {}).await;
    fill(&mut w).await;
    w.host.kv.faults.fail_listing.store(true, Ordering::SeqCst);
    let put = w.client.send("PUT", "/one", &[JSON], b"{}", Framing::Sized).await.unwrap();
    assert_eq!(put.status, 200);
    w.host.wait_idle(Duration::from_secs(10)).await;
    assert_eq!(entries(&w).len(), 2, "/two's are left");
    w.host.kv.faults.fail.store(true, Ordering::SeqCst);
    let put = w.client.send("PUT", "/two", &[JSON], b"{}", Framing::Sized).await.unwrap();
    assert_eq!(put.status, 200);
    w.host.wait_idle(Duration::from_secs(10)).await;
    w.host.kv.faults.fail.store(false, Ordering::SeqCst);
    assert_eq!(entries(&w).len(), 2);
    let bad = purge(&mut s, Some(TOKEN), r#"{"url":42}"#).await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains(r#""field":"url""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_the_store_fails_part_way_answers_503_with_a_cursor_that_continues_it() {
    let mut s = admin_setup().await;
    fill(&mut s).await;
    let auth = format!("Bearer {TOKEN}");
    let post = |body: String| (body, auth.clone());
    // The open, the listing and three deletes succeed; then the store is gone.
    *s.host.kv.faults.fail_after.lock().unwrap() = Some(5);
    let (body, bearer) = post(r#"{"all":true}"#.into());
    let r = s.client.send("POST", "/.well-known/post-cache/purge", &[JSON, ("authorization", &bearer)], body.as_bytes(), Framing::Sized).await.unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // Keys go in order; entries sort before tag markers.
    assert_eq!(v["purged"].as_u64(), Some(3));
    let cursor = v["continue"].as_str().expect("a cursor").to_string();
    assert_eq!(entries(&s).len(), 2);
    assert!(entries(&s).iter().all(|k| *k > cursor), "what is left comes after the cursor");
    *s.host.kv.faults.fail_after.lock().unwrap() = None;
    let (body, bearer) = post(format!(r#"{{"all":true,"continue":{}}}"#, serde_json::Value::String(cursor)));
    let r = s.client.send("POST", "/.well-known/post-cache/purge", &[JSON, ("authorization", &bearer)], body.as_bytes(), Framing::Sized).await.unwrap();
    assert_eq!(purged(&r), 2);
    assert!(s.host.kv.keys_but_indexes("default").is_empty(), "{:?}", s.host.kv.keys_but_indexes("default"));
    let r = s.client.post("/one?cc=max-age%3D600&tags=t1", &[JSON], b"1").await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
}
