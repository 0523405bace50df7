//! The origin's base URL, split for building outbound requests.

/// The origin base URL, split for building outbound requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    pub https: bool,
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub base_path: String,
}

impl OriginUrl {
    /// Parses `http[s]://authority[/base/path]`; no query, fragment or user info.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} needs a host and no user info"));
        }
        if !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
        {
            return Err(format!("{url:?} has an invalid host"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("{url:?} must not have a query or fragment"));
        }
        Ok(OriginUrl {
            https,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}
