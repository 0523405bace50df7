//! Everything that touches Spin or WASI: the HTTP entry point, the key-value
//! store, outbound HTTP, body streams and the clock. The rest of the crate runs
//! over the traits in `body`, `store`, `origin` and `runtime`, so a second host
//! flavor is one more folder beside this one.

mod outbound;
mod io;
mod kv;
use crate::body::{respond_full, BodyError, BodySink, Client};
use crate::http::headers::HeaderList;
use crate::config::Config;
use outbound::SpinOrigin;
use crate::proxy::{self, ClientRequest};
use kv::SpinKv;
use io::{IncomingStream, OutgoingStream, WasiRuntime};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

struct Downstream(ResponseOutparam);

impl Downstream {
    fn response(status: u16, headers: &HeaderList) -> Result<OutgoingResponse, BodyError> {
        let (fields, status) = match Fields::from_list(headers) {
            Ok(fields) => (fields, status),
            Err(e) => {
                // The origin sent a header wasi:http will not carry; say so
                // rather than pass on a response with headers silently missing.
                eprintln!("post-cache: response headers rejected: {e:?}");
                (Fields::new(), 502)
            }
        };
        let response = OutgoingResponse::new(fields);
        response
            .set_status_code(status)
            .map_err(|()| BodyError(format!("invalid status {status}")))?;
        Ok(response)
    }
}

impl Client for Downstream {
    type Sink = OutgoingStream;

    fn respond(self, status: u16, headers: HeaderList) -> Result<OutgoingStream, BodyError> {
        let response = Self::response(status, &headers)?;
        let body = response.body().expect("a new response has a body");
        self.0.set(response);
        OutgoingStream::new(body)
    }

    async fn respond_complete(self, status: u16, headers: HeaderList, bytes: &[u8]) -> Result<(), BodyError> {
        let response = Self::response(status, &headers)?;
        let mut sink = OutgoingStream::new(response.body().expect("a new response has a body"))?;
        // The body first, finished, then the head: the host then has both
        // when it writes the response. Only when the host takes the body in
        // one write without waiting: before the head is handed over nobody
        // reads the body, so a second write could wait forever.
        if bytes.is_empty() || sink.write_at_once(bytes)? {
            let finished = sink.finish();
            self.0.set(response);
            return finished;
        }
        self.0.set(response);
        sink.write(bytes).await?;
        sink.finish()
    }
}

fn variable(name: &'static str) -> Result<Option<String>, String> {
    use spin_sdk::variables::{get, Error};
    match get(name) {
        Ok(value) => Ok(Some(value)),
        Err(Error::Undefined(_)) => Ok(None),
        Err(Error::InvalidName(msg)) => Err(format!("invalid name: {msg}")),
        Err(Error::Provider(msg)) => Err(format!("provider: {msg}")),
        Err(Error::Other(msg)) => Err(msg),
    }
}

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let client = Downstream(out);
    let config = match Config::from_lookup(variable) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("post-cache: configuration error: {e}");
            let msg = format!("post-cache is misconfigured: {e}\n");
            let head = vec![
                ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
                ("content-length".into(), msg.len().to_string().into_bytes()),
            ];
            let _ = respond_full(client, 500, head, msg.as_bytes()).await;
            return;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let headers = request.headers().entries();
    let method = request.method().to_string();
    let authority = request.authority().unwrap_or_default();
    let path_with_query = request.path_with_query().unwrap_or_default();
    let body = match request.consume() {
        Ok(body) => IncomingStream::new(body),
        Err(()) => Err(BodyError("request body already consumed".into())),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            eprintln!("post-cache: request body unavailable: {e}");
            let _ = respond_full(client, 400, Vec::new(), b"").await;
            return;
        }
    };
    let request = ClientRequest { method, authority, path_with_query, headers, body };
    let origin = SpinOrigin { url: config.origin.clone(), timeout: config.origin_timeout };
    let kv_store = config.kv_store.clone();
    proxy::handle(&config, now, request, || SpinKv::open(&kv_store), &origin, client, &WasiRuntime).await;
}
