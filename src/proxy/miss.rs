//! The miss path: forward the fully read request, decide whether the answer may
//! be stored, capture it into a record, write it, and answer from the same buffer.

use super::forward::{self, relay, send};
use super::keying::Keyed;
use super::{content_length, forget, log_store_error, push_length, push_status, report, ClientRequest};
use crate::body::{respond_full, BodySource, Client};
use crate::cache::headers::{self, HeaderList};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{decide_response, vary_digest, NotStoredReason, Storability, StoragePolicy};
use crate::cache::record::{RecordBuilder, RecordMeta};
use crate::config::Config;
use crate::origin::{Origin, OriginResponse};
use crate::cache::key::persisted_marker_key;
use crate::protocol::{self, AnswerCheck, Persisted};
use crate::store::Store;

/// Forwards a keyed request whose stored answer could not be used, and stores the
/// origin's answer when HTTP and the body format allow it.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_and_store<B: BodySource, S: Store, O: Origin>(
    config: &Config,
    now: u64,
    request: &ClientRequest<B>,
    keyed: &Keyed,
    store: &S,
    fwd: Fwd,
    replaceable: bool,
    origin: &O,
    client: impl Client,
) {
    let reads_answer = !matches!(keyed.check, AnswerCheck::Nothing);
    let response = match send(config, request, &keyed.body, origin, reads_answer).await {
        Ok(r) => r,
        Err(e) => return forward::origin_failed(config, client, fwd, e).await,
    };
    let policy = StoragePolicy { cacheable_statuses: &config.cacheable_statuses, default_ttl: config.default_ttl };
    let storability = match decide_response(response.status, &response.headers, &policy, now) {
        Storability::Store { .. } if let Err(reason) = persisted_may_be_stored(store, &keyed.check) => {
            Storability::DoNotStore(reason)
        }
        storability => storability,
    };
    match storability {
        Storability::DoNotStore(reason) => {
            if replaceable {
                forget(store, &keyed.kv_key);
            }
            relay(response, client, Outcome::Forwarded { fwd, stored: Err(reason) }, &[]).await
        }
        Storability::Store { ttl, initial_age, vary } => {
            let meta = RecordMeta {
                stored_at: now,
                fresh_until: now + ttl,
                initial_age: initial_age.min(u64::from(u32::MAX)) as u32,
                status: response.status,
                request_digest: keyed.body_digest,
                vary_digest: vary_digest(&request.headers, &vary),
                vary,
            };
            let entry = Entry { store, keyed, meta, fwd, replaceable };
            capture_and_store(config, response, entry, client).await
        }
    }
}

/// A persisted query sent as a hash alone may be stored only once its document
/// has been seen to run a query (its marker is there): otherwise it could be a
/// mutation. One KV get, on such misses only.
fn persisted_may_be_stored(store: &impl Store, check: &AnswerCheck) -> Result<(), NotStoredReason> {
    let AnswerCheck::GraphQl { persisted: Some(Persisted { marker, proven_query: false }), .. } = check else {
        return Ok(());
    };
    match store.get(&persisted_marker_key(marker)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(NotStoredReason::PersistedQuery),
        Err(e) => {
            log_store_error("get", &e);
            Err(NotStoredReason::StoreError)
        }
    }
}

/// After storing the answer to a persisted query that came with its document and
/// runs a query, records so under its marker: one write, on such misses only.
fn mark_persisted_query(store: &impl Store, check: &AnswerCheck) {
    if let AnswerCheck::GraphQl { persisted: Some(Persisted { marker, proven_query: true }), .. } = check {
        if let Err(e) = store.set(&persisted_marker_key(marker), b"query") {
            log_store_error("set", &e);
        }
    }
}

/// Where and what a storable miss is written.
struct Entry<'a, S> {
    store: &'a S,
    keyed: &'a Keyed,
    meta: RecordMeta,
    fwd: Fwd,
    /// A stale, mismatched or corrupt record holds the key.
    replaceable: bool,
}

impl<S: Store> Entry<'_, S> {
    /// The answer will not be stored: make sure an unusable record under the key
    /// is not read again.
    fn abandon(&self) {
        if self.replaceable {
            forget(self.store, &self.keyed.kv_key);
        }
    }
}

/// Reads a storable response into a record (up to `max_entry_bytes`), checks it
/// as the body format requires, writes it to the store, then answers from the
/// same buffer, so `Cache-Status` tells the truth about the write. A body that
/// outgrows the record is streamed on, not stored.
async fn capture_and_store<B: BodySource, S: Store>(
    config: &Config,
    mut response: OriginResponse<B>,
    entry: Entry<'_, S>,
    client: impl Client,
) {
    let too_large = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::TooLarge) };
    let declared = content_length(&response.headers).unwrap_or(0) as usize;
    let stored_headers = headers::for_client(&response.headers, &["content-length", "age"]);
    let mut builder = match RecordBuilder::new(&entry.meta, &stored_headers, declared, config.max_entry_bytes) {
        Some(b) if declared <= config.max_entry_bytes => b,
        _ => {
            entry.abandon();
            return relay(response, client, too_large, &[]).await;
        }
    };
    loop {
        match response.body.next_chunk().await {
            Ok(Some(chunk)) => {
                if !builder.push_body(&chunk) {
                    entry.abandon();
                    let prefix = [builder.body(), &chunk].concat();
                    return relay(response, client, too_large, &prefix).await;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let msg = format!("post-cache: the origin's response body failed: {e}\n");
                let outcome = Outcome::OriginFailed { fwd: entry.fwd, detail: "origin-body" };
                return forward::plain(client, 502, outcome, &msg).await;
            }
        }
    }
    let mut head = stored_headers;
    if entry.meta.initial_age > 0 {
        head.push(("age".into(), entry.meta.initial_age.to_string().into_bytes()));
    }
    let id_slots = match protocol::check_answer(&config.protocol, &entry.keyed.check, builder.body()) {
        Ok(slots) => slots,
        Err(refusal) => {
            entry.abandon();
            let outcome = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::Answer(refusal)) };
            return answer(client, entry.meta.status, head, builder.body(), outcome).await;
        }
    };
    let (bytes, body) = builder.finish(&id_slots);
    let stored = entry.store.set(&entry.keyed.kv_key, &bytes).map_err(|e| {
        log_store_error("set", &e);
        NotStoredReason::StoreError
    });
    if stored.is_ok() {
        mark_persisted_query(entry.store, &entry.keyed.check);
    }
    let outcome = Outcome::Forwarded { fwd: entry.fwd, stored };
    answer(client, entry.meta.status, head, &bytes[body], outcome).await
}

/// Answers with a captured body and its exact length.
async fn answer(client: impl Client, status: u16, mut head: HeaderList, body: &[u8], outcome: Outcome) {
    push_length(&mut head, status, body.len());
    push_status(&mut head, outcome);
    report(respond_full(client, status, head, body).await);
}
