//! The origin over Spin's outbound HTTP: the only file that sends requests.

use crate::origin::{Origin, OriginError, OriginRequest, OriginResponse, OutboundBody};
use crate::body::{BodySink, BodySource};
use crate::config::OriginUrl;
use super::io::{retry, IncomingStream, OutgoingStream};
use spin_sdk::http::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;

pub struct SpinOrigin {
    pub url: OriginUrl,
    /// Connect and first-byte timeout, seconds.
    pub timeout: u64,
}

/// A response body that keeps its `IncomingResponse` alive while it is read:
/// wasmtime-based hosts cancel the exchange when the response is dropped.
pub struct ResponseBody {
    stream: IncomingStream,
    _response: IncomingResponse,
}

impl BodySource for ResponseBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, crate::body::BodyError> {
        self.stream.next_chunk().await
    }
}

impl Origin for SpinOrigin {
    type Body = ResponseBody;

    async fn send<S: BodySource>(
        &self,
        request: OriginRequest<'_>,
        body: OutboundBody<'_, S>,
    ) -> Result<OriginResponse<ResponseBody>, OriginError> {
        let unreachable = |what: String| OriginError::Unreachable(what);
        let fields = Fields::from_list(&request.headers)
            .map_err(|e| unreachable(format!("request headers rejected: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match request.method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            other => Method::Other(other.to_string()),
        };
        let scheme = if self.url.https { Scheme::Https } else { Scheme::Http };
        let set = [
            outgoing.set_method(&method),
            outgoing.set_scheme(Some(&scheme)),
            outgoing.set_authority(Some(&self.url.authority)),
            outgoing.set_path_with_query(Some(&request.path_and_query)),
        ];
        if set.iter().any(Result::is_err) {
            return Err(unreachable(format!("invalid request line for {}", request.path_and_query)));
        }
        // No body at all when there is none to send: a body stream, even an
        // empty one, makes the host's client frame a GET as chunked and send
        // its terminator as a second write.
        let mut sink = match &body {
            OutboundBody::Buffered(bytes) if bytes.is_empty() => None,
            _ => {
                let handle = outgoing.body().expect("a new request has a body");
                Some(OutgoingStream::new(handle).map_err(OriginError::RequestBody)?)
            }
        };
        // A body at hand that the host takes in one write goes first, finished,
        // so the request leaves in one piece (see `Client::respond_complete`).
        if let (Some(open), OutboundBody::Buffered(bytes)) = (sink.as_mut(), &body) {
            if open.write_at_once(bytes).map_err(|e| unreachable(e.0))? {
                sink.take().expect("open").finish().map_err(|e| unreachable(e.0))?;
            }
        }
        let options = RequestOptions::new();
        let timeout_ns = self.timeout.saturating_mul(1_000_000_000);
        // A host that does not support a timeout refuses to set it; the request
        // then goes without one rather than failing.
        let _ = options.set_connect_timeout(Some(timeout_ns));
        let _ = options.set_first_byte_timeout(Some(timeout_ns));
        let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(map_error)?;

        // Send the body while waiting for the response head, so an origin that
        // answers early (or reads slowly) cannot deadlock the exchange.
        let write_body = async {
            let Some(mut sink) = sink.take() else { return Ok(()) };
            match body {
                OutboundBody::Buffered(bytes) => {
                    sink.write(bytes).await.map_err(|e| unreachable(e.0))?;
                }
                OutboundBody::Streamed { prefix, rest } => {
                    sink.write(prefix).await.map_err(|e| unreachable(e.0))?;
                    while let Some(chunk) = rest.next_chunk().await.map_err(OriginError::RequestBody)? {
                        sink.write(&chunk).await.map_err(|e| unreachable(e.0))?;
                    }
                }
            }
            sink.finish().map_err(|e| unreachable(e.0))
        };
        let response = retry(|| pending.get(), || pending.subscribe());
        let (written, response) = futures::future::join(write_body, response).await;
        let response = response
            .map_err(|()| unreachable("response already taken".into()))?
            .map_err(map_error)?;
        // A failed body write shows up as the response error above when the
        // origin saw it; otherwise report it here.
        written?;
        let status = response.status();
        let headers = response.headers().entries();
        let body = response
            .consume()
            .map_err(|()| unreachable("response body already taken".into()))?;
        let stream = IncomingStream::new(body).map_err(|e| unreachable(e.0))?;
        Ok(OriginResponse {
            status,
            headers,
            body: ResponseBody { stream, _response: response },
        })
    }
}

fn map_error(code: ErrorCode) -> OriginError {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => OriginError::Timeout(format!("{code:?}")),
        ErrorCode::HttpRequestDenied => OriginError::Denied,
        other => OriginError::Unreachable(format!("{other:?}")),
    }
}
