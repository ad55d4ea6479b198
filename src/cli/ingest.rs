//! `lakewatch ingest`: files, directories or stdin into a local lake, through the same framing
//! and pipeline as the Lambdas, written as Firehose would deliver them.
//!
//! [`Ingest`] is the reusable part: give it readers (a file, stdin, an S3 object body) and it
//! frames, processes, writes and counts; the subcommand only finds the inputs, shows progress
//! and prints the report.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakewatch_lake::local::{WriteSummary, files_under};
use lakewatch_lake::schema::EVENTS;
use lakewatch_lake::{FailedRecord, LakeWriter, LocalLake};
use lakewatch_plugins::envelope::{Provenance, attach_origin, origin_json};
use lakewatch_plugins::framing::frame_reader;
use lakewatch_plugins::{Outcome, Pipeline, PluginConfig, Tally, builtin_pipeline};

/// Inputs at least this large (in total) get a progress bar.
const PROGRESS_THRESHOLD_BYTES: u64 = 4 * 1024 * 1024;
/// Failures printed one by one before the rest are only counted (all are in the error file).
const FAILURES_SHOWN: usize = 20;
/// Name and origin container of standard input.
pub const STDIN: &str = "<stdin>";

/// Read security logs into a local lake, as Firehose would deliver them.
///
/// Every record (a JSON object, an element of a JSON array or of CloudTrail's
/// {"Records": [...]}, or a raw text line such as syslog) becomes one event, written as gzip
/// NDJSON under DIR/events/year=YYYY/month=MM/day=DD/hour=HH/ by event time. Records that fail
/// (truncated JSON, invalid UTF-8, a plugin error) go to DIR/errors/ with the reason, the
/// position and the record itself, so nothing is lost. gzip is detected by content, not by
/// file name.
///
/// Event ids are derived from the file's absolute path and each record's byte offset, so
/// ingesting the same file again writes the same ids.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  lakewatch ingest /var/log/auth.log --lake ./lake
  lakewatch ingest cloudtrail/ --lake ./lake          (a directory, recursively)
  zcat app.json.gz | lakewatch ingest - --lake ./lake
  lakewatch ingest s3://audit/logs/ --endpoint-url https://s3.example.net --lake ./lake
                                                      (objects new since the last run)")]
pub struct IngestArgs {
    /// Files or directories to read; `-` (or nothing) reads standard input. Directories are
    /// read recursively, skipping hidden files and Markdown (*.md) files.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The lake directory to write into; created if missing. Runs add files, never overwrite.
    #[arg(long, value_name = "DIR", env = "LAKEWATCH_LAKE")]
    pub lake: PathBuf,

    /// For s3://bucket/prefix inputs: the endpoint of an S3-compatible store (MinIO, Ceph,
    /// moto…); AWS S3 when not given. Credentials and region come from the usual AWS
    /// environment (variables, profiles).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Don't print failed records one by one (they are still counted and kept in DIR/errors/).
    #[arg(long, short)]
    pub quiet: bool,

    /// A MaxMind-format City database (e.g. GeoLite2-City.mmdb): events get `details.sourcegeo`
    /// (city, country, coordinates) for their source address, which the travel and country
    /// rules need. Without it the GeoIP plugin is off.
    #[arg(long, value_name = "MMDB", env = lakewatch_plugins::GEOIP_CITY_ENV)]
    pub geoip_city: Option<PathBuf>,

    /// A MaxMind-format ASN database (e.g. GeoLite2-ASN.mmdb): adds `asn` and `asorg`.
    #[arg(long, value_name = "MMDB", env = lakewatch_plugins::GEOIP_ASN_ENV)]
    pub geoip_asn: Option<PathBuf>,
}

impl IngestArgs {
    /// The built-in plugins' settings these options give.
    pub fn plugin_config(&self) -> PluginConfig {
        PluginConfig {
            geoip_city_database: self.geoip_city.clone(),
            geoip_asn_database: self.geoip_asn.clone(),
        }
    }
}

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
/// A path that does not exist is an error before anything is read.
pub fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<InputPath>> {
    if paths.is_empty() {
        return Ok(vec![InputPath::Stdin]);
    }
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(InputPath::Stdin);
        } else if path.is_dir() {
            let files = files_under(path)?;
            inputs.extend(
                files
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
        }
    }

    /// Ingests one input: `name` for messages and the error file, `container` for event ids
    /// (the same container and bytes always give the same ids).
    pub fn ingest(
        &mut self,
        name: &str,
        container: &str,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        self.ingest_from(name, container, None, reader)
    }

    /// Ingests one S3 object as the S3-ingest Lambda and the transform would: container
    /// `s3://bucket/key#version` (so the same event ids) and `details._origin` on each event.
    pub fn ingest_object(
        &mut self,
        provenance: &Provenance,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        let name = format!("s3://{}/{}", provenance.bucket, provenance.key);
        self.ingest_from(&name, &provenance.container(), Some(provenance), reader)
    }

    fn ingest_from(
        &mut self,
        name: &str,
        container: &str,
        provenance: Option<&Provenance>,
        reader: impl Read + Send,
    ) -> anyhow::Result<&InputReport> {
        let framer = frame_reader(reader);
        let gzip = framer.is_gzip();
        let mut tally = Tally::default();
        for item in framer {
            let (line, offset, reason, raw, excerpt) = match &item {
                Ok(record) => {
                    let outcome = self.pipeline.process(record.record(container), Utc::now());
                    tally.count(&outcome);
                    match outcome {
                        Outcome::Ok(mut event) => {
                            if let Some(provenance) = provenance {
                                let origin = origin_json(provenance, record.line, record.offset);
                                attach_origin(&mut event, origin);
                            }
                            self.writer.write_event(&event)?;
                            continue;
                        }
                        Outcome::Dropped { .. } => continue,
                        Outcome::Failed { reason } => (
                            record.line,
                            record.offset,
                            reason,
                            record.text.as_bytes(),
                            "",
                        ),
                    }
                }
                Err(error) => {
                    tally.count_failed();
                    (
                        error.line,
                        error.offset,
                        error.reason.clone(),
                        error.raw.as_slice(),
                        error.excerpt.as_str(),
                    )
                }
            };
            let failed = FailedRecord {
                source: name,
                line,
                offset,
                reason: &reason,
                raw,
                excerpt,
            };
            let file = self.writer.write_error(&failed)?;
            self.failures += 1;
            (self.on_failure)(&format!(
                "{name}:{line} (byte {offset}): {reason}; the record was written to {}",
                file.display()
            ));
        }
        self.inputs.push(InputReport {
            name: name.to_string(),
            gzip,
            tally,
        });
        Ok(self.inputs.last().expect("pushed above"))
    }

    /// Makes everything ingested so far durable in the lake (see [`LakeWriter::checkpoint`]).
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        Ok(self.writer.checkpoint()?)
    }

    /// Completes the lake's files and returns the counts.
    pub fn finish(self) -> anyhow::Result<IngestOutcome> {
        let written = self.writer.finish()?;
        let mut total = Tally::default();
        for input in &self.inputs {
            total.merge(&input.tally);
        }
        Ok(IngestOutcome {
            failures_not_shown: self.failures.saturating_sub(FAILURES_SHOWN),
            inputs: self.inputs,
            total,
            written,
        })
    }
}

/// Ingests `inputs` into `lake` with the built-in pipeline, showing progress on stderr for
/// large inputs (only when stderr is a terminal) and failures as they happen (unless quiet).
/// Inputs below `base` are named relative to it.
pub fn ingest_paths(
    lake: &LocalLake,
    inputs: &[InputPath],
    base: Option<&Path>,
    plugins: &PluginConfig,
    quiet: bool,
) -> anyhow::Result<IngestOutcome> {
    let pipeline = builtin_pipeline(plugins)?;
    let progress = progress_bar(inputs)?;
    let mut ingest = Ingest::new(
        &pipeline,
        lake.writer(Utc::now()),
        failure_printer(quiet, progress.clone()),
    );
    for input in inputs {
        let name = input.name(base);
        progress.set_message(name.clone());
        match input {
            InputPath::Stdin => {
                ingest.ingest(&name, "stdin", progress.wrap_read(io::stdin()))?;
            }
            InputPath::File(path) => {
                let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
                let container = container_of(path)?;
                ingest
                    .ingest(&name, &container, progress.wrap_read(file))
                    .with_context(|| format!("while ingesting {name}"))?;
            }
        }
    }
    progress.finish_and_clear();
    ingest.finish()
}

/// Prints the first failures on stderr (above the progress bar), unless quiet.
fn failure_printer(quiet: bool, bar: ProgressBar) -> impl FnMut(&str) {
    let mut shown = 0;
    move |message: &str| {
        if !quiet && shown < FAILURES_SHOWN {
            shown += 1;
            bar.suspend(|| eprintln!("{message}"));
        }
    }
}

/// The origin container of a file's records: its absolute, canonical path, so the same file
/// gets the same event ids whatever the working directory or the path spelling.
fn container_of(path: &Path) -> anyhow::Result<String> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve the path", path.display()))?;
    Ok(canonical.display().to_string())
}

fn progress_bar(inputs: &[InputPath]) -> anyhow::Result<ProgressBar> {
    let mut total = 0;
    for input in inputs {
        if let InputPath::File(path) = input {
            total += std::fs::metadata(path)?.len();
        }
    }
    // Piped stdin may be large and its size is unknown: a spinner counts its bytes.
    let piped_stdin = inputs.contains(&InputPath::Stdin) && !io::stdin().is_terminal();
    if !piped_stdin && total < PROGRESS_THRESHOLD_BYTES {
        return Ok(ProgressBar::hidden());
    }
    let (length, template) = if piped_stdin {
        (None, "{spinner} {bytes} read ({bytes_per_sec}) {wide_msg}")
    } else {
        (
            Some(total),
            "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {wide_msg}",
        )
    };
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template)?);
    Ok(bar)
}

/// The report: counts per input and per event source, totals that add up, and where things
/// went.
pub fn render_report(lake: &LocalLake, outcome: &IngestOutcome) -> String {
    let mut out = String::new();
    let width = outcome
        .inputs
        .iter()
        .map(|i| i.name.chars().count() + if i.gzip { 7 } else { 0 })
        .chain([15])
        .max()
        .unwrap_or(15);
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>8} {:>8} {:>8}",
        "input", "records", "ok", "dropped", "failed"
    );
    for input in &outcome.inputs {
        let name = if input.gzip {
            format!("{} (gzip)", input.name)
        } else {
            input.name.clone()
        };
        let t = &input.tally;
        let _ = writeln!(
            out,
            "{name:<width$} {:>8} {:>8} {:>8} {:>8}",
            t.records(),
            t.ok,
            t.dropped,
            t.failed
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>8} {:>8} {:>8}",
        "event source", "records", "ok", "dropped", "failed"
    );
    for (source, t) in &outcome.total.by_source {
        let _ = writeln!(
            out,
            "{source:<width$} {:>8} {:>8} {:>8} {:>8}",
            t.ok + t.dropped + t.failed,
            t.ok,
            t.dropped,
            t.failed
        );
    }
    let t = &outcome.total;
    let _ = writeln!(
        out,
        "\ntotal: {} records = {} ok + {} dropped + {} failed",
        t.records(),
        t.ok,
        t.dropped,
        t.failed
    );
    let partitions = outcome.written.partitions(&EVENTS);
    let _ = writeln!(
        out,
        "wrote {} events in {} hour partitions under {}",
        outcome.written.lines(&EVENTS),
        partitions.len(),
        lake.table_dir(&EVENTS).display()
    );
    if let Some((path, count)) = &outcome.written.errors {
        let _ = writeln!(
            out,
            "kept {count} failed records with their reasons in {}",
            path.display()
        );
        if outcome.failures_not_shown > 0 {
            let _ = writeln!(
                out,
                "({} failures were not printed above; all are in that file)",
                outcome.failures_not_shown
            );
        }
    }
    out
}

/// Runs `lakewatch ingest`.
pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    if let [url] = args.paths.as_slice()
        && let Some(url) = url.to_str().filter(|u| u.starts_with("s3://"))
    {
        return ingest_s3(&args, url);
    }
    if args
        .paths
        .iter()
        .any(|p| p.to_str().is_some_and(|u| u.starts_with("s3://")))
    {
        bail!("an s3:// URL must be the only input of a run: run lakewatch ingest once per source");
    }
    let mut inputs = expand_paths(&args.paths)?;
    if let Ok(lake_root) = args.lake.canonicalize() {
        // `lakewatch ingest logs/ --lake logs/lake` must not read the lake back into itself.
        let before = inputs.len();
        inputs.retain(|input| match input {
            InputPath::File(path) => !path
                .canonicalize()
                .is_ok_and(|path| path.starts_with(&lake_root)),
            InputPath::Stdin => true,
        });
        if inputs.len() < before {
            eprintln!(
                "skipping {} files inside the lake directory {}",
                before - inputs.len(),
                args.lake.display()
            );
        }
    }
    if inputs.is_empty() {
        bail!("the given paths hold no files to ingest");
    }
    let lake = LocalLake::open(&args.lake)?;
    let outcome = ingest_paths(&lake, &inputs, None, &args.plugin_config(), args.quiet)?;
    io::stdout().write_all(render_report(&lake, &outcome).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `lakewatch ingest s3://bucket/prefix`: the objects new since the last run (cursor under
/// `DIR/state/s3-ingest/`), each completed in the lake before the cursor moves past it. Event
/// ids are those the S3-ingest Lambda gives the same objects.
fn ingest_s3(args: &IngestArgs, url: &str) -> anyhow::Result<ExitCode> {
    use lakewatch_aws::pull::{PullConfig, local_cursor, pull_into_lake};
    let config = PullConfig::from_url(url, args.endpoint_url.as_deref())
        .with_context(|| format!("{url}: expected s3://bucket or s3://bucket/prefix"))?;
    let lake = LocalLake::open(&args.lake)?;
    let pipeline = builtin_pipeline(&args.plugin_config())?;
    let mut ingest = Ingest::new(
        &pipeline,
        lake.writer(Utc::now()),
        failure_printer(args.quiet, ProgressBar::hidden()),
    );
    let pulled = pull_into_lake(&config, lake.root(), Utc::now(), None, |object, body| {
        ingest.ingest_object(object, body)?;
        // Durable in the lake before the cursor moves past the object.
        ingest.checkpoint()
    })?;
    let outcome = ingest.finish()?;
    println!(
        "{url}: {} new of {} objects ingested; cursor {}",
        pulled.ingested,
        pulled.listed,
        local_cursor(lake.root(), &config).location()
    );
    io::stdout().write_all(render_report(&lake, &outcome).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
