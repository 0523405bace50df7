//! Header lists as wasi:http gives them (name, raw value bytes, repeats kept in
//! order) and the filters applied when a message crosses the proxy.

/// A header list with repeated names kept, in order.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones wasi:http refuses to set:
/// building `Fields` with any of these fails the whole call. RFC 9111 §3.1: the
/// fields "specific to the proxy that a cache uses when forwarding a request MUST
/// NOT be stored ... Effectively, this is limited to Proxy-Authenticate ...,
/// Proxy-Authentication-Info ..., and Proxy-Authorization".
const NEVER_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// Every value of `name` (ASCII case-insensitive), in order.
pub fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// Whether `name` is present at all.
pub fn has(headers: &[(String, Vec<u8>)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Splits comma-separated list values (`Vary`, `Connection`) into trimmed, lower-case items.
pub fn list_items(values: &[&[u8]]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| String::from_utf8_lossy(item).trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Whether a header may be forwarded: not hop-by-hop, not forbidden by wasi:http,
/// not named by `Connection`, and not one of `drop_also` (lower-case names).
fn forwardable(name: &str, connection_named: &[String], drop_also: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    !NEVER_FORWARDED.contains(&lower.as_str())
        && !connection_named.contains(&lower)
        && !drop_also.contains(&lower.as_str())
}

/// Headers to send to the origin: drops `spin-*` (added by the Spin host),
/// hop-by-hop and forbidden headers, and `content-length` when `replace_length`
/// (the caller sets its own for a buffered body).
pub fn for_origin(headers: &[(String, Vec<u8>)], replace_length: bool) -> HeaderList {
    let connection = list_items(&values(headers, "connection"));
    let drop_also: &[&str] = if replace_length { &["content-length"] } else { &[] };
    headers
        .iter()
        .filter(|(n, _)| !n.to_ascii_lowercase().starts_with("spin-"))
        .filter(|(n, _)| forwardable(n, &connection, drop_also))
        .cloned()
        .collect()
}

/// Headers of an origin response as relayed to the client; `drop_also` lists
/// further lower-case names the caller replaces (`content-length`, `age`).
pub fn for_client(headers: &[(String, Vec<u8>)], drop_also: &[&str]) -> HeaderList {
    let connection = list_items(&values(headers, "connection"));
    headers
        .iter()
        .filter(|(n, _)| forwardable(n, &connection, drop_also))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn origin_headers_drop_spin_hop_by_hop_and_connection_named() {
        let input = h(&[
            ("spin-full-url", "http://x/"),
            ("Spin-Path-Info", "/"),
            ("host", "x"),
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("x-a", "1"),
            ("X-A", "2"),
        ]);
        let out = for_origin(&input, true);
        assert_eq!(
            out,
            h(&[("content-type", "application/json"), ("x-a", "1"), ("X-A", "2")])
        );
        let kept_length = for_origin(&input, false);
        assert!(has(&kept_length, "content-length"));
    }

    #[test]
    fn client_headers_keep_repeats_in_order() {
        let input = h(&[("vary", "a"), ("keep-alive", "5"), ("vary", "b"), ("age", "3")]);
        assert_eq!(for_client(&input, &["age"]), h(&[("vary", "a"), ("vary", "b")]));
    }

    #[test]
    fn fields_named_in_the_origins_connection_field_are_neither_stored_nor_relayed() {
        // RFC 9111 §3.1: "The Connection header field and fields whose names are
        // listed in it are required by Section 7.6.1 of [HTTP] to be removed before
        // forwarding the message. This MAY be implemented by doing so before storage."
        let input = h(&[
            ("content-type", "application/json"),
            ("Connection", "X-Hop, keep-alive"),
            ("connection", "x-other"),
            ("x-hop", "1"),
            ("X-Other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("Proxy-Authentication-Info", "nextnonce=\"a\""),
            ("x-end", "3"),
        ]);
        let stored = for_client(&input, &["content-length", "age"]);
        assert_eq!(stored, h(&[("content-type", "application/json"), ("x-end", "3")]));
    }

    #[test]
    fn list_items_split_and_trim() {
        let items = list_items(&[b"Accept, X-Y", b" z "]);
        assert_eq!(items, vec!["accept", "x-y", "z"]);
    }
}
