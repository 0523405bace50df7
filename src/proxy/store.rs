//! The store step: a captured answer checked and written as a record (index
//! lines first, segments next, the head last), a revalidated record
//! rewritten, and what the key held forgotten when the answer may not replace
//! it. Writes only ever cost the cache: a failure is logged, never answered.

use super::flow::{Env, Flow};
use super::found::Held;
use super::housekeeping;
use super::respond::log_store_error;
use super::index;
use super::segments::{Indexed, Retired};
use crate::cache::key::persisted_marker_key;
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
                self.store(&bounded, builder, &answer.id_slots, stored_headers, &answer.tags)
            }
            Err(reason) => {
                eprintln!("post-cache: a teed answer was not stored ({})", reason.detail());
                self.abandon(entry)
            }
        }
    }

    /// Seals a captured answer for the store's value size and writes it: its
    /// line in the index of each of its tags and of its URL first, then its
    /// segments, its head last — so a head in the store is always found by a
    /// purge of its tags or URL, and a failed write leaves no head. The index
    /// lines are checked again after the response (`Retired`). Only logged on
    /// failure (the client has its answer); a refused write may mean a full
    /// store, so room is made. Now and then a step of the sweep follows.
    /// `answer_tags`: tags read from the body (GraphQL entities).
    pub fn store(
        &self,
        entry: &Entry<'_>,
        builder: RecordBuilder,
        id_slots: &[IdSlot],
        stored_headers: &[(String, Vec<u8>)],
        answer_tags: &[String],
    ) -> Stored {
        let (config, now) = (self.config, self.now);
        if let Some(stored) = self.rewrite_unchanged(entry, &builder, id_slots, stored_headers, answer_tags) {
            return stored;
        }
        let generation = self.new_generation();
        let Some(sealed) = builder.seal_within(id_slots, config.max_value_bytes, generation) else {
            eprintln!("post-cache: the answer's head does not fit one value of max_value_bytes; not stored");
            return self.abandon(entry);
        };
        let marker = tags::marker_value(sweep::last_usable(&entry.meta));
        let tags = self.tags_of(stored_headers, answer_tags);
        let written = self.index(&tags, &marker, generation).and_then(|lines| Ok((lines, self.write(&sealed)?)));
        match written {
            Ok((lines, retired)) => {
                mark_persisted_query(self.store, &self.keyed.check, now);
                housekeeping::after_store(self.store, config, now, generation);
                let head = head_of(sealed);
                Stored { stored: true, retired: retired.indexing(Indexed { head, lines, marker }) }
            }
            Err(e) => {
                log_store_error("set", &e);
                let keys = match &sealed {
                    Sealed::Whole(_) => 1,
                    Sealed::Split { segments, .. } => 1 + segments.len(),
                } + tags.len();
                housekeeping::make_room(self.store, config, now, generation, keys, &e);
                Stored::NOTHING
            }
        }
    }

    /// A refetch (a client's `no-cache`, an expired entry) that brought back
    /// exactly the body already stored in segments: only the head is written,
    /// naming the segments already there (the indexes are written only where
    /// the entry's line is new) — one write instead of one per segment. Only
    /// while the key still holds the entry read at lookup (its segments are
    /// then not being retired). `None` when that does not apply: store it whole.
    fn rewrite_unchanged(
        &self,
        entry: &Entry<'_>,
        builder: &RecordBuilder,
        id_slots: &[IdSlot],
        stored_headers: &[(String, Vec<u8>)],
        answer_tags: &[String],
    ) -> Option<Stored> {
        let held = record::decode(self.held?).ok()?;
        let manifest = held.segments.as_ref()?;
        let head = builder.head_reusing(id_slots, self.config.max_value_bytes, held.body, manifest)?;
        if !self.still_held() {
            return None;
        }
        let marker = tags::marker_value(sweep::last_usable(&entry.meta));
        let tags = self.tags_of(stored_headers, answer_tags);
        let written = self.index(&tags, &marker, manifest.generation).and_then(|lines| Ok((lines, self.rewrite_head(&head, manifest.generation)?)));
        match written {
            Ok((lines, retired)) => {
                mark_persisted_query(self.store, &self.keyed.check, self.now);
                Some(Stored { stored: true, retired: retired.indexing(Indexed { head, lines, marker }) })
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
    pub fn rewrite(&self, meta: &RecordMeta, headers: &HeaderList, rec: &Record<'_>) -> Result<(Retired, Vec<u8>), NotStoredReason> {
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
                self.rewrite_head(&head, manifest.generation).map(|retired| (retired, head))
            }
            None => {
                let sealed = builder.seal_within(&rec.id_slots, max_value, self.new_generation()).ok_or(NotStoredReason::TooLarge)?;
                self.write(&sealed).map(|retired| (retired, head_of(sealed)))
            }
        };
        written.map_err(|e| {
            log_store_error("set", &e);
            NotStoredReason::StoreError
        })
    }

    /// After a revalidation rewrote an entry's head: its line in the index of
    /// every tag it now carries and of its URL (written only where it is
    /// new), so a purge finds it. When that fails, the entry is deleted: an
    /// entry a purge by its tags would miss must not be served.
    pub fn index_rewritten(&self, headers: &[(String, Vec<u8>)], head: &[u8], marker: Vec<u8>) -> Retired {
        let tags = self.tags_of(headers, &[]);
        match self.index(&tags, &marker, self.new_generation()) {
            Ok(lines) => Retired::NONE.indexing(Indexed { head: head.to_vec(), lines, marker }),
            Err(e) => {
                log_store_error("set", &e);
                self.forget()
            }
        }
    }

    /// The tags of an entry: those its header fields name, then those read
    /// from its body.
    fn tags_of(&self, headers: &[(String, Vec<u8>)], answer_tags: &[String]) -> Vec<String> {
        let parsed = tags::parse_tags(headers);
        if parsed.dropped > 0 {
            eprintln!("post-cache: {} tags over the limits (128 tags of 128 bytes) not indexed", parsed.dropped);
        }
        let mut all = parsed.tags;
        for tag in answer_tags {
            if !all.contains(tag) {
                all.push(tag.clone());
            }
        }
        all
    }

    /// Adds the entry to the indexes of `tags` and of its URL; stops at the
    /// first failure. An index this creates starts in `epoch` (the write's
    /// random generation: any value no purge wrote will do).
    fn index(&self, tags: &[String], marker: &[u8], epoch: u64) -> Result<Vec<index::Line>, StoreError> {
        let max_lines = crate::cache::index::max_lines(self.config.max_value_bytes);
        index::add_entry(self.store, &self.keyed.kv_key, tags, marker, max_lines, self.now, epoch)
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

/// The value a sealed record's key holds once written.
fn head_of(sealed: Sealed) -> Vec<u8> {
    match sealed {
        Sealed::Whole(bytes) => bytes,
        Sealed::Split { head, .. } => head,
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
