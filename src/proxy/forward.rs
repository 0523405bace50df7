//! Going to the origin: around the cache (streamed or already read), relaying its
//! answer, and the proxy's own answers when the origin or the client fails.

use super::flow::{origin_path, ClientRequest};
use super::respond::{bad_request_body, plain, push_length, push_status, report};
use crate::body::{pump, BodyError, BodySink, BodySource, Client};
use crate::http::headers::{self, HeaderList};
use crate::cache::outcome::{Fwd, Outcome};
use crate::config::Config;
use crate::origin::{Origin, OriginError, OriginRequest, OriginResponse, OutboundBody};

/// What the origin answered a forwarded request: its status and the fields
/// that may name other URLs it changed (for invalidation).
pub struct Answered {
    pub status: u16,
    pub locations: HeaderList,
    /// The answer's body, when the caller asked to read it ([`buffered_reading`])
    /// and it arrived whole, unencoded and within [`ANSWER_CAPTURE_BYTES`].
    pub body: Option<Vec<u8>>,
}

/// The most of a relayed answer kept to be read once the client has it (a
/// GraphQL mutation's answer, to tell whether it ran). Mutation answers are
/// small; a larger one is relayed in full all the same, but not kept, and
/// [`Answered::body`] is `None`: the caller decides without it.
pub const ANSWER_CAPTURE_BYTES: usize = 1 << 20;

fn answered<B>(response: &OriginResponse<B>) -> Answered {
    let locations = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("location") || n.eq_ignore_ascii_case("content-location"))
        .cloned()
        .collect();
    Answered { status: response.status, locations, body: None }
}

/// Forwards a request around the cache, streaming both bodies; `prefix` is what
/// was already read of the request body.
pub async fn streaming<B: BodySource, O: Origin>(
    config: &Config,
    request: &mut ClientRequest<B>,
    prefix: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
) -> Option<Answered> {
    let head = OriginRequest {
        method: &request.method,
        path_and_query: origin_path(config, &request.path_with_query),
        headers: headers::for_origin(&request.headers, false),
    };
    // Read ahead, so that a small body goes with its head in one piece.
    let (ahead, ended) = match read_ahead(&mut request.body, prefix).await {
        (ahead, Ok(ended)) => (ahead, ended),
        (_, Err(e)) => {
            bad_request_body(client, e).await;
            return None;
        }
    };
    let response = if ended {
        let mut head = head;
        if !ahead.is_empty() && !headers::has(&head.headers, "content-length") {
            head.headers.push(("content-length".into(), ahead.len().to_string().into_bytes()));
        }
        origin.send(head, OutboundBody::<B>::Buffered(&ahead)).await
    } else {
        origin.send(head, OutboundBody::Streamed { prefix: &ahead, rest: &mut request.body }).await
    };
    relay_around(config, response, client, outcome, false).await
}

/// Forwards a fully read request and relays the answer without storing it.
pub async fn buffered<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    body: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
) -> Option<Answered> {
    exchange(config, request, body, origin, client, outcome, false).await
}

/// [`buffered`], keeping the answer's body to be read once the client has it
/// ([`Answered::body`]). The origin is asked for it unencoded, as on a miss:
/// a compressed answer could not be read.
pub async fn buffered_reading<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    body: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
) -> Option<Answered> {
    exchange(config, request, body, origin, client, outcome, true).await
}

/// Sends a request around the cache and relays the answer.
async fn exchange<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    body: &[u8],
    origin: &O,
    client: impl Client,
    outcome: Outcome,
    read: bool,
) -> Option<Answered> {
    let response = send(config, request, body, origin, read, Conditionals::Client).await;
    relay_around(config, response, client, outcome, read).await
}

/// Relays what the origin answered a request that went around the cache, or
/// the proxy's own error; says what was answered, with its body if `read`.
async fn relay_around<B: BodySource>(
    config: &Config,
    response: Result<OriginResponse<B>, OriginError>,
    client: impl Client,
    outcome: Outcome,
    read: bool,
) -> Option<Answered> {
    match response {
        Ok(response) => {
            let mut answered = answered(&response);
            // An encoded answer is relayed as it is, and not read.
            let encoded = headers::values(&response.headers, "content-encoding")
                .iter()
                .any(|v| !String::from_utf8_lossy(v).trim().eq_ignore_ascii_case("identity"));
            let mut capture = (read && !encoded).then(Capture::default);
            relay_capturing(config, response, client, outcome, &[], capture.as_mut()).await;
            answered.body = capture.and_then(Capture::into_body);
            Some(answered)
        }
        Err(e) => {
            origin_failed(config, client, Fwd::Bypass, e).await;
            None
        }
    }
}

/// The body of an answer as it is relayed, kept up to [`ANSWER_CAPTURE_BYTES`].
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    /// More than the bound arrived: what was kept is dropped.
    over: bool,
    /// The body was read to its end.
    whole: bool,
}

impl Capture {
    fn keep(&mut self, piece: &[u8]) {
        if self.over {
            return;
        }
        if self.bytes.len() + piece.len() > ANSWER_CAPTURE_BYTES {
            self.over = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(piece);
    }

    fn into_body(self) -> Option<Vec<u8>> {
        (self.whole && !self.over).then_some(self.bytes)
    }
}

/// Which `If-None-Match` / `If-Modified-Since` go to the origin.
#[derive(Clone, Copy)]
pub enum Conditionals<'a> {
    /// The client's, if it sent any.
    Client,
    /// The stored record's validators, in place of the client's.
    Ours(&'a [(String, Vec<u8>)]),
}

/// Sends a fully read request body, with its exact `content-length`; with
/// `identity`, asks for an unencoded answer: the cache must read an answer it
/// checks (GraphQL `errors`, JSON-RPC ids), which it cannot when the origin
/// compresses it for a client that accepts gzip.
pub async fn send<B: BodySource, O: Origin>(
    config: &Config,
    request: &ClientRequest<B>,
    bytes: &[u8],
    origin: &O,
    identity: bool,
    conditionals: Conditionals<'_>,
) -> Result<OriginResponse<O::Body>, OriginError> {
    let mut headers = headers::for_origin(&request.headers, true);
    if let Conditionals::Ours(validators) = conditionals {
        headers.retain(|(name, _)| {
            !name.eq_ignore_ascii_case("if-none-match") && !name.eq_ignore_ascii_case("if-modified-since")
        });
        headers.extend(validators.iter().cloned());
    }
    if identity {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("accept-encoding"));
        headers.push(("accept-encoding".into(), b"identity".to_vec()));
    }
    headers.push(("content-length".into(), bytes.len().to_string().into_bytes()));
    let head = OriginRequest {
        method: &request.method,
        path_and_query: origin_path(config, &request.path_with_query),
        headers,
    };
    origin.send(head, OutboundBody::<B>::Buffered(bytes)).await
}

/// How much of a relayed answer is read before its head is sent: an answer
/// that ends within it leaves in one piece with its exact length.
pub const READ_AHEAD: usize = 64 * 1024;

/// Streams an origin response to the client: `prefix` (already read) first,
/// then the rest. A body that fails midway aborts the client's response.
/// Targeted cache-control fields (RFC 9213) were for this cache and stay here.
pub async fn relay<B: BodySource>(
    config: &Config,
    response: OriginResponse<B>,
    client: impl Client,
    outcome: Outcome,
    prefix: &[u8],
) {
    relay_capturing(config, response, client, outcome, prefix, None).await
}

/// [`relay`], copying each piece into `capture` as it goes out: the client
/// waits for nothing more than without it.
async fn relay_capturing<B: BodySource>(
    config: &Config,
    mut response: OriginResponse<B>,
    client: impl Client,
    outcome: Outcome,
    prefix: &[u8],
    mut capture: Option<&mut Capture>,
) {
    let mut head = headers::for_client(&response.headers, &config.targeted_fields());
    push_status(&mut head, outcome);
    let (ahead, ended) = read_ahead(&mut response.body, prefix).await;
    if let Some(c) = capture.as_deref_mut() {
        c.keep(&ahead);
    }
    let failed = match ended {
        Ok(true) => {
            if let Some(c) = capture {
                c.whole = true;
            }
            // All of it: one piece, with its exact length when the origin sent
            // it chunked (an empty body may answer a HEAD: no length then).
            if !ahead.is_empty() && !headers::has(&head, "content-length") {
                push_length(&mut head, response.status, ahead.len());
            }
            return report(client.respond_complete(response.status, head, &ahead).await);
        }
        Ok(false) => None,
        Err(e) => Some(e),
    };
    let result = async {
        let mut sink = client.respond(response.status, head)?;
        if !ahead.is_empty() {
            sink.write(&ahead).await?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        match capture {
            None => pump(&mut response.body, &mut sink).await?,
            Some(c) => {
                while let Some(chunk) = response.body.next_chunk().await? {
                    c.keep(&chunk);
                    sink.write(&chunk).await?;
                }
                c.whole = true;
            }
        }
        sink.finish()
    };
    report(result.await);
}

/// `prefix` and what follows of `body`, up to [`READ_AHEAD`] bytes, and whether
/// that was all of it (or how the body failed).
async fn read_ahead(body: &mut impl BodySource, prefix: &[u8]) -> (Vec<u8>, Result<bool, BodyError>) {
    let mut ahead = prefix.to_vec();
    while ahead.len() < READ_AHEAD {
        match body.next_chunk().await {
            Ok(Some(chunk)) => ahead.extend_from_slice(&chunk),
            Ok(None) => return (ahead, Ok(true)),
            Err(e) => return (ahead, Err(e)),
        }
    }
    (ahead, Ok(false))
}

pub async fn origin_failed(config: &Config, client: impl Client, fwd: Fwd, error: OriginError) {
    let (status, detail, msg) = match &error {
        OriginError::Timeout(what) => (
            504,
            "origin-timeout",
            format!("post-cache: the origin did not answer within {} s ({what})\n", config.origin_timeout),
        ),
        OriginError::Unreachable(what) => (
            502,
            "origin-unreachable",
            format!("post-cache: the origin could not be reached ({what})\n"),
        ),
        OriginError::Denied => (
            502,
            "origin-denied",
            "post-cache: the host denied the request to the origin; is it in allowed_outbound_hosts?\n".to_string(),
        ),
        OriginError::RequestBody(e) => {
            return bad_request_body(client, e.clone()).await;
        }
    };
    eprintln!("post-cache: origin error: {error:?}");
    plain(client, status, Outcome::OriginFailed { fwd, detail }, &msg).await
}
