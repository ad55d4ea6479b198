//! Declarative sources through the `lakewatch` binary: `test-sources`, and `ingest --sources`.

use std::path::Path;
use std::process::{Command, Output};

use lakewatch_lake::LocalLake;

fn lakewatch(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lakewatch"))
        .args(args)
        .env_remove("LAKEWATCH_LAKE")
        .output()
        .expect("the lakewatch binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// A user's source for a badge reader's JSON, with a strftime time and one test.
const BADGE: &str = r#"
id = "acme-badge"
description = "ACME door badge reader"
source = "acme-badge"
category = "physical"
summary = "{badge_user} at {door}: {result}"
hostname = ["reader"]
[[match.all]]
field = "kind"
equals = "acme.badge"
[time]
fields = ["at"]
format = "%d/%m/%Y %H:%M:%S %z"
[[tests]]
name = "a refused badge"
record = '{"kind": "acme.badge", "reader": "hq-door-2", "door": "server room", "badge_user": "bob", "result": "DENIED", "at": "25/03/2020 15:06:26 +1100"}'
[tests.expect]
summary = "bob at server room: DENIED"
utctimestamp = "2020-03-25T04:06:26.000000Z"
"#;

fn sources_dir(dir: &Path, text: &str) -> String {
    let sources = dir.join("my-sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::write(sources.join("acme-badge.toml"), text).unwrap();
    sources.to_str().unwrap().to_string()
}

#[test]
fn test_sources_runs_the_bundled_and_the_users_tests_and_shows_a_diff_on_failure() {
    let (output, text) = lakewatch(&["test-sources"]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("ok   minio-audit / a slow GetObject"),
        "{text}"
    );
    assert!(text.contains("test-sources: 64 passed, 0 failed"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let good = sources_dir(dir.path(), BADGE);
    let (output, text) = lakewatch(&["test-sources", "--sources", &good]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("ok   acme-badge / a refused badge"), "{text}");

    let wrong = BADGE.replace("DENIED\"\nutc", "GRANTED\"\nutc");
    let bad = sources_dir(dir.path(), &wrong);
    let (output, text) = lakewatch(&["test-sources", "--sources", &bad]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("FAIL acme-badge / a refused badge\n       summary: expected \"bob at server room: GRANTED\", got \"bob at server room: DENIED\""),
        "{text}"
    );
    assert!(text.contains("test-sources: 64 passed, 1 failed"), "{text}");
}

#[test]
fn a_broken_source_file_stops_the_command_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = sources_dir(
        dir.path(),
        &BADGE.replace("\"%d/%m/%Y %H:%M:%S %z\"", "\"dd/mm/yyyy\""),
    );
    let (output, text) = lakewatch(&["test-sources", "--sources", &broken]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("acme-badge.toml:13: unknown time format \"dd/mm/yyyy\""),
        "{text}"
    );
}

#[test]
fn ingest_uses_the_users_sources_beside_the_bundled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources_dir(dir.path(), BADGE);
    let input = dir.path().join("mixed.ndjson");
    std::fs::write(
        &input,
        concat!(
            r#"{"kind": "acme.badge", "reader": "hq-door-2", "door": "lobby", "badge_user": "alice", "result": "OK", "at": "25/03/2020 15:06:26 +1100"}"#,
            "\n",
            r#"{"version": "1", "auditEntry": {"time": "2022-10-20T14:08:43.3Z", "api": {"name": "ListBuckets", "statusCode": 200, "status": "OK", "timeToResponse": "2246401314ns"}, "remotehost": "198.51.100.23"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let (output, text) = lakewatch(&[
        "ingest",
        input.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--sources",
        &sources,
    ]);
    assert!(output.status.success(), "{text}");
    let mut events = LocalLake::open(&lake).unwrap().read_events().unwrap();
    events.sort_by_key(|e| e["source"].as_str().unwrap().to_string());
    let row = |i: usize, key: &str| events[i][key].as_str().unwrap().to_string();
    assert_eq!(row(0, "source"), "acme-badge");
    assert_eq!(row(0, "hostname"), "hq-door-2");
    assert_eq!(row(0, "summary"), "alice at lobby: OK");
    assert_eq!(row(0, "utctimestamp"), "2020-03-25T04:06:26.000000Z");
    assert_eq!(row(1, "source"), "s3-audit");
    assert_eq!(row(1, "utctimestamp"), "2022-10-20T14:08:43.300000Z");
}
