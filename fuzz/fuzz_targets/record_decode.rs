//! The stored-record decoder: any bytes (a corrupt or foreign KV value) decode or
//! are refused, never panic; a decoded body lies inside the value. (Id slots are
//! bounds-checked where they are used: see the jsonrpc_ids target.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::record;

fuzz_target!(|data: &[u8]| {
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
        }
    }
});
