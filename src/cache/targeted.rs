//! Targeted cache control (RFC 9213): `CDN-Cache-Control`, and a field of this
//! cache's own (`targeted_cache_control`, default `Post-Cache-Control`), speak to
//! this cache over `Cache-Control`, which stays for browsers.

use super::cache_control::CacheControl;
use crate::http::headers::values;

/// The standard targeted field every CDN recognises.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The directives that govern this cache's storage and freshness decisions for one
/// response, and whether `Expires` still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governing {
    pub cc: CacheControl,
    /// `false` when a targeted field governs: RFC 9213 §2.2 ignores `Expires` then.
    pub expires_applies: bool,
}

/// Picks the governing directives. `own` is the lower-case name of this cache's
/// own targeted field ("" for none), first in the target list.
///
/// RFC 9213 §2.2: "the cache MUST select the first (in target list order) field
/// with a valid, non-empty value and use its value to determine the caching
/// policy for the response, and MUST ignore the Cache-Control and Expires header
/// fields in that response, unless no valid, non-empty value is available from
/// the listed header fields."
pub fn governing(headers: &[(String, Vec<u8>)], own: &str) -> Governing {
    for name in [own, CDN_CACHE_CONTROL] {
        if name.is_empty() {
            continue;
        }
        let lines = values(headers, name);
        if !lines.is_empty() && lines.iter().all(|line| valid_dictionary(line)) {
            return Governing { cc: CacheControl::parse(&lines), expires_applies: false };
        }
    }
    Governing { cc: CacheControl::parse(&values(headers, "cache-control")), expires_applies: true }
}

/// Whether a response field is a targeted field meant for this cache (and other
/// CDNs), which is neither stored nor relayed to the client.
pub fn is_targeted(name: &str, own: &str) -> bool {
    name.eq_ignore_ascii_case(CDN_CACHE_CONTROL) || (!own.is_empty() && name.eq_ignore_ascii_case(own))
}

/// RFC 9213 §2.1: targeted fields are Dictionary Structured Fields (RFC 8941
/// §3.2); "If a targeted field in a given response is empty, or a parsing error is
/// encountered, that field SHOULD be ignored by the cache". This checks the
/// Dictionary's shape — lower-case keys, bare items, parameters — without
/// building it: the directives themselves are read by [`CacheControl::parse`].
pub fn valid_dictionary(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else { return false };
    if text.trim().is_empty() {
        return false;
    }
    split_outside_quotes(text, ',').iter().all(|member| {
        let member = member.trim_matches([' ', '\t']);
        !member.is_empty()
            && split_outside_quotes(member, ';').iter().enumerate().all(|(i, part)| {
                // Parameters may be preceded by spaces; the member itself may not.
                let part = if i == 0 { *part } else { part.trim_start_matches(' ') };
                match part.split_once('=') {
                    Some((key, item)) if i == 0 && DELTA_DIRECTIVES.contains(&key) => valid_key(key) && is_integer(item),
                    Some((key, item)) => valid_key(key) && valid_bare_item(item),
                    None => valid_key(part),
                }
            })
    })
}

/// The directives whose value RFC 9111 §5.2 defines as delta-seconds, which a
/// targeted field carries as Integers. RFC 9213 §2.1: "Implementations SHOULD
/// NOT consume values that violate these inferred constraints." A quoted
/// `max-age="60"` is a String: the whole field is then ignored, as when it
/// does not parse, so the field it was meant to override (`Cache-Control:
/// no-store`, say) governs again rather than nothing.
const DELTA_DIRECTIVES: [&str; 4] = ["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"];

/// RFC 8941 §3.3.1: `sf-integer = ["-"] 1*15DIGIT`.
fn is_integer(item: &str) -> bool {
    let digits = item.strip_prefix('-').unwrap_or(item);
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// RFC 8941 §3.1.2: `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'*'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'))
}

/// RFC 8941 §3.3: integer, decimal, string, token, byte sequence or boolean.
fn valid_bare_item(item: &str) -> bool {
    let bytes = item.as_bytes();
    match bytes.first() {
        Some(b'-' | b'0'..=b'9') => {
            let digits = item.strip_prefix('-').unwrap_or(item);
            match digits.split_once('.') {
                None => (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
                Some((int, frac)) => {
                    (1..=12).contains(&int.len())
                        && (1..=3).contains(&frac.len())
                        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
                }
            }
        }
        Some(b'"') => {
            let inner = &bytes[1..];
            let mut escaped = false;
            for (i, &b) in inner.iter().enumerate() {
                match b {
                    _ if escaped => {
                        if b != b'"' && b != b'\\' {
                            return false;
                        }
                        escaped = false;
                    }
                    b'\\' => escaped = true,
                    b'"' => return i == inner.len() - 1,
                    0x20..=0x7e => {}
                    _ => return false,
                }
            }
            false
        }
        Some(b'?') => item == "?0" || item == "?1",
        Some(b':') => {
            item.len() >= 2
                && item.ends_with(':')
                && item[1..item.len() - 1].bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        }
        Some(b) if b.is_ascii_alphabetic() || *b == b'*' => {
            bytes[1..].iter().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(b))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    const OWN: &str = "post-cache-control";

    #[test]
    fn cdn_cache_control_takes_precedence_over_cache_control_and_expires() {
        let headers = h(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=600"), ("expires", "0")]);
        let g = governing(&headers, OWN);
        assert_eq!(g.cc.max_age, Some(600));
        assert!(!g.cc.no_store, "Cache-Control is for browsers only");
        assert!(!g.expires_applies);
    }

    #[test]
    fn the_own_targeted_field_takes_precedence_over_cdn_cache_control() {
        let headers = h(&[("cdn-cache-control", "max-age=600"), ("Post-Cache-Control", "max-age=5, stale-if-error=60")]);
        let g = governing(&headers, OWN);
        assert_eq!((g.cc.max_age, g.cc.stale_if_error), (Some(5), Some(60)));
        // Switched off, the own field is just another header.
        assert_eq!(governing(&headers, "").cc.max_age, Some(600));
    }

    #[test]
    fn an_invalid_or_empty_targeted_field_is_ignored() {
        for bad in ["", "   ", "Max-Age=60", "max-age=60,", "max-age=\"60", "max-age=1.2345", "max-age=@", "max-age=\"60\"", "s-maxage=6.0", "max-age=tok"] {
            let headers = h(&[("cache-control", "max-age=7"), ("cdn-cache-control", bad)]);
            let g = governing(&headers, OWN);
            assert_eq!(g.cc.max_age, Some(7), "{bad:?} should be ignored");
            assert!(g.expires_applies);
        }
    }

    #[test]
    fn structured_dictionaries_that_are_valid() {
        for good in ["max-age=60", "no-store", "max-age=60, must-revalidate", "private=\"a, b\"", "x;p=1, y=?1", "a=:YWJj:", "t=tok/en", "n=-1.5"] {
            assert!(valid_dictionary(good.as_bytes()), "{good:?}");
        }
    }

    #[test]
    fn targeted_fields_are_recognised_by_name() {
        assert!(is_targeted("CDN-Cache-Control", OWN));
        assert!(is_targeted("Post-Cache-Control", OWN));
        assert!(!is_targeted("Post-Cache-Control", ""));
        assert!(!is_targeted("cache-control", OWN));
    }
}
