//! The miss path: forward the fully read request (with the stale record's
//! validators when it has them), decide whether the answer may be stored,
//! capture it into a record, answer from that buffer, then write it. A stale
//! record stands in when the origin fails and it may (stale-if-error), and is
//! refreshed in place when the origin answers 304.

use super::forward::{self, relay, send, Conditionals};
use super::lookup::{self, StoredAnswer, Usable};
use super::{content_length, forget, housekeeping, log_store_error, push_length, push_status, report, segments, Flow};
use crate::body::{respond_full, BodySink, BodySource, Client};
use crate::cache::conditional;
use crate::cache::freshness::stands_in_for_errors;
use crate::http::headers::{self, HeaderList};
use crate::cache::key::{persisted_marker_key, tag_marker_key};
use crate::cache::{sweep, tags};
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{decide_response, NotStoredReason, Storability, StoragePolicy};
use crate::cache::record::{Record, RecordBuilder, RecordMeta, Sealed, StaleWindows};
use crate::config::Config;
use crate::origin::{Origin, OriginError, OriginResponse};
use crate::protocol::jsonrpc::IdSlot;
use crate::protocol::{self, AnswerCheck, Persisted};
use crate::store::Store;

/// What the key held before this fetch.
#[derive(Clone, Copy)]
pub enum Prior<'a> {
    /// No record for this request; `replaceable` when something else (a corrupt
    /// or mismatched record, another request's mark) sits under the key and is
    /// deleted if the answer is not stored.
    Nothing { replaceable: bool },
    /// This request's record, stale or refused by the client's directives.
    /// `background` for a refresh after a stale answer: no client waits for it,
    /// so the client's own conditionals are not sent on.
    Stale { usable: &'a Usable<'a>, serve_on_error: bool, background: bool },
}

impl Prior<'_> {
    /// Whether the record under the key is deleted when an answer with `status`
    /// is not stored. A stale record outlives errors (it may serve the next
    /// one) and a 304 that answered the client's own validator.
    fn forgotten_on(&self, status: u16) -> bool {
        match self {
            Prior::Nothing { replaceable } => *replaceable,
            Prior::Stale { .. } => status < 500 && status != 304,
        }
    }
}

/// RFC 5861 §4: the errors stale-if-error covers: "An error is any situation
/// that would result in a 500, 502, 503, or 504 HTTP response status code being
/// returned."
fn origin_erred(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

pub fn storage_policy(config: &Config) -> StoragePolicy<'_> {
    StoragePolicy {
        cacheable_statuses: &config.cacheable_statuses,
        default_ttl: config.default_ttl,
        targeted: &config.targeted_cache_control,
        stale_while_revalidate: config.stale_while_revalidate,
        stale_if_error: config.stale_if_error,
    }
}

/// Forwards a keyed request whose stored answer could not be used, and stores the
/// origin's answer when HTTP and the body format allow it. Returns whether a
/// record was written.
pub async fn fetch_and_store<B: BodySource, S: Store, O: Origin>(
    flow: &Flow<'_, B, S, O>,
    fwd: Fwd,
    prior: Prior<'_>,
    client: impl Client,
) -> bool {
    let (config, request, keyed) = (flow.config, flow.request, flow.keyed);
    let reads_answer = lookup::asks_identity(keyed);
    // RFC 9111 §4.3.1: a stale record's validators go to the origin — unless
    // the client sent conditionals of its own, which then go on unchanged.
    let client_conditional = ["if-none-match", "if-modified-since"].iter().any(|n| headers::has(&request.headers, n));
    let (ours, background) = match prior {
        Prior::Stale { usable, background, .. } if conditional::revalidates(&request.method) => {
            let ours = if background || !client_conditional { conditional::validators(&usable.record.headers) } else { HeaderList::new() };
            (ours, background)
        }
        Prior::Stale { background, .. } => (HeaderList::new(), background),
        Prior::Nothing { .. } => (HeaderList::new(), false),
    };
    let conditionals = if background || !ours.is_empty() { Conditionals::Ours(&ours) } else { Conditionals::Client };
    let response = send(config, request, &keyed.body, flow.origin, reads_answer, conditionals).await;
    answer_and_store(flow, fwd, prior, client, response, &ours).await
}

/// The origin's response (or failure) to a keyed request: answered, and
/// stored when it may be. Returns whether a record was written.
async fn answer_and_store<B: BodySource, S: Store, O: Origin>(
    flow: &Flow<'_, B, S, O>,
    fwd: Fwd,
    prior: Prior<'_>,
    client: impl Client,
    response: Result<OriginResponse<O::Body>, OriginError>,
    ours: &HeaderList,
) -> bool {
    let (config, keyed) = (flow.config, flow.keyed);
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            if let Prior::Stale { usable, serve_on_error: true, .. } = prior {
                if matches!(e, OriginError::Timeout(_) | OriginError::Unreachable(_)) {
                    eprintln!("post-cache: origin error {e:?}; answering the stale record (stale-if-error)");
                    serve_stale(flow, client, usable, fwd, None).await;
                    return false;
                }
            }
            forward::origin_failed(config, client, fwd, e).await;
            return false;
        }
    };
    if let Prior::Stale { usable, serve_on_error, .. } = prior {
        if serve_on_error && origin_erred(response.status) {
            eprintln!("post-cache: origin answered {}; answering the stale record (stale-if-error)", response.status);
            serve_stale(flow, client, usable, fwd, Some(response.status)).await;
            return false;
        }
        if response.status == 304 && !ours.is_empty() {
            return revalidated(flow, fwd, usable, &response.headers, client).await;
        }
        // A background refresh serves no one stale, but the record it refreshes
        // may still serve later clients in place of this very error.
        if origin_erred(response.status) && stands_in_for_errors(&usable.record.meta, flow.now) {
            let outcome = Outcome::Forwarded { fwd, stored: Err(NotStoredReason::ServerError) };
            relay(config, response, client, outcome, &[]).await;
            return false;
        }
    }
    let storability = match decide_response(response.status, &response.headers, &storage_policy(config), flow.now) {
        Storability::Store { .. } if let Err(reason) = persisted_may_be_stored(flow.store, &keyed.check) => {
            Storability::DoNotStore(reason)
        }
        storability => storability,
    };
    match storability {
        Storability::DoNotStore(reason) => {
            if prior.forgotten_on(response.status) {
                forget(flow);
            }
            relay(config, response, client, Outcome::Forwarded { fwd, stored: Err(reason) }, &[]).await;
            false
        }
        Storability::Store { ttl, initial_age, vary, stale } => {
            let meta = record_meta(flow, response.status, ttl, initial_age, vary, stale);
            let entry = Entry { flow, meta, fwd, prior };
            capture_and_store(entry, response, client).await
        }
    }
}

/// The record head for a storable answer to this request.
fn record_meta<B, S, O>(
    flow: &Flow<'_, B, S, O>,
    status: u16,
    ttl: u64,
    initial_age: u64,
    vary: Vec<String>,
    stale: StaleWindows,
) -> RecordMeta {
    RecordMeta {
        stored_at: flow.now,
        fresh_until: flow.now + ttl,
        stale,
        initial_age: initial_age.min(u64::from(u32::MAX)) as u32,
        status,
        request_digest: flow.keyed.body_digest,
        vary_digest: lookup::vary_digest_as_sent(flow.keyed, &flow.request.headers, &vary),
        vary,
    }
}

/// Answers with the stale record in place of the origin's failure.
async fn serve_stale<B, S: Store, O>(flow: &Flow<'_, B, S, O>, client: impl Client, usable: &Usable<'_>, fwd: Fwd, fwd_status: Option<u16>) {
    let ttl = usable.record.meta.fresh_until as i64 - flow.now as i64;
    lookup::replay(flow, client, usable, Outcome::StaleOnError { fwd, fwd_status, ttl }).await
}

/// The origin answered 304 to the record's validators: RFC 9111 §4.3.4, "the
/// cache MUST use the header fields provided in the 304 (Not Modified) response
/// to update all instances of the stored response" — headers merged, freshness
/// computed again from them, the stored body kept — then the full stored
/// response answers the client.
async fn revalidated<B: BodySource, S: Store, O: Origin>(
    flow: &Flow<'_, B, S, O>,
    fwd: Fwd,
    usable: &Usable<'_>,
    not_modified: &[(String, Vec<u8>)],
    client: impl Client,
) -> bool {
    let rec = &usable.record;
    let merged = conditional::updated_headers(&rec.headers, &headers::for_client(not_modified, &[]), &[]);
    let kept: HeaderList = merged.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("age")).cloned().collect();
    let decision = decide_response(rec.meta.status, &merged, &storage_policy(flow.config), flow.now);
    let (stored, age) = match decision {
        Storability::Store { ttl, initial_age, vary, stale } => {
            let meta = record_meta(flow, rec.meta.status, ttl, initial_age, vary, stale);
            (rewrite(flow, &meta, &kept, rec), initial_age)
        }
        Storability::DoNotStore(reason) => (Err(reason), 0),
    };
    if stored.is_err() && stored != Err(NotStoredReason::Superseded) {
        // The old record's freshness is no longer what the origin says.
        forget(flow);
    } else {
        let before: HeaderList = rec.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        write_tag_markers(flow, &kept, &before);
    }
    let mut view: Vec<(&str, &[u8])> = kept.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    // RFC 9111 §3.1 keeps Set-Cookie out of the record, but it is the origin's
    // answer to this client's request: this client gets it.
    let cookies = not_modified.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"));
    view.extend(cookies.map(|(n, v)| (n.as_str(), v.as_slice())));
    let answer = StoredAnswer { status: rec.meta.status, headers: &view, age, body: usable.stored_body() };
    let ok = stored.is_ok();
    lookup::answer_stored(flow, client, &answer, Outcome::Revalidated { fwd, stored }).await;
    ok
}

/// Rewrites a revalidated record with its merged headers and new freshness,
/// the stored body kept: a segmented record's head only, its segments reused.
/// Only while the key still holds the record that was revalidated: a purge or
/// a newer entry that landed since must not be undone by writing back the
/// bytes read before it.
fn rewrite<B, S: Store, O>(flow: &Flow<'_, B, S, O>, meta: &RecordMeta, headers: &HeaderList, rec: &Record<'_>) -> Result<(), NotStoredReason> {
    if !still_held(flow) {
        return Err(NotStoredReason::Superseded);
    }
    let (max_value, max_entry) = (flow.config.max_value_bytes, flow.config.max_entry_bytes);
    let max = if rec.segments.is_some() { max_value } else { max_entry };
    let mut builder = RecordBuilder::new(meta, headers, rec.body.len(), max).ok_or(NotStoredReason::TooLarge)?;
    if !builder.push_body(rec.body) {
        return Err(NotStoredReason::TooLarge);
    }
    let written = match &rec.segments {
        Some(manifest) => {
            let (head, _) = builder.finish_with(&rec.id_slots, Some(manifest));
            if head.len() > max_value {
                return Err(NotStoredReason::TooLarge);
            }
            segments::rewrite_head(flow, &head, manifest.generation)
        }
        None => {
            let sealed = builder.seal_within(&rec.id_slots, max_value, (flow.new_generation)()).ok_or(NotStoredReason::TooLarge)?;
            segments::write(flow, &sealed)
        }
    };
    written.map_err(|e| {
        log_store_error("set", &e);
        NotStoredReason::StoreError
    })
}

/// Whether the key still holds the entry read at lookup (whatever mark it
/// carries now). A store error counts as no: nothing is written back blind.
pub(super) fn still_held<B, S: Store, O>(flow: &Flow<'_, B, S, O>) -> bool {
    let Some(held) = flow.held else { return false };
    match flow.store.get(&flow.keyed.kv_key) {
        Ok(Some(now)) => crate::cache::record::same_entry(&now, held),
        Ok(None) => false,
        Err(e) => {
            log_store_error("get", &e);
            false
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
/// runs a query, records so under its marker, with the time: one write, on
/// such misses only. A sweep deletes markers older than
/// `persisted_query_max_age`; every such miss writes it again.
fn mark_persisted_query(store: &impl Store, check: &AnswerCheck, now: u64) {
    if let AnswerCheck::GraphQl { persisted: Some(Persisted { marker, proven_query: true }), .. } = check {
        if let Err(e) = store.set(&persisted_marker_key(marker), &sweep::persisted_marker_value(now)) {
            log_store_error("set", &e);
        }
    }
}

/// After a revalidation rewrote an entry's head, one marker per tag it now
/// carries and did not carry in `before`, so a purge by tag finds it. The
/// marker carries no last usable moment (a sweep reads the entry to judge
/// it). When one cannot be written, the entry is deleted: an entry a purge by
/// its tags would miss must not be served.
fn write_tag_markers<B, S: Store, O>(flow: &Flow<'_, B, S, O>, headers: &[(String, Vec<u8>)], before: &[(String, Vec<u8>)]) {
    if let Err(e) = tag_markers(flow, headers, before, b"t") {
        log_store_error("set", &e);
        forget(flow);
    }
}

/// Writes the markers of the tags in `headers` not in `before`, each holding
/// `value`; stops at the first failure.
fn tag_markers<B, S: Store, O>(
    flow: &Flow<'_, B, S, O>,
    headers: &[(String, Vec<u8>)],
    before: &[(String, Vec<u8>)],
    value: &[u8],
) -> Result<usize, crate::store::StoreError> {
    let had = tags::parse_tags(before).tags;
    let parsed = tags::parse_tags(headers);
    if parsed.dropped > 0 {
        eprintln!("post-cache: {} tags over the limits (128 tags of 128 bytes) not indexed", parsed.dropped);
    }
    let mut written = 0;
    for tag in parsed.tags.iter().filter(|t| !had.contains(t)) {
        let Some(marker) = tag_marker_key(tag, &flow.keyed.kv_key) else { continue };
        flow.store.set(&marker, value)?;
        written += 1;
    }
    Ok(written)
}

/// Where and what a storable miss is written.
struct Entry<'a, B, S, O> {
    flow: &'a Flow<'a, B, S, O>,
    meta: RecordMeta,
    fwd: Fwd,
    prior: Prior<'a>,
}

impl<B, S: Store, O> Entry<'_, B, S, O> {
    /// The answer will not be stored: make sure an unusable or outdated record
    /// under the key is not read again.
    fn abandon(&self) {
        if self.prior.forgotten_on(self.meta.status) {
            forget(self.flow);
        }
    }
}

/// Reads a storable response into a record (up to `max_entry_bytes`) and
/// answers the client (`detail=storing`) before writing it to the store. An
/// answer that ends within [`forward::READ_AHEAD`] is checked as the body
/// format requires, then sent whole from the buffer; a longer one is teed: sent
/// on as it arrives and captured, then checked and written once it is complete.
/// A body that outgrows the record is streamed on, not stored. Returns whether
/// it was stored.
async fn capture_and_store<B: BodySource, S: Store, O: Origin>(
    entry: Entry<'_, B, S, O>,
    mut response: OriginResponse<O::Body>,
    client: impl Client,
) -> bool {
    let config = entry.flow.config;
    let too_large = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::TooLarge) };
    let declared = content_length(&response.headers);
    let stored_headers = headers::for_client(&response.headers, &["content-length", "age"]);
    let hint = declared.unwrap_or(0).min(config.max_entry_bytes as u64) as usize;
    let mut builder = match RecordBuilder::new(&entry.meta, &stored_headers, hint, config.max_entry_bytes) {
        Some(b) if declared.is_none_or(|n| n <= config.max_entry_bytes as u64) => b,
        _ => {
            entry.abandon();
            relay(config, response, client, too_large, &[]).await;
            return false;
        }
    };
    // An answer known to be larger than the read-ahead is teed at once: its
    // head goes out as soon as the origin's arrives.
    let mut ended = false;
    let read_ahead = if declared.is_some_and(|n| n > forward::READ_AHEAD as u64) { 0 } else { forward::READ_AHEAD };
    while builder.body().len() < read_ahead {
        match response.body.next_chunk().await {
            Ok(Some(chunk)) => {
                if !builder.push_body(&chunk) {
                    entry.abandon();
                    let prefix = [builder.body(), &chunk].concat();
                    relay(config, response, client, too_large, &prefix).await;
                    return false;
                }
            }
            Ok(None) => {
                ended = true;
                break;
            }
            Err(e) => {
                // Nothing was sent yet: a stale record may still stand in.
                if let Prior::Stale { usable, serve_on_error: true, .. } = entry.prior {
                    eprintln!("post-cache: the origin's response body failed ({e}); answering the stale record");
                    serve_stale(entry.flow, client, usable, entry.fwd, None).await;
                    return false;
                }
                let msg = format!("post-cache: the origin's response body failed: {e}\n");
                let outcome = Outcome::OriginFailed { fwd: entry.fwd, detail: "origin-body" };
                forward::plain(client, 502, outcome, &msg).await;
                return false;
            }
        }
    }
    let mut head = headers::for_client(&stored_headers, &config.targeted_fields());
    if entry.meta.initial_age > 0 {
        head.push(("age".into(), entry.meta.initial_age.to_string().into_bytes()));
    }
    if !ended {
        if let Some(n) = declared {
            push_length(&mut head, entry.meta.status, n as usize);
        }
        push_status(&mut head, Outcome::Storing { fwd: entry.fwd });
        return match tee(&mut response.body, client, entry.meta.status, head, &mut builder).await {
            Teed::Captured => check_and_store(&entry, builder, &stored_headers),
            Teed::Overflowed | Teed::Failed => {
                entry.abandon();
                false
            }
        };
    }
    let keyed = entry.flow.keyed;
    let id_slots = match protocol::check_answer(&config.protocol, &keyed.check, builder.body()) {
        Ok(slots) => slots,
        Err(refusal) => {
            entry.abandon();
            let outcome = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::Answer(refusal)) };
            answer(client, entry.meta.status, head, builder.body(), outcome).await;
            return false;
        }
    };
    // The client first: its answer is complete, and a store write (milliseconds
    // on a hosted KV) need not stand between it and the client. Spin keeps the
    // instance running until the handler returns, so the write still happens.
    answer(client, entry.meta.status, head, builder.body(), Outcome::Storing { fwd: entry.fwd }).await;
    store_entry(&entry, builder, &id_slots, &stored_headers)
}

/// A teed answer goes to the client in writes of at least this much (or what
/// is left at its end).
const TEE_BATCH: usize = 256 * 1024;

/// How a teed answer ended.
enum Teed {
    /// Sent and captured whole.
    Captured,
    /// Sent whole, but larger than `max_entry_bytes`: not captured.
    Overflowed,
    /// The origin's body or the client failed: the response was aborted.
    Failed,
}

/// Sends `head` and what `builder` holds, then the rest of `body` as it
/// arrives, capturing it into `builder` as long as it fits. What is captured
/// goes to the client from the builder in writes of at least [`TEE_BATCH`]
/// bytes (or at the end): one per origin chunk would cost a host round trip
/// each.
async fn tee(body: &mut impl BodySource, client: impl Client, status: u16, head: HeaderList, builder: &mut RecordBuilder) -> Teed {
    let result = async {
        let mut sink = client.respond(status, head)?;
        let mut sent = 0;
        let mut capturing = true;
        while let Some(chunk) = body.next_chunk().await? {
            if capturing && !builder.push_body(&chunk) {
                eprintln!("post-cache: a teed answer outgrew max_entry_bytes; sent on, not stored");
                capturing = false;
                sink.write(&builder.body()[sent..]).await?;
            }
            if !capturing {
                sink.write(&chunk).await?;
            } else if builder.body().len() - sent >= TEE_BATCH {
                sink.write(&builder.body()[sent..]).await?;
                sent = builder.body().len();
            }
        }
        if capturing && sent < builder.body().len() {
            sink.write(&builder.body()[sent..]).await?;
        }
        sink.finish()?;
        Ok::<_, crate::body::BodyError>(capturing)
    }
    .await;
    match result {
        Ok(true) => Teed::Captured,
        Ok(false) => Teed::Overflowed,
        Err(e) => {
            eprintln!("post-cache: a teed answer failed mid-body ({e}); response aborted, not stored");
            Teed::Failed
        }
    }
}

/// Checks a captured answer as the body format requires (the client has it
/// already), then stores it.
fn check_and_store<B, S: Store, O>(entry: &Entry<'_, B, S, O>, builder: RecordBuilder, stored_headers: &[(String, Vec<u8>)]) -> bool {
    match protocol::check_answer(&entry.flow.config.protocol, &entry.flow.keyed.check, builder.body()) {
        Ok(id_slots) => store_entry(entry, builder, &id_slots, stored_headers),
        Err(refusal) => {
            eprintln!("post-cache: a teed answer was not stored: {refusal:?}");
            entry.abandon();
            false
        }
    }
}

/// Seals a captured answer for the store's value size and writes it: its tag
/// markers first (each carrying the entry's last usable moment), then its
/// segments, its head last — so a head in the store is always found by a
/// purge of its tags, and a failed write leaves no head. Only logged on
/// failure (the client has its answer); a refused write may mean a full store,
/// so room is made. Now and then a step of the sweep follows.
fn store_entry<B, S: Store, O>(
    entry: &Entry<'_, B, S, O>,
    builder: RecordBuilder,
    id_slots: &[IdSlot],
    stored_headers: &[(String, Vec<u8>)],
) -> bool {
    let flow = entry.flow;
    let (config, now) = (flow.config, flow.now);
    if let Some(stored) = rewrite_unchanged(entry, &builder, id_slots, stored_headers) {
        return stored;
    }
    let generation = (flow.new_generation)();
    let Some(sealed) = builder.seal_within(id_slots, config.max_value_bytes, generation) else {
        eprintln!("post-cache: the answer's head does not fit one value of max_value_bytes; not stored");
        entry.abandon();
        return false;
    };
    let marker = tags::marker_value(sweep::last_usable(&entry.meta));
    let written = tag_markers(flow, stored_headers, &[], &marker).and_then(|_| segments::write(flow, &sealed));
    match written {
        Ok(()) => {
            mark_persisted_query(flow.store, &flow.keyed.check, now);
            housekeeping::after_store(flow.store, config, now, generation);
            true
        }
        Err(e) => {
            log_store_error("set", &e);
            let keys = match &sealed {
                Sealed::Whole(_) => 1,
                Sealed::Split { segments, .. } => 1 + segments.len(),
            } + tags::parse_tags(stored_headers).tags.len();
            housekeeping::make_room(flow.store, config, now, generation, keys, &e);
            false
        }
    }
}

/// A refetch (a client's `no-cache`, an expired entry) that brought back
/// exactly the body already stored in segments: only the head is written,
/// naming the segments already there, and only the markers of tags the entry
/// did not carry before — one write instead of one per segment and tag. Only
/// while the key still holds the entry read at lookup (its segments are then
/// not being retired). `None` when that does not apply: store it whole.
fn rewrite_unchanged<B, S: Store, O>(
    entry: &Entry<'_, B, S, O>,
    builder: &RecordBuilder,
    id_slots: &[IdSlot],
    stored_headers: &[(String, Vec<u8>)],
) -> Option<bool> {
    let flow = entry.flow;
    let held = crate::cache::record::decode(flow.held?).ok()?;
    let manifest = held.segments.as_ref()?;
    let head = builder.head_reusing(id_slots, flow.config.max_value_bytes, held.body, manifest)?;
    if !still_held(flow) {
        return None;
    }
    let before: HeaderList = held.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    let marker = tags::marker_value(sweep::last_usable(&entry.meta));
    let written = tag_markers(flow, stored_headers, &before, &marker).and_then(|_| segments::rewrite_head(flow, &head, manifest.generation));
    if let Err(e) = written {
        log_store_error("set", &e);
        return Some(false);
    }
    mark_persisted_query(flow.store, &flow.keyed.check, flow.now);
    Some(true)
}

/// Answers with a captured body and its exact length.
async fn answer(client: impl Client, status: u16, mut head: HeaderList, body: &[u8], outcome: Outcome) {
    push_length(&mut head, status, body.len());
    push_status(&mut head, outcome);
    report(respond_full(client, status, head, body).await);
}
