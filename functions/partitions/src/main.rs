//! The partition generator Lambda's entry point: [`partitions::Function`] once at init, then
//! [`partitions::Function::handle`] for every scheduled event.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use partitions::{Function, Trigger};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lakewatch_lambda::init_logging();
    let function = Arc::new(Function::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Trigger>| {
        let function = Arc::clone(&function);
        async move { Ok::<_, Error>(function.handle(event.payload).await?) }
    }))
    .await
}
