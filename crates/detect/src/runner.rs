//! Runs rules: for each rule, every due window from its watermark (or a replay range), through
//! the engine, into alerts that are de-duplicated, durably written, then published; the
//! watermark moves only after a window's alerts are written. One failing rule never stops the
//! others.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lakewatch_lake::partitions::SLICE_MINUTES;
use lakewatch_plugins::shell::format_timestamp;

use crate::alert::{Alert, Row};
use crate::arrivals::{Arrivals, late_window_ends};
use crate::baseline::{BaselineBuilt, Bootstrap, Tracker, bootstrap_rows};
use crate::compile::{
    GROUPED_PART_COLUMN, WINDOW_END_COLUMN, batch_columns, compile, compile_batch,
    first_seen_bootstrap_sql, grouped_column, grouped_union, tagged_union,
};
use crate::previous::PreviousTracker;
use crate::rule::{Query, Rule};
use crate::sequence::SequenceTracker;
use crate::silence::{self, NoSourceCounts, SourceCounts};
use crate::state::{
    FailedWindow, RuleState, SET_ASIDE_AFTER, StateError, StateStore, UnpublishedAlert,
};
use crate::window::{Window, due_window_ends, replay_window_ends};

/// The longest query text Athena accepts (its `QueryString` limit, 262,144 bytes). Rules never
/// send longer queries, and the local engine refuses them as Athena would, so a rule that
/// works locally does not fail on AWS for its length.
pub const MAX_QUERY_BYTES: usize = 262_144;

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

    /// Reads the events of `ranges` (hour-aligned) once, so that the queries that follow read
    /// them from memory instead of the lake, query after query: the rules due in a run then
    /// cost one read of the union of what they read ([`run_rules`]). Replaces what an earlier
    /// call shared (keeping what both need, unread again). The bytes are the engine's to count
    /// and report (not in [`Self::take_bytes_read`]); what `ranges` miss is still read by the
    /// queries themselves, so the answers never depend on it. The default shares nothing:
    /// every query reads the lake (Athena today; a `CREATE TABLE AS` of the union is the
    /// documented next step).
    fn share_scan(&self, ranges: &[Window]) -> impl Future<Output = Result<(), String>> {
        let _ = ranges;
        std::future::ready(Ok(()))
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
    /// Queries sent to the engine. A query grouping several rules' ([`run_rules`]) is counted
    /// once, in its first rule's report (with the bytes it read), so the reports add up to
    /// what the engine was sent.
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

/// At most this many hours of events are read into memory for one shared scan
/// ([`QueryEngine::share_scan`]): windows due in a run are evaluated in chunks of about this
/// much data, in time order, each chunk's union read once. A window whose reads reach further
/// back (a long `history`) shares only its last hours; its queries read the rest themselves.
pub const SHARED_SCAN_HOURS: i64 = 48;

impl RuleReport {
    /// Notes a baseline built from history with `window`'s queries, which read what the
    /// report's bytes grew by since `read_before`.
    pub(crate) fn note_built(&mut self, window: Window, reason: String, read_before: Option<u64>) {
        let bytes_read = self
            .bytes_read
            .map(|after| after - read_before.unwrap_or(0));
        self.baselines_built.push(BaselineBuilt {
            window,
            reason,
            bytes_read,
        });
    }
}

/// Runs every rule; each gets its own report.
///
/// Shared scans: every due window of every rule is computed first; then, in chunks of at most
/// [`SHARED_SCAN_HOURS`] of data in time order, the union of what the chunk's windows read is
/// handed to [`QueryEngine::share_scan`] (read once), the rules' batched queries of the chunk
/// are sent grouped ([`read_grouped`]), and each rule evaluates its windows of the chunk, one
/// rule after the other, so K rules × W windows cost one read of their union and a few queries.
pub async fn run_rules<E: QueryEngine, S: StateStore, A: AlertSink>(
    rules: &[Rule],
    engine: &E,
    state: &S,
    sink: &A,
    now: DateTime<Utc>,
    mode: Mode,
) -> Vec<RuleReport> {
    // Read once for every rule: which events arrived behind the rules' watermarks.
    let arrivals = match mode {
        Mode::Scheduled { .. } => state.load_arrivals().await.map_err(|e| e.to_string()),
        _ => Ok(Arrivals::default()),
    };
    let mut runs = Vec::with_capacity(rules.len());
    for rule in rules {
        let started = Instant::now();
        let mut run = RuleRun::new(rule, mode);
        let ready = match &arrivals {
            Ok(arrivals) => run.start(state, now, arrivals).await,
            Err(error) => Err(error.clone()),
        };
        if let Err(error) = ready {
            run.stop(error);
        }
        run.elapsed += started.elapsed();
        runs.push(run);
    }
    for chunk in shared_chunks(&runs) {
        // A chunk of rules that read no events (silence) has nothing to share.
        if !chunk.ranges.is_empty()
            && let Err(error) = engine.share_scan(&chunk.ranges).await
        {
            // Not fatal: the queries then read the lake themselves.
            tracing::warn!(error = %error, "the shared scan failed; each query reads the lake");
        }
        build_baselines_together(&mut runs, chunk.until, engine).await;
        read_grouped(&mut runs, chunk.until, engine).await;
        for run in &mut runs {
            let started = Instant::now();
            run.evaluate_until(chunk.until, engine, state, sink).await;
            run.elapsed += started.elapsed();
        }
    }
    let mut reports = Vec::with_capacity(runs.len());
    for mut run in runs {
        let started = Instant::now();
        run.finish(state, sink, now).await;
        run.elapsed += started.elapsed();
        reports.push(run.into_report());
    }
    reports
}

/// A chunk of a run's windows: every window ending at or before `until` (and after the
/// previous chunk's), and the ranges of events they read, aligned to the extract's quarter
/// hours ([`lakewatch_lake::partitions::Slice`]).
#[derive(Debug, Clone, PartialEq)]
struct SharedChunk {
    until: DateTime<Utc>,
    ranges: Vec<Window>,
}

/// The run's windows in chunks of at most [`SHARED_SCAN_HOURS`] of data (a chunk holds at
/// least the windows of one end time), in time order.
fn shared_chunks(runs: &[RuleRun<'_>]) -> Vec<SharedChunk> {
    let mut windows: Vec<(DateTime<Utc>, Option<Window>)> = runs
        .iter()
        .flat_map(|run| run.ends.iter().map(|end| (*end, run.reads(*end))))
        .collect();
    windows.sort_by_key(|(end, _)| *end);
    let most = SHARED_SCAN_HOURS * 3600 / SLICE_SECONDS;
    let mut chunks = Vec::new();
    let mut slices: BTreeSet<i64> = BTreeSet::new();
    let mut until: Option<DateTime<Utc>> = None;
    for (end, reads) in windows {
        let needed = reads.map(slices_of).unwrap_or_default();
        if let Some(current) = until
            && end > current
            && slices.union(&needed).count() as i64 > most
        {
            chunks.push(SharedChunk {
                until: current,
                ranges: ranges_of(&std::mem::take(&mut slices)),
            });
        }
        slices.extend(needed);
        until = Some(end);
    }
    if let Some(until) = until {
        chunks.push(SharedChunk {
            until,
            ranges: ranges_of(&slices),
        });
    }
    chunks
}

const SLICE_SECONDS: i64 = SLICE_MINUTES as i64 * 60;

/// The extract's quarter hours (as numbers since the epoch) that `range` touches.
fn slices_of(range: Window) -> BTreeSet<i64> {
    let first = range.start.timestamp().div_euclid(SLICE_SECONDS);
    let last = (range.end.timestamp() - 1).div_euclid(SLICE_SECONDS);
    (first..=last).collect()
}

/// Consecutive quarter hours as ranges.
fn ranges_of(slices: &BTreeSet<i64>) -> Vec<Window> {
    let at = |slice: i64| {
        DateTime::from_timestamp(slice * SLICE_SECONDS, 0).expect("a slice of a window is a time")
    };
    let mut ranges: Vec<Window> = Vec::new();
    for &slice in slices {
        match ranges.last_mut() {
            Some(last) if last.end == at(slice) => last.end = at(slice + 1),
            _ => ranges.push(Window::new(at(slice), at(slice + 1))),
        }
    }
    ranges
}

/// A rule's windows (in time order) in batches of one query each: split where windows neither
/// overlap nor touch (a batch reads its union, never a gap between windows), and halved until
/// each batch's query fits Athena's length limit ([`MAX_QUERY_BYTES`]). A batch holds at least
/// `least` windows: fewer are left to their own query (a rule reading alone batches two or
/// more; grouped with other rules' queries, a single window is worth a branch).
fn batches(rule: &Rule, windows: &[Window], least: usize) -> Vec<(Vec<Window>, String)> {
    let mut runs: Vec<Vec<Window>> = Vec::new();
    for window in windows {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| window.start <= last.end) => {
                run.push(*window)
            }
            _ => runs.push(vec![*window]),
        }
    }
    let mut batches = Vec::new();
    while let Some(run) = runs.pop() {
        if run.len() < least {
            continue;
        }
        match compile_batch(rule, &run) {
            Ok(Some(sql)) if sql.len() <= MAX_QUERY_BYTES => batches.push((run, sql)),
            // Not a kind that batches, or a rule that does not compile: window by window.
            Ok(None) | Err(_) => {}
            // A window too long on its own is its own query's to fail, as before.
            Ok(Some(_)) if run.len() < 2 => {}
            Ok(Some(_)) => {
                let (first, second) = run.split_at(run.len() / 2);
                runs.push(second.to_vec());
                runs.push(first.to_vec());
            }
        }
    }
    batches.sort_by_key(|(windows, _)| windows[0]);
    batches
}

/// A query reading rows of some of a rule's windows ([`RuleRun::planned`]), sent on its own or
/// grouped with other rules' ([`read_grouped`]).
struct Part {
    /// The windows it reads, in time order.
    windows: Vec<Window>,
    sql: String,
    /// The columns it returns ([`batch_columns`]); `None` when only the rule's author knows
    /// them (`kind = "sql"`): such a part is never grouped.
    columns: Option<Vec<String>>,
    /// A pairing rule's events, from which its windows' alerts queries follow
    /// ([`PreviousTracker::fold_batch`]); otherwise the windows' rows, tagged with
    /// [`WINDOW_END_COLUMN`].
    events: bool,
}

impl Part {
    /// The time the part's windows cover, for its errors.
    fn union(&self) -> Window {
        let (first, last) = (self.windows[0], self.windows[self.windows.len() - 1]);
        Window::new(first.start, last.end)
    }
}

/// Grouped queries: the batched queries of every rule's windows of the chunk ending at `until`
/// (a single window too) whose columns are known (the built-in kinds and a pairing rule's
/// events, not SQL rules), as few `UNION ALL`s ([`grouped_union`]) as fit Athena's length
/// limit, in rule order; each rule then finds its windows' rows as if it had read them itself
/// ([`RuleRun::take`]). A scheduled run with one due window per rule sends one query for all of
/// them (plus SQL rules' own and a pairing rule's alerts query). A grouped query that fails is
/// not an error: each rule then reads its own batches ([`RuleRun::read_batched`]), and a
/// failure belongs to the failing rule and window as before.
async fn read_grouped<E: QueryEngine>(runs: &mut [RuleRun<'_>], until: DateTime<Utc>, engine: &E) {
    let mut groups: Vec<Vec<(usize, Part)>> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for part in run.planned(until, 1) {
            if part.columns.is_none() {
                continue;
            }
            let fits = groups.last().is_some_and(|group| {
                let with: Vec<&Part> = group.iter().map(|(_, p)| p).chain([&part]).collect();
                grouped_sql(&with).len() <= MAX_QUERY_BYTES
            });
            match groups.last_mut() {
                Some(group) if fits => group.push((index, part)),
                _ => groups.push(vec![(index, part)]),
            }
        }
    }
    for group in groups {
        read_group(runs, group, engine).await;
    }
}

/// Baselines built together: the first-seen rules whose next window of the chunk ending at
/// `until` builds its baseline from history read their histories with one query per window
/// ([`first_seen_bootstrap_sql`]) instead of one each, so a first run or a replay reads the
/// longest history once, however many rules build from it. The query is counted, with its
/// bytes, in the first rule's report. Not an error when it fails: each rule then builds its
/// baseline with its own query, and a failure is its own, as before.
async fn build_baselines_together<E: QueryEngine>(
    runs: &mut [RuleRun<'_>],
    until: DateTime<Utc>,
    engine: &E,
) {
    let mut groups: BTreeMap<Window, Vec<usize>> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        if let Some(window) = run.builds_baseline(until) {
            groups.entry(window).or_default().push(index);
        }
    }
    for (window, mut group) in groups {
        // A rule that cannot share the read (a placeholder in its filter) builds on its own.
        group.retain(|index| first_seen_bootstrap_sql(&[runs[*index].rule], window).is_ok());
        if group.len() < 2 {
            continue;
        }
        // The longest history first: the rule the shared read is counted with.
        group.sort_by_key(|index| std::cmp::Reverse(runs[*index].rule.history));
        let rules: Vec<&Rule> = group.iter().map(|index| runs[*index].rule).collect();
        let sql = match first_seen_bootstrap_sql(&rules, window) {
            Ok(sql) if sql.len() <= MAX_QUERY_BYTES => sql,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(error = %error, "baselines are built each with its own query");
                continue;
            }
        };
        let (answer, bytes_read) = counted_query(engine, &sql, &mut runs[group[0]].report).await;
        let split = answer.and_then(|rows| bootstrap_rows(&rules, rows));
        let ids: Vec<String> = rules.iter().map(|rule| rule.id.clone()).collect();
        let rows = match split {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(rules = ?ids, error = %error, "building baselines together failed; each rule builds its own");
                continue;
            }
        };
        for (n, (index, rows)) in group.into_iter().zip(rows).enumerate() {
            if let Some(tracker) = runs[index].baseline.as_mut() {
                tracker.hand_bootstrap(Bootstrap {
                    window,
                    rows,
                    bytes_read: bytes_read.map(|read| if n == 0 { read } else { 0 }),
                    rules: ids.clone(),
                });
            }
        }
    }
}

/// The grouped query of `parts` ([`grouped_union`]); their columns are known.
fn grouped_sql(parts: &[&Part]) -> String {
    let parts: Vec<(&str, &[String])> = parts
        .iter()
        .map(|part| {
            (
                part.sql.as_str(),
                part.columns.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    grouped_union(&parts)
}

/// Sends one group of parts (a lone part as its own query) and hands each rule its rows. The
/// query is counted, with the bytes it read, in the report of the group's first rule, so the
/// reports add up to what the engine was sent.
async fn read_group<E: QueryEngine>(
    runs: &mut [RuleRun<'_>],
    mut group: Vec<(usize, Part)>,
    engine: &E,
) {
    if group.len() == 1 {
        let (index, part) = group.remove(0);
        runs[index].read_part(part, engine).await;
        return;
    }
    let sql = grouped_sql(&group.iter().map(|(_, part)| part).collect::<Vec<_>>());
    let (answer, _) = counted_query(engine, &sql, &mut runs[group[0].0].report).await;
    let split = answer.and_then(|rows| split_grouped(&group, rows));
    let rows = match split {
        Ok(rows) => rows,
        Err(error) => {
            let rules: Vec<&str> = group
                .iter()
                .map(|(i, _)| runs[*i].rule.id.as_str())
                .collect();
            tracing::warn!(rules = ?rules, error = %error, "a grouped query failed; each rule reads its own windows");
            return;
        }
    };
    for ((index, part), rows) in group.into_iter().zip(rows) {
        let run = &mut runs[index];
        run.report.rows += rows.len();
        run.take(part, rows, engine).await;
    }
}

/// A grouped query's rows back per part, each with its part's own column names.
fn split_grouped(group: &[(usize, Part)], rows: Vec<Row>) -> Result<Vec<Vec<Row>>, String> {
    let mut split: Vec<Vec<Row>> = vec![Vec::new(); group.len()];
    for row in rows {
        let tag = row.get(GROUPED_PART_COLUMN).cloned().flatten();
        let Some(index) = tag.as_deref().and_then(|tag| tag.parse::<usize>().ok()) else {
            return Err(format!(
                "a row without its part ({GROUPED_PART_COLUMN} = {tag:?})"
            ));
        };
        let Some((_, part)) = group.get(index) else {
            return Err(format!("a row of part {index} of {}", group.len()));
        };
        let columns = part.columns.as_deref().unwrap_or_default();
        split[index].push(
            columns
                .iter()
                .enumerate()
                .map(|(n, name)| (name.clone(), row.get(&grouped_column(n)).cloned().flatten()))
                .collect(),
        );
    }
    Ok(split)
}

/// Windows' own queries in as few tagged unions ([`tagged_union`]) as fit Athena's length
/// limit, in order.
fn packed(queries: Vec<(Window, String)>) -> Vec<(Vec<Window>, String)> {
    let mut packs: Vec<Vec<(Window, String)>> = Vec::new();
    let mut length = 0;
    for query in queries {
        // The tag and `UNION ALL` add under 100 bytes per window.
        let grows = query.1.len() + 100;
        match packs.last_mut() {
            Some(pack) if length + grows <= MAX_QUERY_BYTES => {
                length += grows;
                pack.push(query);
            }
            _ => {
                length = grows;
                packs.push(vec![query]);
            }
        }
    }
    packs
        .into_iter()
        .map(|pack| {
            let windows = pack.iter().map(|(window, _)| *window).collect();
            (windows, tagged_union(&pack))
        })
        .collect()
}

/// One rule's part of a run: its state, the windows it still has to evaluate, its report.
/// Evaluated chunk by chunk ([`RuleRun::evaluate_until`]), then finished (its alerts handed
/// over for delivery).
struct RuleRun<'r> {
    rule: &'r Rule,
    mode: Mode,
    state: RuleState,
    version: Option<String>,
    /// First-seen rules decide with a baseline instead of reading their history every window.
    baseline: Option<Tracker>,
    /// Pairing rules keep the previous event per key instead ([`crate::previous`]).
    previous: Option<PreviousTracker>,
    /// Sequence rules keep their recent events instead ([`crate::sequence`]).
    sequence: Option<SequenceTracker>,
    /// Windows already evaluated that events arrived for since: evaluated again first, once.
    late_ends: Vec<DateTime<Utc>>,
    /// The latest arrival pass: seen once the late windows are done.
    arrivals_latest: u64,
    /// Windows still to evaluate, earliest first.
    ends: VecDeque<DateTime<Utc>>,
    /// Rows of windows still to evaluate, by window end, read for many windows at once
    /// ([`RuleRun::take`]): a window found here is not queried again.
    batched: BTreeMap<DateTime<Utc>, Vec<Row>>,
    /// Whether a failed window counts towards setting it aside (scheduled runs only).
    sets_aside: bool,
    saves_state: bool,
    publishes: bool,
    report: RuleReport,
    elapsed: std::time::Duration,
    /// Why the rule stopped: its remaining windows wait for the next run.
    error: Option<String>,
}

impl<'r> RuleRun<'r> {
    fn new(rule: &'r Rule, mode: Mode) -> Self {
        RuleRun {
            rule,
            mode,
            state: RuleState::default(),
            version: None,
            baseline: None,
            previous: None,
            sequence: None,
            late_ends: Vec::new(),
            arrivals_latest: 0,
            ends: VecDeque::new(),
            batched: BTreeMap::new(),
            sets_aside: matches!(mode, Mode::Scheduled { .. }),
            saves_state: false,
            publishes: false,
            report: RuleReport {
                rule: rule.id.clone(),
                ..RuleReport::default()
            },
            elapsed: std::time::Duration::ZERO,
            error: None,
        }
    }

    /// Loads the rule's state and baseline and works out the windows it evaluates.
    async fn start<S: StateStore>(
        &mut self,
        store: &S,
        now: DateTime<Utc>,
        arrivals: &Arrivals,
    ) -> Result<(), String> {
        let rule = self.rule;
        let stored = store.load(&rule.id).await.map_err(|e| e.to_string())?;
        self.state = stored.state;
        self.version = stored.version;
        self.baseline = Tracker::load(rule, store).await?;
        self.previous = PreviousTracker::load(rule, store).await?;
        self.sequence = SequenceTracker::load(rule, store).await?;
        self.arrivals_latest = arrivals.latest();
        // A rule that never looked at arrivals starts from the latest (its first pass is the
        // whole lake, which its watermark already covered).
        self.late_ends = match (self.mode, self.state.arrivals_seen) {
            (Mode::Scheduled { .. }, Some(seen)) => late_window_ends(
                &arrivals.minutes_after(seen),
                self.state.watermark,
                rule.interval,
                rule.window,
            ),
            _ => Vec::new(),
        };
        if self.late_ends.is_empty() {
            self.arrivals_done();
        }
        let mut ends: Vec<DateTime<Utc>> = match self.mode {
            Mode::Scheduled { max_windows } => {
                self.saves_state = true;
                self.publishes = true;
                self.late_ends
                    .iter()
                    .copied()
                    .chain(due_window_ends(
                        self.state.watermark,
                        now,
                        rule.interval,
                        rule.lateness,
                        max_windows,
                    ))
                    .collect()
            }
            Mode::Replay {
                from,
                to,
                advance_watermark,
            } => {
                self.saves_state = advance_watermark;
                replay_window_ends(from, to, rule.interval)
            }
            Mode::SetAside => {
                self.saves_state = true;
                self.publishes = true;
                self.state.set_aside.iter().map(|f| f.end).collect()
            }
        };
        // Chunks go forward in time: a rule's windows too.
        ends.sort();
        self.ends = ends.into();
        Ok(())
    }

    fn arrivals_done(&mut self) {
        if self.sets_aside {
            self.state.arrivals_seen = Some(self.arrivals_latest);
        }
    }

    fn stop(&mut self, error: String) {
        self.ends.clear();
        self.batched.clear();
        self.error = Some(error);
    }

    /// The events the window of `end` reads, for the shared scan: the window, and the history
    /// before it when the rule's query reads history (a baseline's bootstrap, once, reads its
    /// history itself); at most [`SHARED_SCAN_HOURS`]. `None` for silence rules (counters).
    fn reads(&self, end: DateTime<Utc>) -> Option<Window> {
        let rule = self.rule;
        let window = Window::new(end - rule.window, end);
        let looks_back = match &rule.query {
            Query::Silence { .. } => return None,
            Query::FirstSeen { .. } => self.baseline.is_none(),
            Query::Previous { .. } => self
                .previous
                .as_ref()
                .is_none_or(|tracker| tracker.rebuilds(rule, window)),
            Query::Sequence { .. } => self
                .sequence
                .as_ref()
                .is_none_or(|tracker| tracker.rebuild_reason(rule, window).is_some()),
            Query::Sql { sql } => sql.contains("{{history") || sql.contains("{{span"),
            Query::Threshold { .. } => false,
        };
        let start = if looks_back {
            window.start - rule.history
        } else {
            window.start
        };
        let start = start.max(end - chrono::TimeDelta::hours(SHARED_SCAN_HOURS));
        Some(Window::new(start.min(window.start), end))
    }

    /// The window of the chunk ending at `until` for which a first-seen rule builds its baseline
    /// from history: its next window, when it needs one ([`Tracker::builds`]).
    fn builds_baseline(&self, until: DateTime<Utc>) -> Option<Window> {
        let tracker = self.baseline.as_ref()?;
        let end = *self.ends.front().filter(|end| **end <= until)?;
        let window = Window::new(end - self.rule.window, end);
        tracker.builds(self.rule, window).then_some(window)
    }

    /// Batched windows: the queries reading the rows of the rule's windows ending at or before
    /// `until` (and not read yet), one per batch ([`compile_batch`]) instead of one per window
    /// (batches of at least `least` windows), for the kinds whose windows do not depend on the
    /// previous window's answer; a first-seen rule's batch starts where its baseline reaches (a
    /// window needing its baseline built is queried on its own); for a pairing rule, the query
    /// of the events of the windows that follow where its kept events reach
    /// ([`PreviousTracker::batch_events`]); for a sequence rule, of its events since the kept
    /// ones ([`SequenceTracker::batch_events`]). Every per-window step (alerts, suppression, state,
    /// watermark) stays in [`RuleRun::evaluate`], window by window.
    fn planned(&self, until: DateTime<Utc>, least: usize) -> Vec<Part> {
        let rule = self.rule;
        match &rule.query {
            Query::Silence { .. } => return Vec::new(),
            // Without a baseline they read their history for every window (compile()).
            Query::FirstSeen { .. } if self.baseline.is_none() => return Vec::new(),
            Query::Previous { .. } if self.previous.is_none() => return Vec::new(),
            _ => {}
        }
        let mut windows: Vec<Window> = self
            .ends
            .iter()
            .take_while(|end| **end <= until)
            .filter(|end| !self.batched.contains_key(end))
            .map(|end| Window::new(*end - rule.window, *end))
            .collect();
        if let (Some(tracker), Some(first)) = (&self.baseline, windows.first())
            && !tracker.reads_only(rule, *first)
        {
            windows.remove(0);
        }
        let events = if let Some(tracker) = &self.sequence {
            tracker.batch_events(rule, &windows)
        } else if let Some(tracker) = &self.previous {
            tracker.batch_events(rule, &windows)
        } else {
            let columns = batch_columns(rule);
            return batches(rule, &windows, least)
                .into_iter()
                .map(|(windows, sql)| Part {
                    windows,
                    sql,
                    columns: columns.clone(),
                    events: false,
                })
                .collect();
        };
        if windows.len() < least {
            return Vec::new();
        }
        match events {
            Ok(events) => events
                .map(|events| Part {
                    windows: events.windows,
                    sql: events.sql,
                    columns: Some(events.columns),
                    events: true,
                })
                .into_iter()
                .collect(),
            Err(error) => {
                tracing::warn!(rule = %rule.id, error = %error, "a batch of windows failed; its windows are queried one by one");
                Vec::new()
            }
        }
    }

    /// Reads the rule's batches of two or more windows ([`RuleRun::planned`]) on its own (what
    /// a grouped query left: SQL rules, or all when it failed). A batch whose query fails is
    /// not an error: its windows are then queried one by one, so a failure is the failing
    /// window's, as before.
    async fn read_batched<E: QueryEngine>(&mut self, until: DateTime<Utc>, engine: &E) {
        for part in self.planned(until, 2) {
            self.read_part(part, engine).await;
        }
    }

    /// Sends one part's query, counted in the rule's report, and takes its rows.
    async fn read_part<E: QueryEngine>(&mut self, part: Part, engine: &E) {
        match run_query(engine, &part.sql, part.union(), &mut self.report).await {
            Ok(rows) => self.take(part, rows, engine).await,
            Err(error) => {
                tracing::warn!(rule = %self.rule.id, error = %error, "a batch of windows failed; its windows are queried one by one");
            }
        }
    }

    /// A part's rows: the windows' rows, kept per window until each is evaluated; a pairing
    /// rule's events, from which its windows' alerts queries follow, sent in as few tagged
    /// unions as Athena's length allows ([`packed`]).
    async fn take<E: QueryEngine>(&mut self, part: Part, rows: Vec<Row>, engine: &E) {
        if !part.events {
            self.keep_rows(&part.windows, rows);
            return;
        }
        if let Some(tracker) = self.sequence.as_mut() {
            match tracker.hold(self.rule, &part.windows, &rows) {
                // The windows' rows are the held events: marked read, so not queried again.
                Ok(()) => self.keep_rows(&part.windows, Vec::new()),
                Err(error) => {
                    tracing::warn!(rule = %self.rule.id, error = %error, "a batch of windows failed; its windows are queried one by one");
                }
            }
            return;
        }
        let Some(tracker) = self.previous.as_mut() else {
            return;
        };
        let queries = match tracker.fold_batch(self.rule, &part.windows, &rows) {
            Ok(queries) => queries,
            Err(error) => {
                tracing::warn!(rule = %self.rule.id, error = %error, "a batch of windows failed; its windows are queried one by one");
                return;
            }
        };
        for (windows, sql) in packed(queries) {
            let union = Window::new(windows[0].start, windows[windows.len() - 1].end);
            match run_query(engine, &sql, union, &mut self.report).await {
                Ok(rows) => self.keep_rows(&windows, rows),
                Err(error) => {
                    tracing::warn!(rule = %self.rule.id, error = %error, "a batch of windows failed; its windows are queried one by one");
                }
            }
        }
    }

    /// Keeps rows tagged with their window's end ([`WINDOW_END_COLUMN`]) per window of
    /// `windows` (a window without rows has none).
    fn keep_rows(&mut self, windows: &[Window], rows: Vec<Row>) {
        let ends: BTreeMap<String, DateTime<Utc>> = windows
            .iter()
            .map(|window| (format_timestamp(window.end), window.end))
            .collect();
        for end in ends.values() {
            self.batched.insert(*end, Vec::new());
        }
        for mut row in rows {
            let end = row.remove(WINDOW_END_COLUMN).flatten();
            if let Some(end) = end.and_then(|end| ends.get(&end)) {
                self.batched.entry(*end).or_default().push(row);
            }
        }
    }

    /// Evaluates the rule's windows ending at or before `until`, in order; a failure stops the
    /// rule (the windows evaluated before it are written and their state saved).
    async fn evaluate_until<E: QueryEngine, S: StateStore, A: AlertSink>(
        &mut self,
        until: DateTime<Utc>,
        engine: &E,
        store: &S,
        sink: &A,
    ) {
        // Batches are read at the chunk's first window, and once more at its second when the
        // first was left out (a baseline built there: a pairing rule's batch follows from it).
        let mut reads = 0;
        while let Some(&end) = self.ends.front() {
            if end > until {
                return;
            }
            if reads < 2 && !self.batched.contains_key(&end) {
                reads += 1;
                self.read_batched(until, engine).await;
            }
            self.ends.pop_front();
            if let Err(error) = self.evaluate(end, engine, store, sink).await {
                self.stop(error);
            }
        }
    }

    /// One window, in order:
    /// the query, the alerts (de-duplicated, suppressed), written, then the state saved.
    async fn evaluate<E: QueryEngine, S: StateStore, A: AlertSink>(
        &mut self,
        end: DateTime<Utc>,
        engine: &E,
        store: &S,
        sink: &A,
    ) -> Result<(), String> {
        let rule = self.rule;
        let report = &mut self.report;
        let state = &mut self.state;
        let window = Window::new(end - rule.window, end);
        let late = self.late_ends.contains(&end);
        let batched = self.batched.remove(&end);
        let answer = match (
            self.baseline.as_mut(),
            self.previous.as_mut(),
            self.sequence.as_mut(),
        ) {
            (Some(tracker), _, _) => {
                tracker
                    .evaluate(rule, engine, window, batched, report)
                    .await
            }
            (_, Some(tracker), _) => {
                tracker
                    .evaluate(rule, engine, window, batched, report)
                    .await
            }
            // Its batch's events, if any, are held by the tracker.
            (_, _, Some(tracker)) => tracker.evaluate(rule, engine, window, report).await,
            _ if matches!(rule.query, Query::Silence { .. }) => {
                silence::evaluate(rule, engine, window, report).await
            }
            _ => match batched {
                Some(rows) => Ok(rows),
                None => query_window(rule, engine, window, report).await,
            },
        };
        let alerts = match answer {
            Ok(rows) => {
                state.failing = None;
                state.set_aside.retain(|failed| failed.end != window.end);
                let mut alerts = alerts_of(rule, window, &rows, state, report);
                if late {
                    report.late_windows.push(window);
                    for alert in &mut alerts {
                        alert.details.insert("late".into(), "true".into());
                    }
                }
                alerts
            }
            Err(error) if self.sets_aside => {
                let failed = state.note_failure(window, &error);
                if failed.attempts < SET_ASIDE_AFTER {
                    self.version = Some(save(store, rule, state, self.version.as_deref()).await?);
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
        if self.late_ends.last() == Some(&end) {
            self.arrivals_done();
        }
        let state = &mut self.state;
        if self.saves_state {
            // Before the watermark: a run stopped in between finds the baseline ahead of
            // the window it evaluates again, and rebuilds it for that window.
            if let Some(tracker) = self.baseline.as_mut() {
                tracker.save(rule, store).await?;
            }
            if let Some(tracker) = self.previous.as_mut() {
                tracker.save(rule, store).await?;
            }
            if let Some(tracker) = self.sequence.as_mut() {
                tracker.save(rule, store).await?;
            }
            if state.watermark.is_none_or(|w| w < window.end) {
                state.watermark = Some(window.end);
            }
            // Saved with the watermark that passes them: a run that stops before publishing
            // leaves them to the next one.
            if self.publishes {
                state
                    .unpublished
                    .extend(alerts.iter().map(UnpublishedAlert::of));
            }
            self.version = Some(save(store, rule, state, self.version.as_deref()).await?);
        }
        self.report.alerts.extend(alerts);
        Ok(())
    }

    /// After its windows: the alerts handed over for delivery (scheduled and set-aside runs).
    async fn finish<S: StateStore, A: AlertSink>(
        &mut self,
        store: &S,
        sink: &A,
        now: DateTime<Utc>,
    ) {
        if !self.publishes {
            return;
        }
        let published = publish_alerts(
            self.rule,
            store,
            sink,
            &mut self.state,
            self.version.clone(),
            now,
            &mut self.report,
        )
        .await;
        if let Err(error) = published
            && self.error.is_none()
        {
            self.error = Some(error);
        }
    }

    fn into_report(self) -> RuleReport {
        let mut report = self.report;
        report.error = self.error;
        if report.error.is_none()
            && let Some(failed) = report.set_aside.first()
        {
            // The rule went on, but it failed: the run says so (and the detector's metric).
            report.error = Some(format!(
                "window {} set aside after {} failed runs: {}",
                failed.window(),
                failed.attempts,
                failed.error
            ));
        }
        report.duration_ms = self.elapsed.as_millis();
        report
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
    let (answer, _) = counted_query(engine, sql, report).await;
    let rows = answer.map_err(|e| format!("window {window}: query failed: {e}"))?;
    report.rows += rows.len();
    Ok(rows)
}

/// Sends one query, counted in `report` with the lake bytes it read, and returns its answer
/// and those bytes. Bytes read before it (by another rule's query, or outside the runner) are
/// not its own.
async fn counted_query<E: QueryEngine>(
    engine: &E,
    sql: &str,
    report: &mut RuleReport,
) -> (Result<Vec<Row>, String>, Option<u64>) {
    engine.take_bytes_read();
    report.queries += 1;
    let answer = engine.query(sql).await;
    let read = engine.take_bytes_read();
    if let Some(read) = read {
        *report.bytes_read.get_or_insert(0) += read;
    }
    (answer, read)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, interval: &str, window: &str, history: &str, query: &str) -> Rule {
        let text = format!(
            "id = \"{id}\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\n\
             interval = \"{interval}\"\nwindow = \"{window}\"\nhistory = \"{history}\"\n\
             summary = \"s\"\n[query]\n{query}"
        );
        toml::from_str(&text).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run<'r>(rule: &'r Rule, ends: &[&str]) -> RuleRun<'r> {
        let mut run = RuleRun::new(rule, Mode::Scheduled { max_windows: 100 });
        run.ends = ends.iter().map(|end| at(end)).collect();
        run
    }

    #[test]
    fn the_windows_of_all_rules_share_one_read_of_their_union() {
        let threshold = rule(
            "a",
            "5m",
            "15m",
            "1d",
            "kind = \"threshold\"\nwhere = \"true\"\ngroup = [{ name = \"u\", expr = \"u\" }]\nmin_count = 1",
        );
        let looks_back = rule(
            "b",
            "1h",
            "1h",
            "2h",
            "kind = \"sql\"\nsql = \"SELECT 1 FROM events WHERE {{span}}\"",
        );
        let runs = [
            run(
                &threshold,
                &["2026-11-20T10:05:00Z", "2026-11-20T10:10:00Z"],
            ),
            run(&looks_back, &["2026-11-20T11:00:00Z"]),
        ];
        // The threshold rule reads its windows only (09:50-10:10: hours 09 and 10), the SQL
        // rule its history too (08:00-11:00): one range 08:00-11:00, in one chunk.
        assert_eq!(
            shared_chunks(&runs),
            [SharedChunk {
                until: at("2026-11-20T11:00:00Z"),
                ranges: vec![Window::new(
                    at("2026-11-20T08:00:00Z"),
                    at("2026-11-20T11:00:00Z")
                )],
            }]
        );
    }

    #[test]
    fn a_long_catch_up_is_shared_in_bounded_chunks_in_time_order() {
        let hourly = rule(
            "h",
            "1h",
            "1h",
            "1d",
            "kind = \"threshold\"\nwhere = \"true\"\ngroup = [{ name = \"u\", expr = \"u\" }]\nmin_count = 1",
        );
        let start = at("2026-11-20T00:00:00Z");
        let ends: Vec<String> = (1..=100)
            .map(|h| (start + chrono::TimeDelta::hours(h)).to_rfc3339())
            .collect();
        let ends: Vec<&str> = ends.iter().map(String::as_str).collect();
        let chunks = shared_chunks(&[run(&hourly, &ends)]);
        let hours: Vec<i64> = chunks
            .iter()
            .map(|c| c.ranges.iter().map(|r| (r.end - r.start).num_hours()).sum())
            .collect();
        assert_eq!(hours, [SHARED_SCAN_HOURS, SHARED_SCAN_HOURS, 4]);
        assert_eq!(chunks[0].until, start + chrono::TimeDelta::hours(48));
        assert_eq!(chunks[2].until, start + chrono::TimeDelta::hours(100));
    }

    #[test]
    fn batches_split_at_gaps_and_to_fit_athenas_query_length() {
        let plain = rule(
            "p",
            "5m",
            "5m",
            "1h",
            "kind = \"sql\"\nsql = \"SELECT 1 AS one FROM events WHERE {{window}}\"",
        );
        let start = at("2026-11-20T00:00:00Z");
        let window = |n: i64| {
            let end = start + chrono::TimeDelta::minutes(5 * n);
            Window::new(end - plain.window, end)
        };
        // Windows 1-3, then a gap (a set-aside window far back, say), then 10-11; a lone
        // window is left to its own query.
        let windows: Vec<Window> = [1, 2, 3, 10, 11, 20].map(window).to_vec();
        let lengths: Vec<usize> = batches(&plain, &windows, 2)
            .iter()
            .map(|(batch, _)| batch.len())
            .collect();
        assert_eq!(lengths, [3, 2]);
        // Each window's query is some 300 bytes: a week of 5-minute windows is longer than
        // Athena takes, so it is split, every window still in one batch.
        let windows: Vec<Window> = (1..=2016).map(window).collect();
        let split = batches(&plain, &windows, 2);
        assert!(split.len() > 1);
        assert!(split.iter().all(|(_, sql)| sql.len() <= MAX_QUERY_BYTES));
        let covered: Vec<Window> = split.into_iter().flat_map(|(batch, _)| batch).collect();
        assert_eq!(covered, windows);
    }

    #[test]
    fn a_grouped_querys_rows_go_back_to_their_parts_with_their_own_columns() {
        let part = |columns: &[&str]| Part {
            windows: vec![Window::new(
                at("2026-11-20T10:00:00Z"),
                at("2026-11-20T10:05:00Z"),
            )],
            sql: String::new(),
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            events: false,
        };
        let group = [
            (0, part(&[WINDOW_END_COLUMN, "user", "event_count"])),
            (1, part(&[WINDOW_END_COLUMN, "ip"])),
        ];
        let row = |cells: &[(&str, Option<&str>)]| -> Row {
            cells
                .iter()
                .map(|(name, value)| (name.to_string(), value.map(String::from)))
                .collect()
        };
        let end = Some("2026-11-20T10:05:00.000000Z");
        let rows = vec![
            row(&[
                (GROUPED_PART_COLUMN, Some("1")),
                ("grouped_0", end),
                ("grouped_1", Some("203.0.113.9")),
                ("grouped_2", None),
            ]),
            row(&[
                (GROUPED_PART_COLUMN, Some("0")),
                ("grouped_0", end),
                ("grouped_1", None),
                ("grouped_2", Some("5")),
            ]),
        ];
        let split = split_grouped(&group, rows).unwrap();
        assert_eq!(
            split,
            [
                vec![row(&[
                    (WINDOW_END_COLUMN, end),
                    ("user", None),
                    ("event_count", Some("5"))
                ])],
                vec![row(&[
                    (WINDOW_END_COLUMN, end),
                    ("ip", Some("203.0.113.9"))
                ])],
            ]
        );
        // An answer that is not the grouped query's (no part, or a part it does not have) is
        // refused: the rules then read their own batches.
        for tag in [None, Some("2")] {
            let rows = vec![row(&[(GROUPED_PART_COLUMN, tag), ("grouped_0", end)])];
            assert!(split_grouped(&group, rows).is_err());
        }
    }

    #[test]
    fn silence_rules_read_nothing_and_long_histories_share_only_their_last_hours() {
        let long = rule(
            "l",
            "1h",
            "1h",
            "90d",
            "kind = \"sql\"\nsql = \"SELECT 1 FROM events WHERE {{span}}\"",
        );
        let end = at("2026-11-20T12:00:00Z");
        let reads = run(&long, &[]).reads(end).unwrap();
        assert_eq!(
            reads,
            Window::new(end - chrono::TimeDelta::hours(SHARED_SCAN_HOURS), end)
        );
        let silence = rule(
            "s",
            "1h",
            "1h",
            "7d",
            "kind = \"silence\"\nsources = [\"cloudtrail\"]",
        );
        assert_eq!(run(&silence, &[]).reads(end), None);
    }
}
