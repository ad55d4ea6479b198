//! Where objects go: the key of a data file in the lake bucket, and unique file names.
//!
//! Firehose writes `events/year=YYYY/month=MM/day=DD/hour=HH/<name>` with dynamic
//! partitioning; the local lake mirrors that layout below its directory, so the same queries
//! and the same partition planning run on both.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use lakewatch_plugins::HourPartition;

use crate::schema::{ALERTS, EVENTS, Table};

/// Extension of the lake's data files: gzip NDJSON, as Firehose's GZIP compression writes and
/// as Athena and the local engine expect.
pub const DATA_EXTENSION: &str = "json.gz";

/// The key of a file in `table`'s hour partition: `events/year=2026/month=01/day=31/hour=09/f`.
pub fn object_key(table: &Table, partition: &HourPartition, file: &str) -> String {
    format!("{}/{}/{file}", table.prefix, partition.path())
}

/// The key of an events file in its hour partition.
pub fn events_key(partition: &HourPartition, file: &str) -> String {
    object_key(&EVENTS, partition, file)
}

/// The key of a rule's alerts for the window `[start, end)`:
/// `alerts/year=…/month=…/day=…/hour=…/<rule>-<start>-<end>.json.gz`, in the hour partition of
/// the window's end. One object per rule and window, so evaluating a window again replaces its
/// alerts instead of adding a copy. The detector Lambda and local mode name them the same way.
pub fn alert_object_key(rule_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let compact = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    object_key(
        &ALERTS,
        &HourPartition::of(end),
        &format!(
            "{rule_id}-{}-{}.{DATA_EXTENSION}",
            compact(start),
            compact(end)
        ),
    )
}

/// Lines as the bytes of a data file: gzip NDJSON, one line each.
pub fn gzip_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<u8> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    for line in lines {
        gzip.write_all(line.as_ref().as_bytes())
            .and_then(|()| gzip.write_all(b"\n"))
            .expect("writing to memory does not fail");
    }
    gzip.finish().expect("writing to memory does not fail")
}

/// A file name no other run (or other file of this run) uses:
/// `lakewatch-20260131T094500Z-<pid>-<nanos>-<n>.<extension>`.
///
/// Names sort by creation time, so a listing reads oldest first; the process id, the clock's
/// nanoseconds and a per-process counter keep two runs (even at the same second) apart.
pub fn unique_file_name(now: DateTime<Utc>, extension: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!(
        "lakewatch-{}-{}-{nanos:09}-{n}.{extension}",
        now.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::{Hour, parse_key};
    use crate::schema::ALERTS;

    fn time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-31T09:45:00.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn events_key_is_the_hive_partition_path_firehose_writes() {
        let key = events_key(&HourPartition::of(time()), "f.json.gz");
        assert_eq!(key, "events/year=2026/month=01/day=31/hour=09/f.json.gz");
        assert_eq!(
            object_key(&ALERTS, &HourPartition::of(time()), "a"),
            "alerts/year=2026/month=01/day=31/hour=09/a"
        );
    }

    #[test]
    fn alert_keys_sit_in_the_hour_partition_of_the_window_end() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(
            alert_object_key(
                "brute-force-user",
                at("2026-11-23T23:45:00Z"),
                at("2026-11-24T00:00:00Z")
            ),
            "alerts/year=2026/month=11/day=24/hour=00/brute-force-user-20261123T234500Z-20261124T000000Z.json.gz"
        );
    }

    #[test]
    fn keys_agree_with_the_partition_planner() {
        let key = events_key(&HourPartition::of(time()), "f.json.gz");
        assert_eq!(parse_key(&EVENTS, &key).unwrap(), Hour::containing(time()));
        assert!(key.starts_with(&Hour::containing(time()).prefix(&EVENTS)));
    }

    #[test]
    fn unique_names_differ_within_a_run_and_sort_by_time() {
        let a = unique_file_name(time(), DATA_EXTENSION);
        let b = unique_file_name(time(), DATA_EXTENSION);
        assert_ne!(a, b);
        assert!(a.starts_with("lakewatch-20260131T094500Z-"), "{a}");
        assert!(a.ends_with(".json.gz"));
        let later = unique_file_name(time() + chrono::TimeDelta::hours(1), DATA_EXTENSION);
        assert!(later > a);
    }
}
