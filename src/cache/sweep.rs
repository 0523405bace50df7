//! The sweep, PURE: which keys post-cache wrote can never be served again, and
//! why. `proxy::housekeeping` lists and reads the store and deletes what this
//! judges dead; the admin sweep, `/stats` and the automatic step share it.
//!
//! Spin's key-value store has no expiry, so every key post-cache writes is
//! judged here: an entry by its record's times, a mark alone by its expiry, a
//! segment by the head it belongs to, a tag marker by the last usable moment
//! its value carries (or its entry), a persisted-query marker by its age, an
//! index line by its entry; a key of an earlier key scheme is dead.

use super::key::{self, entry_of_tag_marker, is_earlier_scheme_key, is_entry_key, is_index_key, is_persisted_marker_key, segment_parts};
use super::mark::Mark;
use super::record::{self, DecodeError, RecordMeta, RECORD_VERSION};
use super::tags;

/// How long after a head was written the segments of the generation it
/// replaced are left alone: the request that replaced it deletes them itself
/// after its grace (`proxy::segments::GRACE_MS`), and a replay that read the
/// old head may still be reading them.
pub const REPLACED_SEGMENTS_GRACE: u64 = 60;

/// What kind of key post-cache wrote, from its shape alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A record or a mark alone under an entry's key (the value tells).
    Entry,
    /// Segment of the entry `entry`, written as `generation`.
    Segment { entry: &'a str, generation: u64 },
    /// A tag marker of the entry `entry`.
    TagMarker { entry: String },
    /// A persisted query's marker.
    PersistedMarker,
    /// The index of a tag or a URL (`cache::index`): its lines are pruned.
    Index,
    /// A key an earlier key scheme wrote: nothing reads it any more.
    Earlier,
    /// Not a key post-cache writes (another app's, or a later scheme's): left alone.
    Other,
}

pub fn kind(key: &str) -> Kind<'_> {
    if is_entry_key(key) {
        Kind::Entry
    } else if let Some((entry, generation, _)) = segment_parts(key) {
        Kind::Segment { entry, generation }
    } else if let Some(entry) = entry_of_tag_marker(key).filter(|e| is_entry_key(e)) {
        Kind::TagMarker { entry }
    } else if is_persisted_marker_key(key) {
        Kind::PersistedMarker
    } else if is_index_key(key) {
        Kind::Index
    } else if is_earlier_scheme_key(key) {
        Kind::Earlier
    } else {
        Kind::Other
    }
}

/// Why a key was judged dead: the counts a sweep answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    /// A record past its freshness and every stale window, or bytes under an
    /// entry's key that are no record of any version.
    Entry,
    /// A "being fetched" mark alone under a key, past its expiry.
    Mark,
    /// A segment whose head is gone or names another generation.
    Segment,
    /// A tag marker whose entry is gone, dead, or no longer carries the tag.
    TagMarker,
    /// A persisted query's marker older than the bound.
    PersistedMarker,
    /// An open index whose lines all named entries that are gone.
    Index,
    /// A key of an earlier key scheme.
    Earlier,
}

/// Counts per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub entries: u64,
    pub marks: u64,
    pub segments: u64,
    pub tag_markers: u64,
    pub persisted_markers: u64,
    pub indexes: u64,
    pub earlier_scheme: u64,
}

impl Counts {
    pub fn add(&mut self, dead: Dead) {
        match dead {
            Dead::Entry => self.entries += 1,
            Dead::Mark => self.marks += 1,
            Dead::Segment => self.segments += 1,
            Dead::TagMarker => self.tag_markers += 1,
            Dead::PersistedMarker => self.persisted_markers += 1,
            Dead::Index => self.indexes += 1,
            Dead::Earlier => self.earlier_scheme += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.entries + self.marks + self.segments + self.tag_markers + self.persisted_markers + self.indexes + self.earlier_scheme
    }

    /// The counts as JSON members (no braces).
    pub fn json_members(&self) -> String {
        format!(
            r#""entries":{},"marks":{},"segments":{},"tag_markers":{},"persisted_markers":{},"indexes":{},"earlier_scheme":{}"#,
            self.entries, self.marks, self.segments, self.tag_markers, self.persisted_markers, self.indexes, self.earlier_scheme
        )
    }
}

/// The last moment a record can answer anyone: its freshness, then the
/// longer of its stale windows (RFC 5861) unless serving it stale is
/// forbidden. A client's `max-stale` may ask for more; a cache may evict a
/// stale response at any time (RFC 9111 §4.2.4 allows, never requires, serving
/// one), and keeping every record for such a client would keep all for ever.
pub fn last_usable(meta: &RecordMeta) -> u64 {
    if meta.stale.forbidden {
        return meta.fresh_until;
    }
    let window = meta.stale.while_revalidate.max(meta.stale.if_error);
    meta.fresh_until.saturating_add(u64::from(window))
}

/// What the value under an entry's key is, as far as the sweep cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Record {
        last_usable: u64,
        stored_at: u64,
        /// Being fetched again: left for the fetch to replace.
        mark: Option<Mark>,
        /// The generation of its segments, if it has any, and how many.
        segments: Option<(u64, u32)>,
        /// Its tags, from its stored header fields.
        tags: Vec<String>,
    },
    /// A mark alone: someone is fetching a key that holds nothing.
    Mark(Mark),
    /// A record of a later version or with a feature this build does not know:
    /// a newer build sharing the store wrote it, and judges it.
    Newer,
    /// Bytes that are no record or mark of any version (never served: a read
    /// is a miss).
    Corrupt,
}

impl Head {
    pub fn read(bytes: &[u8]) -> Head {
        if let Some(mark) = Mark::decode(bytes) {
            return Head::Mark(mark);
        }
        match record::decode(bytes) {
            Ok(rec) => {
                let headers: Vec<(String, Vec<u8>)> = rec
                    .headers
                    .iter()
                    .filter(|(n, _)| tags::TAG_FIELDS.iter().any(|f| n.eq_ignore_ascii_case(f)))
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec()))
                    .collect();
                Head::Record {
                    last_usable: last_usable(&rec.meta),
                    stored_at: rec.meta.stored_at,
                    mark: rec.mark,
                    segments: rec.segments.as_ref().map(|s| (s.generation, s.digests.len() as u32)),
                    tags: tags::parse_tags(&headers).tags,
                }
            }
            Err(DecodeError::UnsupportedVersion(v)) if v > RECORD_VERSION => Head::Newer,
            Err(DecodeError::UnknownExtension(_)) => Head::Newer,
            Err(_) => Head::Corrupt,
        }
    }

    /// Whether the value can never be served again at `now`, and as what.
    pub fn dead(&self, now: u64) -> Option<Dead> {
        match self {
            Head::Record { last_usable, mark, .. } => {
                (now >= *last_usable && !mark.is_some_and(|m| m.live(now))).then_some(Dead::Entry)
            }
            Head::Mark(mark) => (!mark.live(now)).then_some(Dead::Mark),
            Head::Newer => None,
            Head::Corrupt => Some(Dead::Entry),
        }
    }

    /// Whether a segment of `generation` under this head may still be needed:
    /// the head names it, the head is being written (a live mark holds the key
    /// while segments go in before the head), or the head replaced that
    /// generation too recently for its replays to be done.
    pub fn keeps_segment(&self, generation: u64, now: u64) -> bool {
        match self {
            Head::Record { segments, stored_at, .. } => {
                segments.is_some_and(|(g, _)| g == generation) || now < stored_at.saturating_add(REPLACED_SEGMENTS_GRACE)
            }
            Head::Mark(mark) => mark.live(now),
            Head::Newer => true,
            Head::Corrupt => false,
        }
    }

    /// Whether the marker with `prefix` (`key::tag_prefix`) names a tag of this head.
    pub fn carries_tag(&self, prefix: &str) -> bool {
        match self {
            Head::Record { tags, .. } => tags.iter().any(|t| key::tag_prefix(t) == prefix),
            Head::Mark(_) | Head::Corrupt => false,
            Head::Newer => true,
        }
    }
}

/// A tag marker judged from its value alone: `Some(true)` live (its entry's
/// last usable moment is still ahead), `None` when its entry must be read.
pub fn tag_marker_live(value: &[u8], now: u64) -> Option<bool> {
    tags::marker_until(value).filter(|until| now < *until).map(|_| true)
}

/// A tag marker judged by its entry's head (`None`: no head under the key).
pub fn tag_marker_verdict(marker_key: &str, head: Option<&Head>, now: u64) -> Option<Dead> {
    let Some(head) = head else { return Some(Dead::TagMarker) };
    let prefix = key::tag_prefix_of_marker(marker_key).unwrap_or_default();
    // A fetch under way (a live mark alone) writes its markers before its head.
    let live = head.dead(now).is_none() && (head.carries_tag(prefix) || matches!(head, Head::Mark(_)));
    (!live).then_some(Dead::TagMarker)
}

/// A segment judged by its head (`None`: no head under the entry's key).
pub fn segment_verdict(generation: u64, head: Option<&Head>, now: u64) -> Option<Dead> {
    let keep = head.is_some_and(|h| h.dead(now).is_none() && h.keeps_segment(generation, now));
    (!keep).then_some(Dead::Segment)
}

/// A persisted query's marker value: `q:` and when it was written (Unix
/// seconds). Markers written before carry `query` alone.
pub fn persisted_marker_value(now: u64) -> Vec<u8> {
    format!("q:{now}").into_bytes()
}

/// Whether a persisted query's marker is older than `max_age` seconds. One
/// without a time (written before markers had one) counts as old: losing it
/// costs one more unstored answer until the document is sent again.
pub fn persisted_marker_dead(value: &[u8], now: u64, max_age: u64) -> Option<Dead> {
    let written = value
        .strip_prefix(b"q:")
        .and_then(|rest| std::str::from_utf8(rest.split(|b| *b == b':').next()?).ok()?.parse::<u64>().ok());
    let young = written.is_some_and(|at| now < at.saturating_add(max_age));
    (!young).then_some(Dead::PersistedMarker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::{persisted_marker_key, segment_key, tag_marker_key, tag_prefix};
    use crate::cache::record::{RecordBuilder, StaleWindows};

    const NOW: u64 = 1_700_000_000;
    const ENTRY: &str = "post-cache:v3:2f2fc8f94e7370f580da6daba5a31d3c:725a3e8448f6dcac:c7827273a98be7be093e63ed963a5ca5877dc02b0967ba3838ca528d2d802aca";

    fn meta(fresh_for: u64, swr: u32, sie: u32, forbidden: bool) -> RecordMeta {
        RecordMeta {
            stored_at: NOW,
            fresh_until: NOW + fresh_for,
            stale: StaleWindows { while_revalidate: swr, if_error: sie, forbidden },
            initial_age: 0,
            status: 200,
            request_digest: [0; 32],
            vary_digest: [0; 32],
            vary: Vec::new(),
        }
    }

    fn record(m: &RecordMeta, headers: &[(&str, &str)]) -> Vec<u8> {
        let headers: Vec<(String, Vec<u8>)> = headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        let mut b = RecordBuilder::new(m, &headers, 2, 1 << 20).unwrap();
        assert!(b.push_body(b"{}"));
        b.finish(&[]).0
    }

    #[test]
    fn keys_are_told_apart_by_their_shape() {
        assert_eq!(kind(ENTRY), Kind::Entry);
        assert_eq!(kind(&segment_key(ENTRY, 7, 3)), Kind::Segment { entry: ENTRY, generation: 7 });
        assert_eq!(kind(&tag_marker_key("a", ENTRY).unwrap()), Kind::TagMarker { entry: ENTRY.into() });
        assert_eq!(kind(&persisted_marker_key(&[1; 32])), Kind::PersistedMarker);
        assert_eq!(kind(&key::tag_index_key("a")), Kind::Index);
        assert_eq!(kind(&key::uri_index_key("h", "/p")), Kind::Index);
        for earlier in ["post-cache:v1:abc", "post-cache:v2:0e4a5f7d60727eb51504d7fa796aa33f:3eb1722f977c48fa:f7"] {
            assert_eq!(kind(earlier), Kind::Earlier, "{earlier}");
        }
        for other in ["someone-else", "post-cache:v3:tag:zz", "post-cache:v9:x", "post-cache:v3:ix:t:zz"] {
            assert_eq!(kind(other), Kind::Other, "{other}");
        }
    }

    #[test]
    fn a_record_lives_through_its_freshness_and_its_longest_stale_window() {
        assert_eq!(last_usable(&meta(60, 30, 600, false)), NOW + 660);
        assert_eq!(last_usable(&meta(60, 30, 600, true)), NOW + 60, "must-revalidate: never stale");
        let head = Head::read(&record(&meta(60, 30, 0, false), &[]));
        assert_eq!(head.dead(NOW + 89), None);
        assert_eq!(head.dead(NOW + 90), Some(Dead::Entry));
        assert_eq!(Head::read(b"garbage").dead(NOW), Some(Dead::Entry));
    }

    #[test]
    fn a_dead_record_being_refetched_is_left_to_its_fetch() {
        let bytes = record(&meta(0, 0, 0, false), &[]);
        let marked = record::with_mark(&bytes, Some(Mark { until: NOW + 5, token: 1 })).unwrap();
        assert_eq!(Head::read(&marked).dead(NOW), None);
        assert_eq!(Head::read(&marked).dead(NOW + 5), Some(Dead::Entry));
    }

    #[test]
    fn marks_alone_die_when_they_expire_or_claim_too_much() {
        let mark = |until| Head::read(&Mark { until, token: 9 }.encode());
        assert_eq!(mark(NOW + 1).dead(NOW), None);
        assert_eq!(mark(NOW).dead(NOW), Some(Dead::Mark));
        assert_eq!(mark(NOW + 100_000).dead(NOW), Some(Dead::Mark), "a skewed or corrupt mark");
    }

    #[test]
    fn a_record_of_a_later_version_is_left_to_the_build_that_wrote_it() {
        let mut bytes = record(&meta(0, 0, 0, false), &[]);
        bytes[3] = RECORD_VERSION + 1;
        assert_eq!(Head::read(&bytes), Head::Newer);
        assert_eq!(Head::read(&bytes).dead(NOW + 1_000_000), None);
    }

    #[test]
    fn segments_live_only_under_a_live_head_of_their_generation() {
        let head = Head::Record { last_usable: NOW + 60, stored_at: NOW - 100, mark: None, segments: Some((7, 2)), tags: vec![] };
        assert_eq!(segment_verdict(7, Some(&head), NOW), None);
        assert_eq!(segment_verdict(8, Some(&head), NOW), Some(Dead::Segment), "another generation");
        assert_eq!(segment_verdict(7, None, NOW), Some(Dead::Segment), "no head");
        assert_eq!(segment_verdict(7, Some(&head), NOW + 60), Some(Dead::Segment), "a dead head");
        let replaced_now = Head::Record { last_usable: NOW + 60, stored_at: NOW - 1, mark: None, segments: Some((7, 2)), tags: vec![] };
        assert_eq!(segment_verdict(8, Some(&replaced_now), NOW), None, "a replay may still read the replaced generation");
        let writing = Head::Mark(Mark { until: NOW + 5, token: 1 });
        assert_eq!(segment_verdict(8, Some(&writing), NOW), None, "written before their head");
    }

    #[test]
    fn a_tag_marker_is_judged_by_its_value_then_by_its_entry() {
        assert_eq!(tag_marker_live(&tags::marker_value(NOW + 1), NOW), Some(true));
        assert_eq!(tag_marker_live(&tags::marker_value(NOW), NOW), None);
        assert_eq!(tag_marker_live(b"t", NOW), None, "a marker from before values carried a time");
        let marker = tag_marker_key("shop", ENTRY).unwrap();
        let bytes = record(&meta(60, 0, 0, false), &[("surrogate-key", "shop other")]);
        let head = Head::read(&bytes);
        assert_eq!(tag_marker_verdict(&marker, Some(&head), NOW), None);
        assert_eq!(tag_marker_verdict(&marker, Some(&head), NOW + 60), Some(Dead::TagMarker), "its entry is dead");
        assert_eq!(tag_marker_verdict(&marker, None, NOW), Some(Dead::TagMarker), "its entry is gone");
        let retagged = Head::read(&record(&meta(60, 0, 0, false), &[("cache-tag", "other")]));
        assert_eq!(tag_marker_verdict(&marker, Some(&retagged), NOW), Some(Dead::TagMarker), "no longer tagged so");
        assert!(head.carries_tag(&tag_prefix("other")));
    }

    #[test]
    fn persisted_query_markers_age_out_after_the_bound() {
        let value = persisted_marker_value(NOW);
        assert_eq!(persisted_marker_dead(&value, NOW + 99, 100), None);
        assert_eq!(persisted_marker_dead(&value, NOW + 100, 100), Some(Dead::PersistedMarker));
        assert_eq!(persisted_marker_dead(b"query", NOW, 100), Some(Dead::PersistedMarker));
    }
}
