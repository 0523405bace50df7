//! `POST <admin_path>purge`: what to forget, read from a JSON body.
//!
//! ```json
//! {"url": "/path?query", "host": "api.example.com"}
//! {"tags": ["a", "b"]}
//! {"request": {"method": "POST", "path": "/p", "query": "x=1",
//!              "headers": {"content-type": "application/json"}, "body_base64": "…"}}
//! {"all": true}
//! ```
//! Each may add `"soft": true` (mark stale instead of deleting) and
//! `"continue": "<cursor>"` (resume a purge that stopped at its bound).

use crate::protocol::json::{self, Member, Node, Value};

/// What one purge request forgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every entry of `host` and `path` — with `query`, only of that query.
    Url { host: Option<String>, path: String, query: Option<String> },
    /// Every entry carrying any of these tags.
    Tags(Vec<String>),
    /// The one entry this request would hit.
    Request(ExactRequest),
    /// Everything post-cache wrote in its store.
    All,
}

/// A request described in a purge body, keyed as the live request would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactRequest {
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    pub target: Target,
    pub soft: bool,
    /// Keys up to and including this one were done by an earlier request.
    pub resume_after: Option<String>,
}

/// A 400: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> BadRequest {
    BadRequest { field, problem: problem.into() }
}

const OPERATIONS: [&str; 4] = ["url", "tags", "request", "all"];
const KNOWN: [&str; 7] = ["url", "tags", "request", "all", "host", "soft", "continue"];

/// Reads a purge body.
pub fn parse(body: &[u8]) -> Result<PurgeRequest, BadRequest> {
    let root = json::parse(body).map_err(|e| bad("body", format!("is not a JSON object ({e:?})")))?;
    let Value::Object(members) = &root.value else {
        return Err(bad("body", "must be a JSON object"));
    };
    if let Some(m) = members.iter().find(|m| !KNOWN.iter().any(|k| m.name.is(k))) {
        return Err(BadRequest { field: "body", problem: format!("has an unknown member {:?}", m.name.decode()) });
    }
    let member = |name: &'static str| -> Result<Option<&Node<'_>>, BadRequest> {
        root.value.member(name).map_err(|_| bad(name, "appears twice"))
    };
    let present: Vec<&str> = OPERATIONS.iter().copied().filter(|op| members.iter().any(|m| m.name.is(op))).collect();
    let op = match present.as_slice() {
        [op] => *op,
        [] => return Err(bad("body", "needs one of \"url\", \"tags\", \"request\" or \"all\"")),
        _ => return Err(bad("body", format!("names more than one operation: {}", present.join(", ")))),
    };
    let host = member("host")?.map(|n| string(n, "host")).transpose()?;
    if host.is_some() && op != "url" {
        return Err(bad("host", "goes with \"url\" only (a \"request\" names its host in its headers)"));
    }
    let node = member(op)?.expect("present");
    let target = match op {
        "url" => {
            let url = string(node, "url")?;
            if !url.starts_with('/') {
                return Err(bad("url", "must be a path starting with '/', e.g. \"/graphql?x=1\""));
            }
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (url, None),
            };
            Target::Url { host, path, query }
        }
        "tags" => {
            let Value::Array(items) = &node.value else {
                return Err(bad("tags", "must be an array of strings"));
            };
            if items.is_empty() {
                return Err(bad("tags", "must name at least one tag"));
            }
            let tags = items.iter().map(|n| string(n, "tags")).collect::<Result<Vec<_>, _>>()?;
            if tags.iter().any(String::is_empty) {
                return Err(bad("tags", "must not contain an empty tag"));
            }
            Target::Tags(tags)
        }
        "request" => Target::Request(exact_request(node)?),
        _ => match node.value {
            Value::Bool(true) => Target::All,
            _ => return Err(bad("all", "must be true")),
        },
    };
    let soft = match member("soft")?.map(|n| &n.value) {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(bad("soft", "must be true or false")),
    };
    let resume_after = member("continue")?.map(|n| string(n, "continue")).transpose()?;
    Ok(PurgeRequest { target, soft, resume_after })
}

fn string(node: &Node<'_>, field: &'static str) -> Result<String, BadRequest> {
    match &node.value {
        Value::String(s) => Ok(s.decode().into_owned()),
        _ => Err(bad(field, "must be a string")),
    }
}

fn exact_request(node: &Node<'_>) -> Result<ExactRequest, BadRequest> {
    let Value::Object(members) = &node.value else {
        return Err(bad("request", "must be an object"));
    };
    const FIELDS: [&str; 6] = ["method", "path", "query", "headers", "body_base64", "host"];
    if let Some(m) = members.iter().find(|m| !FIELDS.iter().any(|k| m.name.is(k))) {
        return Err(BadRequest { field: "request", problem: format!("has an unknown member {:?}", m.name.decode()) });
    }
    let field = |name: &'static str, full: &'static str| -> Result<Option<String>, BadRequest> {
        node.value.member(name).map_err(|_| bad(full, "appears twice"))?.map(|n| string(n, full)).transpose()
    };
    let method = field("method", "request.method")?.ok_or_else(|| bad("request.method", "is required"))?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
        return Err(bad("request.method", "must be an upper-case HTTP method"));
    }
    let path = field("path", "request.path")?.ok_or_else(|| bad("request.path", "is required"))?;
    if !path.starts_with('/') || path.contains('?') {
        return Err(bad("request.path", "must start with '/' and carry no query (use \"query\")"));
    }
    let query = field("query", "request.query")?.unwrap_or_default();
    let host = field("host", "request.host")?;
    let headers = match node.value.member("headers").map_err(|_| bad("request.headers", "appears twice"))? {
        None => Vec::new(),
        Some(Node { value: Value::Object(members), .. }) => headers(members)?,
        Some(_) => return Err(bad("request.headers", "must be an object of strings")),
    };
    let body = match field("body_base64", "request.body_base64")? {
        None => Vec::new(),
        Some(b64) => decode_base64(&b64).ok_or_else(|| bad("request.body_base64", "is not base64 (RFC 4648 §4)"))?,
    };
    Ok(ExactRequest { method, host, path, query, headers, body })
}

/// RFC 4648 §4 base64 with its padding optional. Hand-written: a short loop on
/// the admin path only, strict (one spelling per byte string), where the
/// `base64` crate would only add to the component's size.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=');
    if text.len() - digits.len() > 2 || digits.len() % 4 == 1 || (text.len() > digits.len() && !text.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in digits.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // The bits left over must be zero: one spelling per byte string.
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

fn headers(members: &[Member<'_>]) -> Result<Vec<(String, Vec<u8>)>, BadRequest> {
    members
        .iter()
        .map(|m| {
            let name = m.name.decode().to_ascii_lowercase();
            let value = string(&m.value, "request.headers")?;
            Ok((name, value.into_bytes()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> PurgeRequest {
        parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    fn field_of(body: &str) -> &'static str {
        match parse(body.as_bytes()) {
            Err(e) => e.field,
            Ok(r) => panic!("{body} parsed: {r:?}"),
        }
    }

    #[test]
    fn each_operation_is_read() {
        let url = ok(r#"{"url":"/graphql?x=1","host":"api.example.com","soft":true}"#);
        assert_eq!(
            url.target,
            Target::Url { host: Some("api.example.com".into()), path: "/graphql".into(), query: Some("x=1".into()) }
        );
        assert!(url.soft);
        assert_eq!(ok(r#"{"url":"/p"}"#).target, Target::Url { host: None, path: "/p".into(), query: None });
        assert_eq!(ok(r#"{"tags":["a","b"]}"#).target, Target::Tags(vec!["a".into(), "b".into()]));
        assert_eq!(ok(r#"{"all":true,"continue":"k"}"#).resume_after.as_deref(), Some("k"));
        let exact = ok(r#"{"request":{"method":"POST","path":"/p","query":"x=1","headers":{"Content-Type":"application/json"},"body_base64":"eyJhIjoxfQ=="}}"#);
        assert_eq!(
            exact.target,
            Target::Request(ExactRequest {
                method: "POST".into(),
                host: None,
                path: "/p".into(),
                query: "x=1".into(),
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: br#"{"a":1}"#.to_vec(),
            })
        );
        assert!(!exact.soft);
    }

    #[test]
    fn base64_decodes_rfc_4648_test_vectors_and_refuses_the_rest() {
        let vectors = [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"), ("Zm9vYmFy", "foobar")];
        for (encoded, plain) in vectors {
            assert_eq!(decode_base64(encoded).as_deref(), Some(plain.as_bytes()), "{encoded}");
            assert_eq!(decode_base64(encoded.trim_end_matches('=')).as_deref(), Some(plain.as_bytes()), "{encoded} unpadded");
        }
        assert_eq!(decode_base64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        for bad in ["Z", "Zg=", "Zg===", "Zh==", "Zm9v!", "Zm 9v", "=Zg="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_json_missing_fields_and_wrong_types_name_the_field() {
        let cases = [
            ("not json", "body"),
            ("[1]", "body"),
            ("{}", "body"),
            (r#"{"url":"/a","tags":["x"]}"#, "body"),
            (r#"{"url":"/a","purge":1}"#, "body"),
            (r#"{"url":5}"#, "url"),
            (r#"{"url":"a"}"#, "url"),
            (r#"{"url":"/a","url":"/b"}"#, "url"),
            (r#"{"tags":"a"}"#, "tags"),
            (r#"{"tags":[]}"#, "tags"),
            (r#"{"tags":["a",1]}"#, "tags"),
            (r#"{"tags":[""]}"#, "tags"),
            (r#"{"all":1}"#, "all"),
            (r#"{"all":false}"#, "all"),
            (r#"{"all":true,"soft":"yes"}"#, "soft"),
            (r#"{"all":true,"continue":3}"#, "continue"),
            (r#"{"tags":["a"],"host":"x"}"#, "host"),
            (r#"{"request":[]}"#, "request"),
            (r#"{"request":{"path":"/p"}}"#, "request.method"),
            (r#"{"request":{"method":"post","path":"/p"}}"#, "request.method"),
            (r#"{"request":{"method":"POST"}}"#, "request.path"),
            (r#"{"request":{"method":"POST","path":"/p?x=1"}}"#, "request.path"),
            (r#"{"request":{"method":"POST","path":"/p","headers":[]}}"#, "request.headers"),
            (r#"{"request":{"method":"POST","path":"/p","headers":{"a":1}}}"#, "request.headers"),
            (r#"{"request":{"method":"POST","path":"/p","body_base64":"***"}}"#, "request.body_base64"),
            (r#"{"request":{"method":"POST","path":"/p","bdy":""}}"#, "request"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "{body}");
        }
    }
}
