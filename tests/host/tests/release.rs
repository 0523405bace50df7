//! The Spin template (templates/post-cache) rendered the way `spin new` and
//! `spin add` render it, and the manifests it makes held to what the component
//! reads: spin.toml's `[variables]`, which the unit tests hold to
//! src/config/variables.rs. With a release (scripts/release.sh) in
//! `POST_CACHE_RELEASE_DIR`, or in dist/, its template and spin.toml fragment
//! must name the wasm beside them by its digest.

use sha2::{Digest, Sha256};
use spin_test_host::build::workspace_root;
use spin_test_host::client::Client;
use spin_test_host::origin::TestOrigin;
use spin_test_host::{build, engine, load, start, HostConfig};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

// ---------------------------------------------------------------------------
// Just enough of Liquid, as Spin's template engine (the `liquid` crate with its
// standard library and Spin's case filters) evaluates it: `{{ expr }}`,
// `{% assign name = expr %}`, `{% raw %}…{% endraw %}`, variables (hyphens
// allowed, as Spin's parameter names have them) with an `[index]`, and the
// filters `kebab_case`, `snake_case` and `split`. Anything else in a template
// is an error here, so the template cannot drift past what this test checks.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Value {
    Text(String),
    List(Vec<String>),
}

fn render(template: &str, values: &HashMap<String, String>) -> Result<String, String> {
    let mut scope: HashMap<String, Value> = values.iter().map(|(k, v)| (k.clone(), Value::Text(v.clone()))).collect();
    let mut out = String::new();
    let mut rest = template;
    loop {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (None, None) => {
                out.push_str(rest);
                return Ok(out);
            }
            (a, b) => a.unwrap_or(usize::MAX).min(b.unwrap_or(usize::MAX)),
        };
        out.push_str(&rest[..open]);
        let tag = rest[open..].starts_with("{%");
        let close_mark = if tag { "%}" } else { "}}" };
        let close = rest[open + 2..].find(close_mark).ok_or_else(|| format!("unclosed {:?}", &rest[open..]))? + open + 2;
        let inner = rest[open + 2..close].trim();
        rest = &rest[close + 2..];
        if !tag {
            match evaluate(inner, &scope)? {
                Value::Text(text) => out.push_str(&text),
                Value::List(_) => return Err(format!("{{{{ {inner} }}}} is a list")),
            }
            continue;
        }
        let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        match name {
            "raw" => {
                let end = rest.find("{% endraw %}").ok_or("{% raw %} without {% endraw %}")?;
                out.push_str(&rest[..end]);
                rest = &rest[end + "{% endraw %}".len()..];
            }
            "assign" => {
                let (variable, expr) = args.split_once('=').ok_or_else(|| format!("bad assign {args:?}"))?;
                let value = evaluate(expr.trim(), &scope)?;
                scope.insert(variable.trim().to_string(), value);
            }
            _ => return Err(format!("the tag {name:?} is outside the Liquid this test implements")),
        }
    }
}

fn evaluate(expr: &str, scope: &HashMap<String, Value>) -> Result<Value, String> {
    let mut parts = expr.split('|').map(str::trim);
    let operand = parts.next().unwrap_or_default();
    let mut value = if let Some(literal) = string_literal(operand) {
        Value::Text(literal)
    } else {
        let (name, index) = match operand.split_once('[') {
            Some((name, index)) => {
                let index = index.strip_suffix(']').and_then(|i| i.parse::<usize>().ok());
                (name, Some(index.ok_or_else(|| format!("bad index in {operand:?}"))?))
            }
            None => (operand, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("{operand:?} is not a variable"));
        }
        // Liquid, as Spin runs it, refuses an unknown variable.
        let value = scope.get(name).ok_or_else(|| format!("unknown variable {name:?}"))?.clone();
        match (value, index) {
            (value, None) => value,
            (Value::List(items), Some(i)) => Value::Text(items.get(i).cloned().ok_or_else(|| format!("{operand:?} is past the end"))?),
            (Value::Text(_), Some(_)) => return Err(format!("{name:?} is not a list")),
        }
    };
    for filter in parts {
        let (name, arg) = match filter.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(string_literal(arg.trim()).ok_or_else(|| format!("bad argument in {filter:?}"))?)),
            None => (filter, None),
        };
        let Value::Text(text) = &value else { return Err(format!("{filter:?} on a list")) };
        value = match (name, arg) {
            ("kebab_case", None) => Value::Text(words(text).join("-")),
            ("snake_case", None) => Value::Text(words(text).join("_")),
            ("split", Some(separator)) => Value::List(text.split(separator.as_str()).map(str::to_string).collect()),
            _ => return Err(format!("the filter {filter:?} is outside the Liquid this test implements")),
        };
    }
    Ok(value)
}

fn string_literal(s: &str) -> Option<String> {
    s.strip_prefix('"')?.strip_suffix('"').map(str::to_string)
}

/// The lowercase words of a name, split where the `heck` crate (Spin's case
/// filters) splits them: at anything not a letter or digit, between a lowercase
/// letter or digit and an uppercase one, and before the last capital of a run
/// followed by a lowercase letter ("HTTPServer": "http", "server").
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let boundary = i > 0
                && c.is_ascii_uppercase()
                && (!chars[i - 1].is_ascii_uppercase() || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.push(c.to_ascii_lowercase());
        }
        words.push(word);
    }
    words
}

// ---------------------------------------------------------------------------
// The template: its parameters answered as Spin answers them, and its files.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// `spin new -t post-cache NAME`: the content/ directory is the new app.
    New,
    /// `spin add -t post-cache NAME`: the snippets go into an existing spin.toml.
    Add,
}

struct Template {
    dir: PathBuf,
    meta: toml::Table,
}

impl Template {
    fn open(dir: PathBuf) -> Template {
        let text = std::fs::read_to_string(dir.join("metadata/spin-template.toml")).unwrap();
        let meta: toml::Table = text.parse().unwrap();
        assert_eq!(meta["manifest_version"].as_str(), Some("1"));
        assert_eq!(meta["id"].as_str(), Some("post-cache"));
        // Spin reads the metadata with `deny_unknown_fields`: a misspelt key fails the install.
        let known = ["manifest_version", "id", "description", "trigger_type", "tags", "new_application", "add_component", "parameters", "outputs"];
        assert!(meta.keys().all(|k| known.contains(&k.as_str())), "{:?}", meta.keys().collect::<Vec<_>>());
        let variant = ["supported", "skip_files", "skip_parameters", "snippets", "conditions"];
        assert!(meta["add_component"].as_table().unwrap().keys().all(|k| variant.contains(&k.as_str())));
        let parameter = ["type", "prompt", "default", "pattern", "allowed_values"];
        for (name, p) in meta["parameters"].as_table().unwrap() {
            assert!(p.as_table().unwrap().keys().all(|k| parameter.contains(&k.as_str())), "{name}");
        }
        Template { dir, meta }
    }

    fn repository() -> Template {
        Template::open(workspace_root().join("templates/post-cache"))
    }

    fn add_component(&self, key: &str) -> Vec<String> {
        let list = self.meta.get("add_component").and_then(|a| a.get(key)).and_then(|l| l.as_array());
        list.into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    /// What Spin fills in: the special values, then every parameter of the
    /// variant from `given` or, as a user pressing Enter (or `--accept-defaults`),
    /// its default; each checked against its pattern and allowed values.
    fn answers(&self, variant: Variant, name: &str, given: &[(&str, &str)]) -> Result<HashMap<String, String>, String> {
        let skipped = if variant == Variant::Add { self.add_component("skip_parameters") } else { Vec::new() };
        let parameters = self.meta["parameters"].as_table().unwrap();
        for (key, _) in given {
            if !parameters.contains_key(*key) || skipped.iter().any(|s| s == key) {
                return Err(format!("Template does not contain a parameter named '{key}'"));
            }
        }
        let mut values = HashMap::from([
            ("project-name".to_string(), name.to_string()),
            ("authors".to_string(), "A. Developer <a@example.com>".to_string()),
            ("username".to_string(), "adev".to_string()),
            ("output-path".to_string(), name.to_string()),
        ]);
        for (key, parameter) in parameters.iter().filter(|(k, _)| !skipped.contains(k)) {
            assert_eq!(parameter["type"].as_str(), Some("string"), "{key}: Spin's only parameter type");
            assert!(parameter["prompt"].is_str(), "{key} has a prompt");
            let value = match given.iter().find(|(k, _)| k == key) {
                Some((_, v)) => v.to_string(),
                None => parameter
                    .get("default")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| format!("{key} has no default: Spin would ask"))?
                    .to_string(),
            };
            if let Some(pattern) = parameter.get("pattern").and_then(|p| p.as_str()) {
                let regex = regex_lite::Regex::new(pattern).map_err(|e| format!("{key}: {e}"))?;
                if !regex.is_match(&value) {
                    return Err(format!("{key}: Input '{value}' does not match pattern '{pattern}'"));
                }
            }
            if let Some(allowed) = parameter.get("allowed_values").and_then(|a| a.as_array()) {
                if !allowed.iter().any(|a| a.as_str() == Some(&value)) {
                    return Err(format!("{key}: Input '{value}' is not one of the allowed values"));
                }
            }
            values.insert(key.clone(), value);
        }
        Ok(values)
    }

    /// `spin new`: every file of content/, rendered, by its path in the new app.
    fn spin_new(&self, name: &str, given: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
        let values = self.answers(Variant::New, name, given)?;
        let mut files = BTreeMap::new();
        let content = self.dir.join("content");
        for path in walk(&content) {
            let relative = path.strip_prefix(&content).unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            files.insert(relative.clone(), render(&text, &values).map_err(|e| format!("{relative}: {e}"))?);
        }
        Ok(files)
    }

    /// `spin add` into `existing`: the `variables` snippet merged into the app's
    /// `[variables]` (an existing entry of the same name replaced, as Spin's
    /// merge does), then the `component` snippet appended.
    fn spin_add(&self, existing: &str, name: &str, given: &[(&str, &str)]) -> Result<String, String> {
        let values = self.answers(Variant::Add, name, given)?;
        let snippets = self.meta["add_component"]["snippets"].as_table().unwrap();
        assert!(snippets.keys().all(|k| k == "component" || k == "variables"), "snippets Spin knows: {snippets:?}");
        let snippet = |id: &str| -> Result<String, String> {
            let file = snippets[id].as_str().unwrap();
            let text = std::fs::read_to_string(self.dir.join("metadata/snippets").join(file)).unwrap();
            render(&text, &values).map_err(|e| format!("{file}: {e}"))
        };
        let mut app: toml::Table = existing.parse().map_err(|e| format!("existing app: {e}"))?;
        let variables: toml::Table = snippet("variables")?.parse().map_err(|e| format!("variables snippet: {e}"))?;
        let declared = app.entry("variables").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        for (key, value) in variables {
            declared.as_table_mut().unwrap().insert(key, value);
        }
        Ok(format!("{}\n\n{}", toml::to_string(&app).unwrap().trim_end(), snippet("component")?))
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// What a manifest must say for Spin to run post-cache in it.
// ---------------------------------------------------------------------------

/// spin.toml's `[variables]`: name → (default, `None` when required; secret).
fn component_variables() -> BTreeMap<String, (Option<String>, bool)> {
    let manifest: toml::Table = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap().parse().unwrap();
    let variables = manifest["variables"].as_table().unwrap();
    assert!(variables.len() > 20, "spin.toml declares the component's variables");
    variables
        .iter()
        .map(|(name, decl)| {
            let default = decl.get("default").map(|d| d.as_str().unwrap().to_string());
            let secret = decl.get("secret").and_then(|s| s.as_bool()).unwrap_or(false);
            (name.clone(), (default, secret))
        })
        .collect()
}

/// Spin's rule for an identifier: words split by `delimiter`, each starting
/// with a letter, then letters and digits, all lowercase.
fn is_id(id: &str, delimiter: char) -> bool {
    id.split(delimiter).all(|word| {
        word.starts_with(|c: char| c.is_ascii_lowercase())
            && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

/// What the checks found: the component's variables as the app resolves them
/// (its `[variables]` defaults through the component's `{{ name }}`), and its
/// source and outbound hosts.
struct Cache {
    variables: HashMap<String, String>,
    url: String,
    digest: String,
    allowed_outbound_hosts: Vec<String>,
    route: String,
}

/// Checks the manifest shape Spin expects and that `component` is post-cache
/// given every variable it reads, each through an app variable declared with
/// the default and secrecy spin.toml gives it (bar those in `answered`).
fn check(manifest: &str, component: &str, answered: &[&str], overrides: &[(&str, &str)]) -> Cache {
    let doc: toml::Table = manifest.parse().unwrap_or_else(|e| panic!("not TOML: {e}\n{manifest}"));
    assert_eq!(doc["spin_manifest_version"].as_integer(), Some(2));
    assert!(doc["application"]["name"].is_str());
    assert!(is_id(component, '-'), "component id {component:?}");
    let triggers = doc["trigger"]["http"].as_array().expect("[[trigger.http]]");
    let trigger = triggers.iter().find(|t| t["component"].as_str() == Some(component)).expect("a route to the cache");
    let route = trigger["route"].as_str().unwrap().to_string();
    assert!(route.starts_with('/'), "{route}");
    let section = doc["component"][component].as_table().expect("[component.<name>]");
    let source = section["source"].as_table().expect("source = { url, digest }");
    let url = source["url"].as_str().unwrap().to_string();
    let digest = source["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let stores: Vec<&str> = section["key_value_stores"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let allowed_outbound_hosts = section["allowed_outbound_hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();

    let app_variables = doc["variables"].as_table().unwrap();
    for name in app_variables.keys() {
        assert!(is_id(name, '_'), "app variable {name:?} is not a name Spin accepts");
    }
    let passed = section["variables"].as_table().expect("[component.<name>.variables]");
    let expected = component_variables();
    let names: Vec<&String> = passed.keys().collect();
    assert_eq!(names, expected.keys().collect::<Vec<_>>(), "every variable post-cache reads is passed, and only those");
    for (name, (default, secret)) in &expected {
        let template = passed[name].as_str().unwrap();
        let app_name = template
            .strip_prefix("{{ ")
            .and_then(|t| t.strip_suffix(" }}"))
            .unwrap_or_else(|| panic!("{name} = {template:?} is not an app variable"));
        let declared = app_variables.get(app_name).unwrap_or_else(|| panic!("{app_name} is not declared in [variables]"));
        let declared_secret = declared.get("secret").and_then(|s| s.as_bool()).unwrap_or(false);
        assert_eq!(declared_secret, *secret, "{app_name}: secret as in spin.toml");
        if !answered.contains(&name.as_str()) {
            let declared_default = declared.get("default").map(|d| d.as_str().unwrap().to_string());
            assert_eq!(&declared_default, default, "{app_name}: default as in spin.toml");
        }
    }
    let variables = cache_route(&doc, component, overrides).variables;
    assert!(stores.contains(&variables["kv_store"].as_str()), "key_value_stores {stores:?} has the label in kv_store");
    Cache { variables, url, digest, allowed_outbound_hosts, route }
}

/// The cache's route with its variables resolved, as the test host reads a
/// spin.toml (which knows no private routes: the other triggers are left out).
fn cache_route(doc: &toml::Table, component: &str, overrides: &[(&str, &str)]) -> spin_test_host::server::Route {
    let mut doc = doc.clone();
    let triggers = doc["trigger"]["http"].as_array_mut().unwrap();
    triggers.retain(|t| t["component"].as_str() == Some(component));
    let overrides: HashMap<String, String> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut routes = spin_test_host::manifest::routes(&toml::to_string(&doc).unwrap(), &overrides).unwrap();
    assert_eq!(routes.len(), 1);
    routes.remove(0)
}

/// An app with a component of its own, which already has an `origin` variable.
const EXISTING_APP: &str = r#"
spin_manifest_version = 2

[application]
name = "shop"
version = "1.0.0"

[variables]
origin = { default = "https://payments.example.com" }

[[trigger.http]]
route = { private = true }
component = "api"

[component.api]
source = "target/wasm32-wasip2/release/api.wasm"
allowed_outbound_hosts = ["{{ origin }}"]
[component.api.variables]
origin = "{{ origin }}"
"#;

const UNFILLED: &str = "<filled by scripts/release.sh>";

// ---------------------------------------------------------------------------

#[test]
fn spin_new_with_the_defaults_makes_an_app_that_passes_every_variable() {
    let template = Template::repository();
    let files = template.spin_new("graphql-cache", &[("origin", "https://api.example.com")]).unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), [".gitignore", "spin.toml"]);
    let cache = check(&files["spin.toml"], "graphql-cache", &["origin"], &[]);
    assert_eq!(cache.route, "/...");
    assert_eq!(cache.allowed_outbound_hosts, ["https://api.example.com"]);
    assert_eq!(cache.variables["origin"], "https://api.example.com");
    assert_eq!(cache.variables["body_format"], "raw");
    assert_eq!(cache.variables["purge_token"], "");
    // The repository's template names no release: the release script fills it.
    assert_eq!(cache.url, UNFILLED);
    assert_eq!(cache.digest, format!("sha256:{UNFILLED}"));
}

#[test]
fn spin_new_puts_the_answers_in_the_app_and_the_origins_host_in_allowed_outbound_hosts() {
    let token = "0123456789abcdefghijklmnopqrstuv";
    let given = [
        ("origin", "https://rpc.example.com:8545/v1/mainnet"),
        ("http-path", "/rpc/..."),
        ("body-format", "jsonrpc"),
        ("rpc-methods", "eth_chainId=forever, eth_getBlockByHash"),
        ("purge-token", token),
        ("project-description", "An RPC cache"),
    ];
    let files = Template::repository().spin_new("Rpc Cache", &given).unwrap();
    let answered = ["origin", "body_format", "rpc_methods", "purge_token"];
    let cache = check(&files["spin.toml"], "rpc-cache", &answered, &[]);
    assert_eq!(cache.route, "/rpc/...");
    // Spin wants scheme://host[:port] there: the origin's path is left out.
    assert_eq!(cache.allowed_outbound_hosts, ["https://rpc.example.com:8545"]);
    assert_eq!(cache.variables["origin"], "https://rpc.example.com:8545/v1/mainnet");
    assert_eq!(cache.variables["body_format"], "jsonrpc");
    assert_eq!(cache.variables["rpc_methods"], "eth_chainId=forever, eth_getBlockByHash");
    assert_eq!(cache.variables["purge_token"], token);
    let doc: toml::Table = files["spin.toml"].parse().unwrap();
    assert_eq!(doc["application"]["name"].as_str(), Some("rpc-cache"));
    assert_eq!(doc["application"]["description"].as_str(), Some("An RPC cache"));
    // A variable Spin can be told at `spin up` keeps its plain name.
    assert!(doc["variables"].get("origin").is_some());
}

#[test]
fn spin_add_puts_a_cache_in_front_of_another_component_without_touching_the_apps_variables() {
    let template = Template::repository();
    let given = [("origin", "http://api.spin.internal"), ("http-path", "/api/..."), ("body-format", "graphql")];
    let once = template.spin_add(EXISTING_APP, "api-cache", &given).unwrap();
    let cache = check(&once, "api-cache", &["origin", "body_format"], &[]);
    assert_eq!(cache.route, "/api/...");
    // Service chaining: Spin lets a component call another at <id>.spin.internal
    // when that host is allowed.
    assert_eq!(cache.allowed_outbound_hosts, ["http://api.spin.internal"]);
    assert_eq!(cache.variables["origin"], "http://api.spin.internal");
    assert_eq!(cache.variables["body_format"], "graphql");
    let doc: toml::Table = once.parse().unwrap();
    assert_eq!(doc["variables"]["origin"]["default"].as_str(), Some("https://payments.example.com"), "the app's own origin");
    assert_eq!(doc["variables"]["api_cache_origin"]["default"].as_str(), Some("http://api.spin.internal"));
    assert!(doc["component"]["api"].is_table());

    // A second cache in the same app has variables of its own.
    let twice = template.spin_add(&once, "search-cache", &[("origin", "https://search.example.com"), ("http-path", "/search")]).unwrap();
    let first = check(&twice, "api-cache", &["origin", "body_format"], &[]);
    let second = check(&twice, "search-cache", &["origin"], &[]);
    assert_eq!(first.variables["origin"], "http://api.spin.internal");
    assert_eq!(second.variables["origin"], "https://search.example.com");
    assert_eq!(second.variables["body_format"], "raw");
    assert_eq!(second.route, "/search");
}

#[test]
fn the_template_refuses_answers_spin_would_refuse_to_take() {
    let template = Template::repository();
    let new = |given: &[(&str, &str)]| template.spin_new("cache", given).map(|_| ());
    let origin = ("origin", "https://api.example.com");
    assert!(new(&[]).unwrap_err().contains("origin has no default"));
    for bad in ["api.example.com", "ftp://api.example.com", "https://api.example.com/\"x", "https://a b"] {
        let err = new(&[("origin", bad)]).unwrap_err();
        assert!(err.contains("does not match"), "{bad}: {err}");
    }
    assert!(new(&[origin, ("body-format", "xml")]).unwrap_err().contains("allowed values"));
    assert!(new(&[origin, ("purge-token", "short")]).unwrap_err().contains("does not match"), "the admin API wants 24 characters");
    assert!(new(&[origin, ("http-path", "api")]).unwrap_err().contains("does not match"));
    assert!(template.spin_add(EXISTING_APP, "c", &[origin, ("project-description", "x")]).unwrap_err().contains("does not contain a parameter named"));
    assert!(new(&[origin, ("purge-token", "0123456789abcdefghijklmnopqrstuv"), ("http-path", "/graphql")]).is_ok());
}

#[test]
fn the_liquid_here_renders_what_spin_renders() {
    let values = HashMap::from([("project-name".to_string(), "My HTTPCache v2".to_string()), ("o".to_string(), "http://h:1/p".to_string())]);
    assert_eq!(render("{{ project-name | kebab_case }}", &values).unwrap(), "my-http-cache-v2");
    assert_eq!(render("{{project-name|snake_case}}", &values).unwrap(), "my_http_cache_v2");
    assert_eq!(render(r#"{% assign p = o | split: "/" %}{{ p[0] }}//{{ p[2] }}"#, &values).unwrap(), "http://h:1");
    assert_eq!(render("a{% raw %}{{ x }}{% endraw %}b }}", &values).unwrap(), "a{{ x }}b }}");
    assert!(render("{{ missing }}", &values).is_err());
    assert!(render("{{ o | upcase }}", &values).is_err());
    assert!(render("{% if o %}x{% endif %}", &values).is_err());
}

/// The release's directory: `POST_CACHE_RELEASE_DIR` (CI sets it, and then it
/// must exist), else dist/ when scripts/release.sh has been run here.
fn release_dir() -> Option<PathBuf> {
    match std::env::var_os("POST_CACHE_RELEASE_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(workspace_root().join("dist")).filter(|d| d.join("post_cache.wasm").exists()),
    }
}

#[test]
fn the_released_template_and_fragment_name_the_released_wasm_by_its_digest() {
    let Some(dir) = release_dir() else {
        eprintln!("no release to check: run scripts/release.sh (or set POST_CACHE_RELEASE_DIR)");
        return;
    };
    let wasm = std::fs::read(dir.join("post_cache.wasm")).expect("the release has post_cache.wasm");
    let hex: String = Sha256::digest(&wasm).iter().map(|b| format!("{b:02x}")).collect();
    let digest = format!("sha256:{hex}");
    let sum = std::fs::read_to_string(dir.join("post_cache.wasm.sha256")).unwrap();
    assert_eq!(sum, format!("{hex}  post_cache.wasm\n"), "sha256sum's format");

    let template = Template::open(dir.join("templates/post-cache"));
    let files = template.spin_new("api-cache", &[("origin", "https://api.example.com")]).unwrap();
    let new = check(&files["spin.toml"], "api-cache", &["origin"], &[]);
    let added = template.spin_add(EXISTING_APP, "api-cache", &[("origin", "http://api.spin.internal")]).unwrap();
    let add = check(&added, "api-cache", &["origin"], &[]);
    let fragment = std::fs::read_to_string(dir.join("post_cache.spin.toml")).unwrap();
    let app = format!("spin_manifest_version = 2\n[application]\nname = \"app\"\n{fragment}");
    let pasted = check(&app, "post-cache", &[], &[("origin", "https://api.example.com")]);
    assert_eq!(pasted.allowed_outbound_hosts, ["{{ origin }}"]);
    for cache in [&new, &add, &pasted] {
        assert_eq!(cache.digest, digest);
        assert!(cache.url.starts_with("https://") && cache.url.ends_with("/post_cache.wasm"), "{}", cache.url);
    }
    assert_eq!(new.url, pasted.url);
    assert_eq!(add.url, pasted.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_made_by_spin_add_caches_in_the_host() {
    let origin = TestOrigin::start().await.unwrap();
    let given = [("origin", origin.base_url()), ("http-path", "/api/...".to_string())];
    let given: Vec<(&str, &str)> = given.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let manifest = Template::repository().spin_add(EXISTING_APP, "api-cache", &given).unwrap();
    let cache = check(&manifest, "api-cache", &["origin"], &[]);

    let engine = engine().unwrap();
    let component = load(&engine, &build::component("post-cache").unwrap()).unwrap();
    let mut config = HostConfig::default();
    config.routes = vec![cache_route(&manifest.parse().unwrap(), "api-cache", &[])];
    config.allowed_outbound_hosts = cache.allowed_outbound_hosts.clone();
    let host = start(&engine, &component, config).await.unwrap();
    host.freeze_clock();
    let mut client = Client::new(host.addr);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let reply = client.post("/api/search?cc=max-age%3D60", &[("content-type", "application/json")], b"{\"q\":1}").await;
        assert_eq!(reply.status, 200);
        statuses.push(reply.cache_status());
        // The miss writes its record after the answer: wait for it.
        while host.stats.active.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    assert_eq!(statuses, ["post-cache; fwd=uri-miss; detail=storing", "post-cache; hit; ttl=60"]);
    assert_eq!(origin.count_path("POST", "/api/search"), 1);
}
