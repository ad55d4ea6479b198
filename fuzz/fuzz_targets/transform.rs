//! The whole Firehose transform (envelope, framing, pipeline, response budget) on a batch of
//! one fuzzed record and a small one after it: never panics, answers both records, and stays
//! under the response limit.
#![no_main]

use std::sync::LazyLock;

use firehose_transform::{Batch, InputRecord, RESPONSE_LIMIT_BYTES, transform};
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_pipeline};
use libfuzzer_sys::fuzz_target;

static PIPELINE: LazyLock<Pipeline> =
    LazyLock::new(|| builtin_pipeline(&PluginConfig::default()).expect("the built-in pipeline"));

fuzz_target!(|data: &[u8]| {
    let batch = Batch {
        invocation_id: None,
        records: vec![
            InputRecord::new("r0", data.to_vec()),
            InputRecord::new("r1", br#"{"after":1}"#.to_vec()),
        ],
    };
    let out = transform(&PIPELINE, &batch, chrono::Utc::now(), RESPONSE_LIMIT_BYTES);
    assert_eq!(out.response.records.len(), 2);
    assert!(out.summary.response_bytes <= RESPONSE_LIMIT_BYTES);
});
