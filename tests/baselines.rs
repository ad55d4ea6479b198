//! First-seen rules with baselines give the alerts of the history-scan SQL (the per-window
//! evaluation they replace), over the demo scenario and a generated multi-day lake, scheduled
//! (bootstrap, then incremental) and replayed; and they read only the window once built.
//! Batched windows (many windows of a rule in one query) give the alerts of one query per
//! window for every kind of rule; the batched queries of the rules due in a run are grouped
//! into a few (about one per rule interval in a steady run) with the alerts of each rule alone.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

mod common;

use common::{bundled_geoip, bundled_rules_dir, run};
use lakewatch::cli::detect::detect;
use lakewatch::local::detect::{LocalAlerts, LocalQueries, extract_for_rules, state_dir};
use lakewatch::local::ingest::Ingest;
use lakewatch_detect::baseline::bootstrap_rows;
use lakewatch_detect::compile::{compile, first_seen_baseline_sql, first_seen_bootstrap_sql};
use lakewatch_detect::run_rules;
use lakewatch_detect::runner::{MAX_QUERY_BYTES, SHARED_SCAN_HOURS};
use lakewatch_detect::window::replay_window_ends;
use lakewatch_detect::{Alert, Mode, Query, QueryEngine, Row, Rule, RuleReport, Window};
use lakewatch_lake::local::LocalLake;
use lakewatch_lake::versioned::FileStore;
use lakewatch_sql::LocalEngine;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A bundled rule without suppression, so both evaluations' raw alerts are compared.
fn rule(id: &str) -> Rule {
    let mut rule = Rule::from_file(&bundled_rules_dir().join(format!("{id}.toml"))).unwrap();
    rule.suppress = TimeDelta::seconds(1);
    rule
}

fn ingest_text(lake: &Path, name: &str, text: &str) {
    let pipeline = lakewatch_plugins::builtin_pipeline(&bundled_geoip()).unwrap();
    let lake = LocalLake::open(lake).unwrap();
    let mut failures = Vec::new();
    let mut ingest = Ingest::new(&pipeline, lake.writer(Utc::now()), |m: &str| {
        failures.push(m.to_string())
    });
    ingest.ingest(name, name, text.as_bytes()).unwrap();
    ingest.finish().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

/// What identifies an alert across both evaluations: its window and its result columns.
fn identity(alert: &Alert) -> String {
    format!("{} {:?}", alert.windowend, alert.details)
}

/// The engine the rules read: the lake's extract, brought up to date first (as every detection
/// run does).
fn rules_engine(lake: &Path) -> LocalEngine {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = FileStore::new(state_dir(lake));
    runtime
        .block_on(extract_for_rules(lake, &state, Utc::now()))
        .unwrap()
        .1
}

/// The evaluation baselines replace: each window's compiled SQL over history and window.
fn history_scan(
    lake: &Path,
    rule: &Rule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeSet<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let engine = rules_engine(lake);
    let queries = LocalQueries::new(&engine);
    let mut alerts = BTreeSet::new();
    for end in replay_window_ends(from, to, rule.interval) {
        let window = Window::new(end - rule.window, end);
        let rows = runtime
            .block_on(queries.query(&compile(rule, window).unwrap()))
            .unwrap();
        alerts.extend(
            rows.iter()
                .map(|row| identity(&Alert::from_row(rule, window, row))),
        );
    }
    alerts
}

fn identities(report: &RuleReport) -> BTreeSet<String> {
    report.alerts.iter().map(identity).collect()
}

/// Compares, over `(from, to]`: the history scan; a replay (baseline built at its first
/// window); a first scheduled run at `from` (bootstrap) then one catching up to `to`.
fn assert_same_alerts(lake: &Path, rule: &Rule, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    assert_same_alerts_as(lake, rule, rule, from, to)
}

/// [`assert_same_alerts`], with the history scan of `reference` (the rule as it was written
/// before it kept a baseline).
fn assert_same_alerts_as(
    lake: &Path,
    rule: &Rule,
    reference: &Rule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> usize {
    let expected = history_scan(lake, reference, from, to);
    let replay = run(
        lake,
        rule,
        to,
        Mode::Replay {
            from,
            to,
            advance_watermark: false,
        },
    );
    assert_eq!(identities(&replay), expected, "replay of {}", rule.id);
    let builds = usize::from(keeps_baseline(rule));
    assert_eq!(
        replay.baselines_built.len(),
        builds,
        "{:?}",
        replay.baselines_built
    );
    let most = most_replay_queries(rule, from, to, &replay.windows);
    assert!(
        replay.queries <= most,
        "{} queries for {} windows of {}",
        replay.queries,
        replay.windows.len(),
        rule.id
    );

    let lateness = rule.lateness;
    let first = run(
        lake,
        rule,
        from + lateness,
        Mode::Scheduled { max_windows: 1 },
    );
    assert_eq!(
        first.baselines_built.len(),
        builds,
        "the first scheduled run builds the baseline"
    );
    let mut scheduled = identities(&first);
    let catch_up = run(
        lake,
        rule,
        to + lateness,
        Mode::Scheduled {
            max_windows: 10_000,
        },
    );
    assert!(
        catch_up.baselines_built.is_empty(),
        "{:?}",
        catch_up.baselines_built
    );
    scheduled.extend(identities(&catch_up));
    // The first scheduled run evaluated the window ending at `from`.
    let before = history_scan(lake, reference, from - rule.interval, from);
    let expected_scheduled: BTreeSet<String> = expected.union(&before).cloned().collect();
    assert_eq!(
        scheduled, expected_scheduled,
        "scheduled runs of {}",
        rule.id
    );
    expected.len()
}

fn keeps_baseline(rule: &Rule) -> bool {
    matches!(
        rule.query,
        Query::FirstSeen { .. } | Query::Previous { .. } | Query::Sequence { .. }
    )
}

/// The most queries a replay of `windows` windows over `(from, to]` sends, far fewer than its
/// windows: one per shared chunk of at most [`SHARED_SCAN_HOURS`] of data, plus a first-seen
/// rule's bootstrap of its first window on its own, the splits of SQL rules' batches
/// ([`most_sql_batches`]); a pairing rule builds its baseline in the first window (two
/// queries), then reads each chunk's logins and sends its windows' alerts queries in a few.
fn most_replay_queries(
    rule: &Rule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    windows: &[Window],
) -> usize {
    let chunks = (to - from).num_hours() as usize / SHARED_SCAN_HOURS as usize + 2;
    match rule.query {
        Query::Previous { .. } => 2 + 4 * chunks,
        Query::Sql { .. } => chunks + most_sql_batches(rule, windows),
        _ => usize::from(keeps_baseline(rule)) + chunks,
    }
}

/// An SQL rule's windows are batched whole (a `UNION ALL` of each window's query), so Athena's
/// query length limit splits a long run of them, halving: each split-off batch holds more than
/// half the limit.
fn most_sql_batches(rule: &Rule, windows: &[Window]) -> usize {
    let length: usize = windows
        .iter()
        .map(|window| compile(rule, *window).unwrap().len() + 100)
        .sum();
    length.div_ceil(MAX_QUERY_BYTES / 2)
}

/// A lake of the demo scenario's logins and auth log.
fn demo_lake() -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    demo_events(lake.path());
    lake
}

/// Ingests the demo scenario's logins and auth log into `lake`.
fn demo_events(lake: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/scenario");
    for file in ["logins.ndjson", "auth.log"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        ingest_text(lake, file, &text);
    }
}

/// A tiny deterministic generator (no dependency): xorshift.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NETWORKS: [(&str, &str); 5] = [
    ("US", "192.0.2.10"),
    ("GB", "192.0.2.70"),
    ("AU", "198.51.100.20"),
    ("JP", "198.51.100.140"),
    ("BR", "203.0.113.20"),
];

const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
];

/// One CloudTrail console login.
struct ConsoleLogin<'a> {
    user: &'a str,
    time: DateTime<Utc>,
    address: &'a str,
    agent: &'a str,
    success: bool,
    id: &'a str,
}

/// The CloudTrail record of `login`, as one NDJSON line.
fn console_login(login: &ConsoleLogin<'_>) -> String {
    serde_json::json!({
        "eventVersion": "1.10",
        "userIdentity": {"type": "IAMUser", "userName": login.user},
        "eventTime": login.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": login.address,
        "userAgent": login.agent,
        "responseElements": {"ConsoleLogin": if login.success { "Success" } else { "Failure" }},
        "eventID": login.id,
        "eventType": "AwsConsoleSignIn",
    })
    .to_string()
}

/// Eight days of console logins of eight users: mostly from home with their usual browser, now
/// and then from elsewhere or another device, some failures; users that start late (learning)
/// and users that go quiet for days and come back (forgetting, dormant values).
fn generated_lake(lake: &Path, start: DateTime<Utc>) {
    let mut random = Random(0x5eed_1a4e_0000_0001);
    let mut records = Vec::new();
    for user in 0..8u64 {
        let home = (user % 5) as usize;
        let agent = (user % 2) as usize;
        let first_day = if user == 6 { 6 } else { 0 };
        let mut time = start + TimeDelta::days(first_day) + TimeDelta::minutes(7 * user as i64);
        while time < start + TimeDelta::days(8) {
            let quiet = user == 7
                && time >= start + TimeDelta::days(2)
                && time < start + TimeDelta::days(5);
            if !quiet {
                let country = if random.below(25) == 0 {
                    random.below(5) as usize
                } else {
                    home
                };
                let device = if random.below(30) == 0 {
                    random.below(3) as usize
                } else {
                    agent
                };
                let success = random.below(10) != 0;
                records.push(console_login(&ConsoleLogin {
                    user: &format!("user{user}"),
                    time,
                    address: NETWORKS[country].1,
                    agent: AGENTS[device],
                    success,
                    id: &format!("gen-{user}-{}", time.timestamp()),
                }));
            }
            time += TimeDelta::minutes(50 + random.below(200) as i64);
        }
    }
    ingest_text(lake, "generated.ndjson", &records.join("\n"));
}

/// Runs a test body on a thread with a larger stack: the debug build of the engine plans the
/// partition predicates of a 30-day span deeper than a test thread's 2 MB allow.
fn with_large_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn baselines_give_the_history_scans_alerts_on_a_generated_multi_day_lake() {
    with_large_stack(generated_lake_case);
}

fn generated_lake_case() {
    let lake = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    generated_lake(lake.path(), start);
    let (from, to) = (start + TimeDelta::hours(156), start + TimeDelta::days(8));
    // With shorter history and dormancy too, so that forgetting and dormant values happen in
    // 8 days.
    let rules = first_seen_rules();
    let mut alerts = 0;
    for rule in &rules {
        alerts += assert_same_alerts(lake.path(), rule, from, to);
    }
    assert!(
        alerts >= 5,
        "the lake must exercise the rules: {alerts} alerts"
    );
}

/// The first-seen rules of the generated case (30, 90, 3 and 6 days of history), building their
/// baselines for the same window.
fn first_seen_rules() -> Vec<Rule> {
    let mut forgetting = rule("new-device");
    forgetting.id = "new-device-3d".into();
    forgetting.history = TimeDelta::days(3);
    let mut dormant = rule("atypical-country");
    dormant.id = "atypical-country-2d".into();
    dormant.history = TimeDelta::days(6);
    if let Query::FirstSeen { not_seen_for, .. } = &mut dormant.query {
        *not_seen_for = Some(TimeDelta::days(2));
    }
    vec![
        rule("new-country"),
        rule("new-device"),
        rule("atypical-country"),
        forgetting,
        dormant,
    ]
}

#[test]
fn baselines_built_together_read_the_history_once_with_each_rules_own_rows() {
    with_large_stack(built_together_case);
}

/// Every first-seen rule builds its baseline from its history on its first window; built in
/// the same run they share one query, which reads the longest history once (the others' are
/// inside it) and gives each rule exactly the rows of its own query; replayed together or
/// alone, every rule raises the same alerts.
fn built_together_case() {
    let lake = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    generated_lake(lake.path(), start);
    let rules = first_seen_rules();
    let (from, to) = (start + TimeDelta::hours(156), start + TimeDelta::days(8));

    // Row for row: the shared query split per rule, and each rule's own bootstrap query.
    let engine = rules_engine(lake.path());
    let queries = LocalQueries::new(&engine);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let window = Window::new(from, from + TimeDelta::hours(1));
    let rule_refs: Vec<&Rule> = rules.iter().collect();
    let shared = runtime
        .block_on(queries.query(&first_seen_bootstrap_sql(&rule_refs, window).unwrap()))
        .unwrap();
    let split = bootstrap_rows(&rule_refs, shared).unwrap();
    let sorted = |mut rows: Vec<Row>| {
        rows.sort_by_key(|row| format!("{row:?}"));
        rows
    };
    for (rule, rows) in rules.iter().zip(split) {
        let own_sql = first_seen_baseline_sql(rule, window, window.start - rule.history).unwrap();
        let own = runtime.block_on(queries.query(&own_sql)).unwrap();
        assert!(!own.is_empty(), "{}: the lake must give rows", rule.id);
        assert_eq!(sorted(rows), sorted(own), "{}", rule.id);
    }

    let replay = Mode::Replay {
        from,
        to,
        advance_watermark: false,
    };
    // A rule whose filter names the window cannot share the union's ranges: it builds alone.
    let mut own_ranges = rule("new-country");
    own_ranges.id = "new-country-in-window".into();
    if let Query::FirstSeen { filter, .. } = &mut own_ranges.query {
        filter.push_str(" AND {{window}}");
    }
    let alone = run(lake.path(), &own_ranges, to, replay);
    let with_it: Vec<Rule> = rules.iter().cloned().chain([own_ranges]).collect();
    let mut together = runtime
        .block_on(detect(lake.path(), &with_it, to, replay))
        .unwrap()
        .reports;
    let apart = together.pop().unwrap();
    assert_eq!(apart.error, None);
    assert_eq!(identities(&apart), identities(&alone));
    assert!(
        !apart.baselines_built[0].reason.contains("read once"),
        "{:?}",
        apart.baselines_built
    );
    let mut alone_bootstraps = Vec::new();
    for (rule, report) in rules.iter().zip(&together) {
        assert_eq!(report.error, None, "{}", rule.id);
        let alone = run(lake.path(), rule, to, replay);
        assert_eq!(identities(report), identities(&alone), "{}", rule.id);
        assert_eq!(alone.baselines_built.len(), 1);
        alone_bootstraps.push(alone.baselines_built[0].bytes_read.unwrap());
        assert_eq!(report.baselines_built.len(), 1, "{}", rule.id);
        let reason = &report.baselines_built[0].reason;
        let shared: BTreeSet<&str> = reason
            .split_once("; history read once for ")
            .map(|(_, rules)| rules.split(", ").collect())
            .unwrap_or_default();
        let all: BTreeSet<&str> = rules.iter().map(|rule| rule.id.as_str()).collect();
        assert_eq!(shared, all, "{reason}");
    }
    let built: Vec<u64> = together
        .iter()
        .map(|report| report.baselines_built[0].bytes_read.unwrap())
        .collect();
    let longest = *alone_bootstraps.iter().max().unwrap();
    let sum: u64 = built.iter().sum();
    // Counted once, with the first rule; each alone reads its own history.
    assert_eq!(
        built.iter().filter(|read| **read > 0).count(),
        1,
        "{built:?}"
    );
    assert!(
        sum <= longest,
        "built together: {sum} bytes; alone: {alone_bootstraps:?}"
    );
}

#[test]
fn baselines_give_the_history_scans_alerts_on_the_demo_scenario() {
    with_large_stack(demo_scenario_case);
}

fn demo_scenario_case() {
    let mut alerts = 0;
    for id in ["new-country", "new-device", "atypical-country"] {
        let lake = demo_lake();
        alerts += assert_same_alerts(
            lake.path(),
            &rule(id),
            t("2026-11-19T00:00:00Z"),
            t("2026-11-21T00:00:00Z"),
        );
    }
    assert_eq!(alerts, 2, "new-country: GB and BR");
}

#[test]
fn once_built_a_baseline_reads_only_the_window_and_a_changed_rule_rebuilds_it() {
    with_large_stack(rebuild_case);
}

fn rebuild_case() {
    let lake = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    generated_lake(lake.path(), start);
    let rule = rule("new-country");
    let day = start + TimeDelta::days(7);
    let first = run(
        lake.path(),
        &rule,
        day + rule.lateness,
        Mode::Scheduled { max_windows: 1 },
    );
    let built = &first.baselines_built[0];
    assert_eq!(built.reason, "the rule has no baseline yet");
    let next = run(
        lake.path(),
        &rule,
        day + TimeDelta::hours(1) + rule.lateness,
        Mode::Scheduled { max_windows: 1 },
    );
    // One hour of a week: far less than the bootstrap's seven days.
    let (bootstrap, window) = (built.bytes_read.unwrap(), next.bytes_read.unwrap());
    assert!(
        window * 20 < bootstrap,
        "window {window} bytes, bootstrap {bootstrap}"
    );
    let mut changed = rule.clone();
    if let Query::FirstSeen { filter, .. } = &mut changed.query {
        filter.push_str(" AND eventid IS NOT NULL");
    }
    let rebuilt = run(
        lake.path(),
        &changed,
        day + TimeDelta::hours(2) + rule.lateness,
        Mode::Scheduled { max_windows: 1 },
    );
    assert_eq!(
        rebuilt.baselines_built[0].reason,
        "the rule's baseline definition changed"
    );
}

/// `impossible-travel` as it was written before it kept the previous logins: its own SQL reads
/// a day of history in every window.
fn impossible_travel_history_sql() -> Rule {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events/rules/impossible-travel-history-sql.toml");
    let mut rule = Rule::from_file(&path).unwrap();
    rule.suppress = TimeDelta::seconds(1);
    rule
}

#[test]
fn kept_sequence_events_give_the_history_sqls_alerts() {
    with_large_stack(sequence_case);
}

/// `brute-force-success` keeps its recent events: each window reads what is new since the last
/// one, not its 30 minutes of history. Replayed and scheduled, its alerts are those of each
/// window's compiled SQL over its span, on the rule's own test events (failures and successes
/// of several users around 09:00, up to exactly `within` apart) and on the demo scenario; so
/// are those of a variant whose `within` and history reach further back than its window.
fn sequence_case() {
    let tests = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests");
    for name in ["positive", "negative", "boundaries"] {
        let file = format!("brute-force-success-{name}.ndjson");
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        ingest_text(tests.path(), &file, &text);
    }
    let demo = demo_lake();
    let rule = rule("brute-force-success");
    let mut longer = rule.clone();
    longer.id = "brute-force-success-2h".into();
    longer.history = TimeDelta::hours(2);
    longer.window = TimeDelta::minutes(10);
    if let Query::Sequence { within, .. } = &mut longer.query {
        *within = TimeDelta::minutes(90);
    }
    let mut alerts = 0;
    for rule in [&rule, &longer] {
        alerts += assert_same_alerts(
            tests.path(),
            rule,
            t("2026-11-20T08:00:00Z"),
            t("2026-11-20T12:00:00Z"),
        );
        alerts += assert_same_alerts(
            demo.path(),
            rule,
            t("2026-11-19T00:00:00Z"),
            t("2026-11-21T00:00:00Z"),
        );
    }
    assert!(alerts >= 4, "the lakes must exercise the rule: {alerts}");
}

#[test]
fn previous_logins_give_the_history_sqls_impossible_travel_alerts() {
    with_large_stack(previous_logins_case);
}

fn previous_logins_case() {
    let (rule, reference) = (rule("impossible-travel"), impossible_travel_history_sql());
    let lake = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    generated_lake(lake.path(), start);
    let generated = assert_same_alerts_as(
        lake.path(),
        &rule,
        &reference,
        start + TimeDelta::hours(156),
        start + TimeDelta::days(8),
    );
    assert!(
        generated >= 3,
        "the lake must exercise the rule: {generated} alerts"
    );

    let demo = demo_lake();
    assert_same_alerts_as(
        demo.path(),
        &rule,
        &reference,
        t("2026-11-19T00:00:00Z"),
        t("2026-11-21T00:00:00Z"),
    );
}

#[test]
fn previous_logins_too_many_for_one_query_are_read_from_history_instead() {
    with_large_stack(too_many_previous_logins_case);
}

/// 2,400 users logged in within the day, more than the query text Athena accepts can carry as
/// kept rows: the windows read their history instead, and still raise the traveller's alert.
fn too_many_previous_logins_case() {
    let (rule, reference) = (rule("impossible-travel"), impossible_travel_history_sql());
    let lake = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    let login = |user: &str, time: DateTime<Utc>, address: &str, id: &str| {
        console_login(&ConsoleLogin {
            user,
            time,
            address,
            agent: AGENTS[0],
            success: true,
            id,
        })
    };
    let mut records: Vec<String> = (0..2_400i64)
        .map(|n| {
            let time = start + TimeDelta::seconds(n);
            login(
                &format!("user{n}"),
                time,
                NETWORKS[0].1,
                &format!("many-{n}"),
            )
        })
        .collect();
    records.push(login(
        "traveller",
        start + TimeDelta::minutes(65),
        NETWORKS[0].1,
        "traveller-us",
    ));
    records.push(login(
        "traveller",
        start + TimeDelta::minutes(80),
        NETWORKS[3].1,
        "traveller-jp",
    ));
    ingest_text(lake.path(), "many.ndjson", &records.join("\n"));

    // The first run keeps every user's login; the next windows would carry all of them.
    let first = run(
        lake.path(),
        &rule,
        start + TimeDelta::minutes(70),
        Mode::Scheduled { max_windows: 1 },
    );
    assert_eq!(first.error, None);
    let next = run(
        lake.path(),
        &rule,
        start + TimeDelta::minutes(115),
        Mode::Scheduled { max_windows: 10 },
    );
    assert_eq!(next.error, None, "{:?}", next.set_aside);
    assert_eq!(next.windows.len(), 3);
    assert!(
        next.baselines_built
            .iter()
            .any(|built| built.reason.contains("Athena accepts")),
        "{:?}",
        next.baselines_built
    );
    let expected = history_scan(
        lake.path(),
        &reference,
        start + TimeDelta::hours(1),
        start + TimeDelta::minutes(105),
    );
    assert_eq!(identities(&next), expected);
    assert_eq!(expected.len(), 1, "the traveller's alert: {expected:?}");
}

/// The bundled rules that read SQL (silence rules read counters), suppression off.
fn sql_rules() -> Vec<Rule> {
    lakewatch_detect::bundled::rules()
        .unwrap()
        .into_iter()
        .filter(|bundled| !matches!(bundled.query, Query::Silence { .. }))
        .map(|bundled| rule(&bundled.id))
        .collect()
}

#[test]
fn batched_windows_give_the_alerts_of_one_query_per_window_for_every_rule() {
    with_large_stack(batched_windows_case);
}

/// Every bundled rule, replayed and scheduled (batched), against each window's compiled SQL
/// queried on its own; first-seen and pairing rules are compared above (their per-window SQL
/// reads history), so here the kinds without a baseline.
fn batched_windows_case() {
    let generated = tempfile::tempdir().unwrap();
    let start = t("2026-11-01T00:00:00Z");
    generated_lake(generated.path(), start);
    let demo = demo_lake();
    let mut alerts = 0;
    for rule in sql_rules().iter().filter(|rule| !keeps_baseline(rule)) {
        alerts += assert_same_alerts(
            generated.path(),
            rule,
            start + TimeDelta::hours(156),
            start + TimeDelta::days(8),
        );
        alerts += assert_same_alerts(
            demo.path(),
            rule,
            t("2026-11-19T00:00:00Z"),
            t("2026-11-21T00:00:00Z"),
        );
    }
    assert!(alerts >= 5, "the lakes must exercise the rules: {alerts}");
}

/// The rules' engine, counting the queries sent to it.
struct Counting<'a> {
    queries: LocalQueries<'a>,
    sent: std::sync::atomic::AtomicUsize,
}

impl QueryEngine for Counting<'_> {
    async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.queries.query(sql).await
    }

    fn take_bytes_read(&self) -> Option<u64> {
        self.queries.take_bytes_read()
    }

    async fn share_scan(&self, ranges: &[Window]) -> Result<(), String> {
        self.queries.share_scan(ranges).await
    }
}

#[test]
fn a_catching_up_run_groups_its_rules_queries() {
    with_large_stack(catching_up_case);
}

/// A day of windows (288 of each 5-minute rule): one grouped query for every rule of a built-in
/// kind and the pairing rule's logins, then the pairing rule's windows' alerts queries (a few)
/// and SQL rules' own batches (more than one when their day of windows' queries is longer than
/// Athena accepts in one). Each rule still gets all its windows and the reports add up to what
/// the engine was sent.
fn catching_up_case() {
    let lake = demo_lake();
    let rules = sql_rules();
    let engine = rules_engine(lake.path());
    let counting = Counting {
        queries: LocalQueries::new(&engine),
        sent: Default::default(),
    };
    let store = FileStore::new(state_dir(lake.path()));
    let sink = LocalAlerts::new(lake.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = |now: &str, max_windows: usize| {
        runtime.block_on(run_rules(
            &rules,
            &counting,
            &store,
            &sink,
            t(now),
            Mode::Scheduled { max_windows },
        ))
    };
    // The first run starts the rules (and builds the baselines).
    run("2026-11-20T00:15:00Z", 1);
    counting.sent.store(0, std::sync::atomic::Ordering::Relaxed);
    let reports = run("2026-11-21T00:15:00Z", 10_000);
    let mut most = 1;
    for (rule, report) in rules.iter().zip(&reports) {
        assert_eq!(report.error, None, "{}", report.rule);
        let windows = report.windows.len();
        assert!(windows >= 24, "{}: {windows} windows", report.rule);
        most += match rule.query {
            // Its 96 windows' alerts queries (each carrying the logins it pairs with) in as
            // few as fit Athena's limit (two).
            Query::Previous { .. } => 3,
            Query::Sql { .. } => most_sql_batches(rule, &report.windows),
            _ => 0,
        };
    }
    let sent = counting.sent.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        sent,
        reports.iter().map(|report| report.queries).sum::<usize>()
    );
    // One query per rule and window before batching (1,551), one per rule with batched
    // windows (17), now a handful.
    assert!(sent <= most && sent < 10, "{sent} queries, at most {most}");
    assert!(reports.iter().any(|report| !report.alerts.is_empty()));
}

/// `rules` scheduled together on `lake`: a first run at `first` (the baselines built), one
/// catching up to `caught_up`, then one every 5 minutes, `steady` times; last, a replay of
/// all that time (`first` to the last run). Returns each run's reports and the queries the
/// engine was sent for it.
fn scheduled_runs(
    lake: &Path,
    rules: &[Rule],
    first: DateTime<Utc>,
    caught_up: DateTime<Utc>,
    steady: i64,
) -> Vec<(Vec<RuleReport>, usize)> {
    let engine = rules_engine(lake);
    let counting = Counting {
        queries: LocalQueries::new(&engine),
        sent: Default::default(),
    };
    let store = FileStore::new(state_dir(lake));
    let sink = LocalAlerts::new(lake);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let last = caught_up + TimeDelta::minutes(5 * steady);
    let scheduled = [first, caught_up]
        .into_iter()
        .chain((1..=steady).map(|n| caught_up + TimeDelta::minutes(5 * n)))
        .map(|now| {
            let max_windows = if now == first { 1 } else { 10_000 };
            (now, Mode::Scheduled { max_windows })
        });
    let replay = Mode::Replay {
        from: first,
        to: last,
        advance_watermark: false,
    };
    scheduled
        .chain([(last, replay)])
        .map(|(now, mode)| {
            counting.sent.store(0, std::sync::atomic::Ordering::Relaxed);
            let reports = runtime.block_on(run_rules(rules, &counting, &store, &sink, now, mode));
            for report in &reports {
                assert_eq!(report.error, None, "{}", report.rule);
            }
            let sent = counting.sent.load(std::sync::atomic::Ordering::Relaxed);
            (reports, sent)
        })
        .collect()
}

#[test]
fn steady_scheduled_runs_send_about_one_query_per_interval_with_the_alerts_of_each_rule_alone() {
    with_large_stack(steady_runs_case);
}

/// Scheduled runs every 5 minutes of every bundled rule, on the demo scenario and a generated
/// lake: each run sends at most one query per distinct rule interval and one more (all due
/// built-in rules and the pairing rule's logins grouped into one query; the two SQL rules' own
/// and the pairing rule's alerts query: 4), where one query per due rule was sent before (12
/// at the hour); and every rule raises exactly the alerts it raises run alone (its own
/// queries), run after run and in a replay of the whole time.
fn steady_runs_case() {
    let rules = sql_rules();
    let intervals: BTreeSet<TimeDelta> = rules.iter().map(|rule| rule.interval).collect();
    /// Fills a lake with the case's events.
    type Events = fn(&Path);
    let generated: Events = |lake| generated_lake(lake, t("2026-11-01T00:00:00Z"));
    let cases: [(Events, &str, &str); 2] = [
        (demo_events, "2026-11-20T07:15:00Z", "2026-11-20T08:15:00Z"),
        (generated, "2026-11-07T00:15:00Z", "2026-11-07T12:15:00Z"),
    ];
    let mut alerts = 0;
    for (make, first, caught_up) in cases {
        let together = tempfile::tempdir().unwrap();
        make(together.path());
        let runs = scheduled_runs(together.path(), &rules, t(first), t(caught_up), 24);
        let most = intervals.len() + 1;
        let steady_runs = &runs[2..runs.len() - 1];
        for (_, sent) in steady_runs {
            assert!(
                *sent <= most,
                "{sent} queries in a steady run, at most {most}"
            );
        }
        let busiest = steady_runs.iter().map(|(_, sent)| *sent).max().unwrap();
        assert_eq!(busiest, 4, "the hour's run has every rule due");
        for (index, rule) in rules.iter().enumerate() {
            let alone = tempfile::tempdir().unwrap();
            make(alone.path());
            let own = scheduled_runs(
                alone.path(),
                std::slice::from_ref(rule),
                t(first),
                t(caught_up),
                24,
            );
            let grouped: Vec<BTreeSet<String>> = runs
                .iter()
                .map(|(reports, _)| identities(&reports[index]))
                .collect();
            let expected: Vec<BTreeSet<String>> = own
                .iter()
                .map(|(reports, _)| identities(&reports[0]))
                .collect();
            assert_eq!(
                grouped, expected,
                "{} run with the others and alone",
                rule.id
            );
            alerts += expected.iter().map(BTreeSet::len).sum::<usize>();
        }
    }
    assert!(alerts >= 5, "the lakes must exercise the rules: {alerts}");
}
