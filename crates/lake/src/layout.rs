//! Where objects go: the key of a data file in the lake bucket, and unique file names.
//!
//! Firehose writes `events/year=YYYY/month=MM/day=DD/hour=HH/<name>` with dynamic
//! partitioning; the local lake mirrors that layout below its directory, so the same queries
//! and the same partition planning run on both.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::partitions::{Hour, Slice};
use crate::schema::{ALERTS, EVENTS, EXTRACT, Table};

/// Where `terraform apply` puts the content (rules, sources, saved queries) in the lake bucket,
/// for the Lambdas to read at cold start.
pub const CONTENT_PREFIX: &str = "content/";

/// The key of one kind of content's bundle below a content prefix (`content/rules.json`): one
/// object per kind, so a Lambda reads only what it runs, in one request.
pub fn content_bundle_key(prefix: &str, kind: lakewatch_plugins::content::Kind) -> String {
    format!("{prefix}{}.json", kind.name())
}

/// Extension of the lake's data files: gzip NDJSON, as Firehose's GZIP compression writes and
/// as Athena and the local engine expect.
pub const DATA_EXTENSION: &str = "json.gz";

/// Suffix of a file being written: every reader of the lake skips it (the local engine,
/// [`LocalLake`](crate::LocalLake)), the writer renames it away when the file is complete, and
/// a later run removes one whose writer is gone ([`is_stale_temporary`]).
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// How long a temporary file of another process is kept when this system cannot tell whether
/// that process still runs (no `/proc`).
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The key of a file in `table`'s hour partition: `events/year=2026/month=01/day=31/hour=09/f`.
pub fn object_key(table: &Table, partition: Hour, file: &str) -> String {
    format!("{}/{partition}/{file}", table.prefix)
}

/// The key of an events file in its hour partition.
pub fn events_key(partition: Hour, file: &str) -> String {
    object_key(&EVENTS, partition, file)
}

/// The key of a rule's alerts for one window:
/// `alerts/year=…/month=…/day=…/hour=…/<rule>-<start>-<end>.json.gz`, in the hour partition of
/// the window's end. One object per rule and window, so evaluating a window again replaces its
/// alerts instead of adding a copy. The detector Lambda (in the bucket) and local mode (below
/// the lake directory) use the same key.
pub fn alert_object_key(rule_id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let compact = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    object_key(
        &ALERTS,
        Hour::containing(end),
        &format!(
            "{rule_id}-{}-{}.{DATA_EXTENSION}",
            compact(start),
            compact(end)
        ),
    )
}

/// How the objects of the detection extract ([`EXTRACT`]) are compressed. Athena chooses the
/// codec of a text file by its extension, so the format is part of the key
/// ([`extract_object_key`]); the local engine reads either by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    /// NDJSON in gzip (`.json.gz`): what extracts written before zstd hold. An object
    /// extracted this way keeps it when it is extracted again, so its new parts replace the
    /// old ones instead of landing beside them under other names.
    Gzip,
    /// NDJSON in zstd (`.json.zst`): every rule query reads the extract and Athena bills its
    /// compressed bytes, and zstd makes a day's extract a fifth smaller than gzip does.
    Zstd,
}

impl ExtractFormat {
    /// The extension of its objects' names.
    pub fn extension(self) -> &'static str {
        match self {
            ExtractFormat::Gzip => DATA_EXTENSION,
            ExtractFormat::Zstd => "json.zst",
        }
    }
}

/// The key of one part of the detection extract ([`EXTRACT`]): the events of the lake object
/// `source` (a key below `events/`) whose own time falls in `slice`, the `part`-th object of
/// that slice (an object's slice is written in parts when it does not fit the extract's
/// buffer), in `format`:
/// `extract/events/year=…/hour=09/minute=15/year=2026_month=11_day=20_hour=07_f.p0.json.zst`.
///
/// Named after the source, so extracting an object again replaces its parts instead of adding
/// copies; the same key in the lake bucket and below a local lake's directory.
pub fn extract_object_key(
    source: &str,
    slice: Slice,
    part: usize,
    format: ExtractFormat,
) -> String {
    let name = source
        .strip_prefix(EVENTS.prefix)
        .unwrap_or(source)
        .trim_start_matches('/');
    let stem = name
        .strip_suffix(DATA_EXTENSION)
        .or_else(|| name.strip_suffix("gz"))
        .map_or(name, |stem| stem.trim_end_matches('.'))
        .replace('/', "_");
    format!(
        "{}/{slice}/{stem}.p{part}.{}",
        EXTRACT.prefix,
        format.extension()
    )
}

/// The name of a rule's baseline document in the detector's versioned state store
/// (`LAKE/state/detector/` locally, the state prefix of the lake bucket on AWS):
/// `baselines/<rule>.json.gz`, gzip JSON, written with compare-and-swap like the watermarks.
pub fn baseline_document(rule_id: &str) -> String {
    format!("baselines/{rule_id}.json.gz")
}

/// The component (below `LAKE/state/`) whose documents count the lake's events per source,
/// host and hour ([`crate::counts`]).
pub const SOURCE_COUNTS_COMPONENT: &str = "counts";

/// The name of one day's counts document: `events-YYYY-MM-DD.json` (UTC day), JSON.
pub fn source_counts_document(day: chrono::NaiveDate) -> String {
    format!("events-{}.json", day.format("%Y-%m-%d"))
}

/// The name of the delivery outbox in the detector's versioned state store (beside the rule
/// states: `LAKE/state/detector/` locally, the state prefix of the lake bucket on AWS): every
/// alert × destination with its delivery state, JSON, written with compare-and-swap.
pub const OUTBOX_DOCUMENT: &str = "outbox/deliveries.json";

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

/// How a failed record's bytes are kept in an error line, the same in the local lake's
/// `errors/` and the S3-ingest Lambda's error location: `("record", text)` when they are UTF-8,
/// else `("record_base64", standard padded base64)` (as Firehose keeps a failed record's
/// `rawData`), so not a byte is lost and a replay decodes one known format. `None` when no
/// bytes were kept (an oversize record: the line has an `excerpt` instead).
pub fn failed_record_field(raw: &[u8]) -> Option<(&'static str, serde_json::Value)> {
    if raw.is_empty() {
        return None;
    }
    Some(match std::str::from_utf8(raw) {
        Ok(text) => ("record", text.into()),
        Err(_) => {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            ("record_base64", encoded.into())
        }
    })
}

/// The name a file has while it is written: `<name>.tmp`.
pub fn temporary_name(file: &str) -> String {
    format!("{file}{TEMPORARY_SUFFIX}")
}

/// Whether readers take a file of a partition directory as data: not a temporary, and not
/// hidden (`.name`) or underscore (`_SUCCESS`) files, which Hive and Athena skip too.
pub fn is_data_file_name(name: &str) -> bool {
    !(name.starts_with('.') || name.starts_with('_') || name.ends_with(TEMPORARY_SUFFIX))
}

/// Whether `name` is a temporary file a lakewatch writer left behind: named by
/// [`unique_file_name`] + [`TEMPORARY_SUFFIX`], by a process that no longer runs (or, where
/// that cannot be known, last modified more than a day before `now`). A run in progress keeps
/// its own temporaries; another live run's are never touched.
pub fn is_stale_temporary(name: &str, modified: SystemTime, now: SystemTime) -> bool {
    let Some(pid) = name
        .strip_suffix(TEMPORARY_SUFFIX)
        .and_then(|name| name.strip_prefix("lakewatch-"))
        .and_then(|rest| rest.split('-').nth(1))
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    if Path::new("/proc/self").exists() {
        return !Path::new("/proc").join(pid.to_string()).exists();
    }
    now.duration_since(modified)
        .is_ok_and(|age| age > STALE_AFTER)
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
    use crate::partitions::parse_key;

    fn time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-31T09:45:00.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn events_key_is_the_hive_partition_path_firehose_writes() {
        let key = events_key(Hour::containing(time()), "f.json.gz");
        assert_eq!(key, "events/year=2026/month=01/day=31/hour=09/f.json.gz");
        assert_eq!(
            object_key(&ALERTS, Hour::containing(time()), "a"),
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
    fn extract_keys_name_their_source_and_part_under_the_events_quarter_hour() {
        let slice = Slice::containing(time());
        let source = "events/year=2026/month=01/day=31/hour=07/lakewatch-1-2026.json.gz";
        assert_eq!(
            extract_object_key(source, slice, 0, ExtractFormat::Zstd),
            format!(
                "extract/events/year=2026/month=01/day=31/hour=09/minute={}/\
                 year=2026_month=01_day=31_hour=07_lakewatch-1-2026.p0.json.zst",
                slice.minute()
            )
        );
        assert!(
            extract_object_key(source, slice, 1, ExtractFormat::Zstd)
                .ends_with("-2026.p1.json.zst")
        );
        // An object first extracted in gzip keeps the names it had.
        assert!(
            extract_object_key(source, slice, 1, ExtractFormat::Gzip).ends_with("-2026.p1.json.gz")
        );
        assert_eq!(
            parse_key(
                &EXTRACT,
                &extract_object_key(source, slice, 0, ExtractFormat::Zstd)
            ),
            Ok(slice.hour())
        );
    }

    #[test]
    fn keys_agree_with_the_partition_planner() {
        let key = events_key(Hour::containing(time()), "f.json.gz");
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

    #[test]
    fn temporaries_are_skipped_and_only_a_gone_writers_are_stale() {
        let name = unique_file_name(time(), DATA_EXTENSION);
        assert!(is_data_file_name(&name));
        let temporary = temporary_name(&name);
        assert!(!is_data_file_name(&temporary));
        assert!(!is_data_file_name(".hidden.json.gz") && !is_data_file_name("_SUCCESS"));
        let now = SystemTime::now();
        assert!(
            !is_stale_temporary(&temporary, now, now),
            "this process is running"
        );
        let gone = temporary.replace(&format!("-{}-", std::process::id()), "-999999999-");
        assert_ne!(gone, temporary);
        let day_old = now - STALE_AFTER - Duration::from_secs(1);
        assert!(is_stale_temporary(&gone, day_old, now));
        assert!(!is_stale_temporary(
            "someone-else.json.gz.tmp",
            day_old,
            now
        ));
        assert!(!is_stale_temporary(&name, day_old, now), "not a temporary");
    }
}
