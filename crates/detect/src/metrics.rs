//! A detection run's figures: per rule (windows, alerts, bytes scanned, failed 0/1) and in
//! total. The detector Lambda prints them as EMF lines, `lakewatch detect` as a table.

use lakewatch_metrics::{
    ALERT_DELIVERIES, ALERT_DELIVERIES_FAILED, ALERTS, BYTES_SCANNED, Figures, RULE_ALERTS,
    RULE_BYTES_SCANNED, RULE_FAILED, RULE_WINDOWS, RULES_FAILED, WINDOWS,
};

use crate::runner::{Deliveries, RuleReport};

/// The figures of one run of these rules. Every rule gets its datapoints, 0 included, so that
/// "failed N runs in a row" sees each run; bytes a rule's engine did not report count as 0.
pub fn run_figures<'r>(reports: impl IntoIterator<Item = &'r RuleReport>) -> Figures {
    let mut figures = Figures::default();
    let (mut windows, mut alerts, mut bytes, mut failed) = (0, 0, 0, 0);
    for report in reports {
        let rule = [report.rule.as_str()];
        let rule_bytes = report.bytes_read.unwrap_or(0);
        let rule_failed = u64::from(report.error.is_some());
        figures.add(&RULE_WINDOWS, &rule, report.windows.len() as u64);
        figures.add(&RULE_ALERTS, &rule, report.alerts.len() as u64);
        figures.add(&RULE_BYTES_SCANNED, &rule, rule_bytes);
        figures.add(&RULE_FAILED, &rule, rule_failed);
        windows += report.windows.len() as u64;
        alerts += report.alerts.len() as u64;
        bytes += rule_bytes;
        failed += rule_failed;
    }
    figures.add(&WINDOWS, &[], windows);
    figures.add(&ALERTS, &[], alerts);
    figures.add(&BYTES_SCANNED, &[], bytes);
    figures.add(&RULES_FAILED, &[], failed);
    figures
}

/// Adds a delivery pass's figures: per destination, how many were delivered, will be retried,
/// were given up and are still pending; and the deliveries given up in all (the alarm's metric:
/// a given-up delivery is an alert nobody received).
pub fn delivery_figures(deliveries: &Deliveries, figures: &mut Figures) {
    let mut given_up = 0;
    for (destination, counts) in &deliveries.destinations {
        for (outcome, count) in [
            ("delivered", counts.delivered),
            ("retrying", counts.retried),
            ("given_up", counts.given_up),
            ("pending", counts.pending),
        ] {
            figures.add(&ALERT_DELIVERIES, &[destination, outcome], count as u64);
        }
        given_up += counts.given_up as u64;
    }
    figures.add(&ALERT_DELIVERIES_FAILED, &[], given_up);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Window;

    fn report(rule: &str, windows: usize, bytes: Option<u64>, error: Option<&str>) -> RuleReport {
        let start = "2026-01-01T00:00:00Z".parse().unwrap();
        RuleReport {
            rule: rule.into(),
            windows: vec![Window::new(start, start + chrono::Duration::hours(1)); windows],
            bytes_read: bytes,
            error: error.map(String::from),
            ..RuleReport::default()
        }
    }

    #[test]
    fn every_rule_has_its_figures_and_the_totals_add_up() {
        let reports = [
            report("brute-force", 2, Some(1000), None),
            report("oom", 0, None, Some("query failed")),
        ];
        let figures = run_figures(&reports);
        assert_eq!(figures.get(&RULE_WINDOWS, &["brute-force"]), Some(2));
        assert_eq!(figures.get(&RULE_FAILED, &["brute-force"]), Some(0));
        assert_eq!(figures.get(&RULE_FAILED, &["oom"]), Some(1));
        assert_eq!(figures.get(&RULE_BYTES_SCANNED, &["oom"]), Some(0));
        assert_eq!(figures.get(&WINDOWS, &[]), Some(2));
        assert_eq!(figures.get(&BYTES_SCANNED, &[]), Some(1000));
        assert_eq!(figures.get(&RULES_FAILED, &[]), Some(1));
        let lines = figures.emf_lines(0);
        assert_eq!(lines.len(), 3, "one line per rule, one of totals");
        for line in &lines {
            let members = lakewatch_metrics::parse_emf_line(line).unwrap();
            if let Some(unit) = members["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Name"] == "RuleBytesScanned")
            {
                assert_eq!(unit["Unit"], "Bytes");
            }
        }
    }

    #[test]
    fn deliveries_count_per_destination_and_outcome_and_given_up_ones_raise_the_failed_metric() {
        use crate::runner::DeliveryCounts;
        let mut deliveries = Deliveries::default();
        let hook = DeliveryCounts {
            delivered: 3,
            retried: 1,
            given_up: 2,
            pending: 0,
        };
        let pager = DeliveryCounts {
            delivered: 1,
            given_up: 1,
            ..DeliveryCounts::default()
        };
        deliveries.destinations.insert("hook".into(), hook);
        deliveries.destinations.insert("pager".into(), pager);
        let mut figures = Figures::default();
        delivery_figures(&deliveries, &mut figures);
        assert_eq!(
            figures.get(&ALERT_DELIVERIES, &["hook", "delivered"]),
            Some(3)
        );
        assert_eq!(
            figures.get(&ALERT_DELIVERIES, &["hook", "retrying"]),
            Some(1)
        );
        assert_eq!(
            figures.get(&ALERT_DELIVERIES, &["pager", "given_up"]),
            Some(1)
        );
        assert_eq!(figures.get(&ALERT_DELIVERIES_FAILED, &[]), Some(3));
        for line in figures.emf_lines(0) {
            lakewatch_metrics::parse_emf_line(&line).unwrap();
        }
    }
}
