//! The detector's AWS side against moto server through the real AWS SDK: the Athena query
//! lifecycle (start, polling through QUEUED and RUNNING, results, timeout and stop), rule state
//! in S3 with conditional writes, and whole scheduled runs of real rules from `rules/` writing
//! alerts to S3 and publishing them to SNS (read back through an SQS subscription).
//!
//! moto does not run SQL: each query gets the next result seeded through moto's API
//! (`/moto-api/static/athena/query-results`), in the order the queries start. It does not page
//! `GetQueryResults` either (it ignores `MaxResults` and never returns a `NextToken`); the
//! paging loop is tested on SDK-built pages in `athena.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_athena::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_athena::config::{ConfigBag, Intercept};
use aws_sdk_athena::operation::get_query_results::GetQueryResultsInput;
use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionInput;
use aws_sdk_athena::operation::stop_query_execution::StopQueryExecutionInput;
use aws_sdk_athena::types::QueryExecutionState;
use chrono::{DateTime, Utc};
use detector::{AwsSecrets, DetectorSettings, S3AlertSink};
use flate2::read::GzDecoder;
use lakewatch_aws::athena::{AthenaEngine, AthenaSettings};
use lakewatch_aws::s3_state::S3Store as S3StateStore;
use lakewatch_deliver::config::Target;
use lakewatch_deliver::{DestinationsFile, EnvSecrets};
use lakewatch_detect::state::{StateError, Stored};
use lakewatch_detect::{Alert, AlertDelivery, AlertSink, UnpublishedAlert};
use lakewatch_detect::{QueryEngine, Rule, RuleState, StateStore, Window};
use lakewatch_detect::{RuleOutcome, run_scheduled};
use lakewatch_lake::layout::{OUTBOX_DOCUMENT, alert_object_key};
use lakewatch_testkit::moto::{MotoServer, REGION};
use lakewatch_testkit::receiver::{Answer, Receiver};
use serde_json::{Value, json};

const BUCKET: &str = "lake";
const DATABASE: &str = "lakewatch";
const WORKGROUP: &str = "detector";
const PREFIX: &str = "state/detector/";

/// POSTs JSON to moto's own API and checks it was accepted.
fn moto_api(server: &MotoServer, path: &str, body: &Value) {
    let address = server.endpoint().trim_start_matches("http://");
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 20") || response.starts_with("HTTP/1.0 20"),
        "{path}: {response}"
    );
}

/// One seeded query result: column names, and rows of values (`None` = NULL).
type Seeded<'a> = (&'a [&'a str], Vec<Vec<Option<&'a str>>>);

/// Queues one result per future query: a header row, then the rows.
fn seed(server: &MotoServer, results: &[Seeded<'_>]) {
    let results: Vec<Value> = results
        .iter()
        .map(|(columns, rows)| {
            let cell = |value: &Option<&str>| match value {
                Some(text) => json!({ "VarCharValue": text }),
                None => json!({}),
            };
            let header = json!({ "Data": columns.iter().map(|c| json!({ "VarCharValue": c })).collect::<Vec<_>>() });
            let rows: Vec<Value> = std::iter::once(header)
                .chain(
                    rows.iter()
                        .map(|row| json!({ "Data": row.iter().map(cell).collect::<Vec<_>>() })),
                )
                .collect();
            json!({
                "rows": rows,
                "column_info": columns.iter().map(|c| json!({ "Name": c, "Type": "varchar" })).collect::<Vec<_>>(),
            })
        })
        .collect();
    moto_api(
        server,
        "/moto-api/static/athena/query-results",
        &json!({ "account_id": "123456789012", "region": REGION, "results": results }),
    );
}

/// Makes every query stay in each state for `polls` GetQueryExecution calls.
fn queries_advance_every(server: &MotoServer, polls: u64) {
    moto_api(
        server,
        "/moto-api/state-manager/set-transition",
        &json!({ "model_name": "athena::execution", "transition": { "progression": "manual", "times": polls } }),
    );
}

/// The Athena requests a client sent, in order, and the text of the queries it started.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>);

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
        let call = if let Some(start) = input.downcast_ref::<StartQueryExecutionInput>() {
            let text = start.query_string().unwrap_or_default().to_string();
            self.1.lock().unwrap().push(text);
            format!(
                "start in {:?} on {:?}",
                start.work_group().unwrap_or_default(),
                start
                    .query_execution_context()
                    .and_then(|c| c.database())
                    .unwrap_or_default()
            )
        } else if let Some(results) = input.downcast_ref::<GetQueryResultsInput>() {
            format!(
                "results max {:?} token {:?}",
                results.max_results(),
                results.next_token()
            )
        } else if input.downcast_ref::<StopQueryExecutionInput>().is_some() {
            "stop".to_string()
        } else {
            "poll".to_string()
        };
        self.0.lock().unwrap().push(call);
        Ok(())
    }
}

struct Lake {
    server: MotoServer,
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    athena: aws_sdk_athena::Client,
    calls: Calls,
}

impl Lake {
    async fn start() -> Lake {
        let server = MotoServer::start();
        let config = server.sdk_config().await;
        let calls = Calls::default();
        let athena = aws_sdk_athena::Client::from_conf(
            aws_sdk_athena::config::Builder::from(&config)
                .interceptor(calls.clone())
                .build(),
        );
        athena
            .create_work_group()
            .name(WORKGROUP)
            .send()
            .await
            .unwrap();
        calls.0.lock().unwrap().clear();
        let s3 = lakewatch_aws::config::s3_client(&config);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        Lake {
            s3,
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            athena,
            server,
            calls,
        }
    }

    fn engine(&self, adjust: impl FnOnce(&mut AthenaSettings)) -> AthenaEngine {
        let mut settings = AthenaSettings::new(WORKGROUP, DATABASE, Duration::from_secs(30));
        settings.first_poll = Duration::from_millis(5);
        settings.max_poll = Duration::from_millis(20);
        adjust(&mut settings);
        AthenaEngine::new(self.athena.clone(), settings)
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.0.lock().unwrap())
    }

    /// The text of the queries started since the last call.
    fn query_texts(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.1.lock().unwrap())
    }

    fn state(&self) -> S3StateStore {
        S3StateStore::new(self.s3.clone(), BUCKET, PREFIX)
    }

    /// An alerts topic with an SQS queue subscribed (raw delivery: each message is an alert line).
    async fn topic_with_queue(&self) -> (String, String) {
        let topic = self.sns.create_topic().name("alerts").send().await.unwrap();
        let topic = topic.topic_arn().unwrap().to_string();
        let queue = self
            .sqs
            .create_queue()
            .queue_name("alerts-reader")
            .send()
            .await
            .unwrap();
        let queue_url = queue.queue_url().unwrap().to_string();
        let queue_arn = format!("arn:aws:sqs:{REGION}:123456789012:alerts-reader");
        self.sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        (topic, queue_url)
    }

    async fn received(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if output.messages().is_empty() {
                return bodies;
            }
            for message in output.messages() {
                bodies.push(message.body().unwrap().to_string());
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// The lines of an alerts object, gunzipped.
    async fn alert_lines(&self, key: &str) -> Vec<Value> {
        let object = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let mut text = String::new();
        GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect()
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn rules(ids: &[&str]) -> Vec<Rule> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    ids.iter()
        .map(|id| Rule::from_file(&dir.join(format!("{id}.toml"))).unwrap())
        .collect()
}

fn pairs(rows: &[BTreeMap<String, Option<String>>]) -> Vec<Vec<(&str, Option<&str>)>> {
    rows.iter()
        .map(|r| r.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
        .collect()
}

#[tokio::test]
async fn a_query_is_polled_through_queued_and_running_and_its_rows_read_with_nulls() {
    let lake = Lake::start().await;
    queries_advance_every(&lake.server, 2);
    seed(
        &lake.server,
        &[(
            &["user", "ip"],
            vec![
                vec![Some("alice"), Some("192.0.2.1")],
                vec![Some("bob"), None],
            ],
        )],
    );
    let engine = lake.engine(|_| {});
    let rows = engine.query("SELECT user, ip FROM events").await.unwrap();
    assert_eq!(
        pairs(&rows),
        [
            vec![("ip", Some("192.0.2.1")), ("user", Some("alice"))],
            vec![("ip", None), ("user", Some("bob"))],
        ]
    );
    // Two polls per state: QUEUED, QUEUED→RUNNING, RUNNING, RUNNING→SUCCEEDED.
    assert_eq!(
        lake.calls(),
        [
            "start in \"detector\" on \"lakewatch\"",
            "poll",
            "poll",
            "poll",
            "poll",
            "results max Some(1000) token None"
        ]
    );
    let metrics = engine.take_metrics();
    assert_eq!(metrics.len(), 1);
    assert_eq!((metrics[0].rows, metrics[0].bytes_scanned), (2, 0));
    assert!(
        engine.take_metrics().is_empty(),
        "metrics are handed out once"
    );
}

#[tokio::test]
async fn every_results_request_asks_for_the_configured_page_size() {
    // moto answers with every row in one page whatever MaxResults says; the loop over
    // NextToken is covered in athena.rs with pages built from the SDK's own types.
    let lake = Lake::start().await;
    let users = ["a", "b", "c", "d", "e"];
    seed(
        &lake.server,
        &[(&["user"], users.iter().map(|u| vec![Some(*u)]).collect())],
    );
    let engine = lake.engine(|s| s.page_size = 2);
    let rows = engine.query("SELECT user FROM events").await.unwrap();
    let read: Vec<&str> = rows.iter().map(|r| r["user"].as_deref().unwrap()).collect();
    assert_eq!(read, users);
    let calls = lake.calls();
    let pages: Vec<&String> = calls.iter().filter(|c| c.starts_with("results")).collect();
    assert!(!pages.is_empty());
    assert!(
        pages.iter().all(|c| c.starts_with("results max Some(2) ")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_query_that_never_finishes_is_stopped_at_its_timeout_with_its_state_named() {
    let lake = Lake::start().await;
    queries_advance_every(&lake.server, 1_000_000);
    let engine = lake.engine(|s| s.timeout = Duration::from_millis(100));
    let error = engine.query("SELECT 1").await.unwrap_err();
    assert!(error.contains("still QUEUED after"), "{error}");
    assert!(error.contains("past the timeout of 100ms"), "{error}");
    assert!(error.ends_with("it was stopped"), "{error}");
    let calls = lake.calls();
    assert_eq!(calls.last().map(String::as_str), Some("stop"), "{calls:?}");
    assert!(
        calls.iter().filter(|c| *c == "poll").count() >= 3,
        "backoff polls: {calls:?}"
    );
    let id = &engine.take_metrics()[0].query_execution_id;
    let execution = lake
        .athena
        .get_query_execution()
        .query_execution_id(id)
        .send()
        .await
        .unwrap();
    let state = execution
        .query_execution()
        .and_then(|e| e.status())
        .and_then(|s| s.state());
    assert_eq!(state, Some(&QueryExecutionState::Cancelled));
}

#[tokio::test]
async fn near_the_invocation_deadline_queries_are_cut_short_or_not_started() {
    use lakewatch_aws::athena::DEADLINE_MARGIN;
    let lake = Lake::start().await;
    queries_advance_every(&lake.server, 1_000_000);
    let engine = lake.engine(|_| {});
    let soon = std::time::Instant::now() + DEADLINE_MARGIN + Duration::from_millis(150);
    engine.set_deadline(Some(soon));
    let error = engine.query("SELECT 1").await.unwrap_err();
    assert!(
        error.contains("left in this invocation (the query timeout is 30s)"),
        "{error}"
    );
    assert!(
        error.ends_with("the window stays due for the next run; it was stopped"),
        "{error}"
    );
    assert_eq!(lake.calls().last().map(String::as_str), Some("stop"));

    engine.set_deadline(Some(std::time::Instant::now() + DEADLINE_MARGIN));
    let error = engine.query("SELECT 1").await.unwrap_err();
    assert!(error.starts_with("no query started: "), "{error}");
    assert!(lake.calls().is_empty(), "nothing is sent");
}

#[tokio::test]
async fn the_state_object_refuses_a_writer_holding_a_stale_version() {
    let lake = Lake::start().await;
    let store = lake.state();
    assert_eq!(store.load("r").await.unwrap(), Stored::default());
    let mut state = RuleState {
        watermark: Some(at("2026-11-23T10:00:00Z")),
        ..RuleState::default()
    };
    let first = store.save("r", &state, None).await.unwrap();
    // A second writer that also saw no object.
    assert!(matches!(
        store.save("r", &state, None).await,
        Err(StateError::Conflict { .. })
    ));
    state.watermark = Some(at("2026-11-23T11:00:00Z"));
    let second = store.save("r", &state, Some(&first)).await.unwrap();
    assert_ne!(first, second);
    // A writer still holding the first version.
    let mut stale = state.clone();
    stale.watermark = Some(at("2026-11-23T12:00:00Z"));
    assert!(matches!(
        store.save("r", &stale, Some(&first)).await,
        Err(StateError::Conflict { .. })
    ));
    let loaded = store.load("r").await.unwrap();
    assert_eq!(loaded.state.watermark, Some(at("2026-11-23T11:00:00Z")));
    assert_eq!(loaded.version.as_deref(), Some(second.as_str()));
    assert_eq!(lake.keys(PREFIX).await, ["state/detector/r.json"]);
}

const IP_COLUMNS: [&str; 5] = ["ip", "event_count", "first_seen", "last_seen", "eventids"];

fn threshold_row<'a>(key: &'a str, count: &'a str, ids: &'a str) -> Vec<Option<&'a str>> {
    vec![
        Some(key),
        Some(count),
        Some("2026-11-23T09:41:00.000000Z"),
        Some("2026-11-23T09:49:00.000000Z"),
        Some(ids),
    ]
}

/// The columns of the query grouping the batched queries of rules due in a run
/// (`compile::grouped_union`): the part (rule) a row belongs to, then its columns in order,
/// the window's end first.
const GROUPED_COLUMNS: [&str; 7] = [
    "evaluated_part",
    "grouped_0",
    "grouped_1",
    "grouped_2",
    "grouped_3",
    "grouped_4",
    "grouped_5",
];

/// A row of the grouped query: part `part`'s [`threshold_row`] in the window ending 09:50.
fn grouped_row<'a>(part: &'a str, row: Vec<Option<&'a str>>) -> Vec<Option<&'a str>> {
    [Some(part), Some("2026-11-23T09:50:00.000000Z")]
        .into_iter()
        .chain(row)
        .collect()
}

#[tokio::test]
async fn a_scheduled_run_writes_publishes_and_saves_each_rules_watermark() {
    let lake = Lake::start().await;
    let (topic, queue_url) = lake.topic_with_queue().await;
    let rules = rules(&["brute-force-ip", "brute-force-user"]);
    // Both rules' windows are read with one grouped query, split back per rule.
    seed(
        &lake.server,
        &[(
            &GROUPED_COLUMNS,
            vec![
                grouped_row("0", threshold_row("203.0.113.60", "8", "e1,e2")),
                grouped_row("1", threshold_row("erin@example.com", "5", "e3")),
                grouped_row("1", threshold_row("frank@example.com", "6", "e4,e5")),
            ],
        )],
    );
    let engine = lake.engine(|_| {});
    let state = lake.state();
    let sink = S3AlertSink::new(lake.s3.clone(), lake.sns.clone(), BUCKET, Some(topic));
    // Lateness 5 minutes, interval 5 minutes: at 09:57 the window ending 09:50 is the latest due.
    let now = at("2026-11-23T09:57:00Z");
    let outcomes = run_scheduled(&rules, &engine, &state, &sink, now, 12).await;

    let window = Window::new(at("2026-11-23T09:35:00Z"), at("2026-11-23T09:50:00Z"));
    let summary: Vec<(&str, usize, usize, usize, usize)> = outcomes
        .iter()
        .map(|o: &RuleOutcome| {
            assert_eq!(o.report.error, None);
            assert_eq!(o.report.windows, [window]);
            (
                o.report.rule.as_str(),
                o.report.rows,
                o.report.alerts.len(),
                o.published,
                o.report.queries,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            // The grouped query is counted once, in its first rule's report.
            ("brute-force-ip", 1, 1, 1, 1),
            ("brute-force-user", 2, 2, 2, 0)
        ]
    );

    let mut written = Vec::new();
    for (rule, users) in [
        ("brute-force-ip", vec!["203.0.113.60"]),
        (
            "brute-force-user",
            vec!["erin@example.com", "frank@example.com"],
        ),
    ] {
        let key = alert_object_key(rule, window.start, window.end);
        assert!(
            key.starts_with("alerts/year=2026/month=11/day=23/hour=09/"),
            "{key}"
        );
        let lines = lake.alert_lines(&key).await;
        let keys: Vec<&str> = lines
            .iter()
            .map(|l| {
                assert_eq!(l["rule"], rule);
                assert_eq!(l["windowend"], "2026-11-23T09:50:00.000000Z");
                let column = if rule == "brute-force-ip" {
                    "ip"
                } else {
                    "user"
                };
                l["details"][column].as_str().unwrap()
            })
            .collect();
        assert_eq!(keys, users);
        written.extend(lines);
        let saved = state.load(rule).await.unwrap().state;
        assert_eq!(saved.watermark, Some(window.end));
        assert!(saved.unpublished.is_empty());
    }
    assert_eq!(lake.keys("alerts/").await.len(), 2);
    assert_eq!(
        written[1]["summary"],
        "5 failed logins for erin@example.com between 2026-11-23T09:41:00.000000Z and 2026-11-23T09:49:00.000000Z"
    );
    assert_eq!(written[2]["eventids"], json!(["e4", "e5"]));

    let mut published: Vec<Value> = lake
        .received(&queue_url)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    let id = |v: &Value| v["alertid"].as_str().unwrap().to_string();
    published.sort_by_key(id);
    written.sort_by_key(id);
    assert_eq!(published, written, "each written alert is published once");

    // The next run at the same time finds nothing due: no query, no new alert.
    let again = run_scheduled(&rules, &engine, &state, &sink, now, 12).await;
    assert!(
        again
            .iter()
            .all(|o| o.report.windows.is_empty() && o.report.queries == 0)
    );
    assert!(lake.received(&queue_url).await.is_empty());
}

/// The state as another detector run read it before this one saved: its loads return the
/// snapshot taken at creation, its saves go to S3.
struct OverlappingRun {
    store: S3StateStore,
    snapshot: BTreeMap<String, Stored>,
}

impl StateStore for OverlappingRun {
    async fn load(&self, rule: &str) -> Result<Stored, StateError> {
        Ok(self.snapshot.get(rule).cloned().unwrap_or_default())
    }

    async fn save(
        &self,
        rule: &str,
        state: &RuleState,
        expected: Option<&str>,
    ) -> Result<String, StateError> {
        self.store.save(rule, state, expected).await
    }
}

/// The columns of the query building several first-seen rules' baselines at once
/// (`compile::first_seen_bootstrap_sql`): the part (rule), its keys, the window's evidence and
/// the sightings before the window.
const BOOTSTRAP_COLUMNS: [&str; 9] = [
    "evaluated_part",
    "grouped_0",
    "grouped_1",
    "event_count",
    "first_seen",
    "last_seen",
    "eventids",
    "before_first",
    "before_last",
];

/// A first run of two first-seen rules builds both baselines with one Athena query, which reads
/// their history once; each rule decides with its own rows and saves its baseline in S3.
#[tokio::test]
async fn first_seen_rules_build_their_baselines_with_one_athena_query() {
    let lake = Lake::start().await;
    let rules = rules(&["new-country", "new-device"]);
    let (before_first, before_last) = (
        Some("2026-11-01T08:00:00.000000Z"),
        Some("2026-11-20T08:00:00.000000Z"),
    );
    let in_window = |ids| {
        [
            Some("1"),
            Some("2026-11-23T09:10:00.000000Z"),
            Some("2026-11-23T09:10:00.000000Z"),
            Some(ids),
        ]
    };
    let row =
        |part, key, value, window: [Option<&'static str>; 4], before: [Option<&'static str>; 2]| {
            [Some(part), Some(key), Some(value)]
                .into_iter()
                .chain(window)
                .chain(before)
                .collect::<Vec<_>>()
        };
    seed(
        &lake.server,
        &[(
            &BOOTSTRAP_COLUMNS,
            vec![
                // new-country: ann is known from DE since November 1; FR is new.
                row("0", "ann", "FR", in_window("e2"), [None, None]),
                row(
                    "0",
                    "ann",
                    "DE",
                    [Some("0"), None, None, None],
                    [before_first, before_last],
                ),
                // new-device: ann's device is known.
                row(
                    "1",
                    "ann",
                    "fp-1",
                    in_window("e2"),
                    [before_first, before_last],
                ),
            ],
        )],
    );
    let engine = lake.engine(|_| {});
    let state = lake.state();
    let sink = S3AlertSink::new(lake.s3.clone(), lake.sns.clone(), BUCKET, None);
    let now = at("2026-11-23T10:20:00Z");
    let outcomes = run_scheduled(&rules, &engine, &state, &sink, now, 12).await;

    let window = Window::new(at("2026-11-23T09:00:00Z"), at("2026-11-23T10:00:00Z"));
    let summary: Vec<(&str, usize, usize, usize)> = outcomes
        .iter()
        .map(|o| {
            assert_eq!(o.report.error, None);
            assert_eq!(o.report.windows, [window]);
            (
                o.report.rule.as_str(),
                o.report.queries,
                o.report.baselines_built.len(),
                o.report.alerts.len(),
            )
        })
        .collect();
    assert_eq!(summary, [("new-country", 1, 1, 1), ("new-device", 0, 1, 0)]);
    assert_eq!(outcomes[0].report.alerts[0].details["country"], "FR");
    let texts = lake.query_texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("GROUP BY GROUPING SETS ((part0_0, part0_1), (part1_0, part1_1))"),
        "{}",
        texts[0]
    );
    let baselines: Vec<String> = lake
        .keys(PREFIX)
        .await
        .into_iter()
        .filter(|key| key.starts_with("state/detector/baselines/"))
        .collect();
    assert_eq!(
        baselines,
        [
            "state/detector/baselines/new-country.json.gz",
            "state/detector/baselines/new-device.json.gz"
        ]
    );
}

#[tokio::test]
async fn an_overlapping_run_with_a_stale_version_is_refused_and_leaves_the_watermark() {
    let lake = Lake::start().await;
    let rules = rules(&["brute-force-user"]);
    let state = lake.state();
    let sink = S3AlertSink::new(lake.s3.clone(), lake.sns.clone(), BUCKET, None);
    let engine = lake.engine(|_| {});
    let first_run = at("2026-11-23T09:57:00Z");
    run_scheduled(&rules, &engine, &state, &sink, first_run, 12).await;
    let before = state.load("brute-force-user").await.unwrap();
    assert_eq!(before.state.watermark, Some(at("2026-11-23T09:50:00Z")));
    let overlapping = OverlappingRun {
        store: lake.state(),
        snapshot: BTreeMap::from([("brute-force-user".to_string(), before.clone())]),
    };

    // This run moves the watermark on to 10:05 …
    let later = at("2026-11-23T10:12:00Z");
    let outcome = &run_scheduled(&rules, &engine, &state, &sink, later, 12).await[0];
    assert_eq!(
        (outcome.report.error.as_ref(), outcome.report.windows.len()),
        (None, 3)
    );
    let moved = state.load("brute-force-user").await.unwrap();
    assert_eq!(moved.state.watermark, Some(at("2026-11-23T10:05:00Z")));

    // … while an overlapping one, which read the state before, tries to save its first window.
    let outcome = &run_scheduled(&rules, &engine, &overlapping, &sink, later, 12).await[0];
    let error = outcome.report.error.as_deref().unwrap();
    assert!(error.contains("changed since it was read"), "{error}");
    assert_eq!(
        outcome.report.windows.len(),
        1,
        "it stops at its first save"
    );
    assert_eq!(state.load("brute-force-user").await.unwrap(), moved);
}

#[tokio::test]
async fn a_rule_with_malformed_results_fails_alone_and_the_others_complete() {
    let lake = Lake::start().await;
    let rules = rules(&["brute-force-ip", "brute-force-user", "oom-kills"]);
    seed(
        &lake.server,
        &[
            // The rules' grouped query fails (malformed): each rule then reads its own window.
            (&["user"], vec![vec![Some("erin@example.com"), Some("5")]]),
            (&IP_COLUMNS, vec![threshold_row("203.0.113.60", "8", "e1")]),
            // Two values in a row of a one-column result.
            (&["user"], vec![vec![Some("erin@example.com"), Some("5")]]),
            (
                &[
                    "hostname",
                    "event_count",
                    "first_seen",
                    "last_seen",
                    "eventids",
                ],
                vec![threshold_row("db-1", "3", "e9")],
            ),
        ],
    );
    let engine = lake.engine(|_| {});
    let state = lake.state();
    // No topic configured: publishing is a no-op and nothing counts as published.
    let sink = S3AlertSink::new(lake.s3.clone(), lake.sns.clone(), BUCKET, None);
    let now = at("2026-11-23T09:57:00Z");
    let outcomes = run_scheduled(&rules, &engine, &state, &sink, now, 12).await;

    let failed: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.report.rule.as_str(), o.failed()))
        .collect();
    assert_eq!(
        failed,
        [
            ("brute-force-ip", false),
            ("brute-force-user", true),
            ("oom-kills", false)
        ]
    );
    let error = outcomes[1].report.error.as_deref().unwrap();
    assert!(
        error.contains("page 1 row 1: 2 values for 1 columns (user); the results are malformed"),
        "{error}"
    );
    // The watermark stays; the state counts the failed run (three in a row set the window aside).
    let failed_state = state.load("brute-force-user").await.unwrap().state;
    assert_eq!(failed_state.watermark, None);
    assert_eq!(failed_state.failing.map(|f| f.attempts), Some(1));
    for outcome in [&outcomes[0], &outcomes[2]] {
        assert_eq!((outcome.report.alerts.len(), outcome.published), (1, 0));
        let window = outcome.report.windows[0];
        let lines = lake
            .alert_lines(&alert_object_key(
                &outcome.report.rule,
                window.start,
                window.end,
            ))
            .await;
        assert_eq!(lines.len(), 1);
        assert_eq!(
            state
                .load(&outcome.report.rule)
                .await
                .unwrap()
                .state
                .watermark,
            Some(window.end)
        );
    }
    assert_eq!(lake.keys("alerts/").await.len(), 2);
}

/// A webhook and the alerts topic as destinations, the outbox in the state prefix of the lake
/// bucket: a handover repeated after a failed state save adds nothing, an outage of the webhook
/// is retried by the next pass, and each alert reaches each destination once.
#[tokio::test]
async fn the_outbox_in_s3_delivers_each_alert_once_to_a_webhook_and_the_topic() {
    let lake = Lake::start().await;
    let (topic, queue_url) = lake.topic_with_queue().await;
    let receiver = Receiver::start().await.unwrap();
    let file = format!(
        "[[destination]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[destination]]\nname = \"topic\"\nkind = \"sns\"\ntopic_arn = \"{topic}\"\n",
        receiver.url("/hook")
    );
    let destinations = DestinationsFile::parse("destinations.toml", &file)
        .unwrap()
        .resolve(&EnvSecrets(|_: &str| None))
        .await
        .unwrap();
    let sink = S3AlertSink::with_destinations(
        lake.s3.clone(),
        lake.sns.clone(),
        BUCKET,
        lake.state(),
        destinations,
    );
    let rule = &rules(&["brute-force-user"])[0];
    let window = Window::new(at("2026-11-23T09:35:00Z"), at("2026-11-23T09:50:00Z"));
    let alerts: Vec<UnpublishedAlert> = ["erin@example.com", "frank@example.com"]
        .iter()
        .map(|user| {
            let row = BTreeMap::from([
                ("user".to_string(), Some(user.to_string())),
                ("event_count".to_string(), Some("5".to_string())),
            ]);
            UnpublishedAlert::of(&Alert::from_row(rule, window, &row))
        })
        .collect();
    let now = at("2026-11-23T09:57:00Z");
    sink.delivery().hand_over(rule, &alerts, now).await.unwrap();
    // The run that handed them over could not save its state: the next hands them over again.
    sink.delivery().hand_over(rule, &alerts, now).await.unwrap();
    assert_eq!(
        lake.keys(&format!("{PREFIX}outbox/")).await,
        [format!("{PREFIX}{OUTBOX_DOCUMENT}")]
    );

    receiver.answer(Answer::Status(502)).await;
    let first = sink.delivery().deliver(now).await;
    assert_eq!(first.error, None);
    assert_eq!(
        (
            first.destinations["hook"].retried,
            first.destinations["topic"].delivered
        ),
        (2, 2)
    );
    receiver.answer(Answer::Accept).await;
    let second = sink
        .delivery()
        .deliver(now + chrono::TimeDelta::minutes(5))
        .await;
    assert_eq!(second.destinations["hook"].delivered, 2);
    assert_eq!(
        second
            .destinations
            .values()
            .map(|c| c.pending)
            .sum::<usize>(),
        0
    );
    // Nothing is due any more.
    let third = sink
        .delivery()
        .deliver(now + chrono::TimeDelta::minutes(10))
        .await;
    assert_eq!(
        third
            .destinations
            .values()
            .map(|c| c.delivered + c.retried)
            .sum::<usize>(),
        0
    );

    let accepted: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["alert"]["alertid"].as_str().unwrap().to_string())
        .collect();
    let mut published: Vec<String> = lake
        .received(&queue_url)
        .await
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["alertid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    published.sort();
    let mut ids: Vec<String> = alerts
        .iter()
        .map(|a| {
            serde_json::from_str::<Value>(&a.line).unwrap()["alertid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let mut accepted_sorted = accepted.clone();
    accepted_sorted.sort();
    assert_eq!(accepted_sorted, ids);
    assert_eq!(published, ids);
}

/// Destination secrets as Secrets Manager ARNs, resolved at start through the SDK; a missing
/// secret is an error naming it and the permission to check, never showing a value.
#[tokio::test]
async fn destination_secrets_are_read_from_secrets_manager() {
    let lake = Lake::start().await;
    let config = lake.server.sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let created = client
        .create_secret()
        .name("lakewatch/pagerduty")
        .secret_string("R0UTINGKEY")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    let settings = |file: String| DetectorSettings {
        bucket: BUCKET.into(),
        database: DATABASE.into(),
        workgroup: WORKGROUP.into(),
        state_prefix: PREFIX.into(),
        extract_table: "events_extract".into(),
        topic_arn: None,
        destinations: Some(file),
        max_windows: 12,
        query_timeout: Duration::from_secs(30),
    };
    let file = |key: &str| {
        format!("[[destination]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"{key}\"\n")
    };
    let secrets = AwsSecrets(client);
    let resolved = detector::destinations(&settings(file(&arn)), &secrets)
        .await
        .unwrap();
    match &resolved.get("pd").unwrap().target {
        Target::PagerDuty { routing_key, .. } => assert_eq!(routing_key.expose(), "R0UTINGKEY"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{resolved:?}").contains("R0UTINGKEY"));

    let missing = arn.replace("pagerduty", "nothing-here");
    let error = detector::destinations(&settings(file(&missing)), &secrets)
        .await
        .unwrap_err();
    assert!(
        error.starts_with("LAKEWATCH_DESTINATIONS:1: destination \"pd\": "),
        "{error}"
    );
    assert!(
        error.contains(&missing) && error.contains("secretsmanager:GetSecretValue"),
        "{error}"
    );
}
