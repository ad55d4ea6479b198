//! Embeds every rule of `rules/` in the binary: generates `$OUT_DIR/rules.rs` with one
//! `include_str!` per `*.toml` file, so adding a rule stays one file and a deployed detector
//! runs exactly the rules it was built with.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = manifest.join("../../rules");
    // A directory is scanned for any change: an added, removed or edited rule rebuilds.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the detector embeds its rules from there",
                dir.display()
            )
        })
        .map(|entry| entry.expect("list the rules directory").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// Every rule file of `rules/` as (file name, text), embedded at build time.\n\
         pub const RULES: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        let name = path
            .file_name()
            .expect("a file has a name")
            .to_string_lossy();
        let absolute = path.canonicalize().expect("a listed file exists");
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("rules.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}
