//! A lake in a directory, laid out as Firehose lays out the bucket, so the local engine, the
//! partition planner and people with `zcat | jq` read it the same way:
//!
//! ```text
//! DIR/events/year=YYYY/month=MM/day=DD/hour=HH/lakewatch-…-N.json.gz   gzip NDJSON events
//! DIR/errors/year=YYYY/month=MM/day=DD/hour=HH/lakewatch-…-N.json      failed records (NDJSON)
//! ```
//!
//! Events are partitioned by event time; errors by the time the run failed them. A run writes
//! new files with unique names (never appending to or overwriting another run's files), keeps
//! one gzip writer open per partition while it runs, and publishes each file by renaming it
//! from `….partial` when it is complete, so a reader never sees half a gzip stream.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use lakewatch_plugins::shell::format_timestamp;
use lakewatch_plugins::{Event, HourPartition};
use serde_json::{Map, Value};

use crate::layout::{DATA_EXTENSION, object_key, unique_file_name};
use crate::schema::{EVENTS, Table};

/// Directory (below the lake) of records that failed, with their reasons.
pub const ERRORS_DIR: &str = "errors";
/// Suffix of a file still being written.
const PARTIAL_SUFFIX: &str = ".partial";
/// Partitions written at once; beyond this the least recently used file is completed and a
/// later event for its hour starts a new file, so a back-fill over years of hours never runs
/// out of file handles.
const MAX_OPEN_FILES: usize = 64;

/// What went wrong reading or writing the lake, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}:{line}: not a JSON line ({source})", path.display())]
    Json {
        path: PathBuf,
        line: u64,
        source: serde_json::Error,
    },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A lake on disk.
#[derive(Debug, Clone)]
pub struct LocalLake {
    root: PathBuf,
}

impl LocalLake {
    /// The lake in `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalLake, LakeError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(at(&root))?;
        Ok(LocalLake { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a table (`DIR/events`), the root of its partitions.
    pub fn table_dir(&self, table: &Table) -> PathBuf {
        self.root.join(table.prefix)
    }

    pub fn errors_dir(&self) -> PathBuf {
        self.root.join(ERRORS_DIR)
    }

    /// A writer for one run; `now` names its files and dates its errors.
    pub fn writer(&self, now: DateTime<Utc>) -> LakeWriter<'_> {
        LakeWriter {
            lake: self,
            now,
            open: HashMap::new(),
            tick: 0,
            written: Vec::new(),
            errors: None,
            scratch: Vec::new(),
        }
    }

    /// The complete data files of a table, in path order.
    pub fn data_files(&self, table: &Table) -> Result<Vec<PathBuf>, LakeError> {
        let suffix = format!(".{DATA_EXTENSION}");
        Ok(files_under(&self.table_dir(table))?
            .into_iter()
            .filter(|path| path.to_string_lossy().ends_with(&suffix))
            .collect())
    }

    /// Every event of the lake, in file order then line order.
    pub fn read_events(&self) -> Result<Vec<Value>, LakeError> {
        let mut events = Vec::new();
        for path in self.data_files(&EVENTS)? {
            let file = File::open(&path).map_err(at(&path))?;
            read_json_lines(
                &path,
                BufReader::new(MultiGzDecoder::new(file)),
                &mut events,
            )?;
        }
        Ok(events)
    }

    /// Every failed record written to the lake's error location.
    pub fn read_errors(&self) -> Result<Vec<Value>, LakeError> {
        let mut errors = Vec::new();
        for path in files_under(&self.errors_dir())? {
            if path.extension().is_some_and(|e| e == "json") {
                let file = File::open(&path).map_err(at(&path))?;
                read_json_lines(&path, BufReader::new(file), &mut errors)?;
            }
        }
        Ok(errors)
    }
}

fn read_json_lines(
    path: &Path,
    reader: impl BufRead,
    out: &mut Vec<Value>,
) -> Result<(), LakeError> {
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(at(path))?;
        if line.is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line).map_err(|source| LakeError::Json {
                path: path.to_path_buf(),
                line: n as u64 + 1,
                source,
            })?,
        );
    }
    Ok(())
}

/// Every file below `dir` (recursively), in path order; an empty list when `dir` is missing.
/// Hidden files and directories (`.name`) are skipped, as editors and tools leave them around.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let mut files = Vec::new();
    if dir.exists() {
        collect_files(dir, &mut files)?;
    }
    files.sort();
    Ok(files)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LakeError> {
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let path = entry.map_err(at(dir))?.path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// A record that failed, as the error location keeps it.
#[derive(Debug, Clone, Copy)]
pub struct FailedRecord<'a> {
    /// Where the record came from: a file path, `stdin`, `s3://bucket/key#version`.
    pub source: &'a str,
    /// 1-based line and byte offset of the record in its (decompressed) source.
    pub line: u64,
    pub offset: u64,
    pub reason: &'a str,
    /// The record's bytes, kept whole so it can be fixed and replayed (empty when not kept).
    pub raw: &'a [u8],
    /// The start of the record, for when `raw` could not be kept (an oversize record).
    pub excerpt: &'a str,
}

impl FailedRecord<'_> {
    /// The error line: `reason`, position, and the record as text, or as hex when it is not
    /// UTF-8 (so not a byte is lost).
    pub fn to_json(&self, failed_at: DateTime<Utc>) -> Value {
        let mut entry = Map::new();
        entry.insert("failedtimestamp".into(), format_timestamp(failed_at).into());
        entry.insert("source".into(), self.source.into());
        entry.insert("line".into(), self.line.into());
        entry.insert("offset".into(), self.offset.into());
        entry.insert("reason".into(), self.reason.into());
        match std::str::from_utf8(self.raw) {
            _ if self.raw.is_empty() => {
                entry.insert("excerpt".into(), self.excerpt.into());
            }
            Ok(text) => {
                entry.insert("record".into(), text.into());
            }
            Err(_) => {
                let hex: String = self.raw.iter().map(|b| format!("{b:02x}")).collect();
                entry.insert("record_hex".into(), hex.into());
            }
        }
        Value::Object(entry)
    }
}

/// One data file written by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub table: &'static str,
    pub partition: HourPartition,
    pub path: PathBuf,
    pub lines: u64,
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Data files, in the order they were completed.
    pub files: Vec<WrittenFile>,
    /// The error file and how many failed records it holds.
    pub errors: Option<(PathBuf, u64)>,
}

impl WriteSummary {
    /// Lines written to `table`.
    pub fn lines(&self, table: &Table) -> u64 {
        self.files
            .iter()
            .filter(|f| f.table == table.prefix)
            .map(|f| f.lines)
            .sum()
    }

    /// The distinct partitions written to `table`, sorted.
    pub fn partitions(&self, table: &Table) -> Vec<HourPartition> {
        let mut partitions: Vec<_> = self
            .files
            .iter()
            .filter(|f| f.table == table.prefix)
            .map(|f| f.partition.clone())
            .collect();
        partitions.sort();
        partitions.dedup();
        partitions
    }
}

struct OpenFile {
    path: PathBuf,
    partial: PathBuf,
    encoder: GzEncoder<BufWriter<File>>,
    lines: u64,
    last_used: u64,
}

impl OpenFile {
    /// Completes the gzip stream, flushes and publishes the file under its final name.
    fn finish(self) -> Result<(PathBuf, u64), LakeError> {
        let buffered = self.encoder.finish().map_err(at(&self.partial))?;
        let file = buffered.into_inner().map_err(|e| LakeError::Io {
            path: self.partial.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(at(&self.partial))?;
        fs::rename(&self.partial, &self.path).map_err(at(&self.path))?;
        Ok((self.path, self.lines))
    }
}

/// Writes one run's events and failed records into a [`LocalLake`]. Call
/// [`finish`](Self::finish) to complete the files; a writer dropped without it still completes
/// what it can, so written events are not lost on an early return.
pub struct LakeWriter<'a> {
    lake: &'a LocalLake,
    now: DateTime<Utc>,
    open: HashMap<(&'static str, HourPartition), OpenFile>,
    tick: u64,
    written: Vec<WrittenFile>,
    errors: Option<(PathBuf, BufWriter<File>, u64)>,
    scratch: Vec<u8>,
}

impl LakeWriter<'_> {
    /// Appends an event to its hour partition (by event time).
    pub fn write_event(&mut self, event: &Event) -> Result<(), LakeError> {
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        event.write_json_line(&mut line);
        let result = self.write_line(&EVENTS, &event.partition(), &line);
        self.scratch = line;
        result
    }

    /// Appends one newline-terminated JSON line to `table`'s `partition`.
    pub fn write_line(
        &mut self,
        table: &Table,
        partition: &HourPartition,
        line: &[u8],
    ) -> Result<(), LakeError> {
        self.tick += 1;
        let key = (table.prefix, partition.clone());
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.close_least_recent()?;
            }
            let file = self.create(table, partition)?;
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(&key).expect("inserted above");
        file.last_used = self.tick;
        file.lines += 1;
        file.encoder.write_all(line).map_err(at(&file.partial))
    }

    fn create(&self, table: &Table, partition: &HourPartition) -> Result<OpenFile, LakeError> {
        let name = unique_file_name(self.now, DATA_EXTENSION);
        let path = self.lake.root.join(object_key(table, partition, &name));
        let dir = path.parent().expect("a key has directories");
        fs::create_dir_all(dir).map_err(at(dir))?;
        let partial = dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = File::create_new(&partial).map_err(at(&partial))?;
        Ok(OpenFile {
            path,
            partial,
            encoder: GzEncoder::new(BufWriter::new(file), Compression::default()),
            lines: 0,
            last_used: 0,
        })
    }

    fn close_least_recent(&mut self) -> Result<(), LakeError> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, file)| file.last_used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            let file = self.open.remove(&key).expect("key from the map");
            self.publish(key, file)?;
        }
        Ok(())
    }

    fn publish(
        &mut self,
        (table, partition): (&'static str, HourPartition),
        file: OpenFile,
    ) -> Result<(), LakeError> {
        let (path, lines) = file.finish()?;
        self.written.push(WrittenFile {
            table,
            partition,
            path,
            lines,
        });
        Ok(())
    }

    /// Keeps a failed record with its reason; returns the error file it went to.
    pub fn write_error(&mut self, failed: &FailedRecord<'_>) -> Result<&Path, LakeError> {
        if self.errors.is_none() {
            let name = unique_file_name(self.now, "json");
            let partition = HourPartition::of(self.now);
            let path = self.lake.errors_dir().join(partition.path()).join(name);
            let dir = path.parent().expect("the path has directories");
            fs::create_dir_all(dir).map_err(at(dir))?;
            let file = File::create_new(&path).map_err(at(&path))?;
            self.errors = Some((path, BufWriter::new(file), 0));
        }
        let (path, out, count) = self.errors.as_mut().expect("created above");
        let mut line =
            serde_json::to_vec(&failed.to_json(self.now)).expect("a JSON value always serializes");
        line.push(b'\n');
        out.write_all(&line).map_err(at(path))?;
        *count += 1;
        Ok(path)
    }

    /// Completes every file and says what was written.
    pub fn finish(mut self) -> Result<WriteSummary, LakeError> {
        self.checkpoint()?;
        let errors = self.errors.take().map(|(path, _, count)| (path, count));
        Ok(WriteSummary {
            files: std::mem::take(&mut self.written),
            errors,
        })
    }

    /// Makes everything written so far durable: completes and publishes the open data files
    /// (later events start new files) and flushes the error file to disk. Call it before
    /// recording progress elsewhere (a pull's cursor), so a crash never skips data.
    pub fn checkpoint(&mut self) -> Result<(), LakeError> {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut first_error = None;
        for (key, file) in open {
            if let Err(error) = self.publish(key, file) {
                first_error.get_or_insert(error);
            }
        }
        if let Some((path, out, _)) = &mut self.errors {
            if let Err(error) = out.flush().and_then(|()| out.get_ref().sync_all()) {
                first_error.get_or_insert(LakeError::Io {
                    path: path.clone(),
                    source: error,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for LakeWriter<'_> {
    fn drop(&mut self) {
        // Best effort on an early return; `finish` reports these errors.
        let _ = self.checkpoint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_plugins::shell::Origin;
    use std::io::Read;

    fn time(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event(id: &str, at: &str) -> Event {
        let origin = Origin {
            container: "test",
            position: 0,
        };
        let mut event = Event::from_line(id, origin, time(at));
        event.eventid = id.to_string();
        event.utctimestamp = Some(time(at));
        event
    }

    fn temp_lake() -> (tempfile::TempDir, LocalLake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(dir.path().join("lake")).unwrap();
        (dir, lake)
    }

    #[test]
    fn events_land_as_gzip_ndjson_in_their_hour_partitions() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
        writer
            .write_event(&event("a", "2026-01-31T09:10:00Z"))
            .unwrap();
        writer
            .write_event(&event("b", "2026-01-31T10:00:00Z"))
            .unwrap();
        writer
            .write_event(&event("c", "2026-01-31T09:59:59Z"))
            .unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.lines(&EVENTS), 3);
        let hours: Vec<_> = summary
            .partitions(&EVENTS)
            .iter()
            .map(|p| p.path())
            .collect();
        assert_eq!(
            hours,
            [
                "year=2026/month=01/day=31/hour=09",
                "year=2026/month=01/day=31/hour=10"
            ]
        );
        let nine = summary
            .files
            .iter()
            .find(|f| f.partition.hour == "09")
            .unwrap();
        assert_eq!(nine.lines, 2);
        assert!(
            nine.path
                .starts_with(lake.root().join("events/year=2026/month=01/day=31/hour=09"))
        );
        let mut text = String::new();
        MultiGzDecoder::new(File::open(&nine.path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let ids: Vec<_> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["eventid"].clone())
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }

    #[test]
    fn runs_never_overwrite_each_other() {
        let (_dir, lake) = temp_lake();
        for id in ["first", "second"] {
            let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
            writer
                .write_event(&event(id, "2026-01-31T09:10:00Z"))
                .unwrap();
            writer.finish().unwrap();
        }
        assert_eq!(lake.data_files(&EVENTS).unwrap().len(), 2);
        let ids: Vec<_> = lake
            .read_events()
            .unwrap()
            .iter()
            .map(|e| e["eventid"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ["first", "second"]);
    }

    #[test]
    fn files_are_published_complete_and_partial_files_are_not_read() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
        writer
            .write_event(&event("a", "2026-01-31T09:10:00Z"))
            .unwrap();
        assert!(
            lake.data_files(&EVENTS).unwrap().is_empty(),
            "not yet published"
        );
        assert!(lake.read_events().unwrap().is_empty());
        drop(writer);
        assert_eq!(
            lake.read_events().unwrap().len(),
            1,
            "drop completes the file"
        );
    }

    #[test]
    fn a_checkpoint_publishes_what_was_written_and_the_writer_goes_on() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
        writer
            .write_event(&event("a", "2026-01-31T09:10:00Z"))
            .unwrap();
        writer.checkpoint().unwrap();
        assert_eq!(lake.read_events().unwrap().len(), 1);
        writer
            .write_event(&event("b", "2026-01-31T09:20:00Z"))
            .unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.files.len(), 2, "the hour got a second file");
        assert_eq!(summary.lines(&EVENTS), 2);
        assert_eq!(lake.read_events().unwrap().len(), 2);
    }

    #[test]
    fn more_partitions_than_open_files_start_new_files_and_lose_nothing() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
        let start = time("2026-01-01T00:00:00Z");
        let hours = MAX_OPEN_FILES as i64 + 10;
        for round in 0..2 {
            for h in 0..hours {
                let at = start + chrono::TimeDelta::hours(h);
                let mut e = event(&format!("{round}-{h}"), "2026-01-01T00:00:00Z");
                e.utctimestamp = Some(at);
                writer.write_event(&e).unwrap();
            }
        }
        let summary = writer.finish().unwrap();
        assert_eq!(summary.lines(&EVENTS), 2 * hours as u64);
        assert_eq!(summary.partitions(&EVENTS).len(), hours as usize);
        assert_eq!(lake.read_events().unwrap().len(), 2 * hours as usize);
    }

    #[test]
    fn failed_records_keep_reason_position_and_bytes() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T05:06:07Z"));
        let base = FailedRecord {
            source: "events/x.json",
            line: 12,
            offset: 345,
            reason: "truncated JSON",
            raw: b"{\"a\":",
            excerpt: "",
        };
        let path = writer.write_error(&base).unwrap().to_path_buf();
        assert!(path.starts_with(lake.root().join("errors/year=2026/month=02/day=01/hour=05")));
        writer
            .write_error(&FailedRecord {
                raw: b"\xff\x00",
                ..base
            })
            .unwrap();
        writer
            .write_error(&FailedRecord {
                raw: b"",
                excerpt: "{\"big\":",
                ..base
            })
            .unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.errors, Some((path, 3)));
        let errors = lake.read_errors().unwrap();
        assert_eq!(errors[0]["reason"], "truncated JSON");
        assert_eq!(errors[0]["source"], "events/x.json");
        assert_eq!(
            (errors[0]["line"].as_u64(), errors[0]["offset"].as_u64()),
            (Some(12), Some(345))
        );
        assert_eq!(errors[0]["record"], "{\"a\":");
        assert_eq!(errors[0]["failedtimestamp"], "2026-02-01T05:06:07.000000Z");
        assert_eq!(errors[1]["record_hex"], "ff00");
        assert_eq!(errors[2]["excerpt"], "{\"big\":");
        assert!(errors[2].get("record").is_none());
    }

    #[test]
    fn reading_names_the_file_and_line_of_a_corrupt_lake_file() {
        let (_dir, lake) = temp_lake();
        let dir = lake
            .table_dir(&EVENTS)
            .join("year=2026/month=01/day=01/hour=00");
        fs::create_dir_all(&dir).unwrap();
        let mut encoder = GzEncoder::new(
            File::create(dir.join("bad.json.gz")).unwrap(),
            Compression::fast(),
        );
        encoder
            .write_all(b"{\"eventid\":\"ok\"}\nnot json\n")
            .unwrap();
        encoder.finish().unwrap();
        let error = lake.read_events().unwrap_err().to_string();
        assert!(error.contains("bad.json.gz:2: not a JSON line"), "{error}");
    }

    #[test]
    fn a_missing_lake_reads_as_empty() {
        let (_dir, lake) = temp_lake();
        assert!(lake.read_events().unwrap().is_empty());
        assert!(lake.read_errors().unwrap().is_empty());
    }
}
