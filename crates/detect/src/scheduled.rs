//! One scheduled run of the detector, whatever answers the queries and keeps the state: every
//! due window of every rule, reading shared data once ([`run_rules`]), each rule's queries
//! counted as its own, with one JSON log line per rule. The detector Lambda runs it with Athena, S3 state and
//! S3 + SNS alerts; the tests run it with the embedded engine, state files and the local alert
//! sink as well.

use chrono::{DateTime, Utc};

use crate::rule::Rule;
use crate::runner::{
    AlertDelivery, AlertSink, Deliveries, Mode, QueryEngine, RuleReport, run_rules,
};
use crate::state::StateStore;

/// What one rule did in a run; the cost of its queries is in the report
/// ([`RuleReport::queries`], [`RuleReport::bytes_read`]).
#[derive(Debug, Clone)]
pub struct RuleOutcome {
    pub report: RuleReport,
    /// Alerts handed over for delivery (0 when no destination is configured).
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

/// One scheduled run: every due window of every rule (at most `max_windows` each), the rules
/// sharing their reads ([`run_rules`]), each rule's query cost its own; logs a line per rule.
/// A failing rule never stops the others. Then the deliveries ([`AlertDelivery::deliver`]).
pub async fn run_scheduled<E: QueryEngine, S: StateStore, A: AlertSink>(
    rules: &[Rule],
    engine: &E,
    state: &S,
    sink: &A,
    now: DateTime<Utc>,
    max_windows: usize,
) -> Vec<RuleOutcome> {
    run_scheduled_and_deliver(
        rules,
        engine,
        state,
        sink,
        now,
        Mode::Scheduled { max_windows },
    )
    .await
    .0
}

/// [`run_scheduled`] in `mode` (a scheduled run, or [`Mode::SetAside`] to evaluate the
/// set-aside windows again), with what the delivery pass after the rules did; logs one line per
/// destination (`delivered`, `retried`, `given_up`, `pending`).
pub async fn run_scheduled_and_deliver<E: QueryEngine, S: StateStore, A: AlertSink>(
    rules: &[Rule],
    engine: &E,
    state: &S,
    sink: &A,
    now: DateTime<Utc>,
    mode: Mode,
) -> (Vec<RuleOutcome>, Deliveries) {
    let reports = run_rules(rules, engine, state, sink, now, mode).await;
    let mut outcomes = Vec::with_capacity(reports.len());
    for report in reports {
        let outcome = RuleOutcome {
            published: if sink.delivery().publishes() {
                report.published
            } else {
                0
            },
            report,
        };
        outcome.log();
        outcomes.push(outcome);
    }
    // Delivery failures never fail a rule: they are retried by later runs.
    let deliveries = sink.delivery().deliver(now).await;
    log_deliveries(&deliveries);
    (outcomes, deliveries)
}

/// One JSON line per destination; `delivery_failed: true` on a destination that gave a
/// delivery up, for the Terraform module's metric filter.
pub fn log_deliveries(deliveries: &Deliveries) {
    for (destination, counts) in &deliveries.destinations {
        // One field list for both levels (a tracing level is part of the call site).
        macro_rules! line {
            ($level:ident, $($failure:tt)*) => {
                tracing::$level!(
                    destination = %destination,
                    delivered = counts.delivered,
                    retried = counts.retried,
                    given_up = counts.given_up,
                    pending = counts.pending,
                    $($failure)*
                )
            };
        }
        if counts.given_up > 0 {
            line!(error, delivery_failed = true, "deliveries given up");
        } else {
            line!(info, "deliveries");
        }
    }
    if let Some(error) = &deliveries.error {
        tracing::error!(error = %error, "the delivery pass stopped");
    }
}
