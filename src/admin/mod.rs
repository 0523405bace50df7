//! The admin API, PURE: which requests it takes, who may use it, and what a
//! purge request asks for. `proxy::admin` carries the decisions out against the
//! store. Answers are JSON; a bad request gets 400 naming the field.

pub mod purge;
pub mod sweep;

use crate::http::headers::values;
use subtle::ConstantTimeEq;

/// What a request under the admin path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST <admin_path>purge`
    Purge,
    /// `GET <admin_path>stats`
    Stats,
    /// `POST <admin_path>sweep`
    Sweep,
    /// Anything else under the admin path: 404 (or 405 for a known path).
    Unknown { known_path: bool },
}

/// The admin endpoint a request addresses, or `None` when it is not for the
/// admin API: the API is off (no token), or the path is elsewhere. With the API
/// off its paths go to the origin like any other.
pub fn route(admin_path: &str, token_set: bool, method: &str, path_with_query: &str) -> Option<Endpoint> {
    if !token_set {
        return None;
    }
    let path = path_with_query.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix(admin_path)?;
    Some(match (method, rest) {
        ("POST", "purge") => Endpoint::Purge,
        ("GET" | "HEAD", "stats") => Endpoint::Stats,
        ("POST", "sweep") => Endpoint::Sweep,
        (_, "purge" | "stats" | "sweep") => Endpoint::Unknown { known_path: true },
        _ => Endpoint::Unknown { known_path: false },
    })
}

/// Why a request may not use the admin API (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Wrong,
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`. The comparison takes the same
/// time wherever the first difference is (the token's length may show).
pub fn authorize(headers: &[(String, Vec<u8>)], token: &str) -> Result<(), Denied> {
    let lines = values(headers, "authorization");
    let [line] = lines.as_slice() else {
        return Err(if lines.is_empty() { Denied::Missing } else { Denied::Wrong });
    };
    let Some(presented) = strip_scheme(line) else {
        return Err(Denied::Wrong);
    };
    if bool::from(presented.ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

/// The credentials after a case-insensitive `Bearer ` scheme.
fn strip_scheme(line: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = (line.get(..7)?, &line[7..]);
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// A JSON string literal (RFC 8259 §7).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "/.well-known/post-cache/";
    const TOKEN: &str = "s3cret-token-of-24-chars";

    fn auth(value: &str) -> Vec<(String, Vec<u8>)> {
        vec![("authorization".into(), value.as_bytes().to_vec())]
    }

    #[test]
    fn the_admin_api_takes_its_paths_only_when_a_token_is_set() {
        assert_eq!(route(ADMIN, true, "POST", "/.well-known/post-cache/purge"), Some(Endpoint::Purge));
        assert_eq!(route(ADMIN, true, "GET", "/.well-known/post-cache/stats?x=1"), Some(Endpoint::Stats));
        assert_eq!(route(ADMIN, true, "GET", "/.well-known/post-cache/purge"), Some(Endpoint::Unknown { known_path: true }));
        assert_eq!(route(ADMIN, true, "POST", "/.well-known/post-cache/sweep"), Some(Endpoint::Sweep));
        assert_eq!(route(ADMIN, true, "GET", "/.well-known/post-cache/sweep"), Some(Endpoint::Unknown { known_path: true }));
        assert_eq!(route(ADMIN, true, "POST", "/.well-known/post-cache/other"), Some(Endpoint::Unknown { known_path: false }));
        assert_eq!(route(ADMIN, false, "POST", "/.well-known/post-cache/purge"), None);
        assert_eq!(route(ADMIN, true, "POST", "/graphql"), None);
        assert_eq!(route(ADMIN, true, "POST", "/.well-known/post-cachepurge"), None);
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        assert_eq!(authorize(&auth(&format!("Bearer {TOKEN}")), TOKEN), Ok(()));
        assert_eq!(authorize(&auth(&format!("bearer  {TOKEN} ")), TOKEN), Ok(()));
        assert_eq!(authorize(&[], TOKEN), Err(Denied::Missing));
        let almost = &TOKEN[..TOKEN.len() - 1];
        for wrong in [
            format!("Bearer {almost}"),
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", TOKEN.to_uppercase()),
            format!("Basic {TOKEN}"),
            TOKEN.to_string(),
            "Bearer ".to_string(),
            "Bear".to_string(),
        ] {
            assert_eq!(authorize(&auth(&wrong), TOKEN), Err(Denied::Wrong), "{wrong}");
        }
        let twice = [auth(&format!("Bearer {TOKEN}")), auth("Bearer x")].concat();
        assert_eq!(authorize(&twice, TOKEN), Err(Denied::Wrong));
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\nd"), r#""a\"b\\c\u000ad""#);
    }
}
