//! Kept events: what sequence rules (`kind = "sequence"`, brute force then success) remember
//! between runs instead of re-reading `history` on every window.
//!
//! A sequence rule pairs each `then` event of a window with the `first` events of its key up to
//! `within` before it, which may lie before the window. Answered by SQL alone, every window
//! re-reads `history` before it (`brute-force-success`: 45 minutes of events every 5 minutes,
//! nine times each byte). With kept events the detector keeps, per rule, the rule's `first` and
//! `then` events (keys, time, id) of the last `window + history` before `through`; a window's
//! query reads only `[through, window end)` (the 5 minutes that are new when runs follow each
//! other), and the detector pairs the events itself, with exactly the conditions of the compiled
//! SQL (`compile::sequence_sql`): a `first` event of the same key, in the window's span
//! (`history` before the window), earlier than the `then` event and at most `within` before it;
//! at least `min_count` distinct ones.
//!
//! Windows of a sequence rule overlap (15 minutes every 5), so what is kept covers the window
//! before `through` too: the next window's `then` events from before `through` are kept ones.
//! The document is stored, built from history, refused when stale and never moved backwards
//! like the other baselines ([`crate::baseline`]). It is built from history when the rule is new
//! or changed, when it ends more than `history` before the window (a long outage), and when it
//! reaches the window's end or past it (a replay, or a window evaluated again for late events:
//! kept events do not have what arrived since, so such a window reads its span again).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Row;
use crate::baseline::{BatchEvents, Kept, Tracked, parse_time, text};
use crate::compile::{SEQUENCE_EVENT_COLUMNS, sequence_events_sql, sequence_min_count};
use crate::rule::{Query, Rule};
use crate::runner::{QueryEngine, RuleReport, run_query};
use crate::state::StateStore;
use crate::window::Window;
use lakewatch_plugins::shell::format_timestamp;

/// Version of the document and of the evaluation; part of [`definition`].
const FORMAT: u32 = 1;

/// What a sequence rule's kept events depend on, hashed: which events it keeps (`first`,
/// `then`, the keys) and for how long (`window`, `history`). `None` for other kinds.
pub fn definition(rule: &Rule) -> Option<String> {
    let Query::Sequence {
        first, then, key, ..
    } = &rule.query
    else {
        return None;
    };
    let text = format!(
        "sequence {FORMAT}\n{first}\n{then}\n{key:?}\n{}\n{}",
        rule.window.num_seconds(),
        rule.history.num_seconds()
    );
    Some(blake3::hash(text.as_bytes()).to_hex()[..16].to_string())
}

/// One `first` or `then` event (or both) of a sequence rule, as its events query returns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SequenceEvent {
    /// `utctimestamp`, fixed width: text order is time order, as in the rules' SQL.
    pub t: String,
    pub key: Vec<String>,
    pub eventid: String,
    pub first: bool,
    pub then: bool,
}

/// A sequence rule's kept events: its events of the last `window + history` before `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// [`definition`] of the rule it was built for.
    pub definition: String,
    /// Events before this time are kept (as far back as the next window needs); the next query
    /// reads from here.
    pub through: DateTime<Utc>,
    /// In time order.
    pub events: Vec<SequenceEvent>,
}

impl Kept for Sequence {
    fn definition(&self) -> &str {
        &self.definition
    }
    fn through(&self) -> DateTime<Utc> {
        self.through
    }
}

/// A sequence rule's kept events during one run.
pub struct SequenceTracker {
    tracked: Tracked<Sequence>,
    /// Events of a range read for a batch of windows ([`SequenceTracker::hold`]): the windows
    /// take theirs from here instead of querying.
    held: Option<(Window, Vec<SequenceEvent>)>,
}

impl SequenceTracker {
    /// The rule's tracker with its stored events; `None` when the rule is not a sequence rule or
    /// the store keeps no baselines (the rule then reads its history by SQL).
    pub async fn load<S: StateStore>(
        rule: &Rule,
        store: &S,
    ) -> Result<Option<SequenceTracker>, String> {
        Ok(Tracked::load(definition(rule), rule, store)
            .await?
            .map(|tracked| SequenceTracker {
                tracked,
                held: None,
            }))
    }

    /// Why `window` reads its whole span (`history` before it, and itself) instead of going on
    /// from the kept events; `None` when they fit.
    pub fn rebuild_reason(&self, rule: &Rule, window: Window) -> Option<String> {
        self.tracked.rebuild_reason_when(
            rule,
            window,
            |through| through >= window.end,
            "the window's end or past it",
        )
    }

    /// Where `window`'s query starts reading: where the kept events end, or `history` before
    /// the window when they do not fit.
    fn reads_from(&self, rule: &Rule, window: Window) -> DateTime<Utc> {
        match (&self.tracked.current, self.rebuild_reason(rule, window)) {
            (Some(kept), None) => kept.through,
            _ => window.start - rule.history,
        }
    }

    /// Batched windows ([`crate::runner`]): the query of the events of `windows` (in time order)
    /// and the windows it serves: from the first, which the kept events must fit, as long as
    /// each goes on from the one before without a gap longer than `history`. It reads from where
    /// the kept events end to the last one's end; the runner hands its rows to
    /// [`SequenceTracker::hold`]. `None` when the first window does not fit.
    pub fn batch_events(
        &self,
        rule: &Rule,
        windows: &[Window],
    ) -> Result<Option<BatchEvents>, String> {
        let Some(first) = windows.first() else {
            return Ok(None);
        };
        if self.rebuild_reason(rule, *first).is_some() {
            return Ok(None);
        }
        let following = 1 + windows
            .windows(2)
            .take_while(|pair| pair[1].start - rule.history <= pair[0].end)
            .count();
        let windows = windows[..following].to_vec();
        let range = Window::new(self.reads_from(rule, *first), windows[following - 1].end);
        let sql = sequence_events_sql(rule, range).map_err(|e| e.to_string())?;
        Ok(Some(BatchEvents {
            windows,
            sql,
            columns: Self::columns(rule),
        }))
    }

    /// Keeps the rows of a batch's events query for the `windows` it serves (what
    /// [`SequenceTracker::batch_events`] gave, before any of them is evaluated).
    pub fn hold(&mut self, rule: &Rule, windows: &[Window], rows: &[Row]) -> Result<(), String> {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return Ok(());
        };
        let range = Window::new(self.reads_from(rule, *first), last.end);
        self.held = Some((range, events_of(rule, rows)?));
        Ok(())
    }

    /// The columns of the events query, in order: the rule's keys, then
    /// [`SEQUENCE_EVENT_COLUMNS`].
    fn columns(rule: &Rule) -> Vec<String> {
        let Query::Sequence { key, .. } = &rule.query else {
            return Vec::new();
        };
        key.iter()
            .map(|key| key.name.clone())
            .chain(SEQUENCE_EVENT_COLUMNS.map(String::from))
            .collect()
    }

    /// Evaluates a window: reads its events since the kept ones end (the whole span when they do
    /// not fit, reported as a baseline built), or takes them from a batch's held rows, pairs
    /// them, and keeps what the next window needs. Returns the rows the compiled SQL returns.
    pub async fn evaluate<E: QueryEngine>(
        &mut self,
        rule: &Rule,
        engine: &E,
        window: Window,
        report: &mut RuleReport,
    ) -> Result<Vec<Row>, String> {
        let reason = self.rebuild_reason(rule, window);
        let kept = self.tracked.current.as_ref().filter(|_| reason.is_none());
        let from = kept.map_or(window.start - rule.history, |kept| kept.through);
        let mut events = kept.map(|kept| kept.events.clone()).unwrap_or_default();
        let held = self.held.as_ref().filter(|(range, _)| {
            reason.is_none() && range.start <= from && window.end <= range.end
        });
        let read = match held {
            Some((_, events)) => in_range(events, Window::new(from, window.end)),
            None => {
                let sql = sequence_events_sql(rule, Window::new(from, window.end))
                    .map_err(|e| e.to_string())?;
                let read_before = report.bytes_read;
                let rows = run_query(engine, &sql, window, report).await?;
                if let Some(reason) = reason.clone() {
                    report.note_built(window, reason, read_before);
                }
                events_of(rule, &rows)?
            }
        };
        events.extend(read);
        let rows = pairs(rule, window, &events)?;
        // What the next window (ending after this one) can need.
        let firsts_from = format_timestamp(window.end - rule.window - rule.history);
        let thens_from = format_timestamp(window.end - rule.window);
        events.retain(|event| {
            (event.first && event.t >= firsts_from) || (event.then && event.t >= thens_from)
        });
        events.sort();
        events.dedup();
        self.tracked.current = Some(Sequence {
            definition: self.tracked.definition.clone(),
            through: window.end,
            events,
        });
        Ok(rows)
    }

    /// Saves the kept events after a window's alerts were written ([`Tracked::save`]).
    pub async fn save<S: StateStore>(&mut self, rule: &Rule, store: &S) -> Result<(), String> {
        self.tracked.save(rule, store).await
    }
}

/// The events of `events` whose time is in `range`.
fn in_range(events: &[SequenceEvent], range: Window) -> Vec<SequenceEvent> {
    let (start, end) = (format_timestamp(range.start), format_timestamp(range.end));
    events
        .iter()
        .filter(|event| event.t >= start && event.t < end)
        .cloned()
        .collect()
}

/// The events of an events query's rows ([`sequence_events_sql`]).
fn events_of(rule: &Rule, rows: &[Row]) -> Result<Vec<SequenceEvent>, String> {
    let Query::Sequence { key, .. } = &rule.query else {
        return Err(format!("rule {} is not a sequence rule", rule.id));
    };
    let flag = |row: &Row, column: &str| text(row, column).as_deref() == Some("1");
    rows.iter()
        .map(|row| {
            let keys: Option<Vec<String>> = key.iter().map(|k| text(row, &k.name)).collect();
            match (keys, text(row, "t"), text(row, "eventid")) {
                (Some(key), Some(t), Some(eventid)) => Ok(SequenceEvent {
                    t,
                    key,
                    eventid,
                    first: flag(row, "is_first"),
                    then: flag(row, "is_then"),
                }),
                _ => Err(format!("an event without its keys, time or id: {row:?}")),
            }
        })
        .collect()
}

/// The window's alerting rows, as `compile::sequence_sql` returns them: for each `then` event
/// of the window (one per key, time and id), the distinct `first` events of its key in the
/// window's span, earlier than it and at most `within` before it, when there are at least
/// `min_count`.
fn pairs(rule: &Rule, window: Window, events: &[SequenceEvent]) -> Result<Vec<Row>, String> {
    let Query::Sequence { key, within, .. } = &rule.query else {
        return Err(format!("rule {} is not a sequence rule", rule.id));
    };
    let min_count = sequence_min_count(rule).map_err(|e| e.to_string())?;
    let span_start = format_timestamp(window.start - rule.history);
    let (start, end) = (format_timestamp(window.start), format_timestamp(window.end));
    // Each key's `first` events in the span, in time order.
    let mut firsts: BTreeMap<&[String], Vec<&SequenceEvent>> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e.first && e.t >= span_start && e.t < end)
    {
        firsts.entry(&event.key).or_default().push(event);
    }
    for list in firsts.values_mut() {
        list.sort();
    }
    let thens: BTreeSet<(&[String], &str, &str)> = events
        .iter()
        .filter(|e| e.then && e.t >= start && e.t < end)
        .map(|e| (e.key.as_slice(), e.t.as_str(), e.eventid.as_str()))
        .collect();
    let mut rows = Vec::new();
    for (then_key, then_t, then_id) in thens {
        let Some(list) = firsts.get(then_key) else {
            continue;
        };
        let earliest = format_timestamp(parse_time(then_t)? - *within);
        let from = list.partition_point(|e| e.t.as_str() < earliest.as_str());
        let to = list.partition_point(|e| e.t.as_str() < then_t);
        let paired = &list[from.min(to)..to];
        let ids: BTreeSet<&str> = paired.iter().map(|e| e.eventid.as_str()).collect();
        if (ids.len() as u64) < min_count {
            continue;
        }
        let mut row = Row::new();
        for (name, value) in key.iter().zip(then_key) {
            row.insert(name.name.clone(), Some(value.clone()));
        }
        let first_seen = paired.iter().map(|e| e.t.as_str()).min();
        row.insert("last_seen".into(), Some(then_t.to_string()));
        row.insert("first_seen".into(), first_seen.map(String::from));
        row.insert("first_count".into(), Some(ids.len().to_string()));
        row.insert("then_eventid".into(), Some(then_id.to_string()));
        let mut eventids: Vec<&str> = ids.into_iter().collect();
        eventids.push(then_id);
        row.insert("eventids".into(), Some(eventids.join(",")));
        if !rule.ignores(&row) {
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        let text = "id = \"s\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\n\
             interval = \"5m\"\nwindow = \"15m\"\nhistory = \"30m\"\nsummary = \"s\"\n\
             [settings]\nleast = 2\n[ignore]\nuser = [\"ignored\"]\n[query]\nkind = \"sequence\"\n\
             first = \"f\"\nthen = \"s\"\nkey = [{ name = \"user\", expr = \"u\" }]\n\
             within = \"30m\"\nmin_count = \"${least}\"\n";
        toml::from_str(text).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn ts(hhmmss: &str) -> String {
        format!("2026-11-20T{hhmmss}.000000Z")
    }

    fn event(user: &str, hhmmss: &str, id: &str, first: bool) -> SequenceEvent {
        SequenceEvent {
            t: ts(hhmmss),
            key: vec![user.to_string()],
            eventid: id.to_string(),
            first,
            then: !first,
        }
    }

    fn window(start: &str, end: &str) -> Window {
        Window::new(at(&ts(start)), at(&ts(end)))
    }

    fn counts(rows: &[Row]) -> Vec<(String, String)> {
        rows.iter()
            .map(|row| {
                let text = |c: &str| row[c].clone().unwrap();
                (text("user"), text("first_count"))
            })
            .collect()
    }

    #[test]
    fn a_then_event_pairs_with_distinct_firsts_of_its_key_within_reach_and_the_span() {
        let rule = rule();
        let events = vec![
            // Before the span (09:00 - 30 min = 08:30): never paired.
            event("a", "08:29:59", "f0", true),
            // Within `within` before the success at 09:01 (from 08:31), once each by id.
            event("a", "08:30:59", "f1", true),
            event("a", "08:31:00", "f2", true),
            event("a", "08:31:00", "f2", true),
            event("a", "09:00:30", "f3", true),
            // At the same time as the success: not before it.
            event("a", "09:01:00", "f4", true),
            event("a", "09:01:00", "s1", false),
            // Another key's failures do not count; `b` has one, under `min_count`.
            event("b", "09:00:00", "g1", true),
            event("b", "09:02:00", "s2", false),
            // Ignored by the rule's [ignore].
            event("ignored", "09:00:00", "h1", true),
            event("ignored", "09:00:01", "h2", true),
            event("ignored", "09:03:00", "s3", false),
            // After the window: not evaluated here.
            event("a", "09:15:00", "s4", false),
        ];
        let rows = pairs(&rule, window("09:00:00", "09:15:00"), &events).unwrap();
        assert_eq!(counts(&rows), [("a".to_string(), "2".to_string())]);
        let row = &rows[0];
        assert_eq!(row["first_seen"].as_deref(), Some(ts("08:31:00").as_str()));
        assert_eq!(row["last_seen"].as_deref(), Some(ts("09:01:00").as_str()));
        assert_eq!(row["eventids"].as_deref(), Some("f2,f3,s1"));
        assert_eq!(row["then_eventid"].as_deref(), Some("s1"));
    }

    #[test]
    fn kept_events_cover_what_the_next_overlapping_window_needs_and_no_more() {
        let rule = rule();
        let dir = tempfile::tempdir().unwrap();
        let store = lakewatch_lake::versioned::FileStore::new(dir.path());
        let mut tracker = lakewatch_testkit::block_on(SequenceTracker::load(&rule, &store))
            .unwrap()
            .expect("a file store keeps baselines");
        // A batch's events, read from 08:30 (the first window's span) to 09:20.
        let read = [
            event("a", "08:35:00", "old", true),
            event("a", "09:00:00", "f1", true),
            event("a", "09:06:00", "f2", true),
            event("a", "09:07:00", "s1", false),
            event("a", "09:16:00", "s2", false),
        ];
        let rows: Vec<Row> = read
            .iter()
            .map(|e| {
                Row::from([
                    ("user".to_string(), Some(e.key[0].clone())),
                    ("t".to_string(), Some(e.t.clone())),
                    ("eventid".to_string(), Some(e.eventid.clone())),
                    ("is_first".to_string(), Some(u8::from(e.first).to_string())),
                    ("is_then".to_string(), Some(u8::from(e.then).to_string())),
                ])
            })
            .collect();
        let first = window("09:00:00", "09:15:00");
        assert!(
            tracker.rebuild_reason(&rule, first).is_some(),
            "nothing kept yet"
        );
        let engine = NoQueries;
        let mut report = RuleReport::default();
        // The first window builds (it queries; this engine answers with the events above).
        let built = lakewatch_testkit::block_on(tracker.evaluate(
            &rule,
            &Answering(rows[..4].to_vec()),
            first,
            &mut report,
        ))
        .unwrap();
        // `old` (08:35) is more than `within` before s1 (09:07).
        assert_eq!(counts(&built), [("a".to_string(), "2".to_string())]);
        assert_eq!(report.baselines_built.len(), 1);
        let kept = tracker.tracked.current.clone().unwrap();
        assert_eq!(kept.through, first.end);
        let ids: Vec<&str> = kept.events.iter().map(|e| e.eventid.as_str()).collect();
        // Firsts from 08:30 (09:15 - 15 min - 30 min) on, thens from 09:00; s2 is not read yet.
        assert_eq!(ids, ["old", "f1", "f2", "s1"]);
        // The next window (09:05–09:20) goes on from 09:15 with held rows: no query.
        let next = window("09:05:00", "09:20:00");
        assert_eq!(tracker.rebuild_reason(&rule, next), None);
        tracker.hold(&rule, &[next], &rows[4..]).unwrap();
        let rows = lakewatch_testkit::block_on(tracker.evaluate(&rule, &engine, next, &mut report))
            .unwrap();
        // s1 again (its window overlaps), and s2 with f1, f2 (old is out of s2's reach).
        assert_eq!(
            counts(&rows),
            [
                ("a".to_string(), "2".to_string()),
                ("a".to_string(), "2".to_string())
            ]
        );
        assert_eq!(report.queries, 1, "the second window read nothing");
        // A window evaluated again (its end not after the kept events) reads its span.
        assert!(tracker.rebuild_reason(&rule, next).is_some());
        // So does one after a gap longer than the history.
        let far = window("10:00:00", "10:15:00");
        assert!(tracker.rebuild_reason(&rule, far).is_some());
    }

    /// An engine that must not be asked.
    struct NoQueries;

    impl QueryEngine for NoQueries {
        async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
            panic!("no query expected: {sql}")
        }
    }

    /// An engine answering every query with the same rows.
    struct Answering(Vec<Row>);

    impl QueryEngine for Answering {
        async fn query(&self, _sql: &str) -> Result<Vec<Row>, String> {
            Ok(self.0.clone())
        }
    }
}
