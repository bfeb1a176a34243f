//! The modules of `strom-broker` depend on each other one way: `broker.rs` holds the subsystems,
//! handlers and the server sit on top, and no subsystem reaches back up (ARCHITECTURE.md). The
//! compiler enforces that between crates; this test does it between the modules of this crate,
//! from their `crate::` paths (test code excluded).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module name -> the top-level modules its non-test code names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                deps.insert(name);
            }
        }
    }
    graph
}

#[test]
fn modules_depend_on_each_other_one_way() {
    let graph = edges();
    assert!(graph.contains_key("broker") && graph.contains_key("partition"), "{graph:?}");
    // Depth-first search for a cycle, reporting it.
    fn visit<'a>(node: &'a str, graph: &'a BTreeMap<String, BTreeSet<String>>, path: &mut Vec<&'a str>, done: &mut BTreeSet<&'a str>) {
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("module cycle: {} -> {node}", path[at..].join(" -> "));
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for dep in graph.get(node).into_iter().flatten() {
            visit(dep, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
    // The subsystems never reach the top.
    for sub in ["partition", "replication", "replica_manager", "group_service", "topics"] {
        for top in ["broker", "handlers", "server", "connection"] {
            assert!(!graph[sub].contains(top), "{sub} depends on {top}");
        }
    }
}
