//! The S3-ingest Lambda: every record of every new object reaches Firehose, or the invocation
//! fails and says which did not.
//!
//! [`trigger`] reads the invocation (S3 notifications, directly, through SQS or SNS, or from
//! EventBridge; or a scheduled pull); [`handle`] hands the objects to
//! [`lakewatch_aws::s3_objects::ObjectIngester`] or runs [`lakewatch_aws::pull::pull`]. All the
//! work is in those libraries; this crate only wires them to the Lambda's settings.
//!
//! Each object is handled on its own. An object that is not completely delivered fails the
//! invocation, after the other objects of the invocation were tried, so Lambda's retries and
//! on-failure destination take over; its records are then sent again with the same `eventid`s.
//! From SQS only its message fails (the response lists it in `batchItemFailures`; the event
//! source mapping must set `function_response_types = ["ReportBatchItemFailures"]`), so the
//! other messages' objects are not sent again. An object deleted since it was notified, and a
//! key that does not decode, are reported and do not fail the others.

pub mod trigger;

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use lakewatch_aws::cursor::StoredCursor;
use lakewatch_aws::firehose::{FirehoseSender, RetryPolicy};
use lakewatch_aws::pull::{self, PullConfig, PullSummary};
use lakewatch_aws::s3_objects::{
    DEFAULT_ERROR_PREFIX, ErrorLocation, IngestError, ObjectIngester, ObjectRef, ObjectSummary,
};
use lakewatch_aws::s3_state::S3Store;
use lakewatch_lambda::settings::{Env, SettingsError};
use lakewatch_metrics::{Figures, OBJECTS, Records};
use serde_json::{Value, json};

use crate::trigger::{Invocation, Notified, TriggerError};

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "s3-ingest";

/// Default key prefix of pull cursors in the state bucket.
pub const DEFAULT_STATE_PREFIX: &str = "state/s3-ingest/";

/// The function's settings, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `LAKEWATCH_FIREHOSE_STREAM`: the delivery stream records are sent to.
    pub stream: String,
    /// `LAKEWATCH_ERROR_BUCKET` and `LAKEWATCH_ERROR_PREFIX` (default `errors/s3-ingest/`):
    /// where records that cannot be sent are written.
    pub errors: ErrorLocation,
    /// `LAKEWATCH_STATE_BUCKET` (default: the error bucket) and `LAKEWATCH_STATE_PREFIX`
    /// (default `state/s3-ingest/`): where pull cursors are kept.
    pub state_bucket: String,
    pub state_prefix: String,
    /// `LAKEWATCH_FIREHOSE_ATTEMPTS` (default 8): calls per record before giving up.
    pub retry: RetryPolicy,
    /// `LAKEWATCH_FIREHOSE_IN_FLIGHT` (default 4): `PutRecordBatch` calls at once per object.
    pub in_flight: usize,
    /// `LAKEWATCH_PULL_MARGIN_SECONDS` (default 120): a pull starts no new object when less
    /// than this is left before the Lambda timeout, so it ends cleanly and the next run goes on.
    pub pull_margin: Duration,
}

impl Settings {
    /// Reads the settings through `var` (the process environment in `main`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(var);
        let error_bucket = env.required(
            "LAKEWATCH_ERROR_BUCKET",
            "bucket where records that cannot be sent are written",
        )?;
        let attempts = env.positive("LAKEWATCH_FIREHOSE_ATTEMPTS", 8)?;
        Ok(Settings {
            stream: env.required(
                "LAKEWATCH_FIREHOSE_STREAM",
                "Firehose delivery stream's name",
            )?,
            errors: ErrorLocation::new(
                error_bucket.clone(),
                env.prefix("LAKEWATCH_ERROR_PREFIX", DEFAULT_ERROR_PREFIX),
            ),
            state_bucket: env
                .optional("LAKEWATCH_STATE_BUCKET")
                .unwrap_or(error_bucket),
            state_prefix: env.prefix("LAKEWATCH_STATE_PREFIX", DEFAULT_STATE_PREFIX),
            retry: RetryPolicy {
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                ..RetryPolicy::default()
            },
            in_flight: env.positive("LAKEWATCH_FIREHOSE_IN_FLIGHT", 4)? as usize,
            pull_margin: Duration::from_secs(env.positive("LAKEWATCH_PULL_MARGIN_SECONDS", 120)?),
        })
    }
}

/// Everything an invocation needs, built once at init.
#[derive(Debug, Clone)]
pub struct Function {
    pub settings: Settings,
    /// The SDK configuration of the function's own account (its role, its region).
    pub sdk: SdkConfig,
    /// Reads input objects and writes errors and cursors in the function's account.
    pub s3: aws_sdk_s3::Client,
    pub ingester: ObjectIngester,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Function {
    /// Builds the clients from an SDK configuration.
    pub fn new(settings: Settings, sdk: SdkConfig) -> Self {
        let s3 = lakewatch_aws::config::s3_client(&sdk);
        let firehose = FirehoseSender::new(
            lakewatch_aws::firehose::client(&sdk),
            settings.stream.clone(),
            settings.retry,
        );
        let ingester = ObjectIngester {
            s3: s3.clone(),
            firehose,
            errors_s3: s3.clone(),
            errors: settings.errors.clone(),
            in_flight: settings.in_flight,
        };
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        Function {
            settings,
            sdk,
            s3,
            ingester,
            secrets,
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error("{} of {total} object(s) not completely ingested: {}", failures.len(), list(failures))]
    Objects {
        total: usize,
        failures: Vec<IngestError>,
    },
    #[error("pull failed: {0}")]
    Pull(String),
}

fn list(failures: &[IngestError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Handles one invocation; `now` is the time a first pull counts its look-back from, and
/// `time_left` the invocation's remaining time (a pull starts no new object in its last
/// [`Settings::pull_margin`]).
pub async fn handle(
    function: &Function,
    event: &Value,
    now: DateTime<Utc>,
    time_left: Option<Duration>,
) -> Result<Value, HandlerError> {
    match trigger::parse(event)? {
        Invocation::Objects {
            objects,
            skipped,
            rejected,
        } => {
            for what in &skipped {
                tracing::info!(event = %what, "notification skipped: not an object creation");
            }
            for rejection in &rejected {
                tracing::error!(
                    reason = %rejection.reason,
                    message_id = rejection.message_id.as_deref().unwrap_or(""),
                    "notification rejected: it names no object that can be read"
                );
            }
            let outcome = ingest_objects(function, &objects).await;
            emit(
                &figures(
                    &outcome.summaries,
                    &[
                        ("ingested", outcome.summaries.len()),
                        ("failed", outcome.failures.len()),
                        ("gone", outcome.gone.len()),
                        ("skipped", outcome.skipped),
                        ("rejected", rejected.len()),
                    ],
                ),
                now,
            );
            let mut response = json!({
                "objects": outcome.summaries.len(),
                "skipped": skipped.len(),
                "gone": outcome.gone,
                "rejected": rejected.iter().map(|r| &r.reason).collect::<Vec<_>>(),
                "records": totals(&outcome.summaries),
            });
            // From SQS, only the messages whose objects failed go back to the queue
            // (`ReportBatchItemFailures`), so the others are not sent again. A key that does not
            // decode fails its message too: after the queue's retries it lands in its
            // dead-letter queue for someone to look at.
            let failed_messages: Option<BTreeSet<&str>> = outcome
                .failures
                .iter()
                .map(|(message_id, _)| message_id.as_deref())
                .chain(rejected.iter().map(|r| r.message_id.as_deref()))
                .collect();
            let sqs = objects.iter().any(|n| n.message_id.is_some())
                || rejected.iter().any(|r| r.message_id.is_some());
            match failed_messages {
                Some(failed) if sqs => {
                    response["batchItemFailures"] = failed
                        .into_iter()
                        .map(|id| json!({"itemIdentifier": id}))
                        .collect();
                    Ok(response)
                }
                _ if outcome.failures.is_empty() => Ok(response),
                // Straight from S3 (or EventBridge, SNS): the invocation fails and is retried
                // whole. A rejected key alone does not fail it: no retry can make it readable.
                _ => Err(HandlerError::Objects {
                    total: objects.len(),
                    failures: outcome.failures.into_iter().map(|(_, e)| e).collect(),
                }),
            }
        }
        Invocation::Pull(config) => {
            let stop_by = time_left
                .map(|left| Instant::now() + left.saturating_sub(function.settings.pull_margin));
            let (summary, objects) = run_pull(function, &config, now, stop_by).await?;
            emit(
                &figures(
                    &objects,
                    &[("ingested", objects.len()), ("left", summary.left as usize)],
                ),
                now,
            );
            Ok(json!({
                "pull": {
                    "bucket": config.bucket,
                    "prefix": config.prefix,
                    "listed": summary.listed,
                    "new": summary.new,
                    "ingested": summary.ingested,
                    "left": summary.left,
                    "outside_window": summary.outside_window,
                    "since": summary.since,
                }
            }))
        }
    }
}

/// What became of the objects of one notification.
struct Outcome {
    summaries: Vec<ObjectSummary>,
    /// Objects not completely ingested, with the SQS message that named them.
    failures: Vec<(Option<String>, IngestError)>,
    /// Objects deleted since they were notified.
    gone: Vec<String>,
    /// This function's own error objects, never ingested.
    skipped: usize,
}

/// Ingests each object on its own (our own error objects excepted): one that fails or is gone
/// does not stop the others.
async fn ingest_objects(function: &Function, objects: &[Notified]) -> Outcome {
    let mut outcome = Outcome {
        summaries: Vec::new(),
        failures: Vec::new(),
        gone: Vec::new(),
        skipped: 0,
    };
    for Notified { object, message_id } in objects {
        if function.settings.errors.contains(object) {
            tracing::warn!(%object, "skipped: it is one of this function's own error objects");
            outcome.skipped += 1;
            continue;
        }
        match function.ingester.ingest(object).await {
            Ok(summary) => outcome.summaries.push(summary),
            Err(error @ IngestError::Gone { .. }) => {
                tracing::warn!(%object, %error, "object skipped");
                outcome.gone.push(object.to_string());
            }
            Err(error) => {
                tracing::error!(%object, %error, "object not completely ingested");
                outcome.failures.push((message_id.clone(), error));
            }
        }
    }
    outcome
}

/// One scheduled pull: the store's client (credentials from the secret, if any), the cursor in
/// the state bucket, each new object sent through the same ingester. Returns the pull's
/// summary and that of each object ingested.
pub async fn run_pull(
    function: &Function,
    config: &PullConfig,
    now: DateTime<Utc>,
    stop_by: Option<Instant>,
) -> Result<(PullSummary, Vec<ObjectSummary>), HandlerError> {
    let credentials = match &config.secret_arn {
        Some(secret) => Some(
            lakewatch_aws::secrets::credentials_from_secret(&function.secrets, secret)
                .await
                .map_err(|error| HandlerError::Pull(error.to_string()))?,
        ),
        None => None,
    };
    let store_s3 = pull::store_client(&function.sdk, config, credentials);
    let ingester = ObjectIngester {
        s3: store_s3.clone(),
        ..function.ingester.clone()
    };
    let cursor = StoredCursor {
        store: S3Store::new(
            function.s3.clone(),
            function.settings.state_bucket.clone(),
            function.settings.state_prefix.clone(),
        ),
        name: config.cursor_name(),
    };
    let ingested = std::sync::Mutex::new(Vec::new());
    let summary = pull::pull(
        &store_s3,
        config,
        &cursor,
        now,
        stop_by,
        async |object: &ObjectRef| {
            let summary = ingester.ingest(object).await?;
            ingested.lock().expect("not poisoned").push(summary);
            Ok::<(), IngestError>(())
        },
    )
    .await
    .map_err(|error| HandlerError::Pull(error.to_string()))?;
    Ok((summary, ingested.into_inner().expect("not poisoned")))
}

/// An invocation's figures: objects by outcome, and the records of the objects ingested
/// (`RecordsOk` sent to Firehose, `RecordsFailed` written to the error location).
pub fn figures(summaries: &[ObjectSummary], objects: &[(&str, usize)]) -> Figures {
    let mut figures = Figures::default();
    for (outcome, count) in objects {
        figures.add(&OBJECTS, &[outcome], *count as u64);
    }
    let sum = |field: fn(&ObjectSummary) -> u64| summaries.iter().map(field).sum::<u64>();
    figures.add_records(
        FUNCTION,
        Records {
            ok: sum(|s| s.sent),
            dropped: 0,
            failed: sum(|s| s.failed_to_frame + s.oversize + s.not_sent),
        },
    );
    figures
}

/// Prints the figures as EMF lines for CloudWatch; a failed write costs the metrics only.
fn emit(figures: &Figures, now: DateTime<Utc>) {
    if let Err(error) = figures.print_emf(now.timestamp_millis()) {
        tracing::warn!(%error, "metrics not written");
    }
}

/// Record counts over all objects: `read = sent + failed_to_frame + oversize`.
fn totals(summaries: &[ObjectSummary]) -> Value {
    let sum = |field: fn(&ObjectSummary) -> u64| summaries.iter().map(field).sum::<u64>();
    json!({
        "read": sum(|s| s.read),
        "sent": sum(|s| s.sent),
        "failed_to_frame": sum(|s| s.failed_to_frame),
        "oversize": sum(|s| s.oversize),
    })
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {}, errors s3://{}/{}, cursors s3://{}/{}",
            self.stream,
            self.errors.bucket,
            self.errors.prefix,
            self.state_bucket,
            self.state_prefix
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn figures_count_objects_by_outcome_and_records_that_add_up() {
        let object = |read, sent, failed_to_frame, oversize| ObjectSummary {
            read,
            sent,
            failed_to_frame,
            oversize,
            ..ObjectSummary::default()
        };
        let figures = figures(
            &[object(10, 8, 1, 1), object(5, 5, 0, 0)],
            &[("ingested", 2), ("gone", 1)],
        );
        use lakewatch_metrics as m;
        assert_eq!(figures.get(&m::OBJECTS, &["ingested"]), Some(2));
        assert_eq!(figures.get(&m::OBJECTS, &["gone"]), Some(1));
        assert_eq!(figures.get(&m::RECORDS_IN, &[FUNCTION]), Some(15));
        assert_eq!(figures.get(&m::RECORDS_OK, &[FUNCTION]), Some(13));
        assert_eq!(figures.get(&m::RECORDS_FAILED, &[FUNCTION]), Some(2));
        for line in figures.emf_lines(0) {
            m::parse_emf_line(&line).unwrap();
        }
    }

    #[test]
    fn settings_take_defaults_for_all_but_the_stream_and_error_bucket() {
        let settings = Settings::from_env(env(&[
            ("LAKEWATCH_FIREHOSE_STREAM", "events"),
            ("LAKEWATCH_ERROR_BUCKET", "lake"),
        ]))
        .unwrap();
        assert_eq!(
            settings.errors,
            ErrorLocation::new("lake", "errors/s3-ingest/")
        );
        assert_eq!(settings.state_bucket, "lake");
        assert_eq!(settings.state_prefix, "state/s3-ingest/");
        assert_eq!(settings.retry.attempts, 8);
        assert_eq!(settings.in_flight, 4);
        assert_eq!(settings.pull_margin, Duration::from_secs(120));
        assert_eq!(
            settings.to_string(),
            "stream events, errors s3://lake/errors/s3-ingest/, cursors s3://lake/state/s3-ingest/"
        );
    }

    #[test]
    fn missing_or_wrong_settings_are_named() {
        let error = Settings::from_env(env(&[("LAKEWATCH_ERROR_BUCKET", "lake")])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("LAKEWATCH_FIREHOSE_STREAM is not set")
        );
        let error = Settings::from_env(env(&[
            ("LAKEWATCH_FIREHOSE_STREAM", "events"),
            ("LAKEWATCH_ERROR_BUCKET", "lake"),
            ("LAKEWATCH_FIREHOSE_ATTEMPTS", "zero"),
        ]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "LAKEWATCH_FIREHOSE_ATTEMPTS=\"zero\" is not a whole number above 0"
        );
    }
}
