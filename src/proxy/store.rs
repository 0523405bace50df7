//! The store step: a captured answer checked and written as a record (tag
//! markers first, segments next, the head last), a revalidated record
//! rewritten, and what the key held forgotten when the answer may not replace
//! it. Writes only ever cost the cache: a failure is logged, never answered.

use super::flow::{Env, Flow};
use super::found::Held;
use super::housekeeping;
use super::respond::log_store_error;
use super::segments::Retired;
use crate::cache::key::{persisted_marker_key, tag_marker_key};
use crate::cache::outcome::Fwd;
use crate::cache::policy::NotStoredReason;
use crate::cache::record::{self, Record, RecordBuilder, RecordMeta, Sealed};
use crate::cache::{sweep, tags};
use crate::http::headers::HeaderList;
use crate::protocol::jsonrpc::IdSlot;
use crate::protocol::{AnswerCheck, Persisted};
use crate::store::{Store, StoreError};

/// What a fetch did to the key: whether the answer was stored, and the
/// segments of the head read at lookup if it replaced or deleted that head.
#[must_use]
pub struct Stored {
    pub stored: bool,
    pub retired: Retired,
}

impl Stored {
    /// Nothing was written, nothing deleted.
    pub const NOTHING: Stored = Stored { stored: false, retired: Retired::NONE };

    pub fn not(retired: Retired) -> Stored {
        Stored { stored: false, retired }
    }
}

/// A storable answer to this request, while it is captured: its record head,
/// why the request was forwarded, and what the key held.
pub struct Entry<'h> {
    pub meta: RecordMeta,
    pub fwd: Fwd,
    pub held: Held<'h>,
}

impl<E: Env> Flow<'_, E> {
    /// The answer will not be stored: make sure an unusable or outdated record
    /// under the key is not read again.
    pub fn abandon(&self, entry: &Entry<'_>) -> Stored {
        Stored::not(self.forget_if(entry.held, entry.meta.status))
    }

    /// What the key held is forgotten if an answer with `status` may not
    /// replace it ([`Held::forgotten_on`]).
    pub fn forget_if(&self, held: Held<'_>, status: u16) -> Retired {
        if held.forgotten_on(status) {
            self.forget()
        } else {
            Retired::NONE
        }
    }

    /// Checks a captured answer as the body format requires (the client has it
    /// already), then stores it.
    pub fn check_and_store(&self, entry: &Entry<'_>, mut builder: RecordBuilder, stored_headers: &[(String, Vec<u8>)]) -> Stored {
        match self.checked(entry, builder.body(), stored_headers) {
            Ok((bounded, answer)) => {
                builder.set_freshness(&bounded.meta);
                self.store(&bounded, builder, &answer.id_slots, &answer.tags, stored_headers)
            }
            Err(reason) => {
                eprintln!("post-cache: a teed answer was not stored ({})", reason.detail());
                self.abandon(entry)
            }
        }
    }

    /// Seals a captured answer for the store's value size and writes it: its
    /// tag markers first (each carrying the entry's last usable moment), then
    /// its segments, its head last — so a head in the store is always found by
    /// a purge of its tags, and a failed write leaves no head. Only logged on
    /// failure (the client has its answer); a refused write may mean a full
    /// store, so room is made. Now and then a step of the sweep follows.
    pub fn store(
        &self,
        entry: &Entry<'_>,
        builder: RecordBuilder,
        id_slots: &[IdSlot],
        answer_tags: &[String],
        stored_headers: &[(String, Vec<u8>)],
    ) -> Stored {
        let (config, now) = (self.config, self.now);
        if let Some(stored) = self.rewrite_unchanged(entry, &builder, id_slots, answer_tags, stored_headers) {
            return stored;
        }
        let generation = self.new_generation();
        let Some(sealed) = builder.seal_within(id_slots, config.max_value_bytes, generation) else {
            eprintln!("post-cache: the answer's head does not fit one value of max_value_bytes; not stored");
            return self.abandon(entry);
        };
        let marker = tags::marker_value(sweep::last_usable(&entry.meta));
        let written = self.tag_markers(stored_headers, answer_tags, &[], &marker).and_then(|_| self.write(&sealed));
        match written {
            Ok(retired) => {
                mark_persisted_query(self.store, &self.keyed.check, now);
                housekeeping::after_store(self.store, config, now, generation);
                Stored { stored: true, retired }
            }
            Err(e) => {
                log_store_error("set", &e);
                let keys = match &sealed {
                    Sealed::Whole(_) => 1,
                    Sealed::Split { segments, .. } => 1 + segments.len(),
                } + tags::parse_tags(stored_headers).tags.len()
                    + answer_tags.len();
                housekeeping::make_room(self.store, config, now, generation, keys, &e);
                Stored::NOTHING
            }
        }
    }

    /// A refetch (a client's `no-cache`, an expired entry) that brought back
    /// exactly the body already stored in segments: only the head is written,
    /// naming the segments already there, and only the markers of tags the
    /// entry did not carry before — one write instead of one per segment and
    /// tag. Only while the key still holds the entry read at lookup (its
    /// segments are then not being retired). `None` when that does not apply:
    /// store it whole.
    fn rewrite_unchanged(
        &self,
        entry: &Entry<'_>,
        builder: &RecordBuilder,
        id_slots: &[IdSlot],
        answer_tags: &[String],
        stored_headers: &[(String, Vec<u8>)],
    ) -> Option<Stored> {
        let held = record::decode(self.held?).ok()?;
        let manifest = held.segments.as_ref()?;
        let head = builder.head_reusing(id_slots, self.config.max_value_bytes, held.body, manifest)?;
        if !self.still_held() {
            return None;
        }
        let before: HeaderList = held.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        let marker = tags::marker_value(sweep::last_usable(&entry.meta));
        let written = self.tag_markers(stored_headers, answer_tags, &before, &marker).and_then(|_| self.rewrite_head(&head, manifest.generation));
        match written {
            Ok(retired) => {
                mark_persisted_query(self.store, &self.keyed.check, self.now);
                Some(Stored { stored: true, retired })
            }
            Err(e) => {
                log_store_error("set", &e);
                Some(Stored::NOTHING)
            }
        }
    }

    /// Rewrites a revalidated record with its merged headers and new
    /// freshness, the stored body kept: a segmented record's head only, its
    /// segments reused. Only while the key still holds the record that was
    /// revalidated: a purge or a newer entry that landed since must not be
    /// undone by writing back the bytes read before it.
    pub fn rewrite(&self, meta: &RecordMeta, headers: &HeaderList, rec: &Record<'_>) -> Result<Retired, NotStoredReason> {
        if !self.still_held() {
            return Err(NotStoredReason::Superseded);
        }
        let (max_value, max_entry) = (self.config.max_value_bytes, self.config.max_entry_bytes);
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
                self.rewrite_head(&head, manifest.generation)
            }
            None => {
                let sealed = builder.seal_within(&rec.id_slots, max_value, self.new_generation()).ok_or(NotStoredReason::TooLarge)?;
                self.write(&sealed)
            }
        };
        written.map_err(|e| {
            log_store_error("set", &e);
            NotStoredReason::StoreError
        })
    }

    /// After a revalidation rewrote an entry's head, one marker per tag it now
    /// carries and did not carry in `before`, so a purge by tag finds it. The
    /// marker carries no last usable moment (a sweep reads the entry to judge
    /// it). When one cannot be written, the entry is deleted: an entry a purge
    /// by its tags would miss must not be served.
    pub fn write_tag_markers(&self, headers: &[(String, Vec<u8>)], before: &[(String, Vec<u8>)]) -> Retired {
        match self.tag_markers(headers, &[], before, b"t") {
            Ok(_) => Retired::NONE,
            Err(e) => {
                log_store_error("set", &e);
                self.forget()
            }
        }
    }

    /// Writes the markers of the tags in `headers` and `answer_tags` (a GraphQL
    /// answer's entities) not in `before`, each holding `value`; stops at the
    /// first failure.
    fn tag_markers(
        &self,
        headers: &[(String, Vec<u8>)],
        answer_tags: &[String],
        before: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<usize, StoreError> {
        let had = tags::parse_tags(before).tags;
        let parsed = tags::parse_tags(headers);
        if parsed.dropped > 0 {
            eprintln!("post-cache: {} tags over the limits (128 tags of 128 bytes) not indexed", parsed.dropped);
        }
        let mut written = 0;
        let answer_only = answer_tags.iter().filter(|t| !parsed.tags.contains(t));
        for tag in parsed.tags.iter().chain(answer_only).filter(|t| !had.contains(t)) {
            let Some(marker) = tag_marker_key(tag, &self.keyed.kv_key) else { continue };
            self.store.set(&marker, value)?;
            written += 1;
        }
        Ok(written)
    }

    /// Whether the key still holds the entry read at lookup (whatever mark it
    /// carries now). A store error counts as no: nothing is written back blind.
    pub fn still_held(&self) -> bool {
        let Some(held) = self.held else { return false };
        match self.store.get(&self.keyed.kv_key) {
            Ok(Some(now)) => record::same_entry(&now, held),
            Ok(None) => false,
            Err(e) => {
                log_store_error("get", &e);
                false
            }
        }
    }

    /// Deletes what this request read under its key (a record the fresh
    /// answer could not replace, or another request's unusable bytes) so it
    /// is not read again — only while the key still holds it: an entry another
    /// request wrote since, or a purge, is left alone. The store has no
    /// compare-and-delete, so this reads the key first; the window left is
    /// between that read and the delete.
    pub fn forget(&self) -> Retired {
        let Some(held) = self.held else { return Retired::NONE };
        match self.store.get(&self.keyed.kv_key) {
            Ok(Some(now)) if record::same_entry(&now, held) => self.delete_entry(),
            Ok(_) => Retired::NONE,
            Err(e) => {
                log_store_error("get", &e);
                Retired::NONE
            }
        }
    }

    /// Deletes the key's value, known to be this request's to delete, and
    /// retires the segments of the head read at lookup, if it had any.
    pub fn delete_entry(&self) -> Retired {
        match self.store.delete(&self.keyed.kv_key) {
            Ok(()) => self.retiring(None),
            Err(e) => {
                log_store_error("delete", &e);
                Retired::NONE
            }
        }
    }
}

/// A persisted query sent as a hash alone may be stored only once its document
/// has been seen to run a query (its marker is there): otherwise it could be a
/// mutation. One KV get, on such misses only.
pub fn persisted_may_be_stored(store: &impl Store, check: &AnswerCheck) -> Result<(), NotStoredReason> {
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
