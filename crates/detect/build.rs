//! Embeds the bundled rules in every binary that uses this crate: generates `$OUT_DIR/rules.rs`
//! with one `include_str!` per `rules/*.toml` file and per test event file of `rules/tests/`,
//! so a deployed detector runs exactly the rules it was built with, and an installed
//! `lakewatch` finds its rules (and their tests) wherever it is run from. Adding a rule stays
//! one file.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rules = manifest.join("../../rules");
    let mut out = String::new();
    out.push_str(&embed(
        "RULES",
        "Every rule file of `rules/` as (file name, text).",
        &rules,
        "toml",
        "",
    ));
    out.push_str(&embed(
        "TEST_EVENTS",
        "Every test event file of `rules/tests/` as (path relative to `rules/`, text).",
        &rules.join("tests"),
        "",
        "tests/",
    ));
    let target = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("rules.rs");
    // A new file, not an overwrite in place: a target directory copied with hard links
    // (`cp -al`) shares this file with other checkouts, which must not embed our files.
    let _ = std::fs::remove_file(&target);
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}

/// A `pub const NAME: &[(&str, &str)]` of the `*.<extension>` files of `dir` (every file for an
/// empty extension), sorted, each named `<prefix><file name>`.
fn embed(name: &str, doc: &str, dir: &Path, extension: &str, prefix: &str) -> String {
    // A directory is scanned for any change: an added, removed or edited file rebuilds.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the bundled rules are embedded from there",
                dir.display()
            )
        })
        .map(|entry| entry.expect("list the rules directory").path())
        .filter(|path| {
            path.is_file()
                && (extension.is_empty() || path.extension().is_some_and(|e| e == extension))
        })
        .collect();
    files.sort();
    let mut out = format!("/// {doc}\npub const {name}: &[(&str, &str)] = &[\n");
    for path in &files {
        let file = path
            .file_name()
            .expect("a file has a name")
            .to_string_lossy();
        let absolute = path.canonicalize().expect("a listed file exists");
        out.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            format!("{prefix}{file}"),
            absolute.display().to_string()
        ));
    }
    out.push_str("];\n");
    out
}
