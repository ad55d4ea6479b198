//! `lakewatch ingest` end to end on the shape of a historical import, against the pipeline's
//! own cost on the same records.
//!
//! The corpus is generated (deterministically, never committed) from defendA's samples in
//! `events/defenda/`: 200,000 NDJSON records, each a copy of one of the five samples (CloudFront,
//! CloudTrail, G Suite, syslog, VPC flow log) with every time field moved to a random second of
//! 460 consecutive hours and a sequence number, in random order: every event differs and
//! consecutive events rarely share an hour, as in a back-fill of months of logs.
//!
//! Two measurements, both on one core:
//! - **pipeline**: framing + the built-in pipeline + serializing each event's lake line, in this
//!   process, nothing written (the cost `cargo bench -p lakewatch-plugins --bench pipeline`
//!   measures, on this corpus).
//! - **cli**: the `lakewatch` binary ingesting the corpus file into an empty lake, as a user runs
//!   it: CPU user + system of the child process, wall time, peak memory, and the files and
//!   hour partitions it wrote.
//!
//! It prints both and the lake's overhead: CLI CPU / pipeline CPU - 1 (the goal is at most 30%).
//! Linux only (CPU times from `getrusage`). Run: `cargo bench --bench ingest`
//! (`LAKEWATCH_BENCH_RECORDS=N` for another corpus size).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use lakewatch_plugins::framing::frame_reader;
use lakewatch_plugins::{Outcome, PluginConfig, builtin_pipeline};
use serde_json::Value;

const RECORDS: usize = 200_000;
const HOURS: u64 = 460;
const SEED: u64 = 0x1a4e_3a7c_0000_0013;

fn main() {
    let records = std::env::var("LAKEWATCH_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RECORDS);
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ingest-bench");
    fs::create_dir_all(&work).unwrap();
    let corpus = work.join(format!("corpus-{records}.ndjson"));
    if !corpus.exists() {
        generate(&corpus, records);
    }
    let bytes = fs::metadata(&corpus).unwrap().len();
    println!(
        "corpus: {} ({records} records, {:.1} MB, {HOURS} hours in random order)",
        corpus.display(),
        bytes as f64 / 1e6
    );

    let (pipeline_cpu, events) = pipeline_only(&corpus);
    println!(
        "pipeline: {events} events, CPU {:.2} s = {:.0} events/s",
        pipeline_cpu.as_secs_f64(),
        events as f64 / pipeline_cpu.as_secs_f64()
    );

    let lake = work.join("lake");
    if lake.exists() {
        fs::remove_dir_all(&lake).unwrap();
    }
    let before = children_usage();
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_lakewatch"))
        .args(["ingest", "--quiet", "--lake"])
        .arg(&lake)
        .arg(&corpus)
        .env_remove("LAKEWATCH_GEOIP_CITY_DATABASE")
        .env_remove("LAKEWATCH_GEOIP_ASN_DATABASE")
        .output()
        .unwrap();
    let wall = start.elapsed();
    let after = children_usage();
    assert!(
        output.status.success(),
        "lakewatch ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let user = after.user - before.user;
    let sys = after.sys - before.sys;
    let cpu = user + sys;
    let (files, partitions, most) = lake_files(&lake.join("events"));
    println!(
        "cli: wall {:.2} s, CPU {:.2} s (user {:.2} + sys {:.2}) = {:.0} events/s of CPU, \
         {:.0} events/s wall, peak RSS {} MiB",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        user.as_secs_f64(),
        sys.as_secs_f64(),
        events as f64 / cpu.as_secs_f64(),
        events as f64 / wall.as_secs_f64(),
        after.max_rss_kib / 1024
    );
    println!("lake: {files} files in {partitions} hour partitions (at most {most} files in one)");
    println!(
        "lake overhead: CLI CPU / pipeline CPU = {:.2} ({:+.0}%)",
        cpu.as_secs_f64() / pipeline_cpu.as_secs_f64(),
        (cpu.as_secs_f64() / pipeline_cpu.as_secs_f64() - 1.0) * 100.0
    );
}

/// Frames and processes the corpus as `lakewatch ingest` does, writing nothing; returns the CPU
/// time this process spent and the events kept.
fn pipeline_only(corpus: &Path) -> (Duration, u64) {
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let container = corpus.canonicalize().unwrap().display().to_string();
    let received = Utc::now();
    let start = self_usage();
    let mut line = Vec::new();
    let mut events = 0;
    for framed in frame_reader(BufReader::new(File::open(corpus).unwrap())) {
        let framed = framed.expect("the generated corpus frames");
        if let Outcome::Ok(event) = pipeline.process(framed.record(&container), received) {
            line.clear();
            event.write_json_line(&mut line);
            std::hint::black_box(&line);
            events += 1;
        }
    }
    let end = self_usage();
    ((end.user + end.sys) - (start.user + start.sys), events)
}

/// Data files, hour partitions, and the most files any one partition got.
fn lake_files(events: &Path) -> (usize, usize, usize) {
    let mut per_partition = Vec::new();
    let mut stack = vec![events.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut files = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".json.gz") {
                files += 1;
            }
        }
        if files > 0 {
            per_partition.push(files);
        }
    }
    let total = per_partition.iter().sum();
    let most = per_partition.iter().copied().max().unwrap_or(0);
    (total, per_partition.len(), most)
}

struct Usage {
    user: Duration,
    sys: Duration,
    max_rss_kib: i64,
}

fn usage(who: libc::c_int) -> Usage {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut raw: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(who, &mut raw) }, 0);
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        user: time(raw.ru_utime),
        sys: time(raw.ru_stime),
        max_rss_kib: raw.ru_maxrss,
    }
}

fn self_usage() -> Usage {
    usage(libc::RUSAGE_SELF)
}

fn children_usage() -> Usage {
    usage(libc::RUSAGE_CHILDREN)
}

/// splitmix64: a fixed, dependency-free generator, so the corpus is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn generate(path: &Path, records: usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events/defenda");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let samples: Vec<Value> = names
        .iter()
        .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
        .collect();
    assert!(!samples.is_empty(), "no samples in {}", dir.display());
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut rng = Rng(SEED);
    let partial = path.with_extension("generating");
    let mut out = BufWriter::new(File::create(&partial).unwrap());
    for n in 0..records {
        let mut record = samples[(rng.next() % samples.len() as u64) as usize].clone();
        let seconds = rng.next() % (HOURS * 3600);
        let at = start + TimeDelta::seconds(seconds as i64);
        retime(&mut record, at, (rng.next() % 250) as u8 + 1);
        if let Value::Object(map) = &mut record {
            map.insert("bench_seq".into(), n.into());
        }
        serde_json::to_writer(&mut out, &record).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    fs::rename(&partial, path).unwrap();
}

/// Moves every time in the record to `at` (ISO date-times, CloudFront's separate date and time)
/// and every IPv4 address's last octet to `octet`.
fn retime(value: &mut Value, at: DateTime<Utc>, octet: u8) {
    match value {
        Value::String(s) => {
            let b = s.as_bytes();
            if b.len() >= 19 && b[4] == b'-' && b[10] == b'T' {
                *s = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            } else if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
                *s = at.format("%Y-%m-%d").to_string();
            } else if b.len() == 8 && b[2] == b':' && b[5] == b':' {
                *s = at.format("%H:%M:%S").to_string();
            } else if s.parse::<std::net::Ipv4Addr>().is_ok() {
                let mut parts: Vec<&str> = s.split('.').collect();
                let last = octet.to_string();
                parts[3] = &last;
                *s = parts.join(".");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| retime(v, at, octet)),
        Value::Object(map) => map.values_mut().for_each(|v| retime(v, at, octet)),
        _ => {}
    }
}
