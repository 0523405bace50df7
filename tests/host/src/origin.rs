//! A real HTTP/1.1 test origin on loopback. It counts requests per (method,
//! path, body digest) and answers as the query string says:
//! `status=`, `cc=` (Cache-Control), `cdn_cc=` (CDN-Cache-Control), `tags=`
//! (Surrogate-Key), `expires=`, `vary=`, `set_cookie=1`,
//! `size=` (a binary body of that many bytes, different on every request unless
//! `static=1`), `chunked=1`, `delay_ms=`, `etag=` (sent as a strong `ETag`, and
//! a request whose `If-None-Match` names it gets `304` without a body). Faults
//! switched on at run time ([`TestOrigin::set_faults`]) hit every path alike, so
//! the same cache key can see a healthy origin, then a failing one.
//!
//! Under `/graphql` it speaks GraphQL over HTTP and under `/rpc` JSON-RPC 2.0
//! (see [`graphql_answer`] and [`jsonrpc_answer`]); both send no `Cache-Control`
//! unless `cc=` asks, as most such servers do.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the origin saw.
#[derive(Default)]
pub struct OriginLog {
    counts: HashMap<(String, String, [u8; 32]), u64>,
    total: u64,
    not_modified: u64,
    last_headers: Vec<(String, Vec<u8>)>,
    last_body_len: usize,
}

/// Failures the origin can be switched into.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer every request with this status (and a short text body).
    pub status: Option<u16>,
    /// Close every connection as soon as it is accepted: an origin that is down.
    pub down: bool,
    /// Wait this long before answering (on top of `delay_ms=`).
    pub delay_ms: u64,
    /// The next this many answers promise their full length, send half of the
    /// body and close the connection.
    pub reset_mid_body: u64,
}

pub struct TestOrigin {
    pub addr: SocketAddr,
    log: Arc<Mutex<OriginLog>>,
    faults: Arc<Mutex<Faults>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestOrigin {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(OriginLog::default()));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (server_log, server_faults, gate_faults) = (log.clone(), faults.clone(), faults.clone());
        let open = Arc::new(move || !gate_faults.lock().unwrap().down);
        let task = crate::listen::serve(listener, true, open, move |_, req| {
            answer(server_log.clone(), server_faults.clone(), req)
        });
        Ok(Self { addr, log, faults, task })
    }

    /// Switches faults on (or off, with `Faults::default()`).
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    /// Requests answered `304 Not Modified` (no body sent).
    pub fn not_modified(&self) -> u64 {
        self.log.lock().unwrap().not_modified
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen for this method, path (without query) and body.
    pub fn count(&self, method: &str, path: &str, body: &[u8]) -> u64 {
        let key = (method.to_string(), path.to_string(), Sha256::digest(body).into());
        self.log.lock().unwrap().counts.get(&key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.log.lock().unwrap().total
    }

    /// Requests seen for this method and path (without query), whatever the body.
    pub fn count_path(&self, method: &str, path: &str) -> u64 {
        let log = self.log.lock().unwrap();
        log.counts.iter().filter(|((m, p, _), _)| m == method && p == path).map(|(_, n)| n).sum()
    }

    /// Headers of the last request, in order.
    pub fn last_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.log.lock().unwrap().last_headers.clone()
    }

    pub fn last_body_len(&self) -> usize {
        self.log.lock().unwrap().last_body_len
    }
}

/// A deterministic binary body: every byte value occurs, and `seed` changes it.
pub fn binary_body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The same body for every request of this size, generated once (benchmarks).
fn static_body(size: usize) -> Vec<u8> {
    static BODIES: Mutex<Vec<(usize, Vec<u8>)>> = Mutex::new(Vec::new());
    let mut bodies = BODIES.lock().unwrap();
    if let Some((_, body)) = bodies.iter().find(|(s, _)| *s == size) {
        return body.clone();
    }
    let body = binary_body(size, 0);
    bodies.push((size, body.clone()));
    body
}

fn query_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(
    log: Arc<Mutex<OriginLog>>,
    faults: Arc<Mutex<Faults>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, std::io::Error> {
    // Down: connections kept alive from before are closed unanswered too.
    if faults.lock().unwrap().down {
        return Err(std::io::Error::other("the origin is down"));
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let params = query_params(req.uri().query().unwrap_or(""));
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let request_etags = req_etags(&headers);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let count = {
        let mut log = log.lock().unwrap();
        log.total += 1;
        log.last_headers = headers;
        log.last_body_len = body.len();
        let c = log.counts.entry((method.clone(), path.clone(), digest)).or_default();
        *c += 1;
        *c
    };
    let fault = {
        let mut faults = faults.lock().unwrap();
        let now = faults.clone();
        faults.reset_mid_body = faults.reset_mid_body.saturating_sub(1);
        now
    };
    let delay_ms = params.get("delay_ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + fault.delay_ms;
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    if let Some(status) = fault.status {
        let response = hyper::Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"the origin is failing\n")).boxed());
        return Ok(response.expect("valid response"));
    }
    let etag = params.get("etag").map(|tag| format!("\"{tag}\""));
    if let Some(etag) = &etag {
        let matches = request_etags.iter().any(|t| t == etag || t == "*");
        if matches {
            log.lock().unwrap().not_modified += 1;
            let mut builder = hyper::Response::builder().status(304).header("etag", etag.as_str());
            if let Some(v) = params.get("cc") {
                builder = builder.header("cache-control", v.as_str());
            }
            return Ok(builder.body(Full::new(Bytes::new()).boxed()).expect("valid response"));
        }
    }
    let status: u16 = params.get("status").and_then(|v| v.parse().ok()).unwrap_or(200);
    let mut builder = hyper::Response::builder()
        .status(status)
        .header("x-origin-count", count.to_string())
        .header("x-multi", "one")
        .header("x-multi", "two");
    for (param, header) in [("cc", "cache-control"), ("cdn_cc", "cdn-cache-control"), ("tags", "surrogate-key"), ("expires", "expires"), ("vary", "vary")] {
        if let Some(v) = params.get(param) {
            builder = builder.header(header, v.as_str());
        }
    }
    if let Some(etag) = &etag {
        builder = builder.header("etag", etag.as_str());
    }
    if params.get("set_cookie").is_some() {
        builder = builder.header("set-cookie", "session=abc; Path=/").header("set-cookie", "theme=dark");
    }
    let total = log.lock().unwrap().total;
    let speaking = if path.starts_with("/graphql") {
        Some(graphql_answer(&body, total))
    } else if path.starts_with("/rpc") {
        Some(jsonrpc_answer(&body, total))
    } else {
        None
    };
    let payload: Vec<u8> = match params.get("size").and_then(|v| v.parse::<usize>().ok()) {
        _ if speaking.is_some() => {
            builder = builder.header("content-type", "application/json");
            speaking.expect("checked")
        }
        Some(size) => {
            builder = builder.header("content-type", "application/octet-stream");
            if params.contains_key("static") {
                static_body(size)
            } else {
                binary_body(size, count)
            }
        }
        None => {
            builder = builder.header("content-type", "application/json");
            format!(
                "{{\"method\":\"{method}\",\"path\":\"{path}\",\"body_len\":{},\"body_sha256\":\"{}\",\"count\":{count}}}",
                body.len(),
                digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
            .into_bytes()
        }
    };
    if fault.reset_mid_body > 0 {
        // The promised length, half the bytes: hyper closes the connection when
        // the body ends short, as a crashing origin would. A stream, not a
        // `Full` body: hyper frames by the header only when the body's own
        // length is unknown (with a known one it would refuse the mismatch
        // before sending the head, and the break would never be mid-body).
        // The end waits a moment, so that what was sent is flushed first.
        let half = Bytes::from(payload[..payload.len() / 2].to_vec());
        let body = futures::stream::unfold(Some(half), |half| async move {
            match half {
                Some(half) => Some((Ok::<_, Infallible>(Frame::data(half)), None)),
                None => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    None
                }
            }
        });
        let body = StreamBody::new(body).boxed();
        let response = builder.header("content-length", payload.len().to_string()).body(body);
        return Ok(response.expect("valid response"));
    }
    let body: Body = if params.get("chunked").is_some() {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = payload
            .chunks(16 * 1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures::stream::iter(chunks)).boxed()
    } else {
        Full::new(Bytes::from(payload)).boxed()
    };
    Ok(builder.body(body).expect("valid response"))
}

/// The entity tags of every `If-None-Match` line.
fn req_etags(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("if-none-match"))
        .flat_map(|(_, v)| String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
        .collect()
}

/// A GraphQL server's answer: `{"data":{"answer":{"n":N,"doc":"…"}}}` where N
/// counts all requests the origin has seen; a document mentioning `failing` gets
/// `{"data":null,"errors":[…]}`, one mentioning `partial` data and errors.
/// `variables.entities`, when sent, comes back as `data.entities`: the objects
/// (`{"__typename":"User","id":"1"}`) the answer shows.
pub fn graphql_answer(body: &[u8], n: u64) -> Vec<u8> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let answer = |request: &serde_json::Value| {
        let query = request.get("query").and_then(|q| q.as_str()).unwrap_or("");
        if query.contains("failing") {
            serde_json::json!({"data": null, "errors": [{"message": "the resolver failed"}]})
        } else if query.contains("partial") {
            serde_json::json!({"data": {"answer": null}, "errors": [{"message": "one field failed"}]})
        } else {
            let mut answer = serde_json::json!({"data": {"answer": {"n": n, "doc": query}}});
            if let Some(entities) = request.pointer("/variables/entities") {
                answer["data"]["entities"] = entities.clone();
            }
            answer
        }
    };
    let value = match &request {
        serde_json::Value::Array(batch) => serde_json::Value::Array(batch.iter().map(answer).collect()),
        single => answer(single),
    };
    serde_json::to_vec(&value).expect("serialises")
}

/// A JSON-RPC 2.0 server's answer: each call with an id gets
/// `{"jsonrpc":"2.0","id":…,"result":{"method":…,"n":N}}`, or an `error` for
/// methods starting `fail_`. A batch is answered in reverse order, which the spec
/// allows, so clients (and caches) must match answers by id.
pub fn jsonrpc_answer(body: &[u8], n: u64) -> Vec<u8> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let answer = |call: &serde_json::Value| {
        let id = call.get("id")?.clone();
        let method = call.get("method").and_then(|m| m.as_str()).unwrap_or("");
        Some(if method.starts_with("fail_") {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "failed"}})
        } else {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"method": method, "n": n}})
        })
    };
    let value = match &request {
        serde_json::Value::Array(batch) => serde_json::Value::Array(batch.iter().rev().filter_map(answer).collect()),
        single => answer(single).unwrap_or(serde_json::Value::Null),
    };
    serde_json::to_vec(&value).expect("serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonrpc_batches_are_answered_in_reverse_without_notifications() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"x","method":"fail_b"}]"#;
        let answer: serde_json::Value = serde_json::from_slice(&jsonrpc_answer(body, 7)).unwrap();
        assert_eq!(answer[0]["id"], "x");
        assert!(answer[0]["error"].is_object());
        assert_eq!(answer[1]["id"], 1);
        assert_eq!(answer[1]["result"]["n"], 7);
        assert_eq!(answer.as_array().unwrap().len(), 2);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("max-age%3D60%2C%20public"), "max-age=60, public");
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
