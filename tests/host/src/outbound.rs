//! Outbound HTTP as Spin allows it: only to `allowed_outbound_hosts`, otherwise
//! the wasi:http `HTTP-request-denied` error.

use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Allowed `scheme://host:port` origins, like Spin's `allowed_outbound_hosts`
/// after template expansion (no wildcards).
#[derive(Clone, Default)]
pub struct OutboundPolicy {
    pub allowed: Arc<Vec<String>>,
}

impl OutboundPolicy {
    pub fn is_allowed(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else { return false };
        let Some(host) = uri.host() else { return false };
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.allowed.iter().any(|allowed| {
            let Ok(a) = allowed.parse::<http::Uri>() else { return false };
            let a_port = a.port_u16().unwrap_or(if a.scheme_str() == Some("https") { 443 } else { 80 });
            a.scheme_str() == Some(scheme)
                && a.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
                && a_port == port
        })
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
                Output = Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ), Error>,
            > + Send,
    > {
        let _ = fut;
        let allowed = self.is_allowed(request.uri());
        Box::new(async move {
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
