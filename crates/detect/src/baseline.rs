//! Baselines: what first-seen rules remember between runs instead of re-reading `history` on
//! every window.
//!
//! A first-seen rule asks, for each entity and value of a window, whether the value was seen for
//! the entity during `history` before the window (and since when the entity is known). Answered
//! by SQL, every hourly window re-reads 30 or 90 days of the lake, so the rule's cost grows with
//! history × runs. With a baseline the detector keeps, per rule, one compact entry per entity
//! and value (first and last sighting) and the time up to which events are folded in
//! (`through`). A window's query then reads only `[through, window end)` (the window itself when
//! runs follow each other), returns every entity and value of it with its first and last
//! sighting, and the detector decides with the baseline and folds the window in.
//!
//! - **Same answers as the history scan**: a value is known when its last sighting before the
//!   window is within `history`; entries not seen for `history` are forgotten, as the scan
//!   forgets them. Values are new in event-time order inside the window, and `learning` counts
//!   from the entity's first sighting, exactly as the compiled SQL does. One difference, on
//!   purpose: the SQL sees an entity's sightings within `history` only, the baseline remembers
//!   an entity's first sighting as long as one of its values is still known, so a learning
//!   period is not restarted by a quiet month.
//! - **Bootstrap and change**: a rule without a baseline, whose baseline definition changed (the
//!   filter, the keys or `history`: [`definition`]), or whose baseline does not fit the window
//!   (older than `history`, or already past the window's start: a replay, a set-aside window)
//!   builds one from history with one query over `history` + window, reported in
//!   [`RuleReport::baselines_built`], then goes incremental. Rules building their baselines in
//!   the same run share that read: one query reads the union of their histories once and hands
//!   each rule its rows ([`first_seen_bootstrap_sql`], [`Tracker::hand_bootstrap`]).
//! - **Safe updates**: the baseline is a versioned document
//!   ([`lakewatch_lake::layout::baseline_document`]) saved with compare-and-swap after the
//!   window's alerts are written and before the watermark moves: a run that read an older
//!   version is refused (two overlapping runs cannot both update it); folding is a min/max, so a
//!   retried window never counts twice; a window whose query or write failed is not folded, and
//!   the next window reads from `through`, so nothing is lost; a saved baseline never moves
//!   backwards. A baseline ahead of the watermark (a run stopped between the two saves) is
//!   rebuilt for the window evaluated again.
//! - **Replays** build their own baseline in memory and leave the live one alone, unless the
//!   replay moves the watermark (`--advance-watermark`) and gets further than the live one.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alert::Row;
use crate::compile::{GROUPED_PART_COLUMN, first_seen_baseline_sql, grouped_column};
use crate::rule::{Key, Query, Rule};
use crate::runner::QueryEngine;
use crate::runner::{RuleReport, run_query};
use crate::state::StateStore;
use crate::window::Window;
use lakewatch_plugins::shell::format_timestamp;

/// Version of the document and of the evaluation; part of [`definition`], so changing either
/// rebuilds every baseline.
const FORMAT: u32 = 1;

/// What a rule's baseline depends on, hashed: its filter, entity and value expressions and
/// `history` (which decides what is forgotten). `None` for rules that keep no baseline.
pub fn definition(rule: &Rule) -> Option<String> {
    let (filter, entity, value) = rule.query.first_seen_keys()?;
    let text = format!(
        "{FORMAT}\n{filter}\n{entity:?}\n{value:?}\n{}",
        rule.history.num_seconds()
    );
    Some(blake3::hash(text.as_bytes()).to_hex()[..16].to_string())
}

/// First and last sighting of one value of one entity, as the lake's `utctimestamp` text
/// (fixed width, so text order is time order, as in the rules' SQL).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    first: String,
    last: String,
}

/// One rule's baseline: every (entity, value) seen within `history` before `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Document", from = "Document")]
pub struct Baseline {
    /// [`definition`] of the rule it was built for.
    pub definition: String,
    /// Events before this time are folded in; the next query reads from here.
    pub through: DateTime<Utc>,
    entries: BTreeMap<(Vec<String>, Vec<String>), Seen>,
}

/// The stored form of a [`Baseline`]: a list of entries (JSON maps need text keys).
#[derive(Serialize, Deserialize)]
struct Document {
    definition: String,
    through: DateTime<Utc>,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    entity: Vec<String>,
    value: Vec<String>,
    first_seen: String,
    last_seen: String,
}

impl From<Baseline> for Document {
    fn from(baseline: Baseline) -> Self {
        Document {
            definition: baseline.definition,
            through: baseline.through,
            entries: baseline
                .entries
                .into_iter()
                .map(|((entity, value), seen)| Entry {
                    entity,
                    value,
                    first_seen: seen.first,
                    last_seen: seen.last,
                })
                .collect(),
        }
    }
}

impl From<Document> for Baseline {
    fn from(document: Document) -> Self {
        Baseline {
            definition: document.definition,
            through: document.through,
            entries: document
                .entries
                .into_iter()
                .map(|e| {
                    let seen = Seen {
                        first: e.first_seen,
                        last: e.last_seen,
                    };
                    ((e.entity, e.value), seen)
                })
                .collect(),
        }
    }
}

impl Baseline {
    fn empty(definition: &str, through: DateTime<Utc>) -> Self {
        Baseline {
            definition: definition.to_string(),
            through,
            entries: BTreeMap::new(),
        }
    }

    /// How many (entity, value) pairs it remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds sightings; min/max, so folding the same events twice changes nothing.
    fn fold(&mut self, entity: &[String], value: &[String], first: &str, last: &str) {
        let seen = self
            .entries
            .entry((entity.to_vec(), value.to_vec()))
            .or_insert_with(|| Seen {
                first: first.to_string(),
                last: last.to_string(),
            });
        if first < seen.first.as_str() {
            seen.first = first.to_string();
        }
        if last > seen.last.as_str() {
            seen.last = last.to_string();
        }
    }

    /// The value's sightings, when its last one is at or after `since`.
    fn known(&self, entity: &[String], value: &[String], since: &str) -> Option<&Seen> {
        self.entries
            .get(&(entity.to_vec(), value.to_vec()))
            .filter(|seen| seen.last.as_str() >= since)
    }

    /// The entity's first sighting among its values still known at `since`.
    fn entity_first(&self, entity: &[String], since: &str) -> Option<&str> {
        self.entries
            .range((entity.to_vec(), Vec::new())..)
            .take_while(|((e, _), _)| e.as_slice() == entity)
            .filter(|(_, seen)| seen.last.as_str() >= since)
            .map(|(_, seen)| seen.first.as_str())
            .min()
    }

    /// Forgets values not seen since `cutoff`.
    fn prune(&mut self, cutoff: &str) {
        self.entries.retain(|_, seen| seen.last.as_str() >= cutoff);
    }
}

/// A baseline's stored bytes (any kind: [`Baseline`], [`crate::previous::Previous`]): gzip JSON.
pub fn encode_baseline<B: Serialize>(baseline: &B) -> Vec<u8> {
    let json = serde_json::to_vec(baseline).expect("a baseline serializes");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&json).expect("writing to memory");
    gzip.finish().expect("writing to memory")
}

/// A baseline from its stored bytes ([`encode_baseline`]).
pub fn decode_baseline<B: DeserializeOwned>(bytes: &[u8]) -> Result<B, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip ({e})"))?;
    serde_json::from_slice(&json).map_err(|e| format!("not a baseline ({e})"))
}

/// A baseline built from history during a run (a new rule, a changed definition, a replay).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineBuilt {
    /// The window whose query built it (it reads `history` before the window and the window).
    pub window: Window,
    pub reason: String,
    /// Lake bytes of that query, when the engine counts them.
    pub bytes_read: Option<u64>,
}

/// The query of the events of a batch of windows of a rule that keeps events
/// ([`crate::previous::PreviousTracker::batch_events`],
/// [`crate::sequence::SequenceTracker::batch_events`]): the windows it serves, in time order,
/// its SQL and its columns, in order.
pub struct BatchEvents {
    pub windows: Vec<Window>,
    pub sql: String,
    pub columns: Vec<String>,
}

/// What every kind of baseline is ([`Baseline`], [`crate::previous::Previous`]): built for one
/// definition of its rule, with the events before `through` folded in.
pub trait Kept: Serialize + DeserializeOwned {
    fn definition(&self) -> &str;
    fn through(&self) -> DateTime<Utc>;
}

impl Kept for Baseline {
    fn definition(&self) -> &str {
        &self.definition
    }
    fn through(&self) -> DateTime<Utc> {
        self.through
    }
}

/// A rule's baseline of any kind during one run: the one evaluated with, and what the store
/// holds (for compare-and-swap, and so that a save never goes backwards).
pub(crate) struct Tracked<B> {
    pub(crate) definition: String,
    pub(crate) current: Option<B>,
    /// Version of the stored document (`None`: nothing stored), for compare-and-swap.
    version: Option<String>,
    /// `through` of the stored baseline when it has this definition: a save never goes back.
    stored_through: Option<DateTime<Utc>>,
    /// The stored baseline was built for another definition of the rule.
    changed: bool,
}

impl<B: Kept> Tracked<B> {
    /// The rule's stored baseline for `definition` (the rule's definition of this kind of
    /// baseline); `None` when there is none (the rule keeps no such baseline) or the store keeps
    /// no baselines (the rule then reads its history by SQL).
    pub(crate) async fn load<S: StateStore>(
        definition: Option<String>,
        rule: &Rule,
        store: &S,
    ) -> Result<Option<Self>, String> {
        let Some(definition) = definition.filter(|_| store.keeps_baselines()) else {
            return Ok(None);
        };
        let stored = store
            .load_baseline::<B>(&rule.id)
            .await
            .map_err(|e| e.to_string())?;
        let mut tracked = Tracked {
            definition,
            current: None,
            version: None,
            stored_through: None,
            changed: false,
        };
        if let Some((baseline, version)) = stored {
            tracked.version = Some(version);
            if baseline.definition() == tracked.definition {
                tracked.stored_through = Some(baseline.through());
                tracked.current = Some(baseline);
            } else {
                tracked.changed = true;
            }
        }
        Ok(Some(tracked))
    }

    /// Why there is no baseline to go on from: none stored yet, or one for another definition.
    fn missing_reason(&self) -> Option<String> {
        self.current.is_none().then(|| {
            if self.changed {
                "the rule's baseline definition changed".to_string()
            } else {
                "the rule has no baseline yet".to_string()
            }
        })
    }

    /// Why the baseline must be built from history before `window`; `None` when it fits: it
    /// has not folded in any event of the window, and it is not older than `history`.
    pub(crate) fn rebuild_reason(&self, rule: &Rule, window: Window) -> Option<String> {
        self.rebuild_reason_when(
            rule,
            window,
            |through| through > window.start,
            "past the window's start",
        )
    }

    /// Why the baseline must be built from history before `window`: none to go on from, one
    /// that `reaches_too_far` (`beyond` says how), or one older than `history`.
    pub(crate) fn rebuild_reason_when(
        &self,
        rule: &Rule,
        window: Window,
        reaches_too_far: impl Fn(DateTime<Utc>) -> bool,
        beyond: &str,
    ) -> Option<String> {
        if let Some(missing) = self.missing_reason() {
            return Some(missing);
        }
        let through = self.current.as_ref().map(B::through)?;
        if reaches_too_far(through) {
            Some(format!(
                "the baseline reaches {}, {beyond} (a replay or a window evaluated again)",
                format_timestamp(through)
            ))
        } else if through < window.start - rule.history {
            Some(format!(
                "the baseline ends at {}, more than the rule's history before the window",
                format_timestamp(through)
            ))
        } else {
            None
        }
    }

    /// Saves the baseline after a window's alerts were written: compare-and-swap against the
    /// version this run read, and only when it gets further than the stored one.
    pub(crate) async fn save<S: StateStore>(
        &mut self,
        rule: &Rule,
        store: &S,
    ) -> Result<(), String> {
        let Some(baseline) = &self.current else {
            return Ok(());
        };
        if self
            .stored_through
            .is_some_and(|stored| stored >= baseline.through())
        {
            return Ok(());
        }
        let version = store
            .save_baseline(&rule.id, baseline, self.version.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        self.version = Some(version);
        self.stored_through = Some(baseline.through());
        Ok(())
    }
}

/// A first-seen rule's baseline during one run.
pub struct Tracker {
    tracked: Tracked<Baseline>,
    /// The rows that build the baseline for a window, read with other rules' histories.
    bootstrap: Option<Bootstrap>,
}

/// A window's rows as [`first_seen_baseline_sql`] gives them from `history` before it, read for
/// several rules at once ([`first_seen_bootstrap_sql`]).
pub(crate) struct Bootstrap {
    pub(crate) window: Window,
    pub(crate) rows: Vec<Row>,
    /// What the shared query read, in the report of the rule it is counted with (0 for the others).
    pub(crate) bytes_read: Option<u64>,
    /// The rules whose baselines the query built, this one included.
    pub(crate) rules: Vec<String>,
}

/// A shared bootstrap's rows ([`first_seen_bootstrap_sql`]) back per part, with each part's
/// own key names (`rules` in the parts' order).
pub fn bootstrap_rows(rules: &[&Rule], rows: Vec<Row>) -> Result<Vec<Vec<Row>>, String> {
    let keys: Vec<Vec<&str>> = rules
        .iter()
        .map(|rule| match rule.query.first_seen_keys() {
            Some((_, entity, value)) => Ok(entity
                .iter()
                .chain(value)
                .map(|key| key.name.as_str())
                .collect()),
            None => Err(format!("rule {} keeps no baseline", rule.id)),
        })
        .collect::<Result<_, _>>()?;
    let width = keys.iter().map(Vec::len).max().unwrap_or(0);
    let mut split = vec![Vec::new(); rules.len()];
    for mut row in rows {
        let tag = row.remove(GROUPED_PART_COLUMN).flatten();
        let Some((index, names)) = tag
            .as_deref()
            .and_then(|tag| tag.parse::<usize>().ok())
            .and_then(|index| keys.get(index).map(|names| (index, names)))
        else {
            return Err(format!(
                "a row of no part of {} ({GROUPED_PART_COLUMN} = {tag:?})",
                rules.len()
            ));
        };
        for n in 0..width {
            let value = row.remove(&grouped_column(n)).flatten();
            if let Some(name) = names.get(n) {
                row.insert(name.to_string(), value);
            }
        }
        split[index].push(row);
    }
    Ok(split)
}

impl Tracker {
    /// The rule's tracker, with its stored baseline; `None` when the rule keeps none (not
    /// first-seen) or the store keeps no baselines (the rule then reads its history by SQL).
    pub async fn load<S: StateStore>(rule: &Rule, store: &S) -> Result<Option<Tracker>, String> {
        Ok(Tracked::load(definition(rule), rule, store)
            .await?
            .map(|tracked| Tracker {
                tracked,
                bootstrap: None,
            }))
    }

    /// Whether the baseline must be built from history before `window`.
    pub(crate) fn builds(&self, rule: &Rule, window: Window) -> bool {
        self.tracked.rebuild_reason(rule, window).is_some()
    }

    /// Rows that build the baseline for a window ([`Tracker::builds`]), read with other rules':
    /// [`Tracker::evaluate`] uses them instead of its own query of the history.
    pub(crate) fn hand_bootstrap(&mut self, bootstrap: Bootstrap) {
        self.bootstrap = Some(bootstrap);
    }

    /// Whether the baseline reaches exactly to `window`'s start, so that the window's query reads
    /// the window alone: its rows can then come from a batch of windows
    /// ([`crate::compile::compile_batch`]).
    pub fn reads_only(&self, rule: &Rule, window: Window) -> bool {
        let tracked = &self.tracked;
        tracked.rebuild_reason(rule, window).is_none()
            && tracked
                .current
                .as_ref()
                .is_some_and(|baseline| baseline.through == window.start)
    }

    /// Evaluates a window with the baseline (building it first when needed) and folds the
    /// window in; returns the alerting rows, with the columns the compiled SQL returns.
    /// `batched`: the window's rows read with other windows', used when the window's own query
    /// would read the window alone ([`Tracker::reads_only`]); otherwise it is queried.
    pub async fn evaluate<E: QueryEngine>(
        &mut self,
        rule: &Rule,
        engine: &E,
        window: Window,
        batched: Option<Vec<Row>>,
        report: &mut RuleReport,
    ) -> Result<Vec<Row>, String> {
        if let Some(rows) = batched
            && self.reads_only(rule, window)
        {
            let baseline = self
                .tracked
                .current
                .as_mut()
                .expect("reads_only needs a baseline");
            return evaluate_rows(rule, window, baseline, rows);
        }
        let tracked = &mut self.tracked;
        let reason = tracked.rebuild_reason(rule, window);
        let shared = self.bootstrap.take().filter(|b| b.window == window);
        if let (Some(reason), Some(shared)) = (&reason, shared) {
            report.rows += shared.rows.len();
            report.baselines_built.push(BaselineBuilt {
                window,
                reason: format!(
                    "{reason}; history read once for {}",
                    shared.rules.join(", ")
                ),
                bytes_read: shared.bytes_read,
            });
            let baseline = tracked.current.insert(Baseline::empty(
                &tracked.definition,
                window.start - rule.history,
            ));
            return evaluate_rows(rule, window, baseline, shared.rows);
        }
        let from = match (&reason, &tracked.current) {
            (None, Some(baseline)) => baseline.through,
            _ => window.start - rule.history,
        };
        let sql = first_seen_baseline_sql(rule, window, from).map_err(|e| e.to_string())?;
        let read_before = report.bytes_read;
        let rows = run_query(engine, &sql, window, report).await?;
        if let Some(reason) = reason {
            report.note_built(window, reason, read_before);
            tracked.current = Some(Baseline::empty(&tracked.definition, from));
        }
        let baseline = tracked.current.as_mut().expect("built above");
        evaluate_rows(rule, window, baseline, rows)
    }

    /// Saves the baseline after a window's alerts were written ([`Tracked::save`]).
    pub async fn save<S: StateStore>(&mut self, rule: &Rule, store: &S) -> Result<(), String> {
        self.tracked.save(rule, store).await
    }
}

/// One entity and value of a window's query.
struct Group {
    entity: Vec<String>,
    value: Vec<String>,
    /// The row as the compiled SQL returns it (keys and the window's evidence).
    row: Row,
    /// First and last sighting in the window, when it has events there.
    in_window: Option<(String, String)>,
    /// First and last sighting before the window (in what the query read).
    before: Option<(String, String)>,
}

/// A row's `column` as text; `None` when missing or NULL.
pub(crate) fn text(row: &Row, column: &str) -> Option<String> {
    row.get(column).cloned().flatten()
}

fn keys_of(row: &Row, keys: &[Key]) -> Option<Vec<String>> {
    keys.iter().map(|key| text(row, &key.name)).collect()
}

fn group_of(mut row: Row, entity: &[Key], value: &[Key]) -> Result<Group, String> {
    let sightings = |first: Option<String>, last: Option<String>| first.zip(last);
    let before = sightings(
        row.remove("before_first").flatten(),
        row.remove("before_last").flatten(),
    );
    let in_window = sightings(text(&row, "first_seen"), text(&row, "last_seen"));
    let (Some(entity), Some(value)) = (keys_of(&row, entity), keys_of(&row, value)) else {
        return Err(format!("a row without its keys: {row:?}"));
    };
    Ok(Group {
        entity,
        value,
        row,
        in_window,
        before,
    })
}

/// A `utctimestamp` as a time, or an error naming it.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("utctimestamp {text:?}: {e}"))
}

/// Decides a window with the baseline as it stands before the window, then folds the window in.
/// The conditions are those of the compiled first-seen SQL (`compile::new_value_sql`,
/// `compile::dormant_value_sql`), with "seen in history" read from the baseline.
fn evaluate_rows(
    rule: &Rule,
    window: Window,
    baseline: &mut Baseline,
    rows: Vec<Row>,
) -> Result<Vec<Row>, String> {
    let Query::FirstSeen {
        entity,
        value,
        learning,
        not_seen_for,
        ..
    } = &rule.query
    else {
        return Err(format!("rule {} keeps no baseline", rule.id));
    };
    let groups = rows
        .into_iter()
        .map(|row| group_of(row, entity, value))
        .collect::<Result<Vec<_>, _>>()?;
    // What the query read before the window (a gap since `through`, or the bootstrap's history).
    for group in &groups {
        if let Some((first, last)) = &group.before {
            baseline.fold(&group.entity, &group.value, first, last);
        }
    }
    let since = format_timestamp(window.start - rule.history);
    let seen: Vec<(&Group, &str)> = groups
        .iter()
        .filter_map(|g| g.in_window.as_ref().map(|(first, _)| (g, first.as_str())))
        .collect();
    let mut alerting = Vec::new();
    match not_seen_for {
        None => {
            // The entity's first sighting includes the window: event-time order inside it.
            let mut window_first: BTreeMap<&[String], &str> = BTreeMap::new();
            for (group, first) in &seen {
                let earliest = window_first.entry(&group.entity).or_insert(first);
                *earliest = (*earliest).min(*first);
            }
            for (group, first) in &seen {
                if baseline
                    .known(&group.entity, &group.value, &since)
                    .is_some()
                {
                    continue;
                }
                let in_window = window_first[group.entity.as_slice()];
                let entity_first = match baseline.entity_first(&group.entity, &since) {
                    Some(known) => known.min(in_window),
                    None => in_window,
                };
                if *first <= entity_first {
                    continue;
                }
                if let Some(learning) = learning
                    && parse_time(first)? < parse_time(entity_first)? + *learning
                {
                    continue;
                }
                alerting.push(group.row.clone());
            }
        }
        Some(recent) => {
            let recent = format_timestamp(window.start - *recent);
            let learned_by = learning.map(|learning| format_timestamp(window.start - learning));
            for (group, _) in &seen {
                let Some(known) = baseline.known(&group.entity, &group.value, &since) else {
                    continue;
                };
                if known.last >= recent {
                    continue;
                }
                if let Some(learned_by) = &learned_by
                    && baseline
                        .entity_first(&group.entity, &since)
                        .is_none_or(|first| first > learned_by.as_str())
                {
                    continue;
                }
                alerting.push(group.row.clone());
            }
        }
    }
    for group in &groups {
        if let Some((first, last)) = &group.in_window {
            baseline.fold(&group.entity, &group.value, first, last);
        }
    }
    baseline.through = window.end;
    baseline.prune(&format_timestamp(window.end - rule.history));
    alerting.retain(|row| !rule.ignores(row));
    alerting.sort_by_key(|row| text(row, "first_seen"));
    Ok(alerting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateStore;

    fn rule(extra: &str) -> Rule {
        let text = format!(
            "id = \"r\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\ninterval = \"1h\"\n\
             window = \"1h\"\nhistory = \"30d\"\nsummary = \"s\"\n[query]\nkind = \"first-seen\"\n\
             where = \"true\"\nentity = [{{ name = \"user\", expr = \"u\" }}]\n\
             value = [{{ name = \"country\", expr = \"c\" }}]\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn window() -> Window {
        Window::new(at("2026-11-20T09:00:00Z"), at("2026-11-20T10:00:00Z"))
    }

    fn ts(hhmm: &str) -> String {
        format!("2026-11-20T{hhmm}:00.000000Z")
    }

    /// A query row: user, country, window sightings, sightings before the window.
    fn row(
        user: &str,
        country: &str,
        window: Option<(&str, &str)>,
        before: Option<(&str, &str)>,
    ) -> Row {
        let mut row = Row::new();
        row.insert("user".into(), Some(user.into()));
        row.insert("country".into(), Some(country.into()));
        row.insert(
            "event_count".into(),
            Some(if window.is_some() { "1" } else { "0" }.into()),
        );
        row.insert("first_seen".into(), window.map(|w| w.0.to_string()));
        row.insert("last_seen".into(), window.map(|w| w.1.to_string()));
        row.insert("eventids".into(), window.map(|_| "e".to_string()));
        row.insert("before_first".into(), before.map(|b| b.0.to_string()));
        row.insert("before_last".into(), before.map(|b| b.1.to_string()));
        row
    }

    fn countries(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| text(r, "country").unwrap()).collect()
    }

    fn baseline_of(rule: &Rule, entries: &[(&str, &str, &str, &str)]) -> Baseline {
        let mut baseline = Baseline::empty(&definition(rule).unwrap(), window().start);
        for (user, country, first, last) in entries {
            baseline.fold(&[user.to_string()], &[country.to_string()], first, last);
        }
        baseline
    }

    #[test]
    fn rows_built_together_go_back_to_their_rule_with_its_key_names() {
        let users = rule("");
        let mut hosts = rule("");
        if let Query::FirstSeen { entity, .. } = &mut hosts.query {
            entity[0].name = "host".into();
            entity.push(Key {
                name: "port".into(),
                expr: "p".into(),
            });
        }
        let tagged = |part: &str, keys: &[&str]| -> Row {
            let mut row: Row = [
                (GROUPED_PART_COLUMN.to_string(), Some(part.to_string())),
                ("event_count".to_string(), Some("2".to_string())),
            ]
            .into_iter()
            .collect();
            for n in 0..3 {
                row.insert(grouped_column(n), keys.get(n).map(|key| key.to_string()));
            }
            row
        };
        let split = bootstrap_rows(
            &[&users, &hosts],
            vec![
                tagged("1", &["h1", "22", "sshd"]),
                tagged("0", &["ann", "FR"]),
            ],
        )
        .unwrap();
        let names = |rows: &[Row]| -> Vec<Vec<String>> {
            rows.iter()
                .map(|row| row.keys().cloned().collect())
                .collect()
        };
        assert_eq!(names(&split[0]), [["country", "event_count", "user"]]);
        assert_eq!(
            names(&split[1]),
            [["country", "event_count", "host", "port"]]
        );
        assert_eq!(split[1][0]["port"].as_deref(), Some("22"));
        assert_eq!(split[0][0]["user"].as_deref(), Some("ann"));
        for bad in ["2", "x"] {
            let error = bootstrap_rows(&[&users, &hosts], vec![tagged(bad, &[])]).unwrap_err();
            assert!(error.contains("a row of no part of 2"), "{error}");
        }
    }

    #[test]
    fn values_are_new_in_event_time_order_inside_the_window() {
        // BuffaLogs: a known user (BR for weeks), then US, JP, US within minutes.
        let rule = rule("");
        let mut baseline = baseline_of(
            &rule,
            &[("olga", "BR", "2026-11-01T09:00:00.000000Z", &ts("08:58"))],
        );
        let rows = vec![
            row("olga", "BR", Some((&ts("09:01"), &ts("09:01"))), None),
            row("olga", "US", Some((&ts("09:05"), &ts("09:14"))), None),
            row("olga", "JP", Some((&ts("09:10"), &ts("09:10"))), None),
        ];
        let alerts = evaluate_rows(&rule, window(), &mut baseline, rows).unwrap();
        assert_eq!(countries(&alerts), ["US", "JP"]);
        // Folded in: the next window knows them; the row keeps the SQL's columns only.
        assert!(!alerts[0].contains_key("before_first"));
        assert_eq!(baseline.through, window().end);
        assert!(
            baseline
                .known(&["olga".into()], &["JP".into()], &ts("09:00"))
                .is_some()
        );
    }

    #[test]
    fn a_first_time_users_first_value_is_not_new_and_learning_counts_from_its_first_sighting() {
        let rule = rule("learning = \"1d\"");
        // Seen for the first time 24 h 2 min before: learned; seen 10 minutes before: learning.
        let mut baseline = baseline_of(
            &rule,
            &[
                (
                    "old",
                    "BR",
                    "2026-11-19T08:58:00.000000Z",
                    "2026-11-19T08:58:00.000000Z",
                ),
                ("young", "BR", &ts("08:50"), &ts("08:50")),
            ],
        );
        let rows = vec![
            row("old", "US", Some((&ts("09:05"), &ts("09:05"))), None),
            row("young", "US", Some((&ts("09:05"), &ts("09:05"))), None),
            row("fresh", "US", Some((&ts("09:05"), &ts("09:05"))), None),
            row("fresh", "JP", Some((&ts("09:06"), &ts("09:06"))), None),
        ];
        let alerts = evaluate_rows(&rule, window(), &mut baseline, rows).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(text(&alerts[0], "user").as_deref(), Some("old"));
    }

    #[test]
    fn a_value_not_seen_within_history_is_forgotten() {
        let rule = rule("");
        let mut baseline = baseline_of(
            &rule,
            &[
                (
                    "u",
                    "US",
                    "2026-09-01T00:00:00.000000Z",
                    "2026-11-19T00:00:00.000000Z",
                ),
                (
                    "u",
                    "JP",
                    "2026-09-01T00:00:00.000000Z",
                    "2026-10-01T00:00:00.000000Z",
                ),
            ],
        );
        let rows = vec![row("u", "JP", Some((&ts("09:05"), &ts("09:05"))), None)];
        let alerts = evaluate_rows(&rule, window(), &mut baseline, rows).unwrap();
        assert_eq!(countries(&alerts), ["JP"]);
    }

    #[test]
    fn dormant_values_alert_when_last_seen_before_the_recent_period() {
        let rule = rule("not_seen_for = \"7d\"");
        let mut baseline = baseline_of(
            &rule,
            &[
                (
                    "u",
                    "JP",
                    "2026-10-01T00:00:00.000000Z",
                    "2026-11-01T00:00:00.000000Z",
                ),
                (
                    "u",
                    "US",
                    "2026-10-01T00:00:00.000000Z",
                    "2026-11-19T00:00:00.000000Z",
                ),
            ],
        );
        let rows = vec![
            row("u", "JP", Some((&ts("09:05"), &ts("09:05"))), None),
            row("u", "US", Some((&ts("09:06"), &ts("09:06"))), None),
            row("u", "BR", Some((&ts("09:07"), &ts("09:07"))), None),
        ];
        let alerts = evaluate_rows(&rule, window(), &mut baseline, rows).unwrap();
        assert_eq!(countries(&alerts), ["JP"]);
    }

    #[test]
    fn sightings_before_the_window_are_folded_before_deciding_and_folding_is_idempotent() {
        let rule = rule("[ignore]\ncountry = [\"GB\"]");
        let mut baseline = baseline_of(&rule, &[("u", "US", &ts("01:00"), &ts("01:00"))]);
        let rows = || {
            vec![
                // Read from a gap before the window: known, not new.
                row(
                    "u",
                    "AU",
                    Some((&ts("09:10"), &ts("09:10"))),
                    Some((&ts("08:30"), &ts("08:40"))),
                ),
                row("u", "GB", Some((&ts("09:20"), &ts("09:20"))), None),
            ]
        };
        let alerts = evaluate_rows(&rule, window(), &mut baseline, rows()).unwrap();
        assert!(
            alerts.is_empty(),
            "AU known from the gap, GB ignored: {alerts:?}"
        );
        // GB is remembered although ignored, and the same rows again change nothing.
        let once = baseline.clone();
        evaluate_rows(&rule, window(), &mut baseline, rows()).unwrap();
        assert_eq!(baseline, once);
        assert!(
            baseline
                .known(&["u".into()], &["GB".into()], &ts("00:00"))
                .is_some()
        );
    }

    /// Answers every query with the same rows (the baseline's query shape) and counts queries.
    struct FixedRows(Vec<Row>, std::sync::atomic::AtomicUsize);

    impl QueryEngine for FixedRows {
        async fn query(&self, _sql: &str) -> Result<Vec<Row>, String> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.0.clone())
        }
    }

    /// Writes alerts nowhere, failing the windows that end at `fail_at`.
    struct Sink {
        fail_at: Option<DateTime<Utc>>,
    }

    impl crate::runner::AlertSink for Sink {
        type Delivery = crate::runner::TableOnly;
        fn delivery(&self) -> &crate::runner::TableOnly {
            &crate::runner::TableOnly
        }
        async fn write(&self, _: &Rule, window: Window, _: &[crate::Alert]) -> Result<(), String> {
            match self.fail_at {
                Some(end) if end == window.end => Err("disk full".into()),
                _ => Ok(()),
            }
        }
    }

    fn scheduled(
        rule: &Rule,
        engine: &FixedRows,
        store: &lakewatch_lake::versioned::FileStore,
        sink: &Sink,
        now: &str,
    ) -> RuleReport {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(crate::runner::run_rules(
                std::slice::from_ref(rule),
                engine,
                store,
                sink,
                at(now),
                crate::runner::Mode::Scheduled { max_windows: 10 },
            ))
            .remove(0)
    }

    fn stored(
        rule: &Rule,
        store: &lakewatch_lake::versioned::FileStore,
    ) -> Option<(Baseline, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(store.load_baseline(&rule.id)).unwrap()
    }

    fn engine() -> FixedRows {
        FixedRows(
            vec![row("u", "US", Some((&ts("09:05"), &ts("09:05"))), None)],
            Default::default(),
        )
    }

    #[test]
    fn a_failed_write_leaves_the_baseline_at_the_last_written_window() {
        let rule = rule("");
        let dir = tempfile::tempdir().unwrap();
        let store = lakewatch_lake::versioned::FileStore::new(dir.path());
        let (engine, ok) = (engine(), Sink { fail_at: None });
        // A new rule builds its baseline with the latest due window (09:00-10:00).
        let first = scheduled(&rule, &engine, &store, &ok, "2026-11-20T10:00:00Z");
        assert_eq!(first.baselines_built.len(), 1);
        assert_eq!(
            stored(&rule, &store).unwrap().0.through,
            at("2026-11-20T10:00:00Z")
        );
        // Two more windows are due; writing the second one's alerts fails.
        let failing = Sink {
            fail_at: Some(at("2026-11-20T12:00:00Z")),
        };
        let run = scheduled(&rule, &engine, &store, &failing, "2026-11-20T12:00:00Z");
        assert!(run.error.unwrap().contains("disk full"));
        assert!(run.baselines_built.is_empty());
        assert_eq!(
            stored(&rule, &store).unwrap().0.through,
            at("2026-11-20T11:00:00Z")
        );
        // The retry goes on incrementally from there.
        let retry = scheduled(&rule, &engine, &store, &ok, "2026-11-20T12:00:00Z");
        assert_eq!((retry.error, retry.windows.len()), (None, 1));
        assert!(retry.baselines_built.is_empty());
        assert_eq!(
            stored(&rule, &store).unwrap().0.through,
            at("2026-11-20T12:00:00Z")
        );
    }

    #[test]
    fn an_overlapping_run_cannot_overwrite_a_baseline_it_did_not_read() {
        let rule = rule("");
        let dir = tempfile::tempdir().unwrap();
        let store = lakewatch_lake::versioned::FileStore::new(dir.path());
        let (engine, sink) = (engine(), Sink { fail_at: None });
        scheduled(&rule, &engine, &store, &sink, "2026-11-20T10:00:00Z");
        // Run A loads the baseline; run B saves a newer one before A saves.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut a = runtime
            .block_on(Tracker::load(&rule, &store))
            .unwrap()
            .unwrap();
        let mut report = RuleReport::default();
        let window = Window::new(at("2026-11-20T10:00:00Z"), at("2026-11-20T11:00:00Z"));
        runtime
            .block_on(a.evaluate(&rule, &engine, window, None, &mut report))
            .unwrap();
        let b = scheduled(&rule, &engine, &store, &sink, "2026-11-20T12:00:00Z");
        assert_eq!(b.windows.len(), 2);
        let error = runtime.block_on(a.save(&rule, &store)).unwrap_err();
        assert!(error.contains("another detector run is active"), "{error}");
        assert_eq!(
            stored(&rule, &store).unwrap().0.through,
            at("2026-11-20T12:00:00Z")
        );
    }

    #[test]
    fn a_baseline_survives_encoding_and_its_definition_follows_the_rule() {
        let rule = rule("");
        let baseline = baseline_of(&rule, &[("u", "US", &ts("01:00"), &ts("02:00"))]);
        let decoded: Baseline = decode_baseline(&encode_baseline(&baseline)).unwrap();
        assert_eq!(decoded, baseline);
        let mut changed = rule.clone();
        if let Query::FirstSeen { filter, .. } = &mut changed.query {
            *filter = "false".into();
        }
        assert_ne!(definition(&changed), definition(&rule));
        let mut learning = rule.clone();
        if let Query::FirstSeen { learning: l, .. } = &mut learning.query {
            *l = Some(chrono::TimeDelta::days(1));
        }
        assert_eq!(
            definition(&learning),
            definition(&rule),
            "learning is decided, not stored"
        );
    }
}
