//! The Firehose transform Lambda: adapts Firehose's batch to [`firehose_transform::transform`].
//!
//! The pipeline is built once, at init, and shared by every invocation. Its declarative
//! sources come from the content bundle in S3 when `LAKEWATCH_CONTENT_BUCKET` is set (a
//! bundle that cannot be read fails the init, with a log line saying why).

use std::sync::Arc;

use aws_lambda_events::event::firehose::KinesisFirehoseResponse;
use firehose_transform::{Batch, RESPONSE_LIMIT_BYTES, plugin_config, transform};
use lakewatch_aws::content::ContentLocation;
use lakewatch_plugins::{Pipeline, builtin_plugins_with_notes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Every record builds and frees a tree of maps and strings: mimalloc spends about a tenth
/// fewer instructions on the pipeline than glibc's allocator (docs/firehose-transform.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    // GeoIP databases come from the environment (LAKEWATCH_GEOIP_*_DATABASE, e.g. a layer).
    let config = match ContentLocation::from_env() {
        Some(location) => {
            let sdk = lakewatch_aws::config::load(None).await;
            let s3 = lakewatch_aws::config::s3_client(&sdk);
            plugin_config(Some((&s3, &location))).await
        }
        None => plugin_config(None).await,
    };
    let config = config.inspect_err(|error| {
        tracing::error!(error = %error, "the transform cannot load its sources");
    })?;
    let (plugins, notes) = builtin_plugins_with_notes(&config)?;
    for note in &notes.0 {
        tracing::info!(note = %note, "plugin configuration");
    }
    let pipeline = Arc::new(Pipeline::new(plugins));
    tracing::info!(plugins = ?pipeline.plugin_names(), "pipeline ready");
    lambda_runtime::run(service_fn(
        // Read as plain JSON: one malformed record must fail alone, not the batch.
        move |event: LambdaEvent<serde_json::Value>| {
            let pipeline = Arc::clone(&pipeline);
            async move {
                let batch = Batch::from_json(&event.payload)?;
                let received = chrono::Utc::now();
                let transformed = transform(&pipeline, &batch, received, RESPONSE_LIMIT_BYTES);
                // EMF lines: CloudWatch Logs turns them into the Lakewatch metrics.
                transformed
                    .summary
                    .figures()
                    .print_emf(received.timestamp_millis())?;
                Ok::<KinesisFirehoseResponse, Error>(transformed.response)
            }
        },
    ))
    .await
}
