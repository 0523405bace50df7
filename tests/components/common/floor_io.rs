//! Shared by the benchmark floor components: the cheapest wasi calls for reading
//! a request body (large blocking reads) and writing an answer (check-write/write),
//! so the floors measure the platform, not an SDK's buffering.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Reads the whole request body, handing each chunk to `each`.
pub fn read_body(request: IncomingRequest, mut each: impl FnMut(&[u8])) {
    let body = request.consume().expect("body");
    {
        let stream = body.stream().expect("stream");
        while let Ok(chunk) = stream.blocking_read(1 << 20) {
            each(&chunk);
        }
    }
    drop(body);
}

/// Answers 200 with `payload` and its exact `content-length`.
pub fn respond(out: ResponseOutparam, payload: &[u8]) {
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

/// The value of query parameter `name` in a path-with-query.
pub fn query_param(pq: &str, name: &str) -> Option<usize> {
    let query = pq.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}
