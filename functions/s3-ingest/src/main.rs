//! The S3-ingest Lambda's entry point: settings and clients once at init, then
//! [`s3_ingest::handle`] for every invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use s3_ingest::{Function, Settings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    let settings = Settings::from_env(|name| std::env::var(name).ok())?;
    tracing::info!(%settings, "s3-ingest ready");
    let sdk = lakewatch_aws::config::load(None).await;
    let function = Arc::new(Function::new(settings, sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        // The invocation's deadline, in milliseconds since the epoch.
        let deadline =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
        let time_left = deadline.duration_since(std::time::SystemTime::now()).ok();
        async move {
            Ok::<Value, Error>(
                s3_ingest::handle(&function, &event.payload, chrono::Utc::now(), time_left).await?,
            )
        }
    }))
    .await
}
