//! The source layout's rules, checked on every test run: no top-level module of ca-server or
//! ca-core imports one that imports it (directly or around a circle), no source file of
//! ca-server is over 700 lines before its `#[cfg(test)]` module, and no service names a table:
//! their queries live in `store/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn core_src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ca-core/src")
}

/// The code before the unit tests.
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// The top-level module a file under `root` belongs to (`ocsp` for `src/ocsp/answer.rs`).
fn top_module(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The top-level modules named by `crate::<module>` paths in `text`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `ca_server::` and `mamori_crate::` are not this crate's paths.
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// Panics naming a circle among the top-level modules under `root`.
fn assert_no_circles(root: &Path) {
    let mut files = Vec::new();
    sources(root, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let top = top_module(root, file);
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(without_tests(&text)) {
            if used != top {
                edges.entry(top.clone()).or_default().insert(used);
            }
        }
    }
    // Every module reachable from each module; a module that reaches itself is on a circle.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(module) = stack.pop() {
            if module == start {
                panic!(
                    "{}: {start} imports a module that (through others) imports it: {edges:#?}",
                    root.display()
                );
            }
            if seen.insert(module.clone()) {
                if let Some(next) = edges.get(module) {
                    stack.extend(next.iter());
                }
            }
        }
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    assert_no_circles(&src_dir());
    assert_no_circles(&core_src_dir());
}

#[test]
fn no_source_file_is_over_700_lines() {
    let mut files = Vec::new();
    sources(&src_dir(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let lines = without_tests(&text).lines().count();
            (lines > 700).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// The services, whose queries all live in `store/` behind one narrow trait each
/// (`account_rows`, `request_rows`, `ocsp_rows`, `crl_rows`, `reservation_rows`): none of their
/// files names a table outside its tests.
const SERVICES_WITHOUT_QUERIES: [&str; 8] = [
    "accounts", "ra", "ocsp", "crl", "ca", "http", "web", "notify",
];

#[test]
fn services_reach_their_tables_only_through_store_traits() {
    let root = src_dir();
    for service in SERVICES_WITHOUT_QUERIES {
        let mut files = Vec::new();
        sources(&root.join(service), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = without_tests(&text);
            for needle in [
                "store::schema",
                "::table",
                "diesel::insert_into",
                "diesel::update",
            ] {
                assert!(
                    !code.contains(needle),
                    "{} uses {needle}: its queries belong in store/",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn crate_paths_are_found_and_foreign_ones_skipped() {
    let paths = crate_paths("use crate::store::x; ca_server::ra::y; crate::ocsp::{a}");
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        vec!["ocsp".to_string(), "store".to_string()]
    );
}
