//! The stored-record decoder and the standalone mark: any bytes (a corrupt or
//! foreign KV value) decode or are refused, never panic; a decoded body lies
//! inside the value; a mark written into a record reads back and changes nothing
//! else; what a decoded record is used for (freshness) never panics either; a
//! decoded manifest covers the body; and any record sealed for a small value
//! cap fits it, whole or as a head and segments that rebuild the body. (Id
//! slots are bounds-checked where they are used: see the jsonrpc_ids target.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::cache_control::CacheControl;
use post_cache::cache::freshness::decide_stored;
use post_cache::cache::mark::Mark;
use post_cache::cache::record::{self, RecordBuilder, Sealed};

fuzz_target!(|data: &[u8]| {
    if let Some(mark) = Mark::decode(data) {
        assert_eq!(Mark::decode(&mark.encode()), Some(mark));
    }
    for sealed in [false, true] {
        let mut value = data.to_vec();
        if sealed {
            // Past the checksum, to the structure checks behind it.
            record::seal(&mut value);
        }
        if let Ok(rec) = record::decode(&value) {
            assert!(rec.body.len() <= value.len());
            let _ = rec.age(u64::MAX);
            let _ = rec.ttl(0);
            let request = CacheControl::parse(&[b"max-stale=10, min-fresh=5, stale-if-error=60"]);
            for now in [0, rec.meta.fresh_until, u64::MAX] {
                let _ = decide_stored(&rec.meta, &request, now);
            }
            let mark = Mark { until: 7, token: 11 };
            if let Some(marked) = record::with_mark(&value, Some(mark)) {
                let again = record::decode(&marked).expect("a marked record still decodes");
                assert_eq!(again.mark, Some(mark));
                assert_eq!((again.meta, again.body, again.headers), (rec.meta.clone(), rec.body, rec.headers.clone()));
            }
            match &rec.segments {
                Some(m) => {
                    assert!(m.consistent_with(rec.body.len()));
                    let last = m.range(rec.body.len(), m.digests.len() - 1);
                    assert_eq!(last.end, m.total_len);
                }
                None => split_and_rebuild(&rec, 200 + data.len() % 800),
            }
        }
    }
});

/// Seals a decoded record's head and body again for values of `max_value`
/// bytes: every value fits, and head and segments give back the body.
fn split_and_rebuild(rec: &record::Record<'_>, max_value: usize) {
    let headers: Vec<(String, Vec<u8>)> = rec.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    let Some(mut builder) = RecordBuilder::new(&rec.meta, &headers, rec.body.len(), usize::MAX) else { return };
    assert!(builder.push_body(rec.body));
    match builder.seal_within(&rec.id_slots, max_value, 9) {
        None => {}
        Some(Sealed::Whole(bytes)) => {
            assert!(bytes.len() <= max_value);
            assert_eq!(record::decode(&bytes).expect("sealed whole").body, rec.body);
        }
        Some(Sealed::Split { head, body, segments, manifest }) => {
            assert!(head.len() <= max_value);
            let again = record::decode(&head).expect("a sealed head decodes");
            assert_eq!(again.segments.as_ref(), Some(&manifest));
            let mut rebuilt = again.body.to_vec();
            for (i, range) in segments.iter().enumerate() {
                assert!(range.len() <= max_value);
                assert!(manifest.verify(again.body.len(), i, &body[range.clone()]));
                rebuilt.extend_from_slice(&body[range.clone()]);
            }
            assert_eq!(rebuilt, rec.body);
        }
    }
}
