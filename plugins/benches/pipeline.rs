//! The full built-in pipeline against its floor, on one core.
//!
//! The corpus (`tests/corpus/mod.rs`) is built at start from every sample source file under
//! `events/`, repeated with varied fields until it holds at least 100,000 records, one per
//! line. Before timing anything, the output on the whole corpus is checked against the stored
//! digests (`tests/corpus/output.digests`): the bench times only a pipeline whose output is
//! byte for byte the reference.
//!
//! - `pipeline/full`: framing + every built-in plugin + serializing each event's lake line.
//! - `pipeline/floor`: `serde_json` parse + serialize of the same records (a raw line is
//!   serialized as a JSON string): what any JSON-in/JSON-out stage must at least spend.
//!
//! After criterion's statistics it prints events/s and MB/s of both and their ratio (the goal
//! is full within 2x of the floor), from the best of five runs of each measured in CPU time
//! of the bench's thread (wall-clock time where Linux's schedstat is missing).
//! Run: `cargo bench -p lakewatch-plugins --bench pipeline`.
//!
//! With `LAKEWATCH_BENCH_PROFILE` set it builds the corpus, runs the full pipeline over it once
//! (the floor with `LAKEWATCH_BENCH_PROFILE=floor`, nothing with `=corpus`) and stops, for a
//! profiler or `time`:
//! `valgrind --tool=callgrind --toggle-collect='pipeline::full*' target/release/deps/pipeline-<hash>`
//! (see docs/firehose-transform.md).
//!
//! Both run with mimalloc as the global allocator, as the transform Lambda does;
//! `--features system-allocator` times them with the system's (glibc's) allocator instead.

#[path = "../tests/corpus/mod.rs"]
mod corpus;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corpus::{Corpus, Digests, Produced};
use criterion::{Criterion, Throughput};
use lakewatch_plugins::{Pipeline, PluginConfig, builtin_pipeline};
use serde_json::Value;

/// The allocator of the binaries that run the pipeline (see the module doc).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    corpus::run(pipeline, corpus, received, &mut out, |out, produced| {
        match produced {
            Produced::Event => counts.ok += 1,
            Produced::Dropped { .. } => counts.dropped += 1,
            Produced::Failed { .. } => counts.failed += 1,
        }
        // Flush as a writer would, so memory stays flat and the copy cost is counted.
        if out.len() > 60 * 1024 {
            counts.output_bytes += out.len();
            black_box(&*out);
            out.clear();
        }
    });
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

/// Best of `runs` timings of `work`: the CPU time this thread spent, where Linux tells it
/// (`/proc/thread-self/schedstat`), so that other processes on a busy machine do not count;
/// wall-clock time otherwise.
fn best_of(runs: usize, mut work: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let (start, cpu_start) = (Instant::now(), cpu_time());
            work();
            match (cpu_start, cpu_time()) {
                (Some(before), Some(after)) => after - before,
                _ => start.elapsed(),
            }
        })
        .min()
        .unwrap()
}

/// The CPU time this thread has run, from the scheduler's statistics.
fn cpu_time() -> Option<Duration> {
    let stats = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stats.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn main() {
    let corpus = Corpus::build();
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    let received = corpus::received();
    if let Some(what) = std::env::var_os("LAKEWATCH_BENCH_PROFILE") {
        if what == "floor" {
            println!("floor: {} bytes out", floor(&corpus.data));
        } else if what == "corpus" {
            println!("corpus only: {} bytes", corpus.data.len());
        } else {
            println!("{:?}", full(&pipeline, &corpus.data, received));
        }
        return;
    }
    // Timing a pipeline whose output changed would compare apples with pears.
    Digests::check(
        &Digests::compute(&pipeline, &corpus, corpus.records),
        &corpus,
    );
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
