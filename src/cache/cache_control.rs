//! `Cache-Control` directives (RFC 9111 §5.2) that this cache acts on.

/// The directives of one message; unknown ones are ignored, as RFC 9111 §5.2 requires.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub only_if_cached: bool,
    /// RFC 9111 §5.2.1.6: "the client is asking for intermediaries to avoid
    /// transforming the content" — so a canonical key form is not used either.
    pub no_transform: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// RFC 9111 §5.2.2.2 (response): once stale, never reused without validation.
    pub must_revalidate: bool,
    /// RFC 9111 §5.2.2.8: must-revalidate for shared caches only.
    pub proxy_revalidate: bool,
    /// RFC 5861 §3 (response): may be served stale while revalidating, seconds.
    pub stale_while_revalidate: Option<u64>,
    /// RFC 5861 §4 (response and request): may be served stale when the origin errs.
    pub stale_if_error: Option<u64>,
    /// RFC 9111 §5.2.1.2 (request): `max-stale` alone accepts any staleness.
    pub max_stale: Option<MaxStale>,
    /// RFC 9111 §5.2.1.3 (request): fresh for at least this many more seconds.
    pub min_fresh: Option<u64>,
}

/// The request's `max-stale`: with or without a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// "If no value is assigned to max-stale, then the client will accept a
    /// stale response of any age."
    Any,
    Seconds(u64),
}

impl CacheControl {
    /// Parses every `Cache-Control` field value of a message.
    pub fn parse(values: &[&[u8]]) -> Self {
        let mut cc = CacheControl::default();
        for value in values {
            let text = String::from_utf8_lossy(value);
            for directive in split_directives(&text) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    // `no-cache="field"` only restricts those fields; treating it as a
                    // plain no-cache is the conservative reading for a cache that
                    // does not revalidate.
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "only-if-cached" => cc.only_if_cached = true,
                    "no-transform" => cc.no_transform = true,
                    "max-age" => cc.max_age = merge(cc.max_age, arg.map(argument)),
                    "s-maxage" => cc.s_maxage = merge(cc.s_maxage, arg.map(argument)),
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    "stale-while-revalidate" => {
                        cc.stale_while_revalidate = merge(cc.stale_while_revalidate, Some(arg.map_or(0, argument)))
                    }
                    "stale-if-error" => {
                        cc.stale_if_error = merge(cc.stale_if_error, Some(arg.map_or(0, argument)))
                    }
                    "min-fresh" => cc.min_fresh = max_of(cc.min_fresh, arg.map(argument)),
                    "max-stale" => {
                        cc.max_stale = Some(match (cc.max_stale, arg.map(argument)) {
                            // Two values: the smaller accepts less.
                            (Some(MaxStale::Seconds(a)), Some(b)) => MaxStale::Seconds(a.min(b)),
                            (Some(MaxStale::Seconds(a)), None) => MaxStale::Seconds(a),
                            (_, Some(b)) => MaxStale::Seconds(b),
                            (_, None) => MaxStale::Any,
                        })
                    }
                    _ => {}
                }
            }
        }
        cc
    }
}

/// RFC 9111 §4.2.1: "When there is more than one value present for a given
/// directive (e.g., two Expires header field lines or multiple Cache-Control:
/// max-age directives), either the first occurrence should be used or the
/// response should be considered stale." We keep the smaller, which is never
/// fresher than either.
fn merge(old: Option<u64>, new: Option<u64>) -> Option<u64> {
    match (old, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// For `min-fresh`, where the larger value is the stricter one.
fn max_of(old: Option<u64>, new: Option<u64>) -> Option<u64> {
    match (old, new) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// RFC 9111 §1.2.2: "If a cache receives a delta-seconds value greater than the
/// greatest integer it can represent, or if any of its subsequent calculations
/// overflows, the cache MUST consider the value to be 2147483648 (2^31) or the
/// greatest positive integer it can conveniently represent." 2^31 it is, so that
/// `now` plus any delta cannot wrap.
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2), at most [`MAX_DELTA_SECONDS`];
/// `None` when it is not one (a sign, a suffix, a fraction, nothing).
pub fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().map_or(MAX_DELTA_SECONDS, |n| n.min(MAX_DELTA_SECONDS)))
}

/// A directive's argument: an invalid one counts as 0 (stale), never as "forever".
fn argument(arg: &str) -> u64 {
    delta_seconds(arg).unwrap_or(0)
}

/// Splits on commas outside quoted strings.
fn split_directives(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_directives_across_field_lines() {
        let cc = CacheControl::parse(&[b"public, max-age=60", b"S-MAXAGE=\"120\", no-cache"]);
        assert!(cc.public && cc.no_cache && !cc.no_store);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
    }

    #[test]
    fn invalid_or_repeated_max_age_is_conservative() {
        assert_eq!(CacheControl::parse(&[b"max-age=abc"]).max_age, Some(0));
        assert_eq!(CacheControl::parse(&[b"max-age=-5"]).max_age, Some(0));
        assert_eq!(CacheControl::parse(&[b"max-age=50, max-age=10"]).max_age, Some(10));
    }

    #[test]
    fn delta_seconds_past_2_to_the_31_count_as_2_to_the_31() {
        let cc = CacheControl::parse(&[b"max-age=18446744073709551615, s-maxage=99999999999999999999, stale-if-error=2147483649"]);
        assert_eq!((cc.max_age, cc.s_maxage, cc.stale_if_error), (Some(1 << 31), Some(1 << 31), Some(1 << 31)));
        let request = CacheControl::parse(&[b"max-stale=18446744073709551615, min-fresh=4294967296"]);
        assert_eq!(request.max_stale, Some(MaxStale::Seconds(1 << 31)));
        assert_eq!(request.min_fresh, Some(1 << 31));
        assert_eq!(CacheControl::parse(&[b"max-age=2147483647"]).max_age, Some(2_147_483_647));
    }

    #[test]
    fn stale_directives_of_rfc_5861_and_the_request_are_read() {
        let cc = CacheControl::parse(&[b"max-age=60, stale-while-revalidate=30, stale-if-error=600, must-revalidate"]);
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(cc.stale_if_error, Some(600));
        assert!(cc.must_revalidate && !cc.proxy_revalidate);
        let any = CacheControl::parse(&[b"max-stale"]);
        assert_eq!(any.max_stale, Some(MaxStale::Any));
        let bounded = CacheControl::parse(&[b"max-stale=20, min-fresh=5, min-fresh=9"]);
        assert_eq!(bounded.max_stale, Some(MaxStale::Seconds(20)));
        assert_eq!(bounded.min_fresh, Some(9), "the stricter min-fresh wins");
        // A window without a valid value allows no staleness at all.
        assert_eq!(CacheControl::parse(&[b"stale-while-revalidate=x"]).stale_while_revalidate, Some(0));
        assert_eq!(CacheControl::parse(&[b"stale-if-error"]).stale_if_error, Some(0));
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let cc = CacheControl::parse(&[b"private=\"a, b\", only-if-cached"]);
        assert!(cc.private && cc.only_if_cached);
    }
}
