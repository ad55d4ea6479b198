//! The detector Lambda: on a schedule, evaluates every embedded rule over its due windows on
//! Athena, writes alerts to the lake's `alerts/` table and the alerts topic, and keeps each
//! rule's watermark in S3 (see [`lakewatch_aws::detector`]).
//!
//! Settings come from the environment ([`DetectorSettings`]), clients and rules are set up
//! once at init. The run's time is the scheduled event's `time` (so a delayed or retried
//! invocation evaluates the windows it was meant for), or the clock when the event has none.
//! Each rule logs one JSON line; a failed rule logs `rule_failed: true` (the Terraform alarm
//! counts those) and never stops the others. The invocation fails only when every rule failed;
//! a wrong configuration fails the init.

// The scheduled run nests the runner, the Athena engine and the S3 state store as futures;
// laying out main's future takes more than the default 128 levels.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use lakewatch_aws::athena::AthenaEngine;
use lakewatch_aws::detector::{
    DetectorSettings, RuleOutcome, S3AlertSink, S3StateStore, run_scheduled,
};
use lakewatch_detect::{Rule, rules_from_texts};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/rules.rs"));
}

/// The part of an EventBridge scheduled event the detector reads; anything else is ignored.
#[derive(Debug, Deserialize)]
struct Trigger {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
}

struct Detector {
    rules: Vec<Rule>,
    engine: AthenaEngine,
    state: S3StateStore,
    sink: S3AlertSink,
    max_windows: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    let detector = match init().await {
        Ok(detector) => Arc::new(detector),
        Err(error) => {
            // Lambda reports the exit; this line says why, in words.
            tracing::error!(error = %error, "the detector cannot start");
            return Err(error);
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Trigger>| {
        let detector = Arc::clone(&detector);
        async move {
            // Lambda's deadline as a monotonic instant: queries stop in time to save and log.
            let left = (event.context.deadline()).duration_since(SystemTime::now());
            detector
                .engine
                .set_deadline(Some(Instant::now() + left.unwrap_or_default()));
            handle(&detector, event.payload.time.unwrap_or_else(Utc::now)).await
        }
    }))
    .await
}

/// Settings, rules and clients, once per cold start.
async fn init() -> Result<Detector, Error> {
    let settings = DetectorSettings::from_env()?;
    let rules = embedded_rules()?;
    tracing::info!(rules = rules.len(), "rules loaded");
    if settings.topic_arn.is_none() {
        tracing::warn!(
            "LAKEWATCH_ALERTS_TOPIC_ARN is not set: alerts are written to the alerts table, \
             not published"
        );
    }
    let config = lakewatch_aws::config::load(None).await;
    let s3 = lakewatch_aws::config::s3_client(&config);
    Ok(Detector {
        engine: AthenaEngine::new(aws_sdk_athena::Client::new(&config), settings.athena()),
        state: S3StateStore::new(s3.clone(), &settings.bucket, &settings.state_prefix),
        sink: S3AlertSink::new(
            s3,
            aws_sdk_sns::Client::new(&config),
            &settings.bucket,
            settings.topic_arn.clone(),
        ),
        max_windows: settings.max_windows,
        rules,
    })
}

/// The rules embedded at build time, checked as `lakewatch` checks a rules directory.
fn embedded_rules() -> Result<Vec<Rule>, Error> {
    let rules = rules_from_texts(embedded::RULES)?;
    if rules.is_empty() {
        return Err("the detector was built without rules: add rules/*.toml and rebuild".into());
    }
    Ok(rules)
}

async fn handle(detector: &Detector, now: DateTime<Utc>) -> Result<Value, Error> {
    let outcomes = run_scheduled(
        &detector.rules,
        &detector.engine,
        &detector.state,
        &detector.sink,
        now,
        detector.max_windows,
    )
    .await;
    summarize(&outcomes)
}

/// The invocation's answer; an error when every rule failed (nothing was evaluated, so the
/// Lambda error alarm fires besides the per-rule one).
fn summarize(outcomes: &[RuleOutcome]) -> Result<Value, Error> {
    let failed: Vec<&RuleOutcome> = outcomes.iter().filter(|o| o.failed()).collect();
    if !failed.is_empty() && failed.len() == outcomes.len() {
        return Err(format!(
            "all {} rules failed; the first, {}: {}",
            failed.len(),
            failed[0].report.rule,
            failed[0].report.error.as_deref().unwrap_or_default()
        )
        .into());
    }
    let sum = |count: fn(&RuleOutcome) -> usize| outcomes.iter().map(count).sum::<usize>();
    Ok(json!({
        "rules": outcomes.len(),
        "failed": failed.iter().map(|o| o.report.rule.as_str()).collect::<Vec<_>>(),
        "windows": sum(|o| o.report.windows.len()),
        "alerts": sum(|o| o.report.alerts.len()),
        "published": sum(|o| o.published),
        "bytes_scanned": outcomes.iter().map(|o| o.bytes_scanned).sum::<i64>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_detect::runner::RuleReport;
    use std::sync::Mutex;

    fn outcome(rule: &str, error: Option<&str>) -> RuleOutcome {
        RuleOutcome {
            report: RuleReport {
                rule: rule.to_string(),
                rows: 3,
                suppressed: 1,
                duration_ms: 42,
                error: error.map(String::from),
                ..RuleReport::default()
            },
            queries: 1,
            bytes_scanned: 1024,
            published: 0,
        }
    }

    /// The JSON lines `log` writes through the Lambda's subscriber.
    fn logged(outcome: &RuleOutcome) -> Value {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let writer = move || Capture(Arc::clone(&sink));
        tracing::subscriber::with_default(lakewatch_lambda::subscriber(writer), || outcome.log());
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        serde_json::from_str(lines[0]).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_rule_logs_its_counts_as_top_level_fields() {
        let line = logged(&outcome("brute-force-user", None));
        for (field, value) in [
            ("rule", json!("brute-force-user")),
            ("windows", json!(0)),
            ("rows", json!(3)),
            ("alerts", json!(0)),
            ("suppressed", json!(1)),
            ("published", json!(0)),
            ("duration_ms", json!(42)),
            ("bytes_scanned", json!(1024)),
        ] {
            assert_eq!(line[field], value, "{field} in {line}");
        }
        assert!(line.get("rule_failed").is_none());
        assert!(line.get("timestamp").is_none(), "CloudWatch stamps lines");
    }

    #[test]
    fn a_failed_rule_logs_rule_failed_true_and_its_error() {
        let line = logged(&outcome("oom-kills", Some("query failed: boom")));
        assert_eq!(line["rule_failed"], json!(true));
        assert_eq!(line["error"], "query failed: boom");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["rule"], "oom-kills");
    }

    #[test]
    fn the_invocation_fails_only_when_every_rule_failed() {
        let partial = summarize(&[outcome("a", Some("x")), outcome("b", None)]).unwrap();
        assert_eq!(partial["failed"], json!(["a"]));
        assert_eq!(partial["rules"], 2);
        let error = summarize(&[outcome("a", Some("x")), outcome("b", Some("y"))]).unwrap_err();
        assert_eq!(error.to_string(), "all 2 rules failed; the first, a: x");
    }

    #[test]
    fn every_rule_file_is_embedded_and_valid() {
        let rules = embedded_rules().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let on_disk = lakewatch_detect::load_rules(&dir).unwrap();
        let ids = |rules: &[Rule]| rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&rules), ids(&on_disk));
        assert!(ids(&rules).contains(&"impossible-travel".to_string()));
    }
}
