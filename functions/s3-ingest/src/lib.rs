//! The S3-ingest Lambda: every record of every new object reaches Firehose, or the invocation
//! fails and says which did not.
//!
//! [`trigger`] reads the invocation (S3 notifications, directly, through SQS or SNS, or from
//! EventBridge; or a scheduled pull); [`handle`] hands the objects to
//! [`lakewatch_aws::s3_objects::ObjectIngester`] or runs [`lakewatch_aws::pull::pull`]. All the
//! work is in those libraries; this crate only wires them to the Lambda's settings.
//!
//! An object that is not completely delivered fails the invocation, after the other objects of
//! the invocation were tried, so Lambda's retries and on-failure destination take over; its
//! records are then sent again with the same `eventid`s.

pub mod trigger;

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
use serde_json::{Value, json};

use crate::trigger::{Invocation, TriggerError};

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
        Invocation::Objects { objects, skipped } => {
            for what in &skipped {
                tracing::info!(event = %what, "notification skipped: not an object creation");
            }
            let summaries = ingest_objects(function, &objects).await?;
            Ok(json!({
                "objects": summaries.len(),
                "skipped": skipped.len(),
                "records": totals(&summaries),
            }))
        }
        Invocation::Pull(config) => {
            let stop_by = time_left
                .map(|left| Instant::now() + left.saturating_sub(function.settings.pull_margin));
            let summary = run_pull(function, &config, now, stop_by).await?;
            Ok(json!({
                "pull": {
                    "bucket": config.bucket,
                    "prefix": config.prefix,
                    "listed": summary.listed,
                    "new": summary.new,
                    "ingested": summary.ingested,
                    "left": summary.left,
                    "since": summary.since,
                }
            }))
        }
    }
}

/// Ingests every object (our own error objects excepted); fails naming each one that failed.
async fn ingest_objects(
    function: &Function,
    objects: &[ObjectRef],
) -> Result<Vec<ObjectSummary>, HandlerError> {
    let mut summaries = Vec::new();
    let mut failures = Vec::new();
    for object in objects {
        if function.settings.errors.contains(object) {
            tracing::warn!(%object, "skipped: it is one of this function's own error objects");
            continue;
        }
        match function.ingester.ingest(object).await {
            Ok(summary) => summaries.push(summary),
            Err(error) => {
                tracing::error!(%object, %error, "object not completely ingested");
                failures.push(error);
            }
        }
    }
    if failures.is_empty() {
        Ok(summaries)
    } else {
        Err(HandlerError::Objects {
            total: objects.len(),
            failures,
        })
    }
}

/// One scheduled pull: the store's client (credentials from the secret, if any), the cursor in
/// the state bucket, each new object sent through the same ingester.
pub async fn run_pull(
    function: &Function,
    config: &PullConfig,
    now: DateTime<Utc>,
    stop_by: Option<Instant>,
) -> Result<PullSummary, HandlerError> {
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
    pull::pull(
        &store_s3,
        config,
        &cursor,
        now,
        stop_by,
        async |object: &ObjectRef| ingester.ingest(object).await.map(drop),
    )
    .await
    .map_err(|error| HandlerError::Pull(error.to_string()))
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
