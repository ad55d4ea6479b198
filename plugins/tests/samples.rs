//! The sample events in `events/` through the whole built-in pipeline, framed as the Lambdas
//! and the CLI frame them: every record becomes an event of the expected source, with its own
//! time (no `timestamp_fallback`), a real summary, and nothing fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lakewatch_plugins::framing::frame_bytes;
use lakewatch_plugins::shell::format_timestamp;
use lakewatch_plugins::{Event, Outcome, PluginConfig, builtin_pipeline};

/// Each sample file and the sources of its events, in order.
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "defenda/sample_cloudfront_wordpress_probe.json",
        &["cloudfront"],
    ),
    (
        "defenda/sample_cloudtrail_create_log_stream.json",
        &["cloudtrail"],
    ),
    ("defenda/sample_gsuite_login_event.json", &["gsuite"]),
    ("defenda/sample_syslog_sudo.json", &["syslog"]),
    ("defenda/sample_vpc_flow_log.json", &["vpcflow"]),
    ("syslog/auth.log", &["syslog"; 20]),
    ("syslog/rfc5424.log", &["syslog"; 7]),
    ("cloudtrail/console-logins.json", &["cloudtrail"; 9]),
    ("gsuite/logins.json", &["gsuite"; 7]),
    ("vpcflow/flows.ndjson", &["vpcflow"; 8]),
    ("cloudfront/access.ndjson", &["cloudfront"; 6]),
    ("s3-audit/audit.json.gz", &["s3-audit"; 11]),
    (
        "mixed/events.ndjson",
        &[
            "cloudtrail",
            "cloudtrail",
            "gsuite",
            "vpcflow",
            "cloudfront",
            "s3-audit",
            "syslog",
            "unknown",
            "custom-app",
        ],
    ),
];

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn received() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The events of one sample file; panics with the file and position on any failure.
fn run_file(relative: &str) -> Vec<Event> {
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let path = events_dir().join(relative);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    frame_bytes(&data)
        .map(|framed| {
            let framed = framed.unwrap_or_else(|e| panic!("{relative}: {e}"));
            match pipeline.process(framed.record(relative), received()) {
                Outcome::Ok(event) => event,
                other => panic!("{relative}:{}: {other:?}", framed.line),
            }
        })
        .collect()
}

#[test]
fn every_sample_file_gives_events_of_its_source_with_their_own_time_and_a_summary() {
    for (file, sources) in SAMPLES {
        let events = run_file(file);
        let got: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(got, *sources, "{file}");
        for event in &events {
            let line = event.to_json_line();
            assert!(
                !event.tags.iter().any(|t| t == "timestamp_fallback"),
                "{file}: event time not found: {line}"
            );
            let written: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert!(
                !written["summary"].as_str().unwrap().trim().is_empty(),
                "{file}: {line}"
            );
            assert!(event.utctimestamp.unwrap() < received(), "{file}: {line}");
        }
    }
}

#[test]
fn source_parsers_run_before_time_and_address_plugins_and_leave_them_their_fields() {
    let auth = run_file("syslog/auth.log");
    let first = &auth[0];
    assert_eq!(
        first.plugins[..3],
        ["raw-line", "syslog", "timestamp"],
        "{:?}",
        first.plugins
    );
    assert_eq!(
        format_timestamp(first.utctimestamp.unwrap()),
        "2026-04-17T06:10:54.000000Z"
    );
    let audit = run_file("s3-audit/audit.json.gz");
    assert_eq!(audit[0].details["sourceipaddress"], "198.51.100.23");
    assert_eq!(
        format_timestamp(audit[0].utctimestamp.unwrap()),
        "2026-04-17T10:00:01.104512Z"
    );
    let flows = run_file("vpcflow/flows.ndjson");
    assert_eq!(flows[0].details["sourceipaddress"], "198.51.100.23");
    assert_eq!(flows[0].details["destinationipaddress"], "10.0.1.15");
}

#[test]
fn mixed_sample_keeps_each_records_own_source_and_category() {
    let events = run_file("mixed/events.ndjson");
    let eventbridge = &events[1];
    assert_eq!(eventbridge.details["source"], "aws.signin");
    assert_eq!(eventbridge.category, "authentication");
    let shipped = &events[6];
    assert_eq!(shipped.category, "monitoring");
    assert_eq!(shipped.hostname, "web-02.example.com");
    let custom = &events[8];
    assert_eq!(
        (custom.eventid.as_str(), custom.severity.as_str()),
        ("app-7f3e-0001", "WARNING")
    );
    let by_category: BTreeMap<&str, usize> =
        events.iter().fold(BTreeMap::new(), |mut counts, e| {
            *counts.entry(e.category.as_str()).or_default() += 1;
            counts
        });
    assert_eq!(
        by_category,
        BTreeMap::from([
            ("application", 1),
            ("authentication", 3),
            ("monitoring", 1),
            ("network", 1),
            ("storage", 1),
            ("unknown", 1),
            ("web", 1),
        ])
    );
}
