//! Peak memory of the Firehose transform Lambda on a 6 MB batch.
//!
//! Builds a Firehose event of about 6 MB (Lambda's request limit) by repeating the records of
//! `events/lambda/firehose-batch.json` (good, bad and empty ones) under fresh record ids,
//! drives the given binary through the Runtime API, and prints the process's peak resident
//! memory (`VmHWM` from `/proc/<pid>/status`, what `/usr/bin/time -v` calls "Maximum resident
//! set size") after init and after the batch, and the function's summary log line.
//!
//! ```text
//! cargo build --release -p firehose-transform
//! cargo run -p firehose-transform --example peak_memory -- target/release/firehose-transform
//! ```

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use lakewatch_testkit::runtime_api::LambdaProcess;

/// Lambda's limit on a synchronous request payload.
const REQUEST_LIMIT: usize = 6 * 1024 * 1024;

#[tokio::main]
async fn main() {
    let binary = std::env::args()
        .nth(1)
        .expect("usage: peak_memory <path to the firehose-transform binary>");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/lambda/firehose-batch.json"
    );
    let template: KinesisFirehoseEvent =
        serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let mut batch = template.clone();
    batch.records.clear();
    let mut size = serde_json::to_vec(&batch).unwrap().len();
    'fill: for copy in 0.. {
        for record in &template.records {
            let mut record = record.clone();
            record.record_id = Some(format!("{}-{copy}", record.record_id.unwrap()));
            let record_size = serde_json::to_vec(&record).unwrap().len() + 1;
            if size + record_size > REQUEST_LIMIT {
                break 'fill;
            }
            size += record_size;
            batch.records.push(record);
        }
    }
    let event = serde_json::to_vec(&batch).unwrap();

    let lambda = LambdaProcess::start(&binary, &[]).await.unwrap();
    // An empty batch first: the process is initialised and has answered once.
    let empty = br#"{"records":[]}"#.to_vec();
    lambda.invoke(empty).await.unwrap().into_response().unwrap();
    let idle = lakewatch_testkit::peak_rss_kib(lambda.pid());
    let started = std::time::Instant::now();
    let body = lambda
        .invoke(event.clone())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let elapsed = started.elapsed();
    let peak = lakewatch_testkit::peak_rss_kib(lambda.pid());
    let response: KinesisFirehoseResponse = serde_json::from_slice(&body).unwrap();
    let count = |result: &str| {
        response
            .records
            .iter()
            .filter(|r| r.result.as_deref() == Some(result))
            .count()
    };
    println!(
        "batch: {} bytes, {} records; response: {} bytes ({} Ok, {} Dropped, {} ProcessingFailed) \
         in {:.0} ms",
        event.len(),
        batch.records.len(),
        body.len(),
        count("Ok"),
        count("Dropped"),
        count("ProcessingFailed"),
        elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "peak resident memory (VmHWM): {:.1} MiB after init, {:.1} MiB after the batch",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    let logs = lambda.stop();
    if let Some(summary) = logs
        .lines()
        .filter(|l| l.contains("batch transformed"))
        .last()
    {
        println!("the function's summary line: {summary}");
    }
}
