//! Benchmark floor 1: drains the request body and answers a fixed body of
//! `?size=` bytes (4 KiB by default), so it can stand beside any response size.

#[path = "../../common/floor_io.rs"]
mod floor_io;

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let pq = request.path_with_query().unwrap_or_default();
    let size = floor_io::query_param(&pq, "size").unwrap_or(4096);
    floor_io::read_body(request, |_| {});
    floor_io::respond(out, &vec![0x42u8; size]);
}
