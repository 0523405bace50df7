//! The header-field readers of storage, stale serving and revalidation, with
//! the properties they promise. Input: up to four field values separated by
//! 0xFF. Any bytes in any field never panic (CI runs with debug assertions, so
//! no arithmetic overflows either), and:
//! - cache-control: the lines' order does not matter, two lines read as one
//!   comma-joined line, and no delta-seconds exceeds 2^31;
//! - targeted fields (RFC 9213) govern only when valid, otherwise
//!   `Cache-Control` does, exactly;
//! - entity tags: weak comparison is symmetric and implied by the strong one;
//!   `If-Modified-Since` answers 304 exactly when both dates parse and the
//!   stored one is not later;
//! - the storage decision: 1xx, 206 and 304 are never stored, a stored answer is
//!   fresh for 1 to 2^31 seconds, and `no-store` or `private` are never stored;
//! - stored headers: nothing hop-by-hop or named by `Connection`, the rest in order;
//! - the 304 header merge never changes the stored length, type or cookies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::cache_control::{CacheControl, MaxStale, MAX_DELTA_SECONDS};
use post_cache::cache::conditional::{not_modified, not_modified_headers, strong_match, updated_headers, validators, weak_match};
use post_cache::http::headers::{for_client, list_items};
use post_cache::cache::policy::{decide_response, Storability, StatusPolicy, StoragePolicy};
use post_cache::cache::targeted::{governing, valid_dictionary};
use post_cache::http::date;
use post_cache::protocol::Limit;

const NOW: u64 = 1_700_000_000;

fn deltas(cc: &CacheControl) -> Vec<u64> {
    let stale = match cc.max_stale {
        Some(MaxStale::Seconds(n)) => Some(n),
        _ => None,
    };
    [cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error, cc.min_fresh, stale].into_iter().flatten().collect()
}

fn check_cache_control(a: &[u8], b: &[u8]) {
    let both = CacheControl::parse(&[a, b]);
    assert_eq!(both, CacheControl::parse(&[b, a]), "line order");
    assert!(deltas(&both).iter().all(|&n| n <= MAX_DELTA_SECONDS), "{both:?}");
    // A quote left open in `a` would swallow the comma that joins the lines.
    if std::str::from_utf8(a).is_ok() && std::str::from_utf8(b).is_ok() && a.iter().filter(|&&c| c == b'"').count() % 2 == 0 {
        let joined = [a, b",", b].concat();
        assert_eq!(both, CacheControl::parse(&[&joined]), "one line or two");
    }
}

fn check_storage(status: u16, response: &[(String, Vec<u8>)]) {
    let statuses = StatusPolicy { heuristic: vec![200, 404], server_errors: status % 2 == 0 };
    let policy = StoragePolicy {
        cacheable_statuses: &statuses,
        default_ttl: u64::MAX,
        targeted: "post-cache-control",
        stale_while_revalidate: u64::MAX,
        stale_if_error: 7,
        // Every third status under a rule's bound, which no header may exceed.
        limit: if status % 3 == 0 { Limit { when_silent: Some(5), at_most: Some(5) } } else { Limit::default() },
    };
    let g = governing(response, policy.targeted);
    match decide_response(status, response, &policy, NOW) {
        Storability::Store { ttl, initial_age, .. } => {
            assert!((200..=599).contains(&status) && status != 206 && status != 304, "{status}");
            assert!(status < 500 || statuses.server_errors);
            assert!((1..=MAX_DELTA_SECONDS).contains(&ttl), "{ttl}");
            assert!(policy.limit.at_most.is_none_or(|bound| ttl <= bound), "{ttl} over the rule's bound");
            assert!(initial_age <= MAX_DELTA_SECONDS);
            assert!(!g.cc.no_store && !g.cc.private && !g.cc.no_cache);
        }
        Storability::DoNotStore(_) => {}
    }
}

fn check_stored_headers(response: &[(String, Vec<u8>)]) {
    let stored = for_client(response, &["content-length", "age"]);
    let connection: Vec<&[u8]> = response.iter().filter(|(n, _)| n == "connection").map(|(_, v)| v.as_slice()).collect();
    let named = list_items(&connection);
    let mut rest = response.iter();
    for (name, value) in &stored {
        let lower = name.to_ascii_lowercase();
        assert!(!named.contains(&lower) && !["connection", "keep-alive", "age", "content-length"].contains(&lower.as_str()), "{lower}");
        // What is kept keeps its order.
        assert!(rest.any(|(n, v)| n == name && v == value));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    let d = parts.next().unwrap_or_default();
    check_cache_control(a, b);
    let response = vec![
        ("cache-control".to_string(), a.to_vec()),
        ("cdn-cache-control".to_string(), b.to_vec()),
        ("post-cache-control".to_string(), c.to_vec()),
    ];
    let g = governing(&response, "post-cache-control");
    if g.expires_applies {
        assert!(!valid_dictionary(b) && !valid_dictionary(c));
        assert_eq!(g.cc, CacheControl::parse(&[a]));
    } else {
        assert!(valid_dictionary(b) || valid_dictionary(c));
    }
    let status = u16::from_le_bytes([d.first().copied().unwrap_or(200), d.get(1).copied().unwrap_or(0)]) % 700;
    let full = vec![
        ("cache-control".to_string(), a.to_vec()),
        ("expires".to_string(), b.to_vec()),
        ("age".to_string(), c.to_vec()),
        ("date".to_string(), d.to_vec()),
        ("post-cache-control".to_string(), d.to_vec()),
    ];
    check_storage(status, &full);
    let hop = vec![
        ("connection".to_string(), a.to_vec()),
        (String::from_utf8_lossy(b).to_ascii_lowercase(), c.to_vec()),
        ("keep-alive".to_string(), d.to_vec()),
        (String::from_utf8_lossy(c).to_ascii_lowercase(), b.to_vec()),
        ("age".to_string(), d.to_vec()),
    ];
    check_stored_headers(&hop);

    let stored: Vec<(&str, &[u8])> = vec![
        ("etag", a),
        ("last-modified", b),
        ("content-length", b"13"),
        ("content-type", b"application/json"),
    ];
    assert_eq!(weak_match(a, b), weak_match(b, a));
    assert!(!strong_match(a, b) || weak_match(a, b));
    let request = vec![("if-none-match".to_string(), c.to_vec()), ("if-modified-since".to_string(), d.to_vec())];
    let _ = not_modified(&request, &stored);
    let since_only = vec![("if-modified-since".to_string(), d.to_vec())];
    let expected = matches!((date::parse(b), date::parse(d)), (Some(modified), Some(since)) if modified <= since);
    assert_eq!(not_modified(&since_only, &stored), expected);
    let _ = not_modified_headers(&stored);
    let _ = validators(&stored);
    let update = vec![
        ("content-length".to_string(), d.to_vec()),
        ("set-cookie".to_string(), c.to_vec()),
        ("content-type".to_string(), b.to_vec()),
        ("etag".to_string(), d.to_vec()),
    ];
    let merged = updated_headers(&stored, &update, &[]);
    for (name, value) in &merged {
        assert_ne!(name, "set-cookie");
        if name == "content-length" {
            assert_eq!(value, b"13");
        }
        if name == "content-type" {
            assert_eq!(value, b"application/json");
        }
    }
});
