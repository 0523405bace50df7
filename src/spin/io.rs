//! wasi:http body streams as [`BodySource`]/[`BodySink`], driven by the Spin
//! executor (which polls only WASI pollables).

use crate::body::{BodyError, BodySink, BodySource};
use spin_executor::{push_waker_and_get_token, CancelOnDropToken};
use spin_sdk::http::{ErrorCode, OutgoingBody};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use std::future::poll_fn;
use std::task::Poll;
// spin-sdk binds wasi:io to the `wasi` crate's types (its bindings name them
// in `with`), so these are the very types its HTTP bindings hand out.
use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Largest read asked of the host at once; it returns what it has buffered.
const READ_LIMIT: u64 = 1 << 20;

/// Retries `attempt` until it yields a value, parking on `subscribe`'s pollable
/// between attempts. Each poll retries, because the executor re-polls the whole
/// task whenever any pollable is ready.
pub async fn retry<T>(mut attempt: impl FnMut() -> Option<T>, subscribe: impl Fn() -> Pollable) -> T {
    let mut parked: Option<CancelOnDropToken> = None;
    poll_fn(|cx| match attempt() {
        Some(value) => Poll::Ready(value),
        None => {
            parked = Some(push_waker_and_get_token(subscribe(), cx.waker().clone()).into());
            Poll::Pending
        }
    })
    .await
}

/// An incoming body (request or response) being read.
pub struct IncomingStream {
    // Field order is drop order: the stream is a child of the body.
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
}

impl IncomingStream {
    pub fn new(body: IncomingBody) -> Result<Self, BodyError> {
        let stream = body
            .stream()
            .map_err(|()| BodyError("body stream already taken".into()))?;
        Ok(Self { stream: Some(stream), body: Some(body) })
    }
}

impl BodySource for IncomingStream {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        let read = retry(
            || match stream.read(READ_LIMIT) {
                Ok(bytes) if bytes.is_empty() => None,
                other => Some(other),
            },
            || stream.subscribe(),
        )
        .await;
        match read {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => {
                self.stream = None;
                if let Some(body) = self.body.take() {
                    drop(IncomingBody::finish(body));
                }
                Ok(None)
            }
            Err(StreamError::LastOperationFailed(e)) => Err(BodyError(e.to_debug_string())),
        }
    }
}

/// An outgoing body (request or response) being written; dropped without
/// [`BodySink::finish`] it is abandoned, which the host reports as an error.
pub struct OutgoingStream {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl OutgoingStream {
    pub fn new(body: OutgoingBody) -> Result<Self, BodyError> {
        let stream = body
            .write()
            .map_err(|()| BodyError("body stream already taken".into()))?;
        Ok(Self { stream: Some(stream), body: Some(body) })
    }
}

impl OutgoingStream {
    /// Writes all of `bytes` if the host takes them in one write now, without
    /// waiting; `false` (nothing written) otherwise.
    pub fn write_at_once(&mut self, bytes: &[u8]) -> Result<bool, BodyError> {
        let stream = self.stream.as_ref().expect("stream is present until finish");
        match stream.check_write() {
            Ok(permitted) if permitted as usize >= bytes.len() => {
                stream.write(bytes).map_err(stream_error)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(stream_error(e)),
        }
    }
}

impl BodySink for OutgoingStream {
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), BodyError> {
        let stream = self.stream.as_ref().expect("stream is present until finish");
        while !bytes.is_empty() {
            let permitted = retry(
                || match stream.check_write() {
                    Ok(0) => None,
                    other => Some(other),
                },
                || stream.subscribe(),
            )
            .await
            .map_err(stream_error)?;
            let n = bytes.len().min(permitted as usize);
            stream.write(&bytes[..n]).map_err(stream_error)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), BodyError> {
        drop(self.stream.take());
        let body = self.body.take().expect("finish is called once");
        OutgoingBody::finish(body, None).map_err(|e: ErrorCode| BodyError(format!("{e:?}")))
    }
}

fn stream_error(e: StreamError) -> BodyError {
    match e {
        StreamError::Closed => BodyError("stream closed by the peer".into()),
        StreamError::LastOperationFailed(e) => BodyError(e.to_debug_string()),
    }
}

/// The component's [`Runtime`](crate::runtime::Runtime): the monotonic clock's
/// pollables for waiting (the only timers the Spin executor drives) and
/// wasi:random for tokens.
pub struct WasiRuntime;

impl crate::runtime::Runtime for WasiRuntime {
    async fn sleep_ms(&self, ms: u64) {
        use spin_sdk::wit::wasi::clocks0_2_0::monotonic_clock::{now, subscribe_instant};
        let deadline = now().saturating_add(ms.saturating_mul(1_000_000));
        retry(|| (now() >= deadline).then_some(()), || subscribe_instant(deadline)).await
    }

    fn token(&self) -> u64 {
        spin_sdk::wit::wasi::random0_2_0::random::get_random_u64()
    }
}
