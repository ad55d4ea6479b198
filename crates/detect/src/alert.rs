//! Alerts: a shell like events, built from one result row of a rule, with a deterministic id so
//! that a retried, caught-up or replayed window produces the same alert again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rule::Rule;
use crate::state::FailedWindow;
use crate::window::Window;
use lakewatch_plugins::shell::{format_timestamp, id_from_hash};

/// One result row of a rule's query: column name → value as text (NULL as `None`), the shape
/// Athena's GetQueryResults and the local engine both give.
pub type Row = BTreeMap<String, Option<String>>;

/// Columns the compiled rule kinds add about the events behind a row; they describe the
/// evidence, not the alert, so they are not part of the default de-duplication key.
pub const EVIDENCE_COLUMNS: [&str; 6] = [
    "eventids",
    "eventid",
    "event_count",
    "first_seen",
    "last_seen",
    "first_count",
];

/// How many event ids an alert lists at most (the query's count columns say how many there were).
pub const MAX_EVENTIDS: usize = 1000;

/// An alert, in the column order of the `alerts` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub utctimestamp: String,
    pub alertid: String,
    pub rule: String,
    pub severity: String,
    pub summary: String,
    pub windowstart: String,
    pub windowend: String,
    pub eventids: Vec<String>,
    pub details: Map<String, Value>,
    /// Identifies "the same alert" for suppression. Not written to the table.
    #[serde(skip)]
    pub dedup_key: String,
}

impl Alert {
    /// Builds the alert of one result row.
    pub fn from_row(rule: &Rule, window: Window, row: &Row) -> Alert {
        let dedup_key = dedup_key(rule, row);
        let mut eventids: Vec<String> = row
            .get("eventids")
            .or_else(|| row.get("eventid"))
            .and_then(|v| v.as_deref())
            .map(|ids| {
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        eventids.sort();
        eventids.dedup();
        eventids.truncate(MAX_EVENTIDS);
        let details = row
            .iter()
            .filter(|(column, _)| column.as_str() != "eventids")
            .map(|(column, value)| {
                let value = value.clone().map(Value::String).unwrap_or(Value::Null);
                (column.clone(), value)
            })
            .collect();
        Alert {
            utctimestamp: format_timestamp(window.end),
            alertid: alert_id(&rule.id, &dedup_key, window),
            rule: rule.id.clone(),
            severity: rule.severity.clone(),
            summary: fill_summary(&rule.summary, row),
            windowstart: format_timestamp(window.start),
            windowend: format_timestamp(window.end),
            eventids,
            details,
            dedup_key,
        }
    }

    /// The alert of a window set aside after failing run after run: the rule went on with later
    /// windows, so someone must read the error, fix its cause and evaluate the window again.
    pub fn rule_failure(rule: &Rule, failed: &FailedWindow) -> Alert {
        let window = failed.window();
        let dedup_key = format!("rule_failure={window}");
        let details = [
            ("rule_failure", "window set aside".to_string()),
            ("error", failed.error.clone()),
            ("attempts", failed.attempts.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), Value::String(value)))
        .collect();
        Alert {
            utctimestamp: format_timestamp(window.end),
            alertid: alert_id(&rule.id, &dedup_key, window),
            rule: rule.id.clone(),
            severity: "HIGH".to_string(),
            summary: format!(
                "rule {} failed {} runs in a row on window {window} and set it aside: {}; fix \
                 the cause, then evaluate it again with `lakewatch detect --set-aside`",
                rule.id, failed.attempts, failed.error
            ),
            windowstart: format_timestamp(window.start),
            windowend: format_timestamp(window.end),
            eventids: Vec::new(),
            details,
            dedup_key,
        }
    }

    /// The line the alerts table stores.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an alert always serializes")
    }
}

/// The gzip NDJSON body of a rule window's alerts object after evaluating the window again:
/// `alerts` plus every alert of the `existing` body whose id is not among them. A published
/// alert never disappears from the alerts table, even when a replay of its window (after late
/// events, or with a changed rule) finds other rows; a retried window still writes each alert
/// once, as its id is deterministic.
pub fn merged_alerts_body(existing: Option<&[u8]>, alerts: &[Alert]) -> Result<Vec<u8>, String> {
    let mut text = String::new();
    if let Some(existing) = existing {
        flate2::read::MultiGzDecoder::new(existing)
            .read_to_string(&mut text)
            .map_err(|e| format!("the alerts already written cannot be read: {e}"))?;
    }
    let new_ids: BTreeSet<&str> = alerts.iter().map(|a| a.alertid.as_str()).collect();
    let kept = text.lines().filter(|line| {
        let id = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|alert| alert["alertid"].as_str().map(String::from));
        !line.trim().is_empty() && id.is_none_or(|id| !new_ids.contains(id.as_str()))
    });
    let lines: Vec<String> = kept
        .map(str::to_string)
        .chain(alerts.iter().map(Alert::to_json_line))
        .collect();
    Ok(lakewatch_lake::layout::gzip_lines(lines))
}

/// The values of the rule's de-duplication columns (all non-evidence columns when it names none).
fn dedup_key(rule: &Rule, row: &Row) -> String {
    let value = |column: &str| {
        row.get(column)
            .and_then(|v| v.clone())
            .unwrap_or_else(|| "\u{0}null".to_string())
    };
    let parts: Vec<String> = if rule.dedup.is_empty() {
        row.keys()
            .filter(|c| !EVIDENCE_COLUMNS.contains(&c.as_str()))
            .map(|c| format!("{c}={}", value(c)))
            .collect()
    } else {
        rule.dedup
            .iter()
            .map(|c| format!("{c}={}", value(c)))
            .collect()
    };
    parts.join("\u{1f}")
}

/// Deterministic from rule, de-duplication key and window.
fn alert_id(rule: &str, dedup_key: &str, window: Window) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [
        rule,
        dedup_key,
        &format_timestamp(window.start),
        &format_timestamp(window.end),
    ] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    id_from_hash(&hasher.finalize())
}

/// Replaces `{column}` with the row's value (`?` for NULL or an unknown column).
fn fill_summary(template: &str, row: &Row) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let column = &after[..end];
                out.push_str(row.get(column).and_then(|v| v.as_deref()).unwrap_or("?"));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn rule(dedup: &str) -> Rule {
        toml::from_str(&format!(
            "id = \"r\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"HIGH\"\ninterval = \"5m\"\n\
             window = \"15m\"\nsummary = \"{{user}} failed {{event_count}} times from {{nope}}\"\n{dedup}\n\
             [query]\nkind = \"sql\"\nsql = \"x\""
        ))
        .unwrap()
    }

    fn window(minute: u32) -> Window {
        let end = DateTime::parse_from_rfc3339(&format!("2026-11-23T10:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        Window::new(end - chrono::TimeDelta::minutes(15), end)
    }

    fn row(user: &str, count: &str, ids: &str) -> Row {
        [
            ("user", Some(user)),
            ("event_count", Some(count)),
            ("eventids", Some(ids)),
            ("ip", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(String::from)))
        .collect()
    }

    #[test]
    fn builds_the_alert_shell_from_a_row() {
        let alert = Alert::from_row(&rule(""), window(15), &row("alice", "7", "b,a,a"));
        assert_eq!(alert.summary, "alice failed 7 times from ?");
        assert_eq!(alert.eventids, ["a", "b"]);
        assert_eq!(alert.windowend, "2026-11-23T10:15:00.000000Z");
        assert_eq!(alert.utctimestamp, alert.windowend);
        assert_eq!(alert.details["user"], "alice");
        assert_eq!(alert.details["ip"], Value::Null);
        assert!(!alert.details.contains_key("eventids"));
    }

    #[test]
    fn alert_ids_are_deterministic_and_depend_on_key_and_window() {
        let a = Alert::from_row(&rule(""), window(15), &row("alice", "7", "a"));
        let again = Alert::from_row(&rule(""), window(15), &row("alice", "7", "a"));
        assert_eq!(a.alertid, again.alertid);
        // The evidence (counts, ids) is not part of the key.
        let more = Alert::from_row(&rule(""), window(15), &row("alice", "9", "a,c"));
        assert_eq!(a.alertid, more.alertid);
        let other_user = Alert::from_row(&rule(""), window(15), &row("bob", "7", "a"));
        assert_ne!(a.alertid, other_user.alertid);
        let later = Alert::from_row(&rule(""), window(20), &row("alice", "7", "a"));
        assert_ne!(a.alertid, later.alertid);
        assert_eq!(a.dedup_key, later.dedup_key);
    }

    #[test]
    fn named_dedup_columns_define_the_key() {
        let rule = rule("dedup = [\"user\"]");
        let mut with_ip = row("alice", "1", "a");
        with_ip.insert("ip".into(), Some("192.0.2.1".into()));
        let a = Alert::from_row(&rule, window(15), &row("alice", "1", "a"));
        let b = Alert::from_row(&rule, window(15), &with_ip);
        assert_eq!(a.dedup_key, b.dedup_key);
    }

    #[test]
    fn evaluating_a_window_again_keeps_the_alerts_written_before() {
        let decode = |body: &[u8]| {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(body)
                .read_to_string(&mut text)
                .unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["details"]["user"].clone())
                .collect::<Vec<_>>()
        };
        let erin = Alert::from_row(&rule(""), window(15), &row("erin", "5", "a"));
        let first = merged_alerts_body(None, std::slice::from_ref(&erin)).unwrap();
        assert_eq!(decode(&first), ["erin"]);
        // A replay finds frank only: erin's alert stays.
        let frank = Alert::from_row(&rule(""), window(15), &row("frank", "5", "b"));
        let replayed = merged_alerts_body(Some(&first), std::slice::from_ref(&frank)).unwrap();
        assert_eq!(decode(&replayed), ["erin", "frank"]);
        // A retry with the same alerts writes each once, with its latest evidence.
        let erin_again = Alert::from_row(&rule(""), window(15), &row("erin", "6", "a,c"));
        let retried = merged_alerts_body(Some(&replayed), &[erin_again, frank]).unwrap();
        assert_eq!(decode(&retried), ["erin", "frank"]);
    }

    #[test]
    fn serializes_in_the_alerts_table_column_order() {
        let line = Alert::from_row(&rule(""), window(15), &row("alice", "7", "a")).to_json_line();
        let value: Value = serde_json::from_str(&line).unwrap();
        let columns: Vec<&str> = lakewatch_lake::schema::ALERTS
            .columns
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(value.as_object().unwrap().len(), columns.len());
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| {
                line.find(&format!("\"{c}\":"))
                    .unwrap_or_else(|| panic!("{c} missing"))
            })
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{line}");
    }
}
