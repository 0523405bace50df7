//! The "being fetched" mark: how one request tells the others sharing a store
//! without locks or atomics that it is already asking the origin for a key.
//!
//! A mark sits inside a stored record (a stale entry being refreshed) or, for a
//! key with nothing stored, alone under the key. It names its writer by a random
//! token, so a writer can read the key back and learn whether its mark won, and
//! it expires, so a writer that dies never wedges the key.

use super::checksum::checksum;

const MAGIC: &[u8; 4] = b"PCM\x01";
const ENCODED_LEN: usize = 4 + 8 + 8 + 8;

/// The longest a mark may claim, seconds: a mark further in the future than
/// this (a skewed clock, a corrupt value) counts as no mark.
pub const MAX_MARK_SECONDS: u64 = 600;

/// One writer's claim on a key until `until` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub until: u64,
    pub token: u64,
}

impl Mark {
    /// Whether the mark still holds at `now`.
    pub fn live(&self, now: u64) -> bool {
        now < self.until && self.until <= now.saturating_add(MAX_MARK_SECONDS)
    }

    /// A mark alone under a key: magic, until, token, checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ENCODED_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.until.to_le_bytes());
        bytes.extend_from_slice(&self.token.to_le_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }

    /// A mark stored alone, or `None` for anything else (a record, a corrupt value).
    pub fn decode(bytes: &[u8]) -> Option<Mark> {
        if bytes.len() != ENCODED_LEN || &bytes[..4] != MAGIC {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if checksum(&bytes[..20]) != word(20) {
            return None;
        }
        Some(Mark { until: word(4), token: word(12) })
    }
}

/// What a request that must go to the origin does about other requests for the
/// same key (the caller writes and confirms marks; this only decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collapse {
    /// Fetch without a mark: collapsing is off, or the stored state does not
    /// allow it (a record that cannot carry a mark, another variant's record).
    Alone,
    /// Write a mark, read the key back, and fetch if the mark is still ours;
    /// otherwise [`Collapse::Wait`].
    Lead,
    /// Another request holds a live mark: poll the key with backoff until a
    /// usable entry lands (answer it, `collapsed`), the mark is gone, or the wait
    /// cap passes; then fetch without a mark.
    Wait,
}

/// Decides from the mark found under the key (alone or in its record).
pub fn decide_collapse(enabled: bool, markable: bool, found: Option<Mark>, now: u64) -> Collapse {
    match found {
        _ if !enabled => Collapse::Alone,
        Some(mark) if mark.live(now) => Collapse::Wait,
        _ if markable => Collapse::Lead,
        _ => Collapse::Alone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_mark_alone_round_trips_and_anything_else_is_no_mark() {
        let mark = Mark { until: NOW + 5, token: 0x0123_4567_89ab_cdef };
        let bytes = mark.encode();
        assert_eq!(Mark::decode(&bytes), Some(mark));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 4;
            assert_eq!(Mark::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(Mark::decode(&bytes[..27]), None);
        assert_eq!(Mark::decode(b"PCR\x03 a record"), None);
    }

    #[test]
    fn a_mark_expires_and_one_too_far_ahead_never_held() {
        let mark = Mark { until: NOW + 5, token: 1 };
        assert!(mark.live(NOW) && mark.live(NOW + 4));
        assert!(!mark.live(NOW + 5));
        let wedging = Mark { until: NOW + MAX_MARK_SECONDS + 1, token: 1 };
        assert!(!wedging.live(NOW), "a corrupt or skewed mark must not hold a key");
    }

    #[test]
    fn collapse_decisions() {
        let live = Some(Mark { until: NOW + 5, token: 1 });
        let expired = Some(Mark { until: NOW, token: 1 });
        assert_eq!(decide_collapse(false, true, live, NOW), Collapse::Alone);
        assert_eq!(decide_collapse(true, true, live, NOW), Collapse::Wait);
        assert_eq!(decide_collapse(true, false, live, NOW), Collapse::Wait);
        assert_eq!(decide_collapse(true, true, expired, NOW), Collapse::Lead);
        assert_eq!(decide_collapse(true, true, None, NOW), Collapse::Lead);
        assert_eq!(decide_collapse(true, false, None, NOW), Collapse::Alone);
    }
}
