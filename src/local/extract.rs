//! The detection extract of a local lake (`LAKE/extract/`, [`extract_dir`]): the lake's events
//! filed under the hour of their **event time**, read from the lake by **arrival**.
//!
//! The lake files events where they arrived: a Firehose record under its first event's hour
//! (events later in the record belong to other hours), a late event under its arrival hour. A
//! detector that read the lake's hour partitions of a window would never see those events. So
//! each detection run first extracts the lake objects that are new since the last run (each
//! object is read once, ever: its compressed bytes count once), writing every event into the
//! extract's partition of its own hour; the rules then query the extract. The objects already
//! extracted and what each pass brought are the [`Arrivals`] document, saved with
//! compare-and-swap beside the rules' state; the runner reopens windows that the pass brought
//! events to after they were evaluated ([`lakewatch_detect::arrivals`]).
//!
//! An extract file is named after its source object and event hour, so extracting an object
//! again (a run that stopped before saving the document) rewrites the same files: never a
//! duplicate. A line without a readable `utctimestamp` stays in its source's hour and is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::Deserialize;

use lakewatch_detect::arrivals::{ARRIVALS_DOCUMENT, Arrivals};
use lakewatch_lake::layout::temporary_name;
use lakewatch_lake::local::{LocalLake, extract_dir};
use lakewatch_lake::partitions::{Hour, parse_key};
use lakewatch_lake::schema::EVENTS;
use lakewatch_lake::versioned::{FileStore, VersionedStore};

/// What one extract pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Lake objects new since the last pass, read now.
    pub objects: usize,
    /// Their compressed bytes: what this pass read (each object's bytes once, ever).
    pub bytes_read: u64,
    pub events: u64,
    /// Events stored under another hour than their own (a Firehose record spanning hours, a
    /// late arrival): filed under their own hour in the extract.
    pub outside_partition: u64,
    /// Lines without a readable `utctimestamp`: kept in their source's hour.
    pub untimed: u64,
}

/// Just the field the extract files by.
#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    utctimestamp: Option<std::borrow::Cow<'a, str>>,
}

/// Extracts the lake objects new since the last pass and records the pass; the rules' queries
/// then read [`extract_dir`]. `store` is the detector's state store.
pub async fn update(
    lake: &Path,
    store: &FileStore,
    now: DateTime<Utc>,
) -> anyhow::Result<ExtractReport> {
    let location = store.location(ARRIVALS_DOCUMENT);
    let read = store
        .read(ARRIVALS_DOCUMENT)
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{location}: cannot read"))?;
    let (mut arrivals, version) = match read {
        Some(read) => (
            serde_json::from_slice::<Arrivals>(&read.bytes)
                .with_context(|| format!("{location}: not an arrivals document"))?,
            Some(read.version),
        ),
        None => (Arrivals::default(), None),
    };
    let local = LocalLake::open(lake)?;
    let target = extract_dir(lake);
    std::fs::create_dir_all(&target)
        .with_context(|| format!("{}: cannot create", target.display()))?;
    let mut report = ExtractReport::default();
    let mut times = BTreeSet::new();
    for path in local.data_files(&EVENTS)? {
        let key = path
            .strip_prefix(lake)
            .expect("lake files are below the lake")
            .to_string_lossy()
            .replace('\\', "/");
        let meta =
            std::fs::metadata(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let version = format!("{}-{modified}", meta.len());
        let known = arrivals.objects.get(&key);
        if known == Some(&version) {
            continue;
        }
        // A new object's events are arrivals; an object rewritten in place (a repaired file)
        // is extracted again but reopens no window (`--set-aside` or a replay evaluates it).
        let arrived = if known.is_none() {
            Some(&mut times)
        } else {
            None
        };
        extract_object(&path, &key, &target, &mut report, arrived)?;
        report.objects += 1;
        report.bytes_read += meta.len();
        arrivals.objects.insert(key, version);
    }
    if report.objects > 0 {
        arrivals.record(now, &times);
        let body = serde_json::to_vec_pretty(&arrivals).expect("arrivals serialize");
        store
            .write(ARRIVALS_DOCUMENT, body, version.as_deref())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{location}: {e} (another detect run extracted at the same time; run again)"
                )
            })?;
    }
    Ok(report)
}

/// Files the events of one lake object under their own hours of the extract.
fn extract_object(
    path: &Path,
    key: &str,
    target: &Path,
    report: &mut ExtractReport,
    mut arrived: Option<&mut BTreeSet<DateTime<Utc>>>,
) -> anyhow::Result<()> {
    let source_hour = parse_key(&EVENTS, key).ok();
    // `events/year=2026/month=11/…/f.json.gz` → `year=2026_month=11_…_f.json.gz`: one name per
    // source, so a second extraction replaces its files.
    let name = key
        .strip_prefix(EVENTS.prefix)
        .unwrap_or(key)
        .trim_start_matches('/')
        .replace('/', "_");
    let input = BufReader::new(
        File::open(path).with_context(|| format!("{}: cannot open", path.display()))?,
    );
    let mut outputs: BTreeMap<Hour, (PathBuf, GzEncoder<BufWriter<File>>)> = BTreeMap::new();
    for (n, line) in BufReader::new(MultiGzDecoder::new(input))
        .lines()
        .enumerate()
    {
        let line = line.with_context(|| format!("{}: line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let time = serde_json::from_str::<Stamp>(&line)
            .ok()
            .and_then(|stamp| stamp.utctimestamp)
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .map(|time| time.with_timezone(&Utc));
        let hour = match (time, source_hour) {
            (Some(time), _) => {
                if let Some(times) = arrived.as_deref_mut() {
                    times.insert(time);
                }
                Hour::containing(time)
            }
            (None, Some(hour)) => {
                report.untimed += 1;
                hour
            }
            (None, None) => anyhow::bail!(
                "{}: line {} has no utctimestamp and the file is in no hour partition",
                path.display(),
                n + 1
            ),
        };
        report.events += 1;
        if source_hour.is_some_and(|source| source != hour) {
            report.outside_partition += 1;
        }
        if !outputs.contains_key(&hour) {
            let dir = target.join(hour.prefix(&EVENTS));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            let file = dir.join(&name);
            let temporary = dir.join(temporary_name(&name));
            let writer = File::create(&temporary)
                .with_context(|| format!("{}: cannot create", temporary.display()))?;
            outputs.insert(
                hour,
                (
                    file,
                    GzEncoder::new(BufWriter::new(writer), Compression::fast()),
                ),
            );
        }
        let (file, writer) = outputs.get_mut(&hour).expect("inserted above");
        writeln!(writer, "{line}").with_context(|| format!("{}: cannot write", file.display()))?;
    }
    // Each file appears whole (renamed from its temporary) or not at all.
    for (_, (file, writer)) in outputs {
        let temporary = file.with_file_name(temporary_name(
            &file.file_name().expect("a file name").to_string_lossy(),
        ));
        writer
            .finish()
            .and_then(|mut buffered| buffered.flush())
            .and_then(|()| std::fs::rename(&temporary, &file))
            .with_context(|| format!("{}: cannot write", file.display()))?;
    }
    Ok(())
}
