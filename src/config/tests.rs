use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(move |name| Ok(map.get(name).cloned()))
}

#[test]
fn defaults_apply() {
    let c = config(&[("origin", "https://api.example.com/v1/")]).unwrap();
    assert_eq!(
        c.origin,
        OriginUrl { https: true, authority: "api.example.com".into(), base_path: "/v1".into() }
    );
    assert_eq!(c.default_ttl, 60);
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.max_entry_bytes, 16 << 20);
    assert_eq!(c.max_value_bytes, 1_000_000);
    assert_eq!(c.cache_methods, vec!["POST", "QUERY"]);
    assert_eq!(c.key_headers, vec!["content-type", "content-encoding"]);
    assert_eq!(c.cacheable_statuses.heuristic, vec![200, 203, 204, 300, 301, 404, 405, 410, 414, 501]);
    assert!(c.cacheable_statuses.server_errors);
    assert_eq!(c.origin_timeout, 30);
    assert_eq!(c.credentials, CredentialMode::Bypass);
    assert_eq!((c.stale_while_revalidate, c.stale_if_error), (0, 0));
    assert_eq!(c.targeted_cache_control, "post-cache-control");
    assert_eq!(c.collapse_wait_ms, 300);
    assert_eq!((c.admin_path.as_str(), c.purge_token.as_str()), ("/.well-known/post-cache/", ""));
    assert!(!c.relay_tags && !c.invalidate_on_mutation && c.invalidate_on_unsafe);
    assert_eq!(c.kv_store, "default");
    assert_eq!(c.protocol, ProtocolConfig::default());
    assert!(c.is_candidate("QUERY") && !c.is_candidate("GET"));
}

#[test]
fn errors_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "origin"),
        (&[("origin", "")], "origin"),
        (&[("origin", "ftp://x")], "origin"),
        (&[("origin", "http://x?y")], "origin"),
        (&[("origin", "http://u@x")], "origin"),
        (&[("origin", "http://x"), ("default_ttl", "ten")], "default_ttl"),
        (&[("origin", "http://x"), ("origin_timeout", "0")], "origin_timeout"),
        (&[("origin", "http://x"), ("max_body_bytes", "-1")], "max_body_bytes"),
        (&[("origin", "http://x"), ("max_body_bytes", "4294967296")], "max_body_bytes"),
        (&[("origin", "http://x"), ("max_entry_bytes", "10")], "max_entry_bytes"),
        (&[("origin", "http://x"), ("max_entry_bytes", "2000000000")], "max_entry_bytes"),
        (&[("origin", "http://x"), ("max_value_bytes", "100")], "max_value_bytes"),
        (&[("origin", "http://x"), ("cache_methods", "POST,BAD METHOD")], "cache_methods"),
        (&[("origin", "http://x"), ("key_headers", "authorization")], "key_headers"),
        (&[("origin", "http://x"), ("cacheable_statuses", "200,abc")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("cacheable_statuses", "200,600")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("cacheable_statuses", "200,304")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("cacheable_statuses", "100,200")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("cacheable_statuses", "199")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("cacheable_statuses", "206")], "cacheable_statuses"),
        (&[("origin", "http://x"), ("store_server_errors", "no")], "store_server_errors"),
        (&[("origin", "http://x"), ("origin_timeout", "599")], "origin_timeout"),
        (&[("origin", "http://x"), ("origin_timeout", "18446744073709551615")], "origin_timeout"),
        (&[("origin", "http://x"), ("scope_by_credential", "yes")], "scope_by_credential"),
        (&[("origin", "http://x"), ("scope_by_credential", "true")], "credential_salt"),
        (&[("origin", "http://x"), ("body_format", "xml")], "body_format"),
        (&[("origin", "http://x"), ("body_format", "jsonrpc")], "rpc_methods"),
        (&[("origin", "http://x"), ("body_format", "jsonrpc"), ("rpc_methods", " , ")], "rpc_methods"),
        (&[("origin", "http://x"), ("rpc_methods", "eth_*x")], "rpc_methods"),
        (&[("origin", "http://x"), ("graphql_store_partial", "1")], "graphql_store_partial"),
        (&[("origin", "http://x"), ("rpc_store_null", "yes")], "rpc_store_null"),
        (&[("origin", "http://x"), ("stale_if_error", "-1")], "stale_if_error"),
        (&[("origin", "http://x"), ("stale_while_revalidate", "1h")], "stale_while_revalidate"),
        (&[("origin", "http://x"), ("targeted_cache_control", "my field")], "targeted_cache_control"),
        (&[("origin", "http://x"), ("collapse_wait_ms", "60000")], "collapse_wait_ms"),
        (&[("origin", "http://x"), ("purge_token", "short-token")], "purge_token"),
        (&[("origin", "http://x"), ("admin_path", "/admin")], "admin_path"),
        (&[("origin", "http://x"), ("admin_path", "/")], "admin_path"),
        (&[("origin", "http://x"), ("relay_tags", "yes")], "relay_tags"),
        (&[("origin", "http://x"), ("invalidate_on_unsafe", "1")], "invalidate_on_unsafe"),
        (&[("origin", "http://x"), ("graphql_operations", "Me=for-ever")], "graphql_operations"),
        (&[("origin", "http://x"), ("graphql_types", "User=-1")], "graphql_types"),
        (&[("origin", "http://x"), ("graphql_key_fields", "1d")], "graphql_key_fields"),
        (&[("origin", "http://x"), ("graphql_entity_tags", "129")], "graphql_entity_tags"),
        (&[("origin", "http://x"), ("graphql_invalidation", "purge")], "graphql_invalidation"),
    ];
    for (vars, variable) in cases {
        let e = config(vars).unwrap_err();
        assert_eq!(e.variable, *variable, "{vars:?}: {e}");
        assert!(e.to_string().contains(variable));
    }
}

#[test]
fn every_variable_read_is_declared_in_spin_toml_and_passed_to_the_component() {
    let asked = std::cell::RefCell::new(Vec::new());
    let _ = Config::from_lookup(|name| {
        asked.borrow_mut().push(name);
        Ok(if name == "origin" { Some("http://x".into()) } else { None })
    });
    let manifest = include_str!("../../spin.toml");
    for name in asked.borrow().iter() {
        assert!(manifest.contains(&format!("\n{name} = {{ ")), "{name} not declared in [variables]");
        assert!(manifest.contains(&format!("\n{name} = \"{{{{ {name} }}}}\"")), "{name} not passed to the component");
    }
    assert!(asked.borrow().len() >= 25, "{:?}", asked.borrow());
}

#[test]
fn stale_and_collapse_variables_are_read() {
    let c = config(&[
        ("origin", "http://x"),
        ("stale_while_revalidate", "30"),
        ("stale_if_error", "86400"),
        ("targeted_cache_control", "Edge-Cache-Control"),
        ("collapse_wait_ms", "0"),
    ])
    .unwrap();
    assert_eq!((c.stale_while_revalidate, c.stale_if_error, c.collapse_wait_ms), (30, 86_400, 0));
    assert_eq!(c.targeted_fields(), ["cdn-cache-control", "edge-cache-control", "surrogate-key", "cache-tag"]);
    let no_own = config(&[("origin", "http://x"), ("targeted_cache_control", "")]).unwrap();
    assert_eq!(no_own.targeted_cache_control, "");
}

#[test]
fn provider_failure_is_reported() {
    let e = Config::from_lookup(|_| Err("vault unreachable".into())).unwrap_err();
    assert_eq!(e.variable, "origin");
    assert!(e.problem.contains("vault unreachable"));
}

#[test]
fn lists_are_normalised() {
    let c = config(&[
        ("origin", "http://127.0.0.1:8080"),
        ("cache_methods", " post , query,"),
        ("key_headers", "Content-Type, X-Tenant"),
        ("scope_by_credential", "true"),
        ("credential_salt", "0123456789abcdef"),
    ])
    .unwrap();
    assert_eq!(c.cache_methods, vec!["POST", "QUERY"]);
    assert_eq!(c.key_headers, vec!["content-type", "x-tenant"]);
    assert_eq!(c.credentials, CredentialMode::Scoped);
    assert_eq!(c.origin.base_path, "");
}

#[test]
fn protocol_variables_are_read() {
    let c = config(&[
        ("origin", "http://x"),
        ("body_format", "jsonrpc"),
        ("rpc_methods", "eth_chainId, net_*"),
        ("graphql_store_partial", "true"),
        ("rpc_store_null", "true"),
    ])
    .unwrap();
    assert_eq!(c.protocol.format, BodyFormat::JsonRpc);
    assert!(c.protocol.rpc_methods.allows("net_version"));
    assert!(c.protocol.graphql_store_partial && c.protocol.rpc_store_null);
    assert_eq!(config(&[("origin", "http://x"), ("body_format", "graphql")]).unwrap().protocol.format, BodyFormat::GraphQl);
}

#[test]
fn empty_key_headers_means_none() {
    let c = config(&[("origin", "http://x"), ("key_headers", "")]).unwrap();
    assert!(c.key_headers.is_empty());
}

#[test]
fn an_origin_timeout_leaves_room_for_a_live_refresh_mark() {
    use crate::cache::mark::Mark;
    let c = config(&[("origin", "http://x"), ("origin_timeout", "598")]).unwrap();
    // What a stale refresh claims: the timeout and its slack.
    let now = 1_700_000_000;
    let mark = Mark { until: now + c.origin_timeout + 2, token: 1 };
    assert!(mark.live(now));
    let e = config(&[("origin", "http://x"), ("origin_timeout", "599")]).unwrap_err();
    assert!(e.problem.contains("at most 598"), "{e}");
}

#[test]
fn statuses_that_are_never_stored_are_refused_and_5xx_can_be_refused() {
    let e = config(&[("origin", "http://x"), ("cacheable_statuses", "200,304")]).unwrap_err();
    assert_eq!(e.variable, "cacheable_statuses");
    assert!(e.problem.contains("304"), "{e}");
    let c = config(&[("origin", "http://x"), ("cacheable_statuses", "200,302"), ("store_server_errors", "false")]).unwrap();
    assert_eq!(c.cacheable_statuses, StatusPolicy { heuristic: vec![200, 302], server_errors: false });
}

#[test]
fn rpc_methods_ending_in_a_multi_byte_character_are_read() {
    let c = config(&[("origin", "http://x"), ("rpc_methods", "eth_é,net_ü*, ça")]).unwrap();
    let methods = &c.protocol.rpc_methods;
    assert!(methods.allows("eth_é") && methods.allows("net_über") && methods.allows("ça") && !methods.allows("eth_e"));
    let e = config(&[("origin", "http://x"), ("rpc_methods", "a*é")]).unwrap_err();
    assert_eq!(e.variable, "rpc_methods");
}

#[test]
fn the_same_bytes_with_and_without_content_encoding_get_different_keys_by_default() {
    use crate::http::headers::values;
    use crate::cache::key::{derive, KeyInput};
    let c = config(&[("origin", "http://x")]).unwrap();
    let key = |headers: &[(String, Vec<u8>)]| {
        let key_headers: Vec<(&str, Vec<&[u8]>)> = c.key_headers.iter().map(|n| (n.as_str(), values(headers, n))).collect();
        derive(&KeyInput {
            method: "POST",
            host: "x",
            path: "/",
            query: "",
            headers: &key_headers,
            credential_scope: None,
            body_format: 0,
            body_digest: [7; 32],
        })
    };
    let plain = vec![("content-type".to_string(), b"application/json".to_vec())];
    let mut gzip = plain.clone();
    gzip.push(("Content-Encoding".to_string(), b"gzip".to_vec()));
    assert_ne!(key(&plain), key(&gzip));
}

/// The names `from_lookup` asks for, in order, given only an origin.
fn names_read() -> Vec<&'static str> {
    let asked = std::cell::RefCell::new(Vec::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().push(name);
        Ok(if name == "origin" { Some("http://x".into()) } else { None })
    })
    .unwrap();
    asked.into_inner()
}

#[test]
fn from_lookup_reads_each_row_of_the_table_once_in_the_tables_order() {
    let table: Vec<&str> = variables::VARIABLES.iter().map(|row| row.name).collect();
    assert_eq!(names_read(), table);
}

#[test]
fn a_variable_set_to_its_default_gives_the_same_config_as_one_left_undefined() {
    let mut explicit: Vec<(&str, &str)> = vec![("origin", "http://x")];
    explicit.extend(variables::VARIABLES.iter().filter_map(|row| Some((row.name, row.default?))));
    assert_eq!(explicit.len(), variables::VARIABLES.len());
    assert_eq!(config(&explicit).unwrap(), config(&[("origin", "http://x")]).unwrap());
}

#[test]
fn values_are_trimmed_and_blank_flags_words_and_labels_mean_the_default() {
    let c = config(&[
        ("origin", " http://x/base/ "),
        ("default_ttl", " 5 "),
        ("store_server_errors", ""),
        ("scope_by_credential", ""),
        ("body_format", " "),
        ("kv_store", ""),
        ("admin_path", ""),
        ("relay_tags", " true "),
    ])
    .unwrap();
    assert_eq!((c.origin.base_path.as_str(), c.default_ttl), ("/base", 5));
    assert!(c.cacheable_statuses.server_errors && c.relay_tags);
    assert_eq!(c.credentials, CredentialMode::Bypass);
    assert_eq!(c.protocol.format, BodyFormat::Raw);
    assert_eq!((c.kv_store.as_str(), c.admin_path.as_str()), ("default", "/.well-known/post-cache/"));
    // A blank number is not a number; a blank list or field is empty.
    assert_eq!(config(&[("origin", "http://x"), ("default_ttl", "")]).unwrap_err().variable, "default_ttl");
    let c = config(&[("origin", "http://x"), ("cacheable_statuses", ""), ("cache_methods", " ")]).unwrap();
    assert!(c.cacheable_statuses.heuristic.is_empty() && c.cache_methods.is_empty());
}

#[test]
fn error_messages_say_what_is_accepted() {
    let problem = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
    let x = ("origin", "http://x");
    assert_eq!(
        problem(&[]),
        "variable `origin`: is required: the base URL of the origin, e.g. https://api.example.com"
    );
    assert_eq!(problem(&[x, ("relay_tags", "yes")]), "variable `relay_tags`: must be true or false, got \"yes\"");
    assert_eq!(
        problem(&[x, ("body_format", "xml")]),
        "variable `body_format`: must be raw, json, graphql or jsonrpc, got \"xml\""
    );
    assert_eq!(problem(&[x, ("origin_timeout", "0")]), "variable `origin_timeout`: must be at least 1, got \"0\"");
    assert_eq!(problem(&[x, ("collapse_wait_ms", "10001")]), "variable `collapse_wait_ms`: must be at most 10000, got 10001");
    assert_eq!(problem(&[x, ("sweep_every", "1.5")]), "variable `sweep_every`: must be a whole number, got \"1.5\"");
    assert_eq!(
        problem(&[x, ("cache_methods", "get,bad method")]),
        "variable `cache_methods`: \"BAD METHOD\" is not an HTTP method"
    );
    assert_eq!(
        problem(&[x, ("key_headers", "X-Tenant,Cookie")]),
        "variable `key_headers`: \"cookie\" would put a credential in the key; use scope_by_credential"
    );
    assert!(problem(&[x, ("scope_by_credential", "true"), ("credential_salt", "fifteen-chars..")]).contains("at least 16"));
    assert!(problem(&[x, ("purge_token", "x".repeat(23).as_str())]).contains("at least 24 characters"));
    assert!(problem(&[x, ("admin_path", "admin/")]).contains("e.g. \"/.well-known/post-cache/\""));
    assert!(problem(&[x, ("persisted_query_max_age", "0")]).contains("at least 1"));
}

#[test]
fn the_shortest_accepted_secrets_are_accepted() {
    let c = config(&[
        ("origin", "http://x"),
        ("scope_by_credential", "true"),
        ("credential_salt", "0123456789abcdef"),
        ("purge_token", "x".repeat(24).as_str()),
    ])
    .unwrap();
    assert_eq!((c.credential_salt.len(), c.purge_token.len()), (16, 24));
}

/// `[variables]` of spin.toml: name → (default, or `None` when required; secret).
fn declared_in_spin_toml(manifest: &str) -> Vec<(&str, Option<&str>, bool)> {
    let mut out = Vec::new();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[variables]" || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, decl) = line.split_once(" = ").unwrap_or_else(|| panic!("unread line {line:?}"));
        let default = decl.split_once("default = \"").map(|(_, rest)| rest.split('"').next().unwrap());
        assert!(default.is_some() != decl.contains("required = true"), "{line}: a default or required");
        out.push((name, default, decl.contains("secret = true")));
    }
    out
}

#[test]
fn spin_toml_declares_each_row_of_the_table_with_its_default_and_nothing_else() {
    let manifest = include_str!("../../spin.toml");
    let declared = declared_in_spin_toml(manifest);
    for (row, (name, default, secret)) in variables::VARIABLES.iter().zip(&declared) {
        assert_eq!(*name, row.name, "spin.toml declares the variables in the table's order");
        assert_eq!((*default, *secret), (row.default, row.secret), "the default of `{name}`");
    }
    assert_eq!(declared.len(), variables::VARIABLES.len(), "{declared:?}");
}

#[test]
fn every_component_in_spin_toml_passes_every_variable_of_the_table() {
    let manifest = include_str!("../../spin.toml");
    let mut components = 0;
    let mut section = "";
    let mut passed: Vec<&str> = Vec::new();
    let mut check = |section: &str, passed: &mut Vec<&str>| {
        if section.starts_with("[component.") && section.ends_with(".variables]") {
            components += 1;
            let table: Vec<&str> = variables::VARIABLES.iter().map(|row| row.name).collect();
            assert_eq!(*passed, table, "{section}");
        }
        passed.clear();
    };
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            check(section, &mut passed);
            section = line;
        } else if let Some((name, value)) = line.split_once(" = ") {
            if !line.starts_with('#') && section.ends_with(".variables]") {
                assert_eq!(value, format!("\"{{{{ {name} }}}}\""), "{section} {name}");
                passed.push(name);
            }
        }
    }
    check(section, &mut passed);
    assert!(components >= 1);
}

/// The documentation of the variables: `docs/CONFIGURATION.md` when there is
/// one, else the README.
fn variable_docs() -> (&'static str, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["docs/CONFIGURATION.md", "README.md"] {
        if let Ok(text) = std::fs::read_to_string(format!("{root}/{file}")) {
            return (file, text);
        }
    }
    panic!("neither docs/CONFIGURATION.md nor README.md");
}

/// Rows of the markdown tables whose header's second column is `default`:
/// (name, default as documented: `None` for required, and whether it says secret).
fn documented_variables(markdown: &str) -> Vec<(String, Option<String>, bool)> {
    let mut out = Vec::new();
    let mut in_table = false;
    let mut variables_table = false;
    for line in markdown.lines().map(str::trim) {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !in_table {
            in_table = true;
            variables_table = cells.get(1).is_some_and(|c| c.eq_ignore_ascii_case("default"));
            continue;
        }
        let (Some(first), Some(default)) = (cells.first(), cells.get(1)) else { continue };
        let Some(name) = first.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else { continue };
        if !variables_table || name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            continue;
        }
        let default = default.replace('`', "");
        let (default, secret) = match default.strip_suffix("(secret)") {
            Some(rest) => (rest.trim().to_string(), true),
            None => (default, false),
        };
        let default = match default.as_str() {
            "(required)" | "required" => None,
            "\"\"" => Some(String::new()),
            _ => Some(default),
        };
        out.push((name.to_string(), default, secret));
    }
    out
}

#[test]
fn the_documentation_has_one_row_per_variable_with_its_default() {
    let (file, markdown) = variable_docs();
    let documented = documented_variables(&markdown);
    for row in variables::VARIABLES {
        let rows: Vec<_> = documented.iter().filter(|(name, ..)| name == row.name).collect();
        assert_eq!(rows.len(), 1, "{file} documents `{}` {} times", row.name, rows.len());
        let (_, default, secret) = rows[0];
        assert_eq!(default.as_deref(), row.default, "{file}: the default of `{}`", row.name);
        assert!(!secret || row.secret, "{file}: `{}` is not secret", row.name);
    }
    for (name, ..) in &documented {
        assert!(variables::VARIABLES.iter().any(|row| row.name == name), "{file} documents unknown `{name}`");
    }
    // When the full table has moved out of the README, what the README still
    // shows of the variables must agree with it.
    if file != "README.md" {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for (name, default, _) in documented_variables(&readme) {
            let row = variables::VARIABLES.iter().find(|row| row.name == name);
            assert!(row.is_some(), "README.md documents unknown `{name}`");
            assert_eq!(default.as_deref(), row.unwrap().default, "README.md: the default of `{name}`");
        }
    }
}

#[test]
fn documented_variable_rows_are_read_from_tables_with_a_default_column_only() {
    let markdown = "\
| variable | default | meaning |
|---|---|---|
| `origin` | (required) | where |
| `salt` | `\"\"` (secret) | a secret |
| `ttl` | `60` | seconds, `a | b` |
| not a name | `1` | skipped |

| field | meaning |
|---|---|
| `hit` | served |
";
    assert_eq!(
        documented_variables(markdown),
        vec![
            ("origin".to_string(), None, false),
            ("salt".to_string(), Some(String::new()), true),
            ("ttl".to_string(), Some("60".to_string()), false),
        ]
    );
}

#[test]
fn graphql_rules_are_read_and_a_bad_entry_is_named() {
    let c = config(&[
        ("origin", "http://x"),
        ("graphql_operations", "GetUser=60, Search*=10, Me=never"),
        ("graphql_types", "User=300, Cart=never"),
        ("graphql_key_fields", "id, _id, Product=sku"),
        ("graphql_entity_tags", "0"),
        ("graphql_invalidation", "soft"),
    ])
    .unwrap();
    assert_eq!(c.protocol.graphql_operations.rule("SearchBooks"), Some(crate::protocol::rules::RuleTtl::Seconds(10)));
    assert_eq!(c.protocol.graphql_types.rule("Cart"), Some(crate::protocol::rules::RuleTtl::Never));
    assert_eq!(c.protocol.graphql_key_fields, crate::protocol::entities::KeyFields::parse("id,_id,Product=sku").unwrap());
    assert_eq!(c.protocol.graphql_entity_tags, 0);
    assert_eq!(c.graphql_invalidation, GraphQlInvalidation::Soft);
    let defaults = config(&[("origin", "http://x")]).unwrap();
    assert_eq!((defaults.protocol.graphql_entity_tags, defaults.graphql_invalidation), (16, GraphQlInvalidation::Entities));
    for (variable, value, entry) in [
        ("graphql_operations", "GetUser=60, Me=sometimes", "Me=sometimes"),
        ("graphql_types", "User, User=5", "User=5"),
        ("graphql_key_fields", "id, Product=", "Product="),
    ] {
        let e = config(&[("origin", "http://x"), (variable, value)]).unwrap_err();
        assert_eq!(e.variable, variable);
        assert!(e.to_string().contains(entry), "{e}");
    }
}
