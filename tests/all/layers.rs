//! The crate's layering, read from its sources: no import cycle between the top-level modules of
//! `host/src`, nor between the files of one folder; the domain modules name none of the layers above them
//! (the edge, the control plane, the pipeline, the exchange, the app) nor the HTTP error type; and the
//! audit crate names none of the gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module of `host/src` → the top-level modules its non-test code names as `crate::<name>`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("host/src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(top.as_str(), "lib" | "main") || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may reach anywhere; only the code above them counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.insert(name);
            }
        }
    }
    graph
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A cycle through `node`, if there is one.
fn cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(pos) = path.iter().position(|n| n == node) {
        let mut found = path[pos..].to_vec();
        found.push(node.to_owned());
        return Some(found);
    }
    path.push(node.to_owned());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(c) = cycle(graph, next, path) {
            return Some(c);
        }
    }
    path.pop();
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = graph();
    assert!(
        graph.contains_key("pipeline") && graph.contains_key("edge"),
        "{graph:?}"
    );
    for node in graph.keys() {
        if let Some(c) = cycle(&graph, node, &mut Vec::new()) {
            panic!("import cycle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn domain_modules_name_no_layer_above_them() {
    let graph = graph();
    let above = [
        "edge", "control", "pipeline", "exchange", "app", "error", "cli", "api",
    ];
    for domain in [
        "admission",
        "audit",
        "auth",
        "cache",
        "config",
        "providers",
        "storage",
        "wire",
        "policy",
        "inference",
        "witness",
        "per_tenant",
    ] {
        let deps = graph.get(domain).cloned().unwrap_or_default();
        for layer in above {
            assert!(
                !deps.contains(layer),
                "`{domain}` names `crate::{layer}`: {deps:?}"
            );
        }
    }
    // The core knows no hyper.
    for layer in ["pipeline", "control"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("host/src")
            .join(layer);
        let mut files = Vec::new();
        collect(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("hyper"), "{} names hyper", file.display());
        }
    }
}

/// The files of one folder (its `mod.rs` aside: it declares the others) → the sibling files their
/// non-test code names, as `super::<file>` or `crate::<folder path>::<file>`.
fn folder_graph(folder: &Path, module: &str) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|f| !matches!(f.as_str(), "mod" | "lib" | "main" | "tests"))
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(folder.join(format!("{file}.rs"))).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let names = |prefix: &str| -> BTreeSet<String> {
            code.match_indices(prefix)
                .flat_map(|(i, _)| first_segments(&code[i + prefix.len()..]))
                .filter(|n| n != file && files.contains(n))
                .collect()
        };
        let mut deps = names("super::");
        if module.is_empty() {
            deps.extend(names("crate::"));
        } else {
            deps.extend(names(&format!("crate::{module}::")));
        }
        graph.insert(file.clone(), deps);
    }
    graph
}

/// The first path segment of what follows `super::`: one name, or each name of a `{a, b::c}` group.
fn first_segments(rest: &str) -> Vec<String> {
    let ident = |t: &str| -> String {
        t.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let (mut depth, mut names, mut start) = (0usize, Vec::new(), 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn no_import_cycle_between_the_files_of_a_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The gateway's top level is the module graph above; the other crates' roots are checked here.
    let mut folders = vec![
        (root.join("host/src"), String::new(), false),
        (root.join("inference/src"), String::new(), true),
        (root.join("audit/src"), String::new(), true),
    ];
    let mut checked = 0;
    while let Some((folder, module, this_one)) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let child = if module.is_empty() {
                    name
                } else {
                    format!("{module}::{name}")
                };
                folders.push((path, child, true));
            }
        }
        if !this_one {
            continue;
        }
        let graph = folder_graph(&folder, &module);
        checked += graph.len();
        for node in graph.keys() {
            if let Some(c) = cycle(&graph, node, &mut Vec::new()) {
                panic!("import cycle in {}: {}", folder.display(), c.join(" -> "));
            }
        }
    }
    assert!(checked > 50, "only {checked} files were read");
}

#[test]
fn the_audit_and_inference_crates_name_nothing_of_the_gateway() {
    for (krate, forbidden) in [
        (
            "audit",
            &[
                "sluice::",
                "sluice_inference",
                "tokio",
                "hyper",
                "sqlx",
                "wasmtime",
                "candle",
            ][..],
        ),
        (
            "inference",
            &[
                "sluice::",
                "sluice_audit",
                "sqlx",
                "wasmtime",
                "crate::pipeline",
                "crate::config",
            ][..],
        ),
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(krate)
            .join("src");
        let mut files = Vec::new();
        collect(&src, &mut files);
        assert!(files.len() >= 6, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in forbidden {
                assert!(!text.contains(name), "{} names {name}", file.display());
            }
        }
    }
}
