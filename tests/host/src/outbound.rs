//! Outbound HTTP as Spin does it: only to `allowed_outbound_hosts` (otherwise
//! the wasi:http `HTTP-request-denied` error), and plain-HTTP connections pooled
//! across instances, as Spin has done since it moved outbound wasi:http to
//! hyper-util's pooling client.

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Allowed `scheme://host:port` origins, like Spin's `allowed_outbound_hosts`
/// after template expansion (no wildcards), and the shared connection pool.
#[derive(Clone)]
pub struct OutboundPolicy {
    pub allowed: Arc<Vec<String>>,
    pool: Client<HttpConnector, WasiBody>,
}

impl OutboundPolicy {
    /// `nodelay`: `TCP_NODELAY` on outbound connections, which Spin's client leaves off.
    pub fn new(allowed: Vec<String>, nodelay: bool) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(nodelay);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self { allowed: Arc::new(allowed), pool }
    }

    pub fn is_allowed(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else { return false };
        let Some(host) = uri.host() else { return false };
        let default_port = |scheme: Option<&str>| if scheme == Some("https") { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port(Some(scheme)));
        self.allowed.iter().any(|allowed| {
            let Ok(a) = allowed.parse::<http::Uri>() else { return false };
            a.scheme_str() == Some(scheme)
                && a.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
                && a.port_u16().unwrap_or(default_port(a.scheme_str())) == port
        })
    }
}

/// Sends over the pool, with the request's first-byte timeout (which here also
/// covers connecting, when no pooled connection is free).
async fn send_pooled(
    pool: Client<HttpConnector, WasiBody>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let first_byte = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(Duration::from_secs(600));
    match tokio::time::timeout(first_byte, pool.request(request)).await {
        Err(_) => Err(Error::ConnectionReadTimeout),
        Ok(Err(e)) if e.is_connect() => Err(Error::ConnectionRefused),
        Ok(Err(_)) => Err(Error::HttpProtocolError),
        Ok(Ok(response)) => Ok(response.map(|body| body.map_err(Error::from).boxed_unsync())),
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>),
                    Error,
                >,
            > + Send,
    > {
        let _ = fut;
        let allowed = self.is_allowed(request.uri());
        let pool = self.pool.clone();
        Box::new(async move {
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            if request.uri().scheme_str() == Some("http") {
                return Ok((send_pooled(pool, request, options).await?, done));
            }
            // TLS: wasmtime-wasi-http's own client, one connection per request.
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}
