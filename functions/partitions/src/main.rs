//! The partition generator Lambda: on a schedule, makes sure the Glue catalog lists every hour
//! partition of `events` and `alerts` that Athena needs (see [`lakewatch_aws::glue`]).
//!
//! Settings come from the environment (`LAKEWATCH_LAKE_BUCKET`, `LAKEWATCH_GLUE_DATABASE`,
//! `LAKEWATCH_LOOKBACK_HOURS`), clients are built once at init. The run's time is the scheduled
//! event's `time` (so a retried or delayed invocation plans the hour it was meant for), or the
//! clock when the event has none (e.g. a manual `{}` invocation).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lakewatch_aws::glue::{GeneratorSettings, ensure_partitions};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

/// The part of an EventBridge scheduled event the generator reads; anything else is ignored.
#[derive(Debug, Deserialize)]
struct Trigger {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
}

struct Clients {
    s3: aws_sdk_s3::Client,
    glue: aws_sdk_glue::Client,
    settings: GeneratorSettings,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    let settings = GeneratorSettings::from_env()?;
    let config = lakewatch_aws::config::load(None).await;
    let clients = Arc::new(Clients {
        s3: lakewatch_aws::config::s3_client(&config),
        glue: aws_sdk_glue::Client::new(&config),
        settings,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Trigger>| {
        let clients = Arc::clone(&clients);
        async move { handle(&clients, event.payload.time.unwrap_or_else(Utc::now)).await }
    }))
    .await
}

/// One run: ensures the partitions, logs one line of counts, and fails the invocation when a
/// table could not be checked or a partition could not be added (so the error alarm fires;
/// the next scheduled run tries again).
async fn handle(clients: &Clients, now: DateTime<Utc>) -> Result<Value, Error> {
    let report = ensure_partitions(&clients.s3, &clients.glue, &clients.settings, now).await;
    report.log(&clients.settings, now);
    if let Some(first) = report.errors.first() {
        return Err(format!("{} problem(s), the first: {first}", report.errors.len()).into());
    }
    let counts = report.counts;
    Ok(json!({
        "checked": counts.checked,
        "added": counts.added,
        "already_there": counts.already_there,
        "failed": counts.failed,
        "found": counts.found,
        "malformed_keys": counts.malformed_keys,
    }))
}
