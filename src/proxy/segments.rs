//! Entries larger than one stored value (`cache::segment`) on the request path:
//! written segments first and head last, so a reader never finds a head whose
//! segments are not all there; replayed segment by segment, each checked
//! against its digest before a byte of it is sent; and the segments of a
//! replaced or broken head deleted, so none are left behind for long.

use super::flow::{Env, Flow};
use super::index;
use super::found::{ids, Usable};
use super::respond::{log_store_error, push_length, push_status, report};
use crate::body::{BodyError, BodySink, Client};
use crate::cache::key::segment_key;
use crate::cache::outcome::Outcome;
use crate::cache::record::{self, Sealed};
use crate::cache::segment::SegmentSet;
use crate::http::headers::HeaderList;
use crate::protocol::jsonrpc::IdSplicer;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};

/// How long the segments of a replaced entry outlive its head: a replay that
/// read the old head before it was replaced has this long to read the rest.
/// A slower one is cut short (its client sees an incomplete body, never a
/// mixed one).
pub const GRACE_MS: u64 = 2_000;

/// What a request leaves for after its response ([`Flow::sweep`]): the
/// segments of the head read at lookup, once this request has replaced or
/// deleted that head (deleted after the grace), and the index lines of the
/// entry it wrote (checked after the settle delay).
#[must_use]
#[derive(Default)]
pub struct Retired {
    segments: Option<SegmentSet>,
    indexed: Option<Box<Indexed>>,
}

/// The entry this request wrote, and the index lines it stands behind.
pub struct Indexed {
    /// The head as written: the entry is deleted only while the key holds it.
    pub head: Vec<u8>,
    pub lines: Vec<index::Line>,
    /// The value of a marker, should a tag's index turn out full.
    pub marker: Vec<u8>,
}

impl Retired {
    pub const NONE: Retired = Retired { segments: None, indexed: None };

    /// Both steps' retirements (there is only one head read at lookup, and one
    /// entry written).
    pub fn and(self, other: Retired) -> Retired {
        Retired { segments: self.segments.or(other.segments), indexed: self.indexed.or(other.indexed) }
    }

    /// The same, with the written entry's index lines to check — if this
    /// request wrote any index (a line it found there is not checked).
    pub fn indexing(self, indexed: Indexed) -> Retired {
        if !indexed.lines.iter().any(|l| l.wrote) {
            return self;
        }
        Retired { indexed: Some(Box::new(indexed)), ..self }
    }
}

impl<E: Env> Flow<'_, E> {
    /// Writes a sealed record under the request's key: a whole record in one
    /// write; a split one segment by segment, then its head. When a write
    /// fails, the segments already written are deleted and no head is
    /// written. Once the new head is in place, the segments of the head it
    /// replaced are retired.
    pub fn write(&self, sealed: &Sealed) -> Result<Retired, StoreError> {
        let key = &self.keyed.kv_key;
        let generation = match sealed {
            Sealed::Whole(bytes) => {
                self.store.set(key, bytes)?;
                None
            }
            Sealed::Split { head, body, segments, manifest } => {
                let generation = manifest.generation;
                for (i, range) in segments.iter().enumerate() {
                    if let Err(e) = self.store.set(&segment_key(key, generation, i as u32), &body[range.clone()]) {
                        delete_set(self.store, key, SegmentSet { generation, count: i as u32 });
                        return Err(e);
                    }
                }
                if let Err(e) = self.store.set(key, head) {
                    delete_set(self.store, key, manifest.set());
                    return Err(e);
                }
                Some(generation)
            }
        };
        Ok(self.retiring(generation))
    }

    /// Rewrites a segmented record's head (a revalidation), keeping its segments.
    pub fn rewrite_head(&self, head: &[u8], generation: u64) -> Result<Retired, StoreError> {
        self.store.set(&self.keyed.kv_key, head)?;
        Ok(self.retiring(Some(generation)))
    }

    /// The head read at lookup is gone or replaced (not by a head of the same
    /// generation, `kept`): its segments, if it had any.
    pub fn retiring(&self, kept: Option<u64>) -> Retired {
        let previous = self.held.and_then(record::segment_set);
        Retired { segments: previous.filter(|p| Some(p.generation) != kept), indexed: None }
    }

    /// After the response: checks the written entry's index lines after the
    /// settle delay (the entry is deleted if a purge may have missed it), then
    /// waits out the grace period and deletes the retired segments
    /// (best effort; a purge by URL or of everything deletes any a failure
    /// leaves).
    pub async fn sweep(&self, retired: Retired) {
        if let Some(indexed) = retired.indexed {
            self.runtime.sleep_ms(index::SETTLE_MS).await;
            self.check_indexed(&indexed);
        }
        let Some(segments) = retired.segments else { return };
        self.runtime.sleep_ms(GRACE_MS).await;
        delete_set(self.store, &self.keyed.kv_key, segments);
    }

    /// Deletes the entry this request wrote if an index no longer stands
    /// behind it — only while the key still holds that entry.
    fn check_indexed(&self, indexed: &Indexed) {
        let key = &self.keyed.kv_key;
        if index::still_indexed(self.store, key, &indexed.lines, &indexed.marker, self.now) {
            return;
        }
        match self.store.get(key) {
            Ok(Some(now)) if record::same_entry(&now, &indexed.head) => {
                eprintln!("post-cache: a purge ran while the entry was being indexed; the entry is deleted");
                if let Err(e) = self.store.delete(key) {
                    return log_store_error("delete", &e);
                }
                if let Some(set) = record::segment_set(&indexed.head) {
                    delete_set(self.store, key, set);
                }
            }
            Ok(_) => {}
            Err(e) => log_store_error("get", &e),
        }
    }

    /// Deletes a head whose segments are missing or corrupt, and those
    /// segments. Only that head: the key is read again first, and a head of
    /// another generation (a newer entry written while a slow replay read the
    /// old one, whose segments the grace then deleted) is left alone. The store
    /// has no compare-and-delete; the window left is between that read and the
    /// delete.
    fn delete_broken(&self, set: SegmentSet) {
        let key = &self.keyed.kv_key;
        match self.store.get(key) {
            Ok(Some(now)) if record::segment_set(&now).is_some_and(|s| s.generation == set.generation) => {
                if let Err(e) = self.store.delete(key) {
                    log_store_error("delete", &e);
                }
            }
            Ok(_) => eprintln!("post-cache: the broken entry was replaced meanwhile; the newer one is kept"),
            Err(e) => return log_store_error("get", &e),
        }
        delete_set(self.store, key, set);
    }

    /// Makes a record ready to replay before any of it is sent: for a
    /// segmented body, reads and checks its first segment and returns the
    /// record with it. `None` when it cannot be used — the request is then a
    /// miss; a broken entry is deleted first.
    pub fn ready<'u>(&self, mut usable: Usable<'u>) -> Option<Usable<'u>> {
        let Some(manifest) = &usable.record.segments else { return Some(usable) };
        match read_segment(self.store, &self.keyed.kv_key, &usable, 0) {
            Ok(bytes) => {
                usable.first_segment = Some(bytes);
                Some(usable)
            }
            Err(Unreadable::Broken(why)) => {
                eprintln!("post-cache: segment 0 of a stored entry {why}; entry deleted, fetching again");
                self.delete_broken(manifest.set());
                None
            }
            Err(Unreadable::Store(e)) => {
                log_store_error("get", &e);
                None
            }
        }
    }

    /// Replays a segmented body after `head`: the head's part, then each
    /// segment as it is read and checked ([`Flow::ready`] has read the first).
    /// A segment missing or corrupt now aborts the response — the client sees
    /// a body shorter than its `Content-Length`, never a different one — and
    /// deletes the entry.
    pub async fn stream(&self, client: impl Client, status: u16, mut head: HeaderList, usable: &Usable<'_>, outcome: Outcome) {
        let rec = &usable.record;
        let manifest = rec.segments.as_ref().expect("only segmented records are streamed");
        let Some(mut splicer) = IdSplicer::new(&rec.id_slots, ids(self.keyed), manifest.total_len) else {
            return report(Err(BodyError("stored id slots do not fit".into())));
        };
        push_length(&mut head, status, splicer.spliced_len() as usize);
        push_status(&mut head, outcome);
        if client.discards_body() {
            // A background refresh's 304: the segments need not be read.
            return report(client.respond(status, head).and_then(BodySink::finish));
        }
        let mut sink = match client.respond(status, head) {
            Ok(sink) => sink,
            Err(e) => return report(Err(e)),
        };
        let mut out = Vec::new();
        if let Err(e) = send(&mut sink, &mut splicer, &mut out, rec.body).await {
            return report(Err(e));
        }
        for index in 0..manifest.digests.len() {
            let read;
            let segment = match usable.first_segment.as_deref().filter(|_| index == 0) {
                Some(bytes) => bytes,
                None => match read_segment(self.store, &self.keyed.kv_key, usable, index) {
                    Ok(bytes) => {
                        read = bytes;
                        &read
                    }
                    Err(why) => {
                        match why {
                            Unreadable::Broken(why) => {
                                eprintln!("post-cache: segment {index} of a stored entry {why}; response aborted, entry deleted");
                                self.delete_broken(manifest.set());
                            }
                            Unreadable::Store(e) => log_store_error("get", &e),
                        }
                        return; // the sink is dropped unfinished: the response is aborted
                    }
                },
            };
            if let Err(e) = send(&mut sink, &mut splicer, &mut out, segment).await {
                return report(Err(e));
            }
        }
        report(sink.finish());
    }
}

/// Deletes segments `0..count` of one generation; stops at the first failure.
pub fn delete_set(store: &impl Store, key: &str, set: SegmentSet) {
    for i in 0..set.count {
        if let Err(e) = store.delete(&segment_key(key, set.generation, i)) {
            return log_store_error("delete", &e);
        }
    }
}

/// Why a segment could not be used.
enum Unreadable {
    /// Missing or not what the manifest says: the entry is broken.
    Broken(&'static str),
    /// The store failed: the entry may be fine.
    Store(StoreError),
}

fn read_segment<S: Store>(store: &S, key: &str, usable: &Usable<'_>, index: usize) -> Result<Vec<u8>, Unreadable> {
    let rec = &usable.record;
    let manifest = rec.segments.as_ref().expect("only segmented records are read so");
    match store.get(&segment_key(key, manifest.generation, index as u32)) {
        Ok(Some(bytes)) if manifest.verify(rec.body.len(), index, &bytes) => Ok(bytes),
        Ok(Some(_)) => Err(Unreadable::Broken("does not match its digest")),
        Ok(None) => Err(Unreadable::Broken("is missing")),
        Err(e) => Err(Unreadable::Store(e)),
    }
}

/// Writes one piece of a stored body, with this request's ids spliced in when
/// it is a JSON-RPC answer (as is otherwise).
async fn send(sink: &mut impl BodySink, splicer: &mut IdSplicer<'_>, out: &mut Vec<u8>, piece: &[u8]) -> Result<(), BodyError> {
    if splicer.is_identity() {
        return sink.write(piece).await;
    }
    out.clear();
    splicer.feed(piece, out).ok_or_else(|| BodyError("stored id slots do not fit".into()))?;
    sink.write(out).await
}
