//! The admin API's readers: any purge body is a request or a 400 naming a
//! field, never a panic; any tag header gives at most 128 tags of at most 128
//! visible-ASCII bytes; an Authorization value is accepted exactly when it is
//! `Bearer` (any case), a space, and the token (RFC 6750 §2.1), with optional
//! whitespace around the token — not when it merely contains the token.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::admin::{authorize, purge};
use post_cache::cache::tags::{parse_tags, MAX_TAGS, MAX_TAG_BYTES};

const FIELDS: [&str; 11] = [
    "body", "url", "tags", "all", "host", "soft", "continue", "request", "request.method", "request.path", "request.query",
];

fuzz_target!(|data: &[u8]| {
    match purge::parse(data) {
        Ok(_) => {}
        Err(e) => assert!(
            FIELDS.contains(&e.field) || e.field.starts_with("request."),
            "unexpected field {:?}",
            e.field
        ),
    }
    let tags = parse_tags(&[("surrogate-key".into(), data.to_vec()), ("cache-tag".into(), data.to_vec())]);
    assert!(tags.tags.len() <= MAX_TAGS);
    assert!(tags.tags.iter().all(|t| !t.is_empty() && t.len() <= MAX_TAG_BYTES && t.bytes().all(|b| b.is_ascii_graphic())));
    let token = "fuzz-token-0123456789abcdef";
    let accepted = authorize(&[("authorization".into(), data.to_vec())], token).is_ok();
    let exact = data.len() >= 7 && data[..7].eq_ignore_ascii_case(b"bearer ") && data[7..].trim_ascii() == token.as_bytes();
    assert_eq!(accepted, exact, "{:?}", String::from_utf8_lossy(data));
    // The fuzzer rarely finds the token itself: the exact value, and near misses.
    let mut framed = b"Bearer ".to_vec();
    framed.extend_from_slice(token.as_bytes());
    framed.extend_from_slice(data);
    let accepted = authorize(&[("authorization".into(), framed.clone())], token).is_ok();
    assert_eq!(accepted, data.trim_ascii().is_empty(), "{:?}", String::from_utf8_lossy(&framed));
});
