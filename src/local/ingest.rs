//! Local ingestion: files, stdin or S3 object bodies into a local lake, through the same
//! intake ([`lakewatch_plugins::intake`]) as the Lambdas, written as Firehose would deliver them.
//!
//! [`Ingest`] is the reusable part: give it readers and it frames, processes, writes and
//! counts. `lakewatch ingest` (src/cli/ingest.rs) only finds the inputs from its arguments,
//! shows progress and prints the report; detection replays and tests feed it too.
//!
//! Re-runs are idempotent for files: the lake remembers each file it completed (its container
//! and a hash of its content, in [`INGESTED_DOCUMENT`] under `DIR/state/ingest/`), and a later
//! run given the same file with the same content skips it, so retrying a directory after one
//! bad file does not write the others' events twice. A file whose content changed is read
//! again (its unchanged records keep their event ids).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use lakewatch_lake::local::{WriteSummary, state_dir, walk};
use lakewatch_lake::versioned::{FileStore, WriteError};
use lakewatch_lake::{FailedRecord, LakeError, LakeWriter, LocalLake};
use lakewatch_metrics::{Figures, Records};
use lakewatch_plugins::envelope::Provenance;
use lakewatch_plugins::intake::{Container, Intake, Unit};
use lakewatch_plugins::{Pipeline, Tally};

/// Failures reported one by one before the rest are only counted (all are in the error file).
pub const FAILURES_SHOWN: usize = 20;
/// Name and origin container of standard input.
pub const STDIN: &str = "<stdin>";
/// The document (in `DIR/state/ingest/`) of the files a lake holds completely.
pub const INGESTED_DOCUMENT: &str = "files.json";

/// Where one input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputPath {
    Stdin,
    File(PathBuf),
}

impl InputPath {
    /// How messages name it: the path as given or found, relative to `base` when below it.
    pub fn name(&self, base: Option<&Path>) -> String {
        match self {
            InputPath::Stdin => STDIN.to_string(),
            InputPath::File(path) => base
                .and_then(|base| path.strip_prefix(base).ok())
                .unwrap_or(path)
                .display()
                .to_string(),
        }
    }
}

/// Expands the command line's paths: directories to their files (sorted), `-` to stdin.
/// A path that does not exist is an error before anything is read. Symbolic link loops in a
/// directory are skipped with a warning on stderr naming the link (see [`expand_paths_with`]).
pub fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<InputPath>> {
    expand_paths_with(paths, |warning| eprintln!("warning: {warning}"))
}

/// [`expand_paths`], telling `warn` about each path a directory walk skipped and why.
pub fn expand_paths_with(
    paths: &[PathBuf],
    mut warn: impl FnMut(String),
) -> anyhow::Result<Vec<InputPath>> {
    if paths.is_empty() {
        return Ok(vec![InputPath::Stdin]);
    }
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(InputPath::Stdin);
        } else if path.is_dir() {
            let walked = walk(path)?;
            for (skipped, reason) in walked.skipped {
                warn(format!("skipping {}: {reason}", skipped.display()));
            }
            inputs.extend(
                walked
                    .files
                    .into_iter()
                    .filter(|file| file.extension().is_none_or(|e| e != "md"))
                    .map(InputPath::File),
            );
        } else if path.is_file() {
            inputs.push(InputPath::File(path.clone()));
        } else {
            bail!(
                "{}: no such file or directory (give files, directories, or - for stdin)",
                path.display()
            );
        }
    }
    Ok(inputs)
}

/// Counts of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputReport {
    pub name: String,
    pub gzip: bool,
    pub tally: Tally,
}

/// Everything one run did.
#[derive(Debug)]
pub struct IngestOutcome {
    pub inputs: Vec<InputReport>,
    pub total: Tally,
    pub written: WriteSummary,
    /// Failures that were not printed one by one.
    pub failures_not_shown: usize,
    /// Inputs that could not be read at all (name, why): the run went on with the others.
    pub unreadable: Vec<(String, String)>,
    /// Files skipped because the lake already holds them (same file, same content).
    pub already_ingested: Vec<String>,
}

/// The `Function` dimension of local ingestion's record metrics.
pub const FUNCTION: &str = "ingest";

impl IngestOutcome {
    /// The run's figures, as the Lambdas emit them: records by outcome (each record is one
    /// event here), events per source, and what each plugin dropped or failed.
    pub fn figures(&self) -> Figures {
        let mut figures = Figures::default();
        figures.add_records(
            FUNCTION,
            Records {
                ok: self.total.ok,
                dropped: self.total.dropped,
                failed: self.total.failed,
            },
        );
        figures.add_pipeline(&self.total);
        figures
    }
}

/// What happened to one file.
#[derive(Debug)]
pub enum FileIngest<'a> {
    Ingested(&'a InputReport),
    /// The lake already holds this file with this content, from an earlier run.
    AlreadyIngested,
}

/// One ingest run: frames each input, runs the pipeline, writes events and failures into the
/// lake, and counts, so that for every input `records = ok + dropped + failed`.
pub struct Ingest<'a> {
    pipeline: &'a Pipeline,
    writer: LakeWriter<'a>,
    inputs: Vec<InputReport>,
    /// Told about each failed record, with a message naming input, position and error file.
    on_failure: Box<dyn FnMut(&str) + 'a>,
    failures: usize,
    unreadable: Vec<(String, String)>,
    /// The files the lake holds, when this run skips them and records its own.
    ingested: Option<IngestedFiles>,
    already_ingested: Vec<String>,
}

impl<'a> Ingest<'a> {
    pub fn new(
        pipeline: &'a Pipeline,
        writer: LakeWriter<'a>,
        on_failure: impl FnMut(&str) + 'a,
    ) -> Self {
        Ingest {
            pipeline,
            writer,
            inputs: Vec::new(),
            on_failure: Box::new(on_failure),
            failures: 0,
            unreadable: Vec::new(),
            ingested: None,
            already_ingested: Vec::new(),
        }
    }

    /// Makes [`ingest_file`](Self::ingest_file) skip files `lake` already holds, and record
    /// the files this run completes there (at each checkpoint and at the end).
    pub fn skipping_ingested_files(mut self, lake: &LocalLake) -> anyhow::Result<Self> {
        self.ingested = Some(IngestedFiles::load(lake)?);
        Ok(self)
    }

    /// Ingests one opened file, unless the lake already holds it (see
    /// [`skipping_ingested_files`](Self::skipping_ingested_files)). `container` is the file's
    /// ([`container_of`]); `wrap` wraps its reader (a progress bar).
    pub fn ingest_file<R: Read + Send>(
        &mut self,
        name: &str,
        container: &str,
        mut file: File,
        wrap: impl FnOnce(File) -> R,
    ) -> anyhow::Result<FileIngest<'_>> {
        let Some(ingested) = &self.ingested else {
            return Ok(FileIngest::Ingested(self.ingest(
                name,
                container,
                wrap(file),
            )?));
        };
        if ingested
            .holds(container, &mut file)
            .with_context(|| format!("{name}: cannot read"))?
        {
            self.already_ingested.push(name.to_string());
            return Ok(FileIngest::AlreadyIngested);
        }
        let mut reader = Fingerprinting::new(wrap(file));
        self.ingest(name, container, &mut reader)?;
        if let Some(fingerprint) = reader.fingerprint() {
            let ingested = self.ingested.as_mut().expect("checked above");
            ingested
                .completed
                .insert(container.to_string(), fingerprint);
        }
        Ok(FileIngest::Ingested(
            self.inputs.last().expect("just ingested"),
        ))
    }

    /// Ingests one input: `name` for messages and the error file, `container` for event ids
    /// (the same container and bytes always give the same ids).
    pub fn ingest(
        &mut self,
        name: &str,
        container: &str,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        self.ingest_from(name, Container::Named(container), reader)
    }

    /// Ingests one S3 object as the S3-ingest Lambda and the transform would: container
    /// `s3://bucket/key#version` (so the same event ids) and `details._origin` on each event.
    pub fn ingest_object(
        &mut self,
        provenance: &Provenance,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        let name = format!("s3://{}/{}", provenance.bucket, provenance.key);
        self.ingest_from(&name, Container::Object(provenance), reader)
    }

    fn ingest_from(
        &mut self,
        name: &str,
        container: Container<'_>,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        // One clock reading per input: every event of it gets the same received time.
        let intake = Intake::new(self.pipeline, Utc::now());
        let mut written: Result<(), LakeError> = Ok(());
        let streamed = intake.stream(reader, container, |unit| {
            let result = match unit {
                Unit::Event(event) => self.writer.write_event(&event),
                Unit::Dropped { .. } => Ok(()),
                Unit::Failed(failed) => {
                    let record = FailedRecord {
                        source: name,
                        line: failed.line,
                        offset: failed.offset,
                        reason: &failed.reason,
                        raw: failed.raw,
                        excerpt: failed.excerpt,
                    };
                    self.writer.write_error(&record).map(|file| {
                        self.failures += 1;
                        (self.on_failure)(&format!(
                            "{name}:{} (byte {}): {}; the record was written to {}",
                            failed.line,
                            failed.offset,
                            failed.reason,
                            file.display()
                        ));
                    })
                }
            };
            match result {
                Ok(()) => ControlFlow::Continue(()),
                Err(error) => {
                    written = Err(error);
                    ControlFlow::Break(())
                }
            }
        });
        written?;
        self.inputs.push(InputReport {
            name: name.to_string(),
            gzip: streamed.gzip,
            tally: streamed.tally,
        });
        Ok(self.inputs.last().expect("pushed above"))
    }

    /// Records an input that could not be read at all (it cannot be opened): reported at the
    /// end, while the run goes on with the other inputs.
    pub fn unreadable(&mut self, name: &str, reason: String) {
        self.unreadable.push((name.to_string(), reason));
    }

    /// Makes everything ingested so far durable in the lake (see [`LakeWriter::checkpoint`]).
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.writer.checkpoint()?;
        if let Some(ingested) = &mut self.ingested {
            ingested.save()?;
        }
        Ok(())
    }

    /// Completes the lake's files, records the files completed, and returns the counts.
    pub fn finish(mut self) -> anyhow::Result<IngestOutcome> {
        let written = self.writer.finish()?;
        if let Some(ingested) = &mut self.ingested {
            // Only once their events are durable: a crash before this re-reads them.
            ingested.save()?;
        }
        let mut total = Tally::default();
        for input in &self.inputs {
            total.merge(&input.tally);
        }
        Ok(IngestOutcome {
            failures_not_shown: self.failures.saturating_sub(FAILURES_SHOWN),
            inputs: self.inputs,
            total,
            written,
            unreadable: self.unreadable,
            already_ingested: self.already_ingested,
        })
    }
}

/// A file's size and content hash: the same container with the same fingerprint is the same
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    bytes: u64,
    blake3: String,
}

impl Fingerprint {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "bytes": self.bytes, "blake3": self.blake3 })
    }

    fn from_json(value: &serde_json::Value) -> Option<Fingerprint> {
        Some(Fingerprint {
            bytes: value.get("bytes")?.as_u64()?,
            blake3: value.get("blake3")?.as_str()?.to_string(),
        })
    }
}

/// A reader that hashes what passes through it, and notices read errors (a file not read to
/// its end is not complete, so it is not recorded).
struct Fingerprinting<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
    failed: bool,
}

impl<R: Read> Fingerprinting<R> {
    fn new(inner: R) -> Self {
        Fingerprinting {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
            failed: false,
        }
    }

    /// The fingerprint of the whole input, if it was read to its end without error.
    fn fingerprint(mut self) -> Option<Fingerprint> {
        let mut rest = [0; 8192];
        loop {
            match self.read(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        (!self.failed).then(|| Fingerprint {
            bytes: self.bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
        })
    }
}

impl<R: Read> Read for Fingerprinting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                Ok(n)
            }
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                Err(error)
            }
        }
    }
}

/// The files a lake holds completely, by container: [`INGESTED_DOCUMENT`] in
/// `DIR/state/ingest/`, a versioned document, so two runs into one lake both keep theirs.
struct IngestedFiles {
    store: FileStore,
    /// As read at the start of the run.
    known: BTreeMap<String, Fingerprint>,
    /// Completed by this run and not yet saved.
    completed: BTreeMap<String, Fingerprint>,
}

impl IngestedFiles {
    fn load(lake: &LocalLake) -> anyhow::Result<IngestedFiles> {
        let store = FileStore::new(state_dir(lake.root(), "ingest"));
        let (known, _) = Self::read(&store)?;
        Ok(IngestedFiles {
            store,
            known,
            completed: BTreeMap::new(),
        })
    }

    fn read(store: &FileStore) -> anyhow::Result<(BTreeMap<String, Fingerprint>, Option<String>)> {
        let location = || store.path(INGESTED_DOCUMENT).display().to_string();
        let Some(document) = store.read_now(INGESTED_DOCUMENT).with_context(location)? else {
            return Ok((BTreeMap::new(), None));
        };
        let value: serde_json::Value = serde_json::from_slice(&document.bytes)
            .with_context(|| format!("{}: not JSON", location()))?;
        let files = value
            .get("files")
            .and_then(|files| files.as_object())
            .into_iter()
            .flatten()
            .filter_map(|(container, f)| Some((container.clone(), Fingerprint::from_json(f)?)))
            .collect();
        Ok((files, Some(document.version)))
    }

    /// Whether the lake holds `file` (positioned at its start, and left there): a file of
    /// this container was completed with the same size and content. Only such a candidate is
    /// hashed here.
    fn holds(&self, container: &str, file: &mut File) -> io::Result<bool> {
        let Some(known) = self.known.get(container) else {
            return Ok(false);
        };
        if file.metadata()?.len() != known.bytes {
            return Ok(false);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(&mut *file)?;
        file.rewind()?;
        Ok(hasher.finalize().to_hex().as_str() == known.blake3)
    }

    /// Adds the files completed since the last save to the document (merged with what other
    /// runs wrote meanwhile).
    fn save(&mut self) -> anyhow::Result<()> {
        if self.completed.is_empty() {
            return Ok(());
        }
        for _ in 0..20 {
            let (mut files, version) = Self::read(&self.store)?;
            files.extend(self.completed.iter().map(|(c, f)| (c.clone(), f.clone())));
            let document = serde_json::json!({
                "files": files
                    .iter()
                    .map(|(c, f)| (c.clone(), f.to_json()))
                    .collect::<serde_json::Map<_, _>>()
            });
            let bytes = serde_json::to_vec_pretty(&document).expect("JSON serializes");
            match self
                .store
                .write_now(INGESTED_DOCUMENT, &bytes, version.as_deref())
            {
                Ok(_) => {
                    self.known.append(&mut self.completed);
                    return Ok(());
                }
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Failed(error)) => {
                    bail!("{}: {error}", self.store.path(INGESTED_DOCUMENT).display())
                }
            }
        }
        bail!(
            "{}: changed by other runs 20 times in a row; its files will be read again next time",
            self.store.path(INGESTED_DOCUMENT).display()
        )
    }
}

/// The origin container of a file's records: its absolute, canonical path, so the same file
/// gets the same event ids whatever the working directory or the path spelling.
///
/// A UTF-8 path is its own container (the ids it has always had). A path that is not UTF-8 is
/// derived from its raw bytes: its text with the invalid bytes replaced, a NUL, and the raw
/// bytes in hex. Replacement alone would give `log-\xff` and `log-\xfe` one container and so
/// the same event ids; the NUL, which no path can hold, keeps it from ever equalling a UTF-8
/// path's container.
pub fn container_of(path: &Path) -> anyhow::Result<String> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve the path", path.display()))?;
    if let Some(text) = canonical.to_str() {
        return Ok(text.to_string());
    }
    // The OS's own bytes: on Unix exactly those of the file name (`OsStrExt::as_bytes`).
    let raw = canonical.as_os_str().as_encoded_bytes();
    let mut container = format!("{}\0", canonical.display());
    for byte in raw {
        container.push_str(&format!("{byte:02x}"));
    }
    Ok(container)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_lake::LocalLake;
    use lakewatch_plugins::{PluginConfig, builtin_pipeline};

    #[test]
    fn expanding_paths_walks_directories_and_rejects_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for file in ["a/b/x.log", "a/y.json", "a/README.md", "a/.hidden"] {
            std::fs::write(root.join(file), "x\n").unwrap();
        }
        let inputs = expand_paths(&[root.join("a"), PathBuf::from("-")]).unwrap();
        assert_eq!(
            inputs,
            [
                InputPath::File(root.join("a/b/x.log")),
                InputPath::File(root.join("a/y.json")),
                InputPath::Stdin
            ]
        );
        assert_eq!(expand_paths(&[]).unwrap(), [InputPath::Stdin]);
        let error = expand_paths(&[root.join("nope")]).unwrap_err().to_string();
        assert!(error.contains("nope: no such file or directory"), "{error}");
    }

    #[test]
    fn s3_objects_get_the_lambdas_event_ids_and_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(dir.path()).unwrap();
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let mut ingest = Ingest::new(&pipeline, lake.writer(Utc::now()), |_: &str| {});
        let provenance = Provenance {
            bucket: "audit".into(),
            key: "logs/a.json".into(),
            version: "v1".into(),
        };
        let data = b"{\"a\":1}\n{\"b\":2}\n";
        let report = ingest.ingest_object(&provenance, &data[..]).unwrap();
        assert_eq!(report.name, "s3://audit/logs/a.json");
        ingest.finish().unwrap();
        let events = lake.read_events().unwrap();
        let second = events.iter().find(|e| e["details"]["b"] == 2).unwrap();
        assert_eq!(second["details"]["_origin"]["key"], "logs/a.json");
        assert_eq!(second["details"]["_origin"]["line"], 2);
        assert_eq!(second["details"]["_origin"]["offset"], 8);
        let origin = lakewatch_plugins::Origin {
            container: "s3://audit/logs/a.json#v1",
            position: 8,
        };
        let expected = lakewatch_plugins::shell::derive_eventid(r#"{"b":2}"#, origin);
        assert_eq!(second["eventid"], expected.as_str());
    }

    #[test]
    fn ingest_counts_every_record_and_keeps_failures_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(dir.path()).unwrap();
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let mut messages = Vec::new();
        let mut ingest = Ingest::new(&pipeline, lake.writer(Utc::now()), |m: &str| {
            messages.push(m.to_string())
        });
        let data = b"{\"a\":1}\n{\"b\":\ntext line\n[1]\n";
        let report = ingest.ingest("x.json", "/x.json", &data[..]).unwrap();
        let t = report.tally.clone();
        assert_eq!((t.records(), t.ok, t.failed), (4, 2, 2));
        let outcome = ingest.finish().unwrap();
        assert_eq!(outcome.total, t);
        assert_eq!(lake.read_events().unwrap().len(), 2);
        let errors = lake.read_errors().unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0]["line"], 2);
        assert_eq!(errors[1]["record"], "1");
        assert!(
            messages[0].starts_with("x.json:2 (byte 8): truncated JSON"),
            "{}",
            messages[0]
        );
        assert!(messages[1].starts_with("x.json:4 (byte 25): record is JSON but not an object"));
        assert!(messages[1].contains("; the record was written to "));
    }
}
