//! End to end: the store stays bounded — the automatic sweep step under a
//! workload of short-lived entries, the admin sweep, and a store with a
//! key-count quota (the host's cap, refused as Spin passes on a backend error).

use super::{setup_with, Setup, JSON};
use sha2::{Digest, Sha256};
use spin_test_host::client::Framing;
use std::sync::atomic::Ordering;

const TOKEN: &str = "e2e-purge-token-0123456789";

fn digest_hex(body: &[u8]) -> String {
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_keys(s: &Setup) -> usize {
    s.host.kv.keys_but_indexes("default").iter().filter(|k| k.starts_with("post-cache:") && !k.contains(":tag:")).count()
}

/// Sends `n` unique cacheable requests (`max-age=1`), the guest's clock moving
/// one second every `per_second` of them; returns how many keys the store
/// holds at the end and how many entries were written in its last two seconds
/// (the only ones still usable, or just past).
async fn short_lived_workload(s: &mut Setup, n: usize, per_second: usize) -> (usize, usize) {
    for i in 0..n {
        if i > 0 && i % per_second == 0 {
            s.host.advance_clock(1);
        }
        let body = format!("{{\"n\":{i}}}");
        let r = s.client.post("/w?cc=max-age%3D1", &[JSON], body.as_bytes()).await;
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains(&digest_hex(body.as_bytes())), "a wrong answer for request {i}");
    }
    (s.host.kv.keys_but_indexes("default").len(), 2 * per_second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_short_lived_entries_leave_the_store_near_the_live_ones() {
    let mut s = setup_with(&[], |_| {}).await;
    let (keys, recent) = short_lived_workload(&mut s, 10_000, 500).await;
    assert!(keys <= 3 * recent, "{keys} keys for at most {recent} live entries");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_automatic_step_the_same_workload_keeps_every_entry() {
    let mut s = setup_with(&[("sweep_every", "0")], |_| {}).await;
    let (keys, _) = short_lived_workload(&mut s, 1_000, 500).await;
    assert_eq!(keys, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sweep_deletes_expired_entries_and_their_index_lines() {
    let mut s = setup_with(&[("purge_token", TOKEN), ("sweep_every", "0")], |_| {}).await;
    for i in 0..20 {
        let path = if i % 2 == 0 { "/s?cc=max-age%3D10&tags=a%20b" } else { "/s?cc=max-age%3D1000&tags=a" };
        s.client.post(path, &[JSON], format!("{i}").as_bytes()).await;
    }
    s.host.wait_idle(std::time::Duration::from_secs(20)).await;
    assert_eq!(s.host.kv.keys_but_indexes("default").len(), 20, "entries, no markers");
    assert_eq!(s.host.kv.keys("default").len(), 20 + 3, "and the indexes of a, b and /s");
    let lines = |s: &Setup| -> usize {
        let keys = s.host.kv.keys("default");
        keys.iter().filter(|k| k.starts_with("post-cache:v3:ix:")).map(|k| s.host.kv.get("default", k).map_or(0, |v| v.split(|b| *b == b'\n').count() - 2)).sum()
    };
    assert_eq!(lines(&s), 10 + 20 + 20, "b names 10 entries, a and /s 20 each");
    s.host.advance_clock(60);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let stats = s.client.send("GET", "/.well-known/post-cache/stats", &auth, b"", Framing::Sized).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!((v["dead_entries"].as_u64(), v["indexes"].as_u64()), (Some(10), Some(3)), "{v}");
    let swept = s.client.send("POST", "/.well-known/post-cache/sweep", &auth, b"", Framing::Sized).await.unwrap();
    assert_eq!(swept.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&swept.body).unwrap();
    assert_eq!(v["deleted"]["entries"], 10, "{v}");
    assert_eq!(v["deleted"]["indexes"], 1, "b named only expired entries: {v}");
    assert_eq!(s.host.kv.keys_but_indexes("default").len(), 10);
    assert_eq!(lines(&s), 10 + 10, "a and /s name the 10 live entries");
    let hit = s.client.post("/s?cc=max-age%3D1000&tags=a", &[JSON], b"1").await;
    assert_eq!(hit.cache_status(), "post-cache; hit; ttl=940");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_key_quota_stays_under_it_and_never_answers_wrong() {
    const CAP: usize = 40;
    let mut s = setup_with(&[("max_value_bytes", "4096")], |_| {}).await;
    s.host.kv.max_keys.store(CAP, Ordering::SeqCst);
    let mut hits = 0;
    for round in 0..3 {
        for i in 0..60 {
            // Tagged entries (three keys each) and segmented ones (a head and segments).
            let path = match i % 3 {
                0 => "/q?cc=max-age%3D600&tags=x%20y",
                1 => "/q?cc=max-age%3D600",
                _ => "/q?cc=max-age%3D600&size=10000&static=1",
            };
            let body = format!("{{\"i\":{i}}}");
            let r = s.client.post(path, &[JSON], body.as_bytes()).await;
            assert_eq!(r.status, 200, "round {round}, request {i}");
            if i % 3 == 2 {
                assert_eq!(r.body.len(), 10_000, "a truncated answer");
            } else {
                assert!(String::from_utf8_lossy(&r.body).contains(&digest_hex(body.as_bytes())), "a wrong answer");
            }
            hits += usize::from(r.cache_status().contains("hit"));
            assert!(s.host.kv.keys_but_indexes("default").len() <= CAP);
        }
    }
    assert!(entry_keys(&s) > 0, "room was made for new entries");
    assert!(hits > 0, "entries stored after room was made are hit");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}
