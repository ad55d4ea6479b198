//! Detection rules: one TOML file each under `rules/`, with metadata, the query (plain SQL or a
//! kind that compiles to SQL), settings, and test cases that must pass offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use serde::Deserialize;

use lakewatch_plugins::content::{ContentSet, Kind, check_unique};

use crate::duration;

/// One detection rule, as written in `rules/<id>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id: names the watermark, alert ids and files. Lower case, digits and dashes.
    pub id: String,
    pub title: String,
    pub description: String,
    /// Severity of its alerts (upper-cased).
    pub severity: String,
    /// How often the rule runs: windows end on multiples of this.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: TimeDelta,
    /// Length of the evaluated window (may exceed the interval: windows then overlap).
    #[serde(deserialize_with = "duration::deserialize")]
    pub window: TimeDelta,
    /// How long to wait for late events before a window is evaluated.
    #[serde(default = "zero", deserialize_with = "duration::deserialize")]
    pub lateness: TimeDelta,
    /// How far back before the window `{{history}}` reaches (first-seen, sequences, lookups).
    #[serde(default = "zero", deserialize_with = "duration::deserialize")]
    pub history: TimeDelta,
    /// Result columns that identify "the same alert" (e.g. the user): alerts with the same
    /// values are written and published once per suppression period.
    #[serde(default)]
    pub dedup: Vec<String>,
    /// How long an alert suppresses another with the same de-duplication key.
    #[serde(default = "one_hour", deserialize_with = "duration::deserialize")]
    pub suppress: TimeDelta,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub references: Vec<String>,
    /// One-line summary with `{column}` placeholders filled from the result row.
    pub summary: String,
    /// Values substituted into the SQL as `${name}` (numbers as they are, strings quoted).
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Result rows whose column holds one of these values are ignored (users, IPs, countries…).
    #[serde(default)]
    pub ignore: BTreeMap<String, Vec<String>>,
    pub query: Query,
    /// Test cases run by `lakewatch test-rules`.
    #[serde(default)]
    pub tests: Vec<RuleTest>,
}

fn zero() -> TimeDelta {
    TimeDelta::zero()
}

fn one_hour() -> TimeDelta {
    TimeDelta::hours(1)
}

/// A named SQL expression over the `events` table, used as a key column of the result.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub name: String,
    pub expr: String,
}

/// What the rule looks for. Every kind compiles to one SQL query per window.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Query {
    /// Plain SQL: each result row is an alert. Mark the time range with `{{window}}`,
    /// `{{history}}` (before the window) or `{{span}}` (history and window), optionally with a
    /// table alias: `{{window:e}}`.
    Sql { sql: String },
    /// At least `min_count` matching events per group within the window.
    Threshold {
        #[serde(rename = "where")]
        filter: String,
        group: Vec<Key>,
        /// A number, or `${setting}`.
        min_count: toml::Value,
    },
    /// A value (or combination) not seen for its entity during the history before the window
    /// ("new terms"); with `not_seen_for`, a value seen before but not within that period.
    FirstSeen {
        #[serde(rename = "where")]
        filter: String,
        entity: Vec<Key>,
        value: Vec<Key>,
        /// Entities first seen less than this long before the window are still learning.
        #[serde(default, deserialize_with = "duration::deserialize_option")]
        learning: Option<TimeDelta>,
        #[serde(default, deserialize_with = "duration::deserialize_option")]
        not_seen_for: Option<TimeDelta>,
    },
    /// `first` events followed by a `then` event for the same key within `within`.
    Sequence {
        first: String,
        then: String,
        key: Vec<Key>,
        #[serde(deserialize_with = "duration::deserialize")]
        within: TimeDelta,
        /// How many `first` events must precede the `then` event (default 1).
        #[serde(default)]
        min_count: Option<toml::Value>,
    },
    /// Each event paired with the previous event of the same key (impossible travel): `sql`
    /// selects the alerts from `pairs`, the window's events with their `fields`, `eventid`,
    /// `utctimestamp` and the previous event's as `from_eventid`, `from_time` and
    /// `from_<field>` (NULL without one within `history` before the event's window). The
    /// previous event per key is kept as a baseline ([`crate::previous`]), so the windows do
    /// not read `history` again.
    Previous {
        #[serde(rename = "where")]
        filter: String,
        key: Vec<Key>,
        /// What the pairs carry of each event (text: cast in `sql` where numbers are needed).
        fields: Vec<Key>,
        sql: String,
    },
    /// A source that stops sending, or whose volume drops against the same hours of the days
    /// before ([`crate::silence`]). Read from the event counters the lake keeps, never from
    /// events: no SQL, no scan.
    Silence {
        /// The shell's `source` values to watch, each on its own.
        sources: Vec<String>,
        /// One check per `hostname` seen during `history` (local lakes: the AWS metric is
        /// counted per source only).
        #[serde(default)]
        per_host: bool,
        /// A window with fewer events than this is silent (default 1: no event at all).
        #[serde(default = "one")]
        min_count: u64,
        /// Also alert when a window holds more than this percentage fewer events than the
        /// median of the same hours on each of the `history` days before it.
        #[serde(default)]
        drop_percent: Option<f64>,
    },
}

fn one() -> u64 {
    1
}

impl Query {
    /// A first-seen query's filter, entity and value keys (what its baseline is made of);
    /// `None` for the other kinds.
    pub fn first_seen_keys(&self) -> Option<(&str, &[Key], &[Key])> {
        match self {
            Query::FirstSeen {
                filter,
                entity,
                value,
                ..
            } => Some((filter, entity, value)),
            _ => None,
        }
    }
}

/// A test case: events to ingest, the range to evaluate, and the alerts expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    pub name: String,
    /// Events file (any framing `lakewatch ingest` reads), relative to the rule file.
    pub events: PathBuf,
    /// Range to evaluate, RFC 3339.
    pub from: String,
    pub to: String,
    /// Each expected alert: columns of the result row that must have these values.
    #[serde(default)]
    pub expect: Vec<BTreeMap<String, String>>,
}

/// A rule file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    pub path: PathBuf,
    pub message: String,
}

impl Rule {
    /// Reads and checks one rule file.
    pub fn from_file(path: &Path) -> Result<Rule, RuleError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut rule = Rule::from_toml(path, &text)?;
        // Test event files are relative to the rule file.
        let base = path.parent().unwrap_or(Path::new("."));
        for test in &mut rule.tests {
            test.events = base.join(&test.events);
        }
        Ok(rule)
    }

    /// Reads and checks a rule from its TOML text (rules embedded in a binary); `name` is where
    /// it came from, for errors.
    pub fn from_toml(name: &Path, text: &str) -> Result<Rule, RuleError> {
        let error = |message: String| RuleError {
            path: name.to_path_buf(),
            message,
        };
        let mut rule: Rule = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        rule.severity = rule.severity.to_uppercase();
        rule.validate().map_err(error)?;
        if let Query::Silence { per_host, .. } = &rule.query
            && rule.dedup.is_empty()
        {
            // The same source (and host) is the same alert, whatever its counts.
            rule.dedup = crate::silence::identity_columns(*per_host);
        }
        Ok(rule)
    }

    /// Whether a result row holds one of the `[ignore]` values. Queries compiled to SQL leave
    /// such rows out in the query itself (`compile::apply_ignores`); rules evaluated with a
    /// baseline decide in the detector, after the ignored rows have still updated the baseline.
    pub fn ignores(&self, row: &crate::alert::Row) -> bool {
        self.ignore.iter().any(|(column, values)| {
            row.get(column)
                .and_then(|value| value.as_deref())
                .is_some_and(|value| values.iter().any(|ignored| ignored == value))
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "id {:?} must be lower-case letters, digits and dashes",
                self.id
            ));
        }
        if self.interval <= TimeDelta::zero() || self.window <= TimeDelta::zero() {
            return Err("interval and window must be longer than zero".into());
        }
        if TimeDelta::days(1).num_seconds() % self.interval.num_seconds() != 0 {
            return Err(format!(
                "interval {}s must divide a day evenly (e.g. 5m, 15m, 1h) so windows align",
                self.interval.num_seconds()
            ));
        }
        for column in &self.dedup {
            if column.is_empty() {
                return Err("dedup columns must be named".into());
            }
        }
        if let Query::Silence {
            sources,
            min_count,
            drop_percent,
            ..
        } = &self.query
        {
            crate::silence::validate(self, sources, *min_count, *drop_percent)?;
        }
        Ok(())
    }
}

/// Every rule of `set`: the bundled ones (embedded in the binary) unless turned off, those of
/// each directory, the files given (read from S3); sorted by id. An id defined twice is an
/// error naming both files.
pub fn load(set: &ContentSet) -> Result<Vec<Rule>, RuleError> {
    let files = set
        .gather(Kind::Rules, crate::bundled::FILES)
        .map_err(|e| RuleError {
            path: e.file.into(),
            message: e.message,
        })?;
    let mut rules = Vec::with_capacity(files.len());
    for file in &files {
        let mut rule = Rule::from_toml(Path::new(&file.origin), &file.text)?;
        // A directory's rule names its test events relative to the directory.
        if let Some(dir) = &file.dir {
            for test in &mut rule.tests {
                test.events = dir.join(&test.events);
            }
        }
        rules.push((rule, &file.origin));
    }
    check_unique(
        Kind::Rules,
        rules
            .iter()
            .map(|(rule, origin)| (rule.id.as_str(), origin.as_str())),
    )
    .map_err(|e| RuleError {
        path: e.file.into(),
        message: e.message,
    })?;
    let mut rules: Vec<Rule> = rules.into_iter().map(|(rule, _)| rule).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

/// The rules of one directory only (no bundled ones).
pub fn load_rules(dir: &Path) -> Result<Vec<Rule>, RuleError> {
    load(&ContentSet {
        bundled: false,
        ..ContentSet::with_dirs(vec![dir.to_path_buf()])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rule, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rule.toml");
        std::fs::write(&path, text).unwrap();
        Rule::from_file(&path).map_err(|e| e.message)
    }

    const MINIMAL: &str = r#"
id = "x"
title = "t"
description = "d"
severity = "high"
interval = "5m"
window = "15m"
summary = "s"
[query]
kind = "sql"
sql = "SELECT 1 FROM events WHERE {{window}}"
"#;

    #[test]
    fn reads_a_rule_with_defaults() {
        let rule = parse(MINIMAL).unwrap();
        assert_eq!(rule.severity, "HIGH");
        assert_eq!(rule.window, TimeDelta::minutes(15));
        assert_eq!(rule.lateness, TimeDelta::zero());
        assert_eq!(rule.suppress, TimeDelta::hours(1));
        assert!(matches!(rule.query, Query::Sql { .. }));
    }

    #[test]
    fn rejects_bad_ids_intervals_and_unknown_fields() {
        assert!(
            parse(&MINIMAL.replace("id = \"x\"", "id = \"Bad Id\""))
                .unwrap_err()
                .contains("lower-case")
        );
        assert!(
            parse(&MINIMAL.replace("interval = \"5m\"", "interval = \"7m\""))
                .unwrap_err()
                .contains("divide a day")
        );
        assert!(
            parse(&MINIMAL.replace("summary = \"s\"", "summary = \"s\"\nsumary = 1"))
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn a_directory_adds_rules_beside_the_bundled_ones_and_a_duplicate_names_both_files() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        std::fs::write(first.path().join("x.toml"), MINIMAL).unwrap();
        std::fs::write(
            second.path().join("y.toml"),
            MINIMAL.replace("id = \"x\"", "id = \"y\"").replace(
                "summary = \"s\"",
                "summary = \"s\"\n[[tests]]\nname = \"t\"\nevents = \"tests/y.ndjson\"\nfrom = \"a\"\nto = \"b\"",
            ),
        )
        .unwrap();
        let dirs = vec![first.path().to_path_buf(), second.path().to_path_buf()];
        let rules = load(&ContentSet::with_dirs(dirs.clone())).unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert!(ids.contains(&"impossible-travel"), "{ids:?}");
        assert!(ids.contains(&"x") && ids.contains(&"y"), "{ids:?}");
        let y = rules.iter().find(|r| r.id == "y").unwrap();
        assert_eq!(y.tests[0].events, second.path().join("tests/y.ndjson"));
        let only_mine = ContentSet {
            bundled: false,
            ..ContentSet::with_dirs(dirs)
        };
        assert_eq!(load(&only_mine).unwrap().len(), 2);

        std::fs::write(
            second.path().join("again.toml"),
            MINIMAL.replace("id = \"x\"", "id = \"impossible-travel\""),
        )
        .unwrap();
        let error = load(&ContentSet::with_dirs(vec![second.path().to_path_buf()]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "{}: rule \"impossible-travel\" is already defined in rules/impossible-travel.toml",
                second.path().join("again.toml").display()
            )
        );
    }
}
