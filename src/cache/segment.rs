//! Entries larger than one stored value: the record (the head) keeps the first
//! part of the body and a manifest; the rest lives in body segments under keys
//! derived from the entry's key and a random generation id.
//!
//! The generation keeps writers apart: segments of an older or a concurrent
//! write sit under other keys, so a head only ever names segments written for
//! it. Each segment's digest is in the manifest and is checked before a byte of
//! the segment is sent, so a store that loses, truncates, mixes up or alters a
//! segment costs the entry, never the body's correctness.
//!
//! The digest is XXH3-128, not SHA-256: it guards against accidents (lost
//! writes, evictions, a concurrent writer, bit rot), at a fraction of SHA-256's
//! cost (docs/PERFORMANCE.md). A cryptographic digest would add nothing against a
//! party that can write the store: the manifest sits in the same store.

use std::ops::Range;

/// A segment's XXH3-128, little-endian.
pub type SegmentDigest = [u8; 16];

/// The manifest of a segmented body, stored in the head's `EXT_SEGMENTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Random per write; part of every segment's key.
    pub generation: u64,
    /// The whole body's length: the head's part plus every segment.
    pub total_len: u64,
    /// Every segment but the last is this long.
    pub segment_len: u32,
    /// XXH3-128 of each segment, in order.
    pub digests: Vec<SegmentDigest>,
}

/// Which segments a head names: enough to delete them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSet {
    pub generation: u64,
    pub count: u32,
}

impl Segments {
    /// Checks a manifest against the length of the head's part of the body:
    /// the segments must exactly cover the rest.
    pub fn consistent_with(&self, inline_len: usize) -> bool {
        let Some(rest) = self.total_len.checked_sub(inline_len as u64) else { return false };
        let len = u64::from(self.segment_len);
        !self.digests.is_empty() && len > 0 && rest.div_ceil(len) == self.digests.len() as u64
    }

    /// Where segment `index` sits in the whole body, given the head's part.
    pub fn range(&self, inline_len: usize, index: usize) -> Range<u64> {
        let start = inline_len as u64 + index as u64 * u64::from(self.segment_len);
        start..(start + u64::from(self.segment_len)).min(self.total_len)
    }

    /// Whether `bytes` are segment `index`: its length and its digest.
    pub fn verify(&self, inline_len: usize, index: usize, bytes: &[u8]) -> bool {
        let range = self.range(inline_len, index);
        let Some(expected) = self.digests.get(index) else { return false };
        bytes.len() as u64 == range.end - range.start && digest(bytes) == *expected
    }

    pub fn set(&self) -> SegmentSet {
        SegmentSet { generation: self.generation, count: self.digests.len() as u32 }
    }
}

/// How a body of `body_len` bytes is laid out when the head's fixed part takes
/// `head_len` bytes and the manifest `manifest_len(count)`: the head's part and
/// the segment length. `None` when even an empty part would not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub inline_len: usize,
    pub segment_len: usize,
    pub count: usize,
}

/// Lays out a body too large for one value of `max_value` bytes: every segment
/// is a full value, and the head keeps as much of the body as fits beside its
/// fields and manifest. `extra(count)` is the head's size without body for a
/// manifest of `count` segments.
pub fn layout(body_len: usize, max_value: usize, extra: impl Fn(usize) -> usize) -> Option<Layout> {
    if max_value == 0 {
        return None;
    }
    // More segments than this are never needed: each is a full value.
    let most = body_len.div_ceil(max_value) + 1;
    let fixed = extra(most);
    if fixed > max_value {
        return None;
    }
    let inline_len = (max_value - fixed).min(body_len);
    let count = (body_len - inline_len).div_ceil(max_value);
    Some(Layout { inline_len, segment_len: max_value, count })
}

pub fn digest(bytes: &[u8]) -> SegmentDigest {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(total: u64, segment_len: u32, count: usize) -> Segments {
        Segments { generation: 7, total_len: total, segment_len, digests: vec![[0; 16]; count] }
    }

    #[test]
    fn a_manifest_must_cover_exactly_the_rest_of_the_body() {
        assert!(manifest(250, 100, 2).consistent_with(50));
        assert!(!manifest(250, 100, 3).consistent_with(50), "one segment too many");
        assert!(!manifest(250, 100, 1).consistent_with(50), "one segment too few");
        assert!(!manifest(40, 100, 1).consistent_with(50), "shorter than the head's part");
        assert!(!manifest(250, 0, 2).consistent_with(50), "empty segments");
        assert!(!manifest(50, 100, 0).consistent_with(50), "no segments at all is not segmented");
    }

    #[test]
    fn segment_ranges_follow_the_heads_part_and_the_last_is_short() {
        let m = manifest(250, 100, 2);
        assert_eq!(m.range(50, 0), 50..150);
        assert_eq!(m.range(50, 1), 150..250);
        let m = manifest(260, 100, 3);
        assert_eq!(m.range(50, 2), 250..260);
    }

    #[test]
    fn a_segment_is_verified_by_length_and_digest() {
        let body: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let mut m = manifest(250, 100, 2);
        m.digests = vec![digest(&body[50..150]), digest(&body[150..])];
        assert!(m.verify(50, 0, &body[50..150]));
        assert!(m.verify(50, 1, &body[150..]));
        assert!(!m.verify(50, 1, &body[150..249]), "truncated");
        let mut altered = body[150..].to_vec();
        altered[3] ^= 1;
        assert!(!m.verify(50, 1, &altered), "one bit changed");
        assert!(!m.verify(50, 0, &body[150..]), "another segment");
        assert!(!m.verify(50, 2, &body[150..]), "no such segment");
    }

    #[test]
    fn the_layout_fills_the_head_then_full_values() {
        let extra = |count: usize| 100 + 16 * count;
        let l = layout(3_000, 1_000, extra).unwrap();
        // Up to 4 segments reserved: 100 + 64 = 164 bytes, 836 of body inline.
        assert_eq!(l, Layout { inline_len: 836, segment_len: 1_000, count: 3 });
        assert!(extra(l.count) + l.inline_len <= 1_000);
        assert_eq!(l.inline_len + 2 * 1_000 + 164, 3_000, "the last segment takes the rest");
        assert_eq!(layout(3_000, 100, |_| 101), None, "a head that cannot fit");
        assert_eq!(layout(3_000, 0, extra), None);
    }

    #[test]
    fn every_layout_covers_the_body_and_keeps_each_value_under_the_cap() {
        for body_len in [1usize, 999, 1_000, 1_001, 5_000, 65_537] {
            for max_value in [300usize, 1_000, 4_096] {
                let extra = |count: usize| 200 + 32 * count;
                let Some(l) = layout(body_len, max_value, extra) else { continue };
                assert!(l.inline_len + extra(l.count) <= max_value, "{body_len} {max_value}");
                assert!(l.inline_len + l.count * l.segment_len >= body_len);
                assert!(l.count == 0 || l.inline_len + (l.count - 1) * l.segment_len < body_len);
            }
        }
    }
}
