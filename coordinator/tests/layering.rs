//! The coordinator's modules form layers (see the crate doc and ARCHITECTURE.md): each may use
//! only the layers below it, and no two modules import each other, directly or round a loop.
//! The compiler allows both inside one crate (the programs are crates of their own, so it
//! keeps those arrows itself); this test is what keeps the runtime's folder tree honest.
//!
//! It reads every source file, resolves each `crate::a::b` and `super::x` path to the module
//! file it names, and checks the edges against [`LAYERS`] and for cycles. A parent module
//! declaring and re-exporting its own children is not an edge (that is how a folder exposes
//! its parts).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules and the top-level modules each may use. Lower layers first.
const LAYERS: &[(&str, &[&str])] = &[
    ("request", &[]),
    ("logging", &[]),
    ("output", &[]),
    ("transport", &["request"]),
    ("launcher", &["transport", "request"]),
    ("actors", &["launcher", "transport", "request"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module of the crate (as `a::b`) and its file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name == "bin" {
                    continue;
                }
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut p = prefix.to_vec();
                if stem != "mod" && stem != "lib" {
                    p.push(stem.to_string());
                }
                out.insert(p.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&src(), &[], &mut out);
    out
}

/// The longest known module that `path` (segments after `crate::`) starts with.
fn resolve(path: &[&str], known: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains_key(m))
}

/// The paths a file uses, as segments after `crate::`.
fn used_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code: String =
        text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut rest = code.as_str();
    while let Some(i) = rest.find(['c', 's']) {
        let tail = &rest[i..];
        let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
        let (base, after): (Vec<String>, &str) = if boundary && tail.starts_with("crate::") {
            (vec![], &tail["crate::".len()..])
        } else if boundary && tail.starts_with("super::") {
            // `super` of module a::b is a (of a file directly under src/, the crate root).
            let mut parent: Vec<String> = module.split("::").map(String::from).collect();
            parent.pop();
            (parent, &tail["super::".len()..])
        } else {
            rest = &tail[1..];
            continue;
        };
        let end = after.find(|c: char| !ident(c)).unwrap_or(after.len());
        let mut segs = base;
        segs.extend(after[..end].split("::").filter(|s| !s.is_empty()).map(String::from));
        // `use crate::x::{a, b}`: the braces name items of x (or its children).
        if after[end..].starts_with('{') {
            let close = after[end..].find('}').map_or(after.len(), |j| end + j);
            for item in after[end + 1..close].split(',') {
                let item = item.trim().split("::").next().unwrap_or("").trim();
                if !item.is_empty() && item != "self" {
                    let mut s = segs.clone();
                    s.push(item.to_string());
                    out.push(s);
                }
            }
        }
        out.push(segs);
        rest = &after[end..];
    }
    out
}

/// Module-to-module edges of the crate.
fn edges() -> BTreeSet<(String, String)> {
    let known = modules();
    let mut edges = BTreeSet::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for path in used_paths(module, &text) {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(target) = resolve(&segs, &known) else { continue };
            let parent_of_target = target.starts_with(&format!("{module}::")) || module.is_empty();
            if target != *module && !parent_of_target {
                edges.insert((module.clone(), target));
            }
        }
    }
    edges
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let layered: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    for module in modules().keys().filter(|m| !m.is_empty()) {
        assert!(
            layered.contains(top(module)),
            "module {module} is in no layer: add it to LAYERS and the docs"
        );
    }
}

#[test]
fn modules_use_only_the_layers_below() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, to) in edges() {
        let (a, b) = (top(&from), top(&to));
        if a != b && !allowed.get(a).is_some_and(|ok| ok.contains(&b)) {
            wrong.push(format!("{from} -> {to}"));
        }
    }
    assert!(wrong.is_empty(), "edges against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn no_import_cycles_between_modules() {
    let edges = edges();
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &edges {
        graph.entry(a.as_str()).or_default().push(b.as_str());
    }
    // Depth-first search with colours: grey on the stack, black done.
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        colour.insert(n, 1);
        stack.push(n);
        for &m in graph.get(n).into_iter().flatten() {
            match colour.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|&s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, colour, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for &n in graph.keys() {
        if !colour.contains_key(n) {
            if let Some(cycle) = visit(n, &graph, &mut colour, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn the_checker_sees_real_edges() {
    // A checker that found no edges would pass everything: make sure it reads the tree.
    let edges = edges();
    for (a, b) in [
        ("actors::registry", "launcher"),
        ("launcher::threads", "transport::aws"),
        ("actors::supervisor", "transport::seal"),
    ] {
        assert!(edges.contains(&(a.to_string(), b.to_string())), "expected edge {a} -> {b} in {edges:?}");
    }
}
