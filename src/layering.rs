//! Checks of the crate's shape, read from its own source: no file imports a
//! file that imports it back (directly or through others), and the platform's
//! bindings appear only under `src/spin/`. Paths are resolved the way rustc
//! does for `crate::`, `super::` and `self::`, to the longest prefix that is a
//! module file; a declaration (`mod x;`) is not an import, and a file's inline
//! test module at its end is left out (it imports its parent by design).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["proxy", "lookup"]`) of each source file.
fn module_files(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut files = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            let last = module.pop().expect("a file name");
            match last.as_str() {
                "mod.rs" => {}
                "lib.rs" if module.is_empty() => {}
                name => module.push(name.trim_end_matches(".rs").to_string()),
            }
            files.insert(module, path);
        }
    }
    files
}

/// The file's code without comments and without a trailing `#[cfg(test)] mod … {`.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let next = next.trim_start();
                if next.starts_with("mod ") && next.ends_with('{') {
                    break;
                }
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.rfind('}').expect("balanced braces")];
            let mut depth = 0;
            let mut start = 0;
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], &format!("{prefix}{head}"), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if !inner[start..].trim().is_empty() {
                expand(&inner[start..], &format!("{prefix}{head}"), out);
            }
        }
    }
}

/// The child modules a file declares (`mod x;`): its code may name them bare.
fn declared_children(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub(crate) ").or_else(|| line.strip_prefix("pub ")).unwrap_or(line);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// Every path the code names that starts at `crate`, `super`, `self` or one of
/// `children`: in `use` trees (which may hold braces) and written inline.
fn paths_named(code: &str, children: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut statement: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim();
        if statement.is_none() {
            let rest = trimmed.strip_prefix("pub(crate) ").or_else(|| trimmed.strip_prefix("pub ")).unwrap_or(trimmed);
            if let Some(tree) = rest.strip_prefix("use ") {
                statement = Some(String::new());
                statement.as_mut().expect("just set").push_str(tree);
            }
        } else {
            statement.as_mut().expect("open statement").push_str(trimmed);
        }
        if let Some(tree) = statement.as_deref().filter(|s| s.contains(';')) {
            let tree: String = tree[..tree.find(';').expect("contains ;")].split_whitespace().collect();
            expand(&tree, "", &mut paths);
            statement = None;
        }
    }
    let bytes = code.as_bytes();
    let roots = ["crate", "super", "self"].into_iter().map(String::from).chain(children.iter().cloned());
    for root in roots {
        let root = format!("{root}::");
        let mut from = 0;
        while let Some(found) = code[from..].find(&root) {
            let at = from + found;
            from = at + root.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            let len = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            paths.push(code[at..at + len].to_string());
        }
    }
    paths
}

/// The module file a path names, seen from the file of `module`.
fn resolve(path: &str, module: &[String], files: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut base: Vec<String> = match *segments.peek()? {
        "crate" => Vec::new(),
        _ => module.to_vec(),
    };
    loop {
        match segments.peek().copied() {
            Some("crate") | Some("self") => {
                segments.next();
            }
            Some("super") => {
                segments.next();
                base.pop();
            }
            _ => break,
        }
    }
    let mut target = base;
    for segment in segments {
        let mut next = target.clone();
        next.push(segment.to_string());
        if files.contains_key(&next) {
            target = next;
        } else {
            break;
        }
    }
    files.contains_key(&target).then_some(target)
}

fn import_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = module_files(&src);
    let mut graph = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).expect("source is readable");
        let code = code_of(&text);
        let mut edges = BTreeSet::new();
        for path in paths_named(&code, &declared_children(&code)) {
            if let Some(target) = resolve(&path, module, &files) {
                if &target != module {
                    edges.insert(target);
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A circle of imports, if there is one: depth-first, reporting the first back edge.
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|n| n == next).expect("open nodes are on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

fn show(cycle: &[Vec<String>]) -> String {
    cycle.iter().map(|m| format!("crate::{}", m.join("::"))).collect::<Vec<_>>().join(" -> ")
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let graph = import_graph();
    assert!(graph.len() > 40, "the source tree was read ({} files)", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", show(&cycle));
    }
}

#[test]
fn the_cycle_finder_sees_a_circle_through_three_files() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let mut graph = BTreeMap::new();
    graph.insert(m("a"), BTreeSet::from([m("b")]));
    graph.insert(m("b"), BTreeSet::from([m("c")]));
    graph.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(show(&find_cycle(&graph).expect("a circle")), "crate::a -> crate::b -> crate::c -> crate::a");
    graph.insert(m("c"), BTreeSet::new());
    assert!(find_cycle(&graph).is_none());
}

#[test]
fn paths_in_use_trees_and_inline_are_resolved_to_module_files() {
    let files: BTreeMap<Vec<String>, PathBuf> = [vec![], vec!["proxy".to_string()], vec!["proxy".into(), "lookup".into()], vec!["http".into()], vec!["http".into(), "headers".into()]]
        .into_iter()
        .map(|m| (m, PathBuf::new()))
        .collect();
    let code = code_of("use super::{lookup::{Found, Usable}, Flow};\n// use crate::gone;\nfn f() { crate::http::headers::values(x); }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n");
    let here = vec!["proxy".to_string(), "miss".to_string()];
    let resolved: BTreeSet<_> = paths_named(&code, &[]).iter().filter_map(|p| resolve(p, &here, &files)).collect();
    let want: BTreeSet<Vec<String>> = [vec!["proxy".to_string(), "lookup".into()], vec!["proxy".into()], vec!["http".into(), "headers".into()]].into_iter().collect();
    assert_eq!(resolved, want);
    // A `mod.rs` naming a child it declares, bare.
    let code = code_of("mod lookup;\nfn g() { lookup::examine(); }\n");
    let want_child: BTreeSet<Vec<String>> = [vec!["proxy".to_string(), "lookup".into()]].into_iter().collect();
    let proxy = vec!["proxy".to_string()];
    let resolved: BTreeSet<_> = paths_named(&code, &declared_children(&code)).iter().filter_map(|p| resolve(p, &proxy, &files)).collect();
    assert_eq!(resolved, want_child);
}

#[test]
fn platform_bindings_appear_only_under_src_spin() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = module_files(&src);
    // Spelled in pieces so this file does not match the check it makes.
    let needles = [["spin", "_sdk"].concat(), ["spin", "_executor"].concat(), ["wasi", "::"].concat()];
    let mut outside = Vec::new();
    for (module, file) in &files {
        if module.first().is_some_and(|m| m == "spin") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && needles.iter().any(|n| line.contains(n.as_str())) {
                outside.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(files.keys().any(|m| m.first().is_some_and(|m| m == "spin")), "src/spin exists");
    assert!(outside.is_empty(), "platform bindings outside src/spin:\n{}", outside.join("\n"));
}
