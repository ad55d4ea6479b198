//! The detector Lambda: on a schedule, first extracts the lake objects new since its last run
//! into the detection extract (every event under the hour of its own time, wherever the lake
//! stored it: [`lakewatch_detect::extract`] over [`S3Lake`]), then evaluates every rule (those
//! of the content bundle in S3, or the bundled ones) over its due windows on Athena, reading the
//! extract table, writes alerts to the lake's `alerts/` table, delivers them through the outbox
//! to its destinations (the alerts topic unless a destinations file is configured), and keeps
//! each rule's watermark, the arrivals document and the outbox in S3.
//!
//! The run itself is [`lakewatch_detect::run_scheduled_and_deliver`], generic over engine,
//! state and sink; this crate supplies the AWS ones ([`DetectorEngine`]: Athena, and
//! CloudWatch's per-source event counts for silence rules; [`S3Store`], [`S3AlertSink`]) from
//! the settings the Terraform module puts in the environment ([`DetectorSettings`]), and sums
//! the run up for the invocation's answer ([`summarize`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lakewatch_aws::athena::{AthenaEngine, AthenaSettings};
use lakewatch_aws::cloudwatch::CloudWatchCounts;
use lakewatch_aws::content::ContentLocation;
use lakewatch_aws::s3_lake::S3Lake;
use lakewatch_aws::s3_state::S3Store;
use lakewatch_deliver::config::env_secret;
use lakewatch_deliver::{
    Destinations, DestinationsFile, Dispatch, HttpTransport, SecretRef, SecretSource,
    TopicPublisher,
};
use lakewatch_detect::extract::{ExtractError, ExtractReport, extract_new, reading_table};
use lakewatch_detect::{Alert, AlertSink, Mode, QueryEngine, Row, Rule, RuleOutcome, Window};
use lakewatch_detect::{Deliveries, delivery_figures, run_figures, run_scheduled_and_deliver};
use lakewatch_lake::layout::alert_object_key;
use lakewatch_lake::schema::EXTRACT;
use lakewatch_lambda::settings::{Env, FromEnv, SettingsError};
use lakewatch_plugins::content::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

/// Where the state objects go unless `LAKEWATCH_STATE_PREFIX` says otherwise.
pub const DEFAULT_STATE_PREFIX: &str = "state/detector/";
/// How many windows per rule one run evaluates at most: a detector that was down catches up
/// over the following runs instead of running out of time in one.
pub const DEFAULT_MAX_WINDOWS: usize = 12;
/// How long one query may take; a 15-minute function fits a few slow rules.
pub const DEFAULT_QUERY_TIMEOUT_SECONDS: u64 = 300;
/// The delivery pass starts no send later than this before the Lambda's deadline: a send and
/// the write recording it fit in it.
pub const DELIVERY_MARGIN: Duration = Duration::from_secs(20);

/// The detector's settings, from the environment the Terraform module sets.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings {
    pub bucket: String,
    pub database: String,
    pub workgroup: String,
    pub state_prefix: String,
    /// The Glue table of the detection extract, which the rules' queries read where they name
    /// `events`.
    pub extract_table: String,
    /// The alerts topic: the destination when no destinations file is given. `None` and no
    /// file: alerts are written to the table only.
    pub topic_arn: Option<String>,
    /// The destinations file's text (TOML, see `lakewatch_deliver::config`), secrets as
    /// Secrets Manager ARNs.
    pub destinations: Option<String>,
    pub max_windows: usize,
    pub query_timeout: Duration,
}

impl FromEnv for DetectorSettings {
    fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, SettingsError> {
        Ok(DetectorSettings {
            bucket: env.required("LAKEWATCH_LAKE_BUCKET", "lake bucket's name")?,
            database: env.required("LAKEWATCH_GLUE_DATABASE", "Glue database of the lake")?,
            workgroup: env
                .required("LAKEWATCH_ATHENA_WORKGROUP", "Athena workgroup to query in")?,
            state_prefix: env.prefix("LAKEWATCH_STATE_PREFIX", DEFAULT_STATE_PREFIX),
            extract_table: env
                .optional("LAKEWATCH_EXTRACT_TABLE")
                .unwrap_or_else(|| EXTRACT.name.to_string()),
            topic_arn: env.optional("LAKEWATCH_ALERTS_TOPIC_ARN"),
            destinations: env.optional("LAKEWATCH_DESTINATIONS"),
            max_windows: env.positive("LAKEWATCH_MAX_WINDOWS", DEFAULT_MAX_WINDOWS as u64)?
                as usize,
            query_timeout: Duration::from_secs(env.positive(
                "LAKEWATCH_QUERY_TIMEOUT_SECONDS",
                DEFAULT_QUERY_TIMEOUT_SECONDS,
            )?),
        })
    }
}

impl DetectorSettings {
    /// The Athena settings these imply (default polling and page size).
    pub fn athena(&self) -> AthenaSettings {
        AthenaSettings::new(&self.workgroup, &self.database, self.query_timeout)
    }
}

/// Alerts into the lake bucket (one gzip NDJSON object per rule and window, see
/// [`alert_object_key`]) and, through the outbox in the state prefix, to the destinations.
pub struct S3AlertSink {
    s3: aws_sdk_s3::Client,
    bucket: String,
    dispatch: Dispatch<S3Store, HttpTransport<SnsTopics>>,
}

impl S3AlertSink {
    /// Delivering to the alerts topic, if one is given, with the outbox under the default state
    /// prefix.
    pub fn new(
        s3: aws_sdk_s3::Client,
        sns: aws_sdk_sns::Client,
        bucket: impl Into<String>,
        topic_arn: Option<String>,
    ) -> Self {
        let bucket = bucket.into();
        let outbox = S3Store::new(s3.clone(), &bucket, DEFAULT_STATE_PREFIX);
        let destinations = topic_destinations(topic_arn);
        S3AlertSink::with_destinations(s3, sns, bucket, outbox, destinations)
    }

    /// Delivering to `destinations`, with the outbox in `outbox` (the detector's state store).
    pub fn with_destinations(
        s3: aws_sdk_s3::Client,
        sns: aws_sdk_sns::Client,
        bucket: impl Into<String>,
        outbox: S3Store,
        destinations: Destinations,
    ) -> Self {
        S3AlertSink {
            s3,
            bucket: bucket.into(),
            dispatch: Dispatch::new(outbox, destinations, HttpTransport::new(SnsTopics(sns))),
        }
    }
}

/// The alerts topic as the only destination; none without a topic.
fn topic_destinations(topic_arn: Option<String>) -> Destinations {
    match topic_arn {
        Some(topic) => Destinations::topic(topic),
        None => Destinations::none(),
    }
}

impl AlertSink for S3AlertSink {
    type Delivery = Dispatch<S3Store, HttpTransport<SnsTopics>>;

    fn delivery(&self) -> &Self::Delivery {
        &self.dispatch
    }

    async fn write(&self, rule: &Rule, window: Window, alerts: &[Alert]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        let key = alert_object_key(&rule.id, window.start, window.end);
        // A replay keeps the alerts this window published before (see `merged_alerts_body`).
        let existing = lakewatch_aws::s3::get_if_exists(&self.s3, &self.bucket, &key).await?;
        let body = lakewatch_detect::alert::merged_alerts_body(existing.as_deref(), alerts)
            .map_err(|e| format!("s3://{}/{key}: {e}", self.bucket))?;
        lakewatch_aws::s3::put(&self.s3, &self.bucket, &key, "application/x-ndjson", body).await
    }
}

/// SNS destinations: the alert line as the message.
pub struct SnsTopics(pub aws_sdk_sns::Client);

impl TopicPublisher for SnsTopics {
    async fn publish(&self, topic_arn: &str, message: &str) -> Result<(), String> {
        lakewatch_aws::sns::publish(&self.0, topic_arn, message).await
    }
}

/// Destination secrets on AWS: Secrets Manager ARNs (or names), and `env:NAME` from the
/// function's environment.
pub struct AwsSecrets(pub aws_sdk_secretsmanager::Client);

impl SecretSource for AwsSecrets {
    async fn secret(&self, reference: &SecretRef) -> Result<String, String> {
        match reference {
            SecretRef::SecretsManager(id) => lakewatch_aws::secrets::secret_string(&self.0, id)
                .await
                .map_err(|e| e.reason),
            other => env_secret(|name| std::env::var(name).ok(), other),
        }
    }
}

/// The destinations the settings give: the destinations file's (secrets resolved now), or
/// the alerts topic.
pub async fn destinations(
    settings: &DetectorSettings,
    secrets: &AwsSecrets,
) -> Result<Destinations, String> {
    match &settings.destinations {
        Some(text) => DestinationsFile::parse("LAKEWATCH_DESTINATIONS", text)
            .map_err(|e| e.to_string())?
            .resolve(secrets)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(topic_destinations(settings.topic_arn.clone())),
    }
}

/// What answers the rules on AWS: Athena runs their SQL over the extract table (where a query
/// names `events`, [`reading_table`]); silence rules read the transform's `Lakewatch/Events`
/// metric by source from CloudWatch instead of scanning events.
pub struct DetectorEngine {
    pub athena: AthenaEngine,
    pub counts: CloudWatchCounts,
    /// The Glue table of the detection extract.
    pub extract_table: String,
}

impl QueryEngine for DetectorEngine {
    /// Runs the query on the extract and logs one line per Athena query: its id, rows,
    /// duration and `bytes_scanned` (Athena's `DataScannedInBytes`, what it bills); the rule's
    /// line sums them.
    async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        let result = self
            .athena
            .query(&reading_table(sql, &self.extract_table))
            .await;
        for query in self.athena.take_metrics() {
            tracing::info!(
                query_execution_id = %query.query_execution_id,
                rows = query.rows,
                duration_ms = query.duration.as_millis() as u64,
                bytes_scanned = query.bytes_scanned,
                "query"
            );
        }
        result
    }

    fn take_bytes_read(&self) -> Option<u64> {
        self.athena.take_bytes_read()
    }

    fn source_counts(&self) -> Option<&impl lakewatch_detect::SourceCounts> {
        Some(&self.counts)
    }
}

/// The part of an EventBridge scheduled event the detector reads; anything else is ignored.
/// An operator's invocation `{"set_aside": true}` evaluates the windows set aside after
/// repeated failures again instead of the due windows (`lakewatch detect --set-aside` on AWS).
#[derive(Debug, Deserialize)]
pub struct Trigger {
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub set_aside: bool,
}

impl Trigger {
    /// What the invocation evaluates: the set-aside windows when asked, else the due windows
    /// (at most `max_windows` per rule).
    pub fn mode(&self, max_windows: usize) -> Mode {
        if self.set_aside {
            Mode::SetAside
        } else {
            Mode::Scheduled { max_windows }
        }
    }
}

/// The rules the detector runs: those of the content bundle in S3 when a content location is
/// set (Terraform sets it; the bundle holds the bundled rules and the deployment's own, so a
/// changed rule file needs `terraform apply`, not a new package), else the rules embedded in
/// this binary.
pub async fn load_rules(
    s3: &aws_sdk_s3::Client,
    content: Option<&ContentLocation>,
) -> Result<Vec<Rule>, String> {
    match content {
        Some(location) => {
            let set = lakewatch_aws::content::load(s3, location, Kind::Rules).await?;
            lakewatch_detect::load(&set).map_err(|e| e.to_string())
        }
        None => lakewatch_detect::bundled::rules().map_err(|e| e.to_string()),
    }
}

/// Settings, rules and clients, once per cold start.
pub struct Detector {
    pub rules: Vec<Rule>,
    /// The lake bucket the extract pass reads and writes.
    pub lake: S3Lake,
    pub engine: DetectorEngine,
    pub state: S3Store,
    pub sink: S3AlertSink,
    pub max_windows: usize,
}

impl Detector {
    /// Reads the settings from the environment, checks the bundled rules, builds the clients.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = DetectorSettings::from_env()?;
        let config = lakewatch_aws::config::load(None).await;
        let s3 = lakewatch_aws::config::s3_client(&config);
        let rules = load_rules(&s3, ContentLocation::from_env().as_ref()).await?;
        tracing::info!(rules = rules.len(), "rules loaded");
        let secrets = AwsSecrets(aws_sdk_secretsmanager::Client::new(&config));
        let destinations = destinations(&settings, &secrets).await?;
        if destinations.destinations.is_empty() {
            tracing::warn!(
                "LAKEWATCH_ALERTS_TOPIC_ARN is not set, nor LAKEWATCH_DESTINATIONS: alerts are \
                 written to the alerts table, not delivered"
            );
        }
        let state = S3Store::new(s3.clone(), &settings.bucket, &settings.state_prefix);
        Ok(Detector {
            lake: S3Lake::new(s3.clone(), &settings.bucket),
            engine: DetectorEngine {
                athena: AthenaEngine::new(aws_sdk_athena::Client::new(&config), settings.athena()),
                counts: CloudWatchCounts::new(aws_sdk_cloudwatch::Client::new(&config)),
                extract_table: settings.extract_table.clone(),
            },
            sink: S3AlertSink::with_destinations(
                s3,
                aws_sdk_sns::Client::new(&config),
                &settings.bucket,
                state.clone(),
                destinations,
            ),
            state,
            max_windows: settings.max_windows,
            rules,
        })
    }

    /// One invocation: the run's time is the scheduled event's `time` (so a delayed or
    /// retried invocation evaluates the windows it was meant for), or the clock when the event
    /// has none; queries stop in time before `deadline` to save and log.
    ///
    /// The extract pass comes first. When it fails, no rule runs and the invocation fails (the
    /// rules would miss what it did not extract; the next run does it again). When another run
    /// extracted at the same time, that run evaluates the rules and this one stops.
    pub async fn handle(&self, trigger: Trigger, deadline: Instant) -> Result<Value, String> {
        self.engine.athena.set_deadline(Some(deadline));
        self.sink
            .delivery()
            .set_deadline(deadline.checked_sub(DELIVERY_MARGIN));
        let now = trigger.time.unwrap_or_else(Utc::now);
        // The pass may take half the time left; what it leaves, the next runs extract.
        let left = deadline.saturating_duration_since(Instant::now());
        let until = Instant::now() + left / 2;
        let extract = match extract_new(&self.lake, &self.state, now, Some(until)).await {
            Ok(report) => report,
            Err(conflict @ ExtractError::Conflict { .. }) => {
                tracing::warn!(error = %conflict, "extract pass lost the race: no rule runs");
                return Ok(json!({ "rules": 0, "extract": { "conflict": conflict.to_string() } }));
            }
            Err(error) => {
                tracing::error!(error = %error, extract_failed = true, "extract pass failed");
                return Err(format!("the extract pass failed, no rule ran: {error}"));
            }
        };
        log_extract(&extract);
        let mode = trigger.mode(self.max_windows);
        if matches!(mode, Mode::SetAside) {
            tracing::info!("evaluating the set-aside windows again");
        }
        let (outcomes, deliveries) = run_scheduled_and_deliver(
            &self.rules,
            &self.engine,
            &self.state,
            &self.sink,
            now,
            mode,
        )
        .await;
        let mut figures = run_figures(outcomes.iter().map(|o| &o.report));
        delivery_figures(&deliveries, &mut figures);
        if let Err(error) = figures.print_emf(Utc::now().timestamp_millis()) {
            tracing::warn!(%error, "metrics not written");
        }
        let mut answer = summarize(&outcomes)?;
        answer["deliveries"] = deliveries_json(&deliveries);
        answer["extract"] = extract_json(&extract);
        Ok(answer)
    }
}

/// One JSON line for the extract pass (and one per damaged object, at error level).
pub fn log_extract(report: &ExtractReport) {
    tracing::info!(
        objects = report.objects,
        bytes_read = report.bytes_read,
        events = report.events,
        outside_partition = report.outside_partition,
        untimed = report.untimed,
        unreadable = report.unreadable,
        written = report.written,
        remaining = report.remaining,
        refiled = report.refiled,
        "extract pass"
    );
    for (key, reason) in &report.damaged {
        tracing::error!(object = %key, error = %reason, "lake object damaged: extracted up to the damage");
    }
}

/// The extract pass in the invocation's answer.
pub fn extract_json(report: &ExtractReport) -> Value {
    json!({
        "objects": report.objects,
        "bytes_read": report.bytes_read,
        "events": report.events,
        "outside_partition": report.outside_partition,
        "untimed": report.untimed,
        "unreadable": report.unreadable,
        "written": report.written,
        "remaining": report.remaining,
        "refiled": report.refiled,
        "damaged": report.damaged.iter().map(|(key, _)| key).collect::<Vec<_>>(),
    })
}

/// Per destination: delivered, retried, given up, pending; and why the pass stopped early.
pub fn deliveries_json(deliveries: &Deliveries) -> Value {
    let destinations: serde_json::Map<String, Value> = deliveries
        .destinations
        .iter()
        .map(|(name, c)| {
            let counts = json!({
                "delivered": c.delivered,
                "retried": c.retried,
                "given_up": c.given_up,
                "pending": c.pending,
            });
            (name.clone(), counts)
        })
        .collect();
    json!({ "destinations": destinations, "error": deliveries.error })
}

/// The invocation's answer; an error when every rule failed (nothing was evaluated, so the
/// Lambda error alarm fires besides the per-rule one).
pub fn summarize(outcomes: &[RuleOutcome]) -> Result<Value, String> {
    let failed: Vec<&RuleOutcome> = outcomes.iter().filter(|o| o.failed()).collect();
    if !failed.is_empty() && failed.len() == outcomes.len() {
        return Err(format!(
            "all {} rules failed; the first, {}: {}",
            failed.len(),
            failed[0].report.rule,
            failed[0].report.error.as_deref().unwrap_or_default()
        ));
    }
    let sum = |count: fn(&RuleOutcome) -> usize| outcomes.iter().map(count).sum::<usize>();
    Ok(json!({
        "rules": outcomes.len(),
        "failed": failed.iter().map(|o| o.report.rule.as_str()).collect::<Vec<_>>(),
        "windows": sum(|o| o.report.windows.len()),
        "set_aside": sum(|o| o.report.set_aside.len()),
        "alerts": sum(|o| o.report.alerts.len()),
        "published": sum(|o| o.published),
        "bytes_scanned": outcomes.iter().map(RuleOutcome::bytes_scanned).sum::<u64>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_detect::runner::RuleReport;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

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
        assert_eq!(s.extract_table, "events_extract");
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

    fn outcome(rule: &str, error: Option<&str>) -> RuleOutcome {
        RuleOutcome {
            report: RuleReport {
                rule: rule.to_string(),
                rows: 3,
                queries: 1,
                bytes_read: Some(1024),
                suppressed: 1,
                duration_ms: 42,
                error: error.map(String::from),
                ..RuleReport::default()
            },
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
}
