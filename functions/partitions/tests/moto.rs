//! The partition generator against moto server (S3 + Glue) through the real AWS SDK: the library
//! run with a fixed time, and the built Lambda binary driven through the Lambda Runtime API.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_sdk_glue::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_glue::config::{ConfigBag, Intercept};
use aws_sdk_glue::operation::batch_create_partition::BatchCreatePartitionInput;
use aws_sdk_glue::types::Partition;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Input;
use chrono::{DateTime, TimeDelta, Utc};
use lakewatch_aws::glue::{database_input, table_input};
use lakewatch_lake::partitions::Hour;
use lakewatch_lake::schema::{ALERTS, EVENTS, TABLES, Table};
use lakewatch_testkit::moto::MotoServer;
use lakewatch_testkit::runtime_api::LambdaProcess;
use partitions::{Counts, GeneratorError, GeneratorSettings, ensure_partitions};

const BUCKET: &str = "lake";
const DATABASE: &str = "lakewatch";

/// Records the calls the generator makes that matter for limits: the size of each
/// `BatchCreatePartition` batch, and each `ListObjectsV2` page (first or continued).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let input = context.input();
        let call = if let Some(batch) = input.downcast_ref::<BatchCreatePartitionInput>() {
            format!("batch of {}", batch.partition_input_list().len())
        } else if let Some(list) = input.downcast_ref::<ListObjectsV2Input>() {
            let page = if list.continuation_token().is_some() {
                "continued"
            } else {
                "first"
            };
            format!("list {page}")
        } else {
            return Ok(());
        };
        self.0.lock().unwrap().push(call);
        Ok(())
    }
}

/// A moto server with the lake bucket and the database, and clients for it.
struct Lake {
    server: MotoServer,
    s3: aws_sdk_s3::Client,
    glue: aws_sdk_glue::Client,
    calls: Calls,
}

impl Lake {
    /// A bucket and a database; the tables only when `with_tables`.
    async fn start(with_tables: bool) -> Lake {
        let server = MotoServer::start();
        let config = server.sdk_config().await;
        let calls = Calls::default();
        let s3 = lakewatch_aws::config::s3_client(&config);
        let s3 = aws_sdk_s3::Client::from_conf(
            s3.config().to_builder().interceptor(calls.clone()).build(),
        );
        let glue = aws_sdk_glue::config::Builder::from(&config)
            .interceptor(calls.clone())
            .build();
        let lake = Lake {
            s3,
            glue: aws_sdk_glue::Client::from_conf(glue),
            server,
            calls,
        };
        lake.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        lake.glue
            .create_database()
            .database_input(database_input(DATABASE))
            .send()
            .await
            .unwrap();
        if with_tables {
            for table in TABLES {
                lake.glue
                    .create_table()
                    .database_name(DATABASE)
                    .table_input(table_input(table, BUCKET))
                    .send()
                    .await
                    .unwrap();
            }
        }
        lake
    }

    async fn put(&self, key: &str) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(b"{}\n".to_vec().into())
            .send()
            .await
            .unwrap();
    }

    /// Puts one object into the hour `hours_ago` before `now` of `table`.
    async fn put_hour(&self, table: &Table, now: DateTime<Utc>, hours_ago: i64) -> Hour {
        let hour = Hour::containing(now - TimeDelta::hours(hours_ago));
        self.put(&format!("{}part-0000.json.gz", hour.prefix(table)))
            .await;
        hour
    }

    async fn run(&self, now: DateTime<Utc>, lookback_hours: u32, page_size: i32) -> Counts {
        let report = ensure_partitions(
            &self.s3,
            &self.glue,
            &settings(lookback_hours, page_size),
            now,
        )
        .await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report.counts
    }

    /// The built Lambda binary, configured for this lake as Terraform configures it, plus `extra`.
    async fn start_lambda(&self, extra: &[(&str, &str)]) -> LambdaProcess {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.server.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("LAKEWATCH_LAKE_BUCKET", BUCKET),
            ("LAKEWATCH_GLUE_DATABASE", DATABASE),
        ];
        env.extend_from_slice(extra);
        LambdaProcess::start(env!("CARGO_BIN_EXE_partitions"), &env)
            .await
            .unwrap()
    }

    /// Every partition of `table` in the catalog (following Glue's pages).
    async fn partitions(&self, table: &Table) -> Vec<Partition> {
        let mut partitions = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .glue
                .get_partitions()
                .database_name(DATABASE)
                .table_name(table.name)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            partitions.extend(page.partitions().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return partitions;
            }
        }
    }

    async fn partition_hours(&self, table: &Table) -> BTreeSet<String> {
        self.partitions(table)
            .await
            .iter()
            .map(|p| p.values().join("/"))
            .collect()
    }
}

fn settings(lookback_hours: u32, page_size: i32) -> GeneratorSettings {
    GeneratorSettings {
        bucket: BUCKET.to_owned(),
        database: DATABASE.to_owned(),
        lookback_hours,
        page_size,
    }
}

fn now() -> DateTime<Utc> {
    "2026-11-23T10:20:00Z".parse().unwrap()
}

fn values(hour: Hour) -> String {
    hour.values().join("/")
}

#[tokio::test]
async fn adds_partitions_for_objects_in_past_hours_within_the_lookback_only() {
    let lake = Lake::start(true).await;
    let now = now();
    let yesterday = lake.put_hour(&EVENTS, now, 31).await;
    let last_hour = lake.put_hour(&EVENTS, now, 1).await;
    lake.put_hour(&EVENTS, now, 1).await; // a second object in the same hour
    let oldest = lake.put_hour(&ALERTS, now, 48).await;
    let too_old = lake.put_hour(&ALERTS, now, 49).await;
    lake.put("events/year=2026/month=11/day=23/hour=9/stray.json.gz")
        .await;
    lake.put("events/year=2026/month=11/day=23/notes.txt").await;

    let counts = lake.run(now, 48, 1000).await;

    let current = Hour::containing(now);
    let next = current.plus_hours(1);
    assert_eq!(
        counts,
        Counts {
            checked: 7,
            added: 7,
            already_there: 0,
            failed: 0,
            found: 3,
            malformed_keys: 2,
        }
    );
    assert_eq!(
        lake.partition_hours(&EVENTS).await,
        BTreeSet::from([yesterday, last_hour, current, next].map(values))
    );
    let alerts = lake.partition_hours(&ALERTS).await;
    assert_eq!(alerts, BTreeSet::from([oldest, current, next].map(values)));
    assert!(!alerts.contains(&values(too_old)));

    let partition = lake
        .partitions(&EVENTS)
        .await
        .into_iter()
        .find(|p| p.values().join("/") == values(yesterday))
        .unwrap();
    let descriptor = partition.storage_descriptor().unwrap();
    assert_eq!(
        descriptor.location(),
        Some("s3://lake/events/year=2026/month=11/day=22/hour=03/")
    );
    assert_eq!(
        descriptor.serde_info().unwrap().serialization_library(),
        Some("org.openx.data.jsonserde.JsonSerDe")
    );
}

#[tokio::test]
async fn a_second_run_adds_nothing_and_reports_every_partition_already_there() {
    let lake = Lake::start(true).await;
    let now = now();
    lake.put_hour(&EVENTS, now, 5).await;
    lake.put_hour(&ALERTS, now, 2).await;

    let first = lake.run(now, 48, 1000).await;
    let before = lake.partition_hours(&EVENTS).await;
    let second = lake.run(now, 48, 1000).await;

    assert_eq!(first.added, 6);
    assert_eq!(
        second,
        Counts {
            checked: 6,
            added: 0,
            already_there: 6,
            failed: 0,
            found: 2,
            malformed_keys: 0,
        }
    );
    assert_eq!(lake.partition_hours(&EVENTS).await, before);
}

#[tokio::test]
async fn pages_through_many_prefixes_and_adds_more_than_one_batch_of_partitions() {
    let lake = Lake::start(true).await;
    let now = now();
    // 130 hours of back-filled events (11-18 00:00 to 11-23 09:00): more than Glue's 100 per
    // batch, spread over six days, listed 7 prefixes per page so a day takes several pages.
    let mut expected = BTreeSet::new();
    for hours_ago in 1..=130 {
        expected.insert(values(lake.put_hour(&EVENTS, now, hours_ago).await));
    }
    let current = Hour::containing(now);
    expected.extend([current, current.plus_hours(1)].map(values));

    lake.calls.take();
    let counts = lake.run(now, 140, 7).await;

    let calls = lake.calls.take();
    let batches: Vec<&String> = calls.iter().filter(|c| c.starts_with("batch")).collect();
    assert_eq!(batches, ["batch of 100", "batch of 32", "batch of 2"]);
    let continued = calls.iter().filter(|c| *c == "list continued").count();
    // Days 18-22 hold 24 hours each (pages of 7, 7, 7, 3), day 23 holds 10 (7, 3).
    assert_eq!(continued, 5 * 3 + 1, "{calls:?}");
    assert_eq!(counts.found, 130);
    assert_eq!(counts.checked, 132 + 2);
    assert_eq!(counts.added, 134);
    assert_eq!(lake.partition_hours(&EVENTS).await, expected);
    assert_eq!(lake.partition_hours(&ALERTS).await.len(), 2);

    let again = lake.run(now, 140, 7).await;
    assert_eq!((again.added, again.already_there), (0, 134));
}

#[tokio::test]
async fn creates_the_current_and_next_hour_of_both_tables_in_an_empty_lake() {
    let lake = Lake::start(true).await;
    // Just before midnight on New Year's Eve: the next hour is in another day, month and year.
    let now: DateTime<Utc> = "2026-12-31T23:59:59Z".parse().unwrap();

    let counts = lake.run(now, 0, 1000).await;

    assert_eq!((counts.checked, counts.added, counts.found), (4, 4, 0));
    for table in TABLES {
        assert_eq!(
            lake.partition_hours(table).await,
            BTreeSet::from(["2026/12/31/23".to_owned(), "2027/01/01/00".to_owned()]),
            "{}",
            table.name
        );
    }
}

#[tokio::test]
async fn a_missing_table_is_an_error_that_says_how_to_create_it() {
    let lake = Lake::start(false).await;

    let report = ensure_partitions(&lake.s3, &lake.glue, &settings(48, 1000), now()).await;

    assert_eq!(report.counts, Counts::default());
    assert_eq!(report.errors.len(), 2);
    assert!(matches!(
        &report.errors[0],
        GeneratorError::MissingTable { table, .. } if table == "events"
    ));
    let message = report.errors[1].to_string();
    assert!(
        message.contains("lakewatch.alerts does not exist"),
        "{message}"
    );
    assert!(message.contains("create it with terraform"), "{message}");
    assert!(message.contains("lakewatch ddl"), "{message}");
}

#[tokio::test]
async fn the_lambda_binary_runs_a_scheduled_event_and_logs_one_line_of_counts() {
    let lake = Lake::start(true).await;
    // The sample event's time is 2026-11-23T10:20:00Z.
    let backfilled = lake.put_hour(&EVENTS, now(), 20).await;
    let event = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/lambda/partitions-scheduled.json"
    ))
    .unwrap();
    let lambda = lake
        .start_lambda(&[("LAKEWATCH_LOOKBACK_HOURS", "24")])
        .await;

    let first: serde_json::Value = serde_json::from_slice(
        &lambda
            .invoke(event.clone())
            .await
            .unwrap()
            .into_response()
            .unwrap(),
    )
    .unwrap();
    let second: serde_json::Value =
        serde_json::from_slice(&lambda.invoke(event).await.unwrap().into_response().unwrap())
            .unwrap();

    assert_eq!(first["checked"], 5);
    assert_eq!(first["added"], 5);
    assert_eq!(second["added"], 0);
    assert_eq!(second["already_there"], 5);
    assert!(
        lake.partition_hours(&EVENTS)
            .await
            .contains(&values(backfilled))
    );
    let logs = lambda.stop();
    let count_lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("partitions checked"))
        .collect();
    assert_eq!(count_lines.len(), 2, "{logs}");
    let line: serde_json::Value = serde_json::from_str(count_lines[1]).unwrap();
    let fields = &line;
    assert_eq!(
        (
            &fields["checked"],
            &fields["added"],
            &fields["already_there"],
            &fields["failed"]
        ),
        (&5.into(), &0.into(), &5.into(), &0.into())
    );
}

#[tokio::test]
async fn the_lambda_binary_fails_the_invocation_when_the_tables_are_missing() {
    let lake = Lake::start(false).await;
    let lambda = lake.start_lambda(&[]).await;

    let error = lambda
        .invoke(b"{}".to_vec())
        .await
        .unwrap()
        .into_response()
        .unwrap_err()
        .to_string();

    assert!(error.contains("2 problem(s)"), "{error}");
    assert!(error.contains("create it with terraform"), "{error}");
}
