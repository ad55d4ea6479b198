//! The Firehose transform Lambda: adapts Firehose's batch to [`firehose_transform::transform`].
//!
//! The pipeline is built once, at init, and shared by every invocation.

use std::sync::Arc;

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use firehose_transform::{RESPONSE_LIMIT_BYTES, transform};
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_plugins_with_notes};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    // GeoIP databases come from the environment (LAKEWATCH_GEOIP_*_DATABASE, e.g. a layer).
    let (plugins, notes) = builtin_plugins_with_notes(&PluginConfig::from_env())?;
    for note in &notes.0 {
        tracing::info!(note = %note, "plugin configuration");
    }
    let pipeline = Arc::new(Pipeline::new(plugins));
    tracing::info!(plugins = ?pipeline.plugin_names(), "pipeline ready");
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisFirehoseEvent>| {
            let pipeline = Arc::clone(&pipeline);
            async move {
                let transformed = transform(
                    &pipeline,
                    &event.payload,
                    chrono::Utc::now(),
                    RESPONSE_LIMIT_BYTES,
                );
                Ok::<KinesisFirehoseResponse, Error>(transformed.response)
            }
        },
    ))
    .await
}
