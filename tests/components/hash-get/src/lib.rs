//! Benchmark floor 2, the least any cache hit can do: read the body while
//! hashing it with SHA-256, one KV get, answer the value. `/sha?mib=N&rounds=R`
//! instead times SHA-256 over N MiB in memory and answers the MB/s.

#[path = "../../common/floor_io.rs"]
mod floor_io;

use floor_io::query_param;
use sha2::{Digest, Sha256};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let pq = request.path_with_query().unwrap_or_default();
    if pq.starts_with("/sha") {
        let mib = query_param(&pq, "mib").unwrap_or(16);
        let rounds = query_param(&pq, "rounds").unwrap_or(1);
        let data = vec![0x5au8; mib << 20];
        let started = std::time::Instant::now();
        let mut sink = 0u8;
        for _ in 0..rounds {
            sink ^= Sha256::digest(&data)[0];
        }
        let mbps = (mib * rounds) as f64 * 1.048576 / started.elapsed().as_secs_f64();
        return floor_io::respond(out, format!("{mbps:.1} {sink}").as_bytes());
    }
    // Like a cache, keep the body (a miss would forward it) while hashing it.
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    floor_io::read_body(request, |chunk| {
        hasher.update(chunk);
        kept.extend_from_slice(chunk);
    });
    let digest = hasher.finalize();
    let key = format!("bench:value:{}", query_param(&pq, "size").unwrap_or(4096));
    let value = spin_sdk::key_value::Store::open("default")
        .and_then(|store| store.get(&key))
        .ok()
        .flatten()
        .unwrap_or_default();
    // Keep the digest and body observable so neither is optimised away.
    let value = if digest[0] == 0 && kept.is_empty() { Vec::new() } else { value };
    floor_io::respond(out, &value);
}
