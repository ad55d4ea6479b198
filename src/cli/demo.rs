//! `lakewatch demo`: the whole local flow on the bundled sample events, one numbered step at a
//! time. Each step is one function over [`Demo`]; later steps (queries, alerts) are added the
//! same way and called from [`run`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use lakewatch_lake::LocalLake;
use lakewatch_lake::schema::EVENTS;
use lakewatch_plugins::PluginConfig;
use serde_json::Value;

use super::content::{RuleDirs, SourceDirs};
use super::detect::{detect, embedded_test_geoip, render_deliveries, render_reports};
use super::ingest::{ingest_paths, render_report};
use super::partitions::{plan_local, render as render_partitions};
use crate::local::detect::{Detection, LocalAlerts};
use crate::local::ingest::{IngestOutcome, InputPath, expand_paths};
use lakewatch_deliver::body::IDEMPOTENCY_HEADER;
use lakewatch_deliver::{DestinationsFile, EnvSecrets};
use lakewatch_detect::{AlertDelivery, AlertSink, UnpublishedAlert};
use lakewatch_testkit::receiver::Receiver;

/// The sample events of `events/`, embedded at build time (build.rs), so the demo runs from an
/// installed binary in any directory.
mod samples {
    include!(concat!(env!("OUT_DIR"), "/samples.rs"));
}

/// Lambda invocation fixtures under the events directory: test inputs, not source events.
const LAMBDA_FIXTURES: &str = "lambda";
/// Extensions of sample event files.
const SAMPLE_EXTENSIONS: &[&str] = &["json", "ndjson", "jsonl", "log", "gz"];
/// Sample events printed in the last step.
const SAMPLES: usize = 6;

/// Run lakewatch end to end on the bundled sample events (start here).
///
/// Ingests events/ (CloudTrail, G Suite, syslog, VPC flow, CloudFront… as JSON, NDJSON, arrays,
/// gzip and raw lines) through the same pipeline as the Lambdas into a lake directory laid out
/// like the S3 bucket, then shows what landed where.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Write the lake here (created if missing) and keep it; by default a temporary lake is
    /// used and removed at exit.
    #[arg(long, value_name = "DIR")]
    pub lake: Option<PathBuf>,

    /// The sample events to ingest (every file below it, except Lambda fixtures in lambda/);
    /// by default the samples embedded in this binary (the source tree's events/).
    #[arg(long, value_name = "DIR")]
    pub events: Option<PathBuf>,

    /// The rules replayed in the detect step.
    #[command(flatten)]
    pub rules: RuleDirs,

    /// The sources the samples are ingested with.
    #[command(flatten)]
    pub sources: SourceDirs,
}

/// The state the steps share.
pub struct Demo {
    pub lake: LocalLake,
    /// The rules of the detect step.
    pub rules: lakewatch_plugins::content::ContentSet,
    pub events: PathBuf,
    /// The embedded test GeoIP databases, written out for the pipeline.
    pub geoip: PluginConfig,
    pub out: Box<dyn Write>,
    step: usize,
}

impl Demo {
    /// Prints a numbered step heading.
    pub fn step(&mut self, title: &str) -> io::Result<()> {
        self.step += 1;
        writeln!(self.out, "\n== {}. {title}\n", self.step)
    }
}

/// Runs `lakewatch demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // The embedded samples and GeoIP databases are written here; the lake too unless kept.
    let temporary = tempfile::tempdir().context("cannot create a temporary directory")?;
    let events = match args.events {
        Some(dir) if !dir.is_dir() => bail!(
            "{}: the sample events directory is missing (leave out --events for the bundled ones)",
            dir.display()
        ),
        Some(dir) => dir,
        None => extract_samples(temporary.path()).context("cannot write the sample events")?,
    };
    let geoip = PluginConfig {
        sources: args.sources.set(),
        ..embedded_test_geoip(temporary.path())?
    };
    let root = match &args.lake {
        Some(dir) => dir.clone(),
        None => temporary.path().join("lake"),
    };
    let mut demo = Demo {
        lake: LocalLake::open(root)?,
        rules: args.rules.set(),
        events,
        geoip,
        out: Box::new(io::stdout()),
        step: 0,
    };
    let outcome = ingest_samples(&mut demo)?;
    show_lake(&mut demo, &outcome)?;
    show_samples(&mut demo)?;
    show_partitions(&mut demo, &outcome)?;
    query_lake(&mut demo)?;
    let detection = detect_scenario(&mut demo)?;
    deliver_alerts(&mut demo, &detection)?;
    writeln!(demo.out)?;
    if args.lake.is_none() {
        writeln!(
            demo.out,
            "The lake was temporary and is removed now; run `lakewatch demo --lake DIR` to keep it."
        )?;
    }
    writeln!(
        demo.out,
        "Your own logs: lakewatch ingest PATH… --lake DIR (see lakewatch ingest --help)."
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the embedded sample events to `dir/events/` and returns that directory.
fn extract_samples(dir: &Path) -> io::Result<PathBuf> {
    let events = dir.join("events");
    for (relative, bytes) in samples::SAMPLE_EVENTS {
        let path = events.join(relative);
        std::fs::create_dir_all(path.parent().expect("below events/"))?;
        std::fs::write(path, bytes)?;
    }
    Ok(events)
}

/// The files of the events directory that are source events: data files by extension
/// (the directory also holds scripts that generate samples, test databases and notices),
/// without the Lambda fixtures.
fn sample_inputs(events: &Path) -> anyhow::Result<Vec<InputPath>> {
    let fixtures = events.join(LAMBDA_FIXTURES);
    Ok(expand_paths(&[events.to_path_buf()])?
        .into_iter()
        .filter(|input| match input {
            InputPath::File(path) => {
                !path.starts_with(&fixtures)
                    && path
                        .extension()
                        .is_some_and(|e| SAMPLE_EXTENSIONS.iter().any(|x| e == *x))
            }
            InputPath::Stdin => false,
        })
        .collect())
}

/// Step: ingest every sample file, as `lakewatch ingest` would.
fn ingest_samples(demo: &mut Demo) -> anyhow::Result<IngestOutcome> {
    let inputs = sample_inputs(&demo.events)?;
    demo.step(&format!(
        "Ingest {} sample files from {} into the lake at {}",
        inputs.len(),
        demo.events.display(),
        demo.lake.root().display()
    ))?;
    demo.out.flush()?;
    // The bundled GeoIP test databases place the samples' documentation addresses in cities,
    // so the travel and country rules have something to work on.
    let outcome = ingest_paths(
        &demo.lake,
        &inputs,
        demo.events.parent(),
        &demo.geoip,
        false,
    )?;
    write!(demo.out, "{}", render_report(&demo.lake, &outcome))?;
    Ok(outcome)
}

/// Step: the partitions written, as Athena would see them.
fn show_lake(demo: &mut Demo, outcome: &IngestOutcome) -> anyhow::Result<()> {
    demo.step("The lake: gzip NDJSON per hour of event time, as Firehose writes the bucket")?;
    let mut per_partition = BTreeMap::new();
    for file in &outcome.written.files {
        *per_partition.entry(file.partition.to_string()).or_insert(0) += file.lines;
    }
    for (partition, lines) in &per_partition {
        writeln!(demo.out, "  events/{partition}/  {lines} events")?;
    }
    if let Some((path, count)) = &outcome.written.errors {
        let shown = path.strip_prefix(demo.lake.root()).unwrap_or(path);
        writeln!(demo.out, "  {}  {count} failed records", shown.display())?;
    }
    Ok(())
}

/// Step: one event of each source, then one whole event.
fn show_samples(demo: &mut Demo) -> anyhow::Result<()> {
    demo.step("A few events, one per source")?;
    let events = demo.lake.read_events()?;
    let mut seen = BTreeMap::new();
    for event in &events {
        let source = event["source"].as_str().unwrap_or_default();
        if seen.len() < SAMPLES && !seen.contains_key(source) {
            seen.insert(source.to_string(), event);
        }
    }
    for event in seen.values() {
        writeln!(
            demo.out,
            "  {}  {:<10} {:<15} {}",
            text(event, "utctimestamp"),
            text(event, "source"),
            text(event, "category"),
            text(event, "summary")
        )?;
    }
    if let Some(event) = seen.values().next() {
        writeln!(
            demo.out,
            "\nOne whole event, as stored in {}:\n{}",
            demo.lake.table_dir(&EVENTS).display(),
            serde_json::to_string_pretty(event)?
        )?;
    }
    Ok(())
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

/// The scenario of events/scenario/ happens on this day; the demo replays the rules over it.
const SCENARIO_FROM: &str = "2026-11-20T07:00:00Z";
const SCENARIO_TO: &str = "2026-11-20T10:00:00Z";

/// Step: the partitions the generator would add to Glue for what was just written.
fn show_partitions(demo: &mut Demo, outcome: &IngestOutcome) -> anyhow::Result<()> {
    demo.step("Partitions: what the partition generator would register in Glue")?;
    let now = chrono::Utc::now();
    let oldest = outcome
        .written
        .files
        .iter()
        .map(|file| file.partition.start())
        .min();
    // Samples span years: look back far enough to see every hour that was written.
    let lookback_hours = oldest
        .map(|oldest| (now - oldest).num_hours() + 1)
        .unwrap_or(1)
        .clamp(1, i64::from(u32::MAX)) as u32;
    let plans = plan_local(demo.lake.root(), now, lookback_hours)?;
    write!(
        demo.out,
        "{}",
        render_partitions(&plans, lookback_hours, false)
    )?;
    Ok(())
}

/// The address the scenario's SSH brute force comes from, pivoted on in the query step.
const PIVOT_IP: &str = "203.0.113.45";

/// Step: Athena SQL on the local engine: the saved IP-pivot query, as an analyst would run it.
fn query_lake(demo: &mut Demo) -> anyhow::Result<()> {
    let template = lakewatch_sql::saved::saved_query("ip-pivot")?;
    let sql = template.render(&[("ip".to_string(), PIVOT_IP.to_string())])?;
    demo.step(&format!(
        "Query: every event that mentions {PIVOT_IP} (lakewatch query --saved ip-pivot --param ip={PIVOT_IP})"
    ))?;
    let engine = lakewatch_sql::LocalEngine::open(demo.lake.root())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(engine.query(&format!(
        "SELECT utctimestamp, source, summary FROM ({sql}) mentions ORDER BY utctimestamp"
    )))?;
    write!(demo.out, "{}", result.to_table()?)?;
    writeln!(
        demo.out,
        "\n({} events; events/mixed/ repeats some records of the per-source files: the same \
         content at another position is another event, with its own eventid)",
        result.num_rows()
    )?;
    Ok(())
}

/// Step: the bundled rules replayed over the scenario, and the alerts they raise.
fn detect_scenario(demo: &mut Demo) -> anyhow::Result<Detection> {
    let rules = lakewatch_detect::load(&demo.rules)?;
    demo.step(&format!(
        "Detect: {} rules replayed over {SCENARIO_FROM} .. {SCENARIO_TO} (events/scenario/)",
        rules.len()
    ))?;
    demo.out.flush()?;
    let from = SCENARIO_FROM.parse()?;
    let to = SCENARIO_TO.parse()?;
    let mode = lakewatch_detect::Mode::Replay {
        from,
        to,
        advance_watermark: false,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let detection = runtime.block_on(detect(demo.lake.root(), &rules, to, mode))?;
    write!(demo.out, "{}", render_reports(demo.lake.root(), &detection))?;
    if let Some(failed) = detection
        .reports
        .iter()
        .find(|report| report.error.is_some())
    {
        bail!("rule {} failed in the demo", failed.rule);
    }
    Ok(detection)
}

/// Step: the scenario's alerts through the delivery outbox to a webhook, an in-process receiver
/// on 127.0.0.1 standing in for a team's endpoint; one line per request it received.
fn deliver_alerts(demo: &mut Demo, detection: &Detection) -> anyhow::Result<()> {
    demo.step(
        "Deliver: the alerts to a webhook through the outbox (lakewatch detect --destinations FILE)",
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    let receiver = runtime.block_on(Receiver::start())?;
    let file = format!(
        "[[destination]]\nname = \"demo-webhook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/lakewatch")
    );
    writeln!(demo.out, "destinations.toml:\n{file}")?;
    let destinations = runtime.block_on(
        DestinationsFile::parse("destinations.toml", &file)?.resolve(&EnvSecrets::process()),
    )?;
    let sink = LocalAlerts::with_destinations(demo.lake.root(), destinations);
    let rules = lakewatch_detect::bundled::rules()?;
    let now = chrono::Utc::now();
    for report in detection.reports.iter().filter(|r| !r.alerts.is_empty()) {
        let rule = rules
            .iter()
            .find(|rule| rule.id == report.rule)
            .expect("the reports are of the bundled rules");
        let alerts: Vec<UnpublishedAlert> =
            report.alerts.iter().map(UnpublishedAlert::of).collect();
        runtime
            .block_on(sink.delivery().hand_over(rule, &alerts, now))
            .map_err(anyhow::Error::msg)?;
    }
    let deliveries = runtime.block_on(sink.delivery().deliver(now));
    let received = receiver.received();
    if received.is_empty() {
        writeln!(
            demo.out,
            "the webhook received nothing: every alert was delivered by an earlier demo run on this lake"
        )?;
    }
    for request in &received {
        let body = request.json();
        writeln!(
            demo.out,
            "  {} {}  {}  Idempotency-Key {}  {:24}  {}",
            request.request.method,
            request.request.path,
            request.status,
            request.request.header(IDEMPOTENCY_HEADER).unwrap_or("-"),
            body["alert"]["rule"].as_str().unwrap_or_default(),
            body["alert"]["summary"].as_str().unwrap_or_default()
        )?;
    }
    write!(demo.out, "{}", render_deliveries(&deliveries))?;
    Ok(())
}
