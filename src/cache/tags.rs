//! Cache tags (surrogate keys): what an origin names an answer by, so it can be
//! purged by name. Read from `Surrogate-Key` (space-separated, Fastly) and
//! `Cache-Tag` (comma-separated, Akamai and Cloudflare); capped like Akamai's
//! 128 tags of at most 128 bytes each.

use crate::http::headers::values;

pub const TAG_FIELDS: [&str; 2] = ["surrogate-key", "cache-tag"];
pub const MAX_TAGS: usize = 128;
pub const MAX_TAG_BYTES: usize = 128;

/// The tags of a response, and how many were left out by the caps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// Distinct tags in order of first appearance.
    pub tags: Vec<String>,
    /// Tags over [`MAX_TAG_BYTES`], not visible ASCII, or past [`MAX_TAGS`].
    pub dropped: usize,
}

/// Reads the tags of a response's header fields. A tag is a run of visible
/// ASCII without spaces or commas; anything else splits or drops it.
pub fn parse_tags(headers: &[(String, Vec<u8>)]) -> Tags {
    let mut out = Tags::default();
    for name in TAG_FIELDS {
        for line in values(headers, name) {
            for raw in line.split(|b| *b == b' ' || *b == b',' || *b == b'\t') {
                if raw.is_empty() {
                    continue;
                }
                let valid = raw.len() <= MAX_TAG_BYTES && raw.iter().all(|b| b.is_ascii_graphic());
                let tag = String::from_utf8_lossy(raw);
                if !valid || (out.tags.len() == MAX_TAGS && !out.tags.iter().any(|t| *t == tag)) {
                    out.dropped += 1;
                } else if !out.tags.iter().any(|t| *t == tag) {
                    out.tags.push(tag.into_owned());
                }
            }
        }
    }
    out
}

/// A tag marker's value: `t:` and the last moment (Unix seconds) its entry
/// could be served when the marker was written, so a sweep can tell a live
/// marker from the marker alone, without reading the entry. Markers written
/// before carry `t` alone. Whatever follows a further `:` is left for later
/// fields and ignored.
pub fn marker_value(last_usable: u64) -> Vec<u8> {
    format!("t:{last_usable}").into_bytes()
}

/// The last usable moment a marker's value carries; `None` for a marker
/// without one (`t`, or a value this build does not read): its entry must be
/// read to judge it.
pub fn marker_until(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(b"t:")?;
    let digits = rest.split(|b| *b == b':').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn both_fields_are_read_split_on_spaces_and_commas_and_deduplicated() {
        let tags = parse_tags(&h(&[("Surrogate-Key", "a  b\tc"), ("cache-tag", "b,d, e"), ("surrogate-key", "f")]));
        assert_eq!(tags.tags, ["a", "b", "c", "f", "d", "e"]);
        assert_eq!(tags.dropped, 0);
        assert_eq!(parse_tags(&h(&[("x-tag", "a")])), Tags::default());
    }

    #[test]
    fn tags_past_the_caps_are_dropped_and_counted() {
        let long = "x".repeat(MAX_TAG_BYTES + 1);
        let exact = "y".repeat(MAX_TAG_BYTES);
        let tags = parse_tags(&h(&[("cache-tag", &format!("{long},{exact},caf\u{e9}"))]));
        assert_eq!((tags.tags, tags.dropped), (vec![exact], 2));
        let many: Vec<String> = (0..MAX_TAGS + 5).map(|i| format!("t{i}")).collect();
        let tags = parse_tags(&h(&[("surrogate-key", &many.join(" ")), ("cache-tag", "t0")]));
        assert_eq!(tags.tags.len(), MAX_TAGS);
        assert_eq!(tags.dropped, 5, "a repeat of a kept tag is not dropped");
    }

    #[test]
    fn a_marker_value_carries_its_entry_s_last_usable_moment() {
        assert_eq!(marker_until(&marker_value(1_700_000_123)), Some(1_700_000_123));
        assert_eq!(marker_until(b"t:5:later-field"), Some(5));
        for unknown in [&b"t"[..], b"", b"t:", b"t:x", b"u:5", b"t:-1"] {
            assert_eq!(marker_until(unknown), None, "{:?}", String::from_utf8_lossy(unknown));
        }
    }
}
