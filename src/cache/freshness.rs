//! Whether a stored record may answer a request now: fresh, stale while one
//! request refreshes it, or only if the origin fails (RFC 9111 §4.2, RFC 5861).

use super::cache_control::{CacheControl, MaxStale};
use super::record::RecordMeta;

/// What the caller does with a record that matches the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredUse {
    /// Replay it: fresh for `ttl` more seconds.
    Fresh { ttl: u64 },
    /// Replay it at once (`ttl=-stale_for`); after the response, refresh it from
    /// the origin unless a live mark says another request already is.
    StaleWhileRevalidate { stale_for: u64 },
    /// Go to the origin first (revalidating when the record has validators). If
    /// the origin fails, replay the record when `serve_on_error`, else pass the
    /// failure on. `stale_for` is 0 when the record is fresh but the request's
    /// directives refuse it (`fwd=request`).
    Refetch { stale_for: u64, serve_on_error: bool },
}

/// Decides from the record's times and windows and the request's directives.
pub fn decide_stored(meta: &RecordMeta, request: &CacheControl, now: u64) -> StoredUse {
    let age = u64::from(meta.initial_age).saturating_add(now.saturating_sub(meta.stored_at));
    let ttl = meta.fresh_until.saturating_sub(now);
    // RFC 9111 §5.2.1.1: max-age "indicates that the client prefers a response
    // whose age is less than or equal to the specified number of seconds".
    // §5.2.1.3: min-fresh "indicates that the client prefers a response whose
    // freshness lifetime is no less than its current age plus the specified time".
    let client_refuses = request.max_age.is_some_and(|max| age > max) || request.min_fresh.is_some_and(|min| ttl < min);
    if ttl > 0 {
        return if client_refuses {
            // Fresh as the origin sees it: a failure of the origin may still get it.
            StoredUse::Refetch { stale_for: 0, serve_on_error: true }
        } else {
            StoredUse::Fresh { ttl }
        };
    }
    let stale_for = now.saturating_sub(meta.fresh_until);
    let windows = meta.stale;
    // RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response if it is
    // prohibited by an explicit in-protocol directive (e.g., by a no-cache response
    // directive, a must-revalidate response directive, or an applicable s-maxage
    // or proxy-revalidate response directive; see Section 5.2.2)."
    if windows.forbidden {
        return StoredUse::Refetch { stale_for, serve_on_error: false };
    }
    // §4.2.4: "A cache MUST NOT send stale responses unless it is disconnected or
    // doing so is explicitly permitted by the client or origin server (e.g., by
    // the max-stale request directive in Section 5.2.1, extension directives such
    // as those defined in [RFC5861], or configuration in accordance with an
    // out-of-band contract)."
    // RFC 5861 §3: stale-while-revalidate "indicates that caches MAY serve the
    // response in which it appears after it becomes stale, up to the indicated
    // number of seconds"; §5.2.1.2 max-stale: "the client will accept a response
    // that has exceeded its freshness lifetime".
    let client_accepts = match request.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Seconds(n)) => stale_for <= n,
        None => false,
    };
    if !client_refuses && (stale_for < u64::from(windows.while_revalidate) || client_accepts) {
        return StoredUse::StaleWhileRevalidate { stale_for };
    }
    // RFC 5861 §4: stale-if-error "indicates that when an error is encountered, a
    // cached stale response MAY be used to satisfy the request, regardless of
    // other freshness information"; in a request, "the client is willing to
    // accept a stale response if the origin errs", up to that many seconds.
    let serve_on_error = stale_for < u64::from(windows.if_error)
        || request.stale_if_error.is_some_and(|n| stale_for <= n)
        || client_accepts;
    StoredUse::Refetch { stale_for, serve_on_error }
}

/// Whether a stored record may still stand in for an origin error at `now`,
/// for any client (its own stale-if-error window, RFC 5861 §4). An error
/// answer must not replace such a record, even one that could be stored: the
/// record is what later clients get when the origin fails.
pub fn stands_in_for_errors(meta: &RecordMeta, now: u64) -> bool {
    !meta.stale.forbidden && now < meta.fresh_until.saturating_add(u64::from(meta.stale.if_error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::record::StaleWindows;

    const NOW: u64 = 1_700_000_000;

    /// A record stored at NOW, fresh for 60 s, with these windows.
    fn meta(swr: u32, sie: u32, forbidden: bool) -> RecordMeta {
        RecordMeta {
            stored_at: NOW,
            fresh_until: NOW + 60,
            stale: StaleWindows { while_revalidate: swr, if_error: sie, forbidden },
            initial_age: 0,
            status: 200,
            request_digest: [0; 32],
            vary_digest: [0; 32],
            vary: Vec::new(),
        }
    }

    fn req(directives: &str) -> CacheControl {
        CacheControl::parse(&[directives.as_bytes()])
    }

    fn refetch(stale_for: u64, serve_on_error: bool) -> StoredUse {
        StoredUse::Refetch { stale_for, serve_on_error }
    }

    #[test]
    fn a_fresh_record_is_replayed_with_its_remaining_ttl() {
        assert_eq!(decide_stored(&meta(0, 0, false), &req(""), NOW + 10), StoredUse::Fresh { ttl: 50 });
    }

    #[test]
    fn stale_while_revalidate_serves_inside_its_window_only() {
        let m = meta(30, 0, false);
        assert_eq!(decide_stored(&m, &req(""), NOW + 60), StoredUse::StaleWhileRevalidate { stale_for: 0 });
        assert_eq!(decide_stored(&m, &req(""), NOW + 89), StoredUse::StaleWhileRevalidate { stale_for: 29 });
        assert_eq!(decide_stored(&m, &req(""), NOW + 90), refetch(30, false));
    }

    #[test]
    fn stale_if_error_allows_the_record_only_when_the_origin_fails() {
        let m = meta(0, 600, false);
        assert_eq!(decide_stored(&m, &req(""), NOW + 61), refetch(1, true));
        assert_eq!(decide_stored(&m, &req(""), NOW + 659), refetch(599, true));
        assert_eq!(decide_stored(&m, &req(""), NOW + 660), refetch(600, false));
    }

    #[test]
    fn no_windows_means_no_stale_serving_at_all() {
        assert_eq!(decide_stored(&meta(0, 0, false), &req(""), NOW + 60), refetch(0, false));
    }

    #[test]
    fn forbidden_records_are_never_stale_whatever_the_client_accepts() {
        let m = meta(30, 600, true);
        for directives in ["", "max-stale", "max-stale=100", "stale-if-error=100"] {
            assert_eq!(decide_stored(&m, &req(directives), NOW + 61), refetch(1, false), "{directives}");
        }
    }

    #[test]
    fn max_stale_without_a_value_accepts_any_staleness() {
        let m = meta(0, 0, false);
        assert_eq!(decide_stored(&m, &req("max-stale"), NOW + 10_000), StoredUse::StaleWhileRevalidate { stale_for: 9_940 });
    }

    #[test]
    fn max_stale_with_a_value_accepts_that_much() {
        let m = meta(0, 0, false);
        assert_eq!(decide_stored(&m, &req("max-stale=20"), NOW + 80), StoredUse::StaleWhileRevalidate { stale_for: 20 });
        // Past it, the client still takes it over an error.
        assert_eq!(decide_stored(&m, &req("max-stale=20"), NOW + 81), refetch(21, false));
    }

    #[test]
    fn the_requests_stale_if_error_widens_the_error_window() {
        let m = meta(0, 10, false);
        assert_eq!(decide_stored(&m, &req("stale-if-error=300"), NOW + 300), refetch(240, true));
        assert_eq!(decide_stored(&m, &req("stale-if-error=300"), NOW + 361), refetch(301, false));
    }

    #[test]
    fn min_fresh_and_max_age_tighten_what_counts_as_fresh() {
        let m = meta(30, 600, false);
        assert_eq!(decide_stored(&m, &req("min-fresh=20"), NOW + 30), StoredUse::Fresh { ttl: 30 });
        assert_eq!(decide_stored(&m, &req("min-fresh=20"), NOW + 45), refetch(0, true));
        assert_eq!(decide_stored(&m, &req("max-age=10"), NOW + 10), StoredUse::Fresh { ttl: 50 });
        assert_eq!(decide_stored(&m, &req("max-age=10"), NOW + 11), refetch(0, true));
        // A client that wants it younger is not served stale while revalidating.
        assert_eq!(decide_stored(&m, &req("max-age=10"), NOW + 61), refetch(1, true));
    }

    #[test]
    fn age_counts_what_the_response_arrived_with() {
        let m = RecordMeta { initial_age: 8, ..meta(0, 0, false) };
        assert_eq!(decide_stored(&m, &req("max-age=10"), NOW + 3), refetch(0, true));
    }
}
