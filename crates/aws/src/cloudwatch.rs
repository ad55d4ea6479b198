//! Reading the events-per-source metric for silence rules: CloudWatch `GetMetricData` on the
//! metric the transform emits in Embedded Metric Format, namespace [`NAMESPACE`], metric
//! [`EVENTS_METRIC`] (unit `Count`), dimension [`SOURCE_DIMENSION`], one datapoint per source per
//! invocation. Hourly sums come back whatever the volume behind them, so a silence rule's cost
//! on AWS is a few metric reads per run, independent of the data.
//!
//! The metric has no host dimension, so per-host silence is not available on AWS: a rule with
//! `per_host = true` fails with an error that says so.

use aws_sdk_cloudwatch::error::DisplayErrorContext;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StandardUnit};
use chrono::{DateTime, Utc};
use lakewatch_detect::SourceCounts;
use lakewatch_lake::counts::HostHours;

/// The namespace of lakewatch's metrics (defined once, in the metrics catalogue).
pub use lakewatch_metrics::NAMESPACE;
/// Events the transform wrote, per source and invocation.
pub const EVENTS_METRIC: &str = lakewatch_metrics::EVENTS.name;
/// The dimension naming the source (the shell's `source`).
pub const SOURCE_DIMENSION: &str = lakewatch_metrics::EVENTS.dimensions[0];

/// Hourly sums of `Lakewatch/Events` by `Source`.
#[derive(Debug, Clone)]
pub struct CloudWatchCounts {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchCounts {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchCounts { client }
    }
}

/// The `Source` dimension the transform's datapoints carry.
fn source_dimension(source: &str) -> Dimension {
    Dimension::builder()
        .name(SOURCE_DIMENSION)
        .value(source)
        .build()
}

fn aws_time(time: DateTime<Utc>) -> AwsDateTime {
    AwsDateTime::from_secs(time.timestamp())
}

impl SourceCounts for CloudWatchCounts {
    async fn hourly(
        &self,
        source: &str,
        per_host: bool,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HostHours, String> {
        if per_host {
            return Err(format!(
                "per-host silence needs counts per host, and {NAMESPACE}/{EVENTS_METRIC} is \
                 counted per {SOURCE_DIMENSION} only: use per_host = false on AWS"
            ));
        }
        let metric = Metric::builder()
            .namespace(NAMESPACE)
            .metric_name(EVENTS_METRIC)
            .dimensions(source_dimension(source))
            .build();
        let query = MetricDataQuery::builder()
            .id("events")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(3600)
                    .stat("Sum")
                    .unit(StandardUnit::Count)
                    .build(),
            )
            .return_data(true)
            .build();
        let mut hours = std::collections::BTreeMap::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .get_metric_data()
                .metric_data_queries(query.clone())
                .start_time(aws_time(from))
                .end_time(aws_time(to))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "CloudWatch GetMetricData {NAMESPACE}/{EVENTS_METRIC} \
                         {SOURCE_DIMENSION}={source}: {}",
                        DisplayErrorContext(&e)
                    )
                })?;
            for result in page.metric_data_results() {
                for (time, value) in result.timestamps().iter().zip(result.values()) {
                    let Some(hour) = DateTime::from_timestamp(time.secs(), 0) else {
                        continue;
                    };
                    if hour >= from && hour < to && *value > 0.0 {
                        *hours.entry(hour).or_insert(0) += value.round() as u64;
                    }
                }
            }
            next_token = page.next_token().map(String::from);
            if next_token.is_none() {
                break;
            }
        }
        let mut out = HostHours::new();
        if !hours.is_empty() {
            out.insert(String::new(), hours);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::MetricDatum;
    use chrono::TimeDelta;
    use lakewatch_testkit::moto::MotoServer;

    /// One datapoint as the transform's EMF line gives it: `Events` of `source` at `time`.
    fn datum(source: &str, time: DateTime<Utc>, events: f64) -> MetricDatum {
        MetricDatum::builder()
            .metric_name(EVENTS_METRIC)
            .dimensions(source_dimension(source))
            .timestamp(aws_time(time))
            .value(events)
            .unit(StandardUnit::Count)
            .build()
    }

    #[tokio::test]
    async fn hourly_sums_of_a_source_come_from_get_metric_data() {
        let server = MotoServer::start();
        let client = aws_sdk_cloudwatch::Client::new(&server.sdk_config().await);
        // Several invocations per hour for two sources; recent, as CloudWatch keeps them.
        let hour = DateTime::from_timestamp(Utc::now().timestamp() / 3600 * 3600, 0).unwrap()
            - TimeDelta::hours(5);
        let mut data = Vec::new();
        for (offset, source, events) in [
            (0, "syslog", 10.0),
            (20, "syslog", 5.0),
            (59, "syslog", 1.0),
            (60, "syslog", 7.0),
            (10, "cloudtrail", 100.0),
            (180, "syslog", 3.0),
        ] {
            data.push(datum(source, hour + TimeDelta::minutes(offset), events));
        }
        client
            .put_metric_data()
            .namespace(NAMESPACE)
            .set_metric_data(Some(data))
            .send()
            .await
            .unwrap();

        let counts = CloudWatchCounts::new(client);
        let to = hour + TimeDelta::hours(3);
        let hosts = counts.hourly("syslog", false, hour, to).await.unwrap();
        let hours: Vec<(DateTime<Utc>, u64)> =
            hosts[""].iter().map(|(hour, n)| (*hour, *n)).collect();
        // The 03:00 datapoint is outside [from, to); the other source is not mixed in.
        assert_eq!(
            hours,
            [(hour, 16), (hour + TimeDelta::hours(1), 7)],
            "{hosts:?}"
        );
        assert!(
            counts
                .hourly("vpcflow", false, hour, to)
                .await
                .unwrap()
                .is_empty()
        );
        let error = counts.hourly("syslog", true, hour, to).await.unwrap_err();
        assert!(error.contains("per_host = false on AWS"), "{error}");
    }
}
