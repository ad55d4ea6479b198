use std::path::Path;

use serde_json::json;

use super::*;
use crate::sources::testing::{json_event, process_json};
use crate::{Pipeline, PluginConfig, builtin_pipeline};

fn source(text: &str) -> DeclarativeSource {
    parse("t/x.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    parse("t/x.toml", text).unwrap_err().to_string()
}

const MINIMAL: &str = r#"
id = "x"
description = "test"
source = "x"
category = "test"
[[match.all]]
field = "kind"
equals = "x-log"
"#;

/// [`MINIMAL`] with top-level keys (before its tables) and more tables.
fn file(top: &str, tables: &str) -> String {
    let (head, matching) = MINIMAL.split_at(MINIMAL.find("[[match").unwrap());
    format!("{head}{top}\n{matching}{tables}")
}

#[test]
fn the_bundled_list_is_every_file_of_the_sources_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources");
    let on_disk: Vec<(String, String)> = crate::content::read_dir(Kind::Sources, &dir)
        .unwrap()
        .into_iter()
        .map(|file| (file.origin, file.text))
        .collect();
    let names: Vec<String> = on_disk
        .iter()
        .map(|(path, _)| {
            Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let bundled: Vec<&str> = BUNDLED.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, bundled, "list every sources/*.toml in BUNDLED");
    for ((_, text), (_, embedded)) in on_disk.iter().zip(BUNDLED) {
        assert_eq!(text, embedded);
    }
}

#[test]
fn every_bundled_source_passes_its_tests_in_the_builtin_pipeline() {
    let sources = load(&ContentSet::default()).unwrap();
    assert!(
        sources.iter().all(|s| !s.tests().is_empty()),
        "every source has tests"
    );
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let results = check::run(&pipeline, &sources);
    assert!(results.len() >= 7, "{results:?}");
    let failed: Vec<_> = results.iter().filter(|r| !r.failures.is_empty()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn declarative_sources_are_in_the_builtin_pipeline_at_their_priority() {
    let names = builtin_pipeline(&PluginConfig::default())
        .unwrap()
        .plugin_names();
    let position = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(position("raw-line") < position("syslog"));
    assert!(position("s3_audit") < position("minio-audit"));
    assert!(position("minio-audit") < position("timestamp"));
    assert!(position("lowercase_keys") < position("carbon-black"));
}

#[test]
fn a_failing_expectation_is_reported_with_both_values() {
    let text = file(
        "summary = \"{kind} happened\"",
        "[[tests]]\nname = \"t\"\nrecord = '{\"kind\": \"x-log\"}'\n[tests.expect]\nsummary = \"something else\"\n",
    );
    let sources = vec![source(&text)];
    let pipeline = Pipeline::new(vec![Box::new(source(&text))]);
    let results = check::run(&pipeline, &sources);
    assert_eq!(
        results[0].failures,
        ["summary: expected \"something else\", got \"x-log happened\""]
    );
}

#[test]
fn an_unrecognised_sample_fails_its_test() {
    let text = format!(
        "{MINIMAL}[[tests]]\nname = \"t\"\nrecord = '{{\"kind\": \"other\"}}'\n[tests.expect]\nsource = \"unknown\"\n"
    );
    let sources = vec![source(&text)];
    let pipeline = Pipeline::new(vec![Box::new(source(&text))]);
    let failures = &check::run(&pipeline, &sources)[0].failures;
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("not recognised by x"),
        "{failures:?}"
    );
}

#[test]
fn conditions_decide_recognition_and_the_trigger() {
    let x = source(&format!(
        "{MINIMAL}[[match.all]]\nfield = \"n\"\none_of = [1, \"two\"]\n[[match.any]]\nfield = \"m\"\nregex = \"^ab+$\"\n[[match.any]]\nfield = \"gone\"\nexists = false\n"
    ));
    assert_eq!(x.registration().triggers, [Trigger::Field("kind".into())]);
    for (record, recognised) in [
        (json!({"kind": "x-log", "n": 1, "m": "abb"}), true),
        (
            json!({"kind": "x-log", "n": "1", "gone": 1, "m": "abb"}),
            true,
        ),
        (json!({"kind": "x-log", "n": "two"}), true),
        (json!({"kind": "x-log", "n": 3}), false),
        (
            json!({"kind": "x-log", "n": "two", "gone": 1, "m": "ac"}),
            false,
        ),
        (json!({"kind": "X-LOG", "n": 1}), false),
        (json!({"kind": {"x-log": 1}, "n": 1}), false),
    ] {
        let (verdict, event) = process_json(&x, &record.to_string());
        assert_eq!(verdict == Verdict::Changed, recognised, "{record}");
        assert_eq!(event.source == "x", recognised, "{record}");
    }
}

#[test]
fn renames_casts_auth_and_addresses_map_into_the_shell() {
    let x = source(&file(
        r#"
summary = "{who} logged in"
source_ip = ["client.ip"]
destination_ip = ["server"]
severity = "WARNING"
"#,
        r#"
[rename]
"actor.name" = "who"
[[cast]]
field = "bytes"
to = "integer"
[auth]
user = ["who"]
outcome = "result"
success = ["SUCCESS"]
failure = ["FAILURE"]
service = "x-idp"
"#,
    ));
    let (_, event) = process_json(
        &x,
        r#"{"kind": "x-log", "actor": {"name": "alice"}, "bytes": "42", "result": "FAILURE",
            "client": {"ip": "198.51.100.7"}, "server": "10.0.0.1"}"#,
    );
    assert_eq!(event.summary, "alice logged in");
    assert_eq!(event.severity, "WARNING");
    assert_eq!(event.details["who"], "alice");
    assert_eq!(event.details["actor"], json!({}));
    assert_eq!(event.details["bytes"], 42);
    assert_eq!(
        event.details["auth"],
        json!({"user": "alice", "outcome": "failure", "service": "x-idp"})
    );
    assert_eq!(event.tags, ["login_failure"]);
    assert_eq!(event.details["sourceipaddress"], "198.51.100.7");
    assert_eq!(event.details["destinationipaddress"], "10.0.0.1");
}

#[test]
fn text_is_taken_apart_by_named_captures_and_key_value_pairs() {
    let x = source(&format!(
        r#"{MINIMAL}[[extract]]
field = "line"
regex = '^(?P<verb>\S+) (?P<path>\S+) (?P<rest>.*)$'
absent = ["-"]
[[extract]]
field = "rest"
pairs = true
into = "kv"
absent = ["?"]
"#
    ));
    let (_, event) = process_json(
        &x,
        r#"{"kind": "x-log", "line": "GET - a=1 B=\"two words\" c='x y' d=? junk e= f=3"}"#,
    );
    assert_eq!(event.details["verb"], "GET");
    assert!(!event.details.contains_key("path"), "`-` is no value");
    assert_eq!(
        event.details["kv"],
        json!({"a": "1", "b": "two words", "c": "x y", "f": "3"})
    );
    // Text that does not match adds nothing; a missing field is no error.
    let (_, event) = process_json(&x, r#"{"kind": "x-log", "line": "GET"}"#);
    assert!(!event.details.contains_key("verb"));
    let (verdict, _) = process_json(&x, r#"{"kind": "x-log"}"#);
    assert_eq!(verdict, Verdict::Changed);
}

#[test]
fn key_value_pairs_follow_auditd_quoting() {
    assert_eq!(
        mapping::key_value_pairs(
            "pid=1 msg='op=login acct=\"root\" res=failed'\u{1d}UID=\"root\" trailing='open"
        ),
        [
            ("pid", "1"),
            ("msg", "op=login acct=\"root\" res=failed"),
            ("uid", "root"),
            ("trailing", "open"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn dotted_keys_are_nested_and_lists_give_their_first_element() {
    let x = source(&file(
        r#"
unflatten = true
summary = "{id.orig_h}:{id.orig_p}"
source_ip = ["sourceips"]
"#,
        "",
    ));
    let (_, event) = process_json(
        &x,
        r#"{"kind": "x-log", "id.orig_h": "192.0.2.1", "id.orig_p": 22, "sourceips": ["198.51.100.7", "10.0.0.1"]}"#,
    );
    assert_eq!(event.summary, "192.0.2.1:22");
    assert_eq!(
        event.details["id"],
        json!({"orig_h": "192.0.2.1", "orig_p": 22})
    );
    assert_eq!(event.details["sourceipaddress"], "198.51.100.7");
}

#[test]
fn severity_thresholds_map_a_vendors_number_and_its_own_severity_moves_to_details() {
    let x = source(&file(
        r#"severity_from = { field = "severity", map = { "WARN" = "WARNING" }, at_least = { "4" = "WARNING", "7" = "ERROR", "9.0" = "CRITICAL" } }"#,
        "",
    ));
    for (severity, expected) in [
        (json!(2), "INFO"),
        (json!(4), "WARNING"),
        (json!(8.9), "ERROR"),
        (json!("9.5"), "CRITICAL"),
        (json!("WARN"), "WARNING"),
        (json!("LOUD"), "INFO"),
    ] {
        let record = json!({"kind": "x-log", "severity": severity});
        let (_, event) = process_json(&x, &record.to_string());
        assert_eq!(event.severity, expected, "{severity}");
        assert_eq!(event.details["severity"], severity);
    }
    assert!(
        error(&file(
            r#"severity_from = { field = "s", at_least = { "high" = "ERROR" } }"#,
            ""
        ))
        .contains("\"high\" is not a number")
    );
}

#[test]
fn logins_only_when_the_auth_conditions_hold_and_every_other_outcome_fails() {
    let x = source(&format!(
        r#"{MINIMAL}[auth]
user = ["user"]
outcome = "category"
success = ["success"]
service = "x-idp"
[[auth.when]]
field = "type"
one_of = ["login", "sso"]
"#
    ));
    // `category` is the record's own: the claim puts it under `details` before `[auth]` reads it.
    let login = |category: &str, kind: &str| {
        let record = json!({"kind": "x-log", "user": "alice", "category": category, "type": kind});
        process_json(&x, &record.to_string()).1
    };
    assert_eq!(
        login("success", "login").details["auth"]["outcome"],
        "success"
    );
    assert_eq!(
        login("mfa_failed", "sso").details["auth"]["outcome"],
        "failure"
    );
    assert_eq!(login("mfa_failed", "sso").details["category"], "mfa_failed");
    assert!(
        !login("success", "profile_update")
            .details
            .contains_key("auth")
    );
}

#[test]
fn each_bundled_sample_is_claimed_by_its_own_source_alone() {
    // Recognition must not overlap: a record of one log type is never claimed by another
    // source (Suricata's `event_type` is also Duo's, Route 53's `srcaddr` also VPC flow's).
    let sources = load(&ContentSet::default()).unwrap();
    let parsers = ["gsuite", "cloudtrail", "vpcflow", "cloudfront", "s3_audit"];
    let claiming: Vec<&str> = sources
        .iter()
        .filter(|s| s.claim.is_some())
        .map(|s| s.id())
        .chain(parsers)
        .collect();
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    for source in &sources {
        for (position, test) in source.tests().iter().enumerate() {
            let record = crate::Record {
                text: &test.text,
                kind: test.kind,
                origin: crate::Origin {
                    container: source.file(),
                    position: position as u64,
                },
            };
            let crate::Outcome::Ok(event) = pipeline.process(record, test.received) else {
                panic!("{} / {} did not give an event", source.id(), test.name)
            };
            let others: Vec<&String> = event
                .plugins
                .iter()
                .filter(|p| *p != source.id() && claiming.contains(&p.as_str()))
                .collect();
            assert!(
                others.is_empty(),
                "{} / {} was also claimed by {others:?}",
                source.id(),
                test.name
            );
        }
    }
}

#[test]
fn a_value_that_does_not_cast_fails_only_that_record_with_the_reason() {
    let x = source(&format!(
        "{MINIMAL}[[cast]]\nfield = \"took\"\nto = \"duration_ns\"\n"
    ));
    let mut event = json_event(r#"{"kind": "x-log", "took": "soon"}"#);
    assert_eq!(
        x.process(&mut event).unwrap_err().0,
        "source x: cast of took: \"soon\" is not a duration (such as 2246401314ns)"
    );
    let pipeline = Pipeline::new(vec![Box::new(x)]);
    let outcome = pipeline.process(
        crate::Record {
            text: r#"{"kind": "x-log", "took": "soon"}"#,
            kind: RecordKind::Json,
            origin: crate::Origin {
                container: "t",
                position: 0,
            },
        },
        crate::sources::testing::received(),
    );
    assert!(
        matches!(outcome, crate::Outcome::Failed { reason, .. } if reason.starts_with("plugin x failed: source x: cast"))
    );
}

#[test]
fn a_time_field_that_does_not_parse_falls_back_to_the_received_time_with_the_tag() {
    let x = source(&format!(
        "{MINIMAL}[time]\nfields = [\"at\", \"when\"]\nformat = \"epoch_ms\"\n"
    ));
    let (_, event) = process_json(
        &x,
        r#"{"kind": "x-log", "at": "soon", "when": 1585109186000}"#,
    );
    assert_eq!(
        event.utctimestamp.unwrap().to_rfc3339(),
        "2020-03-25T04:06:26+00:00"
    );
    let (_, event) = process_json(&x, r#"{"kind": "x-log", "at": "soon"}"#);
    assert_eq!(
        event.utctimestamp,
        Some(crate::sources::testing::received())
    );
    assert_eq!(event.tags, [crate::shell::TIMESTAMP_FALLBACK_TAG]);
    let (_, event) = process_json(&x, r#"{"kind": "x-log"}"#);
    assert_eq!(event.utctimestamp, None);
}

#[test]
fn bad_files_are_errors_with_file_and_line() {
    let cases = [
        (file("summary = \"x", ""), "t/x.toml:6:"),
        (
            file("sumary = \"x\"", ""),
            "t/x.toml:6: unknown field `sumary`",
        ),
        (
            format!("{MINIMAL}[time]\nfields = [\"t\"]\nformat = \"iso\""),
            "t/x.toml:11: unknown time format \"iso\"",
        ),
        (
            format!("{MINIMAL}[[match.all]]\nfield = \"m\"\nregex = \"(\""),
            "t/x.toml:9: condition on \"m\": regex parse error",
        ),
        (
            format!("{MINIMAL}[[match.all]]\nfield = \"m\"\nexists = true\nequals = 1"),
            "t/x.toml:9: condition on \"m\": give exactly one of",
        ),
        (
            file("hostname = [\"computerName\"]", ""),
            "t/x.toml:6: \"computerName\": keys are lower-cased before sources run, write \"computername\"",
        ),
        (
            file("summary = \"{a\"", ""),
            "t/x.toml:6: placeholder at character 0",
        ),
        (
            file("severity = \"LOUD\"", ""),
            "t/x.toml:6: severity \"LOUD\"",
        ),
        (file("priority = 5", ""), "t/x.toml:6: priority must be"),
        (
            MINIMAL.replace("id = \"x\"", "id = \"y\""),
            "t/x.toml:2: id \"y\" must be",
        ),
        (
            format!("{MINIMAL}[[extract]]\nfield = \"m\"\nregex = \"(?P<a>.)\"\npairs = true\n"),
            "t/x.toml:11: extract of \"m\": give exactly one of regex or pairs = true",
        ),
        (
            format!("{MINIMAL}[[extract]]\nfield = \"m\"\nregex = \"(?P<Verb>.)\"\n"),
            "t/x.toml:11: extract regex: group \"Verb\" is not a lower-case field name",
        ),
        (
            format!("{MINIMAL}[[extract]]\nfield = \"m\"\nregex = \"(\"\n"),
            "t/x.toml:11: extract regex: regex parse error",
        ),
    ];
    for (text, expected) in cases {
        let message = error(&text);
        assert!(
            message.starts_with(expected),
            "{message}\n  expected: {expected}"
        );
    }
}

#[test]
fn an_id_defined_twice_names_both_files() {
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("minio-audit.toml"),
        MINIMAL.replace("\"x\"", "\"minio-audit\""),
    )
    .unwrap();
    let message = load(&ContentSet::with_dirs(vec![dir.clone()]))
        .unwrap_err()
        .to_string();
    assert!(
        message.ends_with("minio-audit.toml: source \"minio-audit\" is already defined in sources/minio-audit.toml"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_users_directory_adds_its_sources_to_the_pipeline() {
    let dir = tempfile_dir();
    std::fs::write(dir.join("x.toml"), MINIMAL).unwrap();
    std::fs::write(dir.join("notes.md"), "not a source").unwrap();
    let config = PluginConfig {
        sources: ContentSet::with_dirs(vec![dir.clone()]),
        ..PluginConfig::default()
    };
    let names = builtin_pipeline(&config).unwrap().plugin_names();
    assert!(names.contains(&"x"), "{names:?}");
    let missing = PluginConfig {
        sources: ContentSet::with_dirs(vec![dir.join("nope")]),
        ..PluginConfig::default()
    };
    let message = builtin_pipeline(&missing).err().unwrap().to_string();
    assert!(
        message.contains("nope: cannot read the sources directory"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory under the target's temporary directory (the crate has no tempfile).
fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lakewatch-sources-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
