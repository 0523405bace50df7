//! End to end: stale-while-revalidate, stale-if-error, revalidation with 304 and
//! collapsed misses, with the guest's clock moved (never slept) and the test
//! origin switched into failures at run time.

use super::{setup_with, JSON};
use spin_test_host::client::{Client, Framing, Reply};
use spin_test_host::origin::Faults;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sends the same POST from `n` clients at once.
async fn burst(addr: std::net::SocketAddr, n: usize, path: &'static str, body: &'static [u8]) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async move { Client::new(addr).post(path, &[JSON], body).await }))
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

/// Every store call's latency in the tests that race requests on the store.
/// The host's store otherwise answers at once, so a race is only ever between
/// its two worker threads; with latency every request of a burst is in flight
/// at once and the store's ordering decides, as on a remote store.
const STORE_LATENCY_MS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_stale_hits_are_answered_at_once_and_only_one_refresh_reaches_the_origin() {
    let mut s = setup_with(&[], |_| {}).await;
    // With latency d on every call: a stale hit reads the key (its answer),
    // writes its refresh mark at about 2d after it arrived, and reads the key
    // back 100 ms (the settling time) plus d after that. Hits arriving more
    // than d after the first find a live mark on their read and do not mark;
    // the others all arrive within d of each other, so the last of their
    // marks lands before any of them reads back: exactly one refresh, with
    // the settling time as margin.
    s.host.kv.faults.delay_ms.store(STORE_LATENCY_MS, Ordering::SeqCst);
    const PATH: &str = "/swr?cc=max-age%3D60%2C%20stale-while-revalidate%3D600";
    const BODY: &[u8] = b"{\"q\":1}";
    let first = s.client.post(PATH, &[JSON], BODY).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    s.host.advance_clock(70);
    let replies = burst(s.host.addr, 16, PATH, BODY).await;
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.cache_status(), "post-cache; hit; ttl=-10");
        assert_eq!(r.header("age").as_deref(), Some("70"));
        assert_eq!(r.body, first.body, "the stale answer, not a refreshed one");
    }
    s.host.wait_idle(Duration::from_secs(20)).await;
    assert_eq!(s.origin.count("POST", "/swr", BODY), 2, "the first miss and exactly one refresh");
    let after = s.client.post(PATH, &[JSON], BODY).await;
    assert_eq!(after.cache_status(), "post-cache; hit; ttl=60");
    assert_eq!(after.header("x-origin-count").as_deref(), Some("2"), "the refreshed answer");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_origin_gets_the_stale_entry_while_stale_if_error_lasts_and_the_error_after() {
    let mut s = setup_with(&[("origin_timeout", "1")], |_| {}).await;
    const PATH: &str = "/sie?cc=max-age%3D60%2C%20stale-if-error%3D300";
    let body = b"{\"q\":2}";
    let first = s.client.post(PATH, &[JSON], body).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    s.host.advance_clock(100);

    s.origin.set_faults(Faults { status: Some(503), ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=stale; fwd-status=503; ttl=-40; detail=stale-if-error"));
    assert_eq!(r.body, first.body);

    s.origin.set_faults(Faults { down: true, ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=stale; ttl=-40; detail=stale-if-error"));

    s.origin.set_faults(Faults { delay_ms: 2500, ..Faults::default() });
    let started = Instant::now();
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=stale; ttl=-40; detail=stale-if-error"));
    assert!(started.elapsed() < Duration::from_millis(2400), "answered at the timeout, not after the origin");

    // Past the window: the errors themselves.
    s.host.advance_clock(300);
    s.origin.set_faults(Faults { status: Some(503), ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (503, "post-cache; fwd=stale; detail=server-error"));
    s.origin.set_faults(Faults { down: true, ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (502, "post-cache; fwd=stale; detail=origin-unreachable"));
    // The stale entry is kept through errors for clients that accept more.
    let r = s.client.post(PATH, &[JSON, ("cache-control", "stale-if-error=3600")], body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);

    s.origin.set_faults(Faults::default());
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!(r.cache_status(), "post-cache; fwd=stale; detail=storing");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_revalidate_gets_the_origins_error_even_with_stale_variables_set() {
    let mut s = setup_with(&[("stale_if_error", "86400"), ("stale_while_revalidate", "86400")], |_| {}).await;
    const PATH: &str = "/mr?cc=max-age%3D60%2C%20must-revalidate";
    let body = b"{\"q\":3}";
    s.client.post(PATH, &[JSON], body).await;
    s.host.advance_clock(61);
    s.origin.set_faults(Faults { status: Some(503), ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.cache_status().as_str()), (503, "post-cache; fwd=stale; detail=server-error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_windows_apply_to_answers_that_name_none() {
    let mut s = setup_with(&[("stale_if_error", "600")], |_| {}).await;
    const PATH: &str = "/cfg?cc=max-age%3D60";
    let body = b"{\"q\":4}";
    let first = s.client.post(PATH, &[JSON], body).await;
    s.host.advance_clock(500);
    s.origin.set_faults(Faults { status: Some(500), ..Faults::default() });
    let r = s.client.post(PATH, &[JSON], body).await;
    assert_eq!((r.status, r.body.clone()), (200, first.body));
}

async fn query(client: &mut super::SettledClient, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    client.send("QUERY", "/rv?cc=max-age%3D60&etag=v1", headers, body, Framing::Sized).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_refreshes_the_entry_without_a_body_transfer() {
    let mut s = setup_with(&[], |_| {}).await;
    let body = b"{\"q\":5}";
    let first = query(&mut s.client, body, &[JSON]).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(first.header("etag").as_deref(), Some("\"v1\""));
    s.host.advance_clock(100);
    let revalidated = query(&mut s.client, body, &[JSON]).await;
    assert_eq!(revalidated.cache_status(), "post-cache; fwd=stale; fwd-status=304; stored");
    assert_eq!(s.origin.not_modified(), 1);
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, first.body, "the stored body, kept");
    assert_eq!(revalidated.header("content-length"), first.header("content-length"));
    let hit = query(&mut s.client, body, &[JSON]).await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60");
    // The client's own validator is answered here.
    let not_modified = query(&mut s.client, body, &[JSON, ("if-none-match", "\"v1\"")]).await;
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    assert_eq!(not_modified.header("etag").as_deref(), Some("\"v1\""));
    assert_eq!(s.origin.count("QUERY", "/rv", body), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_cache_control_sets_the_cache_lifetime_and_never_reaches_the_client() {
    let mut s = setup_with(&[], |_| {}).await;
    // The origin sends the targeted field through the `cc=` parameter's sibling.
    const PATH: &str = "/cdn?cc=no-store&cdn_cc=max-age%3D300";
    let body = b"{\"q\":6}";
    let first = s.client.post(PATH, &[JSON], body).await;
    assert_eq!(first.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    assert_eq!(first.header("cache-control").as_deref(), Some("no-store"));
    assert!(first.header("cdn-cache-control").is_none());
    s.host.advance_clock(200);
    let hit = s.client.post(PATH, &[JSON], body).await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=100");
    assert!(hit.header("cdn-cache-control").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_cold_misses_on_a_store_with_latency_reach_the_origin_once() {
    let s = setup_with(&[("collapse_cold_misses", "true")], |_| {}).await;
    // With latency d on every call, a miss arriving at t reads the key (done at
    // t + d), writes its mark (t + 2d) and reads it back (t + 3d), and leads
    // only if no other mark landed in between. A miss arriving more than d
    // after the first reads the first mark and follows. Those that write all
    // arrived within d of the first, so every mark lands within d of every
    // other: each writer's read-back sees the last mark, whose writer alone
    // leads. One origin call, as long as the burst is sent within d (it takes
    // a few milliseconds) — not two, the bound when the store answers at once
    // and only the host's two threads race.
    s.host.kv.faults.delay_ms.store(STORE_LATENCY_MS, Ordering::SeqCst);
    const PATH: &str = "/herd?cc=max-age%3D60&delay_ms=200";
    const BODY: &[u8] = b"{\"q\":7}";
    let replies = burst(s.host.addr, 32, PATH, BODY).await;
    assert_eq!(s.origin.count("POST", "/herd", BODY), 1);
    let mut collapsed = 0;
    for r in &replies {
        assert_eq!(r.status, 200);
        let answer: serde_json::Value = serde_json::from_slice(&r.body).expect("a complete JSON answer");
        assert_eq!(answer["body_len"], BODY.len());
        assert_eq!(r.header("x-origin-count").as_deref(), Some("1"));
        collapsed += r.cache_status().ends_with("; collapsed") as usize;
    }
    assert_eq!(collapsed, 31, "every request but the leader's answered from its entry");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_misses_on_an_expired_entry_reach_the_origin_once_by_default() {
    let mut s = setup_with(&[], |_| {}).await;
    const PATH: &str = "/expired-herd?cc=max-age%3D60&delay_ms=200";
    const BODY: &[u8] = b"{\"q\":8}";
    assert_eq!(s.client.post(PATH, &[JSON], BODY).await.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
    s.host.advance_clock(61);
    // The same bound as for cold keys with collapse_cold_misses: the expired
    // record carries the mark.
    s.host.kv.faults.delay_ms.store(STORE_LATENCY_MS, Ordering::SeqCst);
    let replies = burst(s.host.addr, 32, PATH, BODY).await;
    assert_eq!(s.origin.count("POST", "/expired-herd", BODY), 2, "the first miss, then one refetch for the burst");
    let collapsed = replies.iter().filter(|r| r.cache_status().ends_with("; collapsed")).count();
    assert_eq!(collapsed, 31);
    assert!(replies.iter().all(|r| r.header("x-origin-count").as_deref() == Some("2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_origin_dies_mid_body_does_not_hold_the_others_for_the_wait_cap() {
    // A ten-second cap: followers that waited it out would take over ten seconds.
    let s = setup_with(&[("collapse_wait_ms", "10000")], |_| {}).await;
    // Store latency makes the leader one request (see the test above).
    s.host.kv.faults.delay_ms.store(STORE_LATENCY_MS, Ordering::SeqCst);
    s.origin.set_faults(Faults { reset_mid_body: 1, delay_ms: 300, ..Faults::default() });
    const PATH: &str = "/dies?cc=max-age%3D60&size=40000&static=1";
    const BODY: &[u8] = b"{\"q\":8}";
    let started = Instant::now();
    let replies = burst(s.host.addr, 8, PATH, BODY).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "followers waited {elapsed:?}");
    // The leader's answer broke before its head was sent (40,000 bytes are read
    // whole first): a 502 saying so. It takes its mark back, and each follower
    // then asks the origin itself, or, polling after another follower's entry
    // landed, answers from that.
    let failed: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
    assert_eq!(failed.len(), 1, "exactly the leader's answer fails");
    assert_eq!((failed[0].status, failed[0].cache_status().as_str()), (502, "post-cache; fwd=uri-miss; detail=origin-body"));
    let mut fetched = 0u64;
    for r in replies.iter().filter(|r| r.status == 200) {
        assert_eq!(r.body.len(), 40_000);
        if !r.cache_status().ends_with("; collapsed") {
            assert_eq!(r.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
            fetched += 1;
        }
    }
    assert!(fetched >= 1);
    assert_eq!(s.origin.count("POST", "/dies", BODY), 1 + fetched, "the leader, and the followers that fetched");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}
