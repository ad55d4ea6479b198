//! An installed `lakewatch` runs from anywhere: its rules (and their test events) and the demo's
//! sample events are embedded in the binary, not read from the checkout it was built in.
//!
//! `cargo install --path . --root <dir>` only copies the built binary to `<dir>/bin`; this test
//! does the same with the binary cargo built for the tests (a release build would take minutes
//! and find its rules the same way), and runs the copy from an empty working directory without
//! cargo's environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies the built binary to `root/bin/lakewatch`, as `cargo install --root root` does.
fn install(root: &Path) -> PathBuf {
    let bin = root.join("bin").join("lakewatch");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_lakewatch"), &bin).unwrap();
    bin
}

fn run_installed(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    let run = || {
        Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env_remove("CARGO_MANIFEST_DIR")
            .env_remove("CARGO")
            .output()
    };
    // Another test's process forked while this copy was still open for writing keeps the
    // write descriptor until it execs: the kernel then refuses to run the file for a moment.
    let mut attempts = 0;
    let output = loop {
        match run() {
            Err(error)
                if error.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            result => break result.unwrap(),
        }
    };
    assert!(
        output.status.success(),
        "lakewatch {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn an_installed_binary_finds_its_rules_from_any_directory() {
    let root = tempfile::tempdir().unwrap();
    let bin = install(root.path());
    let cwd = tempfile::tempdir().unwrap();
    assert!(!cwd.path().join("rules").exists());

    // Every bundled rule runs over an (empty) lake.
    let lake = cwd.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let output = run_installed(
        &bin,
        cwd.path(),
        &["detect", "--lake", "lake", "--now", "2026-11-20T10:00:00Z"],
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let bundled = lakewatch_detect::bundled::rules().unwrap();
    assert!(bundled.len() >= 12, "{}", bundled.len());
    for rule in &bundled {
        assert!(
            stdout.contains(&rule.id),
            "{} missing from:\n{stdout}",
            rule.id
        );
    }
    assert!(lake.join("state/detector/brute-force-user.json").is_file());

    // A rule's tests run on its embedded test events.
    let output = run_installed(
        &bin,
        cwd.path(),
        &["test-rules", "--rule", "brute-force-user"],
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("test-rules: 2 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn an_installed_binary_runs_the_demo_from_any_directory() {
    let root = tempfile::tempdir().unwrap();
    let bin = install(root.path());
    let cwd = tempfile::tempdir().unwrap();
    assert!(!cwd.path().join("events").exists());

    let output = run_installed(&bin, cwd.path(), &["demo", "--lake", "lake"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    // The embedded samples, the scenario's GeoIP-placed logins included, went through.
    assert!(stdout.contains("== 1. Ingest"), "{stdout}");
    assert!(stdout.contains("events/scenario/logins.ndjson"), "{stdout}");
    assert!(stdout.contains("impossible-travel"), "{stdout}");
    assert!(cwd.path().join("lake/events").is_dir());
    // Nothing is read from the checkout the binary was built in.
    assert!(
        !stdout.contains(env!("CARGO_MANIFEST_DIR")),
        "the demo read the source tree:\n{stdout}"
    );
}
