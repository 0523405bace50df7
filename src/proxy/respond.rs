//! Answers to the client, at the bottom of the flow: where an answer goes (the
//! client, or nowhere for a background refresh), what every answer's head
//! carries (`Content-Length`, `Cache-Status`), the proxy's own short answers,
//! and how a failure that costs only the cache or the client is logged.

use crate::body::{respond_full, BodyError, BodySink, Client};
use crate::cache::outcome::Outcome;
use crate::http::headers::{self, HeaderList};
use crate::store::StoreError;

/// Where an answer goes: the client, or for a background refresh nowhere (its
/// outcome is logged). One type for both, so the miss path is compiled once,
/// not once per destination: the component's size is budgeted.
pub enum Respond<C> {
    To(C),
    Nowhere,
}

pub enum RespondSink<S> {
    To(S),
    Nowhere,
}

impl<C> Respond<C> {
    /// Whether a client waits for this answer (a background refresh has none).
    pub fn waits(&self) -> bool {
        matches!(self, Respond::To(_))
    }
}

impl<C: Client> Client for Respond<C> {
    type Sink = RespondSink<C::Sink>;
    fn respond(self, status: u16, head: HeaderList) -> Result<Self::Sink, BodyError> {
        match self {
            Respond::To(client) => client.respond(status, head).map(RespondSink::To),
            Respond::Nowhere => {
                let outcome = headers::values(&head, "cache-status").first().map(|v| String::from_utf8_lossy(v).into_owned());
                eprintln!("post-cache: background refresh: {status}, {}", outcome.unwrap_or_default());
                Ok(RespondSink::Nowhere)
            }
        }
    }

    fn discards_body(&self) -> bool {
        matches!(self, Respond::Nowhere)
    }

    async fn respond_complete(self, status: u16, head: HeaderList, body: &[u8]) -> Result<(), BodyError> {
        match self {
            Respond::To(client) => client.respond_complete(status, head, body).await,
            nowhere => nowhere.respond(status, head).map(drop),
        }
    }
}

impl<S: BodySink> BodySink for RespondSink<S> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        match self {
            RespondSink::To(sink) => sink.write(bytes).await,
            RespondSink::Nowhere => Ok(()),
        }
    }
    fn finish(self) -> Result<(), BodyError> {
        match self {
            RespondSink::To(sink) => sink.finish(),
            RespondSink::Nowhere => Ok(()),
        }
    }
}

/// RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any
/// response with a status code of 1xx (Informational) or 204 (No Content)."
pub fn push_length(head: &mut HeaderList, status: u16, len: usize) {
    if status >= 200 && status != 204 && status != 304 {
        head.push(("content-length".into(), len.to_string().into_bytes()));
    }
}

pub fn push_status(head: &mut HeaderList, outcome: Outcome) {
    head.push(("cache-status".into(), outcome.header_value().into_bytes()));
}

/// Answers with a body at hand and its exact length.
pub async fn whole(client: impl Client, status: u16, mut head: HeaderList, body: &[u8], outcome: Outcome) {
    push_length(&mut head, status, body.len());
    push_status(&mut head, outcome);
    report(respond_full(client, status, head, body).await);
}

/// A short plain-text answer of the proxy's own.
pub async fn plain(client: impl Client, status: u16, outcome: Outcome, msg: &str) {
    let head = vec![
        ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
        ("cache-control".into(), b"no-store".to_vec()),
    ];
    whole(client, status, head, msg.as_bytes(), outcome).await
}

pub async fn bad_request_body(client: impl Client, error: BodyError) {
    eprintln!("post-cache: request body failed: {error}");
    let msg = format!("post-cache: the request body could not be read: {error}\n");
    let mut head = vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())];
    push_length(&mut head, 400, msg.len());
    report(respond_full(client, 400, head, msg.as_bytes()).await);
}

/// RFC 9110 §15.5.1: 400 (Bad Request) "due to something that is perceived to
/// be a client error (e.g., malformed request syntax ...)": a path that would
/// leave the origin's base path is never sent on.
pub async fn bad_path(client: impl Client, error: crate::http::path::PathError) {
    let msg = format!("post-cache: the request path is refused ({error:?}): it would leave the origin's base path\n");
    let mut head = vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())];
    push_length(&mut head, 400, msg.len());
    report(respond_full(client, 400, head, msg.as_bytes()).await);
}

/// RFC 9111 §5.2.1.7: "If it receives this directive, a cache SHOULD either
/// respond using a stored response consistent with the other constraints of the
/// request or respond with a 504 (Gateway Timeout)".
pub async fn only_if_cached_miss(client: impl Client) {
    let msg = "post-cache: no usable stored response and the request is only-if-cached\n";
    plain(client, 504, Outcome::OnlyIfCachedMiss, msg).await
}

pub fn log_store_error(op: &str, e: &StoreError) {
    eprintln!("post-cache: key-value {op} failed, serving without cache: {e}");
}

pub fn report(result: Result<(), BodyError>) {
    if let Err(e) = result {
        eprintln!("post-cache: response to the client failed: {e}");
    }
}
