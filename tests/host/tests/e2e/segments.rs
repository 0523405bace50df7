//! Entries larger than hosted Spin's 1 MB value: stored as a head and segments,
//! replayed byte-identical, and never replayed wrong when a segment is lost.

use super::*;

/// The host with hosted Spin's value cap, and collapsing off so that
/// concurrent misses each write.
async fn hosted(vars: &[(&str, &str)]) -> Setup {
    setup_with(vars, |c| c.kv_max_value_bytes = Some(1_000_000)).await
}

fn entry_keys(s: &Setup) -> Vec<String> {
    s.host.kv.keys_but_indexes("default").into_iter().filter(|k| k.split(':').count() == 5).collect()
}

fn segment_keys(s: &Setup) -> Vec<String> {
    let mut keys: Vec<String> = s.host.kv.keys_but_indexes("default").into_iter().filter(|k| k.split(':').count() == 7).collect();
    keys.sort_by_key(|k| k.rsplit(':').next().unwrap().parse::<u32>().unwrap());
    keys
}

fn origin_body(r: &Reply) -> Vec<u8> {
    let count: u64 = r.header("x-origin-count").unwrap().parse().unwrap();
    binary_body(r.body.len(), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_of_3_and_15_mib_are_cached_in_segments_and_replayed_byte_identical() {
    let mut s = hosted(&[]).await;
    for (size, framing) in [(3 << 20, ""), (15 << 20, ""), (3 << 20, "&chunked=1")] {
        let path = format!("/large{size}{framing}?size={size}&cc=max-age%3D60{framing}");
        let miss = s.client.post(&path, &[], b"q").await;
        assert_eq!(miss.status, 200);
        assert_eq!(miss.cache_status(), "post-cache; fwd=uri-miss; detail=storing");
        assert_eq!(miss.body.len(), size);
        assert!(miss.body[..] == origin_body(&miss)[..], "the miss's body differs from the origin's");
        assert!(s.host.kv.keys_but_indexes("default").iter().all(|k| s.host.kv.get("default", k).unwrap().len() <= 1_000_000));
        let hit = s.client.post(&path, &[], b"q").await;
        assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60", "{size}");
        assert!(hit.body == miss.body, "{size}: the replay differs");
        assert_eq!(hit.header("content-length").unwrap(), size.to_string());
        // A chunked answer was teed to the client as it came; its replay has a length.
        let framing = |r: &Reply| -> Vec<(String, Vec<u8>)> {
            stable_headers(r).into_iter().filter(|(n, _)| n != "content-length" && n != "transfer-encoding").collect()
        };
        assert_eq!(framing(&hit), framing(&miss));
        assert_eq!(s.origin.count("POST", path.split('?').next().unwrap(), b"q"), 1);
    }
    assert_eq!(entry_keys(&s).len(), 3);
    // Values of 1,000,000 bytes: 3 MiB is a head and 3 segments (twice), 15 MiB a head and 15.
    assert_eq!(segment_keys(&s).len(), 3 + 15 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_segment_is_never_replayed_and_the_entry_is_fetched_again() {
    // Which segment, and whether it is lost or altered.
    for (index, corrupt) in [(0usize, false), (0, true), (2, false), (2, true)] {
        let mut s = hosted(&[]).await;
        let path = "/lossy?size=3145728&cc=max-age%3D60";
        let miss = s.client.post(path, &[], b"q").await;
        let segment = segment_keys(&s)[index].clone();
        if corrupt {
            let mut value = s.host.kv.get("default", &segment).unwrap();
            value[1234] ^= 0x01;
            s.host.kv.insert("default", &segment, value);
        } else {
            s.host.kv.remove("default", &segment).unwrap();
        }
        let case = format!("segment {index}, corrupt: {corrupt}");
        let broken = s.client.send("POST", path, &[], b"q", Framing::Sized).await;
        s.client.settle().await;
        match broken {
            // Before any body byte: a miss, answered from the origin.
            Ok(reply) => {
                assert_eq!(index, 0, "{case}: a mid-body loss must abort the response");
                assert_eq!(reply.cache_status(), "post-cache; fwd=uri-miss; detail=storing", "{case}");
                assert!(reply.body[..] == origin_body(&reply)[..], "{case}");
            }
            // Mid-body: the client sees an incomplete body, not a wrong one.
            Err(_) => {
                assert_eq!(index, 2, "{case}: a loss before the body must be a miss");
                s.client.client = Client::new(s.host.addr);
            }
        }
        if index == 2 {
            assert!(s.host.kv.keys_but_indexes("default").is_empty(), "{case}: the broken entry is deleted");
            let refetched = s.client.post(path, &[], b"q").await;
            assert_eq!(refetched.cache_status(), "post-cache; fwd=uri-miss; detail=storing", "{case}");
        }
        let hit = s.client.post(path, &[], b"q").await;
        assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60", "{case}");
        assert!(hit.body.len() == 3 << 20 && hit.body[..] == origin_body(&hit)[..], "{case}");
        assert_eq!(s.origin.count("POST", "/lossy", b"q"), 2, "{case}");
        assert_eq!(segment_keys(&s).len(), 3, "{case}: only the clean entry's segments");
        assert!(miss.body.len() == 3 << 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_key_never_produce_a_mixed_entry() {
    let s = hosted(&[("collapse_wait_ms", "0")]).await;
    let path = "/race?size=2500000&cc=max-age%3D60";
    for round in 0..3 {
        // Two misses at once: the origin answers each with a different body.
        let mut a = Client::new(s.host.addr);
        let mut b = Client::new(s.host.addr);
        let (ra, rb) = tokio::join!(a.post(path, &[], b"q"), b.post(path, &[], b"q"));
        assert_ne!(ra.body, rb.body, "round {round}: the two writers had different bodies");
        s.host.wait_idle(std::time::Duration::from_secs(20)).await;
        // Whatever the store holds replays as one writer's answer, whole.
        let mut c = Client::new(s.host.addr);
        let hit = c.post(path, &[], b"q").await;
        assert_eq!(hit.cache_status(), "post-cache; hit; ttl=60", "round {round}");
        assert!(hit.body == ra.body || hit.body == rb.body, "round {round}: a mixed entry");
        // Expired: the next round's two requests both fetch and write again.
        s.host.advance_clock(61);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_entry_leaves_no_orphan_segments() {
    let mut s = hosted(&[]).await;
    let path = "/rewritten?size=3145728&cc=max-age%3D60";
    let first = s.client.post(path, &[], b"q").await;
    let before = segment_keys(&s);
    assert_eq!(before.len(), 3);
    // Expired: the next request fetches and replaces the entry (another body
    // this time), then deletes the old segments once their grace has passed.
    s.host.advance_clock(61);
    let second = s.client.post(path, &[], b"q").await;
    assert_eq!(second.cache_status(), "post-cache; fwd=stale; detail=storing");
    assert!(second.body != first.body);
    let after = segment_keys(&s);
    assert!(after.iter().all(|k| !before.contains(k)), "old segments left: {after:?}");
    assert_eq!(after.len(), 3, "the new entry's segments only: {after:?}");
    assert_eq!(s.host.kv.keys_but_indexes("default").len(), 4, "{:?}", s.host.kv.keys_but_indexes("default"));
    let hit = s.client.post(path, &[], b"q").await;
    assert!(hit.body == second.body);
}
