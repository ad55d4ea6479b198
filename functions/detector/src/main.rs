//! The detector Lambda's entry point: [`detector::Detector`] once at init (a wrong
//! configuration fails the init, with a log line saying why), then
//! [`detector::Detector::handle`] for every scheduled event. Each rule logs one JSON line; a
//! failed rule logs `rule_failed: true` (the Terraform alarm counts those) and never stops the
//! others. The invocation fails only when every rule failed.

// The scheduled run nests the runner, the Athena engine and the S3 state store as futures;
// laying out main's future takes more than the default 128 levels.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use detector::{Detector, Trigger};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    let detector = match Detector::from_env().await {
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
            let left = event.context.deadline().duration_since(SystemTime::now());
            let deadline = Instant::now() + left.unwrap_or_default();
            Ok::<_, Error>(detector.handle(event.payload, deadline).await?)
        }
    }))
    .await
}
