//! A strict JSON (RFC 8259) parser that keeps what the cache needs and serde_json's
//! `Value` drops: every number as written, member names before escape decoding,
//! duplicate members, and the byte span of every value (to find JSON-RPC ids in a
//! stored answer). Nesting is capped at [`MAX_DEPTH`], so a hostile body costs
//! bounded stack and time.
//!
//! [`canonicalize`] writes the RFC 8785 (JCS) form that keys `body_format=json`.

use std::borrow::Cow;
use std::cmp::Ordering;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not JSON the cache can key on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    NotUtf8,
    /// A syntax error at this byte offset.
    Syntax(usize),
    TooDeep,
    /// An object names a member twice: which one a server uses is unknowable.
    DuplicateMember,
    /// A number with no exact RFC 8785 spelling (out of range, or more digits
    /// than a double keeps): keying on it could merge two different requests.
    InexactNumber,
}

/// A parsed value, borrowing from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number exactly as written (it matched the JSON number grammar).
    Number(&'a str),
    String(RawStr<'a>),
    Array(Vec<Node<'a>>),
    Object(Vec<Member<'a>>),
}

/// A value and the byte range it occupies in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    pub name: RawStr<'a>,
    pub value: Node<'a>,
}

/// A string's content between its quotes, escapes validated but not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The string's value.
    pub fn decode(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hi = hex4(&mut chars);
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        // The parser only accepts a high surrogate followed by `\u` low.
                        chars.next();
                        chars.next();
                        let lo = hex4(&mut chars);
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                }
                Some(other) => out.push(other),
                None => {}
            }
        }
        Cow::Owned(out)
    }

    /// Whether the string's value is `text`.
    pub fn is(&self, text: &str) -> bool {
        if self.escaped {
            self.decode() == text
        } else {
            self.raw == text
        }
    }
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    (0..4).fold(0, |acc, _| acc * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0))
}

impl<'a> Value<'a> {
    /// The value of member `name`; `Err` if the object names it twice.
    pub fn member(&self, name: &str) -> Result<Option<&Node<'a>>, JsonError> {
        let Value::Object(members) = self else { return Ok(None) };
        let mut found = None;
        for m in members {
            if m.name.is(name) {
                if found.is_some() {
                    return Err(JsonError::DuplicateMember);
                }
                found = Some(&m.value);
            }
        }
        Ok(found)
    }
}

/// Parses a whole document: one value with optional whitespace around it.
pub fn parse(input: &[u8]) -> Result<Node<'_>, JsonError> {
    let text = std::str::from_utf8(input).map_err(|_| JsonError::NotUtf8)?;
    let mut p = Parser { text, bytes: input, at: 0 };
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.at != input.len() {
        return Err(JsonError::Syntax(p.at));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn error<T>(&self) -> Result<T, JsonError> {
        Err(JsonError::Syntax(self.at))
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, JsonError> {
        let start = self.at;
        let value = match self.bytes.get(self.at) {
            Some(b'{') => self.object(depth + 1)?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            _ => return self.error(),
        };
        Ok(Node { value, start, end: self.at })
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            self.error()
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.at += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.at) != Some(&b'"') {
                return self.error();
            }
            let name = self.string()?;
            self.skip_ws();
            if !self.eat(b':') {
                return self.error();
            }
            self.skip_ws();
            let value = self.value(depth)?;
            members.push(Member { name, value });
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            return self.error();
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            return self.error();
        }
    }

    /// A string token; the cursor is on its opening quote.
    fn string(&mut self) -> Result<RawStr<'a>, JsonError> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            // Skip plain characters in one tight scan.
            self.at += plain_run(&self.bytes[self.at..]);
            match self.bytes.get(self.at) {
                None => return self.error(),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    match self.bytes.get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
                        Some(b'u') => {
                            self.at += 1;
                            let unit = self.hex4()?;
                            if (0xDC00..0xE000).contains(&unit) {
                                return self.error(); // a low surrogate alone
                            }
                            if (0xD800..0xDC00).contains(&unit) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return self.error(); // a high surrogate alone
                                }
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return self.error();
                                }
                            }
                        }
                        _ => return self.error(),
                    }
                }
                // RFC 8259 §7: control characters must be escaped.
                Some(0x00..=0x1f) => return self.error(),
                Some(_) => self.at += 1,
            }
        }
        let raw = &self.text[start..self.at];
        self.at += 1;
        Ok(RawStr { raw, escaped })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(JsonError::Syntax(self.at))?;
        let mut n = 0;
        for d in digits {
            n = n * 16 + (*d as char).to_digit(16).ok_or(JsonError::Syntax(self.at))?;
        }
        self.at += 4;
        Ok(n)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<&'a str, JsonError> {
        let start = self.at;
        self.eat(b'-');
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.error(),
        }
        if self.eat(b'.') {
            if !self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                return self.error();
            }
            self.digits();
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                return self.error();
            }
            self.digits();
        }
        Ok(&self.text[start..self.at])
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }
}

/// Parses `input` and returns its RFC 8785 canonical form.
pub fn canonicalize(input: &[u8]) -> Result<Vec<u8>, JsonError> {
    let node = parse(input)?;
    let mut out = Vec::with_capacity(input.len());
    write_canonical(&node.value, &mut out)?;
    Ok(out)
}

/// Appends the RFC 8785 form of `value`: members sorted by the UTF-16 code units
/// of their names, no insignificant whitespace, strings and numbers in one spelling.
pub fn write_canonical(value: &Value<'_>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(raw) => out.extend_from_slice(canonical_number(raw)?.as_bytes()),
        Value::String(s) => write_string(&s.decode(), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&item.value, out)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(members.iter(), out)?,
    }
    Ok(())
}

fn write_object<'n, 'a: 'n>(members: impl Iterator<Item = &'n Member<'a>>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let mut named: Vec<(Cow<'a, str>, &Node<'a>)> = members.map(|m| (m.name.decode(), &m.value)).collect();
    // RFC 8785 §3.2.3: "sorted ... using the UTF-16 code units of the names".
    named.sort_by(|a, b| utf16_cmp(&a.0, &b.0));
    if named.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(JsonError::DuplicateMember);
    }
    out.push(b'{');
    for (i, (name, node)) in named.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write_canonical(&node.value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends the RFC 8785 form of `value` without its top-level member `skip`
/// (a JSON-RPC call without its `id`). Other values are written whole.
pub fn write_canonical_except(value: &Value<'_>, skip: &str, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        Value::Object(members) => write_object(members.iter().filter(|m| !m.name.is(skip)), out),
        other => write_canonical(other, out),
    }
}

/// How many leading bytes of `bytes` a JSON string holds as they are: up to the
/// first `"`, `\\` or control character. Eight bytes at a time, since string
/// content is most of what a large body holds.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is below `n` (n <= 128) iff its lane in the result is set.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let special = below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1) | below(word, 0x20);
        if special != 0 {
            break;
        }
        at += 8;
    }
    at + bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(bytes.len() - at)
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    // UTF-8 byte order is code point order, which is UTF-16 order unless a
    // character above U+FFFF meets one in U+E000..=U+FFFF: compare bytes first.
    if a.bytes().chain(b.bytes()).all(|c| c < 0xEE) {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// RFC 8785 §3.2.2.2: strings are written with the fewest escapes — `\"`, `\\`,
/// the five short control escapes, `\u00xx` (lower-case) for other controls.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut rest = s.as_bytes();
    while !rest.is_empty() {
        // Characters written as they are go out in one copy per run.
        let plain = plain_run(rest);
        out.extend_from_slice(&rest[..plain]);
        let Some((&b, tail)) = rest[plain..].split_first() else { break };
        rest = tail;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// RFC 8785 §3.2.2.3: a number is written as ECMAScript writes the double it
/// denotes. Only numbers whose written value *is* that double's shortest form are
/// accepted: "1.0", "1e0" and "10e-1" all become "1", but 9007199254740993 (which
/// a double rounds to ...992) is refused rather than keyed as another number.
pub fn canonical_number(raw: &str) -> Result<String, JsonError> {
    let double: f64 = raw.parse().map_err(|_| JsonError::InexactNumber)?;
    if !double.is_finite() {
        return Err(JsonError::InexactNumber);
    }
    if double == 0.0 {
        // RFC 8785: minus zero is written "0"; any spelling of zero is exact.
        return if decimal_parts(raw).is_zero() { Ok("0".into()) } else { Err(JsonError::InexactNumber) };
    }
    let shortest = ecmascript(double);
    if decimal_parts(raw) == decimal_parts(&shortest) {
        Ok(shortest)
    } else {
        Err(JsonError::InexactNumber)
    }
}

/// ECMAScript's `Number.prototype.toString` of a finite double.
fn ecmascript(double: f64) -> String {
    ryu_js::Buffer::new().format_finite(double).to_string()
}

/// A decimal number as sign, significant digits and a power of ten, so that two
/// spellings compare equal exactly when they denote the same value.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// No leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }
}

/// Splits a JSON (or ECMAScript-formatted) number into its [`Decimal`] parts.
fn decimal_parts(s: &str) -> Decimal {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp_text) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Exponents beyond ±10^15 only arise for values a double rounds to zero or
    // infinity, which never reach here with a nonzero shortest form; saturate.
    let exp_negative = exp_text.starts_with('-');
    let exp_abs = exp_text
        .trim_start_matches(['+', '-'])
        .bytes()
        .fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(1_000_000_000_000_000));
    let mut exponent = if exp_negative { -exp_abs } else { exp_abs } - frac.len() as i64;
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).skip_while(|&d| d == b'0').collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
        exponent += 1;
    }
    if digits.is_empty() {
        return Decimal { negative: false, digits, exponent: 0 };
    }
    Decimal { negative, digits, exponent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_section_3_2_2_example_is_reproduced() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        // 333333333.33333329 is not the shortest spelling of its double, so it is
        // refused (see canonical_number); the rest of the RFC's example holds.
        assert_eq!(canonicalize(input.as_bytes()), Err(JsonError::InexactNumber));
        let input = input.replace("333333333.33333329", "333333333.3333333");
        assert_eq!(
            canon(&input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting_uses_utf16_code_units() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let names: Vec<String> = match parse(canon(input).as_bytes()).unwrap().value {
            Value::Object(m) => m.iter().map(|m| m.name.decode().into_owned()).collect(),
            _ => unreachable!(),
        };
        // The RFC's expected order: Carriage Return, One, Control, Ö, Euro, Emoji, Dalet.
        assert_eq!(names, ["\r", "1", "\u{80}", "ö", "€", "😀", "\u{fb33}"]);
    }

    #[test]
    fn rfc8785_appendix_b_numbers() {
        // (IEEE 754 bits, ECMAScript form) pairs from RFC 8785 Appendix B.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(ecmascript(f64::from_bits(*bits)), *want, "{bits:#x}");
            assert_eq!(canonical_number(want).as_deref(), Ok(*want));
        }
        // 0x43143ff3c1cb0959 is exactly 1424953923781206.25: ECMAScript breaks the
        // tie to the even digit, Rust's formatter to the odd one. Rust's spelling
        // denotes another decimal, so it is refused rather than merged.
        assert_eq!(format!("{:e}", f64::from_bits(0x43143ff3c1cb0959)), "1.4249539237812063e15");
        assert_eq!(canonical_number("1.4249539237812063e15"), Err(JsonError::InexactNumber));
    }

    #[test]
    fn spellings_of_one_number_share_a_form_and_lossy_ones_are_refused() {
        for s in ["1", "1.0", "1e0", "10e-1", "0.1e1", "1.000E+0"] {
            assert_eq!(canonical_number(s).unwrap(), "1", "{s}");
        }
        assert_eq!(canonical_number("-0.0").unwrap(), "0");
        assert_eq!(canonical_number("0e999999999999999999999").unwrap(), "0");
        for s in ["9007199254740993", "0.30000000000000001", "1e400", "-1e400", "1e-400", "18446744073709551617"] {
            assert_eq!(canonical_number(s), Err(JsonError::InexactNumber), "{s}");
        }
        assert_eq!(canonical_number("123456789012345680000").unwrap(), "123456789012345680000");
        // From the json_canonical fuzz target: serde_json's default (not correctly
        // rounded) float parser disagreed here; the correctly rounded value is 1e-17.
        assert_eq!(canonical_number("0.000000000000000010000000000").unwrap(), "1e-17");
    }

    #[test]
    fn whitespace_and_member_order_do_not_matter_but_values_do() {
        let a = canon(r#"{"b": [1, 2], "a": {"y": "z", "x": null}}"#);
        let b = canon("{\n\t\"a\":{\"x\":null,\"y\":\"\\u007a\"},\"b\":[1,2.0]\r\n}");
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":{"x":null,"y":"z"},"b":[1,2]}"#);
        assert_ne!(a, canon(r#"{"b": [2, 1], "a": {"y": "z", "x": null}}"#));
    }

    #[test]
    fn duplicate_member_names_are_ambiguous() {
        assert_eq!(canonicalize(br#"{"a":1,"a":2}"#), Err(JsonError::DuplicateMember));
        assert_eq!(canonicalize(br#"{"a":1,"\u0061":2}"#), Err(JsonError::DuplicateMember));
        let node = parse(br#"{"id":1,"id":2}"#).unwrap();
        assert_eq!(node.value.member("id"), Err(JsonError::DuplicateMember));
    }

    #[test]
    fn malformed_json_is_refused_with_its_offset() {
        for bad in [
            &b""[..], b"{", b"[1,]", b"{\"a\" 1}", b"01", b"1.", b"-", b"1e", b"tru", b"\"\x01\"",
            b"\"\\x\"", b"\"\\ud800\"", b"\"\\udc00\"", b"\"\\ud800\\u0041\"", b"[1] x", b"{'a':1}", b"NaN",
        ] {
            assert!(parse(bad).is_err(), "{:?} parsed", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"[1,\xff]"), Err(JsonError::NotUtf8));
        assert_eq!(parse(b"[1 2]"), Err(JsonError::Syntax(3)));
    }

    #[test]
    fn nesting_past_the_limit_is_refused_without_recursing_further() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(parse(deep(MAX_DEPTH + 1).as_bytes()), Err(JsonError::TooDeep));
        assert_eq!(parse(deep(100_000).as_bytes()), Err(JsonError::TooDeep));
        let objects = "{\"a\":".repeat(100_000);
        assert_eq!(parse(objects.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn spans_cover_each_value_exactly() {
        let text = br#" {"id": "x\"y", "n": [1, -2.5e3]} "#;
        let node = parse(text).unwrap();
        let id = node.value.member("id").unwrap().unwrap();
        assert_eq!(&text[id.start..id.end], br#""x\"y""#);
        assert_eq!(&text[node.start..node.end], &text[1..text.len() - 1]);
        let n = node.value.member("n").unwrap().unwrap();
        assert_eq!(&text[n.start..n.end], b"[1, -2.5e3]");
    }

    #[test]
    fn plain_runs_stop_at_every_special_byte_in_every_lane() {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = special;
                assert_eq!(plain_run(&bytes), at, "{special:#x} at {at}");
            }
        }
        // Bytes just past each boundary, and UTF-8 continuation bytes, are plain.
        let plain: Vec<u8> = [0x20, b'#', b'!', b']', b'[', 0x80, 0xff, 0x7f].repeat(3);
        assert_eq!(plain_run(&plain), plain.len());
        assert_eq!(plain_run(b""), 0);
    }

    #[test]
    fn escapes_decode_including_surrogate_pairs() {
        let node = parse(br#""a\u00e9\ud83d\ude00\n\/""#).unwrap();
        match node.value {
            Value::String(s) => assert_eq!(s.decode(), "aé😀\n/"),
            _ => unreachable!(),
        }
    }
}
