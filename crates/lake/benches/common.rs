//! The back-fill corpus of the ingest benchmarks, generated deterministically (never
//! committed): copies of defendA's samples in `events/defenda/` with every time field moved to
//! a random second of [`HOURS`] consecutive hours, in random order, and a sequence number, so
//! every event differs and consecutive events rarely share an hour, as in a back-fill of
//! months of logs. Also CPU times from `/proc` (Linux). Shared (`#[path]`-included) by
//! `crates/lake/benches/writer.rs` and the end-to-end `benches/ingest.rs`.
#![allow(dead_code)] // each including bench uses a part

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use lakewatch_plugins::framing::frame_reader;
use lakewatch_plugins::{Event, Outcome, PluginConfig, builtin_pipeline};
use serde_json::Value;

/// Records of the corpus, unless `LAKEWATCH_BENCH_RECORDS` says otherwise.
pub const RECORDS: usize = 200_000;
/// Consecutive hours the event times spread over.
pub const HOURS: u64 = 460;
const SEED: u64 = 0x1a4e_3a7c_0000_0013;

/// The corpus file under `dir` (generated when missing), described on stdout.
pub fn corpus(dir: &Path) -> PathBuf {
    let records = std::env::var("LAKEWATCH_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RECORDS);
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("corpus-{records}.ndjson"));
    if !path.exists() {
        generate(&path, records);
    }
    println!(
        "corpus: {} ({records} records, {:.1} MB, {HOURS} hours in random order)",
        path.display(),
        fs::metadata(&path).unwrap().len() as f64 / 1e6
    );
    path
}

/// Frames the corpus and runs the built-in pipeline on it as `lakewatch ingest` does (one
/// received time), giving each kept event to `each`; returns the events kept.
pub fn for_each_event(corpus: &Path, mut each: impl FnMut(Event)) -> u64 {
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let container = corpus.canonicalize().unwrap().display().to_string();
    let received = Utc::now();
    let mut events = 0;
    for framed in frame_reader(BufReader::new(File::open(corpus).unwrap())) {
        let framed = framed.expect("the generated corpus frames");
        if let Outcome::Ok(event) = pipeline.process(framed.record(&container), received) {
            each(event);
            events += 1;
        }
    }
    events
}

/// Runs of each measured side; the benches keep the fastest, as the pipeline bench does: a
/// single run on a shared 2-core machine varied by a fifth from one to the next.
pub const RUNS: usize = 3;

/// The pipeline's own cost on the corpus: every event's lake line serialized, nothing
/// written. Returns the events kept and the CPU time, the least of [`RUNS`] runs.
pub fn pipeline_only(corpus: &Path) -> (u64, Duration) {
    let mut line = Vec::new();
    let (events, cpu) = (0..RUNS)
        .map(|_| {
            let (events, cpu, _) = measure(|| {
                for_each_event(corpus, |event| {
                    line.clear();
                    event.write_json_line(&mut line);
                    std::hint::black_box(&line);
                })
            });
            (events, cpu)
        })
        .min_by_key(|&(_, cpu)| cpu)
        .expect("RUNS is not 0");
    println!(
        "pipeline:        CPU {:.2} s = {:.0} events/s ({events} events, best of {RUNS})",
        cpu.as_secs_f64(),
        events as f64 / cpu.as_secs_f64()
    );
    (events, cpu)
}

/// Runs `work`; returns its result, the CPU time (user + system) and wall time it took.
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let start = (Usage::now(), Instant::now());
    let result = work();
    let end = (Usage::now(), Instant::now());
    (result, end.0.cpu() - start.0.cpu(), end.1 - start.1)
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("events/defenda"))
        .find(|d| d.is_dir())
        .expect("events/defenda/ above the crate");
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

/// CPU time from `/proc/self/stat`: this process's own, and that of the children it waited
/// for. Clock ticks are USER_HZ, 100 per second on Linux.
pub struct Usage {
    pub user: Duration,
    pub sys: Duration,
    pub children_user: Duration,
    pub children_sys: Duration,
}

impl Usage {
    pub fn now() -> Usage {
        let stat = fs::read_to_string("/proc/self/stat").expect("Linux /proc");
        // The fields after the command name (in parentheses, which may hold spaces).
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks = |i: usize| Duration::from_millis(fields[i].parse::<u64>().unwrap() * 10);
        // utime, stime, cutime, cstime are fields 14-17 of proc(5); `fields` starts at 3.
        Usage {
            user: ticks(11),
            sys: ticks(12),
            children_user: ticks(13),
            children_sys: ticks(14),
        }
    }

    /// This process's user + system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

/// Data files, hour partitions, and the most files any one partition got, under `table_dir`.
pub fn lake_files(table_dir: &Path) -> (usize, usize, usize) {
    let mut per_partition = Vec::new();
    let mut stack = vec![table_dir.to_path_buf()];
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
