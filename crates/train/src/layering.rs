//! The test that keeps the modules layered: every `crate::…` path in a module's files (its
//! `use` lines and paths written out in code) must name a module of a lower layer of
//! [`crate::LAYERS`], or an item the crate root re-exports from one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links may point anywhere).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    })
}

/// The first path segment after each `crate::` in `line`, with what follows it
/// (`crate::step::{A, B}` gives `step`; `crate::{a, b}` gives `a` and `b`).
fn crate_paths(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        // `bert_model::…` paths and the like are other crates: only a bare `crate::` counts.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Items the crate root re-exports, each with the module it comes from (`pub use m::{…}`).
fn root_exports(lib: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut statement = String::new();
    for line in code_lines(lib) {
        let line = line.trim();
        if statement.is_empty() && !line.starts_with("pub use ") {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let body = statement["pub use ".len()..].trim().trim_end_matches(';');
        if let Some((module, items)) = body.split_once("::") {
            let items = items.trim().trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                out.insert(item.to_string(), module.to_string());
            }
        }
        statement.clear();
    }
    out
}

#[test]
fn layers_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of: HashMap<&str, usize> = crate::LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs is readable");
    let exports = root_exports(&lib);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a file name");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "layering" {
            continue;
        }
        let Some(&own) = layer_of.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer of LAYERS",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (n, line) in code_lines(&text).enumerate() {
            for name in crate_paths(line) {
                let target = exports.get(&name).cloned().unwrap_or(name.clone());
                if target == module {
                    continue;
                }
                match layer_of.get(target.as_str()) {
                    Some(&layer) if layer < own => {}
                    Some(&layer) => wrong.push(format!(
                        "{}:{}: `{module}` (layer {}) uses `crate::{name}` of layer {}",
                        relative.display(),
                        n + 1,
                        own + 1,
                        layer + 1
                    )),
                    None => wrong.push(format!(
                        "{}:{}: `crate::{name}` is no module of LAYERS",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        files.len() > 20,
        "found only {} source files under {}",
        files.len(),
        src.display()
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_parser_finds_grouped_and_inline_paths() {
    assert_eq!(
        crate_paths("use crate::{error::Result, step};"),
        vec!["error", "step"]
    );
    assert_eq!(
        crate_paths("let x = crate::reduce::sum(bert_model::crate::y);"),
        vec!["reduce"]
    );
    let exports = root_exports("pub use run::{\n    train,\n    RunSummary,\n};\npub use a::B;\n");
    assert_eq!(exports.get("RunSummary").map(String::as_str), Some("run"));
    assert_eq!(exports.get("B").map(String::as_str), Some("a"));
}
