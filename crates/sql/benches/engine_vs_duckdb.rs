//! lakewatch's local engine against DuckDB on the same lake files, in one run.
//!
//! ```text
//! LAKEWATCH_PYTHON=$PWD/.venv/bin/python cargo bench -p lakewatch-sql --bench engine_vs_duckdb
//! ```
//!
//! Generates (once, kept under the target directory) a lake of `LAKEWATCH_BENCH_EVENTS`
//! events (default 1,000,000) over 3 days × 24 hours × 2 gzip NDJSON files, then times three
//! queries on both engines with two threads each: a count by source over one day of partitions,
//! a `json_extract_scalar` filter over everything, and an IP pivot with `json_array_contains`.
//! Each query runs once to warm up and three times timed; the median counts. Prints rows/s
//! (rows of the partitions read, divided by the time) and the ratio; above 1.0 lakewatch is
//! faster. The answers of both engines are compared too: a fast wrong answer is no result.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Lake, duckdb_request, event};
use lakewatch_sql::LocalEngine;
use serde_json::{Value, json};

const DAYS: u32 = 3;
const FILES_PER_HOUR: u32 = 2;
const SOURCES: [&str; 5] = ["cloudtrail", "gsuite", "syslog", "vpcflow", "s3-audit"];
const EVENT_NAMES: [&str; 6] = [
    "ConsoleLogin",
    "GetObject",
    "PutObject",
    "AssumeRole",
    "DescribeInstances",
    "CreateLogStream",
];
const PIVOT_IP: &str = "7.1.14.12";

/// A deterministic generator, so every run and both engines see the same lake.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One event with CloudTrail-like details (about 900 bytes of JSON).
fn generated(rng: &mut Lcg, time: &str, i: u64) -> Value {
    let source = SOURCES[rng.next(SOURCES.len() as u64) as usize];
    let name = EVENT_NAMES[rng.next(EVENT_NAMES.len() as u64) as usize];
    let ip = format!("10.{}.{}.{}", rng.next(4), rng.next(256), rng.next(256));
    let other = if rng.next(1000) == 0 {
        PIVOT_IP.to_string()
    } else {
        format!("172.16.{}.{}", rng.next(256), rng.next(256))
    };
    let user = format!("user{}", rng.next(500));
    let details = json!({
        "eventversion": "1.08",
        "eventsource": "s3.amazonaws.com",
        "eventname": name,
        "awsregion": "us-west-2",
        "sourceipaddress": ip,
        "useragent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        "useridentity": {
            "type": "IAMUser",
            "principalid": format!("AIDA{i:016}"),
            "arn": format!("arn:aws:iam::123456789012:user/{user}"),
            "accountid": "123456789012",
            "username": user,
        },
        "requestparameters": {"bucketname": format!("bucket-{}", rng.next(20)), "key": format!("logs/{i}.json")},
        "responseelements": null,
        "requestid": format!("{:016x}", rng.next(u64::MAX >> 1)),
        "eventid": format!("{:032x}", i),
        "readonly": rng.next(2) == 0,
        "eventtype": "AwsApiCall",
        "recipientaccountid": "123456789012",
        "bytes": rng.next(100_000),
        "_ipaddresses": [ip, other],
    });
    event(
        time,
        source,
        &format!("{name} by {user} from {ip}"),
        &[source],
        details,
    )
}

/// The benchmark lake, generated on first use (two threads, one per half of the hours).
fn lake(events: u64) -> Lake {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-lake-{events}"));
    let done = root.join("complete");
    let lake = Lake::at(root);
    if done.exists() {
        eprintln!("reusing the lake at {}", lake.path().display());
        return lake;
    }
    eprintln!(
        "generating {events} events in {} ...",
        lake.path().display()
    );
    let started = Instant::now();
    let files = u64::from(DAYS * 24 * FILES_PER_HOUR);
    std::thread::scope(|scope| {
        for half in 0..2u64 {
            let lake = &lake;
            scope.spawn(move || {
                for file in (half..files).step_by(2) {
                    let (hour_index, part) = (file / 2, file % 2);
                    let (day, hour) = (1 + hour_index / 24, hour_index % 24);
                    let count = events / files + u64::from(file < events % files);
                    let mut rng = Lcg(file + 1);
                    let lines: Vec<String> = (0..count)
                        .map(|n| {
                            let minute = n * 60 / count;
                            let time = format!("2024-03-{day:02}T{hour:02}:{minute:02}:00");
                            generated(&mut rng, &time, file * 1_000_000 + n).to_string()
                        })
                        .collect();
                    lake.write(
                        "events",
                        &format!("2024-03-{day:02}T{hour:02}"),
                        &format!("part-{part}.json.gz"),
                        &lines,
                    );
                }
            });
        }
    });
    std::fs::write(&done, b"").unwrap();
    eprintln!("generated in {:.1?}", started.elapsed());
    lake
}

struct Case {
    name: &'static str,
    ours: String,
    duckdb: String,
    /// Rows of the partitions the query reads.
    rows: u64,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let events: u64 = std::env::var("LAKEWATCH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let lake = lake(events);
    let bytes: u64 = walk(lake.path().join("events"));
    eprintln!(
        "lake: {events} events, {:.1} MB of gzip NDJSON",
        bytes as f64 / 1e6
    );

    let cases = [
        Case {
            name: "count by source, one day",
            ours: "SELECT source, count(*) AS n FROM events WHERE year = '2024' AND month = '03' AND day = '02' GROUP BY source ORDER BY source".into(),
            duckdb: "SELECT source, count(*) AS n FROM events WHERE year = '2024' AND month = '03' AND day = '02' GROUP BY source ORDER BY source".into(),
            rows: events / u64::from(DAYS),
        },
        Case {
            name: "json_extract_scalar filter",
            ours: "SELECT count(*) FROM events WHERE json_extract_scalar(details, '$.eventname') = 'ConsoleLogin'".into(),
            duckdb: "SELECT count(*) FROM events WHERE json_extract_string(details, '$.eventname') = 'ConsoleLogin'".into(),
            rows: events,
        },
        Case {
            name: "IP pivot",
            ours: format!("SELECT utctimestamp, source, summary FROM events WHERE json_array_contains(json_extract(details, '$._ipaddresses'), '{PIVOT_IP}') ORDER BY utctimestamp, summary"),
            duckdb: format!("SELECT utctimestamp, source, summary FROM events WHERE list_contains(json_extract_string(details, '$._ipaddresses[*]'), '{PIVOT_IP}') ORDER BY utctimestamp, summary"),
            rows: events,
        },
    ];

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = LocalEngine::open(lake.path()).unwrap();
    let threads = engine.context().state().config().target_partitions();
    let mut ours = Vec::new();
    for case in &cases {
        let mut times = Vec::new();
        let mut answer = Vec::new();
        for run in 0..4 {
            let started = Instant::now();
            let result = runtime.block_on(engine.query(&case.ours)).unwrap();
            if run > 0 {
                times.push(started.elapsed());
            }
            answer = result.rows().unwrap();
        }
        ours.push((median(times), answer));
    }

    let request = json!({
        "queries": cases.iter().map(|c| c.duckdb.as_str()).collect::<Vec<_>>(),
        "repeat": 4,
        "threads": threads,
    });
    let theirs = duckdb_request(lake.path(), &request);

    println!("\nlakewatch local engine vs DuckDB 2.0, {events} events, {threads} threads each");
    println!(
        "{:<28} {:>10} {:>14} {:>10} {:>14} {:>8}",
        "query", "lakewatch", "rows/s", "DuckDB", "rows/s", "ratio"
    );
    for ((case, (time, answer)), duck) in cases.iter().zip(ours).zip(&theirs) {
        let seconds: Vec<f64> = duck["seconds"]
            .as_array()
            .unwrap_or_else(|| panic!("DuckDB failed on {}: {duck}", case.name))
            .iter()
            .skip(1)
            .map(|s| s.as_f64().unwrap())
            .collect();
        let duck_time = median(
            seconds
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
        );
        let duck_rows: Vec<Vec<Option<String>>> =
            serde_json::from_value(duck["rows"].clone()).unwrap();
        assert_eq!(answer, duck_rows, "{}: the engines disagree", case.name);
        let rate = |t: Duration| case.rows as f64 / t.as_secs_f64();
        println!(
            "{:<28} {:>9.3}s {:>14.0} {:>9.3}s {:>14.0} {:>8.2}",
            case.name,
            time.as_secs_f64(),
            rate(time),
            duck_time.as_secs_f64(),
            rate(duck_time),
            duck_time.as_secs_f64() / time.as_secs_f64()
        );
    }
    println!("ratio = DuckDB time / lakewatch time (above 1.00: lakewatch is faster)");
}

/// Total size of the files under `dir`.
fn walk(dir: PathBuf) -> u64 {
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        walk(e.path())
                    } else {
                        e.metadata().unwrap().len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
