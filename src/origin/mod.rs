//! The origin behind the cache.
#![allow(async_fn_in_trait)]

use crate::body::{BodyError, BodySource};
use crate::http::headers::HeaderList;

/// What is sent to the origin, besides the body.
#[derive(Debug, Clone)]
pub struct OriginRequest<'a> {
    pub method: &'a str,
    /// The origin's base path joined with the client's path and query.
    pub path_and_query: String,
    pub headers: HeaderList,
}

/// The request body as sent on: read in full already, or a read prefix followed
/// by the rest of the client's stream.
pub enum OutboundBody<'a, S> {
    Buffered(&'a [u8]),
    Streamed { prefix: &'a [u8], rest: &'a mut S },
}

pub struct OriginResponse<B> {
    pub status: u16,
    pub headers: HeaderList,
    pub body: B,
}

/// Why the origin gave no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// Refused, reset, DNS, TLS or protocol failure: the client gets a 502.
    Unreachable(String),
    /// No connection or no first byte within `origin_timeout`: the client gets a 504.
    Timeout(String),
    /// The host refused the request (`allowed_outbound_hosts`): a 502 that says so.
    Denied,
    /// The client's request body failed while it was being forwarded: a 400.
    RequestBody(BodyError),
}

pub trait Origin {
    type Body: BodySource;
    async fn send<S: BodySource>(
        &self,
        request: OriginRequest<'_>,
        body: OutboundBody<'_, S>,
    ) -> Result<OriginResponse<Self::Body>, OriginError>;
}
