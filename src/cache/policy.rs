//! What the cache does with a request and whether it may store a response.
//!
//! POST and QUERY caching is an opt-in extension: RFC 9110 §9.3.3 allows a POST
//! response to be reused only for a later GET of its Content-Location, so caching
//! POST by body digest goes beyond RFC 9111. Everything else here follows RFC 9111
//! for a shared cache, and is stricter where it cannot revalidate.

use super::cache_control::{delta_seconds, CacheControl, MAX_DELTA_SECONDS};
use super::conditional;
use crate::http::headers::{has, list_items, values};
use super::record::{RecordMeta, StaleWindows};
use super::targeted;
use crate::http::date;
use crate::protocol::{AnswerRefusal, Limit, ProtocolBypass};

/// How requests carrying `Authorization` or `Cookie` are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialMode {
    /// Never looked up or stored: one user's answer is never another's.
    Bypass,
    /// Keyed by an HMAC of the credential, so each credential has its own entries.
    Scoped,
}

/// The request-side decision; each variant's doc says what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDecision {
    /// Forward to the origin untouched, store nothing, report `fwd=bypass; detail=…`.
    Bypass(BypassReason),
    /// Hash the body, look the key up, replay a fresh hit, otherwise forward and store.
    Lookup {
        /// On a miss, answer 504 instead of forwarding.
        only_if_cached: bool,
        /// Whether the key carries a credential scope.
        scoped: bool,
    },
    /// The client demands a fresh answer: forward, then store it (`fwd=request`).
    Refresh { scoped: bool },
}

/// Why a request went around the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    Method,
    Auth,
    NoStore,
    BodyTooLarge,
    StoreError,
    /// Preconditions the cache cannot answer from a record (`If-Match`, or any
    /// conditional on a POST): the origin decides, and its answer is not stored.
    Conditional,
    /// The body format says so (a mutation, an unlisted JSON-RPC method, …).
    Protocol(ProtocolBypass),
}

impl BypassReason {
    pub fn detail(self) -> &'static str {
        match self {
            BypassReason::Protocol(reason) => reason.detail(),
            BypassReason::Method => "method",
            BypassReason::Auth => "auth",
            BypassReason::NoStore => "no-store",
            BypassReason::BodyTooLarge => "body-too-large",
            BypassReason::StoreError => "store-error",
            BypassReason::Conditional => "conditional",
        }
    }
}

/// The credential headers: their presence makes a request per-user.
pub const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "cookie"];

/// Decides what to do with a request before its body is read.
/// `cc` is the request's parsed `Cache-Control` (parsed once per request: the
/// lookup's freshness decision reads it too).
pub fn decide_request(
    method: &str,
    method_is_candidate: bool,
    headers: &[(String, Vec<u8>)],
    cc: &CacheControl,
    credentials: CredentialMode,
) -> RequestDecision {
    if !method_is_candidate {
        return RequestDecision::Bypass(BypassReason::Method);
    }
    // RFC 9110 §13.2.1: "A cache or intermediary MAY ignore If-Match ... [and]
    // If-Unmodified-Since" only when it forwards; and a POST's If-None-Match asks
    // for a 412 that only the origin can give.
    if conditional::must_forward(method, headers) {
        return RequestDecision::Bypass(BypassReason::Conditional);
    }
    // RFC 9111 §5.2.1.5: no-store "indicates that a cache MUST NOT store any part
    // of either this request or any response to it."
    if cc.no_store {
        return RequestDecision::Bypass(BypassReason::NoStore);
    }
    let has_credentials = CREDENTIAL_HEADERS.iter().any(|name| has(headers, name));
    let scoped = match (has_credentials, credentials) {
        (false, _) => false,
        // RFC 9111 §3.5: a shared cache must not reuse a response to a request with
        // Authorization for another request; without scoping we do not even look.
        (true, CredentialMode::Bypass) => return RequestDecision::Bypass(BypassReason::Auth),
        (true, CredentialMode::Scoped) => true,
    };
    // RFC 9111 §5.2.1.4: no-cache "indicates that the client prefers a stored
    // response not be used to satisfy the request without successful validation".
    // We cannot validate a POST, so we refetch (and refresh the entry).
    if cc.no_cache || cc.max_age == Some(0) {
        return RequestDecision::Refresh { scoped };
    }
    RequestDecision::Lookup {
        only_if_cached: cc.only_if_cached,
        scoped,
    }
}

/// Why a response was not stored (`detail=` of `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStoredReason {
    /// A status never stored (1xx, 304), or one outside `cacheable_statuses`
    /// without explicit freshness.
    Status,
    /// A 5xx without explicit freshness, or any 5xx with `store_server_errors` off.
    ServerError,
    PartialContent,
    NoStore,
    Private,
    /// `no-cache` responses need revalidation, which a POST cache cannot do.
    NoCache,
    SetCookie,
    VaryStar,
    /// Freshness lifetime of zero (or already used up by `Age`).
    Stale,
    /// Larger than `max_entry_bytes`.
    TooLarge,
    /// The KV write failed.
    StoreError,
    /// The entry this request read was purged or replaced before the answer
    /// could update it: it is not written back.
    Superseded,
    /// A persisted query sent as a hash alone, whose document post-cache has not
    /// seen run as a query.
    PersistedQuery,
    /// The body format's check of the answer refused it (GraphQL `errors`, a
    /// JSON-RPC `error`, an answer not in the protocol's shape).
    Answer(AnswerRefusal),
}

impl NotStoredReason {
    pub fn detail(self) -> &'static str {
        match self {
            NotStoredReason::Status => "status",
            NotStoredReason::ServerError => "server-error",
            NotStoredReason::PartialContent => "partial-content",
            NotStoredReason::NoStore => "no-store",
            NotStoredReason::Private => "private",
            NotStoredReason::NoCache => "no-cache",
            NotStoredReason::SetCookie => "set-cookie",
            NotStoredReason::VaryStar => "vary-star",
            NotStoredReason::Stale => "stale",
            NotStoredReason::TooLarge => "too-large",
            NotStoredReason::StoreError => "store-error",
            NotStoredReason::Superseded => "superseded",
            NotStoredReason::PersistedQuery => "persisted-query",
            NotStoredReason::Answer(refusal) => refusal.detail(),
        }
    }
}

/// The response-side decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storability {
    /// Capture the body and store it; it is fresh for `ttl` seconds from now.
    Store {
        ttl: u64,
        /// Age the response already had when it arrived (seconds), replayed in `Age`.
        initial_age: u64,
        /// Lower-case request header names from `Vary`.
        vary: Vec<String>,
        /// How long past `ttl` the entry may still be served stale.
        stale: StaleWindows,
    },
    /// Relay the response as it is and report why it was not stored.
    DoNotStore(NotStoredReason),
}

/// Which statuses may be stored, from `cacheable_statuses` and `store_server_errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPolicy {
    /// Statuses stored without explicit freshness, for `default_ttl` (RFC 9110
    /// §15.1's heuristically cacheable ones by default). Any other final status
    /// is stored only when its freshness is explicit.
    pub heuristic: Vec<u16>,
    /// Whether a 5xx may be stored at all.
    pub server_errors: bool,
}

/// Policy knobs from the configuration.
#[derive(Debug, Clone)]
pub struct StoragePolicy<'a> {
    pub cacheable_statuses: &'a StatusPolicy,
    /// Used when the origin gives no explicit freshness (seconds).
    pub default_ttl: u64,
    /// This cache's own targeted field (lower-case, "" for none), RFC 9213.
    pub targeted: &'a str,
    /// Stale windows (seconds) for responses that name none: the "out-of-band
    /// contract" of RFC 9111 §4.2.4.
    pub stale_while_revalidate: u64,
    pub stale_if_error: u64,
    /// What the body format's rules allow (`rpc_methods` TTLs, the chain tip):
    /// a lifetime in place of `default_ttl`, and a bound on any lifetime.
    pub limit: Limit,
}

/// Decides whether a response may be stored and for how long. `now` is Unix seconds.
pub fn decide_response(
    status: u16,
    headers: &[(String, Vec<u8>)],
    policy: &StoragePolicy<'_>,
    now: u64,
) -> Storability {
    use NotStoredReason::*;
    let refuse = Storability::DoNotStore;
    let statuses = policy.cacheable_statuses;
    // RFC 9111 §3: "the response status code is final" and, "if the response
    // status code is 206 or 304 ...: the cache understands the response status
    // code". A stored 304 would answer clients that sent no conditional. RFC 9110
    // §15: "Values outside the range 100..599 are invalid."
    if !(200..=599).contains(&status) || status == 304 {
        return refuse(Status);
    }
    // RFC 9111 §3.4: a cache that does not support Range and Content-Range MUST NOT
    // store incomplete responses.
    if status == 206 {
        return refuse(PartialContent);
    }
    if status >= 500 && !statuses.server_errors {
        return refuse(ServerError);
    }
    // RFC 9213: a targeted field, when valid, replaces Cache-Control and Expires
    // for this cache's decisions.
    let targeted::Governing { cc, expires_applies } = targeted::governing(headers, policy.targeted);
    // RFC 9111 §3: "the no-store cache directive is not present in the response".
    if cc.no_store {
        return refuse(NoStore);
    }
    // RFC 9111 §3: "if the cache is shared: the private response directive is
    // either not present or allows a shared cache to store a modified response".
    if cc.private {
        return refuse(Private);
    }
    if cc.no_cache {
        return refuse(NoCache);
    }
    // Set-Cookie carries per-user state; replaying it would hand one user's
    // session to another.
    if has(headers, "set-cookie") {
        return refuse(SetCookie);
    }
    let vary = list_items(&values(headers, "vary"));
    // RFC 9111 §4.1: "A stored response with a Vary header field value containing
    // a member "*" always fails to match."
    if vary.iter().any(|v| v == "*") {
        return refuse(VaryStar);
    }
    let expires = if expires_applies { values(headers, "expires") } else { Vec::new() };
    // RFC 9111 §3: the response must contain "at least one of the following: a
    // public response directive; ... an Expires header field; a max-age response
    // directive; if the cache is shared: an s-maxage response directive; ... a
    // status code that is defined as heuristically cacheable". §4.2.2: "heuristics
    // can only be used on responses without explicit freshness whose status codes
    // are defined as "heuristically cacheable" ... and on responses without
    // explicit freshness that have been marked as explicitly cacheable (e.g., with
    // a public response directive)."
    let explicit = cc.s_maxage.is_some() || cc.max_age.is_some() || !expires.is_empty();
    if !explicit && !cc.public && !statuses.heuristic.contains(&status) {
        return refuse(if status >= 500 { ServerError } else { Status });
    }
    let when_silent = policy.limit.when_silent.unwrap_or(policy.default_ttl);
    let lifetime = freshness_lifetime(&cc, &expires, headers, when_silent, now);
    // A rule's bound wins over a longer lifetime the origin states; a shorter
    // one the origin states wins over the rule.
    let lifetime = policy.limit.at_most.map_or(lifetime, |bound| lifetime.min(bound));
    let initial_age = initial_age(headers);
    // RFC 9111 §1.2.2: a cache "MUST consider the value to be 2147483648 (2^31)"
    // when it cannot represent it "or if any of its subsequent calculations
    // overflows": the stored expiry is `now` plus this.
    let ttl = lifetime.min(MAX_DELTA_SECONDS).saturating_sub(initial_age);
    if ttl == 0 {
        return refuse(Stale);
    }
    Storability::Store {
        ttl,
        initial_age,
        vary,
        stale: stale_windows(&cc, policy),
    }
}

/// A bound read from the answer itself (the GraphQL type rules), known only
/// once it is captured, applied to the record head [`decide_response`] made:
/// fresh for at most `cap` seconds counted from when the origin produced it
/// (its initial age counts), or less if the origin or the request's rules
/// said less. The configured stale windows do not stretch the bound; windows
/// the origin named still count. `None`: the answer is already older than the
/// bound (not stored, `stale`).
pub fn bound_by_answer(meta: &RecordMeta, headers: &[(String, Vec<u8>)], policy: &StoragePolicy<'_>, cap: u64) -> Option<RecordMeta> {
    let left = cap.saturating_sub(u64::from(meta.initial_age));
    if left == 0 {
        return None;
    }
    let targeted::Governing { cc, .. } = targeted::governing(headers, policy.targeted);
    let at_most = Some(policy.limit.at_most.map_or(cap, |bound| bound.min(cap)));
    let bounded = StoragePolicy { limit: Limit { at_most, ..policy.limit }, ..policy.clone() };
    Some(RecordMeta {
        fresh_until: meta.fresh_until.min(meta.stored_at.saturating_add(left)),
        stale: stale_windows(&cc, &bounded),
        ..meta.clone()
    })
}

/// How long a stored response may be served stale.
fn stale_windows(cc: &CacheControl, policy: &StoragePolicy<'_>) -> StaleWindows {
    // RFC 9111 §5.2.2.2 must-revalidate: "once the response has become stale, a
    // cache MUST NOT reuse that response to satisfy another request until it has
    // been successfully validated by the origin"; §5.2.2.8 proxy-revalidate and
    // §5.2.2.10 s-maxage ("also implies the semantics of the proxy-revalidate
    // response directive") say the same to a shared cache; §5.2.2.4 no-cache
    // forbids even fresh reuse without validation.
    if cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some() || cc.no_cache {
        return StaleWindows { while_revalidate: 0, if_error: 0, forbidden: true };
    }
    let seconds = |n: u64| n.min(u64::from(u32::MAX)) as u32;
    // RFC 5861 §3, §4: the response's own windows; without them, the configured
    // ones — except under a rule's bound, which a configured window would
    // stretch (an answer at the chain tip served for the window past it).
    let configured = |window: u64| if policy.limit.at_most.is_some() { 0 } else { window };
    StaleWindows {
        while_revalidate: seconds(cc.stale_while_revalidate.unwrap_or(configured(policy.stale_while_revalidate))),
        if_error: seconds(cc.stale_if_error.unwrap_or(configured(policy.stale_if_error))),
        forbidden: false,
    }
}

/// RFC 9111 §4.2.1: "If the cache is shared and the s-maxage response directive
/// is present, use its value, or if the max-age response directive is present,
/// use its value, or if the Expires response header field is present, use its
/// value minus the value of the Date response header field (using the time the
/// message was received if it is not present), or otherwise, no explicit
/// expiration time is present in the response. A heuristic freshness lifetime
/// might be applicable".
fn freshness_lifetime(
    cc: &CacheControl,
    expires: &[&[u8]],
    headers: &[(String, Vec<u8>)],
    default_ttl: u64,
    now: u64,
) -> u64 {
    if let Some(s) = cc.s_maxage {
        return s;
    }
    if let Some(m) = cc.max_age {
        return m;
    }
    match expires {
        [] => default_ttl,
        // RFC 9111 §5.3: "A cache recipient MUST interpret invalid date formats,
        // especially the value "0", as representing a time in the past". §4.2.1:
        // with "two Expires header field lines ... either the first occurrence
        // should be used or the response should be considered stale" — stale.
        [one] => {
            let Some(expires) = date::parse(one) else {
                return 0;
            };
            let date = values(headers, "date").first().and_then(|d| date::parse(d)).unwrap_or(now);
            expires.saturating_sub(date)
        }
        _ => 0,
    }
}

/// The age a response arrives with: its `Age` value. RFC 9111 §4.2.3 also takes
/// the apparent age (receipt time minus `Date`); we leave that out, because an
/// edge clock running ahead of the origin's would age every response by the skew
/// and could make all of them stale on arrival.
///
/// RFC 9111 §5.1: "a cache encountering a message with a list-based Age field
/// value SHOULD use the first member of the field value, discarding subsequent
/// ones. If the field value (after discarding additional members, as per above)
/// is invalid (e.g., it contains something other than a non-negative integer),
/// a cache SHOULD ignore the field." Several lines are one list.
fn initial_age(headers: &[(String, Vec<u8>)]) -> u64 {
    let Some(line) = values(headers, "age").into_iter().next() else { return 0 };
    let first = line.split(|&b| b == b',').next().unwrap_or_default();
    std::str::from_utf8(first).ok().and_then(|v| delta_seconds(v.trim_matches([' ', '\t']))).unwrap_or(0)
}

/// RFC 9111 §4.1: a stored response matches only if each header named by its
/// `Vary` has the same values in the new request. The caller compares
/// [`vary_digest`]s of the stored and current requests.
pub fn vary_digest(request_headers: &[(String, Vec<u8>)], vary: &[String]) -> [u8; 32] {
    let mut h = crate::http::digest::FieldHasher::new();
    h.count(vary.len());
    for name in vary {
        h.field(name.as_bytes());
        // Credentials never enter a record, not even hashed: with credential
        // scoping they are already part of the key, otherwise such requests bypass.
        if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let vals = values(request_headers, name);
        h.count(vals.len());
        for v in vals {
            h.field(v);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: &[u16] = &[200, 203, 204, 300, 301, 404, 405, 410, 414, 501];
    const NOW: u64 = 1_700_000_000;

    fn statuses(server_errors: bool) -> StatusPolicy {
        StatusPolicy { heuristic: STATUSES.to_vec(), server_errors }
    }

    fn policy(statuses: &StatusPolicy) -> StoragePolicy<'_> {
        StoragePolicy {
            cacheable_statuses: statuses,
            default_ttl: 30,
            targeted: "post-cache-control",
            stale_while_revalidate: 0,
            stale_if_error: 0,
            limit: Limit::default(),
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn cc(pairs: &[(&str, &str)]) -> CacheControl {
        CacheControl::parse(&values(&h(pairs), "cache-control"))
    }

    fn decide(status: u16, pairs: &[(&str, &str)]) -> Storability {
        decide_statuses(status, pairs, &statuses(true))
    }

    fn decide_statuses(status: u16, pairs: &[(&str, &str)], statuses: &StatusPolicy) -> Storability {
        decide_response(status, &h(pairs), &policy(statuses), NOW)
    }

    fn ttl(s: Storability) -> u64 {
        match s {
            Storability::Store { ttl, .. } => ttl,
            other => panic!("expected Store, got {other:?}"),
        }
    }

    #[test]
    fn freshness_precedence_s_maxage_max_age_expires_default() {
        assert_eq!(ttl(decide(200, &[("cache-control", "max-age=10, s-maxage=20")])), 20);
        let expires_in_100 = "Tue, 14 Nov 2023 22:15:00 GMT"; // NOW + 100
        assert_eq!(date::parse(expires_in_100.as_bytes()), Some(NOW + 100));
        assert_eq!(
            ttl(decide(200, &[("cache-control", "max-age=10"), ("expires", expires_in_100)])),
            10
        );
        assert_eq!(ttl(decide(200, &[("expires", expires_in_100)])), 100);
        assert_eq!(ttl(decide(200, &[])), 30);
    }

    #[test]
    fn expires_is_relative_to_date_and_invalid_is_stale() {
        let pairs = [
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),    // NOW
            ("expires", "Tue, 14 Nov 2023 22:13:50 GMT"), // NOW + 30
        ];
        assert_eq!(ttl(decide(200, &pairs)), 30);
        assert_eq!(decide(200, &[("expires", "0")]), Storability::DoNotStore(NotStoredReason::Stale));
    }

    #[test]
    fn date_skew_does_not_age_responses() {
        let pairs = [("cache-control", "max-age=100"), ("date", "Tue, 14 Nov 2023 22:00:00 GMT")];
        assert_eq!(ttl(decide(200, &pairs)), 100);
    }

    #[test]
    fn age_uses_up_freshness() {
        assert_eq!(ttl(decide(200, &[("cache-control", "max-age=100"), ("age", "40")])), 60);
        assert_eq!(
            decide(200, &[("cache-control", "max-age=100"), ("age", "100")]),
            Storability::DoNotStore(NotStoredReason::Stale)
        );
    }

    #[test]
    fn never_stored_cases() {
        use NotStoredReason::*;
        let cases: &[(u16, &[(&str, &str)], NotStoredReason)] = &[
            (503, &[], ServerError),
            (500, &[("cache-control", "no-store, max-age=60")], NoStore),
            (206, &[("cache-control", "max-age=60")], PartialContent),
            (304, &[("cache-control", "max-age=60")], Status),
            (103, &[("cache-control", "max-age=60")], Status),
            (201, &[], Status),
            (302, &[], Status),
            (200, &[("cache-control", "no-store, max-age=60")], NoStore),
            (200, &[("cache-control", "private, max-age=60")], Private),
            (200, &[("cache-control", "no-cache")], NoCache),
            (200, &[("set-cookie", "sid=1"), ("cache-control", "max-age=60")], SetCookie),
            (200, &[("vary", "accept, *")], VaryStar),
            (200, &[("cache-control", "max-age=0")], Stale),
        ];
        for (status, pairs, reason) in cases {
            assert_eq!(
                decide(*status, pairs),
                Storability::DoNotStore(*reason),
                "{status} {pairs:?}"
            );
        }
    }

    #[test]
    fn any_final_status_with_explicit_freshness_is_stored() {
        let expires_in_100 = "Tue, 14 Nov 2023 22:15:00 GMT";
        for status in [201, 302, 307, 308, 400, 403, 500, 502, 503, 599] {
            assert_eq!(ttl(decide(status, &[("cache-control", "max-age=60")])), 60, "{status}");
            assert_eq!(ttl(decide(status, &[("cache-control", "s-maxage=70")])), 70, "{status}");
            assert_eq!(ttl(decide(status, &[("expires", expires_in_100)])), 100, "{status}");
            assert_eq!(ttl(decide(status, &[("post-cache-control", "max-age=80")])), 80, "{status}");
        }
    }

    #[test]
    fn public_allows_heuristic_freshness_for_any_final_status() {
        assert_eq!(ttl(decide(302, &[("cache-control", "public")])), 30);
        assert_eq!(ttl(decide(503, &[("cache-control", "public")])), 30);
    }

    #[test]
    fn partial_content_not_modified_informational_and_invalid_statuses_are_never_stored() {
        let explicit = [("cache-control", "public, max-age=60")];
        assert_eq!(decide(206, &explicit), Storability::DoNotStore(NotStoredReason::PartialContent));
        for status in [100, 103, 199, 304, 600, 999] {
            assert_eq!(decide(status, &explicit), Storability::DoNotStore(NotStoredReason::Status), "{status}");
        }
        // Not even when a list that the configuration would refuse names them.
        let listed = StatusPolicy { heuristic: vec![206, 304, 103], server_errors: true };
        assert_eq!(decide_statuses(304, &[], &listed), Storability::DoNotStore(NotStoredReason::Status));
        assert_eq!(decide_statuses(206, &[], &listed), Storability::DoNotStore(NotStoredReason::PartialContent));
    }

    #[test]
    fn store_server_errors_off_refuses_every_5xx_whatever_its_freshness() {
        let off = statuses(false);
        for pairs in [&[("cache-control", "max-age=60")][..], &[("cache-control", "public")], &[]] {
            for status in [500, 501, 503] {
                assert_eq!(decide_statuses(status, pairs, &off), Storability::DoNotStore(NotStoredReason::ServerError), "{status} {pairs:?}");
            }
        }
        assert_eq!(ttl(decide_statuses(404, &[], &off)), 30, "other statuses are unaffected");
    }

    #[test]
    fn a_rules_bound_wins_over_a_longer_origin_lifetime_and_loses_to_a_shorter_one() {
        let statuses = statuses(true);
        let bounded = StoragePolicy { limit: Limit { when_silent: Some(2), at_most: Some(2) }, ..policy(&statuses) };
        let ttl = |headers: &[(&str, &str)], policy: &StoragePolicy<'_>| match decide_response(200, &h(headers), policy, NOW) {
            Storability::Store { ttl, .. } => ttl,
            other => panic!("{other:?}"),
        };
        assert_eq!(ttl(&[("cache-control", "max-age=60")], &bounded), 2);
        assert_eq!(ttl(&[("cache-control", "max-age=1")], &bounded), 1);
        assert_eq!(ttl(&[], &bounded), 2);
        assert!(matches!(decide_response(200, &h(&[("cache-control", "no-store")]), &bounded, NOW), Storability::DoNotStore(_)));
        // A lifetime in place of default_ttl, without a bound.
        let forever = StoragePolicy { limit: Limit { when_silent: Some(1 << 31), at_most: None }, ..policy(&statuses) };
        assert_eq!(ttl(&[], &forever), 1 << 31);
        assert_eq!(ttl(&[("cache-control", "max-age=60")], &forever), 60);
    }

    #[test]
    fn configured_stale_windows_do_not_stretch_a_rules_bound() {
        let statuses = statuses(true);
        let base = StoragePolicy { stale_while_revalidate: 30, stale_if_error: 300, ..policy(&statuses) };
        let windows = |policy: &StoragePolicy<'_>, headers: &[(&str, &str)]| match decide_response(200, &h(headers), policy, NOW) {
            Storability::Store { stale, .. } => (stale.while_revalidate, stale.if_error),
            other => panic!("{other:?}"),
        };
        assert_eq!(windows(&base, &[]), (30, 300));
        let bounded = StoragePolicy { limit: Limit { when_silent: Some(2), at_most: Some(2) }, ..base };
        assert_eq!(windows(&bounded, &[]), (0, 0));
        assert_eq!(windows(&bounded, &[("cache-control", "max-age=5, stale-if-error=60")]), (0, 60));
    }

    /// The record head `decide_response` makes at NOW, then bounded by an
    /// answer's `cap`: (seconds fresh, stale windows), or `None` when refused.
    fn bounded(policy: &StoragePolicy<'_>, headers: &[(&str, &str)], cap: u64) -> Option<(u64, StaleWindows)> {
        let Storability::Store { ttl, initial_age, stale, .. } = decide_response(200, &h(headers), policy, NOW) else {
            panic!("{headers:?} is storable")
        };
        let meta = RecordMeta {
            stored_at: NOW,
            fresh_until: NOW + ttl,
            stale,
            initial_age: initial_age as u32,
            status: 200,
            request_digest: [0; 32],
            vary_digest: [0; 32],
            vary: Vec::new(),
        };
        bound_by_answer(&meta, &h(headers), policy, cap).map(|m| (m.fresh_until - NOW, m.stale))
    }

    #[test]
    fn an_answers_bound_and_the_origins_freshness_combine_to_the_smaller() {
        let statuses = statuses(true);
        let plain = policy(&statuses);
        let secs = |policy: &StoragePolicy<'_>, headers: &[(&str, &str)], cap: u64| bounded(policy, headers, cap).unwrap().0;
        // The rule is stricter than the origin: the rule wins.
        assert_eq!(secs(&plain, &[("cache-control", "max-age=60")], 10), 10);
        // The origin is stricter than the rule: the origin wins.
        assert_eq!(secs(&plain, &[("cache-control", "max-age=5")], 10), 5);
        assert_eq!(secs(&plain, &[("post-cache-control", "max-age=3"), ("cache-control", "max-age=60")], 10), 3);
        // A silent origin: default_ttl (30), or an operation's rule in its place, then the bound.
        assert_eq!(secs(&plain, &[], 10), 10);
        assert_eq!(secs(&plain, &[], 100), 30);
        let op = StoragePolicy { limit: Limit { when_silent: Some(600), at_most: Some(600) }, ..policy(&statuses) };
        assert_eq!(secs(&op, &[], 100), 100);
        let op = StoragePolicy { limit: Limit { when_silent: Some(20), at_most: Some(20) }, ..policy(&statuses) };
        assert_eq!(secs(&op, &[("cache-control", "max-age=60")], 100), 20, "the operation's rule is stricter still");
        // The bound counts from when the origin produced the answer.
        assert_eq!(secs(&plain, &[("cache-control", "max-age=60"), ("age", "4")], 10), 6);
        assert_eq!(bounded(&plain, &[("cache-control", "max-age=60"), ("age", "10")], 10), None);
    }

    #[test]
    fn configured_stale_windows_do_not_stretch_an_answers_bound_but_the_origins_own_count() {
        let statuses = statuses(true);
        let base = StoragePolicy { stale_while_revalidate: 30, stale_if_error: 300, ..policy(&statuses) };
        let windows = |headers: &[(&str, &str)]| {
            let stale = bounded(&base, headers, 10).unwrap().1;
            (stale.while_revalidate, stale.if_error, stale.forbidden)
        };
        assert_eq!(windows(&[]), (0, 0, false));
        assert_eq!(windows(&[("cache-control", "max-age=60, stale-while-revalidate=5")]), (5, 0, false));
        assert_eq!(windows(&[("cache-control", "max-age=60, must-revalidate")]), (0, 0, true));
    }

    #[test]
    fn heuristically_cacheable_statuses_are_stored_for_the_default_ttl() {
        for &status in STATUSES {
            assert_eq!(ttl(decide(status, &[])), 30, "{status}");
        }
        assert_eq!(decide(502, &[]), Storability::DoNotStore(NotStoredReason::ServerError));
    }

    #[test]
    fn a_max_age_of_2_to_the_64_is_stored_for_2_to_the_31_seconds() {
        assert_eq!(ttl(decide(200, &[("cache-control", "max-age=18446744073709551615")])), 1 << 31);
        assert_eq!(ttl(decide(200, &[("cdn-cache-control", "s-maxage=999999999999999")])), 1 << 31);
        assert_eq!(ttl(decide(200, &[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")])), 1 << 31);
        let statuses = statuses(true);
        let policy = StoragePolicy { default_ttl: u64::MAX, ..policy(&statuses) };
        assert_eq!(ttl(decide_response(200, &[], &policy, NOW)), 1 << 31);
    }

    #[test]
    fn invalid_expires_forms_are_already_expired() {
        for bad in [
            "Tue, 14 Nov 2023 2:15:00 GMT",
            "Tue, 14-Nov-2023 22:15:00 GMT",
            "Tue 14 Nov 2023 22:15:00 GMT",
            "Tue,  14 Nov 2023 22:15:00 GMT",
            "Tue, 14 Nov 18446744073709551615 22:15:00 GMT",
            "0",
        ] {
            assert_eq!(decide(200, &[("expires", bad)]), Storability::DoNotStore(NotStoredReason::Stale), "{bad:?}");
        }
    }

    #[test]
    fn several_expires_lines_are_already_expired() {
        let expires_in_100 = ("expires", "Tue, 14 Nov 2023 22:15:00 GMT");
        assert_eq!(decide(200, &[expires_in_100, expires_in_100]), Storability::DoNotStore(NotStoredReason::Stale));
        // max-age makes Expires not count at all.
        assert_eq!(ttl(decide(200, &[("cache-control", "max-age=60"), expires_in_100, ("expires", "0")])), 60);
    }

    #[test]
    fn an_invalid_age_is_ignored_and_the_first_of_several_counts() {
        let max_age = ("cache-control", "max-age=100");
        for ignored in ["10a", "+10", "-10", "1.5", "", "ten"] {
            assert_eq!(ttl(decide(200, &[max_age, ("age", ignored)])), 100, "{ignored:?}");
        }
        assert_eq!(ttl(decide(200, &[max_age, ("age", "40, 0")])), 60);
        assert_eq!(ttl(decide(200, &[max_age, ("age", "0,40")])), 100);
        assert_eq!(ttl(decide(200, &[max_age, ("age", " 40 ")])), 60);
        assert_eq!(ttl(decide(200, &[max_age, ("age", "40"), ("age", "0")])), 60);
        assert_eq!(ttl(decide(200, &[max_age, ("age", "0"), ("age", "40")])), 100);
        assert_eq!(
            decide(200, &[max_age, ("age", "18446744073709551616")]),
            Storability::DoNotStore(NotStoredReason::Stale),
            "an age too large to represent is 2^31, not ignored"
        );
    }

    #[test]
    fn vary_names_are_kept() {
        match decide(200, &[("vary", "Accept-Language"), ("vary", "x-tenant")]) {
            Storability::Store { vary, .. } => assert_eq!(vary, vec!["accept-language", "x-tenant"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vary_digest_tracks_varied_values_but_never_credentials() {
        let vary = vec!["accept-language".to_string(), "authorization".to_string()];
        let en = h(&[("accept-language", "en"), ("authorization", "Bearer a")]);
        let en_other_user = h(&[("accept-language", "en"), ("authorization", "Bearer b")]);
        let de = h(&[("accept-language", "de"), ("authorization", "Bearer a")]);
        assert_eq!(vary_digest(&en, &vary), vary_digest(&en_other_user, &vary));
        assert_ne!(vary_digest(&en, &vary), vary_digest(&de, &vary));
    }

    #[test]
    fn request_decisions() {
        use RequestDecision::*;
        let d = |candidate, pairs: &[(&str, &str)], mode| decide_request("POST", candidate, &h(pairs), &cc(pairs), mode);
        let bypass = CredentialMode::Bypass;
        let scoped = CredentialMode::Scoped;
        assert_eq!(d(false, &[], bypass), Bypass(BypassReason::Method));
        assert_eq!(d(true, &[], bypass), Lookup { only_if_cached: false, scoped: false });
        assert_eq!(d(true, &[("authorization", "x")], bypass), Bypass(BypassReason::Auth));
        assert_eq!(d(true, &[("Cookie", "a=b")], bypass), Bypass(BypassReason::Auth));
        assert_eq!(
            d(true, &[("authorization", "x")], scoped),
            Lookup { only_if_cached: false, scoped: true }
        );
        assert_eq!(d(true, &[("cache-control", "no-store")], scoped), Bypass(BypassReason::NoStore));
        assert_eq!(d(true, &[("cache-control", "no-cache")], bypass), Refresh { scoped: false });
        assert_eq!(d(true, &[("cache-control", "max-age=0")], bypass), Refresh { scoped: false });
        assert_eq!(
            d(true, &[("cache-control", "only-if-cached")], bypass),
            Lookup { only_if_cached: true, scoped: false }
        );
    }

    fn windows(s: Storability) -> StaleWindows {
        match s {
            Storability::Store { stale, .. } => stale,
            other => panic!("expected Store, got {other:?}"),
        }
    }

    fn decide_with(pairs: &[(&str, &str)], swr: u64, sie: u64) -> Storability {
        let statuses = statuses(true);
        let policy = StoragePolicy { stale_while_revalidate: swr, stale_if_error: sie, ..policy(&statuses) };
        decide_response(200, &h(pairs), &policy, NOW)
    }

    #[test]
    fn rfc_5861_directives_set_the_stale_windows_over_the_configured_ones() {
        let w = windows(decide_with(&[("cache-control", "max-age=60, stale-while-revalidate=30, stale-if-error=600")], 5, 7));
        assert_eq!(w, StaleWindows { while_revalidate: 30, if_error: 600, forbidden: false });
        let only_swr = windows(decide_with(&[("cache-control", "max-age=60, stale-while-revalidate=30")], 5, 7));
        assert_eq!(only_swr, StaleWindows { while_revalidate: 30, if_error: 7, forbidden: false });
        let configured = windows(decide_with(&[("cache-control", "max-age=60")], 5, 7));
        assert_eq!(configured, StaleWindows { while_revalidate: 5, if_error: 7, forbidden: false });
        let none = windows(decide_with(&[("cache-control", "max-age=60")], 0, 0));
        assert_eq!(none, StaleWindows::default());
    }

    #[test]
    fn must_revalidate_proxy_revalidate_and_s_maxage_forbid_stale_whatever_the_variables_say() {
        let forbidden = StaleWindows { while_revalidate: 0, if_error: 0, forbidden: true };
        for cc in [
            "max-age=60, must-revalidate, stale-if-error=600",
            "max-age=60, proxy-revalidate",
            "s-maxage=60, stale-while-revalidate=30",
        ] {
            assert_eq!(windows(decide_with(&[("cache-control", cc)], 100, 100)), forbidden, "{cc}");
        }
    }

    #[test]
    fn cdn_cache_control_governs_over_cache_control_and_the_own_field_over_both() {
        let browser_only = [("cache-control", "no-store"), ("cdn-cache-control", "max-age=90")];
        assert_eq!(ttl(decide(200, &browser_only)), 90);
        let own = [("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=90"), ("Post-Cache-Control", "max-age=300, stale-if-error=60")];
        assert_eq!(ttl(decide(200, &own)), 300);
        assert_eq!(windows(decide(200, &own)).if_error, 60);
        // The targeted field forbids storing even where Cache-Control allows it.
        let cdn_no_store = [("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")];
        assert_eq!(decide(200, &cdn_no_store), Storability::DoNotStore(NotStoredReason::NoStore));
        // An invalid targeted field is ignored, and Cache-Control governs again.
        let invalid = [("cache-control", "max-age=60"), ("cdn-cache-control", "max-age=\"90")];
        assert_eq!(ttl(decide(200, &invalid)), 60);
    }

    #[test]
    fn a_targeted_field_makes_expires_not_count() {
        let expires_in_100 = "Tue, 14 Nov 2023 22:15:00 GMT";
        // Without a lifetime in the targeted field, the default applies, not Expires.
        assert_eq!(ttl(decide(200, &[("expires", expires_in_100), ("cdn-cache-control", "public")])), 30);
        assert_eq!(ttl(decide(200, &[("expires", expires_in_100)])), 100);
    }

    #[test]
    fn conditionals_the_cache_cannot_answer_go_around_it() {
        let d = |method, pairs: &[(&str, &str)]| decide_request(method, true, &h(pairs), &cc(pairs), CredentialMode::Bypass);
        let conditional = RequestDecision::Bypass(BypassReason::Conditional);
        assert_eq!(d("POST", &[("if-none-match", "\"a\"")]), conditional);
        assert_eq!(d("POST", &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]), conditional);
        assert_eq!(d("QUERY", &[("if-match", "\"a\"")]), conditional);
        assert_eq!(d("GET", &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]), conditional);
        let lookup = RequestDecision::Lookup { only_if_cached: false, scoped: false };
        assert_eq!(d("QUERY", &[("if-none-match", "\"a\"")]), lookup);
        assert_eq!(d("GET", &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]), lookup);
    }
}
