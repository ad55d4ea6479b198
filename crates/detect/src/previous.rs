//! Previous events: what pairing rules (`kind = "previous"`, impossible travel) remember
//! between runs instead of re-reading `history` on every window.
//!
//! A pairing rule compares each event of a window with the previous event of the same key
//! (a user's previous login), which may lie up to `history` before the window. Answered by SQL
//! alone, every 15-minute window of `impossible-travel` re-reads a day of the lake. With a
//! baseline the detector keeps, per rule, the latest event of each key (its columns: keys,
//! `eventid`, `utctimestamp`, the rule's fields) and the time up to which events are folded in
//! (`through`). A window's queries then read `[through, window end)` (the window itself when
//! runs follow each other) with the kept events added as rows (`VALUES`), so the rule's SQL
//! pairs exactly the events it would pair over the history, and gives the same alerts.
//!
//! The baseline is a [`Previous`] document, stored, built from history, refused when stale and
//! never moved backwards exactly as a first-seen rule's ([`crate::baseline`]): a new or changed
//! rule, or a window the baseline does not fit (a replay, a window evaluated again), builds it
//! from `history` once, reported in [`RuleReport::baselines_built`]; events older than
//! `history` before the next window are dropped, as the SQL would not see them either.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Row;
use crate::baseline::{Kept, Tracked};
use crate::compile::{pair_columns, previous_baseline_sql};
use crate::rule::{Query, Rule};
use crate::runner::{MAX_QUERY_BYTES, QueryEngine, RuleReport, run_query};
use crate::state::StateStore;
use crate::window::Window;
use lakewatch_plugins::shell::format_timestamp;

/// Version of the document and of the evaluation; part of [`definition`].
const FORMAT: u32 = 1;

/// What a pairing rule's baseline depends on, hashed: its filter, keys, fields and `history`.
/// `None` for rules that are not pairing rules.
pub fn definition(rule: &Rule) -> Option<String> {
    let Query::Previous {
        filter,
        key,
        fields,
        ..
    } = &rule.query
    else {
        return None;
    };
    let text = format!(
        "previous {FORMAT}\n{filter}\n{key:?}\n{fields:?}\n{}",
        rule.history.num_seconds()
    );
    Some(blake3::hash(text.as_bytes()).to_hex()[..16].to_string())
}

/// A pairing rule's baseline: the latest event of each key before `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    /// [`definition`] of the rule it was built for.
    pub definition: String,
    /// Events before this time are folded in; the next query reads from here.
    pub through: DateTime<Utc>,
    /// One row per key, its columns in [`pair_columns`] order (text or NULL).
    pub events: Vec<Vec<Option<String>>>,
}

impl Kept for Previous {
    fn definition(&self) -> &str {
        &self.definition
    }
    fn through(&self) -> DateTime<Utc> {
        self.through
    }
}

/// A pairing rule's baseline during one run.
pub struct PreviousTracker(Tracked<Previous>);

impl PreviousTracker {
    /// The rule's tracker with its stored baseline; `None` when the rule is not a pairing rule
    /// or the store keeps no baselines (the rule then reads its history by SQL).
    pub async fn load<S: StateStore>(
        rule: &Rule,
        store: &S,
    ) -> Result<Option<PreviousTracker>, String> {
        let Some(definition) = definition(rule) else {
            return Ok(None);
        };
        Ok(Tracked::load(definition, rule, store)
            .await?
            .map(PreviousTracker))
    }

    /// Whether evaluating `window` builds the baseline from history (it then reads `history`).
    pub fn rebuilds(&self, rule: &Rule, window: Window) -> bool {
        self.0.rebuild_reason(rule, window).is_some()
    }

    /// Evaluates a window with the baseline (building it from history first when needed):
    /// the rule's alerts, then the latest event per key, which becomes the baseline.
    pub async fn evaluate<E: QueryEngine>(
        &mut self,
        rule: &Rule,
        engine: &E,
        window: Window,
        report: &mut RuleReport,
    ) -> Result<Vec<Row>, String> {
        let Query::Previous { key, fields, .. } = &rule.query else {
            return Err(format!("rule {} is not a pairing rule", rule.id));
        };
        let tracked = &mut self.0;
        let mut reason = tracked.rebuild_reason(rule, window);
        let seen_since = format_timestamp(window.start - rule.history);
        let time_column = key.len() + 1;
        let (mut from, mut kept) = match (&reason, &tracked.current) {
            (None, Some(previous)) => (
                previous.through,
                previous
                    .events
                    .iter()
                    .filter(|row| {
                        row.get(time_column)
                            .cloned()
                            .flatten()
                            .is_some_and(|time| time >= seen_since)
                    })
                    .cloned()
                    .collect(),
            ),
            _ => (window.start - rule.history, Vec::new()),
        };
        let (mut alerts_sql, mut latest_sql) =
            previous_baseline_sql(rule, window, from, &kept).map_err(|e| e.to_string())?;
        // The kept events travel in the query text: when there are too many of them for
        // Athena, this window reads its history instead, like a rebuild (slower, same alerts).
        if alerts_sql.len().max(latest_sql.len()) > MAX_QUERY_BYTES {
            reason = Some(format!(
                "its {} previous events make a query longer than the {MAX_QUERY_BYTES} bytes \
                 Athena accepts, so the window reads its history",
                kept.len()
            ));
            from = window.start - rule.history;
            kept.clear();
            (alerts_sql, latest_sql) =
                previous_baseline_sql(rule, window, from, &kept).map_err(|e| e.to_string())?;
        }
        let read_before = report.bytes_read;
        let alerts = run_query(engine, &alerts_sql, window, report).await?;
        let latest = run_query(engine, &latest_sql, window, report).await?;
        if let Some(reason) = reason {
            report.note_built(window, reason, read_before);
        }
        let columns = pair_columns(key, fields);
        let forget_before = format_timestamp(window.end - rule.history);
        let mut events: Vec<Vec<Option<String>>> = latest
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|column| row.get(*column).cloned().flatten())
                    .collect::<Vec<_>>()
            })
            .filter(|row| {
                row[time_column]
                    .as_deref()
                    .is_some_and(|time| time >= forget_before.as_str())
            })
            .collect();
        events.sort();
        tracked.current = Some(Previous {
            definition: tracked.definition.clone(),
            through: window.end,
            events,
        });
        Ok(alerts)
    }

    /// Saves the baseline after a window's alerts were written ([`Tracked::save`]).
    pub async fn save<S: StateStore>(&mut self, rule: &Rule, store: &S) -> Result<(), String> {
        self.0.save(rule, store).await
    }
}
