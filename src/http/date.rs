//! HTTP-date (RFC 9110 §5.6.7), parsed strictly and without overflow: each of
//! the three forms a recipient must accept at its exact length and spacing, a
//! four-digit year from 1970 to 9999 (two digits in the obsolete rfc850 form), a
//! day of the month that exists, and a day name that matches the date. Anything
//! else is not an HTTP-date, and the caller decides what that means (RFC 9111
//! §5.3: an invalid `Expires` is a time in the past).

/// Unix seconds of the last second an HTTP-date can name (9999-12-31 23:59:59).
pub const LATEST: u64 = 253_402_300_799;

const DAY_NAMES: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Parses an HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate), and the
/// obsolete "Sunday, 06-Nov-94 08:49:37 GMT" (rfc850-date) and
/// "Sun Nov  6 08:49:37 1994" (asctime-date). Returns Unix seconds.
///
/// RFC 9110 §5.6.7: "A recipient that parses a timestamp value in an HTTP field
/// MUST accept all three HTTP-date formats."
pub fn parse(raw: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    let b = text.as_bytes();
    // Every byte checked below is ASCII, so each slice falls on a char boundary.
    if !text.is_ascii() {
        return None;
    }
    let (name, day, month, year, time) = if b.len() == 29 && b[3] == b',' {
        // IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
        // date1 = day SP month SP year
        separated(b, &[(4, b' '), (7, b' '), (11, b' '), (16, b' ')])?;
        if &b[25..] != b" GMT" {
            return None;
        }
        (&text[..3], number(&b[5..7])?, &text[8..11], number(&b[12..16])?, &b[17..25])
    } else if b.len() == 24 {
        // asctime-date = day-name SP date3 SP time-of-day SP year
        // date3 = month SP ( 2DIGIT / ( SP DIGIT ) )
        separated(b, &[(3, b' '), (7, b' '), (10, b' '), (19, b' ')])?;
        let day = if b[8] == b' ' { number(&b[9..10])? } else { number(&b[8..10])? };
        (&text[..3], day, &text[4..7], number(&b[20..24])?, &b[11..19])
    } else {
        // rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT
        // date2 = day "-" month "-" 2DIGIT
        let (name, rest) = text.split_once(", ")?;
        let r = rest.as_bytes();
        if r.len() != 22 || !DAY_NAMES.contains(&name) {
            return None;
        }
        separated(r, &[(2, b'-'), (6, b'-'), (9, b' ')])?;
        if &r[18..] != b" GMT" {
            return None;
        }
        // Two-digit years: 70 to 99 are 1970 to 1999, the rest 2000 to 2069.
        let yy = number(&r[7..9])?;
        let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
        (name, number(&r[0..2])?, &rest[3..6], year, &r[10..18])
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    // time-of-day = hour ":" minute ":" second; second allows a leap second.
    separated(time, &[(2, b':'), (5, b':')])?;
    let (h, m, s) = (number(&time[0..2])?, number(&time[3..5])?, number(&time[6..8])?);
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday.
    let weekday = DAY_NAMES[((days + 4) % 7) as usize];
    if !weekday.starts_with(name) || (name.len() != 3 && name != weekday) {
        return None;
    }
    // A leap second at the very end would name a second past 9999.
    Some(days * 86_400 + h * 3600 + m * 60 + s).filter(|&t| t <= LATEST)
}

/// Whether each `(index, byte)` is there.
fn separated(b: &[u8], at: &[(usize, u8)]) -> Option<()> {
    at.iter().all(|&(i, c)| b[i] == c).then_some(())
}

/// A run of ASCII digits (at most four, so no overflow).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in 1970..=9999: whole years, then whole
/// months of the year, then the day.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let leap_days = |y: u64| y / 4 - y / 100 + y / 400;
    let years = (year - 1970) * 365 + leap_days(year - 1) - leap_days(1969);
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    years + months + day - 1
}

/// Formats Unix seconds as an IMF-fixdate, the form RFC 9110 §5.6.7 says a
/// sender generates; `None` past [`LATEST`].
pub fn format(seconds: u64) -> Option<String> {
    if seconds > LATEST {
        return None;
    }
    let (mut days, rest) = (seconds / 86_400, seconds % 86_400);
    let weekday = &DAY_NAMES[((days + 4) % 7) as usize][..3];
    let mut year = 1970;
    while days >= if is_leap(year) { 366 } else { 365 } {
        days -= if is_leap(year) { 366 } else { 365 };
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    let name = MONTHS[month as usize - 1];
    let (h, m, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    Some(format!("{weekday}, {:02} {name} {year} {h:02}:{m:02}:{s:02} GMT", days + 1))
}
#[cfg(test)]
mod tests {
    use super::*;

    const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const SECONDS: u64 = 784_111_777;

    #[test]
    fn the_three_forms_name_the_same_second() {
        assert_eq!(parse(IMF.as_bytes()), Some(SECONDS));
        assert_eq!(parse(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(SECONDS));
        assert_eq!(parse(b"Sun Nov  6 08:49:37 1994"), Some(SECONDS));
        assert_eq!(format(SECONDS).as_deref(), Some(IMF));
    }

    #[test]
    fn malformed_dates_are_not_http_dates() {
        for bad in [
            "Sun, 06 Nov 1994 8:49:37 GMT",    // one-digit hour
            "Sun, 06-Nov-1994 08:49:37 GMT",   // dashes in an IMF-fixdate
            "Sun 06 Nov 1994 08:49:37 GMT",    // no comma
            "Sun,  06 Nov 1994 08:49:37 GMT",  // two spaces
            "Sun, 06 Nov  1994 08:49:37 GMT",  // two spaces inside
            "Sun, 06 Nov 1994 08:49:37 PST",   // not GMT
            "Mon, 06 Nov 1994 08:49:37 GMT",   // the wrong day name
            "Thu, 30 Feb 2023 08:49:37 GMT",   // no such day
            "Sun, 06 Nov 1994 08:60:37 GMT",   // minute 60
            "Sun, 06 Nov 1994 24:49:37 GMT",   // hour 24
            "Monday, 06-Nov-94 08:49:37 GMT",  // the wrong long day name
            "Sun, 06-Nov-94 08:49:37 GMT",     // rfc850 with a short day name
            "Sun Nov 6 08:49:37 1994",         // asctime with one space before the day
            "Sun Nov  6 08:49:37 1994 GMT",    // asctime with a zone
            "Thu, 01 Jan 1970 00:00:00 GMT, Thu, 01 Jan 1970 00:00:00 GMT",
            "0",
            "",
            "garbage",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_twenty_digit_year_is_refused_without_overflow() {
        assert_eq!(parse(b"Sun, 06 Nov 18446744073709551615 08:49:37 GMT"), None);
        assert_eq!(parse(b"Sun Nov  6 08:49:37 99999999999999999999"), None);
        assert_eq!(parse(b"Sunday, 06-Nov-18446744073709551615 08:49:37 GMT"), None);
    }

    #[test]
    fn the_range_is_1970_to_9999() {
        assert_eq!(parse(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse(b"Wed, 31 Dec 1969 23:59:59 GMT"), None);
        assert_eq!(parse(b"Fri, 31 Dec 9999 23:59:59 GMT"), Some(LATEST));
        assert_eq!(format(LATEST).as_deref(), Some("Fri, 31 Dec 9999 23:59:59 GMT"));
        assert_eq!(format(LATEST + 1), None);
    }

    #[test]
    fn a_leap_second_is_the_next_minutes_first() {
        // RFC 9110 §5.6.7: "time-of-day = hour ":" minute ":" second ; 00:00:00 - 23:59:60 (leap second)".
        assert_eq!(parse(b"Sat, 31 Dec 2016 23:59:60 GMT"), parse(b"Sun, 01 Jan 2017 00:00:00 GMT"));
        assert_eq!(parse(b"Fri, 31 Dec 9999 23:59:60 GMT"), None, "past the last representable second");
    }

    #[test]
    fn asctime_days_may_be_two_digits() {
        assert_eq!(parse(b"Sun Nov 06 08:49:37 1994"), Some(SECONDS));
    }

    #[test]
    fn surrounding_whitespace_is_not_part_of_the_date() {
        assert_eq!(parse(format!(" {IMF}\t").as_bytes()), Some(SECONDS));
    }
}
