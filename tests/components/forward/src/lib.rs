//! Benchmark floor 3, the least any pass-through can do: read the request body,
//! send the request to the origin (variable `origin`, `http://host:port`) with
//! its body written before the request is handed over, read the whole answer
//! and send it back in one piece. No headers are copied, no decisions made.

#[path = "../../common/floor_io.rs"]
#[allow(dead_code)]
mod floor_io;

use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, ResponseOutparam, Scheme};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;

#[http_component]
fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let origin = spin_sdk::variables::get("origin").expect("variable origin");
    let authority = origin.trim_start_matches("http://").trim_end_matches('/').to_string();
    let method = request.method();
    let pq = request.path_with_query().unwrap_or_default();
    let mut body = Vec::new();
    floor_io::read_body(request, |chunk| body.extend_from_slice(chunk));

    let headers = if body.is_empty() {
        Fields::new()
    } else {
        Fields::from_list(&[("content-length".to_string(), body.len().to_string().into_bytes())]).expect("headers")
    };
    let outgoing = OutgoingRequest::new(headers);
    outgoing.set_method(&method).expect("method");
    outgoing.set_scheme(Some(&Scheme::Http)).expect("scheme");
    outgoing.set_authority(Some(&authority)).expect("authority");
    outgoing.set_path_with_query(Some(&pq)).expect("path");
    if !body.is_empty() || !matches!(method, Method::Get | Method::Head) {
        let outgoing_body = outgoing.body().expect("body");
        {
            let stream = outgoing_body.write().expect("stream");
            for chunk in body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).expect("request body");
            }
        }
        OutgoingBody::finish(outgoing_body, None).expect("finish");
    }
    let pending = outgoing_handler::handle(outgoing, None).expect("send");
    pending.subscribe().block();
    let response = pending.get().expect("ready").expect("once").expect("answered");
    let incoming = response.consume().expect("body");
    let mut answer = Vec::new();
    {
        let stream = incoming.stream().expect("stream");
        while let Ok(chunk) = stream.blocking_read(1 << 20) {
            answer.extend_from_slice(&chunk);
        }
    }
    floor_io::respond(out, &answer);
}
