//! Transport-neutral body and response traits, so the proxy logic runs the same
//! over wasi:http streams and over the in-memory fakes of its unit tests.
#![allow(async_fn_in_trait)]

use crate::http::headers::HeaderList;
use std::fmt;

/// A body stream failed (reset, malformed framing, host error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A body read chunk by chunk.
pub trait BodySource {
    /// The next chunk, or `None` at the end of the body.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError>;
}

/// A body being written. Dropping it without [`BodySink::finish`] aborts the
/// message, so a truncated body is never passed off as complete.
pub trait BodySink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BodyError>;
    fn finish(self) -> Result<(), BodyError>;
}

/// The client's side of the exchange: where the one response goes.
pub trait Client: Sized {
    type Sink: BodySink;
    /// Sends status and headers; the body follows through the returned sink.
    fn respond(self, status: u16, headers: HeaderList) -> Result<Self::Sink, BodyError>;

    /// Whether the body is thrown away (a background refresh answers no one):
    /// then a body that costs reads to produce need not be produced.
    fn discards_body(&self) -> bool {
        false
    }

    /// Sends a response whose whole body is at hand. The component hands the
    /// head over only after the body, so both can leave in one write: a head
    /// written alone, then its body, can wait ~40 ms for a delayed ACK on
    /// sockets without `TCP_NODELAY`, which Spin's are.
    async fn respond_complete(self, status: u16, headers: HeaderList, body: &[u8]) -> Result<(), BodyError> {
        let mut sink = self.respond(status, headers)?;
        if !body.is_empty() {
            sink.write(body).await?;
        }
        sink.finish()
    }
}

/// Sends a complete response.
pub async fn respond_full(
    client: impl Client,
    status: u16,
    headers: HeaderList,
    body: &[u8],
) -> Result<(), BodyError> {
    client.respond_complete(status, headers, body).await
}

/// Copies the rest of `source` into `sink`; `Err` leaves the sink unfinished (aborted).
pub async fn pump(source: &mut impl BodySource, sink: &mut impl BodySink) -> Result<(), BodyError> {
    while let Some(chunk) = source.next_chunk().await? {
        sink.write(&chunk).await?;
    }
    Ok(())
}
