//! One scheduled run of the detector, whatever answers the queries and keeps the state: every
//! due window of every rule, one rule after the other so that each rule's query cost is its
//! own, with one JSON log line per rule. The detector Lambda runs it with Athena, S3 state and
//! S3 + SNS alerts; the tests run it with the embedded engine, state files and the local alert
//! sink as well.

use chrono::{DateTime, Utc};

use crate::rule::Rule;
use crate::runner::{AlertSink, Mode, QueryEngine, RuleReport, run_rules};
use crate::state::StateStore;

/// What one rule did in a run; the cost of its queries is in the report
/// ([`RuleReport::queries`], [`RuleReport::bytes_read`]).
#[derive(Debug, Clone)]
pub struct RuleOutcome {
    pub report: RuleReport,
    /// Alerts actually sent to a topic (0 when none is configured).
    pub published: usize,
}

impl RuleOutcome {
    pub fn failed(&self) -> bool {
        self.report.error.is_some()
    }

    /// Bytes the rule's queries scanned (what Athena bills by); 0 when not reported.
    pub fn bytes_scanned(&self) -> u64 {
        self.report.bytes_read.unwrap_or(0)
    }

    /// One JSON line (fields at the top level with the JSON formatter's `flatten_event`): the
    /// counts, and for a failed rule `rule_failed: true` with the error, which the Terraform
    /// module's metric filter `{ $.rule_failed IS TRUE }` counts for its alarm.
    pub fn log(&self) {
        // One field list for both levels (a tracing level is part of the call site).
        macro_rules! line {
            ($level:ident, $($failure:tt)*) => {
                tracing::$level!(
                    rule = %self.report.rule,
                    windows = self.report.windows.len(),
                    rows = self.report.rows,
                    alerts = self.report.alerts.len(),
                    suppressed = self.report.suppressed,
                    published = self.published,
                    publish_failures = self.report.publish_failures,
                    queries = self.report.queries,
                    duration_ms = self.report.duration_ms as u64,
                    bytes_scanned = self.bytes_scanned(),
                    $($failure)*
                )
            };
        }
        match &self.report.error {
            None => line!(info, "rule evaluated"),
            Some(error) => line!(error, rule_failed = true, error = %error, "rule failed"),
        }
    }
}

/// One scheduled run: every due window of every rule (at most `max_windows` each), one rule
/// after the other so each rule's query cost is its own; logs a line per rule as it ends.
/// A failing rule never stops the others.
pub async fn run_scheduled<E: QueryEngine, S: StateStore, A: AlertSink>(
    rules: &[Rule],
    engine: &E,
    state: &S,
    sink: &A,
    now: DateTime<Utc>,
    max_windows: usize,
) -> Vec<RuleOutcome> {
    let mut outcomes = Vec::with_capacity(rules.len());
    for rule in rules {
        let report = run_rules(
            std::slice::from_ref(rule),
            engine,
            state,
            sink,
            now,
            Mode::Scheduled { max_windows },
        )
        .await
        .pop()
        .expect("one report per rule");
        let outcome = RuleOutcome {
            published: if sink.publishes() {
                report.published
            } else {
                0
            },
            report,
        };
        outcome.log();
        outcomes.push(outcome);
    }
    outcomes
}
