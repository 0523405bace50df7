//! The JSON parser and RFC 8785 canonicaliser: never panics; accepts what
//! serde_json accepts (within its depth limit); its canonical form is JSON, is
//! its own canonical form, and denotes the same value as the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::json::{self, JsonError};

fuzz_target!(|data: &[u8]| {
    let ours = json::parse(data);
    let oracle = serde_json::from_slice::<serde_json::Value>(data);
    match (&ours, &oracle) {
        (Ok(_), Err(e)) => {
            // serde_json refuses numbers beyond f64; we accept them syntactically
            // (and canonicalize then refuses them as inexact).
            assert!(e.to_string().contains("out of range"), "we accepted what serde_json refused: {e}");
        }
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

/// Equal JSON values, numbers compared as doubles (RFC 8785's number model).
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => x.as_f64() == y.as_f64(),
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)),
        // serde_json keeps the last of duplicate members; canonicalize refuses them.
        (Object(x), Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w))),
        _ => a == b,
    }
}
