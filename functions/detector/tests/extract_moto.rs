//! The detector's extract pass in the lake bucket, against moto through the real AWS SDK: a
//! Firehose record filed under its first event's hour (07:58) whose other events are 09:0x is
//! extracted into the 07 and 09 hours of the extract, once; a second pass reads nothing; a pass
//! that read the arrivals document before another one saved it loses the compare-and-swap and
//! leaves the extract as it was. And the rules' queries name the extract table and the
//! partitions of their window (moto runs no SQL, so the query text is what can be checked).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use detector::{DetectorEngine, S3AlertSink};
use lakewatch_aws::athena::{AthenaEngine, AthenaSettings};
use lakewatch_aws::cloudwatch::CloudWatchCounts;
use lakewatch_aws::s3_lake::S3Lake;
use lakewatch_aws::s3_state::S3Store;
use lakewatch_detect::arrivals::{ARRIVALS_DOCUMENT, Arrivals};
use lakewatch_detect::extract::{ExtractError, ExtractReport, extract_new};
use lakewatch_detect::{load_rules, run_scheduled};
use lakewatch_lake::layout::{ExtractFormat, extract_object_key, gzip_lines};
use lakewatch_lake::partitions::Slice;
use lakewatch_lake::versioned::{Versioned, VersionedStore, WriteError};
use lakewatch_testkit::moto::MotoServer;

const BUCKET: &str = "lake";
const PREFIX: &str = "state/detector/";
const WORKGROUP: &str = "detector";
/// Where the transform files a record whose first event is at 07:58.
const SOURCE: &str =
    "events/year=2026/month=11/day=20/hour=07/lakewatch-events-1-2026-11-20-09-06-00-a1.json.gz";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A failed G Suite login of erin as the shell stores it.
fn failure(time: &str, id: &str) -> String {
    serde_json::json!({
        "utctimestamp": time, "eventid": id, "source": "gsuite", "category": "authentication",
        "details": { "auth": { "user": "erin@example.com", "outcome": "failure" } },
    })
    .to_string()
}

/// The record: one event at 07:58, then the five failures of
/// `rules/tests/brute-force-user-positive.ndjson` (09:00:30 to 09:04:30).
fn record() -> Vec<String> {
    let mut lines = vec![failure("2026-11-20T07:58:00.000000Z", "early")];
    lines.extend(
        (0..5).map(|m| failure(&format!("2026-11-20T09:0{m}:30.000000Z"), &format!("f{m}"))),
    );
    lines
}

async fn lake() -> (MotoServer, aws_sdk_s3::Client) {
    let server = MotoServer::start();
    let s3 = lakewatch_aws::config::s3_client(&server.sdk_config().await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    (server, s3)
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, lines: &[String]) -> u64 {
    let bytes = gzip_lines(lines);
    let size = bytes.len() as u64;
    lakewatch_aws::s3::put(s3, BUCKET, key, "application/gzip", bytes)
        .await
        .unwrap();
    size
}

/// Every extract object's lines, by key.
async fn extract(s3: &aws_sdk_s3::Client) -> BTreeMap<String, Vec<String>> {
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("extract/")
        .send()
        .await
        .unwrap();
    let mut objects = BTreeMap::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        let bytes = lakewatch_aws::s3::get_if_exists(s3, BUCKET, key)
            .await
            .unwrap()
            .unwrap();
        assert!(key.ends_with(".json.zst"), "the extract is zstd: {key}");
        let text = String::from_utf8(zstd::stream::decode_all(&bytes[..]).unwrap()).unwrap();
        objects.insert(key.to_string(), text.lines().map(String::from).collect());
    }
    objects
}

fn slice(text: &str) -> Slice {
    Slice::containing(at(text))
}

/// The state store as a run that read the arrivals document before another run saved it.
struct StaleRead {
    store: S3Store,
    arrivals: Option<Versioned>,
}

impl VersionedStore for StaleRead {
    fn location(&self, name: &str) -> String {
        self.store.location(name)
    }

    async fn read(&self, name: &str) -> Result<Option<Versioned>, String> {
        if name == ARRIVALS_DOCUMENT {
            return Ok(self.arrivals.clone());
        }
        self.store.read(name).await
    }

    async fn write(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        self.store.write(name, bytes, expected).await
    }
}

async fn arrivals(state: &S3Store) -> Arrivals {
    let read = state.read(ARRIVALS_DOCUMENT).await.unwrap().unwrap();
    serde_json::from_slice(&read.bytes).unwrap()
}

#[tokio::test]
async fn a_record_spanning_hours_is_extracted_into_each_events_hour_once() {
    let (_server, s3) = lake().await;
    let size = put(&s3, SOURCE, &record()).await;
    let lake = S3Lake::new(s3.clone(), BUCKET);
    let state = S3Store::new(s3.clone(), BUCKET, PREFIX);

    let first = extract_new(&lake, &state, at("2026-11-20T09:10:00Z"), None)
        .await
        .unwrap();
    assert_eq!(
        (first.objects, first.bytes_read, first.events),
        (1, size, 6)
    );
    assert_eq!(
        (
            first.outside_partition,
            first.untimed,
            first.unreadable,
            first.written
        ),
        (5, 0, 0, 2)
    );
    let lines = record();
    let expected = BTreeMap::from([
        (
            extract_object_key(
                SOURCE,
                slice("2026-11-20T07:58:00Z"),
                0,
                ExtractFormat::Zstd,
            ),
            lines[..1].to_vec(),
        ),
        (
            extract_object_key(
                SOURCE,
                slice("2026-11-20T09:00:00Z"),
                0,
                ExtractFormat::Zstd,
            ),
            lines[1..].to_vec(),
        ),
    ]);
    assert_eq!(extract(&s3).await, expected);
    assert!(
        expected
            .keys()
            .all(|k| k.starts_with("extract/events/year=2026/month=11/day=20/hour=")),
        "{expected:?}"
    );
    let recorded = arrivals(&state).await;
    assert_eq!(recorded.latest(), 1);
    assert_eq!(recorded.objects.len(), 1);
    assert_eq!(recorded.passes[0].minutes.len(), 6);

    // Nothing new: nothing read, nothing written, the document untouched.
    let second = extract_new(&lake, &state, at("2026-11-20T09:15:00Z"), None)
        .await
        .unwrap();
    assert_eq!(second, ExtractReport::default());
    assert_eq!(arrivals(&state).await, recorded);

    // A new object, and two runs that read the document before either saved it.
    let late = "events/year=2026/month=11/day=20/hour=09/lakewatch-events-1-2026-11-20-09-20-00-b2.json.gz";
    put(&s3, late, &[failure("2026-11-20T08:59:00.000000Z", "late")]).await;
    let stale = StaleRead {
        store: state.clone(),
        arrivals: state.read(ARRIVALS_DOCUMENT).await.unwrap(),
    };
    let won = extract_new(&lake, &state, at("2026-11-20T09:20:00Z"), None)
        .await
        .unwrap();
    assert_eq!((won.objects, won.events, won.outside_partition), (1, 1, 1));
    let after_winner = extract(&s3).await;
    assert_eq!(after_winner.len(), 3);
    let lost = extract_new(&lake, &stale, at("2026-11-20T09:20:00Z"), None)
        .await
        .unwrap_err();
    assert!(matches!(lost, ExtractError::Conflict { .. }), "{lost}");
    assert!(
        lost.to_string()
            .contains("s3://lake/state/detector/_arrivals.json"),
        "{lost}"
    );
    // The loser wrote the same keys with the same lines: no event twice.
    assert_eq!(extract(&s3).await, after_winner);
    let saved = arrivals(&state).await;
    assert_eq!(saved.latest(), 2, "only the winner's pass is recorded");
    assert_eq!(saved.objects.len(), 2);
}

#[tokio::test]
async fn rules_query_the_extract_table_over_their_windows_partitions() {
    let (server, s3) = lake().await;
    let config = server.sdk_config().await;
    let athena = aws_sdk_athena::Client::new(&config);
    athena
        .create_work_group()
        .name(WORKGROUP)
        .send()
        .await
        .unwrap();
    let mut settings = AthenaSettings::new(WORKGROUP, "lakewatch", Duration::from_secs(30));
    settings.first_poll = Duration::from_millis(5);
    let engine = DetectorEngine {
        athena: AthenaEngine::new(athena.clone(), settings),
        counts: CloudWatchCounts::new(aws_sdk_cloudwatch::Client::new(&config)),
        extract_table: "events_extract".into(),
    };
    let rules: Vec<_> =
        load_rules(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"))
            .unwrap()
            .into_iter()
            .filter(|r| r.id == "brute-force-user")
            .collect();
    let state = S3Store::new(s3.clone(), BUCKET, PREFIX);
    let sink = S3AlertSink::new(s3, aws_sdk_sns::Client::new(&config), BUCKET, None);
    // At 09:40 (lateness 5 minutes) the latest due window is 09:20-09:35.
    let outcomes = run_scheduled(
        &rules,
        &engine,
        &state,
        &sink,
        at("2026-11-20T09:40:00Z"),
        12,
    )
    .await;
    assert_eq!(outcomes[0].report.error, None);
    assert_eq!(outcomes[0].report.queries, 1);

    let ids = athena
        .list_query_executions()
        .work_group(WORKGROUP)
        .send()
        .await
        .unwrap()
        .query_execution_ids()
        .to_vec();
    assert_eq!(ids.len(), 1);
    let execution = athena
        .get_query_execution()
        .query_execution_id(&ids[0])
        .send()
        .await
        .unwrap();
    let sql = execution.query_execution().unwrap().query().unwrap();
    assert!(
        sql.starts_with("WITH events AS (SELECT * FROM events_extract) SELECT"),
        "{sql}"
    );
    assert!(
        sql.contains(
            "(year = '2026' AND month = '11' AND day = '20' AND hour = '09' AND minute >= '15' \
             AND minute <= '30')"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("utctimestamp >= '2026-11-20T09:20:00.000000Z'")
            && sql.contains("utctimestamp < '2026-11-20T09:35:00.000000Z'"),
        "{sql}"
    );
}
