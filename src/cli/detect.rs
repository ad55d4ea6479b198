//! `lakewatch detect` and `lakewatch test-rules`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;

use lakewatch_detect::{Mode, RuleReport, Window};
use lakewatch_lake::local::files_under;
use lakewatch_lake::partitions::Hour;
use lakewatch_lake::schema::EVENTS;
use lakewatch_plugins::PluginConfig;

use super::MetricsFormat;
use super::content::{RuleDirs, SourceDirs};
pub use crate::local::detect::detect;
use crate::local::detect::{Detection, detect_to, local_topic, select_rules, test_rule};
use lakewatch_deliver::{DestinationsFile, EnvSecrets};
use lakewatch_detect::{Deliveries, DeliveryCounts};

/// The test GeoIP databases as events/geoip/ holds them (documentation networks only), in `dir`.
pub fn test_geoip_in(dir: &Path) -> PluginConfig {
    PluginConfig {
        geoip_city_database: Some(dir.join("test-city.mmdb")),
        geoip_asn_database: Some(dir.join("test-asn.mmdb")),
        ..PluginConfig::default()
    }
}

/// The test GeoIP databases, embedded in the binary so that `lakewatch test-rules` and
/// `lakewatch demo` run from an installed binary too: written to `dir`, which must outlive the
/// pipeline built from the returned configuration.
pub fn embedded_test_geoip(dir: &Path) -> std::io::Result<PluginConfig> {
    let config = test_geoip_in(dir);
    let (city, asn) = (&config.geoip_city_database, &config.geoip_asn_database);
    std::fs::write(
        city.as_ref().expect("set above"),
        include_bytes!("../../events/geoip/test-city.mmdb"),
    )?;
    std::fs::write(
        asn.as_ref().expect("set above"),
        include_bytes!("../../events/geoip/test-asn.mmdb"),
    )?;
    Ok(config)
}

/// Run detection rules over a local lake.
///
/// Without --from/--to this is one scheduled run: each rule evaluates every window due since its
/// watermark (kept in LAKE/state/detector/), at most --max-windows per rule, and publishes new
/// alerts to LAKE/topic/alerts.ndjson. With --from/--to it replays the rules over that range:
/// alerts are written to the alerts table but not published, and watermarks stay where they are
/// unless --advance-watermark is given.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The lake directory (as written by `lakewatch ingest`).
    #[arg(long, value_name = "DIR")]
    pub lake: PathBuf,
    #[command(flatten)]
    pub rules: RuleDirs,
    /// How to end the report with the run's metrics: `table`, `emf` (the CloudWatch Embedded
    /// Metric Format lines the detector Lambda prints for the same figures) or `none`.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub metrics: MetricsFormat,
    /// Only this rule (repeat for several).
    #[arg(long = "rule", value_name = "ID")]
    pub only: Vec<String>,
    /// Replay from this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<DateTime<Utc>>,
    /// Replay up to this time (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<DateTime<Utc>>,
    /// With a replay: move each rule's watermark to the end of the replayed range.
    #[arg(long, requires = "from")]
    pub advance_watermark: bool,
    /// Evaluate as if it were this time (RFC 3339; default: now).
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
    /// Most windows one rule evaluates in a scheduled run; the rest follow in the next runs.
    #[arg(long, default_value_t = 24, value_name = "N")]
    pub max_windows: usize,
    /// Evaluate again the windows set aside after failing three scheduled runs in a row (see
    /// the rule-failure alerts); those that succeed leave the list and their alerts are published.
    #[arg(long, conflicts_with = "from")]
    pub set_aside: bool,
    /// Where alerts go: a destinations file (TOML: webhooks, Slack, PagerDuty, SNS, and routes
    /// by severity, rule or tag; secrets as env:NAME). Default: LAKE/topic/alerts.ndjson.
    /// Undelivered alerts are retried by every later run.
    #[arg(long, value_name = "FILE")]
    pub destinations: Option<PathBuf>,
}

/// Run every rule's offline tests: each test's events are ingested into a lake of their own,
/// the rule is replayed over the test's range, and its alerts must be exactly the expected ones.
#[derive(Debug, Args)]
pub struct TestRulesArgs {
    #[command(flatten)]
    pub rules: RuleDirs,
    /// Only this rule (repeat for several).
    #[arg(long = "rule", value_name = "ID")]
    pub only: Vec<String>,
    /// The sources the test events are ingested with.
    #[command(flatten)]
    pub sources: SourceDirs,
}

/// The reports as people read them: the extract pass (lake objects new since the last run, read
/// once), one line per rule with its queries and the bytes they read, a total (extract, shared
/// scans and queries) that compares those bytes with the bytes of the range evaluated (how many times
/// each byte was read: what Athena would bill relative to the data), then the alerts.
pub fn render_reports(lake: &Path, detection: &Detection) -> String {
    let reports = &detection.reports;
    let extract = &detection.extract;
    let mut out = format!(
        "extract: {} new lake object(s), {} bytes read, {} events ({} outside their hour \
         partition, {} without a time)\n",
        extract.objects,
        extract.bytes_read,
        extract.events,
        extract.outside_partition,
        extract.untimed
    );
    if extract.refiled > 0 {
        out.push_str(&format!(
            "extract: {} of them filed again into quarter-hour partitions (extracted by an \
             earlier version into hours; not new events, so no window is evaluated again)\n",
            extract.refiled
        ));
    }
    if extract.unreadable > 0 {
        out.push_str(&format!(
            "extract: {} unreadable line(s) not extracted (not UTF-8, over {} bytes, or without a \
             time outside any hour partition)\n",
            extract.unreadable,
            lakewatch_detect::extract::MAX_LINE_BYTES
        ));
    }
    for (key, reason) in &extract.damaged {
        out.push_str(&format!("extract: {key}: {reason}\n"));
    }
    let shared = &detection.shared;
    if shared.scans > 0 {
        out.push_str(&format!(
            "shared scans: {} reading {} bytes once for every rule's queries ({} file(s) left to \
             the queries: beyond the memory limit)\n",
            shared.scans, shared.bytes_read, shared.files_left
        ));
    }
    let width = reports
        .iter()
        .map(|r| r.rule.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:width$}  windows  queries  bytes read  alerts  suppressed  published  status\n",
        "rule"
    ));
    let bytes = |read: Option<u64>| read.map_or("?".to_string(), |b| b.to_string());
    for report in reports {
        let status = match &report.error {
            Some(error) => format!("FAILED: {error}"),
            None => format!("ok ({} ms)", report.duration_ms),
        };
        let status = match report.late_windows.len() {
            0 => status,
            late => format!("{status}, {late} window(s) again for late events"),
        };
        out.push_str(&format!(
            "{:width$}  {:>7}  {:>7}  {:>10}  {:>6}  {:>10}  {:>9}  {status}\n",
            report.rule,
            report.windows.len(),
            report.queries,
            bytes(report.bytes_read),
            report.alerts.len(),
            report.suppressed,
            report.published,
        ));
    }
    let queries: usize = reports.iter().map(|r| r.queries).sum();
    let read: Option<u64> = reports
        .iter()
        .filter_map(|r| r.bytes_read)
        .reduce(|a, b| a + b)
        .map(|queried| queried + extract.bytes_read + shared.bytes_read);
    out.push_str(&format!(
        "{:width$}  {:>7}  {:>7}  {:>10}\n",
        "total",
        reports.iter().map(|r| r.windows.len()).sum::<usize>(),
        queries,
        bytes(read),
    ));
    let built: Vec<_> = reports
        .iter()
        .flat_map(|r| r.baselines_built.iter().map(move |b| (&r.rule, b)))
        .collect();
    for (rule, baseline) in &built {
        out.push_str(&format!(
            "baseline of {rule} built from history with window {}: {} bytes read (in the total): {}\n",
            baseline.window,
            bytes(baseline.bytes_read),
            baseline.reason
        ));
    }
    if !built.is_empty() {
        let read: u64 = built.iter().filter_map(|(_, b)| b.bytes_read).sum();
        out.push_str(&format!(
            "baselines built: {} reading {read} bytes\n",
            built.len()
        ));
    }
    if let Some(range) = evaluated_range(reports) {
        let data = events_bytes(lake, range);
        let ratio = match read {
            Some(read) if data > 0 => format!("{:.1}x", read as f64 / data as f64),
            _ => "?".to_string(),
        };
        out.push_str(&format!(
            "range evaluated {range}: {data} bytes of events; read {} bytes = {ratio}\n",
            bytes(read)
        ));
    }
    let alerts: Vec<_> = reports.iter().flat_map(|r| &r.alerts).collect();
    if alerts.is_empty() {
        out.push_str("\nno alerts\n");
    } else {
        out.push_str(&format!("\n{} alert(s):\n", alerts.len()));
        for alert in alerts {
            out.push_str(&format!(
                "  {}  {:8}  {:24}  {}\n",
                alert.windowend, alert.severity, alert.rule, alert.summary
            ));
        }
    }
    out.push_str(&render_deliveries(&detection.deliveries));
    out
}

/// One line per destination that had anything to do: delivered, retried, given up, pending.
pub fn render_deliveries(deliveries: &Deliveries) -> String {
    let mut out = String::new();
    for (destination, counts) in &deliveries.destinations {
        if *counts == DeliveryCounts::default() {
            continue;
        }
        out.push_str(&format!(
            "delivery to {destination}: {} delivered, {} to retry, {} given up, {} pending\n",
            counts.delivered, counts.retried, counts.given_up, counts.pending
        ));
    }
    if let Some(error) = &deliveries.error {
        out.push_str(&format!(
            "delivery stopped: {error} (the next run goes on)\n"
        ));
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

/// From the earliest start to the latest end of the windows the reports evaluated.
fn evaluated_range(reports: &[RuleReport]) -> Option<Window> {
    let windows = reports.iter().flat_map(|r| &r.windows);
    let start = windows.clone().map(|w| w.start).min()?;
    let end = windows.map(|w| w.end).max()?;
    Some(Window::new(start, end))
}

/// Compressed bytes of the `events` files in the hour partitions that `range` touches: the
/// data a perfect detector would read once.
pub fn events_bytes(lake: &Path, range: Window) -> u64 {
    let mut hour = Hour::containing(range.start);
    let mut total = 0;
    while hour.start() < range.end {
        let dir = lake.join(hour.prefix(&EVENTS));
        total += files_under(&dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum::<u64>();
        hour = hour.plus_hours(1);
    }
    total
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let rules = select_rules(&args.rules.set(), &args.only)?;
    let now = args.now.unwrap_or_else(Utc::now);
    let mode = match (args.from, args.to) {
        (Some(from), Some(to)) => {
            anyhow::ensure!(from < to, "--from must be before --to");
            Mode::Replay {
                from,
                to,
                advance_watermark: args.advance_watermark,
            }
        }
        _ if args.set_aside => Mode::SetAside,
        _ => Mode::Scheduled {
            max_windows: args.max_windows.max(1),
        },
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let destinations = match &args.destinations {
        Some(file) => {
            let file = DestinationsFile::load(file)?;
            runtime.block_on(file.resolve(&EnvSecrets::process()))?
        }
        None => local_topic(&args.lake),
    };
    let detection = runtime.block_on(detect_to(&args.lake, &rules, now, mode, destinations))?;
    print!("{}", render_reports(&args.lake, &detection));
    let mut figures = lakewatch_detect::run_figures(&detection.reports);
    lakewatch_detect::delivery_figures(&detection.deliveries, &mut figures);
    print!("{}", args.metrics.render(&figures, Utc::now()));
    let reports = detection.reports;
    Ok(if reports.iter().any(|r| r.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run_tests(args: TestRulesArgs) -> anyhow::Result<ExitCode> {
    let rules = select_rules(&args.rules.set(), &args.only)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let geoip = tempfile::tempdir()?;
    let plugins = PluginConfig {
        sources: args.sources.set(),
        ..embedded_test_geoip(geoip.path())?
    };
    let (mut passed, mut failed) = (0, 0);
    for rule in &rules {
        if rule.tests.is_empty() {
            println!("FAIL {}: the rule has no tests", rule.id);
            failed += 1;
            continue;
        }
        for result in runtime.block_on(test_rule(rule, &plugins))? {
            match result.failure {
                None => {
                    passed += 1;
                    println!("ok   {} / {}", result.rule, result.test);
                }
                Some(why) => {
                    failed += 1;
                    println!("FAIL {} / {}: {why}", result.rule, result.test);
                }
            }
        }
    }
    println!("\ntest-rules: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
