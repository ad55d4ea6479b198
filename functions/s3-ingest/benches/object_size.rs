//! Throughput and peak memory of ingesting one object, for objects of 10 MB and 500 MB
//! (uncompressed NDJSON, stored plain and gzip): memory must not grow with the object's size.
//! Then the hostile shapes, which must stay under 128 MiB too: 400 records of 900 KiB (a
//! 367 KB gzip object), 96 and 512 lines of 2 MiB (over Firehose's record limit), and 5 million
//! one-byte lines.
//!
//! ```text
//! LAKEWATCH_MOTO_SERVER=$PWD/.venv/bin/moto_server cargo bench -p s3-ingest --bench object_size
//! LAKEWATCH_BENCH_SIZES_MB=10,100 cargo bench -p s3-ingest --bench object_size   (other sizes)
//! LAKEWATCH_BENCH_SIZES_MB= cargo bench -p s3-ingest --bench object_size   (hostile shapes only)
//! ```
//!
//! The object is served by moto (real S3 API, real SDK streaming); Firehose is the fake server,
//! accepting every entry without keeping it. Each object is ingested by a fresh child process
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
/// The goal for any single object, of any size or shape: half the function's 256 MB.
const PEAK_RSS_LIMIT_MB: f64 = 128.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], &args[3], &args[4]);
        return;
    }
    let sizes: Vec<u64> = std::env::var("LAKEWATCH_BENCH_SIZES_MB")
        .unwrap_or_else(|_| "10,500".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .expect("LAKEWATCH_BENCH_SIZES_MB: sizes in MB, comma-separated")
        })
        .collect();
    let mut objects: Vec<Object> = sizes
        .iter()
        .flat_map(|&size| [(size, false), (size, true)])
        .map(|(size_mb, gzip)| Object {
            name: format!("{size_mb}MB{}", if gzip { " gzip" } else { "" }),
            gzip,
            write: Box::new(move |out| write_records(out, size_mb * 1_000_000)),
        })
        .collect();
    objects.extend(hostile());
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
        "{:>16} {:>10} {:>8} {:>8} {:>12} {:>10} {:>14} {:>14}",
        "object",
        "records",
        "oversize",
        "seconds",
        "records/s",
        "stored MB",
        "peak RSS MB",
        "RSS at init MB"
    );
    for (n, object) in objects.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let records = write_object(&path, object.gzip, object.write);
        let stored = std::fs::metadata(&path).unwrap().len();
        let key = format!("bench/{n}");
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
        let count = |field: &str| report[field].as_u64().unwrap();
        let accepted = fake.stats().accepted_entries - before;
        assert_eq!(count("read"), records, "not every record was read");
        assert_eq!(accepted, count("sent"), "Firehose did not get every record");
        assert_eq!(
            count("sent") + count("oversize") + count("failed_to_frame"),
            records
        );
        let seconds = report["seconds"].as_f64().unwrap();
        let peak_mb = report["peak_rss_kb"].as_f64().unwrap() / 1024.0;
        println!(
            "{:>16} {:>10} {:>8} {:>8.2} {:>12.0} {:>10.1} {:>14.1} {:>14.1}",
            object.name,
            records,
            count("oversize") + count("failed_to_frame"),
            seconds,
            records as f64 / seconds,
            stored as f64 / 1e6,
            peak_mb,
            report["init_rss_kb"].as_f64().unwrap() / 1024.0,
        );
        assert!(
            peak_mb < PEAK_RSS_LIMIT_MB,
            "{}: peak RSS {peak_mb:.1} MB, over the {PEAK_RSS_LIMIT_MB} MB goal",
            object.name
        );
    }
}

/// One object to ingest: its content, written by `write` (which returns how many records).
struct Object {
    name: String,
    gzip: bool,
    write: Box<dyn FnOnce(&mut dyn Write) -> u64>,
}

/// The shapes that once took hundreds of MB: records just under Firehose's limit (the channel
/// held 1,024 of them), lines over it (each was wrapped and queued), and very many tiny lines.
fn hostile() -> Vec<Object> {
    let lines = |name: &str, count: u64, bytes: usize| Object {
        name: name.to_string(),
        gzip: true,
        write: Box::new(move |out: &mut dyn Write| {
            let mut line = vec![b'a'; bytes];
            line.push(b'\n');
            for _ in 0..count {
                out.write_all(&line).unwrap();
            }
            count
        }),
    };
    vec![
        lines("400x900KiB gzip", 400, 900 * 1024),
        lines("96x2MiB gzip", 96, 2 * 1024 * 1024),
        lines("512x2MiB gzip", 512, 2 * 1024 * 1024),
        lines("5Mx1B gzip", 5_000_000, 1),
    ]
}

/// Writes an object, gzip-compressed if asked; returns how many records.
fn write_object(
    path: &std::path::Path,
    gzip: bool,
    write: Box<dyn FnOnce(&mut dyn Write) -> u64>,
) -> u64 {
    let mut file = BufWriter::new(std::fs::File::create(path).unwrap());
    let records = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(&mut file, flate2::Compression::fast());
        let records = write(&mut encoder);
        encoder.finish().unwrap();
        records
    } else {
        write(&mut file)
    };
    file.flush().unwrap();
    records
}

/// Writes NDJSON audit-log-like records until `bytes` (uncompressed); returns how many.
fn write_records(out: &mut dyn Write, bytes: u64) -> u64 {
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

/// Ingests one object and prints its counts, `seconds`, `peak_rss_kb` and `init_rss_kb`.
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
        let init_rss_kb = lakewatch_testkit::peak_rss_kib(std::process::id());
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
                "read": summary.read,
                "sent": summary.sent,
                "oversize": summary.oversize,
                "failed_to_frame": summary.failed_to_frame,
                "seconds": seconds,
                "peak_rss_kb": lakewatch_testkit::peak_rss_kib(std::process::id()),
                "init_rss_kb": init_rss_kb,
            })
        );
    });
}
