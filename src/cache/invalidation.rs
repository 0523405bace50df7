//! Invalidation by unsafe methods (RFC 9111 §4.4): what a successful write to a
//! URL makes this cache forget.

use crate::http::headers::values;

/// RFC 9111 §4.4: "A cache MUST invalidate the target URI when it receives a
/// non-error status code in response to an unsafe request method (including
/// methods whose safety is unknown)." A cache candidate (a POST or QUERY this
/// cache treats as a read) is not an unsafe request here.
pub fn invalidates(method: &str, cache_candidate: bool, status: u16) -> bool {
    // RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE are safe; QUERY is safe by its draft.
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "QUERY");
    !safe && !cache_candidate && non_error(status)
}

/// A "non-error status code" of RFC 9111 §4.4: 2xx and 3xx.
pub fn non_error(status: u16) -> bool {
    (200..400).contains(&status)
}

/// The paths whose entries go: the target's, and those of `Location` and
/// `Content-Location` when they are on the same host. RFC 9111 §4.4: "A cache
/// MAY invalidate other URIs when it receives a non-error status code in response
/// to an unsafe request method", but "MUST NOT invalidate the URIs from those
/// header fields if their host component differs from the target URI's" ("to
/// prevent some denial-of-service attacks").
pub fn invalidated_paths(authority: &str, target_path: &str, response: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut paths = vec![target_path.to_string()];
    for name in ["location", "content-location"] {
        for value in values(response, name) {
            let Ok(text) = std::str::from_utf8(value) else { continue };
            let text = text.trim();
            let path = if text.starts_with('/') && !text.starts_with("//") {
                Some(text)
            } else {
                text.split_once("://").and_then(|(_, rest)| {
                    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    host.eq_ignore_ascii_case(authority).then_some(if path.is_empty() { "/" } else { path })
                })
            };
            if let Some(path) = path {
                let path = path.split(['?', '#']).next().unwrap_or(path).to_string();
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_methods_invalidate_on_success_only() {
        for method in ["PUT", "PATCH", "DELETE", "POST", "PURGE"] {
            assert!(invalidates(method, false, 200), "{method}");
            assert!(invalidates(method, false, 303), "{method}");
            assert!(!invalidates(method, false, 404), "{method}");
            assert!(!invalidates(method, false, 500), "{method}");
        }
        assert!(!invalidates("POST", true, 200), "a cached POST is a read here");
        for safe in ["GET", "HEAD", "OPTIONS", "TRACE", "QUERY"] {
            assert!(!invalidates(safe, false, 200), "{safe}");
        }
    }

    #[test]
    fn location_fields_count_only_on_the_same_host() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
            pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
        };
        let response = h(&[
            ("location", "/items/7?x=1"),
            ("content-location", "https://API.example.com/items"),
            ("location", "https://evil.example/items/8"),
            ("content-location", "//evil.example/x"),
        ]);
        assert_eq!(invalidated_paths("api.example.com", "/items", &response), ["/items", "/items/7"]);
        assert_eq!(invalidated_paths("api.example.com", "/a", &h(&[("location", "https://api.example.com")])), ["/a", "/"]);
    }
}
