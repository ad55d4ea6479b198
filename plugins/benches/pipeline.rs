//! The full built-in pipeline against its floor, on one core.
//!
//! The corpus is built at start from every sample source file under `events/` (JSON, NDJSON,
//! arrays, CloudTrail `Records` files, raw syslog lines, gzip), framed as the Lambdas frame
//! them, then repeated with varied fields (a sequence number, IPv4 last octets, the line's
//! tail) until it holds at least 100,000 records, so every event differs (ids, addresses,
//! enrichment caches cannot shortcut). It is laid out as one NDJSON/raw-line stream, one
//! record per line, as an S3 object or a batch of Firehose records would hold it.
//!
//! - `pipeline/full`: framing + every built-in plugin + serializing each event's lake line.
//! - `pipeline/floor`: `serde_json` parse + serialize of the same records (a raw line is
//!   serialized as a JSON string): what any JSON-in/JSON-out stage must at least spend.
//!
//! After criterion's statistics it prints events/s and MB/s of both and their ratio (the goal
//! is full within 2x of the floor). Run: `cargo bench -p lakewatch-plugins --bench pipeline`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput};
use lakewatch_plugins::framing::frame_reader;
use lakewatch_plugins::{Outcome, Pipeline, PluginConfig, RecordKind, builtin_pipeline};
use serde_json::Value;

const MIN_EVENTS: usize = 100_000;
/// Source files only: Lambda event fixtures and GeoIP test databases are not source events.
const SKIPPED_DIRS: [&str; 2] = ["lambda", "geoip"];
const SOURCE_EXTENSIONS: [&str; 6] = ["json", "ndjson", "jsonl", "log", "txt", "gz"];

struct Corpus {
    /// One record per line.
    data: Vec<u8>,
    records: usize,
    files: usize,
}

impl Corpus {
    fn build() -> Corpus {
        let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut files = Vec::new();
        collect_files(&events, &mut files);
        files.sort();
        let mut samples: Vec<(RecordKind, String)> = Vec::new();
        for path in &files {
            let file = std::fs::File::open(path).unwrap();
            for framed in frame_reader(std::io::BufReader::new(file)).flatten() {
                let text = match framed.kind {
                    // One line per record: re-serialize pretty-printed JSON compactly.
                    RecordKind::Json => match serde_json::from_str::<Value>(&framed.text) {
                        Ok(value) => value.to_string(),
                        Err(_) => continue,
                    },
                    RecordKind::Line => framed.text,
                };
                samples.push((framed.kind, text));
            }
        }
        assert!(
            !samples.is_empty(),
            "no sample events under {}",
            events.display()
        );
        let mut data = Vec::new();
        let mut records = 0;
        while records < MIN_EVENTS {
            for (kind, text) in &samples {
                vary(*kind, text, records, &mut data);
                data.push(b'\n');
                records += 1;
            }
        }
        Corpus {
            data,
            records,
            files: files.len(),
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                collect_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// Writes a variant of a sample record: copy `n` differs from every other copy.
fn vary(kind: RecordKind, text: &str, n: usize, out: &mut Vec<u8>) {
    match kind {
        RecordKind::Line => {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(format!(" seq={n}").as_bytes());
        }
        RecordKind::Json => {
            let mut value: Value = serde_json::from_str(text).unwrap();
            vary_addresses(&mut value, n);
            if let Value::Object(map) = &mut value {
                map.insert("bench_seq".into(), n.into());
            }
            serde_json::to_writer(&mut *out, &value).unwrap();
        }
    }
}

/// Changes the last octet of every IPv4 address string.
fn vary_addresses(value: &mut Value, n: usize) {
    match value {
        Value::String(s) => {
            if s.parse::<std::net::Ipv4Addr>().is_ok() {
                let (head, _) = s.rsplit_once('.').unwrap();
                *s = format!("{head}.{}", n % 250 + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| vary_addresses(v, n)),
        Value::Object(map) => map.values_mut().for_each(|v| vary_addresses(v, n)),
        _ => {}
    }
}

/// Counts of what the full run produced, to show it did the work.
#[derive(Debug, Default)]
struct Counts {
    ok: usize,
    dropped: usize,
    failed: usize,
    output_bytes: usize,
}

fn full(pipeline: &Pipeline, corpus: &[u8], received: DateTime<Utc>) -> Counts {
    let mut counts = Counts::default();
    let mut out = Vec::with_capacity(64 * 1024);
    for framed in frame_reader(corpus) {
        let Ok(framed) = framed else {
            counts.failed += 1;
            continue;
        };
        match pipeline.process(framed.record("bench"), received) {
            Outcome::Ok(event) => {
                event.write_json_line(&mut out);
                counts.ok += 1;
            }
            Outcome::Dropped { .. } => counts.dropped += 1,
            Outcome::Failed { .. } => counts.failed += 1,
        }
        // Flush as a writer would, so memory stays flat and the copy cost is counted.
        if out.len() > 60 * 1024 {
            counts.output_bytes += out.len();
            black_box(&out);
            out.clear();
        }
    }
    counts.output_bytes += out.len();
    counts
}

fn floor(corpus: &[u8]) -> usize {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut written = 0;
    for line in corpus.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if line[0] == b'{' {
            let value: Value = serde_json::from_slice(line).unwrap();
            serde_json::to_writer(&mut out, &value).unwrap();
        } else {
            let text = std::str::from_utf8(line).unwrap();
            serde_json::to_writer(&mut out, text).unwrap();
        }
        out.push(b'\n');
        if out.len() > 60 * 1024 {
            written += out.len();
            black_box(&out);
            out.clear();
        }
    }
    written + out.len()
}

/// Best of `runs` wall-clock timings of `work`.
fn best_of(runs: usize, mut work: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let corpus = Corpus::build();
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let received: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-04-17T06:10:54Z")
        .unwrap()
        .into();
    let counts = full(&pipeline, &corpus.data, received);
    println!(
        "corpus: {} records ({:.1} MB) from {} files under events/; pipeline: {:?}\n\
         full run: {} ok, {} dropped, {} failed, {:.1} MB out",
        corpus.records,
        corpus.data.len() as f64 / 1e6,
        corpus.files,
        pipeline.plugin_names(),
        counts.ok,
        counts.dropped,
        counts.failed,
        counts.output_bytes as f64 / 1e6
    );

    let mut criterion = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut group = criterion.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(corpus.data.len() as u64));
    group.bench_function("full", |b| {
        b.iter(|| full(&pipeline, black_box(&corpus.data), received))
    });
    group.bench_function("floor", |b| b.iter(|| floor(black_box(&corpus.data))));
    group.finish();
    criterion.final_summary();

    let full_time = best_of(5, || {
        black_box(full(&pipeline, &corpus.data, received));
    });
    let floor_time = best_of(5, || {
        black_box(floor(&corpus.data));
    });
    let report = |name: &str, time: Duration| {
        println!(
            "{name:>6}: {:>10.0} events/s  {:>7.1} MB/s  ({:.3} s for {} events, best of 5)",
            corpus.records as f64 / time.as_secs_f64(),
            corpus.data.len() as f64 / 1e6 / time.as_secs_f64(),
            time.as_secs_f64(),
            corpus.records
        );
    };
    report("full", full_time);
    report("floor", floor_time);
    println!(
        " ratio: full takes {:.2}x the floor's time (goal: within 2x)",
        full_time.as_secs_f64() / floor_time.as_secs_f64()
    );
}
