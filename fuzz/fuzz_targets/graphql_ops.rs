//! The lexer-level GraphQL reader against the graphql-parser crate: whenever the
//! full parser accepts a document, ours finds the same operations (kind and name,
//! in order) and fragments, and our canonical form parses to the same document.
#![no_main]
use graphql_parser::query::{Definition, OperationDefinition};
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::graphql::{self, GraphQlError, OperationKind};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let ours = graphql::read(source);
    if let Ok(doc) = &ours {
        // The canonical form reads back to itself with the same operations.
        let again = graphql::read(&doc.canonical).expect("canonical form reads");
        assert_eq!(again.canonical, doc.canonical);
        assert_eq!(again.operations, doc.operations);
        for op in &doc.operations {
            let _ = graphql::select(&doc.operations, op.name);
        }
    }
    // graphql-parser recurses per nesting level: only give it what ours bounds.
    if matches!(ours, Err(GraphQlError::TooDeep)) || source.len() > 4096 {
        return;
    }
    let Ok(parsed) = graphql_parser::parse_query::<&str>(source) else { return };
    let doc = match ours {
        Ok(doc) => doc,
        // graphql-parser checks string contents loosely (a sign in a `\u` escape,
        // which it reads with from_str_radix; a bare carriage return); ours
        // follows the spec. Refusing a string only sends the request uncached.
        Err(GraphQlError::Lexical(at)) if source.as_bytes()[at] == b'"' => return,
        Err(e) => panic!("graphql-parser accepted what we refused ({e:?}): {source:?}"),
    };
    let mut operations = Vec::new();
    let mut fragments = 0;
    for definition in &parsed.definitions {
        match definition {
            Definition::Operation(OperationDefinition::SelectionSet(_)) => operations.push((OperationKind::Query, None)),
            Definition::Operation(OperationDefinition::Query(q)) => operations.push((OperationKind::Query, q.name)),
            Definition::Operation(OperationDefinition::Mutation(m)) => operations.push((OperationKind::Mutation, m.name)),
            Definition::Operation(OperationDefinition::Subscription(s)) => operations.push((OperationKind::Subscription, s.name)),
            Definition::Fragment(_) => fragments += 1,
        }
    }
    let found: Vec<_> = doc.operations.iter().map(|o| (o.kind, o.name)).collect();
    assert_eq!(found, operations, "operations differ for {source:?}");
    assert_eq!(doc.fragments, fragments);
    // Nothing that changes meaning was dropped or reordered.
    let canonical = graphql_parser::parse_query::<&str>(&doc.canonical).expect("canonical form parses");
    assert_eq!(canonical.to_string(), parsed.to_string(), "canonical form means something else: {source:?}");
});

