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
    /// Replayed from the store past its freshness (`ttl` ≤ 0, RFC 9211 §2.4 allows
    /// negative values), inside a stale-while-revalidate window or what the
    /// client's `max-stale` accepts.
    StaleHit { ttl: i64 },
    /// Waited for another request fetching the same key, then replayed what it
    /// stored (`collapsed` is this cache's own parameter).
    CollapsedHit { ttl: u64 },
    /// Forwarded, the origin failed, and a stale record stood in for the error
    /// (RFC 5861 stale-if-error). `fwd_status` is the origin's status when it
    /// answered (RFC 9211 §2.3), none when it timed out or was unreachable. Not a
    /// `hit`: RFC 9211 §2.1 keeps that for requests that were not forwarded.
    /// `ttl` is the record's remaining freshness, negative when stale.
    StaleOnError { fwd: Fwd, fwd_status: Option<u16>, ttl: i64 },
    /// Forwarded with the record's validators; the origin answered 304, so the
    /// stored body answered, with its headers and freshness updated (stored or not).
    Revalidated { fwd: Fwd, stored: Result<(), NotStoredReason> },
    /// Forwarded because nothing usable was stored (`fwd` says why), then stored or not.
    Forwarded { fwd: Fwd, stored: Result<(), NotStoredReason> },
    /// Forwarded, and the answer goes to the store after the client has it
    /// (`detail=storing`): RFC 9211's `stored` says the response was stored,
    /// which is not known yet when the head is sent. The write's outcome is logged.
    Storing { fwd: Fwd },
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
            Outcome::StaleHit { ttl } => format!("{CACHE_NAME}; hit; ttl={ttl}"),
            Outcome::CollapsedHit { ttl } => format!("{CACHE_NAME}; hit; ttl={ttl}; collapsed"),
            Outcome::StaleOnError { fwd, fwd_status, ttl } => {
                let status = fwd_status.map(|s| format!("; fwd-status={s}")).unwrap_or_default();
                format!("{CACHE_NAME}; fwd={}{status}; ttl={ttl}; detail=stale-if-error", fwd.as_str())
            }
            Outcome::Revalidated { fwd, stored: Ok(()) } => {
                format!("{CACHE_NAME}; fwd={}; fwd-status=304; stored", fwd.as_str())
            }
            Outcome::Revalidated { fwd, stored: Err(reason) } => {
                format!("{CACHE_NAME}; fwd={}; fwd-status=304; detail={}", fwd.as_str(), reason.detail())
            }
            Outcome::Forwarded { fwd, stored: Ok(()) } => {
                format!("{CACHE_NAME}; fwd={}; stored", fwd.as_str())
            }
            Outcome::Storing { fwd } => format!("{CACHE_NAME}; fwd={}; detail=storing", fwd.as_str()),
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
            (Outcome::Storing { fwd: Fwd::UriMiss }, "post-cache; fwd=uri-miss; detail=storing"),
            (Outcome::StaleHit { ttl: -7 }, "post-cache; hit; ttl=-7"),
            (Outcome::CollapsedHit { ttl: 59 }, "post-cache; hit; ttl=59; collapsed"),
            (
                Outcome::StaleOnError { fwd: Fwd::Stale, fwd_status: Some(503), ttl: -12 },
                "post-cache; fwd=stale; fwd-status=503; ttl=-12; detail=stale-if-error",
            ),
            (
                Outcome::StaleOnError { fwd: Fwd::Request, fwd_status: None, ttl: 20 },
                "post-cache; fwd=request; ttl=20; detail=stale-if-error",
            ),
            (
                Outcome::Revalidated { fwd: Fwd::Stale, stored: Ok(()) },
                "post-cache; fwd=stale; fwd-status=304; stored",
            ),
        ];
        for (outcome, want) in cases {
            assert_eq!(outcome.header_value(), want);
        }
    }
}
