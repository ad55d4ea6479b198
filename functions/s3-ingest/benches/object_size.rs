//! Throughput and peak memory of ingesting one object, for objects of 10 MB and 500 MB
//! (uncompressed NDJSON, stored plain and gzip): memory must not grow with the object's size.
//!
//! ```text
//! LAKEWATCH_MOTO_SERVER=$PWD/.venv/bin/moto_server cargo bench -p s3-ingest --bench object_size
//! LAKEWATCH_BENCH_SIZES_MB=10,100 cargo bench -p s3-ingest --bench object_size   (other sizes)
//! ```
//!
//! The object is served by moto (real S3 API, real SDK streaming); Firehose is the fake server,
//! accepting every entry without keeping it. Each size is ingested by a fresh child process
//! (this binary again, with `child …`) so its peak resident memory (`VmHWM`) is that object's
//! alone, and neither moto nor the fake server is counted in it. The child runs the same
//! `ObjectIngester` as the Lambda, on a two-thread runtime.

use std::io::{BufWriter, Write};
use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use lakewatch_aws::firehose::{FirehoseSender, RetryPolicy};
use lakewatch_aws::s3_objects::{ErrorLocation, ObjectIngester, ObjectRef};
use lakewatch_testkit::fake_firehose::{FakeFirehose, FakeFirehoseConfig};
use lakewatch_testkit::moto::MotoServer;

const BUCKET: &str = "bench";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], &args[3], &args[4]);
        return;
    }
    let sizes: Vec<u64> = std::env::var("LAKEWATCH_BENCH_SIZES_MB")
        .unwrap_or_else(|_| "10,500".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("LAKEWATCH_BENCH_SIZES_MB: sizes in MB, comma-separated")
        })
        .collect();
    let moto = MotoServer::start();
    let fake = FakeFirehose::start(FakeFirehoseConfig {
        discard_accepted: true,
        ..Default::default()
    })
    .expect("start the fake Firehose");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sdk = runtime.block_on(moto.sdk_config());
    let s3 = lakewatch_aws::config::s3_client(&sdk);
    runtime.block_on(async { s3.create_bucket().bucket(BUCKET).send().await.unwrap() });

    println!(
        "{:>13} {:>10} {:>8} {:>12} {:>8} {:>14} {:>14}",
        "object", "records", "seconds", "records/s", "MB/s", "peak RSS MB", "RSS at init MB"
    );
    for (size_mb, gzip) in sizes.iter().flat_map(|&size| [(size, false), (size, true)]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let records = write_object(&path, size_mb * 1_000_000, gzip);
        let key = format!("audit/{size_mb}mb.ndjson{}", if gzip { ".gz" } else { "" });
        runtime.block_on(async {
            s3.put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from_path(&path).await.unwrap())
                .send()
                .await
                .unwrap();
        });
        drop(dir);
        let before = fake.stats().accepted_entries;
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["child", moto.endpoint(), fake.endpoint_url(), &key])
            .output()
            .expect("run the child");
        assert!(
            output.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let accepted = fake.stats().accepted_entries - before;
        assert_eq!(accepted, records, "Firehose did not get every record");
        assert_eq!(report["sent"].as_u64(), Some(records));
        let seconds = report["seconds"].as_f64().unwrap();
        println!(
            "{:>6}MB{} {:>10} {:>8.2} {:>12.0} {:>8.1} {:>14.1} {:>14.1}",
            size_mb,
            if gzip { " gzip" } else { "     " },
            records,
            seconds,
            records as f64 / seconds,
            size_mb as f64 / seconds,
            report["peak_rss_kb"].as_f64().unwrap() / 1024.0,
            report["init_rss_kb"].as_f64().unwrap() / 1024.0,
        );
    }
}

/// Writes NDJSON audit-log-like records until `bytes` (uncompressed), gzip-compressed if
/// asked; returns how many.
fn write_object(path: &std::path::Path, bytes: u64, gzip: bool) -> u64 {
    let mut file = BufWriter::new(std::fs::File::create(path).unwrap());
    let records = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(&mut file, flate2::Compression::fast());
        let records = write_records(&mut encoder, bytes);
        encoder.finish().unwrap();
        records
    } else {
        write_records(&mut file, bytes)
    };
    file.flush().unwrap();
    records
}

fn write_records(out: &mut impl Write, bytes: u64) -> u64 {
    let (mut written, mut records) = (0u64, 0u64);
    while written < bytes {
        let line = format!(
            "{{\"version\":\"1\",\"deploymentid\":\"4f6a\",\"time\":\"2026-01-01T00:{:02}:{:02}.{:06}Z\",\
             \"api\":{{\"name\":\"GetObject\",\"bucket\":\"data\",\"object\":\"reports/{records}.csv\",\
             \"status\":\"OK\",\"statusCode\":200,\"timeToResponse\":\"{}ns\"}},\
             \"remotehost\":\"10.{}.{}.{}\",\"requestID\":\"17A{records:013X}\",\"userAgent\":\"MinIO (linux; amd64) minio-go/v7.0.63\"}}\n",
            records / 60 % 60,
            records % 60,
            records % 1_000_000,
            100_000 + records % 900_000,
            records % 250,
            records / 250 % 250,
            records % 7,
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        records += 1;
    }
    records
}

/// Ingests one object and prints `{"sent", "seconds", "peak_rss_kb", "init_rss_kb"}`.
fn child(s3_endpoint: &str, firehose_endpoint: &str, key: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = |endpoint: &str| {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .test_credentials()
                .load()
        };
        let s3 = lakewatch_aws::config::s3_client(&config(s3_endpoint).await);
        let firehose = lakewatch_aws::firehose::client(&config(firehose_endpoint).await);
        let ingester = ObjectIngester {
            s3: s3.clone(),
            firehose: FirehoseSender::new(firehose, "events", RetryPolicy::default()),
            errors_s3: s3,
            errors: ErrorLocation::new(BUCKET, "errors/"),
            in_flight: 4,
        };
        let init_rss_kb = peak_rss_kb();
        let start = Instant::now();
        let summary = ingester
            .ingest(&ObjectRef {
                bucket: BUCKET.into(),
                key: key.into(),
                version_id: None,
            })
            .await
            .expect("ingest the object");
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "sent": summary.sent,
                "seconds": seconds,
                "peak_rss_kb": peak_rss_kb(),
                "init_rss_kb": init_rss_kb,
            })
        );
    });
}

/// The process's peak resident set size so far, from /proc/self/status.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}
