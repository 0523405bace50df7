//! Cache key derivation: one versioned function over length-prefixed fields.
//!
//! Changing what goes into the key, or how, must bump [`KEY_SCHEME`]: the golden
//! digest test below fails loudly otherwise, and old entries become unreachable
//! instead of being served for the wrong request.
//!
//! Scheme 3 lays keys out as `post-cache:v3:<uri>:<query>:<entry>`: every entry
//! of one host and path shares the `<uri>` prefix (32 hex), and of one query the
//! `<query>` part (16 hex), so a store's key listing finds them for purging. The
//! `<entry>` digest (64 hex) covers everything, the body format included.
//! Scheme 3 is scheme 2 with an index per tag and per URL (`cache::index`)
//! written before every entry: an entry of scheme 2 has none, so a purge
//! reading indexes would miss it. The sweep deletes earlier schemes' keys.

use crate::http::digest::{hex, Digest32, FieldHasher};

/// Version of the key scheme; part of both the hashed input and the KV key prefix.
pub const KEY_SCHEME: u8 = 3;

/// The prefix of every key this scheme writes.
pub const KEY_PREFIX: &str = "post-cache:v3:";

/// Everything that identifies a cacheable request.
#[derive(Debug, Clone)]
pub struct KeyInput<'a> {
    /// Request method, as sent ("POST", "QUERY").
    pub method: &'a str,
    /// The request's authority (host and port) as the client addressed it.
    pub host: &'a str,
    pub path: &'a str,
    /// The query without its `?`; empty and absent are the same request.
    pub query: &'a str,
    /// The configured key headers, each with every value the request carried, in order.
    pub headers: &'a [(&'a str, Vec<&'a [u8]>)],
    /// Credential scope (see [`credential_scope`]); `None` when requests carry no credential.
    pub credential_scope: Option<Digest32>,
    /// How the body was keyed (`protocol::BodyFormat::tag`; 0 for raw bytes).
    pub body_format: u8,
    /// SHA-256 of the body as keyed: its raw bytes, or its canonical form.
    pub body_digest: Digest32,
}

/// A derived cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    /// Host and path.
    pub uri: [u8; 16],
    pub query: [u8; 8],
    /// Everything that identifies the request.
    pub entry: Digest32,
}

impl CacheKey {
    /// The key in the KV store: 128 bytes, far below hosted Spin's 255-byte cap.
    pub fn kv_key(&self) -> String {
        format!("{KEY_PREFIX}{}:{}:{}", hex(&self.uri), hex(&self.query), hex(&self.entry))
    }
}

/// Where the marker that a persisted query's hash and operation run a query is kept.
pub fn persisted_marker_key(marker: &Digest32) -> String {
    format!("{KEY_PREFIX}apq:{}", hex(marker))
}

/// The prefix of every key post-cache writes, under any scheme: what a purge of
/// everything deletes, leaving the store's other keys alone.
pub const ANY_SCHEME_PREFIX: &str = "post-cache:";

/// The key prefix shared by every entry of `host` and `path`, whatever the
/// method, query, headers or body.
pub fn uri_prefix(host: &str, path: &str) -> String {
    format!("{KEY_PREFIX}{}:", hex(&uri_digest(host, path)))
}

/// The key prefix shared by every entry of `host`, `path` and `query`.
pub fn query_prefix(host: &str, path: &str, query: &str) -> String {
    format!("{}{}:", uri_prefix(host, path), hex(&query_digest(query)))
}

/// Where tag markers live: `post-cache:v3:tag:<tag digest>:<entry key suffix>`.
/// Only a tag whose index is full gets markers.
const TAG_PREFIX: &str = "post-cache:v3:tag:";

/// Where indexes live: `post-cache:v3:ix:t:<tag digest>` for a tag and
/// `post-cache:v3:ix:u:<uri digest>` for a host and path.
const INDEX_PREFIX: &str = "post-cache:v3:ix:";

fn tag_digest(tag: &str) -> String {
    let mut h = FieldHasher::new();
    h.field(b"post-cache tag").field(&[KEY_SCHEME]).field(tag.as_bytes());
    hex(&h.finish()[..16])
}

/// The prefix of every marker of one tag.
pub fn tag_prefix(tag: &str) -> String {
    format!("{TAG_PREFIX}{}:", tag_digest(tag))
}

/// The index of one tag's entries (50 bytes).
pub fn tag_index_key(tag: &str) -> String {
    format!("{INDEX_PREFIX}t:{}", tag_digest(tag))
}

/// The index of the entries of one host and path.
pub fn uri_index_key(host: &str, path: &str) -> String {
    format!("{INDEX_PREFIX}u:{}", hex(&uri_digest(host, path)))
}

/// The index of the URL an entry's key belongs to.
pub fn uri_index_key_of(entry_key: &str) -> Option<String> {
    let uri = entry_key.strip_prefix(KEY_PREFIX)?.get(..32)?;
    Some(format!("{INDEX_PREFIX}u:{uri}"))
}

/// Whether a key is an index (`tag_index_key`, `uri_index_key`).
pub fn is_index_key(key: &str) -> bool {
    key.strip_prefix(INDEX_PREFIX)
        .and_then(|rest| rest.strip_prefix("t:").or_else(|| rest.strip_prefix("u:")))
        .is_some_and(|digest| digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a key was written by an earlier key scheme of post-cache: nothing
/// reads it any more.
pub fn is_earlier_scheme_key(key: &str) -> bool {
    key.strip_prefix(ANY_SCHEME_PREFIX)
        .and_then(|rest| rest.strip_prefix('v'))
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(version, _)| version.parse::<u8>().ok())
        .is_some_and(|version| (1..KEY_SCHEME).contains(&version))
}

/// The part of an entry's key an index line holds: the key without its prefix.
pub fn entry_suffix(entry_key: &str) -> Option<&str> {
    entry_key.strip_prefix(KEY_PREFIX).filter(|_| is_entry_key(entry_key))
}

/// The entry key an index line names.
pub fn entry_of_suffix(suffix: &str) -> Option<String> {
    let key = format!("{KEY_PREFIX}{suffix}");
    is_entry_key(&key).then_some(key)
}

/// The marker saying the entry under `entry_key` carries `tag`: 165 bytes for
/// a scheme-2 entry key, under hosted Spin's 255.
pub fn tag_marker_key(tag: &str, entry_key: &str) -> Option<String> {
    let suffix = entry_key.strip_prefix(KEY_PREFIX)?;
    Some(format!("{}{suffix}", tag_prefix(tag)))
}

/// The entry key a tag marker points at.
pub fn entry_of_tag_marker(marker_key: &str) -> Option<String> {
    let rest = marker_key.strip_prefix(TAG_PREFIX)?;
    let (_, suffix) = rest.split_once(':')?;
    Some(format!("{KEY_PREFIX}{suffix}"))
}

/// Where segment `index` of a segmented entry's body written as `generation`
/// lives: under the entry's key, so a purge by URL or of everything finds it
/// (150 bytes at most for a scheme-2 entry key, under hosted Spin's 255).
pub fn segment_key(entry_key: &str, generation: u64, index: u32) -> String {
    format!("{entry_key}:{}:{index}", hex(&generation.to_be_bytes()))
}

/// Whether a key is a segment of a segmented entry's body.
pub fn is_segment_key(key: &str) -> bool {
    key.rsplit_once(':').is_some_and(|(rest, index)| {
        index.parse::<u32>().is_ok()
            && rest.rsplit_once(':').is_some_and(|(entry, generation)| generation.len() == 16 && is_entry_key(entry))
    })
}

/// The parts of a segment key: its entry's key, generation and index.
pub fn segment_parts(key: &str) -> Option<(&str, u64, u32)> {
    let (rest, index) = key.rsplit_once(':')?;
    let (entry, generation) = rest.rsplit_once(':')?;
    if generation.len() != 16 || !is_entry_key(entry) {
        return None;
    }
    Some((entry, u64::from_str_radix(generation, 16).ok()?, index.parse().ok()?))
}

/// Whether a key is a persisted query's marker.
pub fn is_persisted_marker_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.strip_prefix("apq:"))
        .is_some_and(|digest| digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The tag prefix (`tag_prefix`) a marker key starts with.
pub fn tag_prefix_of_marker(marker_key: &str) -> Option<&str> {
    let rest = marker_key.strip_prefix(TAG_PREFIX)?;
    let (digest, _) = rest.split_once(':')?;
    Some(&marker_key[..TAG_PREFIX.len() + digest.len() + 1])
}

/// Whether a key is an entry (a record, or a mark alone under an entry's key)
/// rather than a segment, a tag marker or a persisted-query marker.
pub fn is_entry_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        let mut parts = rest.split(':');
        matches!((parts.next(), parts.next(), parts.next(), parts.next()),
            (Some(u), Some(q), Some(e), None) if u.len() == 32 && q.len() == 16 && e.len() == 64)
    })
}

/// One spelling per host, so that a purge or invalidation by URL finds every
/// entry of a host however clients wrote it. RFC 3986 §6.2.2.1: "the scheme
/// and host are case-insensitive"; §6.2.3: "an explicit ':port', for which the
/// port is empty or the default for the scheme, is equivalent to one where the
/// port and its ':' delimiter are elided" (the scheme is not part of the key,
/// so both web defaults are elided); and a fully qualified name's trailing dot
/// names the same host.
pub fn normalize_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let (name, port) = match lower.rfind(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some(i) if !lower[i..].contains(']') => (&lower[..i], &lower[i + 1..]),
        _ => (lower.as_str(), ""),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    match port {
        "" | "80" | "443" => name.to_string(),
        port => format!("{name}:{port}"),
    }
}

fn uri_digest(host: &str, path: &str) -> [u8; 16] {
    let mut h = FieldHasher::new();
    h.field(b"post-cache uri").field(&[KEY_SCHEME]);
    h.field(normalize_host(host).as_bytes()).field(path.as_bytes());
    h.finish()[..16].try_into().expect("16 of 32 bytes")
}

fn query_digest(query: &str) -> [u8; 8] {
    let mut h = FieldHasher::new();
    h.field(b"post-cache query").field(&[KEY_SCHEME]).field(query.as_bytes());
    h.finish()[..8].try_into().expect("8 of 32 bytes")
}

/// Derives the cache key. Every field is length-prefixed and the field list is
/// fixed, so no two distinct inputs share their hashed bytes.
pub fn derive(input: &KeyInput<'_>) -> CacheKey {
    let mut h = FieldHasher::new();
    h.field(b"post-cache key").field(&[KEY_SCHEME]);
    h.field(input.method.as_bytes())
        .field(normalize_host(input.host).as_bytes())
        .field(input.path.as_bytes())
        .field(input.query.as_bytes());
    h.count(input.headers.len());
    for (name, values) in input.headers {
        h.field(name.to_ascii_lowercase().as_bytes());
        h.count(values.len());
        for value in values {
            h.field(value);
        }
    }
    match &input.credential_scope {
        Some(scope) => h.field(b"scoped").field(scope),
        None => h.field(b"public"),
    };
    h.field(&[input.body_format]).field(&input.body_digest);
    CacheKey {
        uri: uri_digest(input.host, input.path),
        query: query_digest(input.query),
        entry: h.finish(),
    }
}

/// The credential scope of a request: an HMAC, under a secret salt, of its
/// `Authorization` and `Cookie` values. The credential itself is never stored.
pub fn credential_scope(salt: &[u8], credentials: &[(&str, Vec<&[u8]>)]) -> Digest32 {
    let mut message = Vec::new();
    for (name, values) in credentials {
        push_field(&mut message, name.as_bytes());
        message.extend_from_slice(&(values.len() as u64).to_be_bytes());
        for value in values {
            push_field(&mut message, value);
        }
    }
    crate::http::digest::hmac_sha256(salt, &message)
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn body_digest(body: &[u8]) -> Digest32 {
        Sha256::digest(body).into()
    }

    fn input<'a>(headers: &'a [(&'a str, Vec<&'a [u8]>)], body: &[u8]) -> KeyInput<'a> {
        KeyInput {
            method: "POST",
            host: "api.example.com",
            path: "/graphql",
            query: "op=q",
            headers,
            credential_scope: None,
            body_format: 0,
            body_digest: body_digest(body),
        }
    }

    #[test]
    fn tag_markers_point_back_at_their_entry_and_fit_hosted_keys() {
        let key = derive(&input(&[], b"x")).kv_key();
        let marker = tag_marker_key("product:42", &key).unwrap();
        assert!(marker.starts_with(&tag_prefix("product:42")));
        assert!(marker.len() <= 255, "{}", marker.len());
        assert_eq!(entry_of_tag_marker(&marker).as_deref(), Some(key.as_str()));
        assert_ne!(tag_prefix("a"), tag_prefix("b"));
        assert!(is_entry_key(&key) && !is_entry_key(&marker));
        assert!(!is_entry_key(&persisted_marker_key(&[7; 32])));
        let segment = segment_key(&key, u64::MAX, 9_999);
        assert!(!is_entry_key(&segment) && segment.starts_with(&format!("{key}:")));
        assert!(is_segment_key(&segment) && !is_segment_key(&key) && !is_segment_key(&marker));
        assert_eq!(segment_parts(&segment), Some((key.as_str(), u64::MAX, 9_999)));
        assert_eq!(segment_parts(&key), None);
        assert_eq!(tag_prefix_of_marker(&marker), Some(tag_prefix("product:42").as_str()));
        assert!(is_persisted_marker_key(&persisted_marker_key(&[7; 32])) && !is_persisted_marker_key(&key));
        assert!(segment.len() <= 150 && segment.starts_with(&query_prefix("API.example.com", "/graphql", "op=q")));
        assert!(key.starts_with(&query_prefix("API.example.com", "/graphql", "op=q")));
        assert_eq!(uri_index_key_of(&key), Some(uri_index_key("API.example.com:443", "/graphql")));
        assert!(is_index_key(&uri_index_key("h", "/")) && is_index_key(&tag_index_key("product:42")));
        assert!(!is_entry_key(&tag_index_key("a")) && !is_index_key(&key) && tag_index_key("a") != tag_index_key("b"));
        assert_eq!(entry_of_suffix(entry_suffix(&key).unwrap()).as_deref(), Some(key.as_str()));
        assert_eq!((entry_suffix(&marker), entry_of_suffix("0123")), (None, None));
        assert!(!key.starts_with(&query_prefix("api.example.com", "/graphql", "op=r")));
    }

    /// Pins the key scheme. If this fails, the key derivation changed: bump
    /// KEY_SCHEME and update the digest, never just the digest.
    #[test]
    fn golden_digest_is_pinned() {
        let headers = [("content-type", vec![&b"application/json"[..]])];
        let key = derive(&input(&headers, br#"{"query":"{ me { id } }"}"#));
        assert_eq!(
            key.kv_key(),
            "post-cache:v3:2f2fc8f94e7370f580da6daba5a31d3c:725a3e8448f6dcac:c7827273a98be7be093e63ed963a5ca5877dc02b0967ba3838ca528d2d802aca"
        );
    }

    #[test]
    fn keys_of_earlier_schemes_are_told_from_this_one_s_and_from_other_apps() {
        let v2 = "post-cache:v2:0e4a5f7d60727eb51504d7fa796aa33f:3eb1722f977c48fa:f79820be5f535b2b2d3a1a83a42b0a93378d61c148c18b4bb2430ee1ecb6747a";
        for earlier in [v2, "post-cache:v1:abc", "post-cache:v2:tag:0:1:2", "post-cache:v2:apq:00"] {
            assert!(is_earlier_scheme_key(earlier), "{earlier}");
        }
        let now = derive(&input(&[], b"x")).kv_key();
        for not in [now.as_str(), "post-cache:v4:x", "post-cache:vx:y", "someone-else:v1:x", "post-cache:v0:x"] {
            assert!(!is_earlier_scheme_key(not), "{not}");
        }
    }

    #[test]
    fn kv_key_is_short_and_starts_with_its_uri_prefix() {
        let long_host = "h".repeat(300);
        let long = KeyInput { host: &long_host, path: "/very/long/path", ..input(&[], b"") };
        for i in [input(&[], b""), long] {
            let key = derive(&i).kv_key();
            assert_eq!(key.len(), 128, "{key}");
            assert!(key.starts_with(&uri_prefix(i.host, i.path)));
        }
    }

    #[test]
    fn entries_of_one_url_share_a_prefix_whatever_the_rest() {
        let ct = [("content-type", vec![&b"application/json"[..]])];
        let base = input(&ct, b"{}");
        let prefix = uri_prefix(base.host, base.path);
        let same_url = [
            KeyInput { method: "QUERY", ..base.clone() },
            KeyInput { query: "other", ..base.clone() },
            KeyInput { headers: &[], ..base.clone() },
            KeyInput { body_digest: body_digest(b"[]"), ..base.clone() },
            KeyInput { host: "API.EXAMPLE.COM", ..base.clone() },
        ];
        for i in &same_url {
            assert!(derive(i).kv_key().starts_with(&prefix), "{i:?}");
        }
        let a = derive(&base).kv_key();
        let b = derive(&KeyInput { method: "QUERY", ..base.clone() }).kv_key();
        assert_eq!(a[..prefix.len() + 17], b[..prefix.len() + 17], "same query part");
        for other in [KeyInput { path: "/graphql2", ..base.clone() }, KeyInput { host: "b.example", ..base.clone() }] {
            assert!(!derive(&other).kv_key().starts_with(&prefix));
        }
    }

    #[test]
    fn binary_bodies_that_decode_to_the_same_text_get_different_keys() {
        // Both are invalid UTF-8; a lossy text decode turns each into "\u{FFFD}".
        let a = input(&[], &[0xff]);
        let b = input(&[], &[0xfe]);
        assert_eq!(
            String::from_utf8_lossy(&[0xff]),
            String::from_utf8_lossy(&[0xfe])
        );
        assert_ne!(derive(&a), derive(&b));
    }

    #[test]
    fn every_field_changes_the_key() {
        let ct = [("content-type", vec![&b"application/json"[..]])];
        let base = input(&ct, b"{}");
        let k = derive(&base);
        let other_ct = [("content-type", vec![&b"application/cbor"[..]])];
        let variants = [
            KeyInput { method: "QUERY", ..base.clone() },
            KeyInput { host: "other.example.com", ..base.clone() },
            KeyInput { path: "/graphql2", ..base.clone() },
            KeyInput { query: "op=r", ..base.clone() },
            KeyInput { headers: &other_ct, ..base.clone() },
            KeyInput { headers: &[], ..base.clone() },
            KeyInput { credential_scope: Some([7; 32]), ..base.clone() },
            KeyInput { body_digest: body_digest(b"{ }"), ..base.clone() },
            // A raw and a canonical entry for the same bytes never collide.
            KeyInput { body_format: 1, ..base.clone() },
        ];
        for v in &variants {
            assert_ne!(derive(v), k, "{v:?}");
        }
    }

    #[test]
    fn host_case_does_not_matter() {
        let a = input(&[], b"x");
        let b = KeyInput { host: "API.Example.COM", ..a.clone() };
        assert_eq!(derive(&a), derive(&b));
    }

    #[test]
    fn one_host_spelled_with_a_default_port_or_a_trailing_dot_shares_its_entries_and_prefix() {
        let a = input(&[], b"x");
        for spelling in ["api.example.com:80", "API.example.com.:443", "api.example.com.", "api.example.com:"] {
            let b = KeyInput { host: spelling, ..a.clone() };
            assert_eq!(derive(&a), derive(&b), "{spelling}");
            assert_eq!(uri_prefix(spelling, "/graphql"), uri_prefix("api.example.com", "/graphql"), "{spelling}");
        }
        for other in ["api.example.com:8080", "api.example.co", "[::1]:80"] {
            assert_ne!(derive(&a), derive(&KeyInput { host: other, ..a.clone() }), "{other}");
        }
        assert_eq!(normalize_host("[::1]:443"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn no_ambiguity_between_path_and_query() {
        let a = KeyInput { path: "/a?b", query: "", ..input(&[], b"") };
        let b = KeyInput { path: "/a", query: "b", ..input(&[], b"") };
        assert_ne!(derive(&a), derive(&b));
    }

    #[test]
    fn no_ambiguity_between_header_values() {
        let one = [("x", vec![&b"a,b"[..]])];
        let two = [("x", vec![&b"a"[..], &b"b"[..]])];
        assert_ne!(derive(&input(&one, b"")), derive(&input(&two, b"")));
        // An absent header differs from an empty one.
        let empty = [("x", vec![&b""[..]])];
        let absent = [("x", vec![])];
        assert_ne!(derive(&input(&empty, b"")), derive(&input(&absent, b"")));
    }

    #[test]
    fn credential_scope_depends_on_salt_and_credential() {
        let cred = [("authorization", vec![&b"Bearer alice"[..]])];
        let other = [("authorization", vec![&b"Bearer bob"[..]])];
        let a = credential_scope(b"salt", &cred);
        assert_ne!(a, credential_scope(b"salt", &other));
        assert_ne!(a, credential_scope(b"pepper", &cred));
        assert_eq!(a, credential_scope(b"salt", &cred));
    }
}
