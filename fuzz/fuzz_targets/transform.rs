//! The whole Firehose transform (envelope, framing, pipeline, response budget) on a batch of
//! one fuzzed record and a small one after it: never panics, answers both records, and stays
//! under the response limit.
#![no_main]

use std::sync::LazyLock;

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
use firehose_transform::{RESPONSE_LIMIT_BYTES, transform};
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_pipeline};
use libfuzzer_sys::fuzz_target;

static PIPELINE: LazyLock<Pipeline> =
    LazyLock::new(|| builtin_pipeline(&PluginConfig::default()).expect("the built-in pipeline"));

fuzz_target!(|data: &[u8]| {
    let mut batch = KinesisFirehoseEvent::default();
    batch.records = [data, br#"{"after":1}"#.as_slice()]
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut record = KinesisFirehoseEventRecord::default();
            record.record_id = Some(format!("r{i}"));
            record.data.0 = data.to_vec();
            record
        })
        .collect();
    let out = transform(&PIPELINE, &batch, chrono::Utc::now(), RESPONSE_LIMIT_BYTES);
    assert_eq!(out.response.records.len(), 2);
    assert!(out.summary.response_bytes <= RESPONSE_LIMIT_BYTES);
});
