//! Runs rules: for each rule, every due window from its watermark (or a replay range), through
//! the engine, into alerts that are de-duplicated, durably written, then published; the
//! watermark moves only after a window's alerts are written. One failing rule never stops the
//! others.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Row};
use crate::arrivals::{Arrivals, late_window_ends};
use crate::baseline::{BaselineBuilt, Tracker};
use crate::compile::compile;
use crate::rule::{Query, Rule};
use crate::silence::{self, NoSourceCounts, SourceCounts};
use crate::state::{
    FailedWindow, RuleState, SET_ASIDE_AFTER, StateError, StateStore, UnpublishedAlert,
};
use crate::window::{Window, due_window_ends, replay_window_ends};

/// Runs SQL and returns rows of text: Athena on AWS, the embedded engine locally.
pub trait QueryEngine {
    fn query(&self, sql: &str) -> impl Future<Output = Result<Vec<Row>, String>>;

    /// The lake bytes read by this engine's queries since the last call, counted as Athena
    /// bills them (its `DataScannedInBytes`; locally the compressed bytes of every file a query
    /// opens, each time it opens it). The one cost counter: the runner takes it after every
    /// query, so each rule's report carries its own. `None` when the engine cannot tell.
    fn take_bytes_read(&self) -> Option<u64> {
        None
    }

    /// The hourly event counters of the lake that silence rules read instead of events
    /// ([`crate::silence`]): the local lake's counters, CloudWatch's `Lakewatch/Events` on AWS.
    /// `None` when this engine has none: silence rules then fail, saying so.
    fn source_counts(&self) -> Option<&impl SourceCounts> {
        None::<&NoSourceCounts>
    }
}

/// Where alerts go: the alerts table (gzip NDJSON under `alerts/`) and, through its
/// [`AlertDelivery`], the destinations.
pub trait AlertSink {
    type Delivery: AlertDelivery;
    /// Writes a window's alerts durably; writing the same rule and window again replaces them,
    /// so a retried window never duplicates rows.
    fn write(
        &self,
        rule: &Rule,
        window: Window,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<(), String>>;
    /// How the written alerts are delivered.
    fn delivery(&self) -> &Self::Delivery;
}

/// Delivery of written alerts: a durable handover (into the delivery outbox), then passes that
/// send what is due.
pub trait AlertDelivery {
    /// Hands a rule's alerts over for delivery, durably: once this returns `Ok`, the alerts
    /// are the outbox's to deliver. Handing the same alerts over again must not deliver them
    /// twice (the outbox knows each by its alert id), because a run that stops right after
    /// this hands them over again.
    fn hand_over(
        &self,
        rule: &Rule,
        alerts: &[UnpublishedAlert],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), String>>;
    /// Sends what the outbox holds that is due (this run's alerts and retries of earlier
    /// ones); never fails the run: what could not be sent is retried by a later one.
    fn deliver(&self, now: DateTime<Utc>) -> impl Future<Output = Deliveries>;
    /// Whether any destination is configured (a detector without one only writes the table).
    fn publishes(&self) -> bool;
}

/// No destinations: alerts are written to the table only.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOnly;

impl AlertDelivery for TableOnly {
    async fn hand_over(
        &self,
        _: &Rule,
        _: &[UnpublishedAlert],
        _: DateTime<Utc>,
    ) -> Result<(), String> {
        Ok(())
    }

    async fn deliver(&self, _: DateTime<Utc>) -> Deliveries {
        Deliveries::default()
    }

    fn publishes(&self) -> bool {
        false
    }
}

/// What one delivery pass did, per destination (by name), and why it stopped early if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    pub destinations: BTreeMap<String, DeliveryCounts>,
    /// The outbox could not be read or written: the pass stopped (nothing is lost; the next
    /// run goes on).
    pub error: Option<String>,
}

/// One destination's deliveries in a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Sent and acknowledged.
    pub delivered: usize,
    /// Failed in this pass; retried by a later run after a backoff.
    pub retried: usize,
    /// Failed in this pass for the last time: still failing after the give-up time.
    pub given_up: usize,
    /// Still waiting after the pass (not due yet, or not reached).
    pub pending: usize,
}

/// Which windows a run evaluates.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Every due window after the watermark, at most `max_windows` per rule.
    Scheduled { max_windows: usize },
    /// Every window ending in `(from, to]`: alerts are written (replacing earlier output of
    /// the same windows), never published; the watermark moves only if asked.
    Replay {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        advance_watermark: bool,
    },
    /// The windows set aside after repeated failures ([`RuleState::set_aside`]): each one
    /// that succeeds now leaves the list and its alerts are published.
    SetAside,
}

/// What happened to one rule in a run.
#[derive(Debug, Clone, Default)]
pub struct RuleReport {
    pub rule: String,
    pub windows: Vec<Window>,
    /// Windows evaluated again because events arrived for them after they were evaluated
    /// (also in `windows`); their alerts carry `late: "true"`.
    pub late_windows: Vec<Window>,
    pub rows: usize,
    /// Queries sent to the engine.
    pub queries: usize,
    /// Lake bytes those queries read ([`QueryEngine::take_bytes_read`]); `None` when unknown.
    pub bytes_read: Option<u64>,
    pub alerts: Vec<Alert>,
    pub suppressed: usize,
    /// Alerts handed over for delivery ([`AlertDelivery::hand_over`]).
    pub published: usize,
    /// Alerts whose handover failed: they stay in the rule's state for the next run.
    pub publish_failures: usize,
    /// Windows set aside in this run after failing run after run.
    pub set_aside: Vec<FailedWindow>,
    pub duration_ms: u128,
    pub error: Option<String>,
    /// Baselines built from history in this run (first-seen rules, [`crate::baseline`]).
    pub baselines_built: Vec<BaselineBuilt>,
}

/// Runs every rule; each gets its own report.
pub async fn run_rules<E: QueryEngine, S: StateStore, A: AlertSink>(
    rules: &[Rule],
    engine: &E,
    state: &S,
    sink: &A,
    now: DateTime<Utc>,
    mode: Mode,
) -> Vec<RuleReport> {
    let mut reports = Vec::with_capacity(rules.len());
    // Read once for every rule: which events arrived behind the rules' watermarks.
    let arrivals = match mode {
        Mode::Scheduled { .. } => state.load_arrivals().await.map_err(|e| e.to_string()),
        _ => Ok(Arrivals::default()),
    };
    for rule in rules {
        let started = Instant::now();
        let mut report = RuleReport {
            rule: rule.id.clone(),
            ..RuleReport::default()
        };
        let run = match &arrivals {
            Ok(arrivals) => {
                run_rule(rule, engine, state, sink, now, mode, arrivals, &mut report).await
            }
            Err(error) => Err(error.clone()),
        };
        if let Err(error) = run {
            report.error = Some(error);
        } else if let Some(failed) = report.set_aside.first() {
            // The rule went on, but it failed: the run says so (and the detector's metric).
            report.error = Some(format!(
                "window {} set aside after {} failed runs: {}",
                failed.window(),
                failed.attempts,
                failed.error
            ));
        }
        report.duration_ms = started.elapsed().as_millis();
        reports.push(report);
    }
    reports
}

#[allow(clippy::too_many_arguments)]
async fn run_rule<E: QueryEngine, S: StateStore, A: AlertSink>(
    rule: &Rule,
    engine: &E,
    store: &S,
    sink: &A,
    now: DateTime<Utc>,
    mode: Mode,
    arrivals: &Arrivals,
    report: &mut RuleReport,
) -> Result<(), String> {
    let stored = store.load(&rule.id).await.map_err(|e| e.to_string())?;
    let mut state = stored.state;
    let mut version = stored.version;
    // First-seen rules decide with a baseline instead of reading their history every window.
    let mut baseline = Tracker::load(rule, store).await?;
    let sets_aside = matches!(mode, Mode::Scheduled { .. });
    // Windows already evaluated that events arrived for since: evaluated again first, once.
    // A rule that never looked at arrivals starts from the latest (its first pass is the
    // whole lake, which its watermark already covered).
    let late_ends = match (mode, state.arrivals_seen) {
        (Mode::Scheduled { .. }, Some(seen)) => late_window_ends(
            &arrivals.minutes_after(seen),
            state.watermark,
            rule.interval,
            rule.window,
        ),
        _ => Vec::new(),
    };
    let arrivals_done = |state: &mut RuleState| {
        if sets_aside {
            state.arrivals_seen = Some(arrivals.latest());
        }
    };
    if late_ends.is_empty() {
        arrivals_done(&mut state);
    }
    let last_late = late_ends.last().copied();
    let (ends, saves_state, publishes) = match mode {
        Mode::Scheduled { max_windows } => (
            late_ends
                .iter()
                .copied()
                .chain(due_window_ends(
                    state.watermark,
                    now,
                    rule.interval,
                    rule.lateness,
                    max_windows,
                ))
                .collect(),
            true,
            true,
        ),
        Mode::Replay {
            from,
            to,
            advance_watermark,
        } => (
            replay_window_ends(from, to, rule.interval),
            advance_watermark,
            false,
        ),
        Mode::SetAside => (state.set_aside.iter().map(|f| f.end).collect(), true, true),
    };

    // Windows evaluated before a failure are written and their state saved: their alerts are
    // published whatever happens to later windows.
    let evaluated: Result<(), String> = async {
        for end in ends {
            let window = Window::new(end - rule.window, end);
            let late = late_ends.contains(&end);
            let answer = match baseline.as_mut() {
                Some(tracker) => tracker.evaluate(rule, engine, window, report).await,
                None if matches!(rule.query, Query::Silence { .. }) => {
                    silence::evaluate(rule, engine, window, report).await
                }
                None => query_window(rule, engine, window, report).await,
            };
            let alerts = match answer {
                Ok(rows) => {
                    state.failing = None;
                    state.set_aside.retain(|failed| failed.end != window.end);
                    let mut alerts = alerts_of(rule, window, &rows, &state, report);
                    if late {
                        report.late_windows.push(window);
                        for alert in &mut alerts {
                            alert.details.insert("late".into(), "true".into());
                        }
                    }
                    alerts
                }
                Err(error) if sets_aside => {
                    let failed = state.note_failure(window, &error);
                    if failed.attempts < SET_ASIDE_AFTER {
                        version = Some(save(store, rule, &state, version.as_deref()).await?);
                        return Err(format!(
                            "{error} (failed {} of {SET_ASIDE_AFTER} runs in a row; then the window is set aside)",
                            failed.attempts
                        ));
                    }
                    // Set aside: an alert naming the error stands for the window, and the rule
                    // goes on with the next windows.
                    state.failing = None;
                    state.set_aside.push(failed.clone());
                    report.set_aside.push(failed.clone());
                    vec![Alert::rule_failure(rule, &failed)]
                }
                Err(error) => return Err(error),
            };
            sink.write(rule, window, &alerts)
                .await
                .map_err(|e| format!("window {window}: writing alerts failed: {e}"))?;
            // Only alerts that were written suppress their duplicates: a window whose write
            // failed is evaluated again with nothing suppressed.
            for alert in &alerts {
                state.suppress(&alert.dedup_key, window.end, rule.suppress);
            }
            report.windows.push(window);
            if Some(end) == last_late {
                arrivals_done(&mut state);
            }
            if saves_state {
                // Before the watermark: a run stopped in between finds the baseline ahead of
                // the window it evaluates again, and rebuilds it for that window.
                if let Some(tracker) = baseline.as_mut() {
                    tracker.save(rule, store).await?;
                }
                if state.watermark.is_none_or(|w| w < window.end) {
                    state.watermark = Some(window.end);
                }
                // Saved with the watermark that passes them: a run that stops before publishing
                // leaves them to the next one.
                if publishes {
                    state
                        .unpublished
                        .extend(alerts.iter().map(UnpublishedAlert::of));
                }
                version = Some(save(store, rule, &state, version.as_deref()).await?);
            }
            report.alerts.extend(alerts);
        }
        Ok(())
    }
    .await;
    if publishes {
        let published = publish_alerts(rule, store, sink, &mut state, version, now, report).await;
        evaluated.and(published)
    } else {
        evaluated
    }
}

/// Runs the window's query, counting it and the bytes it read.
async fn query_window<E: QueryEngine>(
    rule: &Rule,
    engine: &E,
    window: Window,
    report: &mut RuleReport,
) -> Result<Vec<Row>, String> {
    let sql = compile(rule, window).map_err(|e| e.to_string())?;
    run_query(engine, &sql, window, report).await
}

/// Runs one query of a window, counting it and the bytes it read.
pub(crate) async fn run_query<E: QueryEngine>(
    engine: &E,
    sql: &str,
    window: Window,
    report: &mut RuleReport,
) -> Result<Vec<Row>, String> {
    // Bytes read before this query (by another rule's or outside the runner) are not its own.
    engine.take_bytes_read();
    report.queries += 1;
    let answer = engine.query(sql).await;
    if let Some(read) = engine.take_bytes_read() {
        *report.bytes_read.get_or_insert(0) += read;
    }
    let rows = answer.map_err(|e| format!("window {window}: query failed: {e}"))?;
    report.rows += rows.len();
    Ok(rows)
}

/// The alerts of a window's rows: one per de-duplication key, none for a suppressed key.
fn alerts_of(
    rule: &Rule,
    window: Window,
    rows: &[Row],
    state: &RuleState,
    report: &mut RuleReport,
) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = Vec::new();
    for row in rows {
        let alert = Alert::from_row(rule, window, row);
        if state.is_suppressed(&alert.dedup_key, window.end)
            || alerts.iter().any(|a| a.dedup_key == alert.dedup_key)
        {
            report.suppressed += 1;
            continue;
        }
        alerts.push(alert);
    }
    alerts
}

/// Hands the alerts the state holds (this run's and those left by earlier runs) over for
/// delivery, then saves the state without them. The order is what makes an alert impossible to
/// lose: until the handover succeeded, the alert is in the saved state (it was saved with the
/// watermark that passed it); if the save after the handover fails, the next run hands it over
/// again, which the outbox recognizes by its id.
async fn publish_alerts<S: StateStore, A: AlertSink>(
    rule: &Rule,
    store: &S,
    sink: &A,
    state: &mut RuleState,
    version: Option<String>,
    now: DateTime<Utc>,
    report: &mut RuleReport,
) -> Result<(), String> {
    if state.unpublished.is_empty() {
        return Ok(());
    }
    if let Err(error) = sink
        .delivery()
        .hand_over(rule, &state.unpublished, now)
        .await
    {
        // They stay in the state for the next run; detection is not held up.
        report.publish_failures = state.unpublished.len();
        tracing::warn!(rule = %rule.id, error = %error, "handing alerts over for delivery failed; the next run tries again");
        return Ok(());
    }
    report.published += state.unpublished.len();
    state.unpublished.clear();
    save(store, rule, state, version.as_deref()).await?;
    Ok(())
}

async fn save<S: StateStore>(
    store: &S,
    rule: &Rule,
    state: &RuleState,
    expected: Option<&str>,
) -> Result<String, String> {
    store
        .save(&rule.id, state, expected)
        .await
        .map_err(|e: StateError| e.to_string())
}
