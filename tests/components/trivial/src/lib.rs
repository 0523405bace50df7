//! Benchmark floor 1: drains the request body and answers a fixed body of
//! `?size=` bytes (4 KiB by default), so it can stand beside any response size.
//! It uses the cheapest wasi calls (large blocking reads, check-write/write), so
//! it measures the platform, not an SDK's buffering.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let size = request
        .path_with_query()
        .and_then(|pq| pq.split_once("size=").and_then(|(_, v)| v.split('&').next()?.parse().ok()))
        .unwrap_or(4096usize);
    let body = request.consume().expect("body");
    {
        let stream = body.stream().expect("stream");
        while stream.blocking_read(1 << 20).is_ok() {}
    }
    drop(body);
    let payload = vec![0x42u8; size];
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/octet-stream".to_vec()),
        ("content-length".to_string(), size.to_string().into_bytes()),
    ])
    .expect("headers");
    let response = OutgoingResponse::new(headers);
    let response_body = response.body().expect("body");
    out.set(response);
    {
        let stream = response_body.write().expect("stream");
        let mut rest = &payload[..];
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
