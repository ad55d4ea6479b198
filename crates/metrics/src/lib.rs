//! Every metric lakewatch emits, defined once ([`ALL`]), and the figures of one run
//! ([`Figures`]) rendered two ways: CloudWatch Embedded Metric Format lines, which a Lambda
//! prints to standard output and CloudWatch Logs turns into metrics without an API call, and a
//! table, which `lakewatch ingest` and `lakewatch detect` print at the end of a run.
//!
//! The Terraform alarms name metrics from [`ALL`] (crates/terraform-checks fails when one does
//! not), the silence rule reads [`EVENTS`] back with `GetMetricData`, and docs/operations.md
//! lists them all: add a metric here, then there.
//!
//! No crate on crates.io fits: the EMF crates found plug into the `metrics` facade's global
//! recorder, which flushes on its own schedule rather than once per invocation, and cannot
//! render the same figures as a table.

use std::fmt::Write as _;
use std::io::Write as _;

use lakewatch_plugins::Tally;
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every lakewatch metric.
pub const NAMESPACE: &str = "Lakewatch";

/// At most this many metrics in one EMF directive (a CloudWatch limit); more go to more lines.
pub const MAX_METRICS_PER_LINE: usize = 100;

/// CloudWatch drops dimension values longer than this.
const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// The CloudWatch units lakewatch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

impl Unit {
    /// The unit's name as CloudWatch spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
        }
    }
}

/// Every unit CloudWatch accepts (`StandardUnit`): what a line may name.
pub const CLOUDWATCH_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric: its name, unit and the dimensions each of its datapoints carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    /// Dimension names, in order; a datapoint gives one value for each.
    pub dimensions: &'static [&'static str],
    /// What one datapoint counts, for docs and the table.
    pub meaning: &'static str,
}

const fn count(
    name: &'static str,
    dimensions: &'static [&'static str],
    meaning: &'static str,
) -> Metric {
    Metric {
        name,
        unit: Unit::Count,
        dimensions,
        meaning,
    }
}

// Records of an intake function (`Function` = firehose-transform, s3-ingest or, locally, ingest):
// in = ok + dropped + failed in every run.
pub const RECORDS_IN: Metric = count("RecordsIn", &["Function"], "records received");
pub const RECORDS_OK: Metric = count(
    "RecordsOk",
    &["Function"],
    "records passed on (to the lake; by s3-ingest, to Firehose)",
);
pub const RECORDS_DROPPED: Metric = count(
    "RecordsDropped",
    &["Function"],
    "records with nothing to keep (every event dropped by a plugin, or empty)",
);
pub const RECORDS_FAILED: Metric = count(
    "RecordsFailed",
    &["Function"],
    "records that failed and went to the error prefix",
);

// Events per source, as the pipeline counts them: in = ok + dropped + failed. Dropped and failed
// events count under source `unknown` (they never got a source the lake would show).
pub const EVENTS_IN: Metric = count("EventsIn", &["Source"], "events framed");
/// Events of a source that reached the lake; the silence rule reads this one.
pub const EVENTS: Metric = count("Events", &["Source"], "events written to the lake");
pub const EVENTS_DROPPED: Metric = count("EventsDropped", &["Source"], "events a plugin dropped");
pub const EVENTS_FAILED: Metric = count(
    "EventsFailed",
    &["Source"],
    "events that failed (framing, a plugin, or their record failed)",
);

// Per plugin.
pub const PLUGIN_DROPPED: Metric = count("PluginDropped", &["Plugin"], "events the plugin dropped");
pub const PLUGIN_FAILED: Metric = count(
    "PluginFailed",
    &["Plugin"],
    "events the plugin failed on (an error or a panic)",
);

// s3-ingest.
pub const OBJECTS: Metric = count(
    "Objects",
    &["Outcome"],
    "objects by outcome: ingested, failed (retried), gone, skipped (own error objects), rejected (notifications naming no object), left (for the next pull)",
);

// Partitions.
pub const PARTITIONS_CREATED: Metric = count("PartitionsCreated", &[], "partitions added to Glue");
pub const PARTITION_ERRORS: Metric = count(
    "PartitionErrors",
    &[],
    "partitions Glue refused, plus tables that could not be checked",
);

// Detector, per rule and in total.
pub const RULE_WINDOWS: Metric = count("RuleWindows", &["Rule"], "windows the rule evaluated");
pub const RULE_ALERTS: Metric = count("RuleAlerts", &["Rule"], "alerts the rule raised");
pub const RULE_BYTES_SCANNED: Metric = Metric {
    name: "RuleBytesScanned",
    unit: Unit::Bytes,
    dimensions: &["Rule"],
    meaning: "lake bytes the rule's queries read (what Athena bills)",
};
pub const RULE_FAILED: Metric = count("RuleFailed", &["Rule"], "1 when the rule failed, else 0");
pub const WINDOWS: Metric = count("Windows", &[], "windows evaluated by all rules");
pub const ALERTS: Metric = count("Alerts", &[], "alerts raised by all rules");
pub const BYTES_SCANNED: Metric = Metric {
    name: "BytesScanned",
    unit: Unit::Bytes,
    dimensions: &[],
    meaning: "lake bytes read by all rules' queries",
};
pub const RULES_FAILED: Metric = count("RulesFailed", &[], "rules that failed in the run");

// Alert deliveries (the outbox).
pub const ALERT_DELIVERIES: Metric = count(
    "AlertDeliveries",
    &["Destination", "Outcome"],
    "deliveries of the run by destination and outcome (delivered, retrying, given_up, pending)",
);
pub const ALERT_DELIVERIES_FAILED: Metric = count(
    "AlertDeliveriesFailed",
    &[],
    "deliveries given up on (they stay visible in the outbox)",
);

/// Every metric lakewatch emits.
pub const ALL: &[&Metric] = &[
    &RECORDS_IN,
    &RECORDS_OK,
    &RECORDS_DROPPED,
    &RECORDS_FAILED,
    &EVENTS_IN,
    &EVENTS,
    &EVENTS_DROPPED,
    &EVENTS_FAILED,
    &PLUGIN_DROPPED,
    &PLUGIN_FAILED,
    &OBJECTS,
    &PARTITIONS_CREATED,
    &PARTITION_ERRORS,
    &RULE_WINDOWS,
    &RULE_ALERTS,
    &RULE_BYTES_SCANNED,
    &RULE_FAILED,
    &WINDOWS,
    &ALERTS,
    &BYTES_SCANNED,
    &RULES_FAILED,
    &ALERT_DELIVERIES,
    &ALERT_DELIVERIES_FAILED,
];

/// Record counts of one intake run; they add up: `records_in = ok + dropped + failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Records {
    pub ok: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// One datapoint: a metric, its dimension values (in the metric's order) and its value.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    metric: &'static Metric,
    values: Vec<String>,
    value: u64,
}

/// The figures of one run (one invocation, one CLI command), in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    points: Vec<Point>,
}

impl Figures {
    /// Adds `value` to the datapoint of `metric` with these dimension values (one per
    /// dimension of the metric, in order).
    ///
    /// # Panics
    /// When the number of values is not the metric's number of dimensions: a programming error
    /// that every test emitting the metric catches.
    pub fn add(&mut self, metric: &'static Metric, values: &[&str], value: u64) {
        assert_eq!(
            values.len(),
            metric.dimensions.len(),
            "{} takes dimensions {:?}",
            metric.name,
            metric.dimensions
        );
        let values: Vec<String> = values.iter().map(|v| dimension_value(v)).collect();
        match self
            .points
            .iter_mut()
            .find(|p| p.metric.name == metric.name && p.values == values)
        {
            Some(point) => point.value += value,
            None => self.points.push(Point {
                metric,
                values,
                value,
            }),
        }
    }

    /// The value of one datapoint, if it was added.
    pub fn get(&self, metric: &'static Metric, values: &[&str]) -> Option<u64> {
        self.points
            .iter()
            .find(|p| p.metric.name == metric.name && p.values == values)
            .map(|p| p.value)
    }

    /// Records of one intake function, with `RecordsIn` their sum.
    pub fn add_records(&mut self, function: &str, records: Records) {
        let Records {
            ok,
            dropped,
            failed,
        } = records;
        self.add(&RECORDS_IN, &[function], ok + dropped + failed);
        self.add(&RECORDS_OK, &[function], ok);
        self.add(&RECORDS_DROPPED, &[function], dropped);
        self.add(&RECORDS_FAILED, &[function], failed);
    }

    /// The pipeline's counts: events per source (`EventsIn` = `Events` + `EventsDropped` +
    /// `EventsFailed`) and what each plugin dropped or failed.
    pub fn add_pipeline(&mut self, tally: &Tally) {
        for (source, t) in &tally.by_source {
            self.add(&EVENTS_IN, &[source], t.ok + t.dropped + t.failed);
            self.add(&EVENTS, &[source], t.ok);
            self.add(&EVENTS_DROPPED, &[source], t.dropped);
            self.add(&EVENTS_FAILED, &[source], t.failed);
        }
        for (plugin, t) in &tally.by_plugin {
            self.add(&PLUGIN_DROPPED, &[plugin], t.dropped);
            self.add(&PLUGIN_FAILED, &[plugin], t.failed);
        }
    }

    /// The datapoints grouped by dimension names and values, in the order first added: what
    /// one EMF line (or table row) holds.
    fn groups(&self) -> Vec<Group<'_>> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        for point in &self.points {
            let (dimensions, values) = (point.metric.dimensions, point.values.as_slice());
            match groups
                .iter_mut()
                .find(|g| g.dimensions == dimensions && g.values == values)
            {
                Some(group) => group.points.push(point),
                None => groups.push(Group {
                    dimensions,
                    values,
                    points: vec![point],
                }),
            }
        }
        groups
    }

    /// The figures as EMF lines stamped `timestamp_ms` (milliseconds since the epoch): one
    /// line per set of dimension values, split so that no line holds more than
    /// [`MAX_METRICS_PER_LINE`] metrics.
    pub fn emf_lines(&self, timestamp_ms: i64) -> Vec<String> {
        let mut lines = Vec::new();
        for Group {
            dimensions,
            values,
            points,
        } in self.groups()
        {
            for chunk in points.chunks(MAX_METRICS_PER_LINE) {
                let metrics: Vec<Value> = chunk
                    .iter()
                    .map(|p| json!({"Name": p.metric.name, "Unit": p.metric.unit.as_str()}))
                    .collect();
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dimensions],
                            "Metrics": metrics,
                        }],
                    }),
                );
                for (name, value) in dimensions.iter().zip(values) {
                    line.insert(name.to_string(), json!(value));
                }
                for point in chunk {
                    line.insert(point.metric.name.into(), json!(point.value));
                }
                lines.push(Value::Object(line).to_string());
            }
        }
        lines
    }

    /// Prints the EMF lines to standard output, where a Lambda's output goes to CloudWatch
    /// Logs, which extracts the metrics.
    pub fn print_emf(&self, timestamp_ms: i64) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for line in self.emf_lines(timestamp_ms) {
            writeln!(out, "{line}")?;
        }
        out.flush()
    }

    /// The figures as a short table, one row per EMF line's worth: the dimensions
    /// (`Name=value`, `-` for none), then each metric as `Name=value`.
    pub fn table(&self) -> String {
        let rows: Vec<(String, String)> = self
            .groups()
            .into_iter()
            .map(|group| {
                let dimensions: Vec<String> = group
                    .dimensions
                    .iter()
                    .zip(group.values)
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                let figures: Vec<String> = group
                    .points
                    .iter()
                    .map(|p| format!("{}={}", p.metric.name, p.value))
                    .collect();
                let dimensions = match dimensions.is_empty() {
                    true => "-".to_string(),
                    false => dimensions.join(" "),
                };
                (dimensions, figures.join(" "))
            })
            .collect();
        let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (dimensions, figures) in rows {
            let _ = writeln!(out, "{dimensions:width$}  {figures}");
        }
        out
    }
}

/// Datapoints that share dimension names and values.
struct Group<'f> {
    dimensions: &'static [&'static str],
    values: &'f [String],
    points: Vec<&'f Point>,
}

/// A dimension value CloudWatch keeps: never empty, at most 1024 characters.
fn dimension_value(value: &str) -> String {
    if value.is_empty() {
        return "(empty)".into();
    }
    value.chars().take(MAX_DIMENSION_VALUE_CHARS).collect()
}

/// Checks one line against the Embedded Metric Format specification, as far as CloudWatch
/// enforces it: an `_aws` object with a numeric `Timestamp` and `CloudWatchMetrics`
/// directives, each with a `Namespace`, `Dimensions` (arrays of names, each a top-level
/// string member) and at most 100 `Metrics` (each a top-level number, with a valid unit).
/// Returns the line's members.
pub fn parse_emf_line(line: &str) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(members)) = serde_json::from_str::<Value>(line) else {
        return Err(format!("not a JSON object: {line}"));
    };
    let aws = members
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no `_aws` object")?;
    if !aws.get("Timestamp").is_some_and(Value::is_i64) {
        return Err("`_aws.Timestamp` is not a whole number of milliseconds".into());
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("no `_aws.CloudWatchMetrics` directives")?;
    for directive in directives {
        if directive
            .get("Namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err("a directive has no Namespace".into());
        }
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("a directive has no Dimensions array")?;
        for set in sets {
            let names = set.as_array().ok_or("a dimension set is not an array")?;
            if names.len() > 30 {
                return Err("a dimension set has more than 30 dimensions".into());
            }
            for name in names {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                match members.get(name) {
                    Some(Value::String(value)) if !value.is_empty() => {}
                    _ => return Err(format!("dimension {name} is not a non-empty string member")),
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("a directive has no Metrics array")?;
        if metrics.len() > MAX_METRICS_PER_LINE {
            return Err(format!("{} metrics in one directive", metrics.len()));
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric has no Name")?;
            if !members.get(name).is_some_and(Value::is_number) {
                return Err(format!("metric {name} has no numeric member"));
            }
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| CLOUDWATCH_UNITS.contains(&u))
            {
                return Err(format!(
                    "metric {name} has unit {unit}, not a CloudWatch unit"
                ));
            }
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_units_valid_and_no_dimension_shares_a_metric_name() {
        let names: BTreeSet<&str> = ALL.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), ALL.len(), "a metric is listed twice");
        for metric in ALL {
            assert!(CLOUDWATCH_UNITS.contains(&metric.unit.as_str()));
            for dimension in metric.dimensions {
                assert!(!names.contains(dimension), "{dimension} is also a metric");
            }
        }
    }

    #[test]
    fn the_agreed_names_are_emitted() {
        assert_eq!(NAMESPACE, "Lakewatch");
        assert_eq!(
            (EVENTS.name, EVENTS.dimensions),
            ("Events", &["Source"][..])
        );
        assert_eq!(
            (ALERT_DELIVERIES.name, ALERT_DELIVERIES.dimensions),
            ("AlertDeliveries", &["Destination", "Outcome"][..])
        );
        assert_eq!(ALERT_DELIVERIES_FAILED.name, "AlertDeliveriesFailed");
    }

    #[test]
    fn lines_are_emf_with_dimension_values_and_figures_as_members() {
        let mut figures = Figures::default();
        figures.add_records(
            "firehose-transform",
            Records {
                ok: 3,
                dropped: 1,
                failed: 2,
            },
        );
        figures.add(&EVENTS, &["syslog"], 5);
        figures.add(&EVENTS, &["syslog"], 2);
        figures.add(&WINDOWS, &[], 4);
        let lines = figures.emf_lines(1_700_000_000_123);
        assert_eq!(lines.len(), 3, "one line per set of dimension values");
        let parsed: Vec<_> = lines.iter().map(|l| parse_emf_line(l).unwrap()).collect();
        let records = &parsed[0];
        assert_eq!(records["_aws"]["Timestamp"], 1_700_000_000_123i64);
        let directive = &records["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Lakewatch");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"][0],
            json!({"Name": "RecordsIn", "Unit": "Count"})
        );
        assert_eq!(records["Function"], "firehose-transform");
        assert_eq!(
            records["RecordsIn"].as_u64().unwrap(),
            ["RecordsOk", "RecordsDropped", "RecordsFailed"]
                .iter()
                .map(|m| records[*m].as_u64().unwrap())
                .sum::<u64>()
        );
        assert_eq!(parsed[1]["Events"], 7, "the same datapoint adds up");
        assert_eq!(parsed[1]["Source"], "syslog");
        assert_eq!(
            parsed[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }

    #[test]
    fn more_than_100_metrics_of_one_dimension_set_split_into_lines() {
        static MANY: std::sync::LazyLock<Vec<Metric>> = std::sync::LazyLock::new(|| {
            (0..150)
                .map(|i| count(Box::leak(format!("M{i}").into_boxed_str()), &[], "test"))
                .collect()
        });
        let mut figures = Figures::default();
        for metric in MANY.iter() {
            figures.add(metric, &[], 1);
        }
        let lines = figures.emf_lines(0);
        assert_eq!(lines.len(), 2);
        let sizes: Vec<usize> = lines
            .iter()
            .map(|l| {
                parse_emf_line(l).unwrap()["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [100, 50]);
    }

    #[test]
    fn empty_and_overlong_dimension_values_are_made_acceptable() {
        let mut figures = Figures::default();
        figures.add(&EVENTS, &[""], 1);
        figures.add(&RULE_ALERTS, &[&"r".repeat(2000)], 1);
        for line in figures.emf_lines(0) {
            parse_emf_line(&line).unwrap();
        }
        assert_eq!(figures.get(&EVENTS, &["(empty)"]), Some(1));
        assert_eq!(figures.get(&RULE_ALERTS, &[&"r".repeat(1024)]), Some(1));
    }

    #[test]
    fn the_checker_rejects_what_cloudwatch_would() {
        let good = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"D":"x","M":1}"#;
        parse_emf_line(good).unwrap();
        for (bad, why) in [
            (
                good.replace(r#""Unit":"Count""#, r#""Unit":"Things""#),
                "unit",
            ),
            (good.replace(r#""D":"x""#, r#""D":3"#), "dimension"),
            (good.replace(r#""M":1"#, r#""M":"1""#), "numeric"),
            (
                good.replace(r#""Timestamp":1"#, r#""Timestamp":"now""#),
                "Timestamp",
            ),
            (good.replace("_aws", "aws"), "_aws"),
        ] {
            let error = parse_emf_line(&bad).unwrap_err();
            assert!(error.contains(why), "{error} for {bad}");
        }
    }

    #[test]
    fn pipeline_counts_add_up_per_source_and_name_plugins() {
        let mut tally = Tally::default();
        tally.by_source.insert(
            "syslog".into(),
            lakewatch_plugins::SourceTally {
                ok: 4,
                dropped: 0,
                failed: 0,
            },
        );
        tally.by_source.insert(
            "unknown".into(),
            lakewatch_plugins::SourceTally {
                ok: 0,
                dropped: 1,
                failed: 2,
            },
        );
        tally.by_plugin.insert(
            "geoip".into(),
            lakewatch_plugins::PluginTally {
                dropped: 1,
                failed: 1,
            },
        );
        let mut figures = Figures::default();
        figures.add_pipeline(&tally);
        assert_eq!(figures.get(&EVENTS, &["syslog"]), Some(4));
        assert_eq!(figures.get(&EVENTS_IN, &["unknown"]), Some(3));
        assert_eq!(figures.get(&PLUGIN_FAILED, &["geoip"]), Some(1));
        let table = figures.table();
        assert!(
            table.lines().any(|l| l.starts_with("Plugin=geoip ")
                && l.ends_with(" PluginDropped=1 PluginFailed=1")),
            "{table}"
        );
    }
}
