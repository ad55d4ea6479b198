//! Unwrapping any bytes as an S3-ingest envelope never panics; what unwraps runs through the
//! pipeline, and wrapping a framed record unwraps to the same record.
#![no_main]

use std::sync::LazyLock;

use lakewatch_plugins::envelope::{self, Provenance};
use lakewatch_plugins::framing::frame_bytes;
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_pipeline};
use libfuzzer_sys::fuzz_target;

static PIPELINE: LazyLock<Pipeline> =
    LazyLock::new(|| builtin_pipeline(&PluginConfig::default()).expect("the built-in pipeline"));

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(enveloped)) = envelope::unwrap(data) {
        let _ = PIPELINE.process(enveloped.record(), chrono::Utc::now());
    }
    let provenance = Provenance {
        bucket: "fuzz".into(),
        key: "in/object".into(),
        version: "v1".into(),
    };
    for record in frame_bytes(data).take(64).flatten() {
        let wrapped = envelope::wrap(&provenance, &record);
        let unwrapped = envelope::unwrap(&wrapped)
            .expect("a wrapped record is an envelope")
            .expect("a wrapped record unwraps");
        assert_eq!(unwrapped.text, record.text);
        assert_eq!(unwrapped.offset, record.offset);
    }
});
