//! The module structure stays as the README's layout table describes it: layers depend
//! only downwards, and library code neither prints nor exits.

use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest layer first. A module may use modules of a
/// lower layer, never one of a higher layer or (apart from itself) of its own.
const LAYERS: &[&[&str]] = &[
    &["error", "rng", "console", "interrupt", "range", "simd"],
    &[
        "data_loaders",
        "losses",
        "metrics",
        "optim",
        "model",
        "transforms",
    ],
    &["state"],
    &["checkpoint"],
    &["report"],
    &["callbacks"],
    &["trainer"],
    &["registry"],
    &["job"],
    &["sweep"],
    &["notify"],
    &["cli"],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every library source file with its top-level module.
fn library_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for dir in ["src", "callbacks", "data_loaders"] {
        rust_files(&root().join(dir), &mut files);
    }
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(root()).unwrap().to_path_buf();
            let parts: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().to_string())
                .collect();
            let module = match parts[0].as_str() {
                "src" if parts.len() == 2 => parts[1].trim_end_matches(".rs").to_string(),
                "src" => parts[1].clone(),
                other => other.to_string(),
            };
            // Test-only files (`mod tests;` behind `#[cfg(test)]`) are not library code.
            let test_only = matches!(
                parts.last().map(String::as_str),
                Some("tests.rs" | "testing.rs")
            );
            (module != "lib" && module != "main" && !test_only).then_some((module, rel))
        })
        .collect()
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of tests/it/architecture.rs"))
}

/// The code of a file without its unit tests and comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    code.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules a piece of code names as `crate::X`.
fn crate_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name.chars().next().unwrap().is_lowercase() {
            out.push(name);
        }
    }
    // `use crate::{a::X, b::Y}` names several.
    let mut rest = code;
    while let Some(i) = rest.find("crate::{") {
        let group = &rest[i + 8..];
        let end = group.find('}').unwrap_or(group.len());
        for part in group[..end].split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = &group[end..];
    }
    out
}

#[test]
fn layers_depend_only_downwards() {
    let mut violations = Vec::new();
    for (module, path) in library_files() {
        // The crate's error type gathers each layer's own error type; it holds no logic.
        if module == "error" {
            continue;
        }
        let own = layer_of(&module);
        for used in crate_modules(&code_of(&path)) {
            if used == module || used == "error" || used == "Result" || used == "Error" {
                continue;
            }
            let theirs = layer_of(&used);
            if theirs >= own {
                violations.push(format!(
                    "{} ({module}, layer {own}) uses crate::{used} (layer {theirs})",
                    path.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_import() {
    let code = "use crate::trainer::Trainer;\nuse crate::{state::TrainState, rng::RngStream};";
    assert_eq!(crate_modules(code), ["trainer", "state", "rng"]);
    assert!(layer_of("trainer") > layer_of("data_loaders"));
}

#[test]
fn library_code_does_not_print_or_exit() {
    // The application layer prints; the progress callback's job is the terminal.
    let allowed = ["cli", "console"];
    let allowed_files = [Path::new("callbacks/progress.rs")];
    let mut found = Vec::new();
    for (module, path) in library_files() {
        if allowed.contains(&module.as_str()) || allowed_files.contains(&path.as_path()) {
            continue;
        }
        let code = code_of(&path);
        for bad in [
            "println!",
            "eprintln!",
            "print!(",
            "eprint!(",
            "process::exit",
            "env::set_var",
        ] {
            if code.contains(bad) {
                found.push(format!("{}: {bad}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_source_file_says_why_it_exists() {
    let mut files = Vec::new();
    for dir in [
        "src",
        "callbacks",
        "data_loaders",
        "tests",
        "examples",
        "benches",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let silent: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(
        silent.is_empty(),
        "files without a `//!` comment: {silent:?}"
    );
}
