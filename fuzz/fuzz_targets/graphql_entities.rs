//! The entity reader on any JSON: no panic, and whatever it returns is a tag
//! the purge API can name (visible ASCII, no comma, bounded), at most the cap,
//! each once, each of a type it also lists; no entity's tag is a type's
//! `Type:*`, and the entry's tags add one `Type:*` per type that lost an entity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::entities::{discover, type_tag, KeyFields, MAX_ENTITY_TAG_BYTES};
use post_cache::protocol::{graphql, json};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the cap, so small caps are reached too.
    let Some((&cap, body)) = data.split_first() else { return };
    let cap = usize::from(cap % 8);
    let Ok(root) = json::parse(body) else { return };
    let Some(answer) = graphql::answer_data(&root) else { return };
    let keys = KeyFields::parse("id, _id, Product=sku").expect("a valid list");
    let found = discover(&answer.data, &keys, cap);
    assert!(found.tags.len() <= cap);
    for (i, tag) in found.tags.iter().enumerate() {
        assert!(tag.len() <= MAX_ENTITY_TAG_BYTES, "{tag:?}");
        assert!(tag.bytes().all(|b| b.is_ascii_graphic() && b != b','), "{tag:?}");
        assert!(!found.tags[..i].contains(tag), "{tag:?} twice");
        let (type_name, _) = tag.split_once(':').expect("Type:key");
        assert!(found.types.iter().any(|t| t == type_name), "{tag:?} of an unlisted type");
        assert_ne!(*tag, type_tag(type_name), "an entity's tag is its type's");
    }
    assert_eq!(found.dropped_types.is_empty(), found.dropped == 0);
    for type_name in &found.dropped_types {
        assert!(found.types.contains(type_name), "{type_name:?} lost an entity but is not listed");
    }
    let entry = found.entry_tags();
    assert_eq!(entry.len(), found.tags.len() + found.dropped_types.len());
    assert!(entry[found.tags.len()..].iter().zip(&found.dropped_types).all(|(tag, t)| *tag == type_tag(t)));
});
