//! Embeds the demo's sample events in the `lakewatch` binary: generates `$OUT_DIR/samples.rs`
//! with one `include_bytes!` per file of `events/` (except the Lambda fixtures in
//! `events/lambda/`, which are test inputs), so `lakewatch demo` runs from an installed binary
//! in any directory, as the bundled rules do (crates/detect/build.rs).

use std::path::{Path, PathBuf};

/// The directory below `events/` that the demo does not read.
const NOT_EMBEDDED: &str = "lambda";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let events = manifest.join("events");
    println!("cargo:rerun-if-changed={}", events.display());
    let mut files = Vec::new();
    collect(&events, &events, &mut files);
    files.sort();
    let mut out = String::from(
        "/// Every sample file of `events/` as (path relative to `events/`, bytes).\n\
         pub const SAMPLE_EVENTS: &[(&str, &[u8])] = &[\n",
    );
    for (relative, path) in files {
        out.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("samples.rs");
    // A new file, not an overwrite in place: a target directory copied with hard links
    // (`cp -al`) shares this file with other checkouts, which must not embed our files.
    let _ = std::fs::remove_file(&target);
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}

/// The files below `dir` as (path relative to `root` with `/` separators, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("list the events directory").path();
        // Subdirectories are watched too: an added or changed sample rebuilds.
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path.strip_prefix(root).expect("below the root");
        let relative: Vec<_> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if relative[0] == NOT_EMBEDDED || relative.last().is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.push((relative.join("/"), path));
        }
    }
}
