//! What writing the lake adds to the pipeline's own cost, on the shape of a historical import
//! (the generated back-fill corpus of [`common`]: 200,000 defendA-based records over 460 hours
//! in random order).
//!
//! Two passes over the same corpus file, in this process, on one core:
//! - **pipeline**: framing + the built-in pipeline + serializing each event's lake line;
//! - **pipeline + lake**: the same, each event written by [`LakeWriter`] into an empty lake,
//!   finished (compressed, flushed to disk, published).
//!
//! It prints both CPU times (user + system), the lake's overhead (the goal is at most 30%), the
//! files and partitions written and the wall time. Linux only (CPU times from `/proc`).
//! Run: `cargo bench -p lakewatch-lake --bench writer` (`LAKEWATCH_BENCH_RECORDS=N` for another
//! size). `benches/ingest.rs` at the root measures the whole `lakewatch ingest` command.

#[path = "common.rs"]
mod common;

use std::fs;
use std::path::PathBuf;

use chrono::Utc;
use common::{corpus, for_each_event, lake_files, measure, pipeline_only};
use lakewatch_lake::LocalLake;
use lakewatch_lake::schema::EVENTS;

/// The allocator of the `lakewatch` binary (src/main.rs), which runs this writer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lake-writer-bench");
    let corpus = corpus(&work);
    let (events, pipeline_cpu) = pipeline_only(&corpus);
    let dir = work.join("lake");
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    let lake = LocalLake::open(&dir).unwrap();
    let ((), lake_cpu, wall) = measure(|| {
        let mut writer = lake.writer(Utc::now());
        for_each_event(&corpus, |event| writer.write_event(&event).unwrap());
        writer.finish().unwrap();
    });
    let (files, partitions, most) = lake_files(&lake.table_dir(&EVENTS));
    println!(
        "pipeline + lake: CPU {:.2} s = {:.0} events/s, wall {:.2} s",
        lake_cpu.as_secs_f64(),
        events as f64 / lake_cpu.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!("lake: {files} files in {partitions} hour partitions (at most {most} in one)");
    println!(
        "lake overhead: {:+.0}% of the pipeline's CPU",
        (lake_cpu.as_secs_f64() / pipeline_cpu.as_secs_f64() - 1.0) * 100.0
    );
}
