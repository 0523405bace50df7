//! The stored-record decoder and the standalone mark: any bytes (a corrupt or
//! foreign KV value) decode or are refused, never panic; a decoded body lies
//! inside the value; a mark written into a record reads back and changes nothing
//! else; what a decoded record is used for (freshness) never panics either. (Id
//! slots are bounds-checked where they are used: see the jsonrpc_ids target.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::cache_control::CacheControl;
use post_cache::cache::freshness::decide_stored;
use post_cache::cache::mark::Mark;
use post_cache::cache::record;

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
        }
    }
});
