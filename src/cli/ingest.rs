//! `lakewatch ingest`: files, directories or stdin into a local lake, through the same framing
//! and pipeline as the Lambdas, written as Firehose would deliver them.
//!
//! The work is done by [`crate::local::ingest`]; this subcommand only finds the inputs from
//! its arguments, shows progress and prints the report.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakewatch_lake::LocalLake;
use lakewatch_lake::local::state_dir;
use lakewatch_lake::schema::EVENTS;
use lakewatch_plugins::{PluginConfig, builtin_pipeline};

use super::MetricsFormat;
use super::content::SourceDirs;
use crate::local::ingest::{
    FAILURES_SHOWN, FileIngest, Ingest, IngestOutcome, InputPath, container_of, expand_paths,
};

/// Inputs at least this large (in total) get a progress bar.
const PROGRESS_THRESHOLD_BYTES: u64 = 4 * 1024 * 1024;

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

    /// How to end the report with the run's metrics: `table`, `emf` (the CloudWatch Embedded
    /// Metric Format lines the Lambdas print for the same figures) or `none`.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub metrics: MetricsFormat,

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

    #[command(flatten)]
    pub sources: SourceDirs,
}

impl IngestArgs {
    /// The built-in plugins' settings these options give.
    pub fn plugin_config(&self) -> PluginConfig {
        PluginConfig {
            geoip_city_database: self.geoip_city.clone(),
            geoip_asn_database: self.geoip_asn.clone(),
            sources: self.sources.set(),
        }
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
    )
    .skipping_ingested_files(lake)?;
    for input in inputs {
        let name = input.name(base);
        progress.set_message(name.clone());
        match input {
            InputPath::Stdin => {
                ingest.ingest(&name, "stdin", progress.wrap_read(io::stdin()))?;
            }
            InputPath::File(path) => {
                let opened = File::open(path)
                    .with_context(|| format!("{name}: cannot open"))
                    .and_then(|file| Ok((file, container_of(path)?)));
                match opened {
                    Ok((file, container)) => {
                        let done = ingest
                            .ingest_file(&name, &container, file, |file| progress.wrap_read(file))
                            .with_context(|| format!("while ingesting {name}"))?;
                        if let FileIngest::AlreadyIngested = done {
                            progress.inc(std::fs::metadata(path).map_or(0, |m| m.len()));
                        }
                    }
                    // One unreadable file does not stop the others; the run fails at the end.
                    Err(error) => {
                        progress.suspend(|| eprintln!("{error:#}; going on with the other inputs"));
                        ingest.unreadable(&name, format!("{error:#}"));
                    }
                }
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
    if !outcome.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "could not read {} inputs (the others were ingested):",
            outcome.unreadable.len()
        );
        for (name, reason) in &outcome.unreadable {
            let _ = writeln!(out, "  {name}: {reason}");
        }
    }
    if !outcome.already_ingested.is_empty() {
        let skipped = &outcome.already_ingested;
        let _ = writeln!(
            out,
            "skipped {} files the lake already holds (same file, same content; delete {} to \
             read them again):",
            skipped.len(),
            state_dir(lake.root(), "ingest").display()
        );
        for name in skipped.iter().take(FAILURES_SHOWN) {
            let _ = writeln!(out, "  {name}");
        }
        if skipped.len() > FAILURES_SHOWN {
            let _ = writeln!(out, "  and {} more", skipped.len() - FAILURES_SHOWN);
        }
    }
    let removed = &outcome.written.removed_temporaries;
    if !removed.is_empty() {
        let _ = writeln!(
            out,
            "removed {} incomplete files left by an earlier run that was stopped",
            removed.len()
        );
    }
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
    print!("{}", args.metrics.render(&outcome.figures(), Utc::now()));
    if outcome.unreadable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
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
    print!("{}", args.metrics.render(&outcome.figures(), Utc::now()));
    Ok(ExitCode::SUCCESS)
}
