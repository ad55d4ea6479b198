//! The detector on AWS: rule state in S3 objects written with conditional requests, alerts as
//! gzip NDJSON objects in the lake's `alerts/` table and on an SNS topic, and a scheduled run
//! that evaluates each rule on Athena and logs one JSON line per rule.
//!
//! The rule logic (windows, watermarks, de-duplication) is [`lakewatch_detect::run_rules`];
//! only the engine ([`crate::athena::AthenaEngine`]), the [`S3StateStore`] and the
//! [`S3AlertSink`] are AWS-specific.

use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use lakewatch_detect::runner::RuleReport;
use lakewatch_detect::state::{StateError, Stored};
use lakewatch_detect::{Alert, AlertSink, Mode, Rule, RuleState, StateStore, Window, run_rules};
use lakewatch_lake::layout::{DATA_EXTENSION, object_key};
use lakewatch_lake::schema::ALERTS;
use lakewatch_plugins::HourPartition;

use crate::athena::{AthenaEngine, AthenaSettings};
use crate::versioned;

/// Where the state objects go unless `LAKEWATCH_STATE_PREFIX` says otherwise.
pub const DEFAULT_STATE_PREFIX: &str = "state/detector/";
/// How many windows per rule one run evaluates at most: a detector that was down catches up
/// over the following runs instead of running out of time in one.
pub const DEFAULT_MAX_WINDOWS: usize = 12;
/// How long one query may take; a 15-minute function fits a few slow rules.
pub const DEFAULT_QUERY_TIMEOUT_SECONDS: u64 = 300;

/// The detector's settings, from the environment the Terraform module sets.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings {
    pub bucket: String,
    pub database: String,
    pub workgroup: String,
    pub state_prefix: String,
    /// `None`: alerts are written to the table only.
    pub topic_arn: Option<String>,
    pub max_windows: usize,
    pub query_timeout: Duration,
}

/// A setting is missing or unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("{0} is not set: set it to the {1} (the Terraform module sets it on the function)")]
    Missing(&'static str, &'static str),
    #[error("{name}={value:?} is not {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl DetectorSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required = |name: &'static str, what: &'static str| {
            set(name).ok_or(SettingsError::Missing(name, what))
        };
        let positive =
            |name: &'static str, default: u64| match set(name) {
                None => Ok(default),
                Some(value) => value.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or(
                    SettingsError::Invalid {
                        name,
                        value,
                        expected: "a whole number above 0",
                    },
                ),
            };
        let mut state_prefix =
            set("LAKEWATCH_STATE_PREFIX").unwrap_or_else(|| DEFAULT_STATE_PREFIX.to_string());
        if !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }
        Ok(DetectorSettings {
            bucket: required("LAKEWATCH_LAKE_BUCKET", "lake bucket's name")?,
            database: required("LAKEWATCH_GLUE_DATABASE", "Glue database of the lake")?,
            workgroup: required("LAKEWATCH_ATHENA_WORKGROUP", "Athena workgroup to query in")?,
            state_prefix,
            topic_arn: set("LAKEWATCH_ALERTS_TOPIC_ARN"),
            max_windows: positive("LAKEWATCH_MAX_WINDOWS", DEFAULT_MAX_WINDOWS as u64)? as usize,
            query_timeout: Duration::from_secs(positive(
                "LAKEWATCH_QUERY_TIMEOUT_SECONDS",
                DEFAULT_QUERY_TIMEOUT_SECONDS,
            )?),
        })
    }

    /// The Athena settings these imply (default polling and page size).
    pub fn athena(&self) -> AthenaSettings {
        AthenaSettings::new(&self.workgroup, &self.database, self.query_timeout)
    }
}

/// The key of a rule's alerts for one window:
/// `alerts/year=…/month=…/day=…/hour=…/<rule>-<start>-<end>.json.gz`, in the hour partition of
/// the window's end. One object per rule and window, so evaluating a window again replaces its
/// alerts instead of adding a copy. Local mode names its files the same way.
pub fn alert_object_key(rule_id: &str, window: Window) -> String {
    let compact = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    object_key(
        &ALERTS,
        &HourPartition::of(window.end),
        &format!(
            "{rule_id}-{}-{}.{DATA_EXTENSION}",
            compact(window.start),
            compact(window.end)
        ),
    )
}

/// Rule state in S3: `<prefix><rule>.json`, versioned by its ETag. A save sends `If-Match` with
/// the ETag it read (or `If-None-Match: *` when there was no object), so S3 refuses a run whose
/// view is stale and two overlapping runs cannot both advance a watermark.
#[derive(Debug, Clone)]
pub struct S3StateStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3StateStore {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3StateStore {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// The key of a rule's state object.
    pub fn key(&self, rule: &str) -> String {
        format!("{}{rule}.json", self.prefix)
    }

    fn storage_error(&self, rule: &str, message: impl std::fmt::Display) -> StateError {
        StateError::Storage {
            rule: rule.to_string(),
            message: format!("s3://{}/{}: {message}", self.bucket, self.key(rule)),
        }
    }
}

impl StateStore for S3StateStore {
    async fn load(&self, rule: &str) -> Result<Stored, StateError> {
        let Some(read) = versioned::read(&self.client, &self.bucket, &self.key(rule))
            .await
            .map_err(|e| self.storage_error(rule, e))?
        else {
            return Ok(Stored::default());
        };
        let state: RuleState = serde_json::from_slice(&read.bytes).map_err(|e| {
            self.storage_error(
                rule,
                format!(
                    "not a rule state ({e}); fix it, or delete it to start the rule again from \
                     its latest window"
                ),
            )
        })?;
        if read.etag.is_none() {
            return Err(self.storage_error(rule, "S3 returned no ETag"));
        }
        Ok(Stored {
            state,
            version: read.etag,
        })
    }

    async fn save(
        &self,
        rule: &str,
        state: &RuleState,
        expected: Option<&str>,
    ) -> Result<String, StateError> {
        let body = serde_json::to_vec_pretty(state).expect("a rule state serializes");
        match versioned::write(&self.client, &self.bucket, &self.key(rule), body, expected).await {
            Ok(Some(etag)) => Ok(etag),
            Ok(None) => Err(self.storage_error(rule, "S3 returned no ETag for the saved state")),
            Err(versioned::WriteError::Conflict) => Err(StateError::Conflict {
                rule: rule.to_string(),
            }),
            Err(versioned::WriteError::Failed(reason)) => Err(self.storage_error(rule, reason)),
        }
    }
}

/// Alerts into the lake bucket (one gzip NDJSON object per rule and window, see
/// [`alert_object_key`]) and onto the alerts topic, when one is configured.
#[derive(Debug, Clone)]
pub struct S3AlertSink {
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    bucket: String,
    topic_arn: Option<String>,
}

impl S3AlertSink {
    pub fn new(
        s3: aws_sdk_s3::Client,
        sns: aws_sdk_sns::Client,
        bucket: impl Into<String>,
        topic_arn: Option<String>,
    ) -> Self {
        S3AlertSink {
            s3,
            sns,
            bucket: bucket.into(),
            topic_arn,
        }
    }

    /// Whether [`AlertSink::publish`] sends anything.
    pub fn publishes(&self) -> bool {
        self.topic_arn.is_some()
    }
}

impl AlertSink for S3AlertSink {
    async fn write(&self, rule: &Rule, window: Window, alerts: &[Alert]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        let key = alert_object_key(&rule.id, window);
        let existing = versioned::read(&self.s3, &self.bucket, &key)
            .await
            .map_err(|e| format!("s3://{}/{key}: {e}", self.bucket))?;
        let body = lakewatch_detect::alert::merged_alerts_body(
            existing.as_ref().map(|read| read.bytes.as_slice()),
            alerts,
        )
        .map_err(|e| format!("s3://{}/{key}: {e}", self.bucket))?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| format!("s3://{}/{key}: {}", self.bucket, DisplayErrorContext(&e)))?;
        Ok(())
    }

    async fn publish(&self, alert_line: &str) -> Result<(), String> {
        let Some(topic) = &self.topic_arn else {
            return Ok(());
        };
        self.sns
            .publish()
            .topic_arn(topic)
            .message(alert_line)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SNS topic {topic}: {}",
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(())
    }
}

/// What one rule did in a run, with the cost of its queries.
#[derive(Debug, Clone)]
pub struct RuleOutcome {
    pub report: RuleReport,
    pub queries: usize,
    pub bytes_scanned: i64,
    /// Alerts actually sent to a topic (0 when none is configured).
    pub published: usize,
}

impl RuleOutcome {
    pub fn failed(&self) -> bool {
        self.report.error.is_some()
    }

    /// One JSON line (fields at the top level with the JSON formatter's `flatten_event`): the
    /// counts, and for a failed rule `rule_failed: true` with the error, which the Terraform
    /// module's metric filter `{ $.rule_failed IS TRUE }` counts for its alarm.
    pub fn log(&self) {
        // One field list for both levels (a tracing level is part of the call site).
        macro_rules! line {
            ($level:ident, $($failure:tt)*) => {
                tracing::$level!(
                    rule = %self.report.rule,
                    windows = self.report.windows.len(),
                    rows = self.report.rows,
                    alerts = self.report.alerts.len(),
                    suppressed = self.report.suppressed,
                    published = self.published,
                    publish_failures = self.report.publish_failures,
                    queries = self.queries,
                    duration_ms = self.report.duration_ms as u64,
                    bytes_scanned = self.bytes_scanned,
                    $($failure)*
                )
            };
        }
        match &self.report.error {
            None => line!(info, "rule evaluated"),
            Some(error) => line!(error, rule_failed = true, error = %error, "rule failed"),
        }
    }
}

/// One scheduled run: every due window of every rule (at most `max_windows` each), one rule
/// after the other so each rule's query metrics are its own; logs a line per rule as it ends.
/// A failing rule never stops the others.
pub async fn run_scheduled<S: StateStore>(
    rules: &[Rule],
    engine: &AthenaEngine,
    state: &S,
    sink: &S3AlertSink,
    now: DateTime<Utc>,
    max_windows: usize,
) -> Vec<RuleOutcome> {
    let mut outcomes = Vec::with_capacity(rules.len());
    engine.take_metrics();
    for rule in rules {
        let report = run_rules(
            std::slice::from_ref(rule),
            engine,
            state,
            sink,
            now,
            Mode::Scheduled { max_windows },
        )
        .await
        .pop()
        .expect("one report per rule");
        let metrics = engine.take_metrics();
        let outcome = RuleOutcome {
            published: if sink.publishes() {
                report.published
            } else {
                0
            },
            queries: metrics.len(),
            bytes_scanned: metrics.iter().map(|m| m.bytes_scanned).sum(),
            report,
        };
        outcome.log();
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<DetectorSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DetectorSettings::from_lookup(|name| map.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("LAKEWATCH_LAKE_BUCKET", "lake"),
        ("LAKEWATCH_GLUE_DATABASE", "lakewatch"),
        ("LAKEWATCH_ATHENA_WORKGROUP", "lakewatch"),
    ];

    #[test]
    fn settings_have_defaults_for_everything_but_bucket_database_and_workgroup() {
        let s = settings(&REQUIRED).unwrap();
        assert_eq!(s.state_prefix, "state/detector/");
        assert_eq!(s.topic_arn, None);
        assert_eq!(s.max_windows, 12);
        assert_eq!(s.query_timeout, Duration::from_secs(300));
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            ("LAKEWATCH_STATE_PREFIX", "lw/state/detector"),
            (
                "LAKEWATCH_ALERTS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:1:alerts",
            ),
            ("LAKEWATCH_MAX_WINDOWS", "3"),
            ("LAKEWATCH_QUERY_TIMEOUT_SECONDS", " 60 "),
        ]);
        let s = settings(&pairs).unwrap();
        assert_eq!(s.state_prefix, "lw/state/detector/");
        assert_eq!(
            s.topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:1:alerts")
        );
        assert_eq!(
            (s.max_windows, s.query_timeout),
            (3, Duration::from_secs(60))
        );
    }

    #[test]
    fn missing_or_bad_settings_name_the_variable() {
        assert_eq!(
            settings(&REQUIRED[..2]).unwrap_err(),
            SettingsError::Missing("LAKEWATCH_ATHENA_WORKGROUP", "Athena workgroup to query in")
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("LAKEWATCH_MAX_WINDOWS", "0"));
        assert_eq!(
            settings(&pairs).unwrap_err().to_string(),
            "LAKEWATCH_MAX_WINDOWS=\"0\" is not a whole number above 0"
        );
    }

    #[test]
    fn alert_keys_sit_in_the_hour_partition_of_the_window_end() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let window = Window::new(at("2026-11-23T23:45:00Z"), at("2026-11-24T00:00:00Z"));
        assert_eq!(
            alert_object_key("brute-force-user", window),
            "alerts/year=2026/month=11/day=24/hour=00/brute-force-user-20261123T234500Z-20261124T000000Z.json.gz"
        );
    }
}
