//! Silence rules: a log source that stops sending, or whose volume drops, is an alert.
//!
//! The failure nothing else reports is a source that stopped: no event, so no rule over events
//! fires. A silence rule (`kind = "silence"`) says: each of these sources (optionally each of
//! its hosts) sends at least `min_count` events per window; and, with `drop_percent`, a window
//! holds no more than that percentage fewer events than the **median of the same hours** on
//! each of the `history` days before it, so a normal night-time dip (every night is quiet) is
//! not flagged while a day-time collapse is.
//!
//! It never reads events. It reads hourly counts the system already keeps, through
//! [`SourceCounts`]: locally the lake writer's counters (`lakewatch_lake::counts`), on AWS the
//! transform's CloudWatch metric `Lakewatch/Events` by `Source` (`lakewatch_aws::cloudwatch`).
//! So a run's cost is a few small reads per source, independent of the data volume.
//!
//! Only sources (and hosts) that sent something during `history` before the window are
//! checked: a source the lake never received (a bundled rule naming a source you do not have)
//! or one gone for longer than `history` raises nothing. Alerts go the normal way: written to
//! the alerts table, de-duplicated per source (and host) by default, suppressed for `suppress`.

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};

use crate::alert::Row;
use crate::rule::{Query, Rule};
use crate::runner::{QueryEngine, RuleReport};
use crate::window::Window;
use lakewatch_lake::counts::{HostHours, LocalSourceCounts};
use lakewatch_plugins::shell::format_timestamp;

/// Hourly event counts per source (and host), as the lake keeps them.
pub trait SourceCounts {
    /// Events of `source` per hour in `[from, to)` (whole hours): per host when `per_host`,
    /// else everything under the host `""`. Hours without events may be absent.
    fn hourly(
        &self,
        source: &str,
        per_host: bool,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<HostHours, String>>;
}

/// The local lake's counters (`LAKE/state/counts/`).
impl SourceCounts for LocalSourceCounts {
    async fn hourly(
        &self,
        source: &str,
        per_host: bool,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HostHours, String> {
        LocalSourceCounts::hourly(self, source, per_host, from, to)
    }
}

/// The stand-in of an engine that reads no counters ([`QueryEngine::source_counts`]).
pub struct NoSourceCounts;

impl SourceCounts for NoSourceCounts {
    async fn hourly(
        &self,
        _: &str,
        _: bool,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<HostHours, String> {
        Err("this detector reads no event counters".into())
    }
}

/// The result columns that name "the same alert" unless the rule says otherwise.
pub fn identity_columns(per_host: bool) -> Vec<String> {
    let mut columns = vec!["source".to_string()];
    if per_host {
        columns.push("hostname".to_string());
    }
    columns
}

/// Checks a silence rule's settings; the error says what to write instead.
pub fn validate(
    rule: &Rule,
    sources: &[String],
    min_count: u64,
    drop_percent: Option<f64>,
) -> Result<(), String> {
    if sources.is_empty() || sources.iter().any(|s| s.trim().is_empty()) {
        return Err("a silence rule needs `sources`, e.g. sources = [\"cloudtrail\"]".into());
    }
    let whole_hours = |d: TimeDelta| d.num_seconds() % 3600 == 0;
    if !whole_hours(rule.window) || !whole_hours(rule.interval) {
        return Err(
            "a silence rule counts whole hours: write its window and interval in hours (e.g. \
             interval = \"1h\", window = \"2h\")"
                .into(),
        );
    }
    if rule.history < TimeDelta::days(1) || rule.history.num_seconds() % 86_400 != 0 {
        return Err(
            "a silence rule needs history in whole days (e.g. history = \"7d\"): the sources \
             that sent during it are checked, and its days give the expected volume"
                .into(),
        );
    }
    if min_count == 0 {
        return Err("min_count must be at least 1 (a window with fewer is silent)".into());
    }
    if let Some(percent) = drop_percent
        && !(percent > 0.0 && percent < 100.0)
    {
        return Err(format!(
            "drop_percent {percent} must be between 0 and 100 (e.g. 60: alert below 40% of the \
             usual volume)"
        ));
    }
    Ok(())
}

/// Evaluates a silence rule's window from the counters of `engine`; returns the alerting rows.
pub async fn evaluate<E: QueryEngine>(
    rule: &Rule,
    engine: &E,
    window: Window,
    report: &mut RuleReport,
) -> Result<Vec<Row>, String> {
    let Query::Silence {
        sources,
        per_host,
        min_count,
        drop_percent,
    } = &rule.query
    else {
        return Err(format!("rule {} is not a silence rule", rule.id));
    };
    let counts = engine.source_counts().ok_or_else(|| {
        format!(
            "window {window}: silence rules read the lake's event counters, and this detector \
             has none"
        )
    })?;
    // No event is read: the rule's cost is its counter reads, whatever the volume.
    report.bytes_read.get_or_insert(0);
    let check = Check {
        window,
        days: rule.history.num_days(),
        min_count: *min_count,
        drop_percent: *drop_percent,
    };
    let mut rows = Vec::new();
    for source in sources {
        let hosts = counts
            .hourly(source, *per_host, window.start - rule.history, window.end)
            .await
            .map_err(|e| format!("window {window}: counts of source {source}: {e}"))?;
        for (host, hours) in &hosts {
            if let Some(mut row) = check.decide(hours) {
                row.insert("source".into(), Some(source.clone()));
                if *per_host {
                    row.insert("hostname".into(), Some(host.clone()));
                }
                rows.push(row);
            }
        }
    }
    report.rows += rows.len();
    rows.retain(|row| !rule.ignores(row));
    Ok(rows)
}

/// One window's conditions.
struct Check {
    window: Window,
    /// Days of history: whether the source was sending, and the same hours for the median.
    days: i64,
    min_count: u64,
    drop_percent: Option<f64>,
}

impl Check {
    /// The alerting row of one source (or host) from its hourly counts over history and
    /// window; `None` when it is sending as usual, or never sent during history.
    fn decide(&self, hours: &std::collections::BTreeMap<DateTime<Utc>, u64>) -> Option<Row> {
        let sum = |from: DateTime<Utc>, to: DateTime<Utc>| -> u64 {
            hours.range(from..to).map(|(_, n)| n).sum()
        };
        let Window { start, end } = self.window;
        let last_before = hours
            .range(..start)
            .rev()
            .find(|(_, n)| **n > 0)
            .map(|(hour, _)| *hour)?;
        let observed = sum(start, end);
        let same_hours: Vec<u64> = (1..=self.days)
            .map(|d| sum(start - TimeDelta::days(d), end - TimeDelta::days(d)))
            .collect();
        let expected = median(same_hours);
        let (condition, reason) = if observed < self.min_count {
            let reason = if observed == 0 {
                "no events".to_string()
            } else {
                format!("{observed} events, fewer than {}", self.min_count)
            };
            ("silent", reason)
        } else {
            let percent = self.drop_percent?;
            if expected <= 0.0 || observed as f64 >= expected * (1.0 - percent / 100.0) {
                return None;
            }
            let dropped = 100.0 * (1.0 - observed as f64 / expected);
            (
                "volume drop",
                format!(
                    "{observed} events, {dropped:.0}% below the usual {expected} (median of \
                     the same hours over {} days)",
                    self.days
                ),
            )
        };
        let mut row = Row::new();
        for (column, value) in [
            ("condition", condition.to_string()),
            ("reason", reason),
            ("event_count", observed.to_string()),
            ("expected_count", expected.to_string()),
            ("last_events_hour", format_timestamp(last_before)),
        ] {
            row.insert(column.to_string(), Some(value));
        }
        Some(row)
    }
}

/// The median; the mean of the two middle values for an even count.
fn median(mut values: Vec<u64>) -> f64 {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2] as f64,
        _ => (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn check(drop_percent: Option<f64>) -> Check {
        Check {
            window: Window::new(at("2026-11-20T10:00:00Z"), at("2026-11-20T12:00:00Z")),
            days: 3,
            min_count: 5,
            drop_percent,
        }
    }

    /// `per_hour(hour of day)` events every hour of three days and the window's day up to
    /// `until`.
    fn hours(per_hour: impl Fn(u32) -> u64, until: &str) -> BTreeMap<DateTime<Utc>, u64> {
        let mut out = BTreeMap::new();
        let mut hour = at("2026-11-17T10:00:00Z");
        while hour < at(until) {
            use chrono::Timelike;
            out.insert(hour, per_hour(hour.hour()));
            hour += TimeDelta::hours(1);
        }
        out
    }

    fn condition(row: &Row) -> &str {
        row["condition"].as_deref().unwrap()
    }

    #[test]
    fn a_source_that_stops_is_silent_and_one_that_keeps_sending_is_not() {
        let stopped = hours(|_| 100, "2026-11-20T10:00:00Z");
        let row = check(None).decide(&stopped).unwrap();
        assert_eq!(condition(&row), "silent");
        assert_eq!(row["event_count"].as_deref(), Some("0"));
        assert_eq!(row["expected_count"].as_deref(), Some("200"));
        assert_eq!(
            row["last_events_hour"].as_deref(),
            Some("2026-11-20T09:00:00.000000Z")
        );
        let sending = hours(|_| 100, "2026-11-20T12:00:00Z");
        assert_eq!(check(Some(60.0)).decide(&sending), None);
        // A trickle below min_count is silent too.
        let mut trickle = stopped.clone();
        trickle.insert(at("2026-11-20T11:00:00Z"), 4);
        assert_eq!(condition(&check(None).decide(&trickle).unwrap()), "silent");
    }

    #[test]
    fn a_drop_is_measured_against_the_same_hours_of_the_days_before() {
        // Busy at 10-12 every day; a night-time dip elsewhere does not matter.
        let busy = |hour: u32| if (8..18).contains(&hour) { 100 } else { 10 };
        let mut dropped = hours(busy, "2026-11-20T10:00:00Z");
        dropped.insert(at("2026-11-20T10:00:00Z"), 40);
        dropped.insert(at("2026-11-20T11:00:00Z"), 40);
        let row = check(Some(50.0)).decide(&dropped).unwrap();
        assert_eq!(condition(&row), "volume drop");
        assert!(
            row["reason"].as_deref().unwrap().contains("60% below"),
            "{row:?}"
        );
        assert_eq!(check(Some(70.0)).decide(&dropped), None, "a 60% drop");
        assert_eq!(check(None).decide(&dropped), None, "no volume check");
    }

    #[test]
    fn a_night_time_dip_is_usual_and_a_source_never_seen_is_not_checked() {
        let night = |hour: u32| if (8..18).contains(&hour) { 100 } else { 10 };
        let check = Check {
            window: Window::new(at("2026-11-20T02:00:00Z"), at("2026-11-20T04:00:00Z")),
            ..check(Some(50.0))
        };
        assert_eq!(check.decide(&hours(night, "2026-11-20T04:00:00Z")), None);
        assert_eq!(check.decide(&BTreeMap::new()), None);
    }

    /// An engine with SQL only, as a detector without counters would have.
    struct SqlOnly;

    impl QueryEngine for SqlOnly {
        async fn query(&self, _: &str) -> Result<Vec<Row>, String> {
            panic!("a silence rule never runs SQL")
        }
    }

    #[test]
    fn an_engine_without_counters_fails_the_rule_saying_so() {
        let rule = parse("sources = [\"syslog\"]", "").unwrap();
        let window = Window::new(at("2026-11-20T10:00:00Z"), at("2026-11-20T11:00:00Z"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let error = runtime
            .block_on(evaluate(
                &rule,
                &SqlOnly,
                window,
                &mut RuleReport::default(),
            ))
            .unwrap_err();
        assert!(error.contains("this detector has none"), "{error}");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3, 1, 2]), 2.0);
        assert_eq!(median(vec![4, 1, 3, 2]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    fn parse(query: &str, extra: &str) -> Result<Rule, String> {
        let text = format!(
            "id = \"s\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"high\"\n\
             interval = \"1h\"\nwindow = \"1h\"\nhistory = \"7d\"\nsummary = \"s\"\n{extra}\n\
             [query]\nkind = \"silence\"\n{query}"
        );
        Rule::from_toml(std::path::Path::new("s.toml"), &text).map_err(|e| e.message)
    }

    #[test]
    fn silence_rules_are_validated_with_clear_errors() {
        let rule = parse("sources = [\"syslog\"]\nper_host = true", "").unwrap();
        assert_eq!(rule.dedup, ["source", "hostname"]);
        let Query::Silence { min_count, .. } = rule.query else {
            panic!("not a silence rule")
        };
        assert_eq!(min_count, 1);
        for (query, extra, expected) in [
            ("sources = []", "", "needs `sources`"),
            (
                "sources = [\"a\"]\ndrop_percent = 120",
                "",
                "between 0 and 100",
            ),
            ("sources = [\"a\"]\nmin_count = 0", "", "at least 1"),
            ("sources = [\"a\"]", "lateness = \"5m\"\n", ""),
        ] {
            let result = parse(query, extra);
            match expected {
                "" => assert!(result.is_ok(), "{result:?}"),
                expected => assert!(result.unwrap_err().contains(expected)),
            }
        }
        let text = |find: &str, replace: &str| {
            let base = "id = \"s\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"high\"\n\
                        interval = \"1h\"\nwindow = \"1h\"\nhistory = \"7d\"\nsummary = \"s\"\n\
                        [query]\nkind = \"silence\"\nsources = [\"a\"]";
            Rule::from_toml(std::path::Path::new("s.toml"), &base.replace(find, replace))
                .map_err(|e| e.message)
        };
        assert!(
            text("window = \"1h\"", "window = \"90m\"")
                .unwrap_err()
                .contains("whole hours")
        );
        assert!(
            text("history = \"7d\"", "history = \"36h\"")
                .unwrap_err()
                .contains("whole days")
        );
        assert!(
            text("sources = [\"a\"]", "sources = [\"a\"]\nwhere = \"x\"")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
