//! How much each bundled source grows from a Firehose batch into the transform's response
//! (event shells, base64, the per-record answer), through the real built-in pipeline, and
//! whether the processing buffer the transform is sized for keeps that under Lambda's limit.

use std::path::PathBuf;

use firehose_transform::{
    Batch, InputRecord, PROCESSING_BUFFER_BYTES, RESPONSE_LIMIT_BYTES, transform,
};
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_plugins_with_notes};

/// Share of the response limit a full default buffer of the worst source may take: the rest
/// is margin for batches Firehose makes a little larger than its buffer, and for sources whose
/// lines are shorter than the samples'.
const MARGIN: f64 = 0.8;

/// Every bundled source sample, by path under `events/` (gzip decompressed).
const SAMPLES: &[&str] = &[
    "syslog/auth.log",
    "syslog/rfc5424.log",
    "scenario/auth.log",
    "scenario/logins.ndjson",
    "cloudtrail/console-logins.json",
    "vpcflow/flows.ndjson",
    "cloudfront/access.ndjson",
    "gsuite/logins.json",
    "mixed/events.ndjson",
    "s3-audit/audit.json.gz",
    "defenda/sample_cloudfront_wordpress_probe.json",
    "defenda/sample_cloudtrail_create_log_stream.json",
    "defenda/sample_gsuite_login_event.json",
    "defenda/sample_syslog_sudo.json",
    "defenda/sample_vpc_flow_log.json",
];

fn sample(path: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(path);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        text
    } else {
        bytes
    }
}

/// A record id as long as Firehose's (56 digits), unique per position.
fn record_id(i: usize) -> String {
    format!("{i:056}")
}

/// Response bytes per input data byte of a batch of these records, or `None` when a record
/// does not succeed in this shape (a pretty-printed document cut into lines).
fn growth(pipeline: &Pipeline, records: Vec<Vec<u8>>) -> Option<f64> {
    let input: usize = records.iter().map(Vec::len).sum();
    let batch = Batch {
        invocation_id: None,
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, data)| InputRecord::new(&record_id(i), data))
            .collect(),
    };
    let out = transform(pipeline, &batch, chrono::Utc::now(), usize::MAX);
    (out.summary.records_failed == 0).then(|| out.summary.response_bytes as f64 / input as f64)
}

/// The worst growth of each sample: the whole file as one record, and each line as its own
/// record (one event per record, the most per-record overhead).
fn growth_per_sample() -> Vec<(&'static str, f64)> {
    let (plugins, _) = builtin_plugins_with_notes(&PluginConfig::default()).unwrap();
    let pipeline = Pipeline::new(plugins);
    SAMPLES
        .iter()
        .map(|path| {
            let data = sample(path);
            let lines = data
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| [line, b"\n"].concat())
                .collect();
            let whole = growth(&pipeline, vec![data]).expect("every sample transforms whole");
            let worst = growth(&pipeline, lines).map_or(whole, |per_line| per_line.max(whole));
            (*path, worst)
        })
        .collect()
}

#[test]
fn a_default_buffer_of_any_bundled_source_fits_the_response_with_margin() {
    let growths = growth_per_sample();
    for (path, growth) in &growths {
        eprintln!("{path}: {growth:.2}x");
    }
    let (worst_path, worst) = growths
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let response = worst * PROCESSING_BUFFER_BYTES as f64;
    eprintln!(
        "worst: {worst_path} {worst:.2}x; a {PROCESSING_BUFFER_BYTES}-byte buffer answers \
         {response:.0} bytes ({:.0}% of {RESPONSE_LIMIT_BYTES})",
        100.0 * response / RESPONSE_LIMIT_BYTES as f64
    );
    assert!(
        response <= MARGIN * RESPONSE_LIMIT_BYTES as f64,
        "{worst_path} grows {worst:.2}x: a {PROCESSING_BUFFER_BYTES}-byte processing buffer \
         would answer {response:.0} bytes, over {MARGIN} of Lambda's limit; lower \
         PROCESSING_BUFFER_BYTES and the Terraform default, or shrink the shell"
    );
}
