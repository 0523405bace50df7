//! End to end: a store that hangs (Spin's Redis store with Redis stopped) and a
//! store that evicts keys at random (Redis under `maxmemory`).

use super::*;
use spin_test_host::kv::KvEvent;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const TOKEN: &str = "e2e-store-faults-token-0123";

/// Sends one request and gives it `limit` to be answered.
async fn within(limit: Duration, client: &mut Client, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    match tokio::time::timeout(limit, client.send(method, path, headers, body, Framing::Sized)).await {
        Ok(reply) => reply.expect("request failed"),
        Err(_) => panic!("{method} {path} was not answered within {limit:?}: it waits for the hanging store"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_hanging_requests_that_need_no_store_are_answered_without_one() {
    let s = setup_with(&[("purge_token", TOKEN), ("invalidate_on_unsafe", "true")], |_| {}).await;
    s.host.kv.faults.hang.store(true, Ordering::SeqCst);
    let before = s.host.kv.ops.snapshot();
    // A store call would never return: any bound tells the two apart, and a
    // generous one keeps a loaded machine from failing the test.
    let prompt = Duration::from_secs(5);
    let mut c = Client::new(s.host.addr);
    let bad = "Bearer not-the-token-not-the-token";
    let over_limit = binary_body((1 << 20) + 1, 4);
    let cases: [(&str, &str, Vec<(&str, &str)>, &[u8], u16, &str); 8] = [
        ("GET", "/g?cc=max-age%3D60", vec![], b"", 200, "post-cache; fwd=bypass; detail=method"),
        ("OPTIONS", "/g", vec![], b"", 200, "post-cache; fwd=bypass; detail=method"),
        ("POST", "/ns?cc=max-age%3D60", vec![JSON, ("cache-control", "no-store")], b"{}", 200, "post-cache; fwd=bypass; detail=no-store"),
        ("POST", "/cred?cc=max-age%3D60", vec![JSON, ("authorization", "Bearer someone")], b"{}", 200, "post-cache; fwd=bypass; detail=auth"),
        ("POST", "/big?cc=max-age%3D60", vec![], &over_limit, 200, "post-cache; fwd=bypass; detail=body-too-large"),
        ("POST", "/.well-known/post-cache/purge", vec![JSON], br#"{"all":true}"#, 401, ""),
        ("POST", "/.well-known/post-cache/purge", vec![JSON, ("authorization", bad)], br#"{"all":true}"#, 401, ""),
        ("GET", "/.well-known/post-cache/stats", vec![("authorization", bad)], b"", 401, ""),
    ];
    for (method, path, headers, body, status, cache_status) in cases {
        let r = within(prompt, &mut c, method, path, &headers, body).await;
        assert_eq!(r.status, status, "{method} {path}");
        if !cache_status.is_empty() {
            assert_eq!(r.cache_status(), cache_status, "{method} {path}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.host.kv.ops.snapshot(), before, "a request that needs no store called it");
    s.host.wait_idle(prompt).await;
    assert!(s.host.kv.keys_but_indexes("default").is_empty());

    // An invalidating PUT is answered first; its invalidation then waits for
    // the store in the background.
    let put = within(prompt, &mut c, "PUT", "/g", &[JSON], b"{}").await;
    assert_eq!((put.status, put.cache_status().as_str()), (200, "post-cache; fwd=bypass; detail=method"));

    // The fault does hang what needs the store: a cacheable POST waits until
    // the store is back, then is answered from the origin.
    let addr = s.host.addr;
    let mut waiting = tokio::spawn(async move { Client::new(addr).post("/needs-store?cc=max-age%3D60", &[JSON], b"{}").await });
    assert!(tokio::time::timeout(Duration::from_millis(1500), &mut waiting).await.is_err(), "answered although the store hangs");
    assert_eq!(s.origin.count("POST", "/needs-store", b"{}"), 0, "it waits on its first store call");
    s.host.kv.faults.hang.store(false, Ordering::SeqCst);
    let r = waiting.await.unwrap();
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=uri-miss; detail=storing"));
    s.host.wait_idle(Duration::from_secs(20)).await;
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);

    // The operator's switch (docs/OPERATIONS.md): no cache methods, no store call at all.
    // With no cache method a POST is an unsafe request, which would invalidate its URL.
    let off = setup_with(&[("cache_methods", ""), ("invalidate_on_unsafe", "false")], |_| {}).await;
    off.host.kv.faults.hang.store(true, Ordering::SeqCst);
    let r = within(prompt, &mut Client::new(off.host.addr), "POST", "/off?cc=max-age%3D60", &[JSON], b"{}").await;
    assert_eq!((r.status, r.cache_status().as_str()), (200, "post-cache; fwd=bypass; detail=method"));
    off.host.wait_idle(prompt).await;
    assert_eq!(off.host.kv.ops.snapshot(), Default::default());
}

/// One request the random-drop workload sends again and again.
struct Item {
    path: String,
    bare: String,
    body: Vec<u8>,
    /// A binary answer of this many bytes (segmented); else the origin's JSON echo.
    size: Option<usize>,
    tag: String,
    /// The entry key, learnt before the fault is switched on.
    head: String,
    /// The indexes naming the entry (its tag's and its URL's), learnt then too.
    indexes: Vec<String>,
}

fn drop_items() -> Vec<Item> {
    let window = "cc=max-age%3D30%2C%20stale-while-revalidate%3D600";
    let mut items = Vec::new();
    for i in 0..8 {
        let tag = format!("t{}", i % 3);
        let path = format!("/m{i}?{window}&tags={tag}");
        items.push(Item { bare: format!("/m{i}"), path, body: format!("{{\"i\":{i}}}").into_bytes(), size: None, tag, head: String::new(), indexes: Vec::new() });
    }
    for i in 0..3 {
        // Sizes differ, so one entry's body served for another is seen.
        let size = 2_100_000 + i * 77_777;
        let tag = format!("t{}", i % 3);
        let path = format!("/b{i}?size={size}&{window}&tags={tag}");
        items.push(Item { bare: format!("/b{i}"), path, body: b"b".to_vec(), size: Some(size), tag, head: String::new(), indexes: Vec::new() });
    }
    items
}

/// The origin's count an answer carries, after checking it is the origin's
/// complete answer to exactly this request.
fn origin_answer(item: &Item, r: &Reply) -> u64 {
    assert_eq!(r.status, 200, "{}: {}", item.path, r.cache_status());
    let count: u64 = r.header("x-origin-count").expect("x-origin-count").parse().unwrap();
    match item.size {
        Some(size) => {
            assert_eq!(r.body.len(), size, "{}: a body of another length ({})", item.path, r.cache_status());
            assert!(r.body[..] == binary_body(size, count)[..], "{}: not the origin's answer {count} ({})", item.path, r.cache_status());
        }
        None => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a complete JSON answer");
            let sha = Sha256::digest(&item.body).iter().map(|x| format!("{x:02x}")).collect::<String>();
            assert_eq!((v["path"].as_str(), v["body_sha256"].as_str()), (Some(item.bare.as_str()), Some(sha.as_str())), "{}: another request's answer", item.path);
            assert_eq!(v["count"].as_u64(), Some(count), "{}: head and body of different answers", item.path);
        }
    }
    count
}

/// `(entry key, index)` of a segment key `<entry>:<generation>:<index>`.
fn segment_of(key: &str) -> Option<(&str, u32)> {
    let (rest, index) = key.rsplit_once(':')?;
    let (entry, generation) = rest.rsplit_once(':')?;
    (generation.len() == 16 && entry.split(':').count() == 5).then_some((entry, index.parse().ok()?))
}


/// xorshift, for a workload that repeats.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_drops_keys_at_random_never_gives_a_wrong_answer_nor_a_truncated_one_it_could_have_avoided() {
    let mut s = setup_with(&[("purge_token", TOKEN)], |_| {}).await;
    let mut items = drop_items();
    // Each item's entry key, from a quiet store.
    for item in &mut items {
        let before: HashSet<String> = s.host.kv.keys_but_indexes("default").into_iter().collect();
        let r = s.client.post(&item.path, &[JSON], &item.body).await;
        origin_answer(item, &r);
        let new: Vec<String> = s.host.kv.keys_but_indexes("default").into_iter().filter(|k| !before.contains(k) && k.split(':').count() == 5).collect();
        assert_eq!(new.len(), 1, "{}: {new:?}", item.path);
        item.head = new[0].clone();
    }
    let suffix = |head: &str| format!("{}\n", head.strip_prefix("post-cache:v3:").unwrap());
    for item in &mut items {
        let line = suffix(&item.head);
        item.indexes = s.host.kv.keys("default").into_iter().filter(|k| k.starts_with("post-cache:v3:ix:")).filter(|k| {
            s.host.kv.get("default", k).is_some_and(|v| String::from_utf8_lossy(&v).contains(&line))
        }).collect();
        assert_eq!(item.indexes.len(), 2, "{}: its tag's and its URL's index", item.path);
    }
    s.host.kv.journal.start();
    s.host.kv.drop_keys_at_random(60, 0x5eed_2024);
    let mut rng = 0x0dd5_eed5_u64;
    let mut client = Client::new(s.host.addr);
    // Origin count at the item's last purge: no answer from before may be served.
    let mut floor: HashMap<usize, u64> = HashMap::new();
    // Segment keys the component has seen missing: a replay of one of them later
    // would be a truncation it could have avoided.
    let mut seen_missing: HashSet<String> = HashSet::new();
    let (mut hits, mut misses, mut truncated, mut first_segment_misses, mut survivors) = (0, 0, 0, 0, 0);
    for step in 0..240 {
        if step % 40 == 39 {
            s.host.wait_idle(Duration::from_secs(20)).await;
            s.host.kv.journal.take();
            let (target, by_tag): (Vec<usize>, bool) = if step % 80 == 39 {
                let tag = format!("t{}", next(&mut rng) % 3);
                let body = format!(r#"{{"tags":["{tag}"]}}"#);
                let r = s.client.send("POST", "/.well-known/post-cache/purge", &[JSON, ("authorization", &format!("Bearer {TOKEN}"))], body.as_bytes(), Framing::Sized).await.unwrap();
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                ((0..items.len()).filter(|&i| items[i].tag == tag).collect(), true)
            } else {
                let i = (next(&mut rng) % items.len() as u64) as usize;
                let body = format!(r#"{{"url":"{}"}}"#, items[i].bare);
                let r = s.client.send("POST", "/.well-known/post-cache/purge", &[JSON, ("authorization", &format!("Bearer {TOKEN}"))], body.as_bytes(), Framing::Sized).await.unwrap();
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                (vec![i], false)
            };
            s.host.kv.journal.take();
            let after: HashSet<String> = s.host.kv.keys_but_indexes("default").into_iter().collect();
            for i in target {
                let item = &items[i];
                if !after.contains(&item.head) {
                    floor.insert(i, s.origin.count("POST", &item.bare, &item.body));
                    continue;
                }
                // A purge finds entries through the index of the tag or URL: an
                // index evicted since the entry was written (then written again
                // by later entries, or not) no longer names it. That, and only
                // that, lets one survive.
                let kind = if by_tag { "post-cache:v3:ix:t:" } else { "post-cache:v3:ix:u:" };
                let evicted = s.host.kv.faults.evict.evicted.lock().unwrap().clone();
                let index_lost = item.indexes.iter().any(|ix| ix.starts_with(kind) && evicted.contains(ix));
                assert!(index_lost, "{}: survived a purge (by tag: {by_tag}) although its index was never evicted", item.path);
                survivors += 1;
            }
            s.host.advance_clock(31);
            continue;
        }
        let i = if next(&mut rng) % 10 < 7 { (next(&mut rng) % 8) as usize } else { 8 + (next(&mut rng) % 3) as usize };
        let item = &items[i];
        let missing_before = seen_missing.clone();
        s.host.kv.journal.take();
        let reply = client.send("POST", &item.path, &[JSON], &item.body, Framing::Sized).await;
        let window: Vec<KvEvent> = s.host.kv.journal.take();
        // Only a replay reads segments; requests are sent one at a time, so the
        // segment reads in this window are this request's.
        let segment_reads: Vec<(&KvEvent, u32)> = window
            .iter()
            .filter(|e| e.op == "get")
            .filter_map(|e| segment_of(&e.key).filter(|(entry, _)| *entry == item.head).map(|(_, index)| (e, index)))
            .collect();
        for (e, _) in &segment_reads {
            if !e.found {
                seen_missing.insert(e.key.clone());
            }
        }
        let first_missing = segment_reads.iter().any(|(e, index)| *index == 0 && !e.found);
        match reply {
            Ok(r) => {
                let count = origin_answer(item, &r);
                assert!(count > floor.get(&i).copied().unwrap_or(0), "{}: an answer from before its purge ({})", item.path, r.cache_status());
                assert!(count <= s.origin.count("POST", &item.bare, &item.body));
                if r.cache_status().contains("hit") {
                    hits += 1;
                } else {
                    assert!(r.cache_status().contains("fwd="), "{}", r.cache_status());
                    misses += 1;
                    first_segment_misses += first_missing as usize;
                }
            }
            Err(e) => {
                // The head went out after segment 0 was read and checked; what
                // cannot be checked before it is a later segment, read as the
                // body streams. A truncation must be one of those, seen
                // missing for the first time.
                assert!(item.size.is_some(), "{}: a small answer broke: {e}", item.path);
                assert!(!first_missing, "{}: segment 0 was missing, so this could have been a miss: {e}", item.path);
                let later_missing: Vec<&str> =
                    segment_reads.iter().filter(|(e, index)| *index > 0 && !e.found).map(|(e, _)| e.key.as_str()).collect();
                assert!(!later_missing.is_empty(), "{}: truncated with every segment read present: {e}; {window:?}", item.path);
                assert!(
                    later_missing.iter().any(|k| !missing_before.contains(*k)),
                    "{}: truncated again on a segment already seen missing {later_missing:?}",
                    item.path
                );
                truncated += 1;
                client = Client::new(s.host.addr);
            }
        }
    }
    s.host.wait_idle(Duration::from_secs(20)).await;
    s.host.kv.drop_keys_at_random(0, 0);
    let evicted = s.host.kv.faults.evict.evicted.lock().unwrap().clone();
    let heads = evicted.iter().filter(|k| k.split(':').count() == 5).count();
    let first_segments = evicted.iter().filter(|k| segment_of(k).is_some_and(|(_, i)| i == 0)).count();
    let later_segments = evicted.iter().filter(|k| segment_of(k).is_some_and(|(_, i)| i > 0)).count();
    let markers = evicted.iter().filter(|k| k.starts_with("post-cache:v3:ix:")).count();
    eprintln!(
        "random drops: {} evicted ({heads} heads, {first_segments} first segments, {later_segments} later segments, {markers} indexes); \
         {hits} hits, {misses} misses ({first_segment_misses} for a lost first segment), {truncated} truncated, {survivors} entries kept from a purge by a lost index",
        evicted.len()
    );
    // The workload reached what it is about.
    assert!(heads > 0 && first_segments > 0 && later_segments > 0 && markers > 0, "too few evictions of each kind");
    assert!(hits > 50 && misses > 10, "{hits} hits, {misses} misses");
    assert_eq!(s.host.stats.failures.load(Ordering::SeqCst), 0);
}
