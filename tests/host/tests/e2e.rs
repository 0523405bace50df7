//! End to end: the built post-cache component in the Spin-compatible host, in
//! front of a real loopback origin that counts what reaches it.

use sha2::{Digest, Sha256};
use spin_test_host::client::{Client, Framing, Reply};
use spin_test_host::origin::{binary_body, TestOrigin};
use spin_test_host::{build, engine, load, start, HostConfig, RunningHost};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use wasmtime::component::Component;
use wasmtime::Engine;

#[path = "e2e/protocols.rs"]
mod protocols;
#[path = "e2e/admin.rs"]
mod admin;
#[path = "e2e/stale.rs"]
mod stale;
#[path = "e2e/segments.rs"]
mod segments;
#[path = "e2e/races.rs"]
mod races;
#[path = "e2e/store_faults.rs"]
mod store_faults;
#[path = "e2e/sweep.rs"]
mod sweep;

fn compiled() -> &'static (Engine, Component) {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = build::component("post-cache").expect("component builds");
        let engine = engine().expect("engine");
        let component = load(&engine, &path).expect("component compiles");
        (engine, component)
    })
}

struct Setup {
    origin: TestOrigin,
    host: RunningHost,
    client: SettledClient,
}

/// A client that, after each response, waits until no instance of the host is
/// still running. A miss writes its record after the client has its answer
/// (while Spin keeps the instance alive); these tests are about what is stored
/// and replayed, so each request starts after the previous one has finished.
struct SettledClient {
    client: Client,
    stats: std::sync::Arc<spin_test_host::HostStats>,
}

impl SettledClient {
    async fn settle(&self) {
        let started = std::time::Instant::now();
        while self.stats.active.load(Ordering::SeqCst) > 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "an instance never finished");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let reply = self.client.post(path, headers, body).await;
        self.settle().await;
        reply
    }

    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], framing: Framing) -> std::io::Result<Reply> {
        let reply = self.client.send(method, path, headers, body, framing).await;
        self.settle().await;
        reply
    }
}

async fn setup_with(vars: &[(&str, &str)], tweak: impl FnOnce(&mut HostConfig)) -> Setup {
    let origin = TestOrigin::start().await.unwrap();
    let mut config = HostConfig::default();
    config.variables.insert("origin".into(), origin.base_url());
    for (k, v) in vars {
        config.variables.insert(k.to_string(), v.to_string());
    }
    config.allowed_outbound_hosts.push(origin.base_url());
    tweak(&mut config);
    let (engine, component) = compiled();
    let host = start(engine, component, config).await.unwrap();
    host.freeze_clock();
    let client = SettledClient { client: Client::new(host.addr), stats: host.stats.clone() };
    Setup { origin, host, client }
}

async fn setup() -> Setup {
    setup_with(&[], |_| {}).await
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Headers without the ones that legitimately differ between a miss and its replay.
fn stable_headers(r: &Reply) -> Vec<(String, Vec<u8>)> {
    r.headers
        .iter()
        .filter(|(n, _)| n != "age" && n != "cache-status")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_post_reaches_origin_once_and_replay_is_byte_identical() {
    let mut s = setup().await;
    let body = br#"{"query":"{ me { id } }"}"#;
    let first = s.client.post("/graphql?cc=max-age%3D60", &[JSON], body).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let second = s.client.post("/graphql?cc=max-age%3D60", &[JSON], body).await;
    assert_eq!(second.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(s.origin.count("POST", "/graphql", body), 1);
    assert_eq!(second.status, first.status);
    assert_eq!(stable_headers(&second), stable_headers(&first));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("age").as_deref(), Some("0"));
    // Repeated headers survive in order.
    let multi: Vec<_> = second.headers.iter().filter(|(n, _)| n == "x-multi").map(|(_, v)| v.clone()).collect();
    assert_eq!(multi, vec![b"one".to_vec(), b"two".to_vec()]);
    // The key never appears in what the client sees.
    let (keys, indexes): (Vec<String>, Vec<String>) = s.host.kv.keys("default").into_iter().partition(|k| !k.starts_with("post-cache:v3:ix:"));
    assert_eq!((keys.len(), indexes.len()), (1, 1), "the entry and its URL's index");
    assert!(keys[0].len() <= 255 && indexes[0].len() <= 255);
    assert!(keys[0].starts_with("post-cache:v3:"), "{}", keys[0]);
    let digest_hex = keys[0].rsplit(':').next().unwrap();
    assert_eq!(digest_hex.len(), 64);
    for r in [&first, &second] {
        for (name, value) in &r.headers {
            let text = format!("{name}: {}", String::from_utf8_lossy(value));
            assert!(!text.contains(digest_hex), "key leaked in {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_method_is_cached_and_binary_bodies_do_not_collide() {
    let mut s = setup().await;
    let a = [0xffu8, 0x00, 0x80];
    let b = [0xfeu8, 0x00, 0x80];
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    for body in [&a, &b, &a, &b] {
        let r = s.client.send("QUERY", "/search", &[], body, Framing::Sized).await.unwrap();
        assert_eq!(r.status, 200);
        let digest = Sha256::digest(body).iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert!(String::from_utf8_lossy(&r.body).contains(&digest), "answer for the other body");
    }
    assert_eq!(s.origin.count("QUERY", "/search", &a), 1);
    assert_eq!(s.origin.count("QUERY", "/search", &b), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_passes_through_and_is_never_stored() {
    let mut s = setup().await;
    for _ in 0..2 {
        let r = s.client.send("GET", "/items?cc=max-age%3D60&size=70000", &[], b"", Framing::Sized).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 70000);
        assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=method");
    }
    assert_eq!(s.origin.count("GET", "/items", b""), 2);
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_and_hop_by_hop_headers_never_reach_the_origin() {
    let mut s = setup().await;
    s.client.post("/h", &[JSON, ("x-custom", "1"), ("x-custom", "2"), ("te", "trailers")], b"{}").await;
    let seen = s.origin.last_headers();
    assert!(seen.iter().all(|(n, _)| !n.starts_with("spin-")), "{seen:?}");
    assert!(seen.iter().all(|(n, _)| n != "te"));
    let custom: Vec<_> = seen.iter().filter(|(n, _)| n == "x-custom").collect();
    assert_eq!(custom.len(), 2);
    let host = seen.iter().find(|(n, _)| n == "host").map(|(_, v)| v.clone());
    assert_eq!(host, Some(s.origin.addr.to_string().into_bytes()), "Host is the origin's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_bypass_by_default_and_are_never_shared() {
    let mut s = setup().await;
    let body = b"{\"q\":1}";
    let alice = s.client.post("/me?cc=public%2C%20max-age%3D60", &[JSON, ("authorization", "Bearer alice")], body).await;
    let bob = s.client.post("/me?cc=public%2C%20max-age%3D60", &[JSON, ("authorization", "Bearer bob")], body).await;
    let cookie = s.client.post("/me?cc=public%2C%20max-age%3D60", &[JSON, ("cookie", "sid=1")], body).await;
    for r in [&alice, &bob, &cookie] {
        assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=auth");
    }
    assert_eq!(s.origin.count("POST", "/me", body), 3);
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_scoping_keeps_users_apart_and_stores_no_credential() {
    let vars = [("scope_by_credential", "true"), ("credential_salt", "a-test-salt-of-some-length")];
    let mut s = setup_with(&vars, |_| {}).await;
    let body = b"{\"q\":1}";
    let path = "/me?cc=max-age%3D60";
    let a1 = s.client.post(path, &[JSON, ("authorization", "Bearer alice-secret")], body).await;
    let a2 = s.client.post(path, &[JSON, ("authorization", "Bearer alice-secret")], body).await;
    let b1 = s.client.post(path, &[JSON, ("authorization", "Bearer bob-secret")], body).await;
    assert_eq!(a1.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(a2.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(b1.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(a2.body, a1.body);
    assert_ne!(b1.body, a1.body, "bob got alice's answer");
    assert_eq!(s.origin.count("POST", "/me", body), 2);
    // The origin still receives the credential.
    assert!(s.origin.last_headers().iter().any(|(n, v)| n == "authorization" && v == b"Bearer bob-secret"));
    for key in s.host.kv.keys_but_indexes("default") {
        let value = s.host.kv.get("default", &key).unwrap();
        for secret in [&b"alice-secret"[..], b"bob-secret"] {
            assert!(!value.windows(secret.len()).any(|w| w == secret), "credential stored");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_responses_are_never_stored() {
    // RFC 9111 lets a 5xx with explicit freshness be stored; this operator
    // keeps every 5xx out (the 500 below has max-age).
    let mut s = setup_with(&[("store_server_errors", "false")], |_| {}).await;
    let cases = [
        ("/e1?status=500&cc=max-age%3D60", "post-cache; fwd=uri-miss; detail=server-error"),
        ("/e2?status=503", "post-cache; fwd=uri-miss; detail=server-error"),
        ("/e3?cc=no-store", "post-cache; fwd=uri-miss; detail=no-store"),
        ("/e4?cc=private%2C%20max-age%3D60", "post-cache; fwd=uri-miss; detail=private"),
        ("/e5?set_cookie=1&cc=max-age%3D60", "post-cache; fwd=uri-miss; detail=set-cookie"),
        ("/e6?vary=*", "post-cache; fwd=uri-miss; detail=vary-star"),
        ("/e7?status=206", "post-cache; fwd=uri-miss; detail=partial-content"),
        ("/e8?status=201", "post-cache; fwd=uri-miss; detail=status"),
    ];
    for (path, status) in cases {
        for _ in 0..2 {
            let r = s.client.post(path, &[JSON], b"{}").await;
            assert_eq!(r.cache_status(), status, "{path}");
        }
        let bare = path.split('?').next().unwrap();
        assert_eq!(s.origin.count("POST", bare, b"{}"), 2, "{path}");
    }
    // Both Set-Cookie lines reach the client.
    let r = s.client.post("/e5?set_cookie=1", &[JSON], b"{}").await;
    assert_eq!(r.headers.iter().filter(|(n, _)| n == "set-cookie").count(), 2);
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_expires_on_the_guest_clock() {
    let mut s = setup().await;
    let path = "/ttl?cc=max-age%3D30";
    assert_eq!(s.client.post(path, &[JSON], b"1").await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    s.host.advance_clock(20);
    let hit = s.client.post(path, &[JSON], b"1").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=10");
    assert_eq!(hit.header("age").as_deref(), Some("20"));
    s.host.advance_clock(11);
    let stale = s.client.post(path, &[JSON], b"1").await;
    assert_eq!(stale.cache_status(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(s.origin.count("POST", "/ttl", b"1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ttl_applies_when_the_origin_is_silent() {
    let mut s = setup_with(&[("default_ttl", "5")], |_| {}).await;
    s.client.post("/d", &[JSON], b"1").await;
    assert_eq!(s.client.post("/d", &[JSON], b"1").await.cache_status(), "post-cache; hit; ttl=5");
    s.host.advance_clock(6);
    assert_eq!(s.client.post("/d", &[JSON], b"1").await.cache_status(), "post-cache; fwd=stale; detail=storing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_mismatch_is_a_miss() {
    let mut s = setup().await;
    let path = "/v?vary=accept-language&cc=max-age%3D60";
    let en = [JSON, ("accept-language", "en")];
    let de = [JSON, ("accept-language", "de")];
    assert_eq!(s.client.post(path, &en, b"q").await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(s.client.post(path, &en, b"q").await.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(s.client.post(path, &de, b"q").await.cache_status(), "post-cache; fwd=vary-miss; detail=storing");
    assert_eq!(s.client.post(path, &de, b"q").await.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(s.origin.count("POST", "/v", b"q"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_no_cache_refreshes_and_only_if_cached_never_forwards() {
    let mut s = setup().await;
    let path = "/r?cc=max-age%3D60";
    let miss = s.client.post(path, &[JSON], b"x").await;
    let refreshed = s.client.post(path, &[JSON, ("cache-control", "no-cache")], b"x").await;
    assert_eq!(refreshed.cache_status(), "post-cache; fwd=request; detail=storing");
    assert_ne!(refreshed.body, miss.body);
    let max_age_0 = s.client.post(path, &[JSON, ("cache-control", "max-age=0")], b"x").await;
    assert_eq!(max_age_0.cache_status(), "post-cache; fwd=request; detail=storing");
    let hit = s.client.post(path, &[JSON], b"x").await;
    assert_eq!(hit.body, max_age_0.body, "the refreshed entry replaced the old one");
    assert_eq!(s.origin.count("POST", "/r", b"x"), 3);

    let no_store = s.client.post(path, &[JSON, ("cache-control", "no-store")], b"x").await;
    assert_eq!(no_store.cache_status(), "post-cache; fwd=bypass; detail=no-store");

    let only = s.client.post("/never", &[JSON, ("cache-control", "only-if-cached")], b"x").await;
    assert_eq!(only.status, 504);
    assert_eq!(only.cache_status(), "post-cache; detail=only-if-cached");
    assert_eq!(s.origin.count("POST", "/never", b"x"), 0);
    let only_hit = s.client.post(path, &[JSON, ("cache-control", "only-if-cached")], b"x").await;
    assert_eq!(only_hit.status, 200);
    assert!(only_hit.cache_status().contains("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_sized_bodies_with_the_same_bytes_share_an_entry() {
    let mut s = setup().await;
    let body = binary_body(100_000, 7);
    let sized = s.client.send("POST", "/c?cc=max-age%3D60", &[], &body, Framing::Sized).await.unwrap();
    let chunked = s.client.send("POST", "/c?cc=max-age%3D60", &[], &body, Framing::Chunked(4093)).await.unwrap();
    assert_eq!(sized.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(chunked.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(chunked.body, sized.body);
    assert_eq!(s.origin.count("POST", "/c", &body), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_arrive_intact() {
    let mut s = setup().await;
    // A 5 MiB request body is over max_body_bytes: forwarded whole, not cached.
    let big = binary_body(5 << 20, 1);
    for framing in [Framing::Sized, Framing::Chunked(64 * 1024)] {
        let r = s.client.send("POST", "/big", &[], &big, framing).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=body-too-large");
        let digest = Sha256::digest(&big).iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert!(String::from_utf8_lossy(&r.body).contains(&digest));
        assert_eq!(s.origin.last_body_len(), 5 << 20);
    }
    // A 17 MiB response is over max_entry_bytes (16 MiB): delivered whole, not stored.
    for path in ["/bigresp?size=17825792&cc=max-age%3D60", "/bigresp?chunked=1&size=17825792&cc=max-age%3D60"] {
        let r = s.client.post(path, &[], b"r").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 17 << 20);
        let count: u64 = r.header("x-origin-count").unwrap().parse().unwrap();
        assert!(r.body[..] == binary_body(17 << 20, count)[..], "17 MiB body differs from the origin's");
        // A declared length over the cap is known before the head is sent; a
        // chunked answer is teed and found too large on the way.
        let expected = if path.contains("chunked") { "post-cache; fwd=uri-miss; detail=storing" } else { "post-cache; fwd=uri-miss; detail=too-large" };
        assert_eq!(r.cache_status(), expected);
    }
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_just_under_the_value_cap_is_stored_whole_under_hosted_limits() {
    let mut s = setup_with(&[], |c| c.kv_max_value_bytes = Some(1_000_000)).await;
    let path = "/fits?size=950000&cc=max-age%3D60";
    let first = s.client.post(path, &[], b"f").await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let second = s.client.post(path, &[], b"f").await;
    assert_eq!(second.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(second.body, first.body);
    assert_eq!(s.host.kv.keys_but_indexes("default").len(), 1, "one value, no segments");
    // Past max_entry_bytes it is not stored.
    let mut small = setup_with(&[("max_entry_bytes", "900000")], |c| c.kv_max_value_bytes = Some(1_000_000)).await;
    let over = small.client.post("/over?size=970000&cc=max-age%3D60", &[], b"f").await;
    assert_eq!(over.cache_status(), "post-cache; fwd=uri-miss; detail=too-large");
    assert_eq!(over.body.len(), 970000);
    assert!(small.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_cap_set_above_the_stores_answers_and_stores_nothing() {
    let vars = [("max_value_bytes", "4000000")];
    let mut s = setup_with(&vars, |c| c.kv_max_value_bytes = Some(1_000_000)).await;
    let r = s.client.post("/x?size=2000000&cc=max-age%3D60", &[], b"f").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2_000_000);
    // The write comes after the answer; it fails (logged), and the collapse
    // mark is taken back: nothing is left under the key.
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert!(s.host.kv.keys_but_indexes("default").is_empty());
    let again = s.client.post("/x?size=2000000&cc=max-age%3D60", &[], b"f").await;
    assert_eq!(again.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_answered_before_its_store_write_and_the_entry_is_there_after_it() {
    let s = setup().await;
    s.host.kv.faults.set_delay_ms.store(2000, Ordering::SeqCst);
    // A plain client, not one that waits for the instance to finish.
    let mut client = Client::new(s.host.addr);
    let miss = client.post("/slowset?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(miss.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    // The client has its whole answer while the write is still under way.
    assert!(s.host.stats.active.load(Ordering::SeqCst) > 0, "the instance is still writing");
    assert!(s.host.kv.keys_but_indexes("default").iter().all(|k| s.host.kv.get("default", k).map_or(true, |v| v.len() < 100)), "no record yet");
    s.host.wait_idle(std::time::Duration::from_secs(20)).await;
    s.host.kv.faults.set_delay_ms.store(0, Ordering::SeqCst);
    let hit = client.post("/slowset?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(hit.body, miss.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_down_is_502_and_slow_origin_is_504() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut s = setup_with(&[("origin", &dead), ("origin_timeout", "1")], |c| {
        c.allowed_outbound_hosts.push(dead.clone());
    })
    .await;
    let r = s.client.post("/x", &[JSON], b"{}").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=origin-unreachable");
    assert!(String::from_utf8_lossy(&r.body).contains("could not be reached"));
    let get = s.client.send("GET", "/x", &[], b"", Framing::Sized).await.unwrap();
    assert_eq!(get.status, 502);
    assert_eq!(get.cache_status(), "post-cache; fwd=bypass; detail=origin-unreachable");

    let mut slow = setup_with(&[("origin_timeout", "1")], |_| {}).await;
    let started = std::time::Instant::now();
    let r = slow.client.post("/slow?delay_ms=3000", &[JSON], b"{}").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=origin-timeout");
    assert!(started.elapsed() < std::time::Duration::from_millis(2900));
    assert!(slow.host.kv.keys_but_indexes("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_hosts_not_allowed_are_denied_like_spin() {
    let mut s = setup_with(&[], |c| c.allowed_outbound_hosts.clear()).await;
    let r = s.client.post("/x", &[JSON], b"{}").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=origin-denied");
    assert_eq!(s.origin.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_failing_on_every_call_never_fails_a_request() {
    let mut s = setup().await;
    s.host.kv.faults.fail.store(true, Ordering::SeqCst);
    let methods = ["POST", "QUERY", "GET", "PUT", "DELETE"];
    for i in 0..100 {
        let method = methods[i % methods.len()];
        let body = format!("{{\"i\":{i}}}");
        let r = s
            .client
            .send(method, "/kv?cc=max-age%3D60", &[JSON], body.as_bytes(), Framing::Sized)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{method} {i}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains(&format!("\"method\":\"{method}\"")), "{text}");
        let expected = if matches!(method, "POST" | "QUERY") {
            "post-cache; fwd=bypass; detail=store-error"
        } else {
            "post-cache; fwd=bypass; detail=method"
        };
        assert_eq!(r.cache_status(), expected);
    }
    assert_eq!(s.origin.total(), 100);
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_kv_still_answers_correctly() {
    let mut s = setup().await;
    s.host.kv.faults.delay_ms.store(50, Ordering::SeqCst);
    let a = s.client.post("/slowkv?cc=max-age%3D60", &[JSON], b"1").await;
    let b = s.client.post("/slowkv?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(a.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(b.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(a.body, b.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_ungranted_store_labels_fail_open() {
    // Granted but not defined by the runtime: no-such-store.
    let mut s = setup_with(&[("kv_store", "cache")], |c| c.key_value_stores.push("cache".into())).await;
    let r = s.client.post("/l?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=store-error");
    // Defined but not granted: access-denied.
    let mut s = setup_with(&[("kv_store", "cache")], |c| c.defined_stores.push("cache".into())).await;
    let r = s.client.post("/l?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "post-cache; fwd=bypass; detail=store-error");
    // Both: it works.
    let mut s = setup_with(&[("kv_store", "cache")], |c| {
        c.key_value_stores.push("cache".into());
        c.defined_stores.push("cache".into());
    })
    .await;
    s.client.post("/l?cc=max-age%3D60", &[JSON], b"1").await;
    assert_eq!(s.host.kv.keys_but_indexes("cache").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_entry_is_a_miss_and_is_rewritten() {
    let mut s = setup().await;
    let path = "/corrupt?cc=max-age%3D60";
    s.client.post(path, &[JSON], b"1").await;
    let key = s.host.kv.keys_but_indexes("default").pop().unwrap();
    let good = s.host.kv.get("default", &key).unwrap();
    // The entry and its URL's index: a corrupt index reads as full, which
    // costs purges of the URL a listing and stores nothing less.
    assert_eq!(s.host.kv.corrupt_all("default"), 2);
    let after_corruption = s.client.post(path, &[JSON], b"1").await;
    assert_eq!(after_corruption.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert!(String::from_utf8_lossy(&after_corruption.body).contains("\"count\":2"));
    let rewritten = s.host.kv.get("default", &key).unwrap();
    assert_ne!(rewritten, good, "a new record was written");
    let hit = s.client.post(path, &[JSON], b"1").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(hit.body, after_corruption.body);
    // Garbage in the slot is a miss too.
    s.host.kv.insert("default", &key, b"not a record".to_vec());
    let r = s.client.post(path, &[JSON], b"1").await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_misses_all_get_complete_answers() {
    let s = setup().await;
    let addr = s.host.addr;
    let body = binary_body(20_000, 3);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            client.post("/herd?size=50000&cc=max-age%3D60", &[], &body).await
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let origin_calls = s.origin.count("POST", "/herd", &body);
    assert!((1..=32).contains(&origin_calls));
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 50_000);
        // Each answer is one of the origin's complete answers.
        let count: u64 = r.header("x-origin-count").unwrap().parse().unwrap();
        assert!(r.body[..] == binary_body(50_000, count)[..], "body differs from the origin's");
    }
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_answers_500_naming_the_variable() {
    let mut s = setup_with(&[("default_ttl", "soon")], |_| {}).await;
    let r = s.client.post("/x", &[JSON], b"{}").await;
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("default_ttl"));
    let mut s = setup_with(&[], |c| {
        c.variables.remove("origin");
    })
    .await;
    let r = s.client.post("/x", &[JSON], b"{}").await;
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("`origin`"));
}

#[test]
fn component_imports_only_wasi_0_2_and_spin_2_0() {
    let path = build::component("post-cache").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::ComponentImportSection(section) = payload.unwrap() {
            for import in section {
                let import = import.unwrap();
                // Instance imports are the interfaces; type imports belong to nested components.
                if matches!(import.ty, wasmparser::ComponentTypeRef::Instance(_)) {
                    imports.push(import.name.name.to_string());
                }
            }
        }
    }
    assert!(!imports.is_empty());
    for name in &imports {
        let ok = (name.starts_with("wasi:") && name.contains("@0.2."))
            || name == "fermyon:spin/key-value@2.0.0"
            || name == "fermyon:spin/variables@2.0.0";
        assert!(ok, "unexpected import {name}; all: {imports:?}");
    }
    assert!(imports.iter().any(|n| n == "fermyon:spin/key-value@2.0.0"));
    assert!(imports.iter().any(|n| n.starts_with("wasi:http/outgoing-handler@0.2.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_messages_cross_the_proxy_whole_so_they_can_leave_in_one_write() {
    let mut s = setup().await;
    // A small answer the origin sends chunked reaches the client with its exact
    // length: it was read whole before its head was handed over.
    let get = s.client.send("GET", "/small?chunked=1&size=3000", &[], b"", Framing::Sized).await.unwrap();
    assert_eq!((get.status, get.body.len()), (200, 3000));
    assert_eq!(get.header("content-length").as_deref(), Some("3000"));
    assert!(get.header("transfer-encoding").is_none());
    // A GET goes to the origin without a body stream, so the host's client
    // frames it without chunking (and without a second write for the terminator).
    assert!(s.origin.last_headers().iter().all(|(n, _)| n != "transfer-encoding" && n != "content-length"));
    // A small request body sent around the cache goes with its length.
    let post = s.client.send("POST", "/small", &[JSON, ("cache-control", "no-store")], b"{\"a\":1}", Framing::Chunked(3)).await.unwrap();
    assert_eq!(post.status, 200);
    let sent = s.origin.last_headers();
    assert!(sent.iter().any(|(n, v)| n == "content-length" && v == b"7"), "{sent:?}");
    // A large answer still streams.
    let big = s.client.send("GET", "/big?chunked=1&size=300000", &[], b"", Framing::Sized).await.unwrap();
    assert_eq!(big.body.len(), 300_000);
    assert!(big.header("content-length").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_body_that_breaks_is_a_502_before_the_head_and_a_broken_stream_after_it_and_neither_is_stored() {
    let mut s = setup().await;
    // Within the 64 KiB read-ahead: nothing was sent when it broke.
    s.origin.set_faults(spin_test_host::origin::Faults { reset_mid_body: 1, ..Default::default() });
    let r = s.client.post("/brk?size=40000&cc=max-age%3D60", &[], b"b").await;
    assert_eq!((r.status, r.cache_status().as_str()), (502, "post-cache; fwd=uri-miss; detail=origin-body"));
    assert!(s.host.kv.keys_but_indexes("default").is_empty(), "{:?}", s.host.kv.keys_but_indexes("default"));
    let again = s.client.post("/brk?size=40000&cc=max-age%3D60", &[], b"b").await;
    assert_eq!((again.status, again.body.len()), (200, 40_000));
    assert_eq!(again.cache_status(), "post-cache; fwd=uri-miss; detail=storing");

    // Over it: the head went out as the origin's arrived, so the client sees
    // the body end short (never a complete-looking wrong one), and nothing is kept.
    s.origin.set_faults(spin_test_host::origin::Faults { reset_mid_body: 1, ..Default::default() });
    let broken = s.client.send("POST", "/stream?size=300000&cc=max-age%3D60", &[], b"s", Framing::Sized).await;
    assert!(broken.is_err(), "a 300,000-byte answer that broke mid-body arrived whole: {:?}", broken.map(|r| r.body.len()));
    s.client.client = Client::new(s.host.addr);
    assert_eq!(s.host.kv.keys_but_indexes("default").len(), 1, "only /brk's entry: {:?}", s.host.kv.keys_but_indexes("default"));
    let whole = s.client.post("/stream?size=300000&cc=max-age%3D60", &[], b"s").await;
    assert_eq!(whole.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert!(whole.body[..] == binary_body(300_000, 2)[..]);
    let hit = s.client.post("/stream?size=300000&cc=max-age%3D60", &[], b"s").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert!(hit.body == whole.body);
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_key_headers_keep_tenants_apart() {
    const PATH: &str = "/tenant?cc=max-age%3D60";
    let a = [JSON, ("x-tenant", "a")];
    let b = [JSON, ("x-tenant", "b")];
    // Without the variable the header is not part of the key: tenants share.
    let mut shared = setup().await;
    shared.client.post(PATH, &a, b"q").await;
    assert_eq!(shared.client.post(PATH, &b, b"q").await.cache_status(), "post-cache; hit; ttl=60");

    let mut s = setup_with(&[("key_headers", "content-type,x-tenant")], |_| {}).await;
    let a1 = s.client.post(PATH, &a, b"q").await;
    let b1 = s.client.post(PATH, &b, b"q").await;
    assert_eq!(a1.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(b1.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let a2 = s.client.post(PATH, &a, b"q").await;
    let b2 = s.client.post(PATH, &b, b"q").await;
    assert_eq!((a2.cache_status().as_str(), b2.cache_status().as_str()), ("post-cache; hit; ttl=60", "post-cache; hit; ttl=60"));
    assert_eq!((a2.header("x-origin-count"), b2.header("x-origin-count")), (Some("1".into()), Some("2".into())));
    assert_eq!((&a2.body, &b2.body), (&a1.body, &b1.body));
    let none = s.client.post(PATH, &[JSON], b"q").await;
    assert_eq!(none.cache_status(), "post-cache; fwd=uri-miss; detail=storing", "no tenant is a third key");
    assert_eq!(s.origin.count("POST", "/tenant", b"q"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_found_under_the_key_for_another_body_is_a_miss_and_is_replaced() {
    let mut s = setup().await;
    const PATH: &str = "/other?cc=max-age%3D60";
    s.client.post(PATH, &[JSON], b"{\"a\":1}").await;
    let a_key = s.host.kv.keys_but_indexes("default").pop().unwrap();
    s.client.post(PATH, &[JSON], b"{\"b\":2}").await;
    let b_key = s.host.kv.keys_but_indexes("default").into_iter().find(|k| *k != a_key).unwrap();
    // Under b's key, a's record (as a key collision, or a bug, would leave it).
    let a_record = s.host.kv.get("default", &a_key).unwrap();
    s.host.kv.insert("default", &b_key, a_record.clone());
    let r = s.client.post(PATH, &[JSON], b"{\"b\":2}").await;
    assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let b_sha = Sha256::digest(b"{\"b\":2}").iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!((answer["body_sha256"].as_str(), answer["count"].as_u64()), (Some(b_sha.as_str()), Some(2)), "b's own answer, from the origin");
    assert_ne!(s.host.kv.get("default", &b_key).unwrap(), a_record, "replaced");
    let hit = s.client.post(PATH, &[JSON], b"{\"b\":2}").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(hit.body, r.body);
}
