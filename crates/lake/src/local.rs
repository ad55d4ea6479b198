//! A lake in a directory, laid out as Firehose lays out the bucket, so the local engine, the
//! partition planner and people with `zcat | jq` read it the same way:
//!
//! ```text
//! DIR/events/year=YYYY/month=MM/day=DD/hour=HH/lakewatch-…-N.json.gz   gzip NDJSON events
//! DIR/errors/year=YYYY/month=MM/day=DD/hour=HH/lakewatch-…-N.json      failed records (NDJSON)
//! DIR/state/counts/events-YYYY-MM-DD.json          events per source, host and hour (crate::counts)
//! ```
//!
//! Events are partitioned by event time; errors by the time the run failed them. A run writes
//! new files with unique names (never appending to or overwriting another run's files), under a
//! temporary name ([`crate::layout::temporary_name`]) that readers skip until a checkpoint
//! publishes them, so a reader never sees half a gzip stream; a later run removes the
//! temporaries a killed run left behind. See [`LakeWriter`] for how files are sized.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use hashbrown::HashMap;
use lakewatch_plugins::Event;
use lakewatch_plugins::shell::format_timestamp;
use serde_json::{Map, Value};

use crate::counts::HourlyCounts;
use crate::gzip_members::GzipMembers;
use crate::layout::{
    DATA_EXTENSION, TEMPORARY_SUFFIX, failed_record_field, is_stale_temporary, temporary_name,
    unique_file_name,
};
use crate::partitions::Hour;
use crate::schema::{EVENTS, TABLES, Table};

/// Directory (below the lake) of records that failed, with their reasons.
pub const ERRORS_DIR: &str = "errors";
/// Memory a writer buffers uncompressed events in, over all partitions (counted in the
/// chunks the buffers hold, 4 to 64 KiB each), before it compresses the largest buffers into
/// their files (until half of it is free): the writer's memory bound, the chunks it keeps for
/// reuse included. It holds the first chunks of 16,384 partitions: a run over more hours than
/// that (two years, in random order) compresses small members again.
pub const BUFFER_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Compressed bytes after which a partition's file is complete and the next lines start a new
/// one (Athena reads many mid-sized files faster than one huge or thousands of tiny ones).
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// Uncompressed event bytes between automatic checkpoints of a long run: what a crash can
/// cost at most, and a bound on the files a run holds unpublished.
pub const CHECKPOINT_BYTES: u64 = 1024 * 1024 * 1024;
/// gzip level of data files: 1, the fastest; the lake's JSON lines still shrink about 8×, and
/// compression is most of the writer's cost.
const COMPRESSION_LEVEL: u32 = 1;

/// Directory (below the lake) of local mode's state: pull cursors, detector watermarks, the
/// per-source event counters.
pub const STATE_DIR: &str = "state";
/// Directory (below the lake) of the local alerts topic.
pub const TOPIC_DIR: &str = "topic";

/// Where one component keeps its state in a local lake: `DIR/state/<component>`
/// (`s3-ingest` cursors, `detector` rule state).
pub fn state_dir(lake_root: &Path, component: &str) -> PathBuf {
    lake_root.join(STATE_DIR).join(component)
}

/// Directory (below the lake) of the detection extract.
pub const EXTRACT_DIR: &str = "extract";

/// The detection extract of a local lake: `DIR/extract`, itself laid out as a lake
/// (`extract/events/year=…/month=…/day=…/hour=…/<file>`) whose events are filed under the hour
/// of their own time, wherever the lake stored them; the detector queries it instead of `DIR`.
pub fn extract_dir(lake_root: &Path) -> PathBuf {
    lake_root.join(EXTRACT_DIR)
}

/// The local alerts topic: `DIR/topic/alerts.ndjson`, one published alert per line.
pub fn alerts_topic_path(lake_root: &Path) -> PathBuf {
    lake_root.join(TOPIC_DIR).join("alerts.ndjson")
}

/// What went wrong reading or writing the lake, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The per-source counters ([`crate::counts`]) could not be updated.
    #[error("{0}")]
    Counts(String),
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

    /// A writer for one run; `now` names its files and dates its errors. It first removes the
    /// temporary files a killed run left behind ([`Self::remove_stale_temporaries`]; best
    /// effort: readers skip them anyway); [`WriteSummary::removed_temporaries`] lists them.
    pub fn writer(&self, now: DateTime<Utc>) -> LakeWriter<'_> {
        let removed_temporaries = self.remove_stale_temporaries().unwrap_or_default();
        LakeWriter {
            lake: self,
            now,
            partitions: HashMap::new(),
            buffered: 0,
            budget: BUFFER_BUDGET_BYTES,
            since_checkpoint: 0,
            completed: Vec::new(),
            written: Vec::new(),
            errors: None,
            scratch: Vec::new(),
            gzip: GzipMembers::new(Compression::new(COMPRESSION_LEVEL)),
            member: Vec::new(),
            pool: Vec::new(),
            removed_temporaries,
            counts: HourlyCounts::default(),
        }
    }

    /// Removes the tables' temporary files whose writer no longer runs (a killed or crashed
    /// ingest; see [`is_stale_temporary`]) and returns them. Another run's files in progress
    /// are kept.
    pub fn remove_stale_temporaries(&self) -> Result<Vec<PathBuf>, LakeError> {
        let now = std::time::SystemTime::now();
        let mut removed = Vec::new();
        for table in TABLES {
            for path in files_under(&self.table_dir(table))? {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if !name.ends_with(TEMPORARY_SUFFIX) {
                    continue;
                }
                let modified = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map_err(at(&path))?;
                if is_stale_temporary(&name, modified, now) {
                    fs::remove_file(&path).map_err(at(&path))?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
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
/// Hidden files and directories (`.name`) are skipped, as editors and tools leave them around;
/// so are symbolic link loops (see [`walk`]).
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    Ok(walk(dir)?.files)
}

/// What a directory walk found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// The files, in path order.
    pub files: Vec<PathBuf>,
    /// Paths left out, with the reason: symbolic links back into a directory already walked
    /// (a loop, or a second way to the same files) and links that cannot be followed.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Walks `dir` recursively, following symbolic links but entering each real directory once,
/// so `ln -s . x` neither hangs the walk nor reads a file twice: the link is skipped and named
/// in [`Walk::skipped`]. Hidden entries (`.name`) are skipped silently.
pub fn walk(dir: &Path) -> Result<Walk, LakeError> {
    let mut walk = Walk::default();
    if dir.exists() {
        let mut seen = std::collections::HashSet::new();
        seen.insert(dir.canonicalize().map_err(at(dir))?);
        collect_files(dir, &mut seen, &mut walk)?;
    }
    walk.files.sort();
    Ok(walk)
}

fn collect_files(
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    walk: &mut Walk,
) -> Result<(), LakeError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        entries.push(entry.map_err(at(dir))?.path());
    }
    entries.sort();
    for path in entries {
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let is_link = fs::symlink_metadata(&path).map_err(at(&path))?.is_symlink();
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if is_link => {
                walk.skipped
                    .push((path, format!("cannot follow the symbolic link: {error}")));
                continue;
            }
            Err(error) => return Err(at(&path)(error)),
        };
        if !metadata.is_dir() {
            walk.files.push(path);
            continue;
        }
        let real = path.canonicalize().map_err(at(&path))?;
        if !seen.insert(real.clone()) {
            walk.skipped.push((
                path,
                format!(
                    "a symbolic link to {}, which is already read (a loop or a second path)",
                    real.display()
                ),
            ));
            continue;
        }
        collect_files(&path, seen, walk)?;
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
    /// The error line: `reason`, position, and the record in the lake's one failed-record
    /// format ([`failed_record_field`]), or its `excerpt` when it was not kept.
    pub fn to_json(&self, failed_at: DateTime<Utc>) -> Value {
        let mut entry = Map::new();
        entry.insert("failedtimestamp".into(), format_timestamp(failed_at).into());
        entry.insert("source".into(), self.source.into());
        entry.insert("line".into(), self.line.into());
        entry.insert("offset".into(), self.offset.into());
        entry.insert("reason".into(), self.reason.into());
        match failed_record_field(self.raw) {
            Some((field, value)) => entry.insert(field.into(), value),
            None => entry.insert("excerpt".into(), self.excerpt.into()),
        };
        Value::Object(entry)
    }
}

/// One data file written by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub table: &'static str,
    pub partition: Hour,
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
    /// Temporary files of earlier, killed runs that this run removed.
    pub removed_temporaries: Vec<PathBuf>,
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
    pub fn partitions(&self, table: &Table) -> Vec<Hour> {
        let mut partitions: Vec<_> = self
            .files
            .iter()
            .filter(|f| f.table == table.prefix)
            .map(|f| f.partition)
            .collect();
        partitions.sort();
        partitions.dedup();
        partitions
    }
}

/// A data file of this run, still under its temporary name (see
/// [`temporary_name`](crate::layout::temporary_name)) until a checkpoint publishes it.
struct RunFile {
    path: PathBuf,
    temporary: PathBuf,
    /// Compressed bytes written to it so far.
    bytes: u64,
    lines: u64,
}

impl RunFile {
    /// Publishes it under its final name, once [`flush_to_disk`] has made it durable.
    fn publish(self) -> Result<(PathBuf, u64), LakeError> {
        fs::rename(&self.temporary, &self.path).map_err(at(&self.path))?;
        Ok((self.path, self.lines))
    }
}

/// A partition of a table: the table's directory under the lake and the hour.
type PartitionKey = (&'static str, Hour);

/// Flushes a checkpoint's files to disk before they are published. On Linux one `syncfs` per
/// table directory (one file system, unless a table's directory links to another) flushes
/// them together: a back-fill publishes hundreds of files at once, and an `fsync` each made
/// the device flush its cache once per file. Elsewhere each file gets its `fsync`.
fn flush_to_disk(root: &Path, files: &[(PartitionKey, RunFile)]) -> Result<(), LakeError> {
    #[cfg(target_os = "linux")]
    {
        sync_tables(root, &tables_of(files))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = root;
        for (_, file) in files {
            let temporary = &file.temporary;
            OpenOptions::new()
                .write(true)
                .open(temporary)
                .and_then(|f| f.sync_all())
                .map_err(at(temporary))?;
        }
        Ok(())
    }
}

/// The tables `files` belong to, each once.
#[cfg(target_os = "linux")]
fn tables_of(files: &[(PartitionKey, RunFile)]) -> Vec<&'static str> {
    let mut tables: Vec<_> = files.iter().map(|((table, _), _)| *table).collect();
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// Flushes everything written to the file systems of `tables` (data, new files, renames) to
/// disk.
#[cfg(target_os = "linux")]
fn sync_tables(root: &Path, tables: &[&str]) -> Result<(), LakeError> {
    for table in tables {
        let dir = root.join(table);
        File::open(&dir)
            .and_then(|dir| rustix::fs::syncfs(&dir).map_err(io::Error::from))
            .map_err(at(&dir))?;
    }
    Ok(())
}

/// One partition's events not yet compressed, and the file they go to.
#[derive(Default)]
struct Partition {
    buffer: Chunks,
    lines: u64,
    file: Option<RunFile>,
}

/// Lines buffered in chunks, rather than in one growing vector: growing a partition's buffer by
/// reallocation copied every buffered byte about once more (3.6% of `lakewatch ingest`'s CPU on
/// a back-fill). A buffer's chunks double in size from [`Chunks::FIRST_SIZE`] to
/// [`Chunks::SIZE`], so a partition of a few lines takes a few kilobytes: with full-size
/// chunks only, a back-fill over more hours than the budget holds full chunks for (1,024 at
/// 64 MiB) compressed a member on every line. Full-size chunks, freed, go to a pool and serve
/// the next buffer without going back to the allocator.
#[derive(Default)]
struct Chunks {
    chunks: Vec<Vec<u8>>,
    /// Bytes of lines in the chunks.
    len: usize,
    /// CRC-32 of the lines, the gzip member's checksum, taken as each line comes in, while it
    /// is in the cache: taken at compression, it read the whole budget back from memory
    /// once more (1.7% of `lakewatch ingest`'s CPU on a back-fill).
    crc: crc32fast::Hasher,
}

impl Chunks {
    /// A buffer's largest chunks: large enough to hold many lines.
    const SIZE: usize = 64 * 1024;
    /// A buffer's first chunk: a few lines.
    const FIRST_SIZE: usize = 4 * 1024;

    /// Appends `line`; returns the memory it took from outside the buffer: a new chunk's
    /// capacity, or 0 when the line fitted in the last chunk. A new chunk is twice the last
    /// one, up to [`Self::SIZE`], and at least the line's size.
    fn push(&mut self, line: &[u8], pool: &mut Vec<Vec<u8>>) -> usize {
        self.len += line.len();
        self.crc.update(line);
        if let Some(last) = self.chunks.last_mut()
            && last.capacity() - last.len() >= line.len()
        {
            last.extend_from_slice(line);
            return 0;
        }
        let size = self.chunks.last().map_or(Self::FIRST_SIZE, |last| {
            (2 * last.capacity()).min(Self::SIZE)
        });
        let mut chunk = if size == Self::SIZE && line.len() <= Self::SIZE {
            pool.pop().unwrap_or_else(|| Vec::with_capacity(Self::SIZE))
        } else {
            Vec::with_capacity(size.max(line.len()))
        };
        chunk.extend_from_slice(line);
        let taken = chunk.capacity();
        self.chunks.push(chunk);
        taken
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the buffer, giving chunks of the pool's size back to it; returns the memory
    /// released.
    fn release(&mut self, pool: &mut Vec<Vec<u8>>) -> usize {
        self.len = 0;
        self.crc = crc32fast::Hasher::new();
        let mut released = 0;
        for mut chunk in self.chunks.drain(..) {
            released += chunk.capacity();
            if chunk.capacity() == Self::SIZE {
                chunk.clear();
                pool.push(chunk);
            }
        }
        released
    }
}

/// Writes one run's events and failed records into a [`LocalLake`]. Call
/// [`finish`](Self::finish) to complete the files; a writer dropped without it still completes
/// what it can, so written events are not lost on an early return.
///
/// Events arrive in any order of time (a back-fill of months is the usual worst case), so the
/// writer does not keep a gzip stream open per partition: it buffers each partition's lines in
/// memory, and when all buffers together exceed [`BUFFER_BUDGET_BYTES`] it compresses the
/// largest ones, each as one gzip member appended to that partition's file (readers of
/// concatenated members see one stream). A partition thus gets one file per run, plus one per
/// [`MAX_FILE_BYTES`] of compressed data and one per checkpoint, whatever the arrival order,
/// with memory bounded by the budget. Files are flushed to disk and published (renamed from
/// their temporary name) at checkpoints: every [`CHECKPOINT_BYTES`], when asked, and at the end.
pub struct LakeWriter<'a> {
    lake: &'a LocalLake,
    now: DateTime<Utc>,
    partitions: HashMap<PartitionKey, Partition>,
    /// Memory of all partitions' buffers (their chunks' capacity), and its bound
    /// ([`BUFFER_BUDGET_BYTES`]).
    buffered: usize,
    budget: usize,
    /// Event bytes since the last checkpoint.
    since_checkpoint: u64,
    /// Files completed for size, published at the next checkpoint.
    completed: Vec<(PartitionKey, RunFile)>,
    written: Vec<WrittenFile>,
    errors: Option<(PathBuf, BufWriter<File>, u64)>,
    scratch: Vec<u8>,
    /// One deflate state for every member of the run, and the member being written.
    gzip: GzipMembers,
    member: Vec<u8>,
    /// Chunks the buffers released, for the next ones ([`Chunks`]).
    pool: Vec<Vec<u8>>,
    removed_temporaries: Vec<PathBuf>,
    /// Events per source, host and hour since the last checkpoint, added to the lake's
    /// counters when their files are published ([`crate::counts`]).
    counts: HourlyCounts,
}

impl LakeWriter<'_> {
    /// Sets the memory bound of the buffered events (default [`BUFFER_BUDGET_BYTES`]): less
    /// memory, more and smaller gzip members. 0 compresses every line as it comes.
    pub fn with_buffer_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    /// Appends an event to its hour partition (by event time), and counts it for its source,
    /// host and hour.
    pub fn write_event(&mut self, event: &Event) -> Result<(), LakeError> {
        let hour = Hour::containing(event.event_time());
        // Before the line: a checkpoint it triggers publishes the line and adds its count.
        self.counts.add(&event.source, &event.hostname, hour);
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        event.write_json_line(&mut line);
        let result = self.write_line(&EVENTS, hour, &line);
        self.scratch = line;
        result
    }

    /// Appends one newline-terminated JSON line to `table`'s `partition`.
    pub fn write_line(
        &mut self,
        table: &Table,
        partition: Hour,
        line: &[u8],
    ) -> Result<(), LakeError> {
        let pending = self
            .partitions
            .entry((table.prefix, partition))
            .or_default();
        self.buffered += pending.buffer.push(line, &mut self.pool);
        pending.lines += 1;
        self.since_checkpoint += line.len() as u64;
        if self.since_checkpoint >= CHECKPOINT_BYTES {
            return self.checkpoint();
        }
        if self.buffered > self.budget {
            self.compress_largest()?;
        }
        Ok(())
    }

    /// Compresses the largest buffers into their partitions' files until half the budget is
    /// free: one sort per round, and each partition's lines go out in large members.
    fn compress_largest(&mut self) -> Result<(), LakeError> {
        let mut largest: Vec<_> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.buffer.is_empty())
            .map(|(key, p)| (p.buffer.len, *key))
            .collect();
        largest.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in largest {
            if self.buffered <= self.budget / 2 {
                break;
            }
            self.compress(key)?;
        }
        Ok(())
    }

    /// Appends `key`'s buffered lines to its file as one gzip member, starting a new file when
    /// the current one is full.
    fn compress(&mut self, key: PartitionKey) -> Result<(), LakeError> {
        let Some(pending) = self.partitions.get_mut(&key) else {
            return Ok(());
        };
        if pending.buffer.is_empty() {
            return Ok(());
        }
        if pending
            .file
            .as_ref()
            .is_some_and(|f| f.bytes >= MAX_FILE_BYTES)
        {
            let full = pending.file.take().expect("checked above");
            self.completed.push((key, full));
        }
        let pending = self.partitions.get_mut(&key).expect("looked up above");
        let (file, mut out) = match &mut pending.file {
            Some(file) => {
                let out = OpenOptions::new()
                    .append(true)
                    .open(&file.temporary)
                    .map_err(at(&file.temporary))?;
                (file, out)
            }
            None => {
                let name = unique_file_name(self.now, DATA_EXTENSION);
                let path = self.lake.root.join(format!("{}/{}/{name}", key.0, key.1));
                let temporary = path.with_file_name(temporary_name(&name));
                let dir = path.parent().expect("a key has directories");
                fs::create_dir_all(dir).map_err(at(dir))?;
                let out = File::create_new(&temporary).map_err(at(&temporary))?;
                let file = pending.file.insert(RunFile {
                    path,
                    temporary,
                    bytes: 0,
                    lines: 0,
                });
                (file, out)
            }
        };
        self.member.clear();
        self.gzip.append_member(
            &pending.buffer.chunks,
            pending.buffer.crc.clone(),
            &mut self.member,
        );
        out.write_all(&self.member).map_err(at(&file.temporary))?;
        file.bytes += self.member.len() as u64;
        file.lines += pending.lines;
        self.buffered -= pending.buffer.release(&mut self.pool);
        pending.lines = 0;
        Ok(())
    }

    fn publish(
        &mut self,
        (table, partition): PartitionKey,
        file: RunFile,
    ) -> Result<(), LakeError> {
        let (path, lines) = file.publish()?;
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
            let partition = Hour::containing(self.now);
            let path = self
                .lake
                .errors_dir()
                .join(partition.to_string())
                .join(name);
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
            removed_temporaries: std::mem::take(&mut self.removed_temporaries),
        })
    }

    /// Makes everything written so far durable: compresses every buffer, flushes the files
    /// to disk and publishes them under their final names (later events start new files), and
    /// flushes the error file to disk. Call it before recording progress elsewhere (a pull's
    /// cursor), so a crash never skips data.
    pub fn checkpoint(&mut self) -> Result<(), LakeError> {
        let mut first_error = None;
        let mut keys: Vec<_> = self.partitions.keys().copied().collect();
        keys.sort();
        for key in &keys {
            if let Err(error) = self.compress(*key) {
                first_error.get_or_insert(error);
            }
        }
        let mut files = std::mem::take(&mut self.completed);
        for key in keys {
            if let Some(file) = self.partitions.get_mut(&key).and_then(|p| p.file.take()) {
                files.push((key, file));
            }
        }
        self.partitions.retain(|_, p| !p.buffer.is_empty());
        // Published only once durable: a crash never leaves a published file incomplete.
        #[cfg(target_os = "linux")]
        let tables = tables_of(&files);
        match flush_to_disk(&self.lake.root, &files) {
            Ok(()) => {
                for (key, file) in files {
                    if let Err(error) = self.publish(key, file) {
                        first_error.get_or_insert(error);
                    }
                }
                // The renames too, before the caller records progress (a pull's cursor, the
                // files ingested): after a crash the published files are there under their
                // names, not left as temporaries for the next run to remove.
                #[cfg(target_os = "linux")]
                if let Err(error) = sync_tables(&self.lake.root, &tables) {
                    first_error.get_or_insert(error);
                }
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
        self.since_checkpoint = 0;
        // After the files they count: a crash in between leaves events uncounted, never counts
        // without events. Kept for the next checkpoint when the update fails. When a file of
        // this checkpoint was not published, none of its counts are added: counters may miss
        // events (a dip), never count events the lake does not hold.
        if first_error.is_some() {
            self.counts = HourlyCounts::default();
        } else if !self.counts.is_empty() {
            match crate::counts::add_to_lake(&self.lake.root, &self.counts) {
                Ok(()) => self.counts = HourlyCounts::default(),
                Err(error) => {
                    first_error.get_or_insert(LakeError::Counts(error));
                }
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
    use flate2::write::GzEncoder;
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
            .map(|p| p.to_string())
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
            .find(|f| f.partition.values()[3] == "09")
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
    fn the_writer_counts_events_per_source_host_and_hour_when_it_publishes_them() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake.writer(time("2026-02-01T00:00:00Z"));
        for (id, at, host) in [
            ("a", "2026-01-31T09:10:00Z", "web-1"),
            ("b", "2026-01-31T09:20:00Z", "web-1"),
            ("c", "2026-01-31T10:00:00Z", "web-2"),
        ] {
            let mut e = event(id, at);
            e.source = "syslog".into();
            e.hostname = host.into();
            writer.write_event(&e).unwrap();
        }
        let counts = crate::counts::LocalSourceCounts::new(lake.root());
        let day = (time("2026-01-31T00:00:00Z"), time("2026-02-01T00:00:00Z"));
        assert!(
            counts
                .hourly("syslog", true, day.0, day.1)
                .unwrap()
                .is_empty(),
            "nothing is counted before its file is published"
        );
        writer.finish().unwrap();
        let hosts = counts.hourly("syslog", true, day.0, day.1).unwrap();
        assert_eq!(hosts["web-1"][&time("2026-01-31T09:00:00Z")], 2);
        assert_eq!(hosts["web-2"][&time("2026-01-31T10:00:00Z")], 1);
    }

    #[test]
    fn events_whose_file_was_not_published_are_not_counted() {
        let (_dir, lake) = temp_lake();
        // A budget of 0 compresses each line as it comes: the file exists before the checkpoint.
        let mut writer = lake
            .writer(time("2026-02-01T00:00:00Z"))
            .with_buffer_budget(0);
        let mut e = event("a", "2026-01-31T09:10:00Z");
        e.source = "syslog".into();
        e.hostname = "web-1".into();
        writer.write_event(&e).unwrap();
        // The table's directory goes away before the checkpoint (a cleanup run on the lake).
        fs::remove_dir_all(lake.table_dir(&EVENTS)).unwrap();
        assert!(writer.finish().is_err(), "the file could not be published");
        let counts = crate::counts::LocalSourceCounts::new(lake.root());
        let day = (time("2026-01-31T00:00:00Z"), time("2026-02-01T00:00:00Z"));
        assert_eq!(
            counts.hourly("syslog", true, day.0, day.1).unwrap(),
            crate::counts::HostHours::new(),
            "an event the lake does not hold is not counted"
        );
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
    fn chunks_keep_every_line_in_order_and_give_back_what_they_took() {
        let mut pool = Vec::new();
        let mut chunks = Chunks::default();
        let lines = [
            b"a\n".to_vec(),
            vec![b'x'; Chunks::SIZE + 10],
            vec![b'y'; 40_000],
            vec![b'z'; 40_000],
            b"b\n".to_vec(),
        ];
        let taken: usize = lines.iter().map(|l| chunks.push(l, &mut pool)).sum();
        assert_eq!(chunks.chunks.concat(), lines.concat());
        assert_eq!(chunks.len, lines.concat().len());
        // "a" in a first, small chunk, the long line alone, "y", then "z" and "b" in chunks of
        // full size.
        let capacities: Vec<usize> = chunks.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(
            capacities,
            [
                Chunks::FIRST_SIZE,
                Chunks::SIZE + 10,
                Chunks::SIZE,
                Chunks::SIZE
            ]
        );
        assert_eq!(taken, capacities.iter().sum::<usize>());
        assert_eq!(chunks.release(&mut pool), taken);
        assert!(chunks.is_empty());
        // The small and the long chunks are freed; the others wait, empty, for the next buffer.
        assert_eq!(pool.len(), 2);
        assert!(
            pool.iter()
                .all(|c| c.capacity() == Chunks::SIZE && c.is_empty())
        );
        // Chunks double from the first size; only full-size ones come from the pool.
        let line = vec![b'l'; 1000];
        let mut taken = Vec::new();
        while pool.len() == 2 {
            taken.push(chunks.push(&line, &mut pool));
        }
        let new_chunks: Vec<usize> = taken.into_iter().filter(|&t| t > 0).collect();
        assert_eq!(new_chunks, [4, 8, 16, 32, 64].map(|k| k * 1024));
    }

    /// The gzip members of a file.
    fn gzip_members(path: &Path) -> usize {
        let bytes = fs::read(path).unwrap();
        let mut rest = &bytes[..];
        let mut members = 0;
        while !rest.is_empty() {
            let mut member = flate2::bufread::GzDecoder::new(rest);
            io::copy(&mut member, &mut io::sink()).unwrap();
            rest = member.into_inner();
            members += 1;
        }
        members
    }

    #[test]
    fn partitions_with_few_lines_take_little_memory_and_get_one_member_each() {
        // More hours than the budget holds chunks of full size for, a few lines each, as in a
        // back-fill of months: buffers that start small and grow with their lines hold them
        // all, and each partition's lines go out once, as one member. With a full-size chunk
        // per partition the writer compressed on every line past the 16th partition.
        let (_dir, lake) = temp_lake();
        let mut writer = lake
            .writer(time("2026-02-01T00:00:00Z"))
            .with_buffer_budget(1024 * 1024);
        let start = time("2026-01-01T00:00:00Z");
        let hours = 100;
        assert!(hours * Chunks::SIZE > writer.budget);
        for round in 0..8 {
            for hour in 0..hours {
                let mut e = event(&format!("{round}-{hour}"), "2026-01-01T00:00:00Z");
                e.utctimestamp = Some(start + chrono::TimeDelta::hours(hour as i64));
                writer.write_event(&e).unwrap();
            }
        }
        assert!(writer.buffered <= writer.budget);
        let summary = writer.finish().unwrap();
        assert_eq!(summary.files.len(), hours);
        for file in &summary.files {
            assert_eq!(file.lines, 8);
            assert_eq!(gzip_members(&file.path), 1, "{}", file.path.display());
        }
    }

    #[test]
    fn events_in_random_hour_order_get_one_file_per_partition_within_the_memory_budget() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake
            .writer(time("2026-02-01T00:00:00Z"))
            .with_buffer_budget(256 * 1024);
        let start = time("2026-01-01T00:00:00Z");
        let hours = 200;
        // Enough lines that the buffers overflow the budget many times over.
        let padding = "x".repeat(1024);
        let lines = 20 * writer.budget / padding.len();
        let mut state = 7u64;
        for n in 0..lines {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = start + chrono::TimeDelta::hours((state >> 33) as i64 % hours);
            let mut e = event(&format!("{n}"), "2026-01-01T00:00:00Z");
            e.utctimestamp = Some(at);
            e.summary = padding.clone();
            writer.write_event(&e).unwrap();
            assert!(writer.buffered <= writer.budget);
        }
        let summary = writer.finish().unwrap();
        assert_eq!(summary.lines(&EVENTS), lines as u64);
        assert_eq!(summary.partitions(&EVENTS).len(), hours as usize);
        assert_eq!(
            summary.files.len(),
            hours as usize,
            "one file per partition"
        );
        let events = lake.read_events().unwrap();
        assert_eq!(events.len(), lines);
        // Within a partition the events keep their order, across the gzip members.
        let first = &summary.files[0];
        let mut text = String::new();
        MultiGzDecoder::new(File::open(&first.path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let ids: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["eventid"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(ids.len() as u64, first.lines);
    }

    #[test]
    fn a_killed_runs_temporary_files_are_skipped_and_removed_by_the_next_run() {
        let (_dir, lake) = temp_lake();
        let mut writer = lake
            .writer(time("2026-02-01T00:00:00Z"))
            .with_buffer_budget(0);
        // Compressed into its temporary file at once, not yet published: what a kill leaves.
        writer
            .write_event(&event("a", "2026-01-31T09:10:00Z"))
            .unwrap();
        let file = writer
            .partitions
            .values()
            .next()
            .unwrap()
            .file
            .as_ref()
            .unwrap();
        let ours = file.temporary.clone();
        let name = ours.file_name().unwrap().to_string_lossy().into_owned();
        let gone =
            ours.with_file_name(name.replace(&format!("-{}-", std::process::id()), "-999999999-"));
        fs::copy(&ours, &gone).unwrap();
        assert!(lake.data_files(&EVENTS).unwrap().is_empty());
        assert!(lake.read_events().unwrap().is_empty());
        // A run in progress (this process) keeps its own; the dead writer's goes.
        let second = lake.writer(time("2026-02-01T01:00:00Z")).finish().unwrap();
        assert_eq!(second.removed_temporaries, [gone.clone()]);
        assert!(ours.exists());
        assert!(!gone.exists());
        let summary = writer.finish().unwrap();
        assert_eq!(summary.files.len(), 1);
        assert!(!ours.exists(), "published under its final name");
        assert_eq!(lake.read_events().unwrap().len(), 1);
        let third = lake.writer(time("2026-02-01T02:00:00Z")).finish().unwrap();
        assert!(third.removed_temporaries.is_empty());
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
        assert_eq!(errors[1]["record_base64"], "/wA=");
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

    #[cfg(unix)]
    #[test]
    fn symbolic_link_loops_are_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("a.json"), "{}").unwrap();
        fs::write(root.join("sub/b.json"), "{}").unwrap();
        std::os::unix::fs::symlink(".", root.join("x")).unwrap();
        std::os::unix::fs::symlink(".", root.join("y")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("self", root.join("self")).unwrap();
        let walk = walk(root).unwrap();
        assert_eq!(walk.files, [root.join("a.json"), root.join("sub/b.json")]);
        let skipped: Vec<_> = walk.skipped.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            skipped,
            [
                root.join("self"),
                root.join("sub/up"),
                root.join("x"),
                root.join("y")
            ]
        );
        assert!(
            walk.skipped[0].1.contains("cannot follow"),
            "{:?}",
            walk.skipped
        );
        assert!(
            walk.skipped[2].1.contains("already read"),
            "{:?}",
            walk.skipped
        );
    }
}
