//! How many events the lake received per source, host and hour: the counters that silence
//! rules read instead of the events themselves (`lakewatch_detect::silence`).
//!
//! The local lake writer counts every event it writes ([`HourlyCounts::add`]) and adds its
//! counts to one small document per day (UTC) when it publishes its files, at each checkpoint
//! ([`add_to_lake`]): `LAKE/state/counts/events-YYYY-MM-DD.json`
//! ([`crate::layout::source_counts_document`]), written with compare-and-swap, so two ingests
//! into one lake both add theirs. Every local ingest (files, stdin, an S3 pull) goes through
//! the writer, so the counters cover them all. A reader ([`LocalSourceCounts`]) reads one
//! document per day it looks at, whatever the volume of the events.
//!
//! The counts are added right after the files they count are published: a run killed between
//! the two leaves those events uncounted (a silence rule may then see a dip that is not
//! there), never counted without their events.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use hashbrown::{Equivalent, HashMap};
use serde::{Deserialize, Serialize};

use crate::layout::{SOURCE_COUNTS_COMPONENT, source_counts_document};
use crate::local::state_dir;
use crate::partitions::Hour;
use crate::versioned::{FileStore, WriteError};

/// How many times an update is retried when another run changed the document meanwhile.
const CONFLICT_RETRIES: usize = 50;

/// One day's counts: source → hostname (`""` for events without one) → events in each hour
/// (UTC, index 0 is 00:00–01:00).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    pub sources: BTreeMap<String, BTreeMap<String, [u64; 24]>>,
}

impl DayCounts {
    fn add(&mut self, source: &str, host: &str, hour: u32, count: u64) {
        let hours = self
            .sources
            .entry(source.to_string())
            .or_default()
            .entry(host.to_string())
            .or_insert([0; 24]);
        hours[hour as usize] += count;
    }
}

/// Counts of one run not yet added to the lake's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourlyCounts {
    counts: HashMap<(String, String, Hour), u64>,
}

/// A count's key as an event lends it: looked up without copying the source and host, which
/// the writer does once per event (two allocations per event before).
#[derive(Hash)]
struct BorrowedKey<'a>(&'a str, &'a str, Hour);

/// Hashes as the owned key does: a tuple struct hashes its fields in order, as a tuple does,
/// and `str` hashes as `String`.
impl Equivalent<(String, String, Hour)> for BorrowedKey<'_> {
    fn equivalent(&self, key: &(String, String, Hour)) -> bool {
        self.0 == key.0 && self.1 == key.1 && self.2 == key.2
    }
}

impl HourlyCounts {
    /// Counts one event of `source` from `host` in `hour`.
    pub fn add(&mut self, source: &str, host: &str, hour: Hour) {
        match self.counts.get_mut(&BorrowedKey(source, host, hour)) {
            Some(count) => *count += 1,
            None => {
                self.counts
                    .insert((source.to_string(), host.to_string(), hour), 1);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The counts grouped by day, as the documents keep them.
    fn by_day(&self) -> BTreeMap<NaiveDate, DayCounts> {
        let mut days: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
        for ((source, host, hour), count) in &self.counts {
            let start = hour.start();
            days.entry(start.date_naive())
                .or_default()
                .add(source, host, start.hour(), *count);
        }
        days
    }
}

/// The store of a lake's count documents: `LAKE/state/counts/`.
pub fn counts_store(lake_root: &Path) -> FileStore {
    FileStore::new(state_dir(lake_root, SOURCE_COUNTS_COMPONENT))
}

/// Adds a run's counts to the lake's documents, one compare-and-swap per day touched.
pub fn add_to_lake(lake_root: &Path, counts: &HourlyCounts) -> Result<(), String> {
    let store = counts_store(lake_root);
    for (day, added) in counts.by_day() {
        let name = source_counts_document(day);
        let mut written = false;
        for _ in 0..CONFLICT_RETRIES {
            let (mut document, version) = read_day(&store, day)?;
            for (source, hosts) in &added.sources {
                for (host, hours) in hosts {
                    for (hour, count) in hours.iter().enumerate() {
                        if *count > 0 {
                            document.add(source, host, hour as u32, *count);
                        }
                    }
                }
            }
            let bytes = serde_json::to_vec(&document).expect("counts serialize");
            match store.write_now(&name, &bytes, version.as_deref()) {
                Ok(_) => {
                    written = true;
                    break;
                }
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Failed(e)) => {
                    return Err(format!("{}: {e}", location(&store, day)));
                }
            }
        }
        if !written {
            return Err(format!(
                "{}: changed by other runs {CONFLICT_RETRIES} times in a row; these counts were \
                 not added",
                location(&store, day)
            ));
        }
    }
    Ok(())
}

fn location(store: &FileStore, day: NaiveDate) -> String {
    store
        .path(&source_counts_document(day))
        .display()
        .to_string()
}

/// A day's document and its version; an empty one when the lake has none.
fn read_day(store: &FileStore, day: NaiveDate) -> Result<(DayCounts, Option<String>), String> {
    let Some(read) = store
        .read_now(&source_counts_document(day))
        .map_err(|e| format!("{}: {e}", location(store, day)))?
    else {
        return Ok((DayCounts::default(), None));
    };
    let document = serde_json::from_slice(&read.bytes).map_err(|e| {
        format!(
            "{}: not a counts document ({e}); delete it to count that day from now on",
            location(store, day)
        )
    })?;
    Ok((document, Some(read.version)))
}

/// Events per hour of one source: host (`""` when not counted per host) → hour start → count.
/// Hours without events are absent.
pub type HostHours = BTreeMap<String, BTreeMap<DateTime<Utc>, u64>>;

/// Reads a local lake's counters.
#[derive(Debug, Clone)]
pub struct LocalSourceCounts {
    store: FileStore,
}

impl LocalSourceCounts {
    pub fn new(lake_root: &Path) -> Self {
        LocalSourceCounts {
            store: counts_store(lake_root),
        }
    }

    /// Events of `source` per hour in `[from, to)` (whole hours), per host when `per_host`,
    /// else all hosts together under `""`. Reads one document per day of the range.
    pub fn hourly(
        &self,
        source: &str,
        per_host: bool,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HostHours, String> {
        let mut out = HostHours::new();
        let mut day = from.date_naive();
        while day <= (to - TimeDelta::nanoseconds(1)).date_naive() {
            let (document, _) = read_day(&self.store, day)?;
            for (host, hours) in document.sources.get(source).into_iter().flatten() {
                for (hour, count) in hours.iter().enumerate() {
                    let start = Hour::from_date_hour(day, hour as u32)
                        .expect("0-23 is an hour")
                        .start();
                    if *count == 0 || start < from || start >= to {
                        continue;
                    }
                    let host = if per_host { host.as_str() } else { "" };
                    *out.entry(host.to_string())
                        .or_default()
                        .entry(start)
                        .or_insert(0) += count;
                }
            }
            day = day.succ_opt().expect("dates stay in range");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hour(text: &str) -> Hour {
        Hour::containing(at(text))
    }

    #[test]
    fn runs_add_up_per_source_host_and_hour_across_days() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = HourlyCounts::default();
        first.add("syslog", "web-1", hour("2026-11-20T23:10:00Z"));
        first.add("syslog", "web-1", hour("2026-11-20T23:50:00Z"));
        first.add("syslog", "web-2", hour("2026-11-21T00:05:00Z"));
        first.add("cloudtrail", "", hour("2026-11-21T00:05:00Z"));
        add_to_lake(dir.path(), &first).unwrap();
        let mut second = HourlyCounts::default();
        second.add("syslog", "web-1", hour("2026-11-20T23:00:00Z"));
        add_to_lake(dir.path(), &second).unwrap();
        assert!(
            dir.path()
                .join("state/counts/events-2026-11-20.json")
                .is_file()
        );

        let counts = LocalSourceCounts::new(dir.path());
        let (from, to) = (at("2026-11-20T00:00:00Z"), at("2026-11-22T00:00:00Z"));
        let hosts = counts.hourly("syslog", true, from, to).unwrap();
        assert_eq!(
            hosts["web-1"],
            BTreeMap::from([(at("2026-11-20T23:00:00Z"), 3)])
        );
        assert_eq!(
            hosts["web-2"],
            BTreeMap::from([(at("2026-11-21T00:00:00Z"), 1)])
        );
        let all = counts.hourly("syslog", false, from, to).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), [""]);
        assert_eq!(all[""].values().sum::<u64>(), 4);
        // The range is respected to the hour; unknown sources have no hours.
        let late = counts
            .hourly("syslog", false, at("2026-11-21T00:00:00Z"), to)
            .unwrap();
        assert_eq!(late[""].len(), 1);
        assert!(
            counts
                .hourly("vpcflow", false, from, to)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn concurrent_runs_lose_no_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let mut counts = HourlyCounts::default();
                    for _ in 0..10 {
                        counts.add("s", "h", hour("2026-11-20T10:00:00Z"));
                    }
                    add_to_lake(dir.path(), &counts).unwrap();
                });
            }
        });
        let hours = LocalSourceCounts::new(dir.path())
            .hourly(
                "s",
                false,
                at("2026-11-20T00:00:00Z"),
                at("2026-11-21T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(hours[""][&at("2026-11-20T10:00:00Z")], 40);
    }

    #[test]
    fn a_corrupt_document_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = counts_store(dir.path());
        std::fs::create_dir_all(store.path("x").parent().unwrap()).unwrap();
        std::fs::write(store.path("events-2026-11-20.json"), "nope").unwrap();
        let error = LocalSourceCounts::new(dir.path())
            .hourly(
                "s",
                false,
                at("2026-11-20T00:00:00Z"),
                at("2026-11-21T00:00:00Z"),
            )
            .unwrap_err();
        assert!(
            error.contains("events-2026-11-20.json: not a counts document"),
            "{error}"
        );
    }
}
