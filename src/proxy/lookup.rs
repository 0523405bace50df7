//! The hit path: whether the stored record may answer, and replaying it.

use super::keying::Keyed;
use super::{push_length, push_status, report};
use crate::body::{respond_full, Client};
use crate::cache::headers::HeaderList;
use crate::cache::outcome::{Fwd, Outcome};
use crate::cache::policy::vary_digest;
use crate::cache::record::{self, Record};
use crate::protocol::{jsonrpc, AnswerCheck};
use std::borrow::Cow;

/// A stored record that may answer this request, and the body to answer with.
pub struct Usable<'a> {
    pub record: Record<'a>,
    /// The stored body, or for JSON-RPC a copy carrying this request's ids.
    pub body: Cow<'a, [u8]>,
}

/// The stored record if it may answer this request, or why the request goes forward.
pub fn usable_record<'a>(
    stored: Option<&'a [u8]>,
    keyed: &Keyed,
    request_headers: &[(String, Vec<u8>)],
    now: u64,
) -> Result<Usable<'a>, Fwd> {
    let stored = stored.ok_or(Fwd::UriMiss)?;
    // A record that does not decode, or was written for another body, is a
    // miss; storing the fresh answer overwrites it.
    let rec = record::decode(stored).map_err(|e| {
        eprintln!("post-cache: unusable record replaced: {e:?}");
        Fwd::UriMiss
    })?;
    if rec.meta.request_digest != keyed.body_digest {
        eprintln!("post-cache: record for another body replaced");
        return Err(Fwd::UriMiss);
    }
    // A JSON-RPC answer is replayed only with its id slots, and only JSON-RPC
    // answers have them.
    if matches!(keyed.check, AnswerCheck::JsonRpc(_)) == rec.id_slots.is_empty() {
        eprintln!("post-cache: record without the id slots its request needs replaced");
        return Err(Fwd::UriMiss);
    }
    if rec.meta.vary_digest != vary_digest(request_headers, &rec.meta.vary) {
        return Err(Fwd::VaryMiss);
    }
    if rec.ttl(now) == 0 {
        return Err(Fwd::Stale);
    }
    let body = match &keyed.check {
        AnswerCheck::JsonRpc(request) => match jsonrpc::splice_ids(rec.body, &rec.id_slots, &request.ids) {
            Some(spliced) => Cow::Owned(spliced),
            None => {
                eprintln!("post-cache: record whose id slots do not fit replaced");
                return Err(Fwd::UriMiss);
            }
        },
        _ => Cow::Borrowed(rec.body),
    };
    Ok(Usable { record: rec, body })
}

/// Answers from a stored record: its status and header lines in order, its body
/// and `Age`.
pub async fn replay(client: impl Client, usable: &Usable<'_>, now: u64) {
    let rec = &usable.record;
    let mut head: HeaderList = rec.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    head.push(("age".into(), rec.age(now).to_string().into_bytes()));
    push_length(&mut head, rec.meta.status, usable.body.len());
    push_status(&mut head, Outcome::Hit { ttl: rec.ttl(now) });
    report(respond_full(client, rec.meta.status, head, &usable.body).await);
}
