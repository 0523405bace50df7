//! Benchmark floor 2, the least any cache hit can do: read the body while
//! hashing it with SHA-256, one KV get, answer the value. `/sha?mib=N&rounds=R`
//! instead times SHA-256 over N MiB in memory and answers the MB/s.

use sha2::{Digest, Sha256};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

fn query_param(pq: &str, name: &str) -> Option<usize> {
    let query = pq.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn respond(out: ResponseOutparam, payload: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/octet-stream".to_vec()),
        ("content-length".to_string(), payload.len().to_string().into_bytes()),
    ])
    .expect("headers");
    let response = OutgoingResponse::new(headers);
    let response_body = response.body().expect("body");
    out.set(response);
    {
        let stream = response_body.write().expect("stream");
        let mut rest = payload;
        while !rest.is_empty() {
            let n = match stream.check_write() {
                Ok(0) => {
                    stream.subscribe().block();
                    continue;
                }
                Ok(n) => (n as usize).min(rest.len()),
                Err(_) => return,
            };
            if stream.write(&rest[..n]).is_err() {
                return;
            }
            rest = &rest[n..];
        }
        let _ = stream.blocking_flush();
    }
    let _ = OutgoingBody::finish(response_body, None);
}

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
        let secs = started.elapsed().as_secs_f64();
        let mbps = (mib * rounds) as f64 * 1.048576 / secs;
        return respond(out, format!("{mbps:.1} {sink}").as_bytes());
    }
    let body = request.consume().expect("body");
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    {
        let stream = body.stream().expect("stream");
        while let Ok(chunk) = stream.blocking_read(1 << 20) {
            hasher.update(&chunk);
            kept.extend_from_slice(&chunk);
        }
    }
    drop(body);
    let digest = hasher.finalize();
    let size = query_param(&pq, "size").unwrap_or(4096);
    let key = format!("bench:value:{size}");
    let value = spin_sdk::key_value::Store::open("default")
        .and_then(|store| store.get(&key))
        .ok()
        .flatten()
        .unwrap_or_default();
    // Keep the digest and body observable so neither is optimised away.
    let value = if digest[0] == 0 && kept.is_empty() { Vec::new() } else { value };
    respond(out, &value);
}
