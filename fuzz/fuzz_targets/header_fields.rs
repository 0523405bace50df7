//! The header-field readers of stale serving and revalidation: cache-control
//! directives (also as targeted fields, RFC 9213), entity-tag lists and HTTP
//! dates in conditionals, and the 304 header merge. Any bytes in any field never
//! panic; a 304 never changes the stored length, type, encoding or cookies.
//! Input: up to four field values separated by 0xFF.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::cache_control::CacheControl;
use post_cache::cache::conditional::{not_modified, not_modified_headers, updated_headers, validators, weak_match};
use post_cache::cache::targeted::{governing, valid_dictionary};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    let d = parts.next().unwrap_or_default();
    let _ = CacheControl::parse(&[a, b]);
    let _ = valid_dictionary(a);
    let response = vec![
        ("cache-control".to_string(), a.to_vec()),
        ("cdn-cache-control".to_string(), b.to_vec()),
        ("post-cache-control".to_string(), c.to_vec()),
    ];
    let g = governing(&response, "post-cache-control");
    if !g.expires_applies {
        assert!(valid_dictionary(b) || valid_dictionary(c));
    }
    let stored: Vec<(&str, &[u8])> = vec![
        ("etag", a),
        ("last-modified", b),
        ("content-length", b"13"),
        ("content-type", b"application/json"),
    ];
    let request = vec![("if-none-match".to_string(), c.to_vec()), ("if-modified-since".to_string(), d.to_vec())];
    let _ = not_modified(&request, &stored);
    let _ = not_modified_headers(&stored);
    let _ = validators(&stored);
    let _ = weak_match(a, b);
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
