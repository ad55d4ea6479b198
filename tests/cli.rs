//! The `lakewatch` binary, run as a user runs it, on temporary directories.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lakewatch_lake::LocalLake;
use serde_json::Value;

fn lakewatch(args: &[&str], stdin: Option<&[u8]>) -> Output {
    lakewatch_with_env(args, stdin, &[])
}

fn lakewatch_with_env(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lakewatch"))
        .args(args)
        .env_remove("LAKEWATCH_LAKE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the lakewatch binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ingest(paths: &[&Path], lake: &Path, stdin: Option<&[u8]>) -> (String, String) {
    let mut args = vec!["ingest"];
    let paths: Vec<_> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend(paths);
    args.extend(["--lake", lake.to_str().unwrap()]);
    let output = lakewatch(&args, stdin);
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The totals line: `total: N records = OK ok + D dropped + F failed`.
fn totals(stdout: &str) -> [u64; 4] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("total: "))
        .unwrap_or_else(|| panic!("no totals in {stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    numbers.try_into().expect("four numbers")
}

fn events(lake: &Path) -> Vec<Value> {
    LocalLake::open(lake).unwrap().read_events().unwrap()
}

/// The event without what differs between two ingests of the same record elsewhere.
fn content(event: &Value) -> Value {
    let mut event = event.clone();
    let object = event.as_object_mut().unwrap();
    object.remove("eventid");
    object.remove("receivedtimestamp");
    if object["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "timestamp_fallback")
    {
        object.remove("utctimestamp");
    }
    event
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

const NDJSON: &str = r#"{"eventid":"kept-1","source":"myapp","utctimestamp":"2026-01-31T09:10:00Z","msg":"a"}
{"source":"myapp","time":"2026-01-31T10:20:00Z","msg":"b"}

{"source":"myapp","time":"2026-01-31T10:30:00Z","msg":"c"}
"#;

#[test]
fn counts_add_up_and_events_land_in_hour_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("nested")).unwrap();
    std::fs::write(logs.join("app.ndjson"), NDJSON).unwrap();
    std::fs::write(
        logs.join("nested/array.json"),
        r#"[{"a":1},{"b":2},"not an object"]"#,
    )
    .unwrap();
    std::fs::write(
        logs.join("nested/auth.log"),
        "Apr 17 06:10:54 bastion sshd[2101]: Accepted publickey for alice\n",
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let (stdout, _) = ingest(&[&logs], &lake, None);
    let [records, ok, dropped, failed] = totals(&stdout);
    assert_eq!(records, 7, "{stdout}");
    assert_eq!(records, ok + dropped + failed);
    assert_eq!(failed, 1, "the string element fails: {stdout}");
    let events = events(&lake);
    assert_eq!(events.len() as u64, ok);
    for name in ["app.ndjson", "array.json", "auth.log"] {
        assert!(
            stdout.contains(name),
            "per-input counts name {name}: {stdout}"
        );
    }
    assert!(events.iter().any(|e| e["eventid"] == "kept-1"));
    let hours: Vec<_> = LocalLake::open(&lake)
        .unwrap()
        .data_files(&lakewatch_lake::schema::EVENTS)
        .unwrap()
        .iter()
        .filter_map(|p| {
            p.to_str()
                .unwrap()
                .split('/')
                .find(|s| s.starts_with("hour="))
                .map(str::to_string)
        })
        .collect();
    assert!(hours.contains(&"hour=09".to_string()), "{hours:?}");
    assert!(hours.contains(&"hour=10".to_string()), "{hours:?}");
}

#[test]
fn gzip_and_plain_give_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("app.ndjson");
    // A gzip file whose name says nothing about it: detected by its bytes.
    let compressed = dir.path().join("app-copy.log");
    std::fs::write(&plain, NDJSON).unwrap();
    std::fs::write(&compressed, gzip(NDJSON.as_bytes())).unwrap();
    let (plain_lake, gzip_lake) = (dir.path().join("plain"), dir.path().join("gz"));
    ingest(&[&plain], &plain_lake, None);
    let (stdout, _) = ingest(&[&compressed], &gzip_lake, None);
    assert!(stdout.contains("app-copy.log (gzip)"), "{stdout}");
    let mut a: Vec<_> = events(&plain_lake).iter().map(content).collect();
    let mut b: Vec<_> = events(&gzip_lake).iter().map(content).collect();
    a.sort_by_key(|v| v.to_string());
    b.sort_by_key(|v| v.to_string());
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}

#[test]
fn failed_records_land_in_errors_with_reasons_and_the_rest_flows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        "{\"ok\":1}\n{\"cut\": \"off\n{\"ok\":2}\n\u{1}\u{ff}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad-utf8.log"), b"fine\n\xc3\x28\n").unwrap();
    let lake = dir.path().join("lake");
    let (stdout, stderr) = ingest(&[&file, &dir.path().join("bad-utf8.log")], &lake, None);
    let [records, ok, _, failed] = totals(&stdout);
    assert_eq!((records, ok, failed), (6, 4, 2), "{stdout}");
    assert!(
        stderr.contains("broken.json:2 (byte 9): truncated JSON: line 2 ends inside a string"),
        "{stderr}"
    );
    assert!(stderr.contains("; the record was written to "), "{stderr}");
    assert!(
        stderr.contains("bad-utf8.log:2 (byte 5): invalid UTF-8"),
        "{stderr}"
    );
    let errors = LocalLake::open(&lake).unwrap().read_errors().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["record"], "{\"cut\": \"off\n");
    assert!(
        errors[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("broken.json")
    );
    assert_eq!(errors[1]["record_base64"], "wyg=");
    assert!(stdout.contains("kept 2 failed records"), "{stdout}");
}

#[test]
fn re_ingesting_the_same_file_gives_the_same_eventids() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.log");
    // Two identical lines: different positions, so different ids.
    std::fs::write(&file, "same line\nsame line\n{\"a\":1}\n").unwrap();
    let ids = |lake: &Path| {
        let mut ids: Vec<_> = events(lake)
            .iter()
            .map(|e| e["eventid"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    ingest(&[&file], &first, None);
    // Through a different spelling of the same path.
    let respelled = dir.path().join(".").join("auth.log");
    ingest(&[&respelled], &second, None);
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 3);
    assert_ne!(first_ids[0], first_ids[1]);
    assert_eq!(first_ids, ids(&second));
}

#[test]
fn stdin_works_with_a_dash_and_with_no_path() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let (stdout, _) = ingest(&[Path::new("-")], &lake, Some(&gzip(NDJSON.as_bytes())));
    assert_eq!(totals(&stdout), [3, 3, 0, 0], "{stdout}");
    assert!(stdout.contains("<stdin> (gzip)"), "{stdout}");
    let (stdout, _) = ingest(&[], &lake, Some(b"a raw line\n"));
    assert_eq!(totals(&stdout), [1, 1, 0, 0], "{stdout}");
    assert_eq!(events(&lake).len(), 4);
}

#[test]
fn a_lake_inside_the_ingested_directory_is_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.ndjson"), NDJSON).unwrap();
    let lake = dir.path().join("lake");
    ingest(&[dir.path()], &lake, None);
    let (stdout, stderr) = ingest(&[dir.path()], &lake, None);
    // The lake's data file, its record of ingested files (state/ingest/files.json) and its
    // event counters (state/counts/events-….json).
    assert!(
        stderr.contains("skipping 4 files inside the lake directory"),
        "{stderr}"
    );
    // app.ndjson is already in the lake: re-runs are idempotent.
    assert_eq!(totals(&stdout), [0, 0, 0, 0], "{stdout}");
    assert_eq!(events(&lake).len(), 3);
}

#[test]
fn an_s3_pull_takes_each_new_object_once_with_the_lambdas_ids_and_origin() {
    let moto = lakewatch_testkit::moto::MotoServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = lakewatch_aws::config::s3_client(&runtime.block_on(moto.sdk_config()));
    runtime
        .block_on(s3.create_bucket().bucket("store").send())
        .unwrap();
    let put = |key: &str, body: Vec<u8>| {
        runtime
            .block_on(
                s3.put_object()
                    .bucket("store")
                    .key(key)
                    .body(body.into())
                    .send(),
            )
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let missing = dir.path().join("no-aws-config");
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", missing.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing.to_str().unwrap()),
    ];
    let pull = || {
        let args = [
            "ingest",
            "s3://store/logs/",
            "--endpoint-url",
            moto.endpoint(),
            "--lake",
            lake.to_str().unwrap(),
        ];
        let output = lakewatch_with_env(&args, None, &env);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let first = put("logs/a.json", NDJSON.as_bytes().to_vec());
    let stdout = pull();
    assert_eq!(totals(&stdout), [3, 3, 0, 0], "{stdout}");
    put("logs/b.log", gzip(b"a raw line\n"));
    let stdout = pull();
    assert_eq!(
        totals(&stdout),
        [1, 1, 0, 0],
        "only the new object: {stdout}"
    );
    let events = events(&lake);
    assert_eq!(events.len(), 4);
    let b = events.iter().find(|e| e["details"]["msg"] == "b").unwrap();
    assert_eq!(b["details"]["_origin"]["bucket"], "store");
    assert_eq!(b["details"]["_origin"]["key"], "logs/a.json");
    let offset = NDJSON.find(r#"{"source":"myapp","time""#).unwrap() as u64;
    assert_eq!(b["details"]["_origin"]["offset"], offset);
    // An unversioned bucket: the version is the ETag, without its quotes.
    let etag = first.e_tag().unwrap().trim_matches('"');
    assert_eq!(b["details"]["_origin"]["version"], etag);
    let container = format!("s3://store/logs/a.json#{etag}");
    let text = NDJSON.lines().nth(1).unwrap();
    let origin = lakewatch_plugins::Origin {
        container: &container,
        position: offset,
    };
    assert_eq!(
        b["eventid"],
        lakewatch_plugins::shell::derive_eventid(text, origin).as_str(),
        "the id the S3-ingest Lambda and the transform give this record"
    );
}

#[test]
fn a_missing_path_is_an_error_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let output = lakewatch(
        &[
            "ingest",
            dir.path().join("nope.json").to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
        ],
        None,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("nope.json: no such file or directory"),
        "{stderr}"
    );
    assert!(!lake.exists());
}

#[test]
fn demo_ingests_the_bundled_events_and_shows_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let output = lakewatch(&["demo", "--lake", lake.to_str().unwrap()], None);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let [records, ok, dropped, failed] = totals(&stdout);
    assert_eq!(records, ok + dropped + failed);
    assert!(ok > 20, "{stdout}");
    assert_eq!(events(&lake).len() as u64, ok);
    assert!(stdout.contains("== 1. Ingest"), "{stdout}");
    assert!(stdout.contains("events/year="), "{stdout}");
    assert!(stdout.contains("One whole event"), "{stdout}");
    // The scenario's trail is stopped at 08:41: the hour 09:00-10:00 has no CloudTrail event.
    assert!(
        stdout.contains("cloudtrail-silent         cloudtrail silent: no events"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("NOTICE.md"),
        "documentation is not ingested: {stdout}"
    );
}

/// The demo's delivery step: each alert of the scenario reaches the in-process webhook once,
/// and a second demo on the same lake sends nothing again (the outbox knows them).
#[test]
fn demo_delivers_each_alert_once_to_a_local_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let run = || {
        let output = lakewatch(&["demo", "--lake", lake.to_str().unwrap()], None);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}");
        stdout
    };
    let stdout = run();
    let alerts: usize = stdout
        .lines()
        .find_map(|line| line.strip_suffix(" alert(s):"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no alert count in {stdout}"));
    let keys = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|line| {
                line.trim_start()
                    .strip_prefix("POST /lakewatch  200  Idempotency-Key ")
            })
            .map(|rest| rest.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let first = keys(&stdout);
    assert_eq!(first.len(), alerts, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "delivery to demo-webhook: {alerts} delivered, 0 to retry"
        )),
        "{stdout}"
    );
    // The second demo ingests the samples again (more events, so some new alerts); none of
    // the alerts delivered before is delivered again.
    let again = run();
    let second = keys(&again);
    assert!(
        first.iter().all(|key| !second.contains(key)),
        "{stdout}\n{again}"
    );
}

/// A wrong destinations file stops `lakewatch detect` before it runs, naming file and line.
#[test]
fn a_wrong_destinations_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("destinations.toml");
    std::fs::write(
        &file,
        "[[destination]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"R0UTING\"\n",
    )
    .unwrap();
    let output = lakewatch(
        &[
            "detect",
            "--lake",
            dir.path().to_str().unwrap(),
            "--destinations",
            file.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:1: destination \"pd\": routing_key must be a reference",
            file.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("R0UTING\""), "{stderr}");
}

#[test]
fn help_explains_ingest() {
    let output = lakewatch(&["ingest", "--help"], None);
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("--lake <DIR>"), "{help}");
    assert!(help.contains("gzip is detected by content"), "{help}");
}

/// `ln -s . x; ln -s . y` in an input directory: the walk neither hangs nor reads a file
/// twice; each loop is named in a warning and the other files are ingested.
#[cfg(unix)]
#[test]
fn symbolic_link_loops_in_an_input_directory_are_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("a.json"), "{\"a\":1}\n").unwrap();
    std::os::unix::fs::symlink(".", logs.join("x")).unwrap();
    std::os::unix::fs::symlink(".", logs.join("y")).unwrap();
    let lake = dir.path().join("lake");
    let (stdout, stderr) = ingest(&[&logs], &lake, None);
    assert_eq!(totals(&stdout), [1, 1, 0, 0], "{stdout}");
    for link in ["x", "y"] {
        let named = format!("skipping {}: a symbolic link", logs.join(link).display());
        assert!(stderr.contains(&named), "{stderr}");
    }
    assert_eq!(events(&lake).len(), 1);
}

/// An input that cannot be opened (here a socket, which even root cannot open as a file) does
/// not stop a directory ingest: it is reported, the other files are ingested, and the run
/// exits non-zero at the end.
#[cfg(unix)]
#[test]
fn an_unreadable_file_is_reported_and_the_others_are_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("a.json"), "{\"a\":1}\n").unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(logs.join("b.sock")).unwrap();
    std::fs::write(logs.join("c.json"), "{\"c\":1}\n").unwrap();
    let lake = dir.path().join("lake");
    let output = lakewatch(
        &[
            "ingest",
            logs.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
        ],
        None,
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("b.sock: cannot open"), "{stderr}");
    assert!(stdout.contains("could not read 1 inputs"), "{stdout}");
    assert_eq!(totals(&stdout), [2, 2, 0, 0], "{stdout}");
    assert_eq!(events(&lake).len(), 2);
}

/// Re-running a directory ingest after a failure (the issue's case: one unreadable file, the
/// others written) writes nothing twice: files the lake holds with the same content are
/// skipped and named; the previously unreadable file, now readable, and a changed file are read.
#[cfg(unix)]
#[test]
fn a_rerun_skips_the_files_the_lake_already_holds() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("a.json"), "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let socket = std::os::unix::net::UnixListener::bind(logs.join("b.sock")).unwrap();
    std::fs::write(logs.join("c.json"), "{\"c\":1}\n").unwrap();
    let lake = dir.path().join("lake");
    let args = [
        "ingest",
        logs.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
    ];
    let first = lakewatch(&args, None);
    assert!(!first.status.success());
    assert_eq!(events(&lake).len(), 3);

    let second = lakewatch(&args, None);
    let stdout = String::from_utf8(second.stdout).unwrap();
    assert!(!second.status.success(), "b.sock is still unreadable");
    assert_eq!(totals(&stdout), [0, 0, 0, 0], "{stdout}");
    assert!(
        stdout.contains("skipped 2 files the lake already holds"),
        "{stdout}"
    );
    let named = format!("  {}\n", logs.join("a.json").display());
    assert!(stdout.contains(&named), "{stdout}");
    assert_eq!(events(&lake).len(), 3, "nothing written twice");

    // The unreadable input fixed, and one file changed: only those are read.
    drop(socket);
    std::fs::remove_file(logs.join("b.sock")).unwrap();
    std::fs::write(logs.join("b.json"), "{\"b\":1}\n").unwrap();
    std::fs::write(logs.join("c.json"), "{\"c\":1}\n{\"c\":2}\n").unwrap();
    let third = lakewatch(&args, None);
    let stdout = String::from_utf8(third.stdout).unwrap();
    assert!(third.status.success(), "{stdout}");
    assert_eq!(totals(&stdout), [3, 3, 0, 0], "{stdout}");
    assert!(
        stdout.contains("skipped 1 files the lake already holds"),
        "{stdout}"
    );
    let mut ids: Vec<_> = events(&lake)
        .iter()
        .map(|e| e["eventid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 6);
    ids.sort();
    ids.dedup();
    // c.json's unchanged first line was written again, with its id of the first run.
    assert_eq!(ids.len(), 5);
}

#[test]
#[cfg(unix)]
fn files_whose_names_differ_only_in_invalid_utf8_get_distinct_eventids() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Both names read `log-\u{fffd}` once made text; only their raw bytes tell them apart.
    for name in [&b"log-\xff"[..], &b"log-\xfe"[..]] {
        let path = input.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(path, "same line\n").unwrap();
    }
    let plain = input.join("log-plain");
    std::fs::write(&plain, "same line\n").unwrap();
    let lake = dir.path().join("lake");
    ingest(&[&input], &lake, None);
    let mut ids: Vec<String> = events(&lake)
        .iter()
        .map(|e| e["eventid"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one distinct eventid per file: {ids:?}");
    // A UTF-8 path keeps the id it always had: its canonical path is its container.
    let canonical = plain.canonicalize().unwrap();
    let container = canonical.to_str().unwrap();
    let origin = lakewatch_plugins::Origin {
        container,
        position: 0,
    };
    let plain_id = lakewatch_plugins::shell::derive_eventid("same line", origin);
    assert!(ids.contains(&plain_id), "{plain_id} not in {ids:?}");
}

/// The EMF lines of a command's output, each checked against the format.
fn emf_lines(stdout: &str) -> Vec<serde_json::Map<String, Value>> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .map(|l| lakewatch_metrics::parse_emf_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn ingest_ends_with_the_metrics_the_lambdas_emit_and_they_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.log");
    std::fs::write(
        &file,
        "{\"source\":\"app\",\"a\":1}\n{\"cut\": \"off\nApr 17 06:10:54 bastion sshd[2101]: Accepted publickey for alice\n",
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let (stdout, _) = ingest(&[&file], &lake, None);
    let [records, ok, dropped, failed] = totals(&stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("Function=ingest "))
        .unwrap_or_else(|| panic!("no metrics table in {stdout}"));
    assert!(
        row.ends_with(&format!(
            "RecordsIn={records} RecordsOk={ok} RecordsDropped={dropped} RecordsFailed={failed}"
        )),
        "{row}"
    );
    assert!(stdout.contains("Source=syslog"), "{stdout}");

    let other = dir.path().join("lake2");
    let output = lakewatch(
        &[
            "ingest",
            file.to_str().unwrap(),
            "--lake",
            other.to_str().unwrap(),
            "--metrics",
            "emf",
        ],
        None,
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(
        !stdout.contains("Function=ingest "),
        "EMF instead of the table"
    );
    let lines = emf_lines(&stdout);
    let records_line = lines
        .iter()
        .find(|l| l.get("Function").is_some_and(|f| f == "ingest"))
        .unwrap_or_else(|| panic!("no record counts in {stdout}"));
    assert_eq!(records_line["RecordsIn"], 3);
    assert_eq!(records_line["RecordsFailed"], 1);
    let per_source: u64 = lines
        .iter()
        .filter(|l| l.contains_key("Source"))
        .map(|l| l["EventsIn"].as_u64().unwrap())
        .sum();
    assert_eq!(per_source, 3, "every record counts under one source");
    let written: u64 = lines
        .iter()
        .filter(|l| l.contains_key("Source"))
        .map(|l| l["Events"].as_u64().unwrap())
        .sum();
    assert_eq!(written as usize, events(&other).len());
}

#[test]
fn detect_ends_with_per_rule_and_total_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let args = |format: &'static str| {
        [
            "detect",
            "--lake",
            lake.to_str().unwrap(),
            "--now",
            "2026-11-20T10:00:00Z",
            "--rule",
            "brute-force-user",
            "--rule",
            "oom-kills",
            "--metrics",
            format,
        ]
        .map(str::to_string)
    };
    let run = |format| {
        let args = args(format);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = lakewatch(&args, None);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}");
        stdout
    };
    let lines = emf_lines(&run("emf"));
    let rules: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.get("Rule")?.as_str())
        .collect();
    assert_eq!(rules, BTreeSet::from(["brute-force-user", "oom-kills"]));
    let total = lines
        .iter()
        .find(|l| l.contains_key("RulesFailed"))
        .expect("a line of totals");
    assert_eq!(total["RulesFailed"], 0);
    let windows: u64 = lines
        .iter()
        .filter_map(|l| l.get("RuleWindows")?.as_u64())
        .sum();
    assert_eq!(total["Windows"].as_u64().unwrap(), windows);
    assert!(windows > 0, "a scheduled run evaluates windows");
    // Run again (no window due any more), as a table.
    let table = run("table");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Rule=brute-force-user ")
                && l.contains("RuleAlerts=0")
                && l.ends_with("RuleFailed=0")),
        "{table}"
    );
}
