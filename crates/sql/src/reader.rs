//! Decoding the lake's files (gzip NDJSON, one shell object per line) into Arrow batches.
//!
//! Why a reader of our own: arrow-json cannot put a nested object into a string column, and its
//! schema inference fails when one `details` key holds different types in different rows. Athena
//! reads the same files with its JSON SerDe, which hands `details` to a `string` column as the
//! object's JSON text; this reader does the same with `serde_json`'s `RawValue` (the text is
//! sliced out of the line, never rebuilt), and types the shell columns as the lake schema says.
//!
//! Like Athena's SerDe with `ignore.malformed.json`, a line that is not a JSON object becomes a
//! row of NULLs (its partition columns still come from the path) and a value of the wrong type
//! becomes a NULL; both are counted in [`ScanCounters`] so nothing is lost silently.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use flate2::bufread::MultiGzDecoder;
use lakewatch_lake::schema::ColumnType;
use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// How many malformed lines a scan remembers by location, to point the user at them.
const MALFORMED_EXAMPLES: usize = 5;

/// Bytes read from a file per step; a line longer than this is still read whole.
const CHUNK: usize = 1 << 20;

/// The first bytes of a gzip member (RFC 1952) and of a zstd frame (RFC 8878).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Most file columns a table can have (the reader keeps one line's values on the stack).
pub(crate) const MAX_FILE_COLUMNS: usize = 24;

/// What one query's scans did, counted as they run. Shared by every file of every table a
/// query reads; a snapshot is [`ScanStats`].
#[derive(Debug, Default)]
pub struct ScanCounters {
    files_opened: AtomicU64,
    bytes_read: AtomicU64,
    rows: AtomicU64,
    malformed_lines: AtomicU64,
    mismatched_values: AtomicU64,
    malformed_examples: Mutex<Vec<String>>,
}

/// What a query's scans read. `files_opened` proves partition pruning: directories excluded by
/// a `year`/`month`/`day`/`hour` predicate are never opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Lake files opened.
    pub files_opened: u64,
    /// Bytes read from disk (compressed).
    pub bytes_read: u64,
    /// Rows produced by the scans (one per non-blank line).
    pub rows: u64,
    /// Lines that were not a JSON object: read as a row of NULLs.
    pub malformed_lines: u64,
    /// Shell values of the wrong type (e.g. `tags` not an array): read as NULL.
    pub mismatched_values: u64,
    /// `file:line: reason` of the first few malformed lines.
    pub malformed_examples: Vec<String>,
}

impl ScanCounters {
    pub fn snapshot(&self) -> ScanStats {
        ScanStats {
            files_opened: self.files_opened.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            malformed_lines: self.malformed_lines.load(Ordering::Relaxed),
            mismatched_values: self.mismatched_values.load(Ordering::Relaxed),
            malformed_examples: self
                .malformed_examples
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
        }
    }

    fn note_malformed(&self, file: &Path, line: u64, reason: &dyn fmt::Display) {
        self.malformed_lines.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut examples) = self.malformed_examples.lock()
            && examples.len() < MALFORMED_EXAMPLES
        {
            examples.push(format!("{}:{line}: {reason}", file.display()));
        }
    }
}

/// One file of a table with the partition values taken from its directory names.
#[derive(Debug, Clone)]
pub(crate) struct LakeFile {
    pub path: PathBuf,
    pub size: u64,
    /// One value per partition key, in key order.
    pub partition_values: Arc<[String]>,
}

/// Where an output column's values come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// The file column at this index of the table's columns, of this type.
    File(usize, ColumnType),
    /// The partition key at this index.
    Partition(usize),
}

/// Builds the output columns of a scan, one line at a time.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    /// The table's file column names, in table order: a line's keys are matched against them.
    names: Arc<[&'static str]>,
    /// For each file column: whether any output column needs it (others are skipped unparsed).
    wanted: Vec<bool>,
    sources: Vec<Source>,
    columns: Vec<ColumnBuilder>,
    rows: usize,
    batch_size: usize,
    counters: Arc<ScanCounters>,
    /// Decompressed bytes not yet cut into lines.
    buf: Vec<u8>,
}

enum ColumnBuilder {
    String(StringBuilder),
    List(ListBuilder<StringBuilder>),
}

impl BatchBuilder {
    /// `schema` is the output (projected) schema, `sources` says where each of its columns
    /// comes from.
    pub fn new(
        schema: SchemaRef,
        names: Arc<[&'static str]>,
        sources: Vec<Source>,
        batch_size: usize,
        counters: Arc<ScanCounters>,
    ) -> Self {
        debug_assert!(names.len() <= MAX_FILE_COLUMNS);
        let mut wanted = vec![false; names.len()];
        for source in &sources {
            if let Source::File(i, _) = source {
                wanted[*i] = true;
            }
        }
        let mut builder = BatchBuilder {
            schema,
            names,
            wanted,
            sources,
            columns: Vec::new(),
            rows: 0,
            batch_size: batch_size.max(1),
            counters,
            buf: Vec::new(),
        };
        builder.columns = builder.new_columns();
        builder
    }

    fn new_columns(&self) -> Vec<ColumnBuilder> {
        let rows = self.batch_size;
        self.sources
            .iter()
            .map(|source| match source {
                Source::File(_, ColumnType::ArrayOfString) => {
                    ColumnBuilder::List(ListBuilder::new(StringBuilder::with_capacity(rows, 0)))
                }
                Source::File(_, ColumnType::String) => {
                    ColumnBuilder::String(StringBuilder::with_capacity(rows, rows * 32))
                }
                Source::Partition(_) => {
                    ColumnBuilder::String(StringBuilder::with_capacity(rows, rows * 2))
                }
            })
            .collect()
    }

    /// Reads every line of `file`, handing each full batch to `emit`. Stops early (returning
    /// `Ok(false)`) when `emit` says the consumer is gone.
    pub fn read_file(
        &mut self,
        file: &LakeFile,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<bool, ReadError> {
        let io = |source| ReadError::Io {
            path: file.path.clone(),
            source,
        };
        let raw = File::open(&file.path).map_err(io)?;
        self.counters.files_opened.fetch_add(1, Ordering::Relaxed);
        let mut input = BufReader::with_capacity(
            CHUNK / 4,
            CountingReader {
                inner: raw,
                counters: self.counters.clone(),
            },
        );
        // Gzip (the lake) or zstd (the detection extract) by its magic bytes, whatever the
        // name; anything else is read as plain NDJSON.
        let start = input.fill_buf().map_err(io)?;
        let mut reader: Box<dyn Read> = if start.starts_with(&GZIP_MAGIC) {
            Box::new(MultiGzDecoder::new(input))
        } else if start.starts_with(&ZSTD_MAGIC) {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(io)?)
        } else {
            Box::new(input)
        };
        // The buffer is kept between files: small files are common (one per hour and
        // producer), and a fresh megabyte per file would cost more than reading it.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = self.read_lines(&mut reader, &mut buf, file, emit);
        self.buf = buf;
        result.map_err(|e| match e {
            LinesError::Io(source) => io(source),
            LinesError::Arrow(e) => ReadError::Arrow(e),
        })
    }

    fn read_lines(
        &mut self,
        reader: &mut dyn Read,
        buf: &mut Vec<u8>,
        file: &LakeFile,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<bool, LinesError> {
        let mut line_no: u64 = 0;
        loop {
            let start = buf.len();
            let n = reader
                .take(CHUNK as u64)
                .read_to_end(buf)
                .map_err(LinesError::Io)?;
            let at_end = n == 0;
            // Everything up to the last newline is complete lines; at the end, all of it is.
            let complete = if at_end {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf[start..]) {
                    Some(i) => start + i + 1,
                    None => continue,
                }
            };
            for line in buf[..complete].split(|b| *b == b'\n') {
                line_no += 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                self.push_line(line, file, line_no);
                if self.rows >= self.batch_size {
                    let batch = self.finish().map_err(LinesError::Arrow)?;
                    if !emit(batch) {
                        return Ok(false);
                    }
                }
            }
            // `split` yields one empty piece after a trailing newline: not a line.
            if complete > 0 && buf[complete - 1] == b'\n' {
                line_no -= 1;
            }
            buf.drain(..complete);
            if at_end {
                return Ok(true);
            }
        }
    }

    /// Adds one line as one row.
    fn push_line(&mut self, line: &[u8], file: &LakeFile, line_no: u64) {
        self.rows += 1;
        if self.columns.is_empty() {
            // Nothing to decode (e.g. `count(*)`): a row per line is all that is asked.
            return;
        }
        let mut slots: [Option<&RawValue>; MAX_FILE_COLUMNS] = [None; MAX_FILE_COLUMNS];
        if self.wanted.iter().any(|w| *w)
            && let Err(error) = parse_line(line, &self.names, &self.wanted, &mut slots)
        {
            self.counters.note_malformed(&file.path, line_no, &error);
            slots = [None; MAX_FILE_COLUMNS];
        }
        for (source, column) in self.sources.iter().zip(self.columns.iter_mut()) {
            match (source, column) {
                (Source::Partition(k), ColumnBuilder::String(b)) => {
                    b.append_value(&file.partition_values[*k])
                }
                (Source::File(i, _), ColumnBuilder::String(b)) => match slots[*i] {
                    None => b.append_null(),
                    Some(raw) => match text_of(raw) {
                        Some(text) => b.append_value(text),
                        None => b.append_null(),
                    },
                },
                (Source::File(i, _), ColumnBuilder::List(b)) => {
                    if !append_list(b, slots[*i]) {
                        self.counters
                            .mismatched_values
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                (Source::Partition(_), ColumnBuilder::List(_)) => {
                    unreachable!("partition columns are strings")
                }
            }
        }
    }

    /// The rows added so far as a batch (possibly empty), and a fresh start.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        // Counted per batch, not per line: a shared counter per line would cost more than
        // the line.
        self.counters.rows.fetch_add(rows as u64, Ordering::Relaxed);
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| match c {
                ColumnBuilder::String(b) => Arc::new(b.finish()) as ArrayRef,
                ColumnBuilder::List(b) => Arc::new(b.finish()) as ArrayRef,
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
    }

    pub fn has_rows(&self) -> bool {
        self.rows > 0
    }
}

/// Why a file could not be read (a malformed line is not an error: it becomes NULLs).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read lake file {}: {source} (is it a complete gzip file? remove or repair it)", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Arrow(ArrowError),
}

/// A failure inside [`BatchBuilder::read_lines`], before the file name is attached.
enum LinesError {
    Io(std::io::Error),
    Arrow(ArrowError),
}

/// Counts the compressed bytes read from disk.
struct CountingReader<R> {
    inner: R,
    counters: Arc<ScanCounters>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Parses one line as a JSON object, keeping the raw text of the wanted keys' values.
/// Keys match column names exactly or, as in Athena's SerDe, ignoring ASCII case; a key that
/// appears twice keeps its last value.
fn parse_line<'a>(
    line: &'a [u8],
    names: &[&'static str],
    wanted: &[bool],
    slots: &mut [Option<&'a RawValue>],
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(line);
    (&mut de).deserialize_map(LineVisitor {
        names,
        wanted,
        slots,
    })?;
    de.end()
}

struct LineVisitor<'n, 's, 'a> {
    names: &'n [&'static str],
    wanted: &'n [bool],
    slots: &'s mut [Option<&'a RawValue>],
}

impl<'de, 'n, 's> Visitor<'de> for LineVisitor<'n, 's, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (one event per line)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed(self.names))? {
            match key {
                Some(i) if self.wanted[i] => self.slots[i] = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Maps a key to the index of its column, without allocating.
struct KeySeed<'n>(&'n [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key).or_else(|| {
            self.0
                .iter()
                .position(|name| name.eq_ignore_ascii_case(key))
        }))
    }
}

/// A JSON value as Athena's SerDe gives it to a `string` column: a string's content, any other
/// value's JSON text (`details` is an object: its text), NULL for `null`.
fn text_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get().trim_ascii();
    match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                Some(Cow::Borrowed(inner))
            } else {
                // The line parsed, so the string is valid JSON.
                serde_json::from_str::<String>(text).ok().map(Cow::Owned)
            }
        }
        Some(b'n') if text == "null" => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// Appends an `array<string>` value; elements that are not strings are kept as their JSON text.
/// Returns false when the value was not an array (or null), which is appended as NULL.
fn append_list(builder: &mut ListBuilder<StringBuilder>, raw: Option<&RawValue>) -> bool {
    let Some(raw) = raw else {
        builder.append_null();
        return true;
    };
    let text = raw.get().trim_ascii();
    if text == "null" {
        builder.append_null();
        return true;
    }
    if !text.starts_with('[') {
        builder.append_null();
        return false;
    }
    match serde_json::from_str::<Vec<&RawValue>>(text) {
        Ok(items) => {
            for item in items {
                match text_of(item) {
                    Some(t) => builder.values().append_value(t),
                    None => builder.values().append_null(),
                }
            }
            builder.append(true);
            true
        }
        Err(_) => {
            builder.append_null();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, ListArray, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::io::Write;

    const NAMES: [&str; 4] = ["source", "tags", "details", "summary"];

    fn builder(counters: Arc<ScanCounters>, batch_size: usize) -> BatchBuilder {
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, true),
            Field::new("tags", DataType::List(item), true),
            Field::new("details", DataType::Utf8, true),
            Field::new("year", DataType::Utf8, true),
        ]));
        BatchBuilder::new(
            schema,
            Arc::from(NAMES.as_slice()),
            vec![
                Source::File(0, ColumnType::String),
                Source::File(1, ColumnType::ArrayOfString),
                Source::File(2, ColumnType::String),
                Source::Partition(0),
            ],
            batch_size,
            counters,
        )
    }

    fn lake_file(dir: &Path, name: &str, content: &[u8], gzip: bool) -> LakeFile {
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap();
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            enc.write_all(content).unwrap();
            enc.finish().unwrap();
        } else {
            f.write_all(content).unwrap();
        }
        LakeFile {
            size: std::fs::metadata(&path).unwrap().len(),
            path,
            partition_values: Arc::from(vec!["2024".to_string()]),
        }
    }

    fn read_all(b: &mut BatchBuilder, file: &LakeFile) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        assert!(
            b.read_file(file, &mut |batch| {
                out.push(batch);
                true
            })
            .unwrap()
        );
        if b.has_rows() {
            out.push(b.finish().unwrap());
        }
        out
    }

    fn strings(batch: &RecordBatch, i: usize) -> Vec<Option<String>> {
        let a = batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..a.len())
            .map(|r| a.is_valid(r).then(|| a.value(r).to_string()))
            .collect()
    }

    #[test]
    fn details_object_is_its_json_text_and_strings_are_unescaped() {
        let dir = tempfile::tempdir().unwrap();
        let lines = concat!(
            r#"{"source":"cloud\"trail","tags":["a","b"],"details":{"k":[1,{"x":"y"}]}}"#,
            "\n",
            r#"{"details":{"n":1.50},"source":"s3-audit","extra":{"ignored":true}}"#,
            "\n"
        );
        let file = lake_file(dir.path(), "a.json.gz", lines.as_bytes(), true);
        let counters = Arc::new(ScanCounters::default());
        let batches = read_all(&mut builder(counters.clone(), 100), &file);
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(
            strings(b, 0),
            vec![Some("cloud\"trail".into()), Some("s3-audit".into())]
        );
        assert_eq!(
            strings(b, 2),
            vec![
                Some(r#"{"k":[1,{"x":"y"}]}"#.into()),
                Some(r#"{"n":1.50}"#.into())
            ]
        );
        assert_eq!(
            strings(b, 3),
            vec![Some("2024".into()), Some("2024".into())]
        );
        let tags = b.column(1).as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(tags.value(0).len(), 2);
        assert!(tags.is_null(1), "a missing array is NULL");
        assert_eq!(counters.snapshot().malformed_lines, 0);
        assert_eq!(counters.snapshot().files_opened, 1);
    }

    #[test]
    fn zstd_files_of_the_extract_are_read_whole_and_counted_compressed() {
        // The detection extract is zstd; a file may hold several frames, like gzip members.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p0.json.zst");
        let mut bytes =
            zstd::bulk::compress(b"{\"source\":\"a\"}\n{\"source\":\"b\"}\n", 9).unwrap();
        bytes.extend(zstd::bulk::compress(b"{\"source\":\"c\"}", 9).unwrap());
        std::fs::write(&path, &bytes).unwrap();
        let file = LakeFile {
            size: bytes.len() as u64,
            path,
            partition_values: Arc::from(vec!["2024".to_string()]),
        };
        let counters = Arc::new(ScanCounters::default());
        let batches = read_all(&mut builder(counters.clone(), 100), &file);
        let sources: Vec<Option<String>> = batches.iter().flat_map(|b| strings(b, 0)).collect();
        assert_eq!(
            sources,
            [Some("a".into()), Some("b".into()), Some("c".into())]
        );
        let stats = counters.snapshot();
        assert_eq!(stats.malformed_lines, 0);
        assert_eq!(
            stats.bytes_read,
            bytes.len() as u64,
            "what is stored, as Athena bills"
        );
    }
    #[test]
    fn malformed_lines_become_null_rows_and_are_counted_with_their_location() {
        let dir = tempfile::tempdir().unwrap();
        let lines = "{\"source\":\"ok\"}\nnot json\n\n[1,2]\n{\"source\":\"x\"} trailing\n{\"source\":\"last\"}";
        let file = lake_file(dir.path(), "b.json", lines.as_bytes(), false);
        let counters = Arc::new(ScanCounters::default());
        let batches = read_all(&mut builder(counters.clone(), 100), &file);
        let b = &batches[0];
        assert_eq!(
            strings(b, 0),
            vec![Some("ok".into()), None, None, None, Some("last".into())]
        );
        assert_eq!(
            strings(b, 3),
            vec![Some("2024".into()); 5],
            "partitions stay"
        );
        let stats = counters.snapshot();
        assert_eq!(stats.malformed_lines, 3);
        assert_eq!(stats.rows, 5, "the blank line is not a row");
        assert!(
            stats.malformed_examples[0].ends_with("b.json:2: expected ident at line 1 column 2"),
            "{:?}",
            stats.malformed_examples
        );
        assert!(stats.malformed_examples[1].contains("b.json:4:"));
        assert!(stats.malformed_examples[2].contains("b.json:5:"));
    }

    #[test]
    fn values_of_other_types_in_string_and_array_columns() {
        let dir = tempfile::tempdir().unwrap();
        let lines = concat!(
            r#"{"source":42,"tags":"not-an-array","details":null}"#,
            "\n",
            r#"{"source":true,"tags":["x",7,null],"details":"text"}"#,
            "\n",
        );
        let file = lake_file(dir.path(), "c.json.gz", lines.as_bytes(), true);
        let counters = Arc::new(ScanCounters::default());
        let batches = read_all(&mut builder(counters.clone(), 100), &file);
        let b = &batches[0];
        assert_eq!(strings(b, 0), vec![Some("42".into()), Some("true".into())]);
        assert_eq!(strings(b, 2), vec![None, Some("text".into())]);
        let tags = b.column(1).as_any().downcast_ref::<ListArray>().unwrap();
        assert!(tags.is_null(0));
        let second = tags.value(1);
        let second = second.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(second.value(0), "x");
        assert_eq!(second.value(1), "7");
        assert!(second.is_null(2));
        assert_eq!(counters.snapshot().mismatched_values, 1);
    }

    #[test]
    fn keys_match_columns_ignoring_case_and_the_last_duplicate_wins() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"Source":"first","SUMMARY":"s","source":"second"}"#;
        let file = lake_file(dir.path(), "d.json", line.as_bytes(), false);
        let batches = read_all(&mut builder(Arc::default(), 100), &file);
        assert_eq!(strings(&batches[0], 0), vec![Some("second".into())]);
    }

    #[test]
    fn batches_are_cut_at_the_batch_size_and_lines_span_read_chunks() {
        let dir = tempfile::tempdir().unwrap();
        // Lines long enough that several cross the 1 MiB read chunks.
        let filler = "x".repeat(300_000);
        let mut content = String::new();
        for i in 0..10 {
            content.push_str(&format!(
                "{{\"source\":\"s{i}\",\"details\":{{\"f\":\"{filler}\"}}}}\r\n"
            ));
        }
        let file = lake_file(dir.path(), "e.json.gz", content.as_bytes(), true);
        let counters = Arc::new(ScanCounters::default());
        let batches = read_all(&mut builder(counters.clone(), 4), &file);
        let sizes: Vec<_> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        assert_eq!(
            strings(&batches[2], 0),
            vec![Some("s8".into()), Some("s9".into())]
        );
        assert_eq!(counters.snapshot().malformed_lines, 0);
    }

    #[test]
    fn a_truncated_gzip_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = lake_file(dir.path(), "f.json.gz", b"{\"source\":\"a\"}\n", true);
        let bytes = std::fs::read(&good.path).unwrap();
        std::fs::write(&good.path, &bytes[..bytes.len() - 6]).unwrap();
        let error = builder(Arc::default(), 10)
            .read_file(&good, &mut |_| true)
            .unwrap_err();
        assert!(error.to_string().contains("f.json.gz"), "{error}");
    }
}
