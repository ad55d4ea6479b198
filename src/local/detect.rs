//! Detection in local mode: the embedded engine answers the rules' SQL, alerts are written to
//! the local lake's `alerts/` table, state lives in `LAKE/state/detector/`, and alerts are
//! delivered through the outbox beside it (`LAKE/state/detector/outbox/`) to the destinations
//! of a destinations file, or by default to `LAKE/topic/alerts.ndjson` (the local stand-in for
//! the SNS topic, which also receives every `sns` destination's alerts). The rules are the
//! bundled ones unless a directory is given; `lakewatch detect` and `lakewatch test-rules` only
//! parse their arguments and call [`select_rules`], [`detect`] and [`test_rule`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::local::extract::ExtractReport;
use lakewatch_deliver::{Destinations, Dispatch, HttpTransport, TopicPublisher};
use lakewatch_detect::Deliveries;
use lakewatch_detect::run_rules;
use lakewatch_detect::runner::MAX_QUERY_BYTES;
use lakewatch_detect::{
    Alert, AlertDelivery, AlertSink, Mode, QueryEngine, Row, Rule, RuleReport, Window,
};
use lakewatch_lake::counts::LocalSourceCounts;
use lakewatch_lake::layout::alert_object_key;
use lakewatch_lake::local::extract_dir;
use lakewatch_lake::partitions::Slice;
use lakewatch_lake::schema::EVENTS;
use lakewatch_lake::versioned::{FileStore, write_atomically};
use lakewatch_plugins::content::ContentSet;
use lakewatch_plugins::{Pipeline, PluginConfig};
use lakewatch_sql::LocalEngine;

/// The rules to run: those of `set` (the bundled ones, embedded in this binary so it runs from
/// anywhere, unless turned off, and the user's directories); only the ids in `only`, when
/// given.
pub fn select_rules(set: &ContentSet, only: &[String]) -> anyhow::Result<Vec<Rule>> {
    let rules = lakewatch_detect::load(set)?;
    for id in only {
        if !rules.iter().any(|rule| &rule.id == id) {
            let known: Vec<_> = rules.iter().map(|rule| rule.id.as_str()).collect();
            anyhow::bail!("no rule {id:?}; rules: {}", known.join(", "));
        }
    }
    Ok(rules
        .into_iter()
        .filter(|rule| only.is_empty() || only.contains(&rule.id))
        .collect())
}

/// What a detection run did: its extract pass, the shared scans, each rule, then the
/// delivery pass.
#[derive(Debug, Clone)]
pub struct Detection {
    pub extract: ExtractReport,
    pub shared: SharedScans,
    pub reports: Vec<RuleReport>,
    pub deliveries: Deliveries,
}

/// The shared scans of a run ([`QueryEngine::share_scan`]): the extract's files read once into
/// memory for every rule's queries. Their bytes are in no rule's figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedScans {
    /// Chunks of windows whose reads were shared.
    pub scans: u64,
    /// Compressed bytes read (each file once, however many queries read it).
    pub bytes_read: u64,
    /// Files left on disk for their queries to read (beyond the memory limit).
    pub files_left: u64,
}

/// Runs the rules over the lake and delivers to the local topic ([`detect_to`]).
pub async fn detect(
    lake: &Path,
    rules: &[Rule],
    now: DateTime<Utc>,
    mode: Mode,
) -> anyhow::Result<Detection> {
    detect_to(lake, rules, now, mode, local_topic(lake)).await
}

/// The destinations of a local run without a destinations file: the local topic.
pub fn local_topic(lake: &Path) -> Destinations {
    Destinations::topic(LocalAlerts::topic_path(lake).display().to_string())
}

/// Runs the rules over the lake: first extracts what arrived since the last run
/// ([`crate::local::extract`]), then evaluates the rules over the extract, where every event
/// is under its own hour; then delivers what the outbox holds that is due (this run's alerts,
/// and retries of earlier runs') to `destinations`.
pub async fn detect_to(
    lake: &Path,
    rules: &[Rule],
    now: DateTime<Utc>,
    mode: Mode,
    destinations: Destinations,
) -> anyhow::Result<Detection> {
    anyhow::ensure!(
        lake.is_dir(),
        "{}: cannot open the lake: not a directory (create a lake with `lakewatch ingest --lake DIR FILES`)",
        lake.display()
    );
    let state = FileStore::new(state_dir(lake));
    let (extract, engine) = extract_for_rules(lake, &state, now).await?;
    let sink = LocalAlerts::with_destinations(lake, destinations);
    let queries = LocalQueries::new(&engine).with_counts(LocalSourceCounts::new(lake));
    let reports = run_rules(rules, &queries, &state, &sink, now, mode).await;
    let shared = *queries.shared.lock().expect("not poisoned");
    let deliveries = sink.delivery().deliver(now).await;
    Ok(Detection {
        extract,
        shared,
        reports,
        deliveries,
    })
}

/// Extracts what arrived since the last run ([`crate::local::extract::update`], recording the
/// pass in `state`), then opens the extract as the `events` table the rules' queries read.
pub async fn extract_for_rules(
    lake: &Path,
    state: &FileStore,
    now: DateTime<Utc>,
) -> anyhow::Result<(ExtractReport, LocalEngine)> {
    let extract = crate::local::extract::update(lake, state, now).await?;
    let engine = LocalEngine::open_extract(lake)
        .with_context(|| format!("{}: cannot open the extract", extract_dir(lake).display()))?;
    Ok((extract, engine))
}

/// The embedded engine as the rules' query engine: rows as text, as Athena returns them, and
/// the compressed bytes every query's scans read, summed (what Athena would bill); with the
/// lake's event counters for silence rules.
pub struct LocalQueries<'a> {
    engine: &'a LocalEngine,
    bytes_read: AtomicU64,
    shared: Mutex<SharedScans>,
    counts: Option<LocalSourceCounts>,
}

impl<'a> LocalQueries<'a> {
    pub fn new(engine: &'a LocalEngine) -> Self {
        LocalQueries {
            engine,
            bytes_read: AtomicU64::new(0),
            shared: Mutex::default(),
            counts: None,
        }
    }

    /// Lets silence rules read these counters (the lake's, `LAKE/state/counts/`).
    pub fn with_counts(mut self, counts: LocalSourceCounts) -> Self {
        self.counts = Some(counts);
        self
    }
}

impl QueryEngine for LocalQueries<'_> {
    fn take_bytes_read(&self) -> Option<u64> {
        Some(self.bytes_read.swap(0, Ordering::Relaxed))
    }

    fn source_counts(&self) -> Option<&impl lakewatch_detect::SourceCounts> {
        self.counts.as_ref()
    }

    async fn share_scan(&self, ranges: &[Window]) -> Result<(), String> {
        let slices: Vec<Slice> = ranges
            .iter()
            .flat_map(|range| Slice::covering(range.start, range.end))
            .collect();
        let shared = self
            .engine
            .share(EVENTS.name, &slices)
            .map_err(|e| e.to_string())?;
        let mut scans = self.shared.lock().expect("not poisoned");
        scans.scans += 1;
        scans.bytes_read += shared.bytes_read;
        scans.files_left += shared.files_left;
        Ok(())
    }

    async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        if sql.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "the query is {} bytes long and Athena refuses queries longer than \
                 {MAX_QUERY_BYTES} bytes",
                sql.len()
            ));
        }
        let result = self.engine.query(sql).await.map_err(|e| e.to_string())?;
        self.bytes_read
            .fetch_add(result.stats.bytes_read, Ordering::Relaxed);
        let columns = result.column_names();
        let rows = result.rows().map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|values| columns.iter().cloned().zip(values).collect())
            .collect())
    }
}

/// Alerts into `LAKE/alerts/year=…/month=…/day=…/hour=…/<rule>-<window>.json.gz`: one file per
/// rule and window; evaluating the window again rewrites it with the alerts it had plus the new
/// ones, so retries never duplicate and replays never erase ([`merged_alerts_body`]).
///
/// Alerts are delivered through the outbox in the detector's state directory.
///
/// [`merged_alerts_body`]: lakewatch_detect::alert::merged_alerts_body
pub struct LocalAlerts {
    lake: PathBuf,
    dispatch: Dispatch<FileStore, HttpTransport<LocalTopic>>,
}

impl LocalAlerts {
    /// Delivering to the local topic.
    pub fn new(lake: impl Into<PathBuf>) -> Self {
        let lake = lake.into();
        let destinations = local_topic(&lake);
        LocalAlerts::with_destinations(lake, destinations)
    }

    /// Delivering to `destinations` (`sns` ones to the local topic).
    pub fn with_destinations(lake: impl Into<PathBuf>, destinations: Destinations) -> Self {
        let lake = lake.into();
        let topic = LocalTopic {
            path: Self::topic_path(&lake),
        };
        LocalAlerts {
            dispatch: Dispatch::new(
                FileStore::new(state_dir(&lake)),
                destinations,
                HttpTransport::new(topic),
            ),
            lake,
        }
    }

    /// The local topic: one published alert per line.
    pub fn topic_path(lake: &Path) -> PathBuf {
        lakewatch_lake::local::alerts_topic_path(lake)
    }

    /// The same key as the detector Lambda's objects, below the lake directory.
    fn window_file(&self, rule: &Rule, window: Window) -> PathBuf {
        self.lake
            .join(alert_object_key(&rule.id, window.start, window.end))
    }
}

impl AlertSink for LocalAlerts {
    type Delivery = Dispatch<FileStore, HttpTransport<LocalTopic>>;

    fn delivery(&self) -> &Self::Delivery {
        &self.dispatch
    }

    async fn write(&self, rule: &Rule, window: Window, alerts: &[Alert]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        let path = self.window_file(rule, window);
        let write = || -> Result<(), String> {
            let existing = match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.to_string()),
            };
            let body = lakewatch_detect::alert::merged_alerts_body(existing.as_deref(), alerts)?;
            std::fs::create_dir_all(path.parent().expect("alert files have a directory"))
                .map_err(|e| e.to_string())?;
            // A reader never sees half a file.
            write_atomically(&path, |file| file.write_all(&body)).map_err(|e| e.to_string())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The local stand-in for SNS: each message a line of `LAKE/topic/alerts.ndjson`, whatever
/// topic a destination names.
pub struct LocalTopic {
    path: PathBuf,
}

impl TopicPublisher for LocalTopic {
    async fn publish(&self, _topic_arn: &str, message: &str) -> Result<(), String> {
        let append = || -> std::io::Result<()> {
            std::fs::create_dir_all(self.path.parent().expect("the topic has a directory"))?;
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            writeln!(file, "{message}")
        };
        append().map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Where local mode keeps the detector's state.
pub fn state_dir(lake: &Path) -> PathBuf {
    lakewatch_lake::local::state_dir(lake, "detector")
}

/// The result of one rule test.
#[derive(Debug)]
pub struct RuleTestResult {
    pub rule: String,
    pub test: String,
    /// Why the test failed; `None` when it passed.
    pub failure: Option<String>,
}

/// Runs every test of a rule on a lake of its own: ingests the test's events with the built-in
/// pipeline, replays the rule over the test's range, and compares the alerts with the expected
/// ones (each expected alert must match exactly one alert's columns, and no alert may be left over).
pub async fn test_rule(rule: &Rule, plugins: &PluginConfig) -> anyhow::Result<Vec<RuleTestResult>> {
    let pipeline = lakewatch_plugins::builtin_pipeline(plugins)?;
    let mut results = Vec::new();
    for test in &rule.tests {
        let failure = run_rule_test(rule, test, &pipeline)
            .await
            .with_context(|| format!("rule {} test {:?}", rule.id, test.name))?;
        results.push(RuleTestResult {
            rule: rule.id.clone(),
            test: test.name.clone(),
            failure,
        });
    }
    Ok(results)
}

async fn run_rule_test(
    rule: &Rule,
    test: &lakewatch_detect::RuleTest,
    pipeline: &Pipeline,
) -> anyhow::Result<Option<String>> {
    let lake_dir = tempfile::tempdir()?;
    let lake = lakewatch_lake::local::LocalLake::open(lake_dir.path())?;
    // A bundled rule's test events are embedded with it; a rule file's are beside it.
    let events: Box<dyn Read + Send> =
        match lakewatch_detect::bundled::test_events(&test.events) {
            Some(text) if test.events.is_relative() => Box::new(text.as_bytes()),
            _ => Box::new(File::open(&test.events).with_context(|| {
                format!("{}: cannot open the test events", test.events.display())
            })?),
        };
    let name = test.events.display().to_string();
    let mut failures = Vec::new();
    let mut ingest =
        crate::local::ingest::Ingest::new(pipeline, lake.writer(Utc::now()), |m: &str| {
            failures.push(m.to_string())
        });
    ingest.ingest(&name, &name, events)?;
    ingest.finish()?;
    if !failures.is_empty() {
        return Ok(Some(format!(
            "test events did not ingest: {}",
            failures.join("; ")
        )));
    }
    let parse = |text: &str| -> anyhow::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("{text:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc))
    };
    let (from, to) = (parse(&test.from)?, parse(&test.to)?);
    let detection = detect(
        lake_dir.path(),
        std::slice::from_ref(rule),
        to,
        Mode::Replay {
            from,
            to,
            advance_watermark: false,
        },
    )
    .await?;
    let report = &detection.reports[0];
    if let Some(error) = &report.error {
        return Ok(Some(format!("the rule failed: {error}")));
    }
    Ok(compare_alerts(&report.alerts, &test.expect))
}

/// `None` when each expected alert matches exactly one alert and every alert is expected.
fn compare_alerts(alerts: &[Alert], expected: &[BTreeMap<String, String>]) -> Option<String> {
    let matches = |alert: &Alert, expect: &BTreeMap<String, String>| {
        expect.iter().all(|(column, value)| {
            let actual = match column.as_str() {
                "summary" => Some(alert.summary.as_str()),
                "severity" => Some(alert.severity.as_str()),
                _ => alert.details.get(column).and_then(|v| v.as_str()),
            };
            actual == Some(value.as_str())
        })
    };
    let mut unmatched: Vec<&Alert> = alerts.iter().collect();
    for expect in expected {
        match unmatched.iter().position(|alert| matches(alert, expect)) {
            Some(index) => {
                unmatched.remove(index);
            }
            None => {
                return Some(format!(
                    "no alert matches {expect:?}; alerts: {}",
                    describe(alerts)
                ));
            }
        }
    }
    if unmatched.is_empty() {
        None
    } else {
        Some(format!(
            "{} unexpected alert(s): {}",
            unmatched.len(),
            describe(&unmatched.into_iter().cloned().collect::<Vec<_>>())
        ))
    }
}

fn describe(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "none".into();
    }
    alerts
        .iter()
        .map(|a| format!("[{}] {:?}", a.summary, a.details))
        .collect::<Vec<_>>()
        .join("; ")
}
