//! The server's modules depend on each other one way: a circle between two of them (the
//! proxy importing the API's state, say) fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names as `crate::…`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let module = relative.iter().next().unwrap().to_str().unwrap().trim_end_matches(".rs").to_owned();
            if module == "test_support" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                // `crate::AppState`: an item the crate root re-exports, which reaches every module.
                let name = if name.starts_with(|c: char| c.is_ascii_uppercase()) { "lib".to_owned() } else { name };
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut pending = vec![from.to_owned()];
    while let Some(module) = pending.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                pending.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_reaches_itself() {
    let graph = graph();
    assert!(graph.len() > 15, "the modules were found: {:?}", graph.keys());
    assert!(graph["routes"].contains("state"), "the graph is read: {graph:?}");
    for module in graph.keys() {
        assert!(!reaches(&graph, module, module), "`{module}` imports itself through a circle: {graph:#?}");
    }
}

#[test]
fn the_proxy_and_the_parts_below_the_state_do_not_import_it() {
    let graph = graph();
    for module in ["proxy", "auth", "preflight", "config", "cache", "metrics", "error", "code"] {
        assert!(!reaches(&graph, module, "state"), "`{module}` depends on the API's state");
    }
    assert!(!reaches(&graph, "proxy", "routes") && !reaches(&graph, "proxy", "lifecycle"));
}
