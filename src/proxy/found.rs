//! What the key held, read without I/O: [`examine`] tells a record written for
//! this request ([`Usable`]) from everything else ([`Held`]), and a stored
//! answer about to be sent is a [`StoredAnswer`].

use super::flow::Keyed;
use crate::cache::mark::Mark;
use crate::cache::outcome::Fwd;
use crate::cache::policy::vary_digest;
use crate::cache::record::{self, Record};
use crate::http::headers::HeaderList;
use crate::protocol::jsonrpc::{self, IdSplicer};
use crate::protocol::AnswerCheck;
use std::borrow::Cow;

/// A stored record written for this request (its body, id slots and `Vary`-ed
/// headers match), and the body to answer with. Fresh or not is for
/// `cache::freshness` to say.
pub struct Usable<'a> {
    pub record: Record<'a>,
    /// The stored body, or for JSON-RPC a copy carrying this request's ids.
    /// For a segmented record, its first part as stored (ids are spliced as
    /// it streams).
    pub body: Cow<'a, [u8]>,
    /// A segmented record's first segment, once read and checked before
    /// anything is sent (`Flow::ready`); `None` until then, and for a record
    /// stored whole.
    pub first_segment: Option<Vec<u8>>,
}

impl Usable<'_> {
    /// The body to replay: at hand, or streamed from its segments.
    pub fn stored_body(&self) -> StoredBody<'_> {
        match self.record.segments {
            Some(_) => StoredBody::Segmented(self),
            None => StoredBody::Whole(&self.body),
        }
    }
}

/// What the key held when the request looked it up.
#[derive(Clone, Copy)]
pub enum Held<'a> {
    /// Nothing (or, for a refresh, whatever it holds: it is replaced, not read).
    Empty,
    /// Another request's mark, alone under the key.
    Mark(Mark),
    /// A record for another body or variant, or bytes that do not decode.
    Unusable,
    /// This request's record, stale or refused by the client's directives;
    /// `serve_on_error` when it may answer in place of an origin error
    /// (stale-if-error).
    Record { usable: &'a Usable<'a>, serve_on_error: bool },
}

impl Held<'_> {
    /// Whether what the key held is deleted when an answer with `status` is
    /// not stored: something else than this request's record is (it would be
    /// read again for nothing); a stale record outlives errors (it may serve
    /// the next one) and a 304 that answered the client's own validator.
    pub fn forgotten_on(&self, status: u16) -> bool {
        match self {
            Held::Empty => false,
            Held::Mark(_) | Held::Unusable => true,
            Held::Record { .. } => status < 500 && status != 304,
        }
    }
}

/// What the key holds for this request. (One per request, moved once: the
/// size of `Record` costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
pub enum Found<'a> {
    Record(Usable<'a>),
    /// Nothing usable: why the request is forwarded, and what holds the key.
    Nothing { fwd: Fwd, held: Held<'a> },
}

/// Examines what the store returned under the key.
pub fn examine<'a>(stored: Option<&'a [u8]>, keyed: &Keyed, request_headers: &[(String, Vec<u8>)]) -> Found<'a> {
    let Some(stored) = stored else {
        return Found::Nothing { fwd: Fwd::UriMiss, held: Held::Empty };
    };
    let unusable = Found::Nothing { fwd: Fwd::UriMiss, held: Held::Unusable };
    if let Some(mark) = Mark::decode(stored) {
        return Found::Nothing { fwd: Fwd::UriMiss, held: Held::Mark(mark) };
    }
    // A record that does not decode, or was written for another body, is a
    // miss; storing the fresh answer overwrites it.
    let rec = match record::decode(stored) {
        Ok(rec) => rec,
        Err(e) => {
            eprintln!("post-cache: unusable record replaced: {e:?}");
            return unusable;
        }
    };
    if rec.meta.request_digest != keyed.body_digest {
        eprintln!("post-cache: record for another body replaced");
        return unusable;
    }
    // A JSON-RPC answer is replayed only with its id slots, and only JSON-RPC
    // answers have them.
    if matches!(keyed.check, AnswerCheck::JsonRpc(_)) == rec.id_slots.is_empty() {
        eprintln!("post-cache: record without the id slots its request needs replaced");
        return unusable;
    }
    if rec.meta.vary_digest != vary_digest_as_sent(keyed, request_headers, &rec.meta.vary) {
        return Found::Nothing { fwd: Fwd::VaryMiss, held: Held::Unusable };
    }
    let body = match &keyed.check {
        // A segmented body's ids are spliced as it streams.
        _ if rec.segments.is_some() => splices(keyed, &rec).then_some(Cow::Borrowed(rec.body)),
        AnswerCheck::JsonRpc(request) => jsonrpc::splice_ids(rec.body, &rec.id_slots, &request.ids).map(Cow::Owned),
        _ => Some(Cow::Borrowed(rec.body)),
    };
    let Some(body) = body else {
        eprintln!("post-cache: record whose id slots do not fit replaced");
        return unusable;
    };
    Found::Record(Usable { record: rec, body, first_segment: None })
}

/// Whether a miss for this request asks the origin for an unencoded answer:
/// the cache must read an answer it checks (GraphQL `errors`, JSON-RPC ids).
pub fn asks_identity(keyed: &Keyed) -> bool {
    !matches!(keyed.check, AnswerCheck::Nothing)
}

/// RFC 9111 §4.1: "the presented request ... and the original request" are
/// compared on the fields `Vary` names — the original request being the one
/// the origin answered. A miss that asks for `accept-encoding: identity`
/// stores an answer chosen for that, whatever the client accepts, so the
/// match uses the value sent: otherwise clients with different encodings
/// would evict each other's entries for ever behind `Vary: Accept-Encoding`.
pub fn vary_digest_as_sent(keyed: &Keyed, request_headers: &[(String, Vec<u8>)], vary: &[String]) -> [u8; 32] {
    if !asks_identity(keyed) || !vary.iter().any(|v| v == "accept-encoding") {
        return vary_digest(request_headers, vary);
    }
    let mut sent: HeaderList = request_headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("accept-encoding")).cloned().collect();
    sent.push(("accept-encoding".into(), b"identity".to_vec()));
    vary_digest(&sent, vary)
}

/// The ids a JSON-RPC replay puts in the answer's id slots (none otherwise).
pub fn ids(keyed: &Keyed) -> &[Vec<u8>] {
    match &keyed.check {
        AnswerCheck::JsonRpc(request) => &request.ids,
        _ => &[],
    }
}

/// Whether a segmented record's id slots fit its body and this request.
fn splices(keyed: &Keyed, record: &Record<'_>) -> bool {
    IdSplicer::new(&record.id_slots, ids(keyed), record.body_len()).is_some()
}

/// A stored response about to be sent.
pub struct StoredAnswer<'a> {
    pub status: u16,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub age: u64,
    pub body: StoredBody<'a>,
}

/// A stored body: whole, or a segmented record's, read as it is sent.
pub enum StoredBody<'a> {
    Whole(&'a [u8]),
    Segmented(&'a Usable<'a>),
}
