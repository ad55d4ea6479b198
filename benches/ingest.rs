//! `lakewatch ingest` end to end on the shape of a historical import, against the pipeline's
//! own cost on the same records.
//!
//! The corpus is generated (deterministically, never committed) by
//! `crates/lake/benches/common.rs` from defendA's samples in `events/defenda/`: 200,000 NDJSON
//! records (CloudFront, CloudTrail, G Suite, syslog, VPC flow log) with times spread over 460
//! consecutive hours in random order, as in a back-fill of months of logs.
//!
//! Two measurements, both on one core:
//! - **pipeline**: framing + the built-in pipeline + serializing each event's lake line, in this
//!   process, nothing written (the cost `cargo bench -p lakewatch-plugins --bench pipeline`
//!   measures, on this corpus).
//! - **cli**: the `lakewatch` binary ingesting the corpus file into an empty lake, as a user runs
//!   it: CPU user + system of the child process, wall time, peak memory, and the files and
//!   hour partitions it wrote.
//!
//! Each side runs three times and keeps its least CPU time (`common::RUNS`). Each CLI run
//! writes a lake of its own, and the lakes are removed only after the last run: on an ext4
//! file system without a journal (this project's build machines), creating a file scans past
//! the inodes deleted in the last minute or more, which cost the run after a removal about a
//! tenth of the lake's overhead, a cost of the bench rather than of ingesting.
//! Both sides run on mimalloc, the `lakewatch` binary's allocator.
//! It prints both and the lake's overhead: CLI CPU / pipeline CPU - 1, and fails (exit 1) when a
//! goal of issue #13 is missed: the overhead is at most [`MAX_OVERHEAD`], and no partition gets
//! more than [`MAX_FILES_PER_PARTITION`] files (files are bounded by size and checkpoints, not by
//! arrival order).
//! Linux only (CPU times and memory from `/proc`). Run: `cargo bench --bench ingest`
//! (`LAKEWATCH_BENCH_RECORDS=N` for another corpus size).

#[path = "../crates/lake/benches/common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{RUNS, Usage, corpus, lake_files, pipeline_only};

/// The allocator of the `lakewatch` binary (src/main.rs), so both sides allocate alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What writing the lake may add to the pipeline's own CPU cost.
const MAX_OVERHEAD: f64 = 0.30;
/// Files one partition may get from one run of this corpus ("a few").
const MAX_FILES_PER_PARTITION: usize = 3;

fn main() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ingest-bench");
    let corpus = corpus(&work);
    let lakes: Vec<PathBuf> = (0..RUNS)
        .map(|run| work.join(format!("lake-{run}")))
        .collect();
    remove(&lakes);
    let (events, pipeline_cpu) = pipeline_only(&corpus);
    let (cli, lake) = lakes
        .iter()
        .map(|lake| (ingest(lake, &corpus), lake))
        .min_by_key(|(run, _)| run.user + run.sys)
        .expect("RUNS is not 0");
    let CliRun {
        wall,
        user,
        sys,
        peak_rss_mib,
    } = cli;
    let cpu = user + sys;
    let (files, partitions, most) = lake_files(&lake.join("events"));
    remove(&lakes);
    println!(
        "cli: wall {:.2} s, CPU {:.2} s (user {:.2} + sys {:.2}) = {:.0} events/s of CPU, \
         {:.0} events/s wall, peak RSS {peak_rss_mib} MiB (best of {RUNS})",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        user.as_secs_f64(),
        sys.as_secs_f64(),
        events as f64 / cpu.as_secs_f64(),
        events as f64 / wall.as_secs_f64(),
    );
    println!("lake: {files} files in {partitions} hour partitions (at most {most} in one)");
    let overhead = cpu.as_secs_f64() / pipeline_cpu.as_secs_f64() - 1.0;
    println!(
        "lake overhead: CLI CPU / pipeline CPU = {:.2} ({:+.0}%; goal at most {:+.0}%)",
        1.0 + overhead,
        overhead * 100.0,
        MAX_OVERHEAD * 100.0
    );
    let mut missed = Vec::new();
    if overhead > MAX_OVERHEAD {
        missed.push(format!(
            "writing the lake adds {:.0}% to the pipeline's CPU (goal: at most {:.0}%)",
            overhead * 100.0,
            MAX_OVERHEAD * 100.0
        ));
    }
    if most > MAX_FILES_PER_PARTITION {
        missed.push(format!(
            "a partition got {most} files (goal: at most {MAX_FILES_PER_PARTITION})"
        ));
    }
    if !missed.is_empty() {
        eprintln!("goal missed: {}", missed.join("; "));
        std::process::exit(1);
    }
    println!("goals met");
}

/// One `lakewatch ingest` of the corpus into an empty lake, as its user would run it.
struct CliRun {
    wall: Duration,
    user: Duration,
    sys: Duration,
    peak_rss_mib: u64,
}

/// Removes the lakes of the CLI's runs (of this or an earlier bench).
fn remove(lakes: &[PathBuf]) {
    for lake in lakes.iter().filter(|lake| lake.exists()) {
        fs::remove_dir_all(lake).unwrap();
    }
}

/// Ingests the corpus into `lake`, which does not exist yet.
fn ingest(lake: &Path, corpus: &Path) -> CliRun {
    let before = Usage::now();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lakewatch"))
        .args(["ingest", "--quiet", "--lake"])
        .arg(lake)
        .arg(corpus)
        .env_remove("LAKEWATCH_GEOIP_CITY_DATABASE")
        .env_remove("LAKEWATCH_GEOIP_ASN_DATABASE")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak_rss_mib) = wait_peak_rss(&mut child);
    let wall = start.elapsed();
    let after = Usage::now();
    assert!(status.success(), "lakewatch ingest failed: {status}");
    CliRun {
        wall,
        user: after.children_user - before.children_user,
        sys: after.children_sys - before.children_sys,
        peak_rss_mib,
    }
}

/// The child's peak resident memory (VmHWM), sampled until it exits, in MiB.
fn wait_peak_rss(child: &mut std::process::Child) -> (std::process::ExitStatus, u64) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(status) = fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak_kib / 1024);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
