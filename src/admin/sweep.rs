//! `POST <admin_path>sweep`: delete what can never be served again. The body
//! is empty, `{}`, or `{"continue": "<cursor>"}` to resume a sweep that stopped
//! at its bound.

use super::purge::BadRequest;
use crate::protocol::json::{self, Value};

/// Reads a sweep body: the key after which to resume, if any.
pub fn parse(body: &[u8]) -> Result<Option<String>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad = |field: &'static str, problem: &str| BadRequest { field, problem: problem.into() };
    let root = json::parse(body).map_err(|e| BadRequest { field: "body", problem: format!("is not a JSON object ({e:?})") })?;
    let Value::Object(members) = &root.value else {
        return Err(bad("body", "must be a JSON object"));
    };
    if let Some(m) = members.iter().find(|m| !m.name.is("continue")) {
        return Err(BadRequest { field: "body", problem: format!("has an unknown member {:?}", m.name.decode()) });
    }
    match root.value.member("continue").map_err(|_| bad("continue", "appears twice"))? {
        None => Ok(None),
        Some(node) => match &node.value {
            Value::String(s) => Ok(Some(s.decode().into_owned())),
            _ => Err(bad("continue", "must be a string")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_body_is_empty_or_names_where_to_continue() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b" {} "), Ok(None));
        assert_eq!(parse(br#"{"continue":"post-cache:v3:a"}"#), Ok(Some("post-cache:v3:a".into())));
        for (body, field) in [(&b"[]"[..], "body"), (br#"{"all":true}"#, "body"), (br#"{"continue":1}"#, "continue"), (b"{", "body")] {
            assert_eq!(parse(body).unwrap_err().field, field, "{}", String::from_utf8_lossy(body));
        }
    }
}
