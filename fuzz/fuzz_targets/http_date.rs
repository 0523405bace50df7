//! The HTTP-date parser (RFC 9110 §5.6.7) and the `Expires` freshness built on
//! it. Any bytes never panic (CI runs this with debug assertions, so no
//! arithmetic may overflow either). A date it accepts lies in 1970..=9999, and
//! the input, trimmed, is exactly one of the spellings of that second
//! (IMF-fixdate, rfc850, asctime): no other spelling of a date, no wrong day
//! name, no extra space gets in. It agrees with the `httpdate` crate, which
//! refuses a leap second (`:60`) and takes any byte between an rfc850 date and
//! its time. As `Expires` beside `Date` (input split at the
//! first 0xFF), a valid pair gives exactly their difference as freshness, capped
//! at 2^31 seconds, and anything else is already expired.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::cache::cache_control::MAX_DELTA_SECONDS;
use post_cache::cache::policy::{decide_response, NotStoredReason, Storability, StatusPolicy, StoragePolicy};
use post_cache::http::date::{format, parse, LATEST};
use post_cache::protocol::Limit;
use std::time::UNIX_EPOCH;

const NOW: u64 = 1_700_000_000;

/// The spellings of the second that `imf` (an IMF-fixdate) names: asctime's
/// `date3 = month SP ( 2DIGIT / ( SP DIGIT ) )` allows two.
fn spellings(imf: &str) -> [String; 4] {
    let (day_name, day, month, year, time) = (&imf[0..3], &imf[5..7], &imf[8..11], &imf[12..16], &imf[17..25]);
    let long_name = match day_name {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let short_day = day.trim_start_matches('0');
    [
        imf.to_string(),
        format!("{long_name}, {day}-{month}-{} {time} GMT", &year[2..]),
        format!("{day_name} {month} {short_day:>2} {time} {year}"),
        format!("{day_name} {month} {day} {time} {year}"),
    ]
}

fn check_date(raw: &[u8]) -> Option<u64> {
    let oracle = std::str::from_utf8(raw)
        .ok()
        .and_then(|t| httpdate::parse_http_date(t).ok())
        .map(|t| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs());
    let text = std::str::from_utf8(raw).map(|t| t.trim_matches([' ', '\t']));
    let Some(seconds) = parse(raw) else {
        // httpdate also trims other whitespace (CR, LF, VT, FF), which no field
        // value holds, and takes any byte for the space after an rfc850 date.
        let lax_rfc850 = |t: &str| t.split_once(", ").is_some_and(|(_, r)| r.len() == 22 && r.as_bytes()[9] != b' ');
        assert!(oracle.is_none() || text.is_ok_and(|t| t != t.trim() || lax_rfc850(t)), "httpdate accepts {raw:?}");
        return None;
    };
    assert!(seconds <= LATEST);
    let text = text.expect("an accepted date is text");
    let imf = format(seconds).expect("an accepted date can be formatted");
    assert_eq!(parse(imf.as_bytes()), Some(seconds), "{imf}");
    let leap = text.len() >= 8 && (text.contains(":60 ") || text.ends_with(":60"));
    if leap {
        let before = format(seconds - 1).expect("formats").replace(":59 GMT", ":60 GMT");
        assert!(spellings(&before).iter().any(|s| s == text), "{text:?} is not a spelling of {before}");
        assert_eq!(oracle, None);
    } else {
        assert!(spellings(&imf).iter().any(|s| s == text), "{text:?} is not a spelling of {imf}");
        assert_eq!(oracle, Some(seconds), "{text:?}");
    }
    Some(seconds)
}

fuzz_target!(|data: &[u8]| {
    check_date(data);
    let mut parts = data.splitn(2, |&b| b == 0xFF);
    let expires = parts.next().unwrap_or_default();
    let date = parts.next().unwrap_or_default();
    let (expires_at, date_at) = (check_date(expires), check_date(date));
    let statuses = StatusPolicy { heuristic: vec![200], server_errors: true };
    let policy = StoragePolicy {
        cacheable_statuses: &statuses,
        default_ttl: 30,
        targeted: "post-cache-control",
        stale_while_revalidate: 0,
        stale_if_error: 0,
        limit: Limit::default(),
    };
    let headers = vec![("expires".to_string(), expires.to_vec()), ("date".to_string(), date.to_vec())];
    let decided = decide_response(200, &headers, &policy, NOW);
    let lifetime = expires_at.map_or(0, |e| e.saturating_sub(date_at.unwrap_or(NOW)).min(MAX_DELTA_SECONDS));
    match decided {
        Storability::Store { ttl, .. } => assert_eq!(ttl, lifetime),
        Storability::DoNotStore(reason) => {
            assert_eq!(reason, NotStoredReason::Stale);
            assert_eq!(lifetime, 0);
        }
    }
});
