//! Reads the parts of a `spin.toml` the host acts on: each `[[trigger.http]]`
//! route with its component's variables, templates (`{{ name }}`) resolved the
//! way Spin resolves them: from the app's variables, overridden by the
//! `SPIN_VARIABLE_*`-style values the caller passes.

use crate::server::Route;
use std::collections::HashMap;

/// The routes of a manifest, each with its component's resolved variables.
pub fn routes(manifest: &str, overrides: &HashMap<String, String>) -> Result<Vec<Route>, String> {
    let doc: toml::Table = manifest.parse().map_err(|e| format!("spin.toml: {e}"))?;
    let mut app = HashMap::new();
    for (name, decl) in doc.get("variables").and_then(|v| v.as_table()).into_iter().flatten() {
        if let Some(value) = overrides.get(name) {
            app.insert(name.clone(), value.clone());
        } else if let Some(default) = decl.get("default").and_then(|d| d.as_str()) {
            app.insert(name.clone(), default.to_string());
        }
    }
    let triggers = doc
        .get("trigger")
        .and_then(|t| t.get("http"))
        .and_then(|h| h.as_array())
        .ok_or("spin.toml: no [[trigger.http]]")?;
    let mut routes = Vec::new();
    for trigger in triggers {
        let route = trigger.get("route").and_then(|r| r.as_str()).ok_or("a trigger without route")?;
        let component = trigger.get("component").and_then(|c| c.as_str()).ok_or("a trigger without component")?;
        let declared = doc
            .get("component")
            .and_then(|c| c.get(component))
            .ok_or_else(|| format!("no [component.{component}]"))?;
        let mut variables = HashMap::new();
        for (name, value) in declared.get("variables").and_then(|v| v.as_table()).into_iter().flatten() {
            let value = value.as_str().ok_or_else(|| format!("{component}.{name} is not a string"))?;
            variables.insert(name.clone(), resolve(value, &app)?);
        }
        routes.push(Route { pattern: route.to_string(), variables });
    }
    Ok(routes)
}

/// Replaces every `{{ name }}` with the app variable's value.
fn resolve(template: &str, app: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}").ok_or_else(|| format!("unclosed template in {template:?}"))? + open;
        let name = rest[open + 2..close].trim();
        out.push_str(&rest[..open]);
        out.push_str(app.get(name).ok_or_else(|| format!("undefined app variable {name:?}"))?);
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_from_overrides_then_defaults() {
        let manifest = r#"
            [variables]
            origin = { required = true }
            mode = { default = "raw" }
            [[trigger.http]]
            route = "/..."
            component = "c"
            [component.c.variables]
            origin = "{{ origin }}"
            body_format = "{{mode}}"
            fixed = "x-{{ mode }}-y"
        "#;
        let overrides = HashMap::from([("origin".to_string(), "http://o".to_string())]);
        let routes = routes(manifest, &overrides).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].variables["origin"], "http://o");
        assert_eq!(routes[0].variables["body_format"], "raw");
        assert_eq!(routes[0].variables["fixed"], "x-raw-y");
        assert!(super::routes(manifest, &HashMap::new()).unwrap_err().contains("origin"));
    }
}
