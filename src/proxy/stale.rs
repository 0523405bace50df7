//! stale-while-revalidate: after a stale answer has gone out, the same
//! invocation refreshes the record from the origin — once per key, however many
//! stale hits race, by a mark written into the record.

use super::lookup::Usable;
use super::miss::{self, Prior};
use super::{log_store_error, Flow};
use crate::body::{BodyError, BodySink, BodySource, Client};
use crate::http::headers::{self, HeaderList};
use crate::cache::mark::Mark;
use crate::cache::outcome::Fwd;
use crate::cache::record;
use crate::origin::Origin;
use crate::runtime::Runtime;
use crate::store::Store;

/// How long concurrent stale hits get to write their marks before each reads the
/// record back: the last mark written wins, and only its writer refreshes.
pub const SETTLE_MS: u64 = 100;

/// A refresh mark outlives the origin's timeout by this much (seconds), so a
/// slow but live refresh is not doubled; one that dies is retried after it.
const REFRESH_SLACK_SECONDS: u64 = 2;

/// Refreshes the record `stored` (whose decoded form is `usable`) unless another
/// request's mark wins. The mark costs one write; the refresh then costs what a
/// miss does (or a 304 and a rewrite of the head and stored body).
pub async fn refresh<B: BodySource, S: Store, O: Origin, R: Runtime, C: Client>(
    flow: &Flow<'_, B, S, O>,
    stored: &[u8],
    usable: &Usable<'_>,
    runtime: &R,
) {
    let key = &flow.keyed.kv_key;
    let mark = Mark { until: flow.now + flow.config.origin_timeout + REFRESH_SLACK_SECONDS, token: runtime.token() };
    // The client's replay may have taken long: the mark goes only into the
    // entry the key still holds, never back over a purge or a newer entry.
    if !miss::still_held(flow) {
        return;
    }
    // Records from before version 3 have no room for a mark: they are
    // refreshed unmarked, once each, and come back as version 3.
    if let Some(marked) = record::with_mark(stored, Some(mark)) {
        if let Err(e) = flow.store.set(key, &marked) {
            return log_store_error("set", &e);
        }
        runtime.sleep_ms(SETTLE_MS).await;
        let ours = match flow.store.get(key) {
            Ok(Some(bytes)) => record::decode(&bytes).ok().and_then(|r| r.mark) == Some(mark),
            Ok(None) => false,
            Err(e) => {
                log_store_error("get", &e);
                false
            }
        };
        if !ours {
            return;
        }
    }
    // A refresh that fails leaves the marked record: the mark expires and a
    // later stale hit tries again.
    let prior = Prior::Stale { usable, serve_on_error: false, background: true };
    miss::fetch_and_store(flow, Fwd::Stale, prior, Respond::<C>::Nowhere).await;
}

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
