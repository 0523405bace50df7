//! The miss path: forward the fully read request (with the stale record's
//! validators when it has them), decide whether the answer may be stored,
//! capture it into a record, answer from that buffer, then hand it to the
//! store step. A stale record stands in when the origin fails and it may
//! (stale-if-error), and is refreshed in place when the origin answers 304.

use super::flow::{content_length, Env, Flow, To};
use super::forward::{self, relay, send, Conditionals};
use super::found::{asks_identity, vary_digest_as_sent, Held, StoredAnswer, Usable};
use super::respond::{plain, push_length, push_status, whole};
use super::segments::Retired;
use super::store::{persisted_may_be_stored, Entry, Stored};
use crate::body::{BodySink, BodySource, Client};
use crate::cache::{conditional, sweep, tags};
use crate::cache::freshness::stands_in_for_errors;
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::{bound_by_answer, decide_response, NotStoredReason, Storability, StoragePolicy};
use crate::cache::record::{RecordBuilder, RecordMeta, StaleWindows};
use crate::config::Config;
use crate::http::headers::{self, HeaderList};
use crate::origin::{Origin, OriginError, OriginResponse};
use crate::protocol::{self, AnswerFacts, Limit};

/// RFC 5861 §4: the errors stale-if-error covers: "An error is any situation
/// that would result in a 500, 502, 503, or 504 HTTP response status code being
/// returned."
fn origin_erred(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// How answers to this request are judged: the configuration, and what the
/// body format's rules allow of this request's answer.
pub fn storage_policy(config: &Config, limit: Limit) -> StoragePolicy<'_> {
    StoragePolicy {
        cacheable_statuses: &config.cacheable_statuses,
        default_ttl: config.default_ttl,
        targeted: &config.targeted_cache_control,
        stale_while_revalidate: config.stale_while_revalidate,
        stale_if_error: config.stale_if_error,
        limit,
    }
}

impl<E: Env> Flow<'_, E> {
    /// Forwards a keyed request whose stored answer could not be used, answers
    /// the client, and stores the origin's answer when HTTP and the body
    /// format allow it. `held` is what the key held; a stale record of this
    /// request's may answer instead of an origin error, or be revalidated.
    pub async fn fetch(&self, fwd: Fwd, held: Held<'_>, client: To<E>) -> Stored {
        let (config, request, keyed) = (self.config, self.request, self.keyed);
        // RFC 9111 §4.3.1: a stale record's validators go to the origin — unless
        // the client sent conditionals of its own, which then go on unchanged.
        // A background refresh has no client: its validators go.
        let background = !client.waits();
        let client_conditional = ["if-none-match", "if-modified-since"].iter().any(|n| headers::has(&request.headers, n));
        let stale = match held {
            Held::Record { usable, serve_on_error } => Some((usable, serve_on_error)),
            _ => None,
        };
        let ours = match stale {
            Some((usable, _)) if conditional::revalidates(&request.method) && (background || !client_conditional) => {
                conditional::validators(&usable.record.headers)
            }
            _ => HeaderList::new(),
        };
        let conditionals = if background || !ours.is_empty() { Conditionals::Ours(&ours) } else { Conditionals::Client };
        let response = send(config, request, &keyed.body, self.origin, asks_identity(keyed), conditionals).await;

        let response = match response {
            Ok(r) => r,
            Err(e) => {
                if let Some((usable, true)) = stale {
                    if matches!(e, OriginError::Timeout(_) | OriginError::Unreachable(_)) {
                        eprintln!("post-cache: origin error {e:?}; answering the stale record (stale-if-error)");
                        self.serve_stale(client, usable, fwd, None).await;
                        return Stored::NOTHING;
                    }
                }
                forward::origin_failed(config, client, fwd, e).await;
                return Stored::NOTHING;
            }
        };
        if let Some((usable, serve_on_error)) = stale {
            if serve_on_error && origin_erred(response.status) {
                eprintln!("post-cache: origin answered {}; answering the stale record (stale-if-error)", response.status);
                self.serve_stale(client, usable, fwd, Some(response.status)).await;
                return Stored::NOTHING;
            }
            if response.status == 304 && !ours.is_empty() {
                return self.revalidated(fwd, usable, &response.headers, client).await;
            }
            // A background refresh serves no one stale, but the record it
            // refreshes may still serve later clients in place of this very error.
            if origin_erred(response.status) && stands_in_for_errors(&usable.record.meta, self.now) {
                let outcome = Outcome::Forwarded { fwd, stored: Err(NotStoredReason::ServerError) };
                relay(config, response, client, outcome, &[]).await;
                return Stored::NOTHING;
            }
        }
        let storability = match decide_response(response.status, &response.headers, &storage_policy(config, keyed.check.limit()), self.now) {
            Storability::Store { .. } if let Err(reason) = persisted_may_be_stored(self.store, &keyed.check) => Storability::DoNotStore(reason),
            storability => storability,
        };
        match storability {
            Storability::DoNotStore(reason) => {
                let retired = self.forget_if(held, response.status);
                relay(config, response, client, Outcome::Forwarded { fwd, stored: Err(reason) }, &[]).await;
                Stored::not(retired)
            }
            Storability::Store { ttl, initial_age, vary, stale } => {
                let meta = self.record_meta(response.status, ttl, initial_age, vary, stale);
                self.capture(Entry { meta, fwd, held }, response, client).await
            }
        }
    }

    /// Checks a captured answer as the body format requires, and bounds its
    /// entry's freshness by what the answer shows (the GraphQL type rules):
    /// the entry to store and what the answer brings to it.
    pub fn checked<'h>(
        &self,
        entry: &Entry<'h>,
        body: &[u8],
        stored_headers: &[(String, Vec<u8>)],
    ) -> Result<(Entry<'h>, AnswerFacts), NotStoredReason> {
        let answer = protocol::check_answer(&self.config.protocol, &self.keyed.check, body).map_err(NotStoredReason::Answer)?;
        let meta = match answer.cap {
            None => entry.meta.clone(),
            Some(cap) => {
                let policy = storage_policy(self.config, self.keyed.check.limit());
                bound_by_answer(&entry.meta, stored_headers, &policy, cap).ok_or(NotStoredReason::Stale)?
            }
        };
        Ok((Entry { meta, fwd: entry.fwd, held: entry.held }, answer))
    }

    /// A revalidated GraphQL record keeps the bound its body's types put on it
    /// (the body is unchanged, and may be in segments not read here): its new
    /// freshness is at most the lifetime it was stored with, counted as the
    /// type rule counts (from when the origin produced it). Only while
    /// `graphql_types` has rules; `None`: already past that bound.
    fn bound_as_before(&self, meta: RecordMeta, before: &RecordMeta, headers: &[(String, Vec<u8>)]) -> Option<RecordMeta> {
        let types_rule = matches!(self.keyed.check, protocol::AnswerCheck::GraphQl { .. }) && !self.config.protocol.graphql_types.is_empty();
        if !types_rule {
            return Some(meta);
        }
        let lifetime = before.fresh_until.saturating_sub(before.stored_at) + u64::from(before.initial_age);
        let policy = storage_policy(self.config, self.keyed.check.limit());
        bound_by_answer(&meta, headers, &policy, lifetime)
    }

    /// The record head for a storable answer to this request.
    fn record_meta(&self, status: u16, ttl: u64, initial_age: u64, vary: Vec<String>, stale: StaleWindows) -> RecordMeta {
        RecordMeta {
            stored_at: self.now,
            fresh_until: self.now + ttl,
            stale,
            initial_age: initial_age.min(u64::from(u32::MAX)) as u32,
            status,
            request_digest: self.keyed.body_digest,
            vary_digest: vary_digest_as_sent(self.keyed, &self.request.headers, &vary),
            vary,
        }
    }

    /// Answers with the stale record in place of the origin's failure.
    async fn serve_stale(&self, client: To<E>, usable: &Usable<'_>, fwd: Fwd, fwd_status: Option<u16>) {
        let ttl = usable.record.meta.fresh_until as i64 - self.now as i64;
        self.replay(client, usable, Outcome::StaleOnError { fwd, fwd_status, ttl }).await
    }

    /// The origin answered 304 to the record's validators: RFC 9111 §4.3.4,
    /// "the cache MUST use the header fields provided in the 304 (Not
    /// Modified) response to update all instances of the stored response" —
    /// headers merged, freshness computed again from them, the stored body kept
    /// — then the full stored response answers the client.
    async fn revalidated(&self, fwd: Fwd, usable: &Usable<'_>, not_modified: &[(String, Vec<u8>)], client: To<E>) -> Stored {
        let rec = &usable.record;
        let merged = conditional::updated_headers(&rec.headers, &headers::for_client(not_modified, &[]), &[]);
        let kept: HeaderList = merged.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("age")).cloned().collect();
        let decision = decide_response(rec.meta.status, &merged, &storage_policy(self.config, self.keyed.check.limit()), self.now);
        let (stored, age) = match decision {
            Storability::Store { ttl, initial_age, vary, stale } => {
                let meta = self.record_meta(rec.meta.status, ttl, initial_age, vary, stale);
                match self.bound_as_before(meta, &rec.meta, &kept) {
                    Some(meta) => {
                        let marker = tags::marker_value(sweep::last_usable(&meta));
                        (self.rewrite(&meta, &kept, rec).map(|(retired, head)| (retired, head, marker)), initial_age)
                    }
                    None => (Err(NotStoredReason::Stale), initial_age),
                }
            }
            Storability::DoNotStore(reason) => (Err(reason), 0),
        };
        let (stored, retired) = match stored {
            Ok((retired, head, marker)) => (Ok(()), retired.and(self.index_rewritten(&kept, &head, marker))),
            // The old record's freshness is no longer what the origin says.
            Err(reason) if reason != NotStoredReason::Superseded => (Err(reason), self.forget()),
            Err(reason) => (Err(reason), Retired::NONE),
        };
        let mut view: Vec<(&str, &[u8])> = kept.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        // RFC 9111 §3.1 keeps Set-Cookie out of the record, but it is the
        // origin's answer to this client's request: this client gets it.
        let cookies = not_modified.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"));
        view.extend(cookies.map(|(n, v)| (n.as_str(), v.as_slice())));
        let answer = StoredAnswer { status: rec.meta.status, headers: &view, age, body: usable.stored_body() };
        let ok = stored.is_ok();
        self.answer_stored(client, &answer, Outcome::Revalidated { fwd, stored }).await;
        Stored { stored: ok, retired }
    }

    /// Reads a storable response into a record (up to `max_entry_bytes`) and
    /// answers the client (`detail=storing`) before writing it to the store. An
    /// answer that ends within [`forward::READ_AHEAD`] is checked as the body
    /// format requires, then sent whole from the buffer; a longer one is teed: sent
    /// on as it arrives and captured, then checked and written once it is complete.
    /// A body that outgrows the record is streamed on, not stored. Returns whether
    /// it was stored.
    async fn capture(&self, entry: Entry<'_>, mut response: OriginResponse<<E::Origin as Origin>::Body>, client: To<E>) -> Stored {
        let config = self.config;
        let too_large = Outcome::Forwarded { fwd: entry.fwd, stored: Err(NotStoredReason::TooLarge) };
        let declared = content_length(&response.headers);
        let stored_headers = headers::for_client(&response.headers, &["content-length", "age"]);
        let hint = declared.unwrap_or(0).min(config.max_entry_bytes as u64) as usize;
        let mut builder = match RecordBuilder::new(&entry.meta, &stored_headers, hint, config.max_entry_bytes) {
            Some(b) if declared.is_none_or(|n| n <= config.max_entry_bytes as u64) => b,
            _ => {
                let stored = self.abandon(&entry);
                relay(config, response, client, too_large, &[]).await;
                return stored;
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
                        let stored = self.abandon(&entry);
                        let prefix = [builder.body(), &chunk].concat();
                        relay(config, response, client, too_large, &prefix).await;
                        return stored;
                    }
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    // Nothing was sent yet: a stale record may still stand in.
                    if let Held::Record { usable, serve_on_error: true } = entry.held {
                        eprintln!("post-cache: the origin's response body failed ({e}); answering the stale record");
                        self.serve_stale(client, usable, entry.fwd, None).await;
                        return Stored::NOTHING;
                    }
                    let msg = format!("post-cache: the origin's response body failed: {e}\n");
                    let outcome = Outcome::OriginFailed { fwd: entry.fwd, detail: "origin-body" };
                    plain(client, 502, outcome, &msg).await;
                    return Stored::NOTHING;
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
                Teed::Captured => self.check_and_store(&entry, builder, &stored_headers),
                Teed::Overflowed | Teed::Failed => self.abandon(&entry),
            };
        }
        let (bounded, answer) = match self.checked(&entry, builder.body(), &stored_headers) {
            Ok(checked) => checked,
            Err(reason) => {
                let stored = self.abandon(&entry);
                let outcome = Outcome::Forwarded { fwd: entry.fwd, stored: Err(reason) };
                whole(client, entry.meta.status, head, builder.body(), outcome).await;
                return stored;
            }
        };
        builder.set_freshness(&bounded.meta);
        // The client first: its answer is complete, and a store write (milliseconds
        // on a hosted KV) need not stand between it and the client. Spin keeps the
        // instance running until the handler returns, so the write still happens.
        whole(client, entry.meta.status, head, builder.body(), Outcome::Storing { fwd: entry.fwd }).await;
        self.store(&bounded, builder, &answer.id_slots, &stored_headers, &answer.tags)
    }
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
