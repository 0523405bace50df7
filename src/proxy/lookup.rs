//! The hit path: whether the stored record belongs to this request, and
//! replaying it (or `304 Not Modified` to a client whose validator matches).

use super::keying::Keyed;
use super::{collapse::Held, push_length, push_status, report, segments, Flow};
use crate::body::{respond_full, Client};
use crate::cache::conditional;
use crate::http::headers::HeaderList;
use crate::cache::mark::Mark;
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::vary_digest;
use crate::cache::record::{self, Record};
use crate::protocol::{jsonrpc, AnswerCheck};
use crate::store::Store;
use std::borrow::Cow;
use std::cell::Cell;

/// A stored record written for this request (its body, id slots and `Vary`-ed
/// headers match), and the body to answer with. Fresh or not is for
/// `cache::freshness` to say.
pub struct Usable<'a> {
    pub record: Record<'a>,
    /// The stored body, or for JSON-RPC a copy carrying this request's ids.
    /// For a segmented record, its first part as stored (ids are spliced as
    /// it streams).
    pub body: Cow<'a, [u8]>,
    /// A segmented record's first segment, read and checked before anything
    /// is sent (`segments::ready`).
    pub first_segment: Cell<Option<Vec<u8>>>,
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

/// What the key holds for this request. (One per request, moved once: the
/// size of `Record` costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
pub enum Found<'a> {
    Record(Usable<'a>),
    /// Nothing usable: why the request is forwarded, and what holds the key.
    Nothing { fwd: Fwd, held: Held<'a> },
}

impl<'a> Found<'a> {
    /// A segmented record whose first segment cannot be read is a miss (and a
    /// broken one is deleted): see `segments::ready`.
    pub fn filter_ready<B, S: Store, O>(self, flow: &Flow<'_, B, S, O>) -> Self {
        match self {
            Found::Record(usable) if !segments::ready(flow, &usable) => {
                Found::Nothing { fwd: Fwd::UriMiss, held: Held::Empty }
            }
            found => found,
        }
    }
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
        _ if rec.segments.is_some() => segments::splices(keyed, &rec).then_some(Cow::Borrowed(rec.body)),
        AnswerCheck::JsonRpc(request) => jsonrpc::splice_ids(rec.body, &rec.id_slots, &request.ids).map(Cow::Owned),
        _ => Some(Cow::Borrowed(rec.body)),
    };
    let Some(body) = body else {
        eprintln!("post-cache: record whose id slots do not fit replaced");
        return unusable;
    };
    Found::Record(Usable { record: rec, body, first_segment: Cell::new(None) })
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

/// Answers from a stored record: its status and header lines in order, its body
/// and `Age`.
pub async fn replay<B, S: Store, O>(flow: &Flow<'_, B, S, O>, client: impl Client, usable: &Usable<'_>, outcome: Outcome) {
    let rec = &usable.record;
    let stored = StoredAnswer { status: rec.meta.status, headers: &rec.headers, age: rec.age(flow.now), body: usable.stored_body() };
    answer_stored(flow, client, &stored, outcome).await
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

/// Sends a stored response, or `304 Not Modified` when the client's own
/// `If-None-Match` / `If-Modified-Since` matches it (GET, HEAD and QUERY only;
/// a POST carrying them was forwarded). Targeted cache-control fields stay here.
pub async fn answer_stored<B, S: Store, O>(flow: &Flow<'_, B, S, O>, client: impl Client, stored: &StoredAnswer<'_>, outcome: Outcome) {
    let targeted = flow.config.targeted_fields();
    let relayed = |name: &str| !targeted.iter().any(|t| !t.is_empty() && name.eq_ignore_ascii_case(t));
    let method = flow.request.method.as_str();
    // RFC 9111 §4.3.2: "A cache that receives a conditional request ... can
    // evaluate the conditions using the stored response"; only a 200 has a
    // selected representation to compare.
    if stored.status == 200
        && conditional::revalidates(method)
        && conditional::not_modified(&flow.request.headers, stored.headers)
    {
        let mut head = conditional::not_modified_headers(stored.headers);
        head.retain(|(n, _)| relayed(n));
        head.push(("age".into(), stored.age.to_string().into_bytes()));
        push_status(&mut head, outcome);
        return report(respond_full(client, 304, head, b"").await);
    }
    let mut head: HeaderList =
        stored.headers.iter().filter(|(n, _)| relayed(n)).map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    head.push(("age".into(), stored.age.to_string().into_bytes()));
    let body = match stored.body {
        StoredBody::Whole(body) => body,
        StoredBody::Segmented(usable) => return segments::stream(flow, client, stored.status, head, usable, outcome).await,
    };
    push_length(&mut head, stored.status, body.len());
    push_status(&mut head, outcome);
    report(respond_full(client, stored.status, head, body).await);
}
