//! Helpers for tests that run real components: servers started on free ports, waited for,
//! and always stopped.

pub mod fake_firehose;
pub mod moto;
pub mod runtime_api;

/// The peak resident memory of process `pid` so far, in KiB (`VmHWM` from `/proc/<pid>/status`,
/// what `/usr/bin/time -v` calls "Maximum resident set size"). Linux only.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}
