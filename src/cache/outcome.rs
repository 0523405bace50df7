//! The `Cache-Status` header (RFC 9211) that tells the client what happened.
//! It never carries the key.

use super::policy::{BypassReason, NotStoredReason};

/// The cache name in `Cache-Status`.
pub const CACHE_NAME: &str = "post-cache";

/// What the cache did for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Replayed from the store, fresh for `ttl` more seconds.
    Hit { ttl: u64 },
    /// Forwarded because nothing usable was stored (`fwd` says why), then stored or not.
    Forwarded { fwd: Fwd, stored: Result<(), NotStoredReason> },
    /// Forwarded around the cache: neither looked up nor stored.
    Bypass(BypassReason),
    /// `only-if-cached` and nothing fresh was stored: answered 504, not forwarded.
    OnlyIfCachedMiss,
    /// Forwarded, but the origin could not answer (the proxy's own 502 or 504).
    OriginFailed { fwd: Fwd, detail: &'static str },
}

/// RFC 9211 §2.2 `fwd` values this cache uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// No entry for the key.
    UriMiss,
    /// An entry, but the request's `Vary`-ed headers differ.
    VaryMiss,
    /// An entry, but stale.
    Stale,
    /// The client asked for a fresh answer (`no-cache`, `max-age=0`).
    Request,
    /// The request went around the cache (only reported when the origin then fails).
    Bypass,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Bypass => "bypass",
        }
    }
}

impl Outcome {
    /// The `Cache-Status` field value.
    pub fn header_value(&self) -> String {
        match self {
            Outcome::Hit { ttl } => format!("{CACHE_NAME}; hit; ttl={ttl}"),
            Outcome::Forwarded { fwd, stored: Ok(()) } => {
                format!("{CACHE_NAME}; fwd={}; stored", fwd.as_str())
            }
            Outcome::Forwarded { fwd, stored: Err(reason) } => {
                format!("{CACHE_NAME}; fwd={}; detail={}", fwd.as_str(), reason.detail())
            }
            Outcome::Bypass(reason) => format!("{CACHE_NAME}; fwd=bypass; detail={}", reason.detail()),
            Outcome::OnlyIfCachedMiss => format!("{CACHE_NAME}; detail=only-if-cached"),
            Outcome::OriginFailed { fwd, detail } => {
                format!("{CACHE_NAME}; fwd={}; detail={detail}", fwd.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let cases = [
            (Outcome::Hit { ttl: 42 }, "post-cache; hit; ttl=42"),
            (
                Outcome::Forwarded { fwd: Fwd::UriMiss, stored: Ok(()) },
                "post-cache; fwd=uri-miss; stored",
            ),
            (
                Outcome::Forwarded { fwd: Fwd::UriMiss, stored: Err(NotStoredReason::NoStore) },
                "post-cache; fwd=uri-miss; detail=no-store",
            ),
            (
                Outcome::Forwarded { fwd: Fwd::Request, stored: Ok(()) },
                "post-cache; fwd=request; stored",
            ),
            (
                Outcome::Bypass(BypassReason::BodyTooLarge),
                "post-cache; fwd=bypass; detail=body-too-large",
            ),
            (Outcome::OnlyIfCachedMiss, "post-cache; detail=only-if-cached"),
        ];
        for (outcome, want) in cases {
            assert_eq!(outcome.header_value(), want);
        }
    }
}
