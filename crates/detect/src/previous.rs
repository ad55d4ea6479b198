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

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Row;
use crate::baseline::{BatchEvents, Kept, Tracked};
use crate::compile::{pair_columns, previous_baseline_sql, previous_events_sql};
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
pub struct PreviousTracker {
    tracked: Tracked<Previous>,
    /// The previous events per key after each window of a batch ([`PreviousTracker::fold_batch`]),
    /// by window end: what the window's second query would return.
    batched: BTreeMap<DateTime<Utc>, Vec<KeptEvent>>,
}

/// A kept event: its columns in [`pair_columns`] order (text or NULL).
type KeptEvent = Vec<Option<String>>;

/// The events of `events` at or after `since` (their time is column `time_column`).
fn seen_since(
    events: impl IntoIterator<Item = KeptEvent>,
    time_column: usize,
    since: DateTime<Utc>,
) -> Vec<KeptEvent> {
    let since = format_timestamp(since);
    events
        .into_iter()
        .filter(|row| {
            row.get(time_column)
                .cloned()
                .flatten()
                .is_some_and(|time| time >= since)
        })
        .collect()
}

impl PreviousTracker {
    /// The rule's tracker with its stored baseline; `None` when the rule is not a pairing rule
    /// or the store keeps no baselines (the rule then reads its history by SQL).
    pub async fn load<S: StateStore>(
        rule: &Rule,
        store: &S,
    ) -> Result<Option<PreviousTracker>, String> {
        Ok(Tracked::load(definition(rule), rule, store)
            .await?
            .map(|tracked| PreviousTracker {
                tracked,
                batched: BTreeMap::new(),
            }))
    }

    /// Whether evaluating `window` builds the baseline from history (it then reads `history`).
    pub fn rebuilds(&self, rule: &Rule, window: Window) -> bool {
        self.tracked.rebuild_reason(rule, window).is_some()
    }

    /// The kept events `window` pairs with when the baseline reaches exactly its start (its
    /// queries then read the window alone); `None` otherwise.
    fn kept_for(&self, rule: &Rule, window: Window) -> Option<Vec<KeptEvent>> {
        let previous = self.tracked.current.as_ref()?;
        let fits =
            self.tracked.rebuild_reason(rule, window).is_none() && previous.through == window.start;
        let Query::Previous { key, .. } = &rule.query else {
            return None;
        };
        let time_column = key.len() + 1;
        fits.then(|| {
            seen_since(
                previous.events.iter().cloned(),
                time_column,
                window.start - rule.history,
            )
        })
    }

    /// Batched windows ([`crate::runner`]): the query of the matching events of `windows` (in
    /// time order), with its columns and the windows it covers: those following on from the
    /// first, each starting where the one before ends. `None` when the baseline does not reach
    /// the first one's start (they are then evaluated one by one). The runner sends it (alone
    /// or grouped with other rules' queries) and hands its rows to
    /// [`PreviousTracker::fold_batch`].
    pub fn batch_events(
        &self,
        rule: &Rule,
        windows: &[Window],
    ) -> Result<Option<BatchEvents>, String> {
        let Query::Previous { key, fields, .. } = &rule.query else {
            return Ok(None);
        };
        let Some(first) = windows.first() else {
            return Ok(None);
        };
        if self.kept_for(rule, *first).is_none() {
            return Ok(None);
        }
        let following = 1 + windows
            .windows(2)
            .take_while(|pair| pair[1].start == pair[0].end)
            .count();
        let windows = windows[..following].to_vec();
        let union = Window::new(first.start, windows[following - 1].end);
        let sql = previous_events_sql(rule, union).map_err(|e| e.to_string())?;
        let columns = pair_columns(key, fields)
            .into_iter()
            .map(String::from)
            .collect();
        Ok(Some(BatchEvents {
            windows,
            sql,
            columns,
        }))
    }

    /// Works out from the events of `windows` ([`PreviousTracker::batch_events`]' rows), window
    /// by window, the previous events per key after each window (what its second query would
    /// return: the latest by time, then `eventid`, of the kept ones and the window's).
    /// Returns each window's alerts query, paired with the events it would be paired with: the
    /// very query [`PreviousTracker::evaluate`] sends, so the caller may send many in one
    /// ([`crate::compile::tagged_union`]) and hand each window its rows. A window whose query
    /// is longer than Athena accepts is left out (evaluated on its own).
    pub fn fold_batch(
        &mut self,
        rule: &Rule,
        windows: &[Window],
        rows: &[Row],
    ) -> Result<Vec<(Window, String)>, String> {
        let Query::Previous { key, fields, .. } = &rule.query else {
            return Ok(Vec::new());
        };
        let Some(mut kept) = windows
            .first()
            .and_then(|first| self.kept_for(rule, *first))
        else {
            return Ok(Vec::new());
        };
        let columns = pair_columns(key, fields);
        let events: Vec<KeptEvent> = rows.iter().map(|row| values_of(row, &columns)).collect();
        let (id_column, time_column) = (key.len(), key.len() + 1);
        let mut queries = Vec::new();
        for window in windows {
            let pairs_with = seen_since(kept, time_column, window.start - rule.history);
            let (alerts, _) = previous_baseline_sql(rule, *window, window.start, &pairs_with)
                .map_err(|e| e.to_string())?;
            if alerts.len() <= MAX_QUERY_BYTES {
                queries.push((*window, alerts));
            }
            let mut latest: BTreeMap<KeptEvent, KeptEvent> = pairs_with
                .into_iter()
                .map(|row| (row[..key.len()].to_vec(), row))
                .collect();
            let (start, end) = (format_timestamp(window.start), format_timestamp(window.end));
            let order = |row: &KeptEvent| (row[time_column].clone(), row[id_column].clone());
            for event in events.iter().filter(|event| {
                event[time_column]
                    .as_deref()
                    .is_some_and(|time| time >= start.as_str() && time < end.as_str())
            }) {
                match latest.entry(event[..key.len()].to_vec()) {
                    Entry::Vacant(entry) => {
                        entry.insert(event.clone());
                    }
                    Entry::Occupied(mut entry) => {
                        if order(event) > order(entry.get()) {
                            entry.insert(event.clone());
                        }
                    }
                }
            }
            let mut after =
                seen_since(latest.into_values(), time_column, window.end - rule.history);
            after.sort();
            self.batched.insert(window.end, after.clone());
            kept = after;
        }
        Ok(queries)
    }

    /// Evaluates a window with the baseline (building it from history first when needed):
    /// the rule's alerts, then the latest event per key, which becomes the baseline.
    /// `batched`: the window's alerts read with other windows' ([`PreviousTracker::fold_batch`]),
    /// used with the previous events worked out there while the baseline reaches the window's
    /// start; otherwise the window is queried.
    pub async fn evaluate<E: QueryEngine>(
        &mut self,
        rule: &Rule,
        engine: &E,
        window: Window,
        batched: Option<Vec<Row>>,
        report: &mut RuleReport,
    ) -> Result<Vec<Row>, String> {
        let Query::Previous { key, fields, .. } = &rule.query else {
            return Err(format!("rule {} is not a pairing rule", rule.id));
        };
        let after = self.batched.remove(&window.end);
        if let (Some(alerts), Some(events)) = (batched, after)
            && self.kept_for(rule, window).is_some()
        {
            self.tracked.current = Some(Previous {
                definition: self.tracked.definition.clone(),
                through: window.end,
                events,
            });
            return Ok(alerts);
        }
        let tracked = &mut self.tracked;
        let mut reason = tracked.rebuild_reason(rule, window);
        let time_column = key.len() + 1;
        let (mut from, mut kept) = match (&reason, &tracked.current) {
            (None, Some(previous)) => (
                previous.through,
                seen_since(
                    previous.events.iter().cloned(),
                    time_column,
                    window.start - rule.history,
                ),
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
        let mut events = seen_since(
            latest.iter().map(|row| values_of(row, &columns)),
            time_column,
            window.end - rule.history,
        );
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
        self.tracked.save(rule, store).await
    }
}

/// A row's `columns`, in order.
fn values_of(row: &Row, columns: &[&str]) -> KeptEvent {
    columns
        .iter()
        .map(|column| row.get(*column).cloned().flatten())
        .collect()
}
