//! The detection extract: the lake's events filed under the quarter hour ([`Slice`]) of their
//! **event time**, read from the lake by **arrival**. One pass, the same in `lakewatch detect`
//! (files below the lake directory) and in the detector Lambda (objects in the lake bucket):
//! only the [`LakeObjects`] behind it differ.
//!
//! The lake files events where they arrived: a Firehose record under its first event's hour
//! (events later in the record belong to other hours), a late event under its arrival hour. A
//! detector that read the lake's hour partitions of a window would never see those events. So
//! each detection run first extracts the lake objects that are new since the last pass (each
//! object is read once, ever: its compressed bytes count once), writing every event into the
//! extract's partition of its own quarter hour ([`EXTRACT`], keys from [`extract_object_key`]);
//! the rules then query the extract, and a 15-minute window reads its quarters, not whole hours.
//! The objects already extracted and what each pass brought are the [`Arrivals`] document, saved
//! with compare-and-swap in the detector's state store; the runner reopens windows that a pass
//! brought events to after they were evaluated ([`crate::arrivals`]).
//!
//! Memory is bounded whatever the objects' sizes: an object is read chunk by chunk through a
//! streaming gzip decoder, and its lines wait in per-slice buffers of at most [`BUFFER_BYTES`] in
//! all; a full buffer is written out as the next part of each slice it holds. Parts are numbered
//! by the object's own content, so extracting an object again (a pass that stopped before saving
//! the document, or lost the compare-and-swap) rewrites the same keys: never a duplicate. A line
//! without a readable `utctimestamp` stays in its source's hour (its first quarter) and is
//! counted; what cannot be read at all is counted and named, never dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::{GzEncoder, MultiGzDecoder};
use serde::Deserialize;

use crate::arrivals::{ARRIVALS_DOCUMENT, Arrivals};
use lakewatch_lake::layout::{ExtractFormat, extract_object_key};
use lakewatch_lake::partitions::{Hour, Slice, parse_key};
use lakewatch_lake::schema::{EVENTS, EXTRACT};
use lakewatch_lake::versioned::{VersionedStore, WriteError};

/// Uncompressed bytes of lines an object's pass holds before it writes them out: parts of about
/// a tenth of this after gzip. With the decoder's window and one gzip encoder at a time, this is
/// what a pass needs beside the arrivals document.
pub const BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// The longest line the pass keeps; a longer one (no event is: Firehose records are at most
/// 1,000 KiB) is counted unreadable and skipped without being held.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// zstd level of extract objects. Every rule query reads the extract (and Athena bills its
/// compressed bytes), while each object is written once, so it is compressed harder than the
/// lake (gzip level 1). On a day of the detect bench's lake at 100,000 events a day (96 quarter
/// files, 107 MB of lines), gzip level 6 gave 6.79 MB; zstd gave 6.38 MB at level 3, 5.28 MB at
/// level 9 (0.78×) and 5.19 MB at level 12, for twice the time of level 9.
const EXTRACT_ZSTD_LEVEL: i32 = 9;

/// gzip level of the parts of objects first extracted in gzip ([`ExtractFormat::Gzip`]).
const EXTRACT_GZIP_LEVEL: Compression = Compression::new(6);

/// Compressed bytes handed to the decoder at a time: what one step can inflate to stays small
/// even for a highly compressed chunk.
const DECODE_STEP: usize = 8 * 1024;

/// One object of the lake's `events/` table as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeObject {
    /// Its key below the lake (`events/year=…/hour=…/<name>`).
    pub key: String,
    /// Changes when the object is rewritten (S3's ETag; locally size and modification time).
    pub version: String,
}

/// Where the pass reads lake objects and writes extract objects: the local lake's directory, or
/// the lake bucket (`lakewatch_aws::s3_lake`). Errors are text naming the object; the pass
/// stops on them (the next pass tries again).
pub trait LakeObjects {
    /// An open object being read.
    type Body: Send;

    /// Every data object of the `events/` table.
    fn list_events(&self) -> impl Future<Output = Result<Vec<LakeObject>, String>> + Send;

    /// Starts reading the object `key`.
    fn open(&self, key: &str) -> impl Future<Output = Result<Self::Body, String>> + Send;

    /// The next bytes of the object as stored (gzip); `None` at its end.
    fn next_chunk(
        &self,
        body: &mut Self::Body,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;

    /// Writes one whole extract object (NDJSON in zstd, or gzip for an object first extracted
    /// so: [`ExtractFormat`]), replacing any at that key.
    fn write(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one extract pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Lake objects new (or rewritten) since the last pass, read now.
    pub objects: usize,
    /// Their compressed bytes: what this pass read (each object's bytes once, ever).
    pub bytes_read: u64,
    /// Lines extracted: every line read is one of these or [`Self::unreadable`].
    pub events: u64,
    /// Events stored under another hour than their own (a Firehose record spanning hours, a
    /// late arrival): filed under their own hour in the extract.
    pub outside_partition: u64,
    /// Events without a readable `utctimestamp`: kept in their source's hour (counted in
    /// [`Self::events`] too).
    pub untimed: u64,
    /// Lines not extracted: not UTF-8, longer than [`MAX_LINE_BYTES`], or without a time in an
    /// object that is in no hour partition.
    pub unreadable: u64,
    /// Extract objects written.
    pub written: usize,
    /// New objects left for the next pass: this one ran out of its time.
    pub remaining: usize,
    /// Of [`Self::objects`], those extracted before in an older layout of the extract and filed
    /// again now (not arrivals: they reopen no window).
    pub refiled: usize,
    /// Objects whose content broke off (a damaged gzip stream), with the reason: their lines
    /// before the damage are extracted, and they are not read again until rewritten.
    pub damaged: Vec<(String, String)>,
}

/// Why a pass did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Another pass saved the arrivals document since this one read it. What this pass wrote
    /// is what that one wrote too (the same keys, the same content), so nothing is duplicated;
    /// the other run goes on with the rules.
    #[error("{location}: another detection run extracted at the same time")]
    Conflict { location: String },
    /// Listing, reading or writing failed; the next pass does it again.
    #[error("{0}")]
    Failed(String),
}

/// Just the field the extract files by.
#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    utctimestamp: Option<std::borrow::Cow<'a, str>>,
}

/// Extracts the lake objects new since the last pass and records the pass in the arrivals
/// document of `state` (the detector's state store), with compare-and-swap. `now` is the run's
/// time, as the runner's.
///
/// With `until`, no object is started after that instant (one at least is extracted): a lake
/// too large for one invocation (the first pass after an upgrade extracts all of it) is
/// extracted over several, each saving what it did ([`ExtractReport::remaining`] says what is
/// left). The events of the later passes are arrivals like any: windows evaluated before they
/// were extracted are evaluated again, flagged late.
pub async fn extract_new<L: LakeObjects, S: VersionedStore>(
    lake: &L,
    state: &S,
    now: DateTime<Utc>,
    until: Option<Instant>,
) -> Result<ExtractReport, ExtractError> {
    let location = state.location(ARRIVALS_DOCUMENT);
    let read = state
        .read(ARRIVALS_DOCUMENT)
        .await
        .map_err(|e| ExtractError::Failed(format!("{location}: cannot read: {e}")))?;
    let (mut arrivals, version) = match read {
        Some(read) => (
            serde_json::from_slice::<Arrivals>(&read.bytes).map_err(|e| {
                ExtractError::Failed(format!("{location}: not an arrivals document ({e})"))
            })?,
            Some(read.version),
        ),
        None => (Arrivals::default(), None),
    };
    let upgraded = arrivals.upgrade();
    let listed = lake.list_events().await.map_err(ExtractError::Failed)?;
    let mut report = ExtractReport::default();
    let mut times = BTreeSet::new();
    // New objects first; then those of an older layout, newest first, so that the windows due
    // now get their events back first when a lake is too large to file again in one pass.
    let refiled = |object: &&LakeObject| arrivals.refile.contains_key(&object.key);
    let order: Vec<&LakeObject> = listed
        .iter()
        .filter(|object| !refiled(object))
        .chain(listed.iter().rev().filter(refiled))
        .collect();
    for object in order {
        let known = arrivals
            .objects
            .get(&object.key)
            .or_else(|| arrivals.refile.get(&object.key));
        if arrivals.objects.get(&object.key) == Some(&object.version) {
            continue;
        }
        if report.objects > 0 && until.is_some_and(|until| Instant::now() >= until) {
            report.remaining += 1;
            continue;
        }
        // A new object's events are arrivals; an object rewritten in place (a repaired file),
        // or filed again in a new layout, is extracted again but reopens no window
        // (`--set-aside` or a replay evaluates it).
        let arrived = if known.is_none() {
            Some(&mut times)
        } else {
            None
        };
        let format = arrivals.format_of(&object.key);
        extract_object(lake, &object.key, format, &mut report, arrived).await?;
        report.objects += 1;
        if arrivals.refile.remove(&object.key).is_some() {
            report.refiled += 1;
        }
        arrivals
            .objects
            .insert(object.key.clone(), object.version.clone());
    }
    // Objects gone from the lake (expired, deleted) are forgotten: the document holds one entry
    // per object the lake has, no more.
    let present: BTreeSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let before = arrivals.objects.len() + arrivals.refile.len();
    arrivals
        .objects
        .retain(|key, _| present.contains(key.as_str()));
    arrivals
        .refile
        .retain(|key, _| present.contains(key.as_str()));
    arrivals.gzip.retain(|key| present.contains(key.as_str()));
    let forgotten = before != arrivals.objects.len() + arrivals.refile.len();
    if report.objects > 0 || forgotten || upgraded {
        if report.objects > 0 {
            arrivals.record(now, &times);
        }
        let body = serde_json::to_vec_pretty(&arrivals).expect("arrivals serialize");
        match state
            .write(ARRIVALS_DOCUMENT, body, version.as_deref())
            .await
        {
            Ok(_) => {}
            Err(WriteError::Conflict) => return Err(ExtractError::Conflict { location }),
            Err(WriteError::Failed(e)) => {
                return Err(ExtractError::Failed(format!("{location}: {e}")));
            }
        }
    }
    Ok(report)
}

/// Files the events of one lake object under their own hours of the extract, streaming.
async fn extract_object<L: LakeObjects>(
    lake: &L,
    key: &str,
    format: ExtractFormat,
    report: &mut ExtractReport,
    arrived: Option<&mut BTreeSet<DateTime<Utc>>>,
) -> Result<(), ExtractError> {
    let mut body = lake.open(key).await.map_err(ExtractError::Failed)?;
    let mut sorter = Sorter::new(key, format, arrived);
    let mut decoder = MultiGzDecoder::new(Vec::new());
    let mut damage = None;
    while let Some(chunk) = lake
        .next_chunk(&mut body)
        .await
        .map_err(ExtractError::Failed)?
    {
        report.bytes_read += chunk.len() as u64;
        if damage.is_some() {
            continue; // counted as read; nothing more can be decoded
        }
        for step in chunk.chunks(DECODE_STEP) {
            if let Err(error) = decoder.write_all(step) {
                damage = Some(error.to_string());
                break;
            }
            sorter.take_lines(decoder.get_mut(), report, false);
            if sorter.buffered >= BUFFER_BYTES {
                sorter.write_parts(lake, report).await?;
            }
        }
    }
    if damage.is_none()
        && let Err(error) = decoder.try_finish()
    {
        damage = Some(error.to_string());
    }
    // The last line needs no newline; after damage, a partial line is not an event.
    sorter.take_lines(decoder.get_mut(), report, damage.is_none());
    if damage.is_some() && (!decoder.get_ref().is_empty() || sorter.skipping) {
        report.unreadable += 1;
    }
    sorter.write_parts(lake, report).await?;
    if let Some(reason) = damage {
        report
            .damaged
            .push((key.to_string(), format!("gzip stream broke off: {reason}")));
    }
    Ok(())
}

/// One object's lines, sorted into buffers by event time's quarter hour.
struct Sorter<'a> {
    key: &'a str,
    format: ExtractFormat,
    source_hour: Option<Hour>,
    arrived: Option<&'a mut BTreeSet<DateTime<Utc>>>,
    buffers: BTreeMap<Slice, Vec<u8>>,
    /// The next part number of each slice.
    parts: BTreeMap<Slice, usize>,
    buffered: usize,
    /// Inside a line longer than [`MAX_LINE_BYTES`], dropping it up to its newline.
    skipping: bool,
}

impl<'a> Sorter<'a> {
    fn new(
        key: &'a str,
        format: ExtractFormat,
        arrived: Option<&'a mut BTreeSet<DateTime<Utc>>>,
    ) -> Self {
        Sorter {
            key,
            format,
            source_hour: parse_key(&EVENTS, key).ok(),
            arrived,
            buffers: BTreeMap::new(),
            parts: BTreeMap::new(),
            buffered: 0,
            skipping: false,
        }
    }

    /// Takes the complete lines out of `decoded` (all of it at the end of the object), leaving
    /// a partial last line there.
    fn take_lines(&mut self, decoded: &mut Vec<u8>, report: &mut ExtractReport, end: bool) {
        let mut start = 0;
        while let Some(offset) = decoded[start..].iter().position(|&b| b == b'\n') {
            let line = start..start + offset;
            start += offset + 1;
            if std::mem::take(&mut self.skipping) {
                continue; // the end of a line already counted unreadable
            }
            if line.len() > MAX_LINE_BYTES {
                report.unreadable += 1;
                continue;
            }
            self.line(&decoded[line], report);
        }
        if end && start < decoded.len() && !self.skipping {
            let rest = decoded.split_off(start);
            self.line(&rest, report);
            start = decoded.len();
        }
        decoded.drain(..start);
        if decoded.len() > MAX_LINE_BYTES {
            if !self.skipping {
                report.unreadable += 1;
            }
            self.skipping = true;
            decoded.clear();
        }
    }

    fn line(&mut self, line: &[u8], report: &mut ExtractReport) {
        let Ok(text) = std::str::from_utf8(line) else {
            report.unreadable += 1;
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        let time = serde_json::from_str::<Stamp>(text)
            .ok()
            .and_then(|stamp| stamp.utctimestamp)
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .map(|time| time.with_timezone(&Utc));
        let slice = match (time, self.source_hour) {
            (Some(time), _) => {
                if let Some(times) = self.arrived.as_deref_mut() {
                    times.insert(time);
                }
                Slice::containing(time)
            }
            (None, Some(hour)) => {
                report.untimed += 1;
                Slice::first_of(hour)
            }
            (None, None) => {
                report.unreadable += 1;
                return;
            }
        };
        report.events += 1;
        if self
            .source_hour
            .is_some_and(|source| source != slice.hour())
        {
            report.outside_partition += 1;
        }
        let buffer = self.buffers.entry(slice).or_default();
        buffer.extend_from_slice(line);
        buffer.push(b'\n');
        self.buffered += line.len() + 1;
    }

    /// Writes every buffer as the next part of its slice.
    async fn write_parts<L: LakeObjects>(
        &mut self,
        lake: &L,
        report: &mut ExtractReport,
    ) -> Result<(), ExtractError> {
        for (slice, lines) in std::mem::take(&mut self.buffers) {
            let part = self.parts.entry(slice).or_insert(0);
            let key = extract_object_key(self.key, slice, *part, self.format);
            debug_assert!(key.starts_with(EXTRACT.prefix));
            *part += 1;
            let bytes = compressed(&lines, self.format);
            drop(lines);
            lake.write(&key, bytes)
                .await
                .map_err(ExtractError::Failed)?;
            report.written += 1;
        }
        self.buffered = 0;
        Ok(())
    }
}

/// An extract object's bytes: `lines` compressed as `format` says.
fn compressed(lines: &[u8], format: ExtractFormat) -> Vec<u8> {
    match format {
        ExtractFormat::Zstd => zstd::bulk::compress(lines, EXTRACT_ZSTD_LEVEL)
            .expect("compressing into memory does not fail"),
        ExtractFormat::Gzip => {
            let mut gzip = GzEncoder::new(Vec::new(), EXTRACT_GZIP_LEVEL);
            gzip.write_all(lines)
                .expect("writing to memory does not fail");
            gzip.finish().expect("writing to memory does not fail")
        }
    }
}

/// `sql` reading `table` wherever it names `events`: a rule's query as written (and compiled)
/// names the `events` table; on an engine where the extract is a table of its own (Athena's
/// `events_extract`), `WITH events AS (SELECT * FROM <table>)` goes before it (merged into
/// the query's own `WITH`). Athena inlines such a `WITH`, so the query's partition predicates
/// still choose the extract's partitions it reads.
pub fn reading_table(sql: &str, table: &str) -> String {
    let events = format!("{} AS (SELECT * FROM {table})", EVENTS.name);
    let sql = sql.trim_start();
    let has_with = sql
        .get(..4)
        .is_some_and(|word| word.eq_ignore_ascii_case("with"))
        && sql[4..].starts_with(char::is_whitespace);
    if has_with {
        format!("WITH {events}, {}", sql[4..].trim_start())
    } else {
        format!("WITH {events} {sql}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_lake::layout::gzip_lines;
    use lakewatch_lake::versioned::FileStore;
    use std::sync::Mutex;

    /// Lake objects in memory, served in chunks of `chunk` bytes.
    #[derive(Default)]
    struct Memory {
        objects: Mutex<BTreeMap<String, Vec<u8>>>,
        chunk: usize,
    }

    impl Memory {
        fn put(&self, key: &str, bytes: Vec<u8>) {
            self.objects.lock().unwrap().insert(key.into(), bytes);
        }

        fn extract(&self) -> BTreeMap<String, Vec<String>> {
            let objects = self.objects.lock().unwrap();
            objects
                .iter()
                .filter(|(key, _)| key.starts_with(EXTRACT.prefix))
                .map(|(key, bytes)| {
                    let lines = if key.ends_with(ExtractFormat::Zstd.extension()) {
                        zstd::stream::decode_all(&bytes[..]).unwrap()
                    } else {
                        let mut lines = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                            &mut lines,
                        )
                        .unwrap();
                        lines
                    };
                    let text = String::from_utf8(lines).unwrap();
                    (key.clone(), text.lines().map(String::from).collect())
                })
                .collect()
        }
    }

    impl LakeObjects for Memory {
        type Body = (Vec<u8>, usize);

        async fn list_events(&self) -> Result<Vec<LakeObject>, String> {
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .filter(|(key, _)| key.starts_with("events/"))
                .map(|(key, bytes)| LakeObject {
                    key: key.clone(),
                    version: blake3::hash(bytes).to_hex().to_string(),
                })
                .collect())
        }

        async fn open(&self, key: &str) -> Result<Self::Body, String> {
            let objects = self.objects.lock().unwrap();
            Ok((objects.get(key).ok_or("gone")?.clone(), 0))
        }

        async fn next_chunk(&self, body: &mut Self::Body) -> Result<Option<Vec<u8>>, String> {
            let (bytes, at) = body;
            if *at >= bytes.len() {
                return Ok(None);
            }
            let end = (*at + self.chunk.max(1)).min(bytes.len());
            let chunk = bytes[*at..end].to_vec();
            *at = end;
            Ok(Some(chunk))
        }

        async fn write(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
            self.put(key, bytes);
            Ok(())
        }
    }

    fn line(time: &str, id: &str) -> String {
        format!(r#"{{"utctimestamp":"{time}","eventid":"{id}"}}"#)
    }

    const SOURCE: &str = "events/year=2026/month=11/day=20/hour=07/f.json.gz";

    /// The key of the zstd part `part` of `source`'s events at `time`'s quarter hour.
    fn key_of(source: &str, time: &str, part: usize) -> String {
        let slice = Slice::containing(time.parse().unwrap());
        extract_object_key(source, slice, part, ExtractFormat::Zstd)
    }

    /// Stores an arrivals document as an earlier version left it.
    fn save_arrivals(state: &FileStore, document: &serde_json::Value) {
        let bytes = serde_json::to_vec(document).unwrap();
        lakewatch_testkit::block_on(state.write(ARRIVALS_DOCUMENT, bytes, None)).unwrap();
    }

    fn run(lake: &Memory, state: &FileStore) -> Result<ExtractReport, ExtractError> {
        lakewatch_testkit::block_on(extract_new(
            lake,
            state,
            "2026-11-20T09:40:00Z".parse().unwrap(),
            None,
        ))
    }

    #[test]
    fn events_go_to_their_own_quarter_hour_and_a_second_pass_reads_nothing() {
        let lake = Memory {
            chunk: 7,
            ..Memory::default()
        };
        let mut lines = vec![line("2026-11-20T07:58:00Z", "a")];
        lines.extend((1..=5).map(|i| line(&format!("2026-11-20T09:0{i}:00Z"), &format!("b{i}"))));
        lines.push(r#"{"eventid":"untimed"}"#.into());
        lake.put(SOURCE, gzip_lines(&lines));
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::new(dir.path());
        let report = run(&lake, &state).unwrap();
        assert_eq!(
            (report.objects, report.events, report.outside_partition),
            (1, 7, 5)
        );
        assert_eq!(
            (report.untimed, report.unreadable, report.written),
            (1, 0, 3)
        );
        let extract = lake.extract();
        let key = |time: &str| key_of(SOURCE, time, 0);
        assert_eq!(extract[&key("2026-11-20T07:45:00Z")], [lines[0].clone()]);
        assert_eq!(extract[&key("2026-11-20T09:00:00Z")], lines[1..6]);
        // Without a time: the first quarter of the hour it was stored under.
        assert_eq!(extract[&key("2026-11-20T07:00:00Z")], [lines[6].clone()]);
        assert_eq!(extract.len(), 3);

        let again = run(&lake, &state).unwrap();
        assert_eq!(again, ExtractReport::default());
        let arrivals: Arrivals =
            serde_json::from_slice(&state.read_now(ARRIVALS_DOCUMENT).unwrap().unwrap().bytes)
                .unwrap();
        assert_eq!(arrivals.latest(), 1, "the empty pass is not recorded");
        assert_eq!(arrivals.passes[0].minutes.len(), 6);
    }

    #[test]
    fn objects_extracted_into_hours_by_an_earlier_version_are_filed_again_and_reopen_nothing() {
        let lake = Memory::default();
        let bytes = gzip_lines([line("2026-11-20T07:40:00Z", "a")]);
        let version = blake3::hash(&bytes).to_hex().to_string();
        lake.put(SOURCE, bytes);
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::new(dir.path());
        // The document as the hour layout left it: no `layout`, the object known.
        let old = serde_json::json!({ "objects": { SOURCE: version }, "passes": [] });
        save_arrivals(&state, &old);
        let report = run(&lake, &state).unwrap();
        assert_eq!((report.objects, report.refiled, report.events), (1, 1, 1));
        let key = key_of(SOURCE, "2026-11-20T07:40:00Z", 0);
        assert!(key.contains("/hour=07/minute=30/"), "{key}");
        assert_eq!(lake.extract()[&key], [line("2026-11-20T07:40:00Z", "a")]);
        let arrivals: Arrivals =
            serde_json::from_slice(&state.read_now(ARRIVALS_DOCUMENT).unwrap().unwrap().bytes)
                .unwrap();
        assert_eq!(arrivals.layout, crate::arrivals::EXTRACT_LAYOUT);
        assert!(arrivals.refile.is_empty());
        assert_eq!(arrivals.objects[SOURCE], version);
        assert!(
            arrivals.minutes_after(0).is_empty(),
            "filed again, not arrived: no window reopens"
        );
        // Done once.
        assert_eq!(run(&lake, &state).unwrap(), ExtractReport::default());
    }

    #[test]
    fn objects_extracted_in_gzip_keep_their_names_and_new_objects_are_zstd() {
        let lake = Memory::default();
        let time = "2026-11-20T07:40:00Z";
        let slice = Slice::containing(time.parse().unwrap());
        let gzip_key = |source| extract_object_key(source, slice, 0, ExtractFormat::Gzip);
        // Extracted in gzip by the quarter-hour layout (2): `SOURCE`, rewritten in place
        // since, and `KEPT`, unchanged; `NEW` arrives now.
        const KEPT: &str = "events/year=2026/month=11/day=20/hour=07/kept.json.gz";
        const NEW: &str = "events/year=2026/month=11/day=20/hour=07/new.json.gz";
        let kept = gzip_lines([line(time, "k")]);
        let kept_version = blake3::hash(&kept).to_hex().to_string();
        lake.put(KEPT, kept);
        lake.put(&gzip_key(KEPT), gzip_lines([line(time, "k")]));
        lake.put(SOURCE, gzip_lines([line(time, "repaired")]));
        lake.put(&gzip_key(SOURCE), gzip_lines([line(time, "damaged")]));
        lake.put(NEW, gzip_lines([line(time, "n")]));
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::new(dir.path());
        let old = serde_json::json!({
            "layout": 2,
            "objects": { SOURCE: "before the repair", KEPT: kept_version },
            "passes": [],
        });
        save_arrivals(&state, &old);

        let report = run(&lake, &state).unwrap();
        assert_eq!((report.objects, report.refiled, report.events), (2, 0, 2));
        let extract = lake.extract();
        assert_eq!(
            extract.keys().cloned().collect::<Vec<_>>(),
            [gzip_key(SOURCE), gzip_key(KEPT), key_of(NEW, time, 0)],
            "the repaired object's gzip part is replaced, not joined by a zstd copy"
        );
        assert_eq!(extract[&gzip_key(SOURCE)], [line(time, "repaired")]);
        assert_eq!(extract[&key_of(NEW, time, 0)], [line(time, "n")]);
        let arrivals: Arrivals =
            serde_json::from_slice(&state.read_now(ARRIVALS_DOCUMENT).unwrap().unwrap().bytes)
                .unwrap();
        assert_eq!(arrivals.layout, crate::arrivals::EXTRACT_LAYOUT);
        assert_eq!(
            arrivals.gzip.iter().map(String::as_str).collect::<Vec<_>>(),
            [SOURCE, KEPT]
        );
        // A gzip object gone from the lake is forgotten with it.
        lake.objects.lock().unwrap().remove(KEPT);
        run(&lake, &state).unwrap();
        let arrivals: Arrivals =
            serde_json::from_slice(&state.read_now(ARRIVALS_DOCUMENT).unwrap().unwrap().bytes)
                .unwrap();
        assert_eq!(
            arrivals.gzip.iter().map(String::as_str).collect::<Vec<_>>(),
            [SOURCE]
        );
    }

    #[test]
    fn the_extract_is_smaller_than_the_lake_objects_it_comes_from() {
        // Rules read the extract on every run, so it is compressed harder than the lake's
        // fastest level: at the same level it would be as large as the lake (what Athena bills).
        let lake = Memory {
            chunk: 64 * 1024,
            ..Memory::default()
        };
        let lines: Vec<String> = (0..2_000_u32)
            .map(|i| {
                format!(
                    r#"{{"utctimestamp":"2026-11-20T07:{:02}:{:02}Z","eventid":"{}","source":"cloudtrail","details":{{"sourceipaddress":"192.0.2.{}","useridentity":{{"username":"user{}"}},"eventname":"ConsoleLogin","useragent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}}}}"#,
                    i / 60 % 60,
                    i % 60,
                    &blake3::hash(&i.to_le_bytes()).to_hex()[..16],
                    i % 251,
                    i % 37,
                )
            })
            .collect();
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap();
        let source = gzip.finish().unwrap();
        lake.put(SOURCE, source.clone());
        let dir = tempfile::tempdir().unwrap();
        run(&lake, &FileStore::new(dir.path())).unwrap();
        let extract_bytes: usize = lake
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| key.starts_with(EXTRACT.prefix))
            .map(|(_, bytes)| bytes.len())
            .sum();
        assert_eq!(lake.extract().values().map(Vec::len).sum::<usize>(), 2_000);
        assert!(
            extract_bytes * 10 < source.len() * 9,
            "extract {extract_bytes} bytes, lake {} bytes",
            source.len()
        );
    }

    #[test]
    fn unreadable_lines_and_damaged_objects_are_counted_never_dropped_silently() {
        let lake = Memory {
            chunk: 1000,
            ..Memory::default()
        };
        let mut bytes = gzip_lines([line("2026-11-20T07:01:00Z", "a")]);
        // Not UTF-8, then a line far too long.
        bytes.extend(gzip_lines([[0xff_u8, 0xfe].escape_ascii().to_string()]));
        let mut raw = vec![0xff_u8, 0xfe, b'\n'];
        raw.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        raw.push(b'\n');
        raw.extend(line("2026-11-20T07:02:00Z", "b").bytes());
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(&raw).unwrap();
        bytes.extend(gzip.finish().unwrap());
        lake.put(SOURCE, bytes);
        // A gzip stream cut short, in no partition.
        let mut cut = gzip_lines([line("2026-11-20T08:00:00Z", "c"), "x".repeat(5000)]);
        cut.truncate(cut.len() - 10);
        lake.put("events/misfiled/g.json.gz", cut);
        let dir = tempfile::tempdir().unwrap();
        let report = run(&lake, &FileStore::new(dir.path())).unwrap();
        // `\xff\xfe` escaped is a readable line without a time: kept in its source's hour.
        assert_eq!((report.events, report.untimed), (4, 1));
        assert_eq!(
            report.unreadable, 3,
            "not UTF-8, too long, cut short: {report:?}"
        );
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(report.damaged[0].0, "events/misfiled/g.json.gz");
    }

    #[test]
    fn a_full_buffer_is_written_in_parts_with_the_same_keys_every_time() {
        let lake = Memory {
            chunk: 64 * 1024,
            ..Memory::default()
        };
        let padding = "p".repeat(4000);
        let lines: Vec<String> = (0..(2 * BUFFER_BYTES / 4000 + 10))
            .map(|i| {
                let hour = if i % 2 == 0 { "07" } else { "09" };
                format!(
                    r#"{{"utctimestamp":"2026-11-20T{hour}:00:00Z","eventid":"{i}","pad":"{padding}"}}"#
                )
            })
            .collect();
        lake.put(SOURCE, gzip_lines(&lines));
        let dir = tempfile::tempdir().unwrap();
        let report = run(&lake, &FileStore::new(dir.path())).unwrap();
        assert_eq!(report.events, lines.len() as u64);
        let first = lake.extract();
        assert_eq!(report.written, first.len());
        for hour in ["hour=07", "hour=09"] {
            let parts = first.keys().filter(|key| key.contains(hour)).count();
            assert!(parts >= 2, "{hour} in parts: {:?}", first.keys());
        }
        let total: usize = first.values().map(Vec::len).sum();
        assert_eq!(total, lines.len());
        // A pass that starts again (no arrivals document) writes the same keys, same lines.
        let again = tempfile::tempdir().unwrap();
        run(&lake, &FileStore::new(again.path())).unwrap();
        assert_eq!(lake.extract(), first);
    }

    #[test]
    fn a_pass_that_lost_the_compare_and_swap_says_so() {
        let lake = Memory::default();
        lake.put(SOURCE, gzip_lines([line("2026-11-20T07:01:00Z", "a")]));
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::new(dir.path());
        // Another pass saved the document between this pass's read and write.
        struct Racing<'a>(&'a FileStore);
        impl VersionedStore for Racing<'_> {
            fn location(&self, name: &str) -> String {
                self.0.location(name)
            }
            async fn read(
                &self,
                name: &str,
            ) -> Result<Option<lakewatch_lake::versioned::Versioned>, String> {
                let read = self.0.read_now(name).map_err(|e| e.to_string());
                self.0.write_now(name, b"{}", None).unwrap();
                read
            }
            async fn write(
                &self,
                name: &str,
                bytes: Vec<u8>,
                expected: Option<&str>,
            ) -> Result<String, WriteError> {
                self.0.write_now(name, &bytes, expected)
            }
        }
        let error = lakewatch_testkit::block_on(extract_new(
            &lake,
            &Racing(&state),
            "2026-11-20T09:40:00Z".parse().unwrap(),
            None,
        ))
        .unwrap_err();
        assert!(matches!(error, ExtractError::Conflict { .. }), "{error}");
    }

    #[test]
    fn a_pass_out_of_time_saves_what_it_did_and_the_next_one_goes_on() {
        let lake = Memory::default();
        let other = SOURCE.replace("hour=07", "hour=08");
        lake.put(SOURCE, gzip_lines([line("2026-11-20T07:01:00Z", "a")]));
        lake.put(&other, gzip_lines([line("2026-11-20T08:01:00Z", "b")]));
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::new(dir.path());
        let now = "2026-11-20T09:40:00Z".parse().unwrap();
        let pass = |until| lakewatch_testkit::block_on(extract_new(&lake, &state, now, until));
        let first = pass(Some(Instant::now())).unwrap();
        assert_eq!((first.objects, first.remaining), (1, 1));
        let second = pass(Some(Instant::now())).unwrap();
        assert_eq!((second.objects, second.remaining), (1, 0));
        assert_eq!(pass(None).unwrap(), ExtractReport::default());
        assert_eq!(lake.extract().len(), 2);
    }

    #[test]
    fn queries_read_the_named_table_as_events() {
        assert_eq!(
            reading_table("SELECT 1 FROM events WHERE x", "events_extract"),
            "WITH events AS (SELECT * FROM events_extract) SELECT 1 FROM events WHERE x"
        );
        assert_eq!(
            reading_table("  with a AS (SELECT * FROM events) SELECT * FROM a", "t"),
            "WITH events AS (SELECT * FROM t), a AS (SELECT * FROM events) SELECT * FROM a"
        );
        assert_eq!(
            reading_table("WITHOUT", "t"),
            "WITH events AS (SELECT * FROM t) WITHOUT"
        );
    }
}
