//! `s3_audit`: S3-API audit records, as S3-compatible object stores write them (MinIO-style
//! `auditEntry`, one JSON object per request) and AWS-style JSON access logs of the same shape.
//!
//! After `lowercase_keys` such a record reads: `api.name` (`PutObject`…), `api.bucket`,
//! `api.object`, `api.status` (`OK`, `Access Denied.`), `api.statuscode`,
//! `api.timetoresponse` (a duration such as `"123456ns"`), `remotehost`, `requestid`,
//! `useragent`, `time`. It is recognised by `api.name` together with at least one of
//! `api.bucket`, `api.status`, `api.statuscode`, `remotehost` (an `api.name` alone is too
//! common a shape to claim). `time` is left for the `timestamp` plugin, `remotehost` for
//! `ipaddress`.
//!
//! What this plugin sets:
//!
//! | field | value |
//! | --- | --- |
//! | `source` | `s3-audit` |
//! | `category` | `storage` |
//! | `summary` | `<api> <bucket>/<object> -> <statuscode> <status>`, e.g. `GetObject finance/payroll.csv -> 403 Access Denied.`; parts the request did not have (no object for `ListObjectsV2`, no bucket for `ListBuckets`) are left out |
//! | `hostname` | `requesthost` (the endpoint the client called), when present |
//! | `severity` | `WARNING` for 401 and 403 answers (refused access, as with CloudTrail's `AccessDenied`) |
//! | `details.responsetimems` | `api.timetoresponse` in milliseconds, as a number (`"123456ns"` → `0.123456`); Go-style durations with `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` units, also compound (`1m2.5s`); absent when the value is missing or not a duration |

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::{Event, insert_keeping_both};
use crate::sources::{
    SUMMARY_MAX_CHARS, claim, detail_text, one_line, parser_registration, raise_severity,
};

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Audit;

impl Plugin for S3Audit {
    fn name(&self) -> &'static str {
        "s3_audit"
    }

    fn registration(&self) -> Registration {
        parser_registration(vec![Trigger::Field("api.name".to_string())])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let field = |path: &str| detail_text(event, path).map(|t| t.into_owned());
        let Some(api) = field("api.name") else {
            return Ok(Verdict::Unchanged);
        };
        let bucket = field("api.bucket");
        let status = field("api.status");
        let code = field("api.statuscode");
        let remote = field("remotehost");
        if bucket.is_none() && status.is_none() && code.is_none() && remote.is_none() {
            return Ok(Verdict::Unchanged);
        }
        let mut summary = api;
        let target = match (bucket, field("api.object")) {
            (Some(bucket), Some(object)) => Some(format!("{bucket}/{object}")),
            (Some(bucket), None) => Some(bucket),
            (None, object) => object,
        };
        if let Some(target) = target {
            summary.push(' ');
            summary.push_str(&target);
        }
        let outcome: Vec<&str> = [code.as_deref(), status.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !outcome.is_empty() {
            summary.push_str(" -> ");
            summary.push_str(&outcome.join(" "));
        }
        let response_ms = field("api.timetoresponse").and_then(|d| duration_ms(&d));
        let host = field("requesthost");
        claim(event, "s3-audit", "storage");
        event.summary = one_line(&summary, SUMMARY_MAX_CHARS);
        if let Some(host) = host {
            event.hostname = host;
        }
        if matches!(code.as_deref(), Some("401" | "403")) {
            raise_severity(event, "WARNING");
        }
        if let Some(ms) = response_ms.and_then(serde_json::Number::from_f64) {
            insert_keeping_both(&mut event.details, "responsetimems".into(), ms.into());
        }
        Ok(Verdict::Changed)
    }
}

/// A Go-style duration (`"123456ns"`, `"412µs"`, `"1.2s"`, `"1m2.5s"`) in milliseconds.
/// `None` for anything else, including a bare number: its unit would be a guess.
pub fn duration_ms(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|end| *end > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        let after = &rest[number_end..];
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        // Sub-millisecond units divide (so "123456ns" is exactly the double nearest 0.123456).
        total += match &after[..unit_end] {
            "ns" => number / 1e6,
            "us" | "µs" | "μs" => number / 1e3,
            "ms" => number,
            "s" => number * 1e3,
            "m" => number * 60e3,
            "h" => number * 3_600e3,
            _ => return None,
        };
        rest = &after[unit_end..];
    }
    total.is_finite().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;
    use serde_json::json;
    use std::io::Read;

    const AUDIT_GZ: &[u8] = include_bytes!("../../events/s3-audit/audit.json.gz");

    fn run(text: &str) -> (Verdict, Event) {
        process_json(&S3Audit, text)
    }

    fn sample_events() -> Vec<Event> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(AUDIT_GZ)
            .read_to_string(&mut text)
            .unwrap();
        text.lines().map(|line| run(line).1).collect()
    }

    #[test]
    fn sample_audit_log_gives_summaries_severity_and_response_times() {
        let events = sample_events();
        let rows: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.severity.as_str(), e.summary.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("INFO", "PutObject backups/db/2026-04-17.sql.gz -> 200 OK"),
                ("INFO", "HeadObject backups/db/2026-04-17.sql.gz -> 200 OK"),
                ("INFO", "ListObjectsV2 backups -> 200 OK"),
                ("INFO", "GetObject backups/db/2026-04-16.sql.gz -> 200 OK"),
                ("INFO", "ListBuckets -> 200 OK"),
                (
                    "WARNING",
                    "GetObject finance/payroll/2026-03.csv -> 403 Access Denied."
                ),
                ("WARNING", "ListObjectsV2 finance -> 403 Access Denied."),
                ("INFO", "DeleteMultipleObjects backups -> 200 OK"),
                (
                    "INFO",
                    "DeleteObject backups/db/2026-03-17.sql.gz -> 204 No Content"
                ),
                (
                    "INFO",
                    "GetObject public-assets/img/logo.png -> 404 Not Found"
                ),
                (
                    "INFO",
                    "PutObject backups/db/2026-04-17-wal.tar -> 503 Service Unavailable"
                ),
            ]
        );
        let expected_ms = [
            0.183422, 0.412, 12.0, 2.812345, 0.095, 0.701234, 0.611002, 1200.0, 3.0, 0.38812,
            30000.412,
        ];
        for (event, expected) in events.iter().zip(expected_ms) {
            let ms = event.details["responsetimems"].as_f64().unwrap();
            assert!((ms - expected).abs() < 1e-9, "{ms} != {expected}");
        }
        for event in &events {
            assert_eq!(
                (event.source.as_str(), event.category.as_str()),
                ("s3-audit", "storage")
            );
            assert_eq!(event.hostname, "s3.example.com");
            assert!(event.details["requestid"].is_string());
            assert!(event.details["remotehost"].is_string());
        }
    }

    #[test]
    fn durations_in_every_unit() {
        let cases = [
            ("123456ns", Some(0.123456)),
            ("850µs", Some(0.85)),
            ("850μs", Some(0.85)),
            ("850us", Some(0.85)),
            ("12ms", Some(12.0)),
            ("1.5s", Some(1500.0)),
            ("1m2.5s", Some(62500.0)),
            ("1h", Some(3_600_000.0)),
            ("0ns", Some(0.0)),
            ("123456", None),
            ("", None),
            ("ns", None),
            ("12 ms", None),
            ("12parsecs", None),
            ("1.2.3s", None),
            ("-5ms", None),
        ];
        for (text, expected) in cases {
            assert_eq!(duration_ms(text), expected, "{text:?}");
        }
    }

    #[test]
    fn numeric_and_missing_fields_still_give_a_summary() {
        let (verdict, event) = run(
            r#"{"api": {"name": "GetObject", "statusCode": 401, "timeToResponse": 42}, "remotehost": "192.0.2.9"}"#,
        );
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.summary, "GetObject -> 401");
        assert_eq!(event.severity, "WARNING");
        assert!(!event.details.contains_key("responsetimems"));
        let (_, event) =
            run(r#"{"api": {"name": "ListBuckets", "object": "o"}, "remotehost": "x"}"#);
        assert_eq!(event.summary, "ListBuckets o");
    }

    #[test]
    fn a_records_own_source_and_responsetimems_are_kept() {
        let (_, event) = run(r#"{"source": "minio-eu", "responsetimems": "old",
                "api": {"name": "PutObject", "bucket": "b", "timeToResponse": "2ms"}}"#);
        assert_eq!(event.source, "s3-audit");
        assert_eq!(event.details["source"], "minio-eu");
        assert_eq!(event.details["responsetimems"], "old");
        assert_eq!(event.details["responsetimems_2"], json!(2.0));
    }

    #[test]
    fn records_of_other_shapes_are_unchanged() {
        for text in [
            r#"{"api": {"name": "payments-v2"}}"#,
            r#"{"api": {"name": {"first": "x"}, "bucket": "b"}}"#,
            r#"{"api": "PutObject", "remotehost": "192.0.2.1"}"#,
            r#"{"api": [{"name": "PutObject"}], "remotehost": "192.0.2.1"}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Unchanged, "{text}");
            assert_eq!(event.source, "unknown");
        }
    }
}
