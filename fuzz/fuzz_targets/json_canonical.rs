//! The JSON parser and RFC 8785 canonicaliser: never panics; accepts exactly what
//! serde_json accepts (within its depth limit); its canonical form is JSON, is
//! its own canonical form, and denotes the same value as the input, every number
//! the same decimal value exactly. Numbers are compared as the decimals written
//! (serde_json's `arbitrary_precision` keeps their text), not as doubles: two
//! spellings of different values that round to one double must not share a
//! canonical form, and a comparison of doubles cannot see that.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::json::{self, JsonError};

fuzz_target!(|data: &[u8]| {
    let ours = json::parse(data);
    let oracle = serde_json::from_slice::<serde_json::Value>(data);
    match (&ours, &oracle) {
        (Ok(_), Err(e)) => panic!("we accepted what serde_json refused: {e}"),
        (Err(JsonError::TooDeep), _) => {}
        (Err(e), Ok(_)) => panic!("we refused what serde_json accepted: {e:?}"),
        _ => {}
    }
    if let Ok(canonical) = json::canonicalize(data) {
        let again = json::canonicalize(&canonical).expect("the canonical form is canonicalizable JSON");
        assert_eq!(again, canonical, "canonical form is not a fixed point");
        let a: serde_json::Value = serde_json::from_slice(data).expect("canonicalizable input is JSON");
        let b: serde_json::Value = serde_json::from_slice(&canonical).expect("canonical form is JSON");
        assert!(same_value(&a, &b), "canonical form denotes another value");
    }
});

/// Equal JSON values, numbers compared as exact decimals.
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.to_string(), y.to_string());
            let same = decimal(&x) == decimal(&y);
            assert!(same, "{x} and its canonical form {y} differ");
            same
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)),
        // serde_json keeps the last of duplicate members; canonicalize refuses them.
        (Object(x), Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w))),
        _ => a == b,
    }
}

/// A JSON number's exact value: sign, significant digits (no leading or trailing
/// zeros) and the power of ten of the last one. Zero, whatever its sign or
/// exponent, is one value (RFC 8785 writes minus zero as `0`). `None` for an
/// exponent too long to hold, which no finite double's spelling has.
fn decimal(text: &str) -> Option<(bool, Vec<u8>, i128)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).skip_while(|&d| d == b'0').collect();
    if digits.is_empty() {
        return Some((false, Vec::new(), 0));
    }
    let (exp_negative, exp_digits) = match exponent.as_bytes().first() {
        Some(b'-') => (true, &exponent[1..]),
        Some(b'+') => (false, &exponent[1..]),
        _ => (false, exponent),
    };
    let exp_digits = exp_digits.trim_start_matches('0');
    if exp_digits.len() > 30 {
        return None;
    }
    let magnitude: i128 = if exp_digits.is_empty() { 0 } else { exp_digits.parse().expect("digits") };
    let mut power = if exp_negative { -magnitude } else { magnitude } - frac.len() as i128;
    while digits.last() == Some(&b'0') {
        digits.pop();
        power += 1;
    }
    Some((negative, digits, power))
}
