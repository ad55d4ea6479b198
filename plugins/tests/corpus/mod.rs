//! The pipeline bench's corpus, shared by the bench (`benches/pipeline.rs`) and the test that
//! keeps the pipeline's output byte for byte the same on it (`tests/output_digest.rs`).
//!
//! The corpus is built from every sample source file under `events/` (JSON, NDJSON, arrays,
//! CloudTrail `Records` files, raw syslog lines, gzip), framed as the Lambdas frame them, then
//! repeated with varied fields (a sequence number, IPv4 last octets, the line's tail) until it
//! holds at least [`MIN_EVENTS`] records, so every event differs (ids, addresses, enrichment
//! caches cannot shortcut). It is laid out as one NDJSON/raw-line stream, one record per line,
//! as an S3 object or a batch of Firehose records would hold it.
//!
//! [`run`] is the one loop both use, so what the bench times is what the test compares.
//! [`Digests`] are the BLAKE3 digests of the outputs of consecutive [`CHUNK`]s of records,
//! stored in [`DIGESTS_FILE`].

#![allow(dead_code)] // The bench and the test each use part of it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lakewatch_plugins::framing::frame_reader;
use lakewatch_plugins::{Outcome, Pipeline, RecordKind};
use serde_json::Value;

pub const MIN_EVENTS: usize = 100_000;
/// Source files only: Lambda event fixtures and GeoIP test databases are not source events.
const SKIPPED_DIRS: [&str; 2] = ["lambda", "geoip"];
const SOURCE_EXTENSIONS: [&str; 6] = ["json", "ndjson", "jsonl", "log", "txt", "gz"];
/// The container every record is framed from (it feeds the derived event ids).
pub const CONTAINER: &str = "bench";
/// Records per stored digest: a mismatch names the chunk it is in.
pub const CHUNK: usize = 1000;
/// Where the digests of the output on the whole corpus are kept.
pub const DIGESTS_FILE: &str = "tests/corpus/output.digests";
/// Set to regenerate [`DIGESTS_FILE`] from the current code (only when the output is meant
/// to change, or when `events/` changed the corpus).
pub const UPDATE_ENV: &str = "LAKEWATCH_UPDATE_OUTPUT_DIGESTS";

/// The fixed clock of the received time, so the output depends on the code and corpus only.
pub fn received() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-17T06:10:54Z")
        .unwrap()
        .into()
}

pub struct Corpus {
    /// One record per line.
    pub data: Vec<u8>,
    pub records: usize,
    pub files: usize,
    /// Distinct sample records in one round of the corpus.
    pub samples: usize,
}

impl Corpus {
    pub fn build() -> Corpus {
        let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut files = Vec::new();
        collect_files(&events, &mut files);
        files.sort();
        let mut samples: Vec<(RecordKind, String)> = Vec::new();
        for path in &files {
            let file = std::fs::File::open(path).unwrap();
            for framed in frame_reader(std::io::BufReader::new(file)).flatten() {
                let text = match framed.kind {
                    // One line per record: re-serialize pretty-printed JSON compactly.
                    RecordKind::Json => match serde_json::from_str::<Value>(&framed.text) {
                        Ok(value) => value.to_string(),
                        Err(_) => continue,
                    },
                    RecordKind::Line => framed.text,
                };
                samples.push((framed.kind, text));
            }
        }
        assert!(
            !samples.is_empty(),
            "no sample events under {}",
            events.display()
        );
        let mut data = Vec::new();
        let mut records = 0;
        while records < MIN_EVENTS {
            for (kind, text) in &samples {
                vary(*kind, text, records, &mut data);
                data.push(b'\n');
                records += 1;
            }
        }
        Corpus {
            data,
            records,
            files: files.len(),
            samples: samples.len(),
        }
    }

    /// The corpus's first `records` records (whole lines).
    pub fn head(&self, records: usize) -> &[u8] {
        let end = memchr::memchr_iter(b'\n', &self.data)
            .nth(records.saturating_sub(1))
            .map_or(self.data.len(), |newline| newline + 1);
        &self.data[..if records == 0 { 0 } else { end }]
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                collect_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// Writes a variant of a sample record: copy `n` differs from every other copy.
fn vary(kind: RecordKind, text: &str, n: usize, out: &mut Vec<u8>) {
    match kind {
        RecordKind::Line => {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(format!(" seq={n}").as_bytes());
        }
        RecordKind::Json => {
            let mut value: Value = serde_json::from_str(text).unwrap();
            vary_addresses(&mut value, n);
            if let Value::Object(map) = &mut value {
                map.insert("bench_seq".into(), n.into());
            }
            serde_json::to_writer(&mut *out, &value).unwrap();
        }
    }
}

/// Changes the last octet of every IPv4 address string.
fn vary_addresses(value: &mut Value, n: usize) {
    match value {
        Value::String(s) => {
            if s.parse::<std::net::Ipv4Addr>().is_ok() {
                let (head, _) = s.rsplit_once('.').unwrap();
                *s = format!("{head}.{}", n % 250 + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| vary_addresses(v, n)),
        Value::Object(map) => map.values_mut().for_each(|v| vary_addresses(v, n)),
        _ => {}
    }
}

/// What one record produced.
pub enum Produced<'a> {
    /// An event: its lake line (with the newline) was appended to the output buffer.
    Event,
    Dropped {
        plugin: &'static str,
        reason: &'a str,
    },
    /// Failed in the pipeline or in framing.
    Failed { reason: &'a str },
}

/// Frames `data`, runs the pipeline on every record and appends each event's lake line to
/// `out`; `after` sees every record's outcome (and may flush `out`), in order.
pub fn run(
    pipeline: &Pipeline,
    data: &[u8],
    received: DateTime<Utc>,
    out: &mut Vec<u8>,
    mut after: impl FnMut(&mut Vec<u8>, Produced<'_>),
) {
    for framed in frame_reader(data) {
        let framed = match framed {
            Ok(framed) => framed,
            Err(error) => {
                after(
                    out,
                    Produced::Failed {
                        reason: &error.to_string(),
                    },
                );
                continue;
            }
        };
        match pipeline.process(framed.record(CONTAINER), received) {
            Outcome::Ok(event) => {
                event.write_json_line(out);
                after(out, Produced::Event);
            }
            Outcome::Dropped { plugin, reason } => after(
                out,
                Produced::Dropped {
                    plugin,
                    reason: &reason,
                },
            ),
            Outcome::Failed { reason, .. } => after(out, Produced::Failed { reason: &reason }),
        }
    }
}

/// The digest of the corpus itself and of the output of each [`CHUNK`] of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// BLAKE3 of the whole corpus: when it differs, `events/` changed, not the pipeline.
    pub input: String,
    /// Records in the whole corpus.
    pub records: usize,
    /// One per chunk, in order: `ok dropped failed blake3-of-the-chunk's-output`.
    pub chunks: Vec<String>,
}

impl Digests {
    /// Runs the pipeline over the first `records` records of the corpus (a multiple of
    /// [`CHUNK`], or all of them).
    pub fn compute(pipeline: &Pipeline, corpus: &Corpus, records: usize) -> Digests {
        assert!(records % CHUNK == 0 || records >= corpus.records);
        let mut chunks = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let (mut ok, mut dropped, mut failed) = (0, 0, 0);
        let mut line = String::new();
        let mut out = Vec::new();
        let mut finish_chunk = |hasher: &mut blake3::Hasher, counts: [usize; 3]| {
            chunks.push(format!(
                "{} {} {} {}",
                counts[0],
                counts[1],
                counts[2],
                hasher.finalize().to_hex()
            ));
            hasher.reset();
        };
        let mut seen = 0;
        run(
            pipeline,
            corpus.head(records),
            received(),
            &mut out,
            |out, produced| {
                match produced {
                    Produced::Event => ok += 1,
                    Produced::Dropped { plugin, reason } => {
                        dropped += 1;
                        line.clear();
                        writeln!(line, "dropped by {plugin}: {reason}").unwrap();
                        out.extend_from_slice(line.as_bytes());
                    }
                    Produced::Failed { reason } => {
                        failed += 1;
                        line.clear();
                        writeln!(line, "failed: {reason}").unwrap();
                        out.extend_from_slice(line.as_bytes());
                    }
                }
                hasher.update(out);
                out.clear();
                seen += 1;
                if seen % CHUNK == 0 {
                    finish_chunk(&mut hasher, [ok, dropped, failed]);
                    (ok, dropped, failed) = (0, 0, 0);
                }
            },
        );
        if seen % CHUNK != 0 {
            finish_chunk(&mut hasher, [ok, dropped, failed]);
        }
        Digests {
            input: blake3::hash(&corpus.data).to_hex().to_string(),
            records: corpus.records,
            chunks,
        }
    }

    fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DIGESTS_FILE)
    }

    /// The stored digests of the whole corpus.
    pub fn stored() -> Digests {
        let path = Self::path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "cannot read {}: {error}; create it with {UPDATE_ENV}=1 cargo test -p lakewatch-plugins --test output_digest",
                path.display()
            )
        });
        let mut input = None;
        let mut records = None;
        let mut chunks = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            match line.split_once(' ') {
                Some(("input", digest)) => input = Some(digest.to_string()),
                Some(("records", n)) => records = Some(n.parse().unwrap()),
                Some(("chunk", digest)) => chunks.push(digest.to_string()),
                _ => panic!("unexpected line in {}: {line:?}", path.display()),
            }
        }
        Digests {
            input: input.expect("an input line"),
            records: records.expect("a records line"),
            chunks,
        }
    }

    /// Writes these digests as the stored ones.
    pub fn store(&self) {
        let mut text = String::from(
            "# BLAKE3 digests of the pipeline's output on the bench corpus (plugins/tests/corpus/mod.rs),\n\
             # per chunk of 1000 records: ok dropped failed digest. Checked by tests/output_digest.rs\n\
             # and by the pipeline bench. Regenerate only on purpose, see UPDATE_ENV there.\n",
        );
        writeln!(text, "input {}", self.input).unwrap();
        writeln!(text, "records {}", self.records).unwrap();
        for chunk in &self.chunks {
            writeln!(text, "chunk {chunk}").unwrap();
        }
        std::fs::write(Self::path(), text).unwrap();
    }

    /// Panics, saying where and what to do, unless the chunks of `computed` (all, or the
    /// first ones) match the stored digests.
    pub fn check(computed: &Digests, corpus: &Corpus) {
        let stored = Self::stored();
        assert_eq!(
            (&computed.input, computed.records),
            (&stored.input, stored.records),
            "the bench corpus is not the one the digests were made from (files under events/ \
             changed). Regenerate {DIGESTS_FILE} with the code *before* your change: \
             {UPDATE_ENV}=1 cargo test -p lakewatch-plugins --test output_digest"
        );
        assert_eq!(stored.chunks.len(), corpus.records.div_ceil(CHUNK));
        for (i, (now, then)) in computed.chunks.iter().zip(&stored.chunks).enumerate() {
            let first = i * CHUNK;
            let last = (first + CHUNK).min(corpus.records) - 1;
            assert_eq!(
                now,
                then,
                "the pipeline's output changed on records {first}..={last} of the bench corpus \
                 (counts and digest: now vs stored). The first record there is:\n{}\n\
                 If the change is meant, regenerate {DIGESTS_FILE}: \
                 {UPDATE_ENV}=1 cargo test -p lakewatch-plugins --test output_digest",
                String::from_utf8_lossy(
                    corpus
                        .head(first + 1)
                        .rsplit(|&b| b == b'\n')
                        .nth(1)
                        .unwrap_or_default()
                )
            );
        }
    }
}
