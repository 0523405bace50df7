//! GraphQL documents (GraphQL spec, October 2021): a lexer-level reader that finds
//! the operations of an executable document and writes its canonical form.
//!
//! The cache needs two things from a document: which operation a server executes
//! (§6.1 GetOperation) and whether it is a query, and a spelling that ignores what
//! the spec calls ignored tokens (§2.1.7: whitespace, line terminators, comments,
//! commas, the BOM). Both are decided by the token stream and bracket structure,
//! so this reads tokens (§2.1) and definitions' outlines (§2.2) instead of building
//! an AST: no recursion, bounded nesting, no allocation per selection. The
//! `graphql_ops` fuzz target checks it against the graphql-parser crate.
//!
//! It also reads what GraphQL over HTTP puts around documents: parameters in a
//! request URL, and the `data` of an answer.

use super::json;

/// Deepest nesting of `{`, `(` and `[` accepted.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

/// One operation definition of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<'a> {
    pub kind: OperationKind,
    /// `None` for an anonymous operation (including the `{ … }` shorthand).
    pub name: Option<&'a str>,
}

/// An executable document, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    pub operations: Vec<Operation<'a>>,
    pub fragments: usize,
    /// The tokens, separated by one space only between two names or numbers.
    pub canonical: String,
}

/// Why a document cannot be keyed. Every case is forwarded and not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphQlError {
    /// A character or token the lexer does not accept, at this byte offset.
    Lexical(usize),
    /// Brackets that do not match, or a definition that is not an operation or
    /// fragment (type system definitions are not executable), at this offset.
    Syntax(usize),
    TooDeep,
    /// No operation, or `operationName` names none (or several) of them.
    NoSuchOperation,
    /// Several operations and no `operationName`, or an anonymous one among others.
    AmbiguousOperation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Punct,
    Name,
    Number,
    String,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    at: usize,
}

/// Reads a document.
pub fn read(source: &str) -> Result<Document<'_>, GraphQlError> {
    let mut canonical = Vec::with_capacity(source.len());
    let (operations, fragments) = read_into(source, &mut canonical)?;
    let canonical = String::from_utf8(canonical).expect("tokens are slices of the source");
    Ok(Document { operations, fragments, canonical })
}

/// Reads a document, appending its canonical form to `canonical` (straight into
/// the key material, without a buffer of its own), and returns its operations
/// and fragment count.
pub fn read_into<'a>(source: &'a str, canonical: &mut Vec<u8>) -> Result<(Vec<Operation<'a>>, usize), GraphQlError> {
    let tokens = lex(source, canonical)?;
    let mut operations = Vec::new();
    let mut fragments = 0;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        let kind = match (t.kind, t.text) {
            (Kind::Punct, "{") => {
                operations.push(Operation { kind: OperationKind::Query, name: None });
                i = skip_balanced(&tokens, i)?;
                continue;
            }
            (Kind::Name, "query") => Some(OperationKind::Query),
            (Kind::Name, "mutation") => Some(OperationKind::Mutation),
            (Kind::Name, "subscription") => Some(OperationKind::Subscription),
            (Kind::Name, "fragment") => None,
            _ => return Err(GraphQlError::Syntax(t.at)),
        };
        i += 1;
        let name = match tokens.get(i) {
            Some(n) if n.kind == Kind::Name => {
                i += 1;
                Some(n.text)
            }
            _ => None,
        };
        let is_name = |i: usize| tokens.get(i).is_some_and(|t| t.kind == Kind::Name);
        let is_punct = |i: usize, p: &str| tokens.get(i).is_some_and(|t| t.kind == Kind::Punct && t.text == p);
        match kind {
            Some(kind) => {
                operations.push(Operation { kind, name });
                // VariableDefinitions
                if is_punct(i, "(") {
                    i = skip_balanced(&tokens, i)?;
                }
            }
            // FragmentName (a Name but not `on`) TypeCondition
            None => {
                let type_condition = tokens.get(i).is_some_and(|t| t.kind == Kind::Name && t.text == "on");
                if name.is_none() || name == Some("on") || !type_condition || !is_name(i + 1) {
                    return Err(GraphQlError::Syntax(t.at));
                }
                fragments += 1;
                i += 2;
            }
        }
        // Directives
        while is_punct(i, "@") && is_name(i + 1) {
            i += 2;
            if is_punct(i, "(") {
                i = skip_balanced(&tokens, i)?;
            }
        }
        // SelectionSet
        if !is_punct(i, "{") {
            return Err(GraphQlError::Syntax(tokens.get(i).map_or(source.len(), |t| t.at)));
        }
        i = skip_balanced(&tokens, i)?;
    }
    Ok((operations, fragments))
}

/// Past the bracket opened at `tokens[open]` and everything it encloses.
fn skip_balanced(tokens: &[Token<'_>], open: usize) -> Result<usize, GraphQlError> {
    let mut closers: Vec<&str> = Vec::new();
    let mut i = open;
    while let Some(t) = tokens.get(i) {
        i += 1;
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text {
            "{" | "(" | "[" => {
                if closers.len() >= MAX_DEPTH {
                    return Err(GraphQlError::TooDeep);
                }
                closers.push(match t.text {
                    "{" => "}",
                    "(" => ")",
                    _ => "]",
                });
            }
            "}" | ")" | "]" => {
                if closers.pop() != Some(t.text) {
                    return Err(GraphQlError::Syntax(t.at));
                }
                if closers.is_empty() {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(GraphQlError::Syntax(tokens.last().map_or(0, |t| t.at + t.text.len())))
}

/// §2.1: the token stream without ignored tokens, written out as the canonical
/// form (one space only between two names or numbers). Only the tokens the outline
/// needs are returned: those outside any bracket, and every bracket.
fn lex<'a>(source: &'a str, canonical: &mut Vec<u8>) -> Result<Vec<Token<'a>>, GraphQlError> {
    let bytes = source.as_bytes();
    // Outline tokens are a fraction of all tokens; a guess that saves regrowth.
    let mut tokens = Vec::with_capacity(source.len() / 16);
    let mut previous_word = false;
    let mut previous: Option<Kind> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            // U+FEFF, the byte order mark, is ignored (§2.1.1).
            0xEF if bytes[i..].starts_with("\u{feff}".as_bytes()) => {
                i += 3;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|' | b'}' => {
                i += 1;
                Kind::Punct
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                Kind::Punct
            }
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                while i < bytes.len() && is_name_continue(bytes[i]) {
                    i += 1;
                }
                Kind::Name
            }
            b'-' | b'0'..=b'9' => {
                i = number(bytes, i).ok_or(GraphQlError::Lexical(i))?;
                Kind::Number
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = block_string(bytes, i).ok_or(GraphQlError::Lexical(i))?;
                Kind::String
            }
            b'"' => {
                i = string(bytes, i).ok_or(GraphQlError::Lexical(i))?;
                Kind::String
            }
            _ => return Err(GraphQlError::Lexical(i)),
        };
        let text = &source[start..i];
        let word = matches!(kind, Kind::Name | Kind::Number);
        // Two words need a space; so does a number before `...`, or the number
        // would read on into it (§2.1.8: no `.` may follow an IntValue), and so do
        // two strings (`"" "x"` must not become the block quote `"""x"`). A number
        // before a string gets one too: the spec reads `2""` as two tokens, but
        // graphql-parser (the fuzz oracle) reads one bad integer.
        let apart = (word && previous_word)
            || (previous == Some(Kind::Number) && (bytes[start] == b'.' || kind == Kind::String))
            || (previous == Some(Kind::String) && kind == Kind::String);
        if apart {
            canonical.push(b' ');
        }
        canonical.extend_from_slice(text.as_bytes());
        previous_word = word;
        previous = Some(kind);
        let bracket = match (kind, bytes[start]) {
            (Kind::Punct, b'{' | b'(' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(GraphQlError::TooDeep);
                }
                true
            }
            (Kind::Punct, b'}' | b')' | b']') => {
                depth = depth.saturating_sub(1);
                true
            }
            _ => false,
        };
        if bracket || depth == 0 {
            tokens.push(Token { kind, text, at: start });
        }
    }
    Ok(tokens)
}

fn is_name_continue(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// §2.1.8/§2.1.9 IntValue and FloatValue; the end of the number, which must not be
/// followed by `.` or a name start (the spec's lookahead restrictions).
fn number(bytes: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if bytes[i] == b'-' {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => {
            i += 1;
            if bytes.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    match bytes.get(i) {
        Some(b'.') => None,
        Some(&b) if b == b'_' || b.is_ascii_alphabetic() => None,
        _ => Some(i),
    }
}

/// §2.9.4 StringValue `"…"`: no line terminators; escapes `\u` + 4 hex digits,
/// `\u{…}` (the 2021 draft's braced form) or one of `"\/bfnrt`. Any other
/// character is allowed: since the October 2021 edition a SourceCharacter is any
/// Unicode scalar value, control characters included.
fn string(bytes: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\n' | b'\r' => return None,
            b'\\' => {
                i += 1;
                match *bytes.get(i)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                    b'u' if bytes.get(i + 1) == Some(&b'{') => {
                        let close = bytes[i..].iter().position(|&b| b == b'}')? + i;
                        if close == i + 2 || !bytes[i + 2..close].iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i = close + 1;
                    }
                    b'u' => {
                        if !bytes.get(i + 1..i + 5)?.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 5;
                    }
                    _ => return None,
                }
            }
            _ => i += 1,
        }
    }
}

/// §2.9.4 BlockString `"""…"""`, where `\"""` does not end it.
fn block_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    i += 3;
    loop {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            bytes.get(i)?;
            i += 1;
        }
    }
}

/// §6.1 GetOperation: the operation a server executes for `operation_name`.
pub fn select<'d, 'a>(
    operations: &'d [Operation<'a>],
    operation_name: Option<&str>,
) -> Result<&'d Operation<'a>, GraphQlError> {
    // §5.2.2.1 Lone Anonymous Operation: an anonymous operation must be alone.
    if operations.len() > 1 && operations.iter().any(|o| o.name.is_none()) {
        return Err(GraphQlError::AmbiguousOperation);
    }
    match operation_name {
        None => match operations {
            [only] => Ok(only),
            [] => Err(GraphQlError::NoSuchOperation),
            _ => Err(GraphQlError::AmbiguousOperation),
        },
        Some(wanted) => {
            let mut named = operations.iter().filter(|o| o.name == Some(wanted));
            match (named.next(), named.next()) {
                // §5.2.1.1 Operation Name Uniqueness: two of that name is invalid.
                (Some(op), None) => Ok(op),
                _ => Err(GraphQlError::NoSuchOperation),
            }
        }
    }
}

/// The request parameters of GraphQL over HTTP. express-graphql, and servers
/// built the same way, read each from the URL's query before the body, for a POST
/// too: when the URL names one, the body is not (or not all of) what runs.
const URL_PARAMETERS: [&str; 4] = ["query", "operationName", "variables", "extensions"];

/// Whether a request URL's query (the part after `?`) names any GraphQL
/// parameter. Names are compared after percent-decoding (`%71uery` is `query`)
/// and ignoring ASCII case (ASP.NET's query collection, under Hot Chocolate,
/// ignores it); `&` and `;` both separate pairs. A name without a value counts:
/// deciding which servers ignore an empty one is not worth a wrong answer.
pub fn url_names_operation(url_query: &str) -> bool {
    url_query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        // Longer names cannot decode to a parameter; skip decoding them.
        if name.len() > 3 * "operationName".len() {
            return false;
        }
        let decoded = percent_decode(name);
        URL_PARAMETERS.iter().any(|p| decoded.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// `application/x-www-form-urlencoded` decoding of one name: `%XX` escapes and
/// `+` for a space; a `%` without two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// What a GraphQL answer's `data` holds, read from the JSON the origin sent.
/// Shared by the decisions that read an answer after it was relayed.
pub struct AnswerData<'n, 'a> {
    /// The non-null `data` of each answer (one, or one per element of a batch).
    pub data: Vec<&'n json::Node<'a>>,
}

/// Reads `data` from a GraphQL response (spec §7.1) or a batch of them; `None`
/// when the body is not one (not JSON, not an object, a duplicated `data`).
pub fn answer_data<'n, 'a>(root: &'n json::Node<'a>) -> Option<AnswerData<'n, 'a>> {
    let answers: Vec<&json::Node<'a>> = match &root.value {
        json::Value::Array(items) => items.iter().collect(),
        json::Value::Object(_) => vec![root],
        _ => return None,
    };
    let mut data = Vec::new();
    for answer in answers {
        let json::Value::Object(_) = answer.value else { return None };
        match answer.value.member("data").ok()? {
            None | Some(json::Node { value: json::Value::Null, .. }) => {}
            Some(node) => data.push(node),
        }
    }
    Some(AnswerData { data })
}

/// Whether a mutation may have changed something, judged from the answer it got.
///
/// GraphQL spec (October 2021) §7.1, Data: "If an error was raised before
/// execution begins, the data entry should not be present in the result. If an
/// error was raised during the execution that prevented a valid response, the
/// data entry in the response should be null."
///
/// So only a non-null `data` shows that the mutation ran. An answer that was not
/// read (`None`: over the capture bound, compressed, broken) or is not a GraphQL
/// response counts as having run: invalidating too much is the safe side.
pub fn mutation_ran(answer: Option<&[u8]>) -> bool {
    let Some(body) = answer else { return true };
    let Ok(root) = json::parse(body) else { return true };
    match answer_data(&root) {
        Some(read) => !read.data.is_empty(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OperationKind::*;

    fn ops(source: &str) -> Vec<(OperationKind, Option<&str>)> {
        read(source).unwrap().operations.into_iter().map(|o| (o.kind, o.name)).collect()
    }

    fn selected(source: &str, name: Option<&str>) -> Result<(OperationKind, Option<String>), GraphQlError> {
        let doc = read(source)?;
        select(&doc.operations, name).map(|o| (o.kind, o.name.map(str::to_string)))
    }

    #[test]
    fn shorthand_and_named_operations_are_found() {
        assert_eq!(ops("{ me { id } }"), [(Query, None)]);
        assert_eq!(ops("query { a }"), [(Query, None)]);
        assert_eq!(ops("query Q($id: ID = \"x\") @live { a(id: $id) }"), [(Query, Some("Q"))]);
        assert_eq!(ops("mutation AddItem { addItem(x: 1) { id } }"), [(Mutation, Some("AddItem"))]);
        assert_eq!(ops("subscription { onEvent { id } }"), [(Subscription, None)]);
    }

    #[test]
    fn the_operation_is_picked_by_operation_name() {
        let doc = "query A { a } mutation B { b } query C { c }";
        assert_eq!(selected(doc, Some("A")).unwrap(), (Query, Some("A".into())));
        assert_eq!(selected(doc, Some("B")).unwrap(), (Mutation, Some("B".into())));
        assert_eq!(selected(doc, Some("D")), Err(GraphQlError::NoSuchOperation));
        assert_eq!(selected(doc, None), Err(GraphQlError::AmbiguousOperation));
        assert_eq!(selected("{ a }", None).unwrap(), (Query, None));
        // An anonymous operation has no name to select it by.
        assert_eq!(selected("{ a }", Some("A")), Err(GraphQlError::NoSuchOperation));
        assert_eq!(selected("{ a } query B { b }", Some("B")), Err(GraphQlError::AmbiguousOperation));
        assert_eq!(selected("query A { a } query A { b }", Some("A")), Err(GraphQlError::NoSuchOperation));
        assert_eq!(selected("fragment F on T { a }", None), Err(GraphQlError::NoSuchOperation));
    }

    #[test]
    fn keywords_as_names_are_not_operations() {
        // Operations and fields may be called `mutation`; only the keyword position counts.
        assert_eq!(ops("query mutation { mutation subscription }"), [(Query, Some("mutation"))]);
        assert_eq!(ops("{ a(mutation: \"mutation { x }\") }"), [(Query, None)]);
        assert_eq!(ops("query Q($m: In = {mutation: 1}) { a }"), [(Query, Some("Q"))]);
    }

    #[test]
    fn fragments_are_counted_and_skipped() {
        let doc = read("query Q { ...F } fragment F on User @d(x: [1]) { id ... on Admin { level } }").unwrap();
        assert_eq!(doc.fragments, 1);
        assert_eq!(doc.operations, [Operation { kind: Query, name: Some("Q") }]);
        assert!(read("fragment on T { a }").is_err(), "a fragment needs a name");
    }

    #[test]
    fn comments_commas_and_whitespace_do_not_change_the_canonical_form() {
        let a = read("query Q($a: Int, $b: [String!]) { user(id: $a) { name, friends(first: 10) { name } } }").unwrap();
        let b = read("\u{feff}# leading comment\nquery   Q(\n  $a: Int\n  $b: [String!]   # trailing\n)\r\n{user(id:$a){name friends(first:10,){name}}},,").unwrap();
        assert_eq!(a.canonical, b.canonical);
        assert_eq!(
            a.canonical,
            "query Q($a:Int$b:[String!]){user(id:$a){name friends(first:10){name}}}"
        );
    }

    #[test]
    fn any_semantic_change_changes_the_canonical_form() {
        let base = read("{ user(id: 1) { name } }").unwrap().canonical;
        for other in [
            "{ user(id: 2) { name } }",
            "{ user(id: \"1\") { name } }",
            "{ u: user(id: 1) { name } }",
            "{ user(id: 1) { name email } }",
            "{ user(id: 1) { email } }",
            "{ user(id: 1) @skip(if: true) { name } }",
            "{ user(id: 1) { name } } fragment F on T { a }",
            "{ user(id: 1) { n ame } }",
        ] {
            assert_ne!(read(other).unwrap().canonical, base, "{other}");
        }
        // Whitespace inside strings is significant.
        assert_ne!(read("{ a(s: \"x y\") }").unwrap().canonical, read("{ a(s: \"x  y\") }").unwrap().canonical);
    }

    #[test]
    fn strings_and_block_strings_are_tokens() {
        assert_eq!(ops(r#"{ a(s: "}{ mutation \" \u00e9 \u{1F600}") b(t: """ " "" \""" } """) }"#), [(Query, None)]);
        assert!(read("{ a(s: \"unterminated) }").is_err());
        assert!(read("{ a(s: \"line\nbreak\") }").is_err());
        assert!(read("{ a(s: \"\\q\") }").is_err());
        // Found by the graphql_ops fuzz target: graphql-parser accepts `\u+0e9` (it
        // reads escapes with from_str_radix, which allows a sign); the spec's
        // EscapedUnicode is exactly four hex digits.
        assert!(read("{ a(s: \"\\u+0e9\") }").is_err());
        // Found by the graphql_ops fuzz target: the canonical form of `1 ...F`
        // must keep its space, or it reads `1.` as a malformed float.
        let doc = read("{ a(x: [-2 ...F]) }").unwrap();
        assert_eq!(doc.canonical, "{a(x:[-2 ...F])}");
        assert_eq!(read(&doc.canonical).unwrap().canonical, doc.canonical);
        // Found by the graphql_ops fuzz target: two strings keep their space.
        let doc = read("{ a(x: [\"\" \"x\" \"\"\"b\"\"\"]) }").unwrap();
        assert_eq!(doc.canonical, "{a(x:[\"\" \"x\" \"\"\"b\"\"\"])}");
        assert_eq!(read(&doc.canonical).unwrap().canonical, doc.canonical);
        // Found by the graphql_ops fuzz target: a number before a string.
        assert_eq!(read("{ a(x: [2 \"\"]) }").unwrap().canonical, "{a(x:[2 \"\"])}");
        // Likewise graphql-parser accepts a bare carriage return in a string; a
        // StringCharacter is not a LineTerminator.
        assert_eq!(read("{ a(s: \"x\ry\") }"), Err(GraphQlError::Lexical(7)));
        // Found by the graphql_ops fuzz target: control characters are
        // SourceCharacters (October 2021), so strings may hold them.
        assert_eq!(ops("subscription S { event(filter: \"\0\0\x013\") { id } }"), [(Subscription, Some("S"))]);
        assert!(read("{ a(s: \"\"\"open) }").is_err());
    }

    #[test]
    fn numbers_follow_the_lexical_grammar() {
        assert!(read("{ a(x: -0, y: 1.5e-3, z: 10) }").is_ok());
        for bad in ["{ a(x: 01) }", "{ a(x: 1.) }", "{ a(x: 1a) }", "{ a(x: 1.2.3) }", "{ a(x: .5) }", "{ a(x: -) }"] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_executable_and_malformed_documents_are_refused() {
        for bad in [
            "type User { id: ID }",
            "\"description\" query { a }",
            "schema { query: Q }",
            "extend type T { a: Int }",
            "{ a ",
            "{ a ) }",
            "{ a } }",
            "query Q",
            "query Q ( $a: Int { a }",
            "{ a % }",
            "query Q mutation M { a }",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        assert_eq!(read("").unwrap().operations, []);
    }

    #[test]
    fn graphql_parameters_in_a_url_are_found_however_they_are_spelled() {
        for named in [
            "query=%7Ba%7D",
            "x=1&operationName=Q",
            "variables=%7B%7D&x=1",
            "x=1;extensions=",
            "%71uery=mutation",
            "%6F%70%65%72%61%74%69%6F%6E%4E%61%6D%65=Q",
            "QUERY=x",
            "query",
            "a=b&&query=",
        ] {
            assert!(url_names_operation(named), "{named}");
        }
        for plain in ["", "x=1", "queryx=1", "q=query", "query%=1", "query+=1", "%7=query", "x=query=1", "oper%61tionNam=1"] {
            assert!(!url_names_operation(plain), "{plain}");
        }
    }

    #[test]
    fn only_an_answer_with_data_shows_a_mutation_ran() {
        let ran = |body: &str| mutation_ran(Some(body.as_bytes()));
        assert!(ran(r#"{"data":{"addItem":{"id":1}}}"#));
        assert!(ran(r#"{"data":{"addItem":null},"errors":[{"message":"x"}]}"#), "partial data");
        assert!(!ran(r#"{"errors":[{"message":"boom"}],"data":null}"#));
        assert!(!ran(r#"{"errors":[{"message":"not valid"}]}"#), "refused before execution");
        assert!(!ran(r#"[{"data":null,"errors":[{}]},{"errors":[{}]}]"#));
        assert!(ran(r#"[{"data":null,"errors":[{}]},{"data":{"b":1}}]"#), "one element of a batch ran");
        // What cannot be read counts as a mutation that ran.
        assert!(mutation_ran(None), "not captured");
        for unread in ["<html>", r#""data""#, r#"{"data":null,"data":{}}"#, "[1]", "\u{1f}\u{8b}"] {
            assert!(ran(unread), "{unread}");
        }
    }

    #[test]
    fn hostile_nesting_is_refused_in_bounded_time() {
        let deep = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
        assert_eq!(read(&deep), Err(GraphQlError::TooDeep));
        let ok = format!("{}{}", "{a".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(read(&ok).is_ok());
    }
}
