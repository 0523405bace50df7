//! Conditional requests (RFC 9110 §13): the validators a stale record sends to
//! the origin, the header update a `304` brings (RFC 9111 §3.2, §4.3.4), and the
//! client's own `If-None-Match` / `If-Modified-Since` evaluated on a hit.

use crate::http::headers::{values, HeaderList};
use crate::http::date::parse as parse_http_date;

/// Methods whose conditionals mean "answer 304 if unchanged". RFC 9110 §13.1.2
/// (If-None-Match): "the origin server MUST respond with either a) the 304 (Not
/// Modified) status code if the request method is GET or HEAD or b) the 412
/// (Precondition Failed) status code for all other request methods" — and a 412
/// to a POST says the method was not performed, not that a stored answer is
/// current. QUERY is safe and idempotent and its draft gives it GET's
/// conditional semantics.
pub fn revalidates(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "QUERY")
}

/// Request fields that make a request conditional.
pub const REQUEST_CONDITIONALS: [&str; 5] =
    ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"];

/// Whether a request's preconditions are ones this cache cannot answer from a
/// record: `If-Match`, `If-Unmodified-Since`, `If-Range` on any method, and any
/// conditional on a method that does not revalidate (a POST).
pub fn must_forward(method: &str, headers: &[(String, Vec<u8>)]) -> bool {
    let present = |name: &str| !values(headers, name).is_empty();
    ["if-match", "if-unmodified-since", "if-range"].iter().any(|n| present(n))
        || (!revalidates(method) && (present("if-none-match") || present("if-modified-since")))
}

/// RFC 9111 §4.3.1: "When generating a conditional request for validation, a
/// cache ... MUST send the relevant entity tags (using If-Match, If-None-Match,
/// or If-Range) if the entity tags were provided in the stored response(s) being
/// validated" and "SHOULD send the Last-Modified value (using If-Modified-Since)
/// if the request is not for a subrange, a single stored response is being
/// validated, and that response contains a Last-Modified value."
pub fn validators(stored: &[(&str, &[u8])]) -> HeaderList {
    let mut out = HeaderList::new();
    if let Some(etag) = first(stored, "etag") {
        out.push(("if-none-match".into(), etag.to_vec()));
    }
    if let Some(modified) = first(stored, "last-modified") {
        out.push(("if-modified-since".into(), modified.to_vec()));
    }
    out
}

/// The stored headers updated by a `304`. RFC 9111 §3.2: the cache "MUST add each
/// header field in the provided response to the stored response, replacing field
/// values that are already present, with the following exceptions: Header fields
/// excepted from storage in Section 3.1, ... The Content-Length header field."
/// `Set-Cookie` is also kept out (a shared cache never stores it), and so are
/// `Content-Encoding` and `Content-Type`, as §3.2 allows "to assure integrity of
/// the stored response": the stored body is the one they describe. `excluded`
/// names further lower-case fields the caller never stores (hop-by-hop, `Age`,
/// targeted fields).
pub fn updated_headers(stored: &[(&str, &[u8])], not_modified: &[(String, Vec<u8>)], excluded: &[&str]) -> HeaderList {
    const KEPT: [&str; 4] = ["content-length", "set-cookie", "content-encoding", "content-type"];
    let updates: Vec<&(String, Vec<u8>)> = not_modified
        .iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            !KEPT.contains(&lower.as_str()) && !excluded.contains(&lower.as_str())
        })
        .collect();
    let replaced = |name: &str| updates.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out: HeaderList =
        stored.iter().filter(|(n, _)| !replaced(n)).map(|(n, v)| (n.to_string(), v.to_vec())).collect();
    out.extend(updates.into_iter().cloned());
    out
}

/// Whether a record answers the client's conditional with `304 Not Modified`
/// (only for methods that revalidate; others never get here).
///
/// RFC 9110 §13.2.2: If-None-Match is evaluated first; "When If-None-Match is
/// not present" If-Modified-Since is (for GET and HEAD).
pub fn not_modified(request: &[(String, Vec<u8>)], stored: &[(&str, &[u8])]) -> bool {
    let inm = values(request, "if-none-match");
    if !inm.is_empty() {
        let Some(etag) = first(stored, "etag") else { return false };
        // §13.1.2: "If the field value is "*", the condition is false if the origin
        // server has a current representation for the target resource"; otherwise
        // "the condition is false if any of the listed tags matches the entity tag
        // of the selected representation" using the weak comparison.
        return inm.iter().flat_map(|line| entity_tags(line)).any(|tag| tag == b"*" || weak_match(tag, etag));
    }
    let (Some(since), Some(modified)) = (
        values(request, "if-modified-since").first().and_then(|v| parse_http_date(v)),
        first(stored, "last-modified").and_then(parse_http_date),
    ) else {
        return false;
    };
    // §13.1.3: "false if the selected representation's last modification date is
    // earlier or equal to the date provided in the field value".
    modified <= since
}

/// RFC 9110 §15.4.5: "The server generating a 304 response MUST generate any of
/// the following header fields that would have been sent in a 200 (OK) response
/// to the same request: Content-Location, Date, ETag, and Vary; Cache-Control and
/// Expires". Last-Modified is added when there is no ETag, as "metadata ... for
/// the purpose of guiding cache updates".
pub fn not_modified_headers(stored: &[(&str, &[u8])]) -> HeaderList {
    let has_etag = first(stored, "etag").is_some();
    stored
        .iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            matches!(lower.as_str(), "content-location" | "date" | "etag" | "vary" | "cache-control" | "expires")
                || (!has_etag && lower == "last-modified")
        })
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

fn first<'a>(stored: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    stored.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// The entity tags of one `If-None-Match` line: `*` or comma-separated tags, whose
/// quoted parts may themselves contain commas.
fn entity_tags(line: &[u8]) -> Vec<&[u8]> {
    let mut tags = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                tags.push(trim(&line[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    tags.push(trim(&line[start..]));
    tags.retain(|t| !t.is_empty());
    tags
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// RFC 9110 §8.8.3.2: "Weak comparison: two entity tags are equivalent if their
/// opaque-tags match character-by-character, regardless of either or both being
/// tagged as "weak"."
pub fn weak_match(a: &[u8], b: &[u8]) -> bool {
    let opaque = |t: &[u8]| -> Vec<u8> { trim(t).strip_prefix(b"W/").unwrap_or(trim(t)).to_vec() };
    let (a, b) = (opaque(a), opaque(b));
    a.len() >= 2 && a.starts_with(b"\"") && a.ends_with(b"\"") && a == b
}

/// RFC 9110 §8.8.3.2: "Strong comparison: two entity tags are equivalent if both
/// are not weak and their opaque-tags match character-by-character."
pub fn strong_match(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (trim(a), trim(b));
    !a.starts_with(b"W/") && !b.starts_with(b"W/") && weak_match(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn view(list: &HeaderList) -> Vec<(&str, &[u8])> {
        list.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect()
    }

    #[test]
    fn weak_and_strong_comparison_follow_the_rfc_table() {
        // RFC 9110 §8.8.3.2, the example table.
        assert!(!strong_match(b"W/\"1\"", b"W/\"1\"") && weak_match(b"W/\"1\"", b"W/\"1\""));
        assert!(!strong_match(b"W/\"1\"", b"W/\"2\"") && !weak_match(b"W/\"1\"", b"W/\"2\""));
        assert!(!strong_match(b"W/\"1\"", b"\"1\"") && weak_match(b"W/\"1\"", b"\"1\""));
        assert!(strong_match(b"\"1\"", b"\"1\"") && weak_match(b"\"1\"", b"\"1\""));
        assert!(!weak_match(b"1", b"1"), "an unquoted tag is no entity tag");
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_star() {
        let stored_list = h(&[("etag", "\"v1\"")]);
        let stored = view(&stored_list);
        assert!(not_modified(&h(&[("if-none-match", "W/\"v1\"")]), &stored));
        assert!(not_modified(&h(&[("if-none-match", "\"x\", \"v1\"")]), &stored));
        assert!(not_modified(&h(&[("if-none-match", "\"x\""), ("if-none-match", "\"v1\"")]), &stored));
        assert!(not_modified(&h(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(&h(&[("if-none-match", "\"v2\"")]), &stored));
        assert!(!not_modified(&h(&[("if-none-match", "\"a,b\"")]), &view(&h(&[("etag", "\"a\"")]))));
        assert!(!not_modified(&h(&[("if-none-match", "\"v1\"")]), &[]), "no ETag, no match");
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        let stored_list = h(&[("etag", "\"v1\""), ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        let stored = view(&stored_list);
        let later = ("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT");
        let earlier = ("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT");
        let same = ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified(&h(&[later]), &stored));
        assert!(not_modified(&h(&[same]), &stored));
        assert!(!not_modified(&h(&[earlier]), &stored));
        assert!(!not_modified(&h(&[("if-none-match", "\"v2\""), later]), &stored), "If-None-Match decides");
        assert!(!not_modified(&h(&[("if-modified-since", "yesterday")]), &stored));
    }

    #[test]
    fn validators_come_from_the_stored_etag_and_last_modified() {
        let stored_list = h(&[("etag", "W/\"7\""), ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(
            validators(&view(&stored_list)),
            h(&[("if-none-match", "W/\"7\""), ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")])
        );
        assert!(validators(&[]).is_empty());
    }

    #[test]
    fn a_304_replaces_stored_fields_but_never_length_cookies_or_encoding() {
        let stored_list = h(&[
            ("content-type", "application/json"),
            ("cache-control", "max-age=60"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("etag", "\"1\""),
            ("content-encoding", "gzip"),
        ]);
        let answer = h(&[
            ("cache-control", "max-age=120"),
            ("content-length", "0"),
            ("set-cookie", "sid=1"),
            ("x-multi", "c"),
            ("content-encoding", "br"),
            ("content-type", "text/plain"),
            ("connection", "close"),
            ("x-new", "1"),
        ]);
        let updated = updated_headers(&view(&stored_list), &answer, &["connection"]);
        assert_eq!(
            updated,
            h(&[
                ("content-type", "application/json"),
                ("etag", "\"1\""),
                ("content-encoding", "gzip"),
                ("cache-control", "max-age=120"),
                ("x-multi", "c"),
                ("x-new", "1"),
            ])
        );
    }

    #[test]
    fn a_304_to_the_client_carries_only_the_listed_fields() {
        let stored_list = h(&[
            ("content-type", "application/json"),
            ("etag", "\"1\""),
            ("cache-control", "max-age=60"),
            ("vary", "accept"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let head = not_modified_headers(&view(&stored_list));
        assert_eq!(head, h(&[("etag", "\"1\""), ("cache-control", "max-age=60"), ("vary", "accept")]));
        let without_etag = h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(not_modified_headers(&view(&without_etag)), without_etag);
    }

    #[test]
    fn conditionals_a_cache_cannot_answer_are_forwarded() {
        assert!(must_forward("POST", &h(&[("if-none-match", "\"1\"")])));
        assert!(must_forward("POST", &h(&[("if-modified-since", "x")])));
        assert!(must_forward("QUERY", &h(&[("if-match", "\"1\"")])));
        assert!(must_forward("GET", &h(&[("if-unmodified-since", "x")])));
        assert!(!must_forward("QUERY", &h(&[("if-none-match", "\"1\"")])));
        assert!(!must_forward("POST", &h(&[])));
    }
}
