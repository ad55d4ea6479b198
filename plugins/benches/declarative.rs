//! Per-event cost of a declarative source against the hand-written parser of the same format:
//! the Rust `s3_audit` plugin and a source file describing the same mapping (recognition by
//! `api.name`, summary, hostname, severity by status code, `responsetimems` from the Go
//! duration, time from `time`), on the same records (`events/s3-audit/audit.json.gz`, keys
//! lower-cased as the pipeline hands them over). Each plugin's `process`, followed by the
//! `timestamp` plugin's, is timed on fresh copies of the events, minus the cost of making the copies; best of fifteen runs (the
//! machine is shared: the minimum is the least disturbed).
//! Run: `nice -n 10 cargo bench -p lakewatch-plugins --bench declarative`.

use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

use chrono::Utc;
use lakewatch_plugins::declarative;
use lakewatch_plugins::lowercase_keys::LowercaseKeys;
use lakewatch_plugins::s3_audit::S3Audit;
use lakewatch_plugins::timestamp::Timestamp;
use lakewatch_plugins::{Event, Origin, Plugin, Verdict};
use serde_json::Value;

/// The `s3_audit` mapping as a source file (the summary's optional parts are template
/// fallbacks, so `ListBuckets -> 200 OK` reads `ListBuckets  -> 200 OK` before whitespace is
/// collapsed; the work is the same).
const S3_AUDIT_AS_A_FILE: &str = r#"
id = "s3-audit-file"
description = "the s3_audit parser as a file, for this bench"
source = "s3-audit"
category = "storage"
summary = "{api.name} {api.bucket|}/{api.object|} -> {api.statuscode|} {api.status|}"
hostname = ["requesthost"]
severity_from = { field = "api.statuscode", map = { "401" = "WARNING", "403" = "WARNING" } }
[[match.all]]
field = "api.name"
exists = true
[[match.any]]
field = "api.bucket"
exists = true
[[match.any]]
field = "api.status"
exists = true
[[match.any]]
field = "remotehost"
exists = true
[[cast]]
field = "api.timetoresponse"
to = "duration_ms"
into = "responsetimems"
[time]
fields = ["time"]
format = "rfc3339"
"#;

const ROUNDS: usize = 2_000;

fn events() -> Vec<Event> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&include_bytes!("../../events/s3-audit/audit.json.gz")[..])
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|line| {
            let Ok(Value::Object(map)) = serde_json::from_str(line) else {
                panic!("sample records are objects")
            };
            let origin = Origin {
                container: "bench",
                position: 0,
            };
            let mut event = Event::from_json(map, line, origin, Utc::now());
            LowercaseKeys.process(&mut event).unwrap();
            event
        })
        .collect()
}

/// Best of fifteen: `ROUNDS` passes over fresh copies of `events`, through `work`.
fn time(events: &[Event], work: impl Fn(&mut Event)) -> Duration {
    (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                for event in events {
                    let mut event = event.clone();
                    work(&mut event);
                    black_box(&event);
                }
            }
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let events = events();
    let file = declarative::parse("bench/s3-audit-file.toml", S3_AUDIT_AS_A_FILE).unwrap();
    for event in &events {
        let (mut a, mut b) = (event.clone(), event.clone());
        assert_eq!(S3Audit.process(&mut a).unwrap(), Verdict::Changed);
        assert_eq!(file.process(&mut b).unwrap(), Verdict::Changed);
        assert_eq!(
            (a.source.as_str(), a.severity.as_str()),
            (b.source.as_str(), b.severity.as_str())
        );
        assert_eq!(a.details["responsetimems"], b.details["responsetimems"]);
    }
    let copies = time(&events, |_| {});
    // Each followed by the `timestamp` plugin, as in the pipeline: the Rust parser leaves the
    // time to it, the file sets it itself (and `timestamp` then returns at once).
    let rust = time(&events, |e| {
        S3Audit.process(e).unwrap();
        Timestamp.process(e).unwrap();
    });
    let declared = time(&events, |e| {
        file.process(e).unwrap();
        Timestamp.process(e).unwrap();
    });
    let per_event = |total: Duration| {
        (total.saturating_sub(copies)).as_nanos() as f64 / (ROUNDS * events.len()) as f64
    };
    println!(
        "{} events x {ROUNDS}: s3_audit (Rust) {:.0} ns/event, the same as a source file {:.0} ns/event ({:.2}x); copying an event {:.0} ns (subtracted)",
        events.len(),
        per_event(rust),
        per_event(declared),
        per_event(declared) / per_event(rust),
        copies.as_nanos() as f64 / (ROUNDS * events.len()) as f64,
    );
}
