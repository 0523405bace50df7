//! The entities a GraphQL answer shows: every object in its `data` with a
//! `__typename` and a key field (`id` unless configured otherwise) names one
//! entity, `Type:key`. A stored query answer is tagged with them, and a
//! mutation's answer names the entities it changed, so a mutation removes
//! exactly the stored answers that showed what it touched.
//!
//! Apollo Client adds `__typename` to every selection set, so the tags are
//! there without rewriting the request; an object whose `__typename` is aliased
//! away or absent names no entity. Entity tags are tags like those an origin
//! sends (`Surrogate-Key`), so they must be visible ASCII without `,`: any other
//! byte of a key is written `%XX`, and a tag longer than the tag limit is left
//! out (counted in `dropped`).

use super::json::{Node, Value};

/// Longest entity tag kept, as for any tag.
pub const MAX_ENTITY_TAG_BYTES: usize = 128;

/// Which field keys an entity: per type, else the first of the default fields
/// the object has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFields {
    default: Vec<String>,
    per_type: Vec<(String, String)>,
}

impl Default for KeyFields {
    fn default() -> Self {
        Self { default: vec!["id".into()], per_type: Vec::new() }
    }
}

impl KeyFields {
    /// Parses `graphql_key_fields`: comma-separated field names tried in order
    /// (`id, _id`), and `Type=field` for a type keyed otherwise (`Product=sku`).
    /// `Err` names the bad entry.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut fields = Self { default: Vec::new(), per_type: Vec::new() };
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=') {
                None => {
                    check_name(entry, entry)?;
                    fields.default.push(entry.to_string());
                }
                Some((ty, field)) => {
                    let (ty, field) = (ty.trim(), field.trim());
                    check_name(entry, ty)?;
                    check_name(entry, field)?;
                    if fields.per_type.iter().any(|(t, _)| t == ty) {
                        return Err(format!("{entry:?}: type `{ty}` is given a key field twice"));
                    }
                    fields.per_type.push((ty.to_string(), field.to_string()));
                }
            }
        }
        if fields.default.is_empty() && fields.per_type.is_empty() {
            return Err("no key field named (e.g. `id`)".into());
        }
        Ok(fields)
    }

    fn fields_of<'s>(&'s self, type_name: &str) -> Box<dyn Iterator<Item = &'s str> + 's> {
        match self.per_type.iter().find(|(t, _)| t == type_name) {
            Some((_, field)) => Box::new(std::iter::once(field.as_str())),
            None => Box::new(self.default.iter().map(String::as_str)),
        }
    }
}

/// GraphQL spec §2.1.9, Names: `/[_A-Za-z][_0-9A-Za-z]*/`.
fn check_name(entry: &str, name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b == b'_' || b.is_ascii_alphabetic());
    if first_ok && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!("{entry:?}: `{name}` is not a GraphQL name"))
    }
}

/// What an answer's data shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entities {
    /// `Type:key`, distinct, in order of first appearance, at most the cap.
    pub tags: Vec<String>,
    /// Every `__typename` seen (distinct, in order), also of objects past the
    /// cap or without a key: a type-level fallback when the cap is reached.
    pub types: Vec<String>,
    /// Entities left out: past the cap, or over the tag length limit.
    pub dropped: usize,
    /// The types of the entities left out (distinct, in order): each is
    /// tagged `Type:*` instead, so that an entry is still found by a purge of
    /// any entity of a type it may show.
    pub dropped_types: Vec<String>,
}

/// The tag that stands for every entity of a type: an entity key is never `*`
/// ([`escape`] writes it `%2A`).
pub fn type_tag(type_name: &str) -> String {
    format!("{type_name}:*")
}

impl Entities {
    /// The entry's tags: its entities, then `Type:*` for each type that lost
    /// one to the cap or the length limit.
    pub fn entry_tags(&self) -> Vec<String> {
        let fallback = self.dropped_types.iter().map(|t| type_tag(t));
        self.tags.iter().cloned().chain(fallback).collect()
    }
}

/// What a mutation's answer says it touched: the tags of the entries to purge.
/// Each entity it shows (`User:2`), and for each type it shows, `Type:*` —
/// the tag of entries that may show an entity of that type they could not
/// name under their cap. `None`: the answer could not be read (not JSON, not a
/// GraphQL response), so what it touched is unknown. An answer that shows no
/// entity touches nothing that can be named: an empty list.
/// At most `cap` entity tags.
pub fn touched_by_mutation(answer: &[u8], keys: &KeyFields, cap: usize) -> Option<Vec<String>> {
    let root = super::json::parse(answer).ok()?;
    let read = super::graphql::answer_data(&root)?;
    let found = discover(&read.data, keys, cap);
    let mut tags = found.tags;
    tags.extend(found.types.iter().map(|t| type_tag(t)));
    Some(tags)
}

/// Collects the entities of `data` (the answers' `data` members), at most
/// `cap` tags. The work is one pass over nodes the parser already built.
pub fn discover(data: &[&Node<'_>], keys: &KeyFields, cap: usize) -> Entities {
    let mut found = Entities::default();
    for node in data {
        walk(node, keys, cap, &mut found);
    }
    found
}

fn walk(node: &Node<'_>, keys: &KeyFields, cap: usize, found: &mut Entities) {
    match &node.value {
        Value::Array(items) => items.iter().for_each(|item| walk(item, keys, cap, found)),
        Value::Object(members) => {
            let type_name = match node.value.member("__typename") {
                Ok(Some(Node { value: Value::String(name), .. })) => Some(name.decode()),
                _ => None,
            };
            // A type name is a GraphQL name; anything else is not a type.
            if let Some(type_name) = type_name.filter(|t| check_name("", t).is_ok()) {
                if !found.types.iter().any(|t| *t == type_name) {
                    found.types.push(type_name.to_string());
                }
                if let Some(key) = entity_key(node, keys, &type_name) {
                    let tag = format!("{type_name}:{key}");
                    if !found.tags.contains(&tag) {
                        if found.tags.len() >= cap || tag.len() > MAX_ENTITY_TAG_BYTES {
                            found.dropped += 1;
                            if !found.dropped_types.iter().any(|t| *t == type_name) {
                                found.dropped_types.push(type_name.to_string());
                            }
                        } else {
                            found.tags.push(tag);
                        }
                    }
                }
            }
            members.iter().for_each(|m| walk(&m.value, keys, cap, found));
        }
        _ => {}
    }
}

/// The object's key, as the tag writes it: a string's value (`%XX` for bytes
/// a tag cannot hold, so `a b` and `a%20b` stay apart) or a number as written.
fn entity_key(object: &Node<'_>, keys: &KeyFields, type_name: &str) -> Option<String> {
    for field in keys.fields_of(type_name) {
        match object.value.member(field) {
            Ok(Some(Node { value: Value::String(s), .. })) => return Some(escape(&s.decode())),
            Ok(Some(Node { value: Value::Number(n), .. })) => return Some(escape(n)),
            // A null or structured key field names no entity; a later default
            // field may.
            _ => {}
        }
    }
    None
}

/// Tags are visible ASCII without spaces or commas; `%` is escaped too so the
/// escaping cannot be confused with a key that contains `%`, and so is `*`, so
/// that no entity's tag is its type's [`type_tag`].
pub fn escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b',' | b'%' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod mutation_tests {
    use super::*;

    #[test]
    fn a_mutation_touches_the_entities_its_answer_shows_and_their_types() {
        let keys = KeyFields::parse("id").unwrap();
        let answer = br#"{"data":{"updateUser":{"__typename":"User","id":"2","name":"b","posts":[{"__typename":"Post","id":9}]}}}"#;
        assert_eq!(touched_by_mutation(answer, &keys, 128).unwrap(), ["User:2", "Post:9", "User:*", "Post:*"]);
        let nameless = br#"{"data":{"ping":true}}"#;
        assert_eq!(touched_by_mutation(nameless, &keys, 128), Some(Vec::new()), "nothing it can name");
        for unreadable in [&b"not json"[..], b"[1]", b"{\"data\":1,\"data\":2}"] {
            assert_eq!(touched_by_mutation(unreadable, &keys, 128), None, "{}", String::from_utf8_lossy(unreadable));
        }
        let failed = br#"{"data":null,"errors":[{"message":"no"}]}"#;
        assert_eq!(touched_by_mutation(failed, &keys, 128), Some(Vec::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::graphql::answer_data;
    use crate::protocol::json;

    fn found(answer: &str, keys: &KeyFields, cap: usize) -> Entities {
        let root = json::parse(answer.as_bytes()).expect("test answers are JSON");
        let data = answer_data(&root).expect("a GraphQL answer").data;
        discover(&data, keys, cap)
    }

    fn tags(answer: &str) -> Vec<String> {
        found(answer, &KeyFields::default(), 128).tags
    }

    #[test]
    fn nested_objects_and_lists_name_their_entities_once_each() {
        let answer = r#"{"data":{"me":{"__typename":"User","id":"1","friends":[
            {"__typename":"User","id":"2","posts":[{"__typename":"Post","id":7}]},
            {"__typename":"User","id":"1"}]}}}"#;
        assert_eq!(tags(answer), ["User:1", "User:2", "Post:7"]);
    }

    #[test]
    fn aliases_do_not_matter_but_a_missing_typename_or_key_names_nothing() {
        let answer = r#"{"data":{"a":{"__typename":"User","id":"1"},"b":{"__typename":"User","uid":"9"},
            "c":{"id":"3"},"d":{"__typename":"User","id":null},"e":null,"f":{"__typename":"No Type","id":"4"}}}"#;
        let got = found(answer, &KeyFields::default(), 128);
        assert_eq!(got.tags, ["User:1"]);
        assert_eq!(got.types, ["User"]);
    }

    #[test]
    fn errors_and_extensions_are_not_read_and_null_data_names_nothing() {
        let answer = r#"{"errors":[{"message":"x","extensions":{"__typename":"User","id":"5"}}],"data":null}"#;
        assert!(tags(answer).is_empty());
        let answer = r#"{"data":{"u":{"__typename":"User","id":"1"}},"extensions":{"__typename":"User","id":"6"}}"#;
        assert_eq!(tags(answer), ["User:1"]);
    }

    #[test]
    fn past_the_cap_entities_are_counted_and_their_types_still_listed() {
        let answer = r#"{"data":{"l":[{"__typename":"User","id":"1"},{"__typename":"User","id":"2"},
            {"__typename":"Post","id":"3"}]}}"#;
        let got = found(answer, &KeyFields::default(), 1);
        assert_eq!(got.tags, ["User:1"]);
        assert_eq!(got.dropped, 2);
        assert_eq!(got.types, ["User", "Post"]);
        assert_eq!(got.dropped_types, ["User", "Post"]);
        assert_eq!(got.entry_tags(), ["User:1", "User:*", "Post:*"]);
    }

    #[test]
    fn a_type_that_lost_no_entity_is_not_tagged_by_type_and_a_cap_of_0_tags_by_type_only() {
        let answer = r#"{"data":{"l":[{"__typename":"User","id":"1"},{"__typename":"Post","id":"3"},
            {"__typename":"Post","id":"4"}]}}"#;
        assert_eq!(found(answer, &KeyFields::default(), 2).entry_tags(), ["User:1", "Post:3", "Post:*"]);
        assert_eq!(found(answer, &KeyFields::default(), 0).entry_tags(), ["User:*", "Post:*"]);
        assert_eq!(found(answer, &KeyFields::default(), 3).entry_tags(), ["User:1", "Post:3", "Post:4"]);
    }

    #[test]
    fn an_entity_keyed_star_is_not_its_types_tag() {
        let answer = r#"{"data":{"a":{"__typename":"User","id":"*"},"b":{"__typename":"User","id":"a*b"}}}"#;
        assert_eq!(tags(answer), ["User:%2A", "User:a%2Ab"]);
        assert_ne!(tags(answer)[0], type_tag("User"));
    }

    #[test]
    fn key_fields_can_be_named_per_type_and_tried_in_order() {
        let keys = KeyFields::parse("id, _id, Product=sku").unwrap();
        let answer = r#"{"data":{"a":{"__typename":"Doc","_id":"d1"},"b":{"__typename":"Product","id":"x","sku":"S-9"},
            "c":{"__typename":"Product","id":"y"}}}"#;
        assert_eq!(found(answer, &keys, 128).tags, ["Doc:d1", "Product:S-9"]);
    }

    #[test]
    fn a_key_a_tag_cannot_hold_is_escaped_and_an_overlong_one_dropped() {
        let answer = r#"{"data":{"a":{"__typename":"User","id":"a b,c%"},"b":{"__typename":"User","id":"é"}}}"#;
        assert_eq!(tags(answer), ["User:a%20b%2Cc%25", "User:%C3%A9"]);
        let long = format!(r#"{{"data":{{"a":{{"__typename":"User","id":"{}"}}}}}}"#, "x".repeat(200));
        let got = found(&long, &KeyFields::default(), 128);
        assert!(got.tags.is_empty());
        assert_eq!(got.dropped, 1);
        assert_eq!(got.entry_tags(), ["User:*"]);
    }

    #[test]
    fn a_batch_of_answers_is_read_whole() {
        let answer = r#"[{"data":{"a":{"__typename":"User","id":"1"}}},{"data":{"b":{"__typename":"User","id":"2"}}}]"#;
        assert_eq!(tags(answer), ["User:1", "User:2"]);
    }

    #[test]
    fn bad_key_field_lists_are_refused_naming_the_entry() {
        for (list, entry) in [("1d", "1d"), ("Product=", "Product="), ("=sku", "=sku"), ("A=x, A=y", "A=y"), ("id-x", "id-x")] {
            let err = KeyFields::parse(list).expect_err(list);
            assert!(err.contains(&format!("{entry:?}")), "{list}: {err}");
        }
        assert!(KeyFields::parse(" , ").is_err());
    }
}
