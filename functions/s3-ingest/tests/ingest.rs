//! The S3-ingest function end to end, through the real AWS SDK for Rust: S3 and Firehose
//! (DirectPut to S3) on a moto server, and a fake Firehose that refuses entries and throttles
//! calls for the failure paths.
//!
//! The oracle for "every record, exactly once" is the object itself: each test frames the
//! objects it uploaded with the framing library and checks that every record is found back in
//! Firehose's destination (by key and byte offset, with its text unchanged) or in the error
//! location, and none twice. Hand-counted totals keep the oracle honest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use aws_config::SdkConfig;
use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use lakewatch_aws::firehose::{FirehoseSender, RetryPolicy};
use lakewatch_plugins::envelope::{self, ENVELOPE_PREFIX, Provenance};
use lakewatch_plugins::framing::frame_bytes;
use lakewatch_plugins::{Outcome, PluginConfig, builtin_pipeline};
use lakewatch_testkit::fake_firehose::{FakeFirehose, FakeFirehoseConfig};
use lakewatch_testkit::moto::MotoServer;
use s3_ingest::{Function, Settings};
use serde_json::{Value, json};

const INPUT: &str = "input";
const LAKE: &str = "lake";
const DESTINATION: &str = "firehose-destination";
const STREAM: &str = "events";
const STORE: &str = "remote-store";

const FAST: RetryPolicy = RetryPolicy {
    attempts: 40,
    base_delay: std::time::Duration::from_micros(200),
    max_delay: std::time::Duration::from_millis(2),
};

/// A moto server with the input, lake and destination buckets and a DirectPut stream to S3.
struct Aws {
    _moto: MotoServer,
    sdk: SdkConfig,
    s3: aws_sdk_s3::Client,
}

async fn aws() -> Aws {
    let moto = MotoServer::start();
    let sdk = moto.sdk_config().await;
    let s3 = lakewatch_aws::config::s3_client(&sdk);
    for bucket in [INPUT, LAKE, DESTINATION, STORE] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    aws_sdk_firehose::Client::new(&sdk)
        .create_delivery_stream()
        .delivery_stream_name(STREAM)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(
            ExtendedS3DestinationConfiguration::builder()
                .bucket_arn(format!("arn:aws:s3:::{DESTINATION}"))
                .role_arn("arn:aws:iam::123456789012:role/firehose")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    Aws {
        _moto: moto,
        sdk,
        s3,
    }
}

fn settings() -> Settings {
    Settings::from_env(|name| match name {
        "LAKEWATCH_FIREHOSE_STREAM" => Some(STREAM.into()),
        "LAKEWATCH_ERROR_BUCKET" => Some(LAKE.into()),
        _ => None,
    })
    .unwrap()
}

/// The function against moto; Firehose too, unless a fake is given.
async fn function(aws: &Aws, fake: Option<&FakeFirehose>, retry: RetryPolicy) -> Function {
    let mut function = Function::new(settings(), aws.sdk.clone());
    function.ingester.firehose = match fake {
        None => FirehoseSender::new(lakewatch_aws::firehose::client(&aws.sdk), STREAM, retry),
        Some(fake) => {
            let fake_sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(fake.endpoint_url())
                .test_credentials()
                .load()
                .await;
            FirehoseSender::new(lakewatch_aws::firehose::client(&fake_sdk), STREAM, retry)
        }
    };
    function
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let output = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            keys.push(object.key().unwrap().to_string());
        }
    }
    keys
}

/// Splits concatenated envelopes (moto's DirectPut writes a batch's records back to back).
fn split_envelopes(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = data
        .windows(ENVELOPE_PREFIX.len())
        .enumerate()
        .filter(|(_, w)| *w == ENVELOPE_PREFIX)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        starts.first(),
        (!data.is_empty()).then_some(&0),
        "data before an envelope"
    );
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

/// Every record Firehose delivered to the destination bucket.
async fn delivered_by_moto(aws: &Aws) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for key in keys(&aws.s3, DESTINATION, "").await {
        records.extend(split_envelopes(&get(&aws.s3, DESTINATION, &key).await));
    }
    records
}

/// A record by where it came from: (key, byte offset).
type Place = (String, u64);

/// Delivered records by place, with their text; panics on a record delivered twice.
fn by_place(delivered: &[Vec<u8>]) -> BTreeMap<Place, String> {
    let mut places = BTreeMap::new();
    for data in delivered {
        let record = envelope::unwrap(data)
            .expect("an envelope")
            .expect("a valid envelope");
        let place = (record.provenance.key.clone(), record.offset);
        let previous = places.insert(place.clone(), record.text.to_string());
        assert!(previous.is_none(), "{place:?} delivered twice");
    }
    places
}

/// The error location's lines.
async fn error_lines(aws: &Aws) -> Vec<Value> {
    let mut lines = Vec::new();
    for key in keys(&aws.s3, LAKE, "errors/s3-ingest/").await {
        let body = get(&aws.s3, LAKE, &key).await;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_slice(line).unwrap());
        }
    }
    lines
}

/// What framing the uploaded objects gives: records (place → text) and failed places.
fn expected(objects: &[(&str, Vec<u8>)]) -> (BTreeMap<Place, String>, BTreeSet<Place>) {
    let mut records = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for (key, body) in objects {
        for item in frame_bytes(body) {
            match item {
                Ok(record) => {
                    records.insert((key.to_string(), record.offset), record.text);
                }
                Err(error) => {
                    failed.insert((key.to_string(), error.offset));
                }
            }
        }
    }
    (records, failed)
}

fn s3_event(keys_encoded: &[&str]) -> Value {
    let records: Vec<Value> = keys_encoded
        .iter()
        .map(|key| {
            json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": INPUT}, "object": {"key": key}}})
        })
        .collect();
    json!({ "Records": records })
}

/// The objects of the framing test: every framing, gzip and plain, and the awkward cases.
fn framing_objects() -> Vec<(&'static str, Vec<u8>)> {
    let big: String = (0..1234)
        .map(|i| format!("{{\"n\":{i},\"source\":\"mine\"}}\n"))
        .collect();
    let truncated = gzip(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n");
    let oversize = format!(
        "{{\"big\":\"{}\"}}\n{{\"small\":1}}\n",
        "x".repeat(1_100 * 1024)
    );
    vec![
        ("ndjson/a.ndjson", b"{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}\n".to_vec()),
        ("array/b.json", b"[{\"b\":1},\n {\"b\":2}]".to_vec()),
        (
            "cloudtrail/c.json.gz",
            gzip(br#"{"Records":[{"eventName":"ConsoleLogin"},{"eventName":"GetObject"},{"eventName":"PutObject"}]}"#),
        ),
        ("pretty/d.json", b"{\n  \"d\": 1,\n  \"e\": [1, 2]\n}\n{\n  \"d\": 2\n}\n".to_vec()),
        (
            "raw/syslog.log",
            gzip(b"<34>Oct 11 22:14:15 host su: 'su root' failed\nplain line two\n\nline three\nline four\n"),
        ),
        ("weird key/e+f%.ndjson", b"{\"k\":1}\n{\"k\":2}\n".to_vec()),
        ("empty.json", Vec::new()),
        ("truncated.json.gz", truncated[..truncated.len() - 12].to_vec()),
        ("middle/invalid.ndjson", b"{\"ok\":1}\n{\"broken\": \n{\"ok\":3}\n".to_vec()),
        ("big/oversize.ndjson", oversize.into_bytes()),
        ("big/many.ndjson.gz", gzip(big.as_bytes())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_every_framing_reaches_firehose_or_the_error_location_once() {
    let aws = aws().await;
    let objects = framing_objects();
    for (key, body) in &objects {
        put(&aws.s3, INPUT, key, body.clone()).await;
    }
    let function = function(&aws, None, FAST).await;
    // Keys as S3 notifications carry them: a space is `+`, a `+` is `%2B`, a `%` is `%25`.
    let encoded: Vec<String> = objects
        .iter()
        .map(|(key, _)| {
            key.replace('%', "%25")
                .replace('+', "%2B")
                .replace(' ', "+")
        })
        .collect();
    let (plain, via_queues) = encoded.split_at(6);
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let mut responses = vec![handle(&function, &s3_event(&plain)).await];
    // The rest arrive through SQS (one message each) and EventBridge.
    let (sqs, eventbridge) = via_queues.split_at(via_queues.len() - 1);
    let messages: Vec<Value> = sqs
        .iter()
        .map(|key| json!({"eventSource": "aws:sqs", "body": s3_event(&[key]).to_string()}))
        .collect();
    responses.push(handle(&function, &json!({"Records": messages})).await);
    responses.push(
        handle(
            &function,
            &json!({"source": "aws.s3", "detail-type": "Object Created",
                    "detail": {"bucket": {"name": INPUT}, "object": {"key": eventbridge[0]}}}),
        )
        .await,
    );

    let (expected_records, expected_failed) = expected(&objects);
    let delivered = by_place(&delivered_by_moto(&aws).await);
    let errors = error_lines(&aws).await;
    let failed: BTreeSet<Place> = errors
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(failed.len(), errors.len(), "an error written twice");

    // Hand counts: 3 + 2 + 3 + 2 + 4 + 2 + 0 + (≥1 before the cut) + 2 + 1 + 1234 records, and
    // errors for the cut gzip, the broken line and the oversize record.
    let oversize: BTreeSet<Place> = [("big/oversize.ndjson".to_string(), 0)].into();
    assert_eq!(expected_failed.len(), 2);
    assert!(expected_records.len() >= 3 + 2 + 3 + 2 + 4 + 2 + 1 + 2 + 2 + 1234);
    let mut expected_sent = expected_records.clone();
    expected_sent.remove(&("big/oversize.ndjson".to_string(), 0));
    assert_eq!(
        delivered, expected_sent,
        "delivered records differ from the objects' records"
    );
    let all_failed: BTreeSet<Place> = expected_failed.union(&oversize).cloned().collect();
    assert_eq!(failed, all_failed);

    let oversize_line = errors.iter().find(|e| e["error"] == "oversize").unwrap();
    assert!(
        oversize_line["reason"]
            .as_str()
            .unwrap()
            .contains("over Firehose's limit")
    );
    assert_eq!(
        oversize_line["record"].as_str().unwrap().len(),
        1_100 * 1024 + 10
    );
    let broken = errors
        .iter()
        .find(|e| e["key"] == "middle/invalid.ndjson")
        .unwrap();
    assert_eq!(broken["line"], 2);
    assert_eq!(broken["bucket"], INPUT);
    assert!(
        broken["excerpt"]
            .as_str()
            .unwrap()
            .starts_with("{\"broken\"")
    );
    let cut = errors
        .iter()
        .find(|e| e["key"] == "truncated.json.gz")
        .unwrap();
    assert!(!cut["reason"].as_str().unwrap().is_empty());

    // Counts add up in the responses: read = sent + failed_to_frame + oversize.
    let total = |field: &str| {
        responses
            .iter()
            .map(|r| r["records"][field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total("sent"), delivered.len() as u64);
    assert_eq!(total("failed_to_frame"), 2);
    assert_eq!(total("oversize"), 1);
    assert_eq!(
        total("read"),
        total("sent") + total("failed_to_frame") + total("oversize")
    );
    assert_eq!(
        responses
            .iter()
            .map(|r| r["objects"].as_u64().unwrap())
            .sum::<u64>(),
        11
    );

    // The key with a space, a plus and a percent was read under its real name.
    assert_eq!(
        delivered[&("weird key/e+f%.ndjson".to_string(), 0)],
        "{\"k\":1}"
    );
}

async fn handle(function: &Function, event: &Value) -> Value {
    s3_ingest::handle(function, event, Utc::now(), None)
        .await
        .unwrap_or_else(|error| panic!("invocation failed: {error}"))
}

/// Event ids of delivered records, as the transform Lambda computes them.
fn eventids(delivered: &[Vec<u8>]) -> Vec<String> {
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    delivered
        .iter()
        .map(|data| {
            let record = envelope::unwrap(data).unwrap().unwrap();
            match pipeline.process(record.record(), Utc::now()) {
                Outcome::Ok(event) => event.eventid,
                other => panic!("the pipeline did not take {:?}: {other:?}", record.text),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingesting_an_object_again_gives_the_same_eventids() {
    let aws = aws().await;
    put(
        &aws.s3,
        INPUT,
        "again.ndjson",
        b"{\"x\":1}\n{\"x\":1}\nsame line\n".to_vec(),
    )
    .await;
    let function = function(&aws, None, FAST).await;
    handle(&function, &s3_event(&["again.ndjson"])).await;
    let first = eventids(&delivered_by_moto(&aws).await);
    for key in keys(&aws.s3, DESTINATION, "").await {
        aws.s3
            .delete_object()
            .bucket(DESTINATION)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    handle(&function, &s3_event(&["again.ndjson"])).await;
    let second = eventids(&delivered_by_moto(&aws).await);
    assert_eq!(first.len(), 3);
    // Two identical records at different places get different ids…
    assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), 3);
    // …and the same object ingested again gives the same ones.
    assert_eq!(
        first.into_iter().collect::<BTreeSet<_>>(),
        second.into_iter().collect::<BTreeSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_entries_and_throttled_calls_still_deliver_every_record_exactly_once() {
    let aws = aws().await;
    let fake = FakeFirehose::start(FakeFirehoseConfig {
        refuse_share: 0.3,
        throttle_share: 0.2,
        seed: 11,
        ..Default::default()
    })
    .unwrap();
    let body: String = (0..2500).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let objects = vec![("many.ndjson", gzip(body.as_bytes()))];
    put(&aws.s3, INPUT, "many.ndjson", objects[0].1.clone()).await;
    let function = function(&aws, Some(&fake), FAST).await;
    let response = handle(&function, &s3_event(&["many.ndjson"])).await;
    assert_eq!(response["records"]["sent"], 2500);
    let delivered = by_place(&fake.accepted());
    assert_eq!(delivered, expected(&objects).0);
    let stats = fake.stats();
    assert!(
        stats.refused_entries > 100 && stats.throttled_requests > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_firehose_never_accepts_fail_the_invocation_by_position() {
    let aws = aws().await;
    let fake = FakeFirehose::start(FakeFirehoseConfig {
        always_refuse: Some(b"poison".to_vec()),
        refuse_share: 0.2,
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    let mut body = String::new();
    for i in 0..600 {
        if i == 321 {
            body.push_str("{\"poison\":true}\n");
        } else {
            body.push_str(&format!("{{\"i\":{i}}}\n"));
        }
    }
    put(&aws.s3, INPUT, "p.ndjson", body.clone().into_bytes()).await;
    let function = function(
        &aws,
        Some(&fake),
        RetryPolicy {
            attempts: 5,
            ..FAST
        },
    )
    .await;
    let error = s3_ingest::handle(&function, &s3_event(&["p.ndjson"]), Utc::now(), None)
        .await
        .unwrap_err()
        .to_string();
    let offset = body.find("{\"poison\"").unwrap();
    assert!(
        error.contains("1 of 1 object(s) not completely ingested"),
        "{error}"
    );
    assert!(
        error.contains(&format!("not sent: #321 (line 322, byte {offset})")),
        "{error}"
    );
    assert!(error.contains("s3://input/p.ndjson"), "{error}");
    // Every other record was accepted exactly once.
    let delivered = by_place(&fake.accepted());
    assert_eq!(delivered.len(), 599);
    assert!(!delivered.contains_key(&("p.ndjson".to_string(), offset as u64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_error_objects_are_not_ingested_again() {
    let aws = aws().await;
    put(
        &aws.s3,
        LAKE,
        "errors/s3-ingest/x/part-00000.ndjson",
        b"{}\n".to_vec(),
    )
    .await;
    let function = function(&aws, None, FAST).await;
    let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": LAKE}, "object": {"key": "errors/s3-ingest/x/part-00000.ndjson"}}}]});
    let response = handle(&function, &event).await;
    assert_eq!(response["records"]["read"], 0);
    assert!(delivered_by_moto(&aws).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_fails_alone_and_sqs_gets_back_only_the_failed_messages() {
    let aws = aws().await;
    put(&aws.s3, INPUT, "good.ndjson", b"{\"g\":1}\n".to_vec()).await;
    put(
        &aws.s3,
        INPUT,
        "poison.ndjson",
        b"{\"poison\":1}\n".to_vec(),
    )
    .await;
    let fake = FakeFirehose::start(FakeFirehoseConfig {
        always_refuse: Some(b"poison".to_vec()),
        ..Default::default()
    })
    .unwrap();
    let retry = RetryPolicy {
        attempts: 2,
        ..FAST
    };
    let function = function(&aws, Some(&fake), retry).await;
    let message = |id: &str, key: &str| json!({"eventSource": "aws:sqs", "messageId": id, "body": s3_event(&[key]).to_string()});
    // A key that does not decode, an object deleted since, one Firehose refuses, a good one.
    let batch = json!({"Records": [
        message("bad-key", "bad%FF"),
        message("deleted", "deleted.ndjson"),
        message("refused", "poison.ndjson"),
        message("good", "good.ndjson"),
    ]});
    let response = handle(&function, &batch).await;
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "bad-key"}, {"itemIdentifier": "refused"}])
    );
    assert_eq!(response["gone"], json!(["s3://input/deleted.ndjson"]));
    assert_eq!(response["records"]["sent"], 1);
    assert_eq!(
        delivered_keys(&fake.accepted()),
        [("good.ndjson".to_string(), 1)].into()
    );

    // Straight from S3: the bad key and the deleted object are reported, the rest is sent, and
    // the invocation succeeds, so no retry sends the good object again.
    let direct = s3_event(&["bad%FF", "deleted.ndjson", "good.ndjson"]);
    let response = handle(&function, &direct).await;
    assert_eq!(response["objects"], 1);
    assert_eq!(response["gone"], json!(["s3://input/deleted.ndjson"]));
    assert_eq!(
        response["rejected"],
        json!(["s3://input/bad%FF: object key \"bad%FF\" does not decode to UTF-8"])
    );
    assert_eq!(
        delivered_keys(&fake.accepted()),
        [("good.ndjson".to_string(), 2)].into()
    );
}

/// Puts an object in the remote store and waits a second, so the next one is newer.
async fn put_in_store(aws: &Aws, key: &str, body: &str) {
    put(&aws.s3, STORE, key, body.as_bytes().to_vec()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

fn pull_event(aws: &Aws) -> Value {
    json!({"pull": {
        "endpoint_url": aws.sdk.endpoint_url().unwrap(),
        "bucket": STORE,
        "prefix": "audit/",
        "secret_arn": "remote-store-keys",
        "lookback_days": 30,
    }})
}

fn delivered_keys(records: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for data in records {
        let record = envelope::unwrap(data).unwrap().unwrap();
        *keys.entry(record.provenance.key).or_default() += 1;
    }
    keys
}

/// The Secrets Manager secret holding the remote store's keys, as the pull configuration names it.
async fn create_store_secret(sdk: &SdkConfig, secret_access_key: &str) {
    let keys =
        serde_json::json!({"access_key_id": "remote", "secret_access_key": secret_access_key});
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name("remote-store-keys")
        .secret_string(keys.to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_pull_takes_only_new_objects_and_catches_up_after_a_failed_run() {
    let aws = aws().await;
    create_store_secret(&aws.sdk, "remote-secret").await;
    let fake = FakeFirehose::start(FakeFirehoseConfig::default()).unwrap();
    let function = function(
        &aws,
        Some(&fake),
        RetryPolicy {
            attempts: 3,
            ..FAST
        },
    )
    .await;
    let event = pull_event(&aws);
    put_in_store(&aws, "other/skip.json", "{\"x\":0}\n").await;
    put_in_store(&aws, "audit/01.json", "{\"r\":1}\n{\"r\":2}\n").await;
    put_in_store(&aws, "audit/02.json", "{\"r\":3}\n").await;

    // Run 1: both objects under the prefix.
    let run = handle(&function, &event).await;
    assert_eq!(
        (
            run["pull"]["new"].as_u64(),
            run["pull"]["ingested"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(
        delivered_keys(&fake.accepted()),
        [
            ("audit/01.json".to_string(), 2),
            ("audit/02.json".to_string(), 1)
        ]
        .into()
    );
    let cursor_key = format!(
        "state/s3-ingest/{}/remote-store/audit/cursor.json",
        aws.sdk
            .endpoint_url()
            .unwrap()
            .trim_start_matches("http://")
    );
    let cursor: Value = serde_json::from_slice(&get(&aws.s3, LAKE, &cursor_key).await).unwrap();
    assert!(cursor["done"].get("audit/02.json").is_some(), "{cursor}");

    // Run 2: only the objects added since.
    let before = fake.accepted().len();
    put_in_store(&aws, "audit/03.json", "{\"r\":4}\n").await;
    put_in_store(&aws, "audit/04.json", "{\"r\":5}\n{\"r\":6}\n").await;
    let run = handle(&function, &event).await;
    assert_eq!(run["pull"]["ingested"], 2);
    assert_eq!(
        delivered_keys(&fake.accepted()[before..]),
        [
            ("audit/03.json".to_string(), 1),
            ("audit/04.json".to_string(), 2)
        ]
        .into()
    );

    // Run 3 fails half way: 06.json has a record Firehose never accepts.
    let before = fake.accepted().len();
    put_in_store(&aws, "audit/05.json", "{\"r\":7}\n").await;
    put_in_store(
        &aws,
        "audit/06.json",
        "{\"r\":8}\n{\"poison\":9}\n{\"r\":10}\n",
    )
    .await;
    put_in_store(&aws, "audit/07.json", "{\"r\":11}\n").await;
    fake.reconfigure(FakeFirehoseConfig {
        always_refuse: Some(b"poison".to_vec()),
        ..Default::default()
    });
    let error = s3_ingest::handle(&function, &event, Utc::now(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("s3://remote-store/audit/06.json"), "{error}");
    assert!(
        error.contains("1 of 3 new object(s) were ingested before it"),
        "{error}"
    );
    let failed_run = fake.accepted()[before..].to_vec();
    assert_eq!(
        delivered_keys(&failed_run),
        [
            ("audit/05.json".to_string(), 1),
            ("audit/06.json".to_string(), 2)
        ]
        .into()
    );

    // Run 4, with Firehose healthy again, completes it: 06 again, then 07; 05 is not repeated.
    fake.reconfigure(FakeFirehoseConfig::default());
    let run = handle(&function, &event).await;
    assert_eq!(run["pull"]["new"], 2);
    let catch_up = fake.accepted()[before + failed_run.len()..].to_vec();
    assert_eq!(
        delivered_keys(&catch_up),
        [
            ("audit/06.json".to_string(), 3),
            ("audit/07.json".to_string(), 1)
        ]
        .into()
    );

    // Nothing lost: the distinct event ids are exactly those of every record under the prefix,
    // as the pipeline computes them from the objects themselves.
    let all = fake.accepted();
    let delivered_ids: BTreeSet<String> = eventids(&all).into_iter().collect();
    let mut expected_ids = BTreeSet::new();
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    for key in keys(&aws.s3, STORE, "audit/").await {
        let head = aws
            .s3
            .head_object()
            .bucket(STORE)
            .key(&key)
            .send()
            .await
            .unwrap();
        let container = Provenance {
            bucket: STORE.into(),
            key: key.clone(),
            version: head.e_tag().unwrap().trim_matches('"').to_string(),
        }
        .container();
        for record in frame_bytes(&get(&aws.s3, STORE, &key).await) {
            let record = record.unwrap();
            let Outcome::Ok(event) = pipeline.process(record.record(&container), Utc::now()) else {
                panic!("pipeline refused {}", record.text)
            };
            expected_ids.insert(event.eventid);
        }
    }
    assert_eq!(expected_ids.len(), 11);
    assert_eq!(delivered_ids, expected_ids);
    // Nothing duplicated but the records of the object that failed, which kept their ids.
    assert_eq!(all.len(), 11 + 2);

    // A run with nothing new ingests nothing.
    let run = handle(&function, &event).await;
    assert_eq!(run["pull"]["new"], 0);
}

/// The built Lambda binary, driven through the Lambda Runtime API as Lambda would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_answers_logs_one_summary_per_object_and_never_logs_secrets() {
    use lakewatch_testkit::runtime_api::{Invocation, LambdaProcess};
    let aws = aws().await;
    put(
        &aws.s3,
        INPUT,
        "a b.ndjson",
        b"{\"a\":1}\n{\"a\":\n{\"a\":3}\n".to_vec(),
    )
    .await;
    put(&aws.s3, INPUT, "c.log", gzip(b"one\ntwo\n")).await;
    put(&aws.s3, STORE, "audit/x.json", b"{\"x\":1}\n".to_vec()).await;
    create_store_secret(&aws.sdk, "do-not-log-me").await;
    let endpoint = aws.sdk.endpoint_url().unwrap().to_string();
    let lambda = LambdaProcess::start(
        env!("CARGO_BIN_EXE_s3-ingest"),
        &[
            ("LAKEWATCH_FIREHOSE_STREAM", STREAM),
            ("LAKEWATCH_ERROR_BUCKET", LAKE),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    )
    .await
    .unwrap();

    let answer = lambda
        .invoke(s3_event(&["a+b.ndjson", "c.log"]).to_string().into_bytes())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["records"],
        json!({"read": 5, "sent": 4, "failed_to_frame": 1, "oversize": 0})
    );
    assert_eq!(delivered_by_moto(&aws).await.len(), 4);

    // An object that cannot be read fails the invocation (one deleted since is only reported).
    let mut unreadable = s3_event(&["missing.json"]);
    unreadable["Records"][0]["s3"]["bucket"]["name"] = json!("no-such-bucket");
    let missing = lambda
        .invoke(unreadable.to_string().into_bytes())
        .await
        .unwrap();
    let Invocation::Error { body, .. } = missing else {
        panic!("an unreadable object must fail the invocation: {missing:?}")
    };
    assert!(
        body.contains("cannot read s3://no-such-bucket/missing.json"),
        "{body}"
    );

    let pull = lambda
        .invoke(pull_event(&aws).to_string().into_bytes())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&pull).unwrap()["pull"]["ingested"],
        1
    );

    let logs = lambda.logs();
    let summaries: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "object summary")
        .collect();
    assert_eq!(summaries.len(), 3, "{logs}");
    for summary in &summaries {
        let count = |field: &str| summary[field].as_u64().unwrap();
        assert_eq!(
            count("read"),
            count("sent") + count("failed_to_frame") + count("oversize")
        );
    }
    assert_eq!(summaries[0]["key"], "a b.ndjson");
    assert!(
        !logs.contains("do-not-log-me"),
        "the secret key was logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_out_of_time_stops_cleanly_and_the_next_run_goes_on() {
    let aws = aws().await;
    create_store_secret(&aws.sdk, "remote-secret").await;
    for key in ["audit/1.json", "audit/2.json", "audit/3.json"] {
        put(&aws.s3, STORE, key, b"{\"r\":1}\n".to_vec()).await;
    }
    let function = function(&aws, None, FAST).await;
    let event = pull_event(&aws);
    // Less time left than the margin: one object per run, the rest left for later.
    let no_time = Some(std::time::Duration::from_secs(1));
    for left in [2, 1] {
        let run = s3_ingest::handle(&function, &event, Utc::now(), no_time)
            .await
            .unwrap();
        assert_eq!(
            (
                run["pull"]["ingested"].as_u64(),
                run["pull"]["left"].as_u64()
            ),
            (Some(1), Some(left))
        );
    }
    let run = handle(&function, &event).await;
    assert_eq!(
        (
            run["pull"]["new"].as_u64(),
            run["pull"]["ingested"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        delivered_keys(&delivered_by_moto(&aws).await),
        [
            ("audit/1.json".to_string(), 1),
            ("audit/2.json".to_string(), 1),
            ("audit/3.json".to_string(), 1)
        ]
        .into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_location_that_cannot_be_written_fails_the_invocation() {
    let aws = aws().await;
    put(
        &aws.s3,
        INPUT,
        "bad.ndjson",
        b"{\"ok\":1}\n{\"broken\":\n".to_vec(),
    )
    .await;
    let mut function = function(&aws, None, FAST).await;
    function.ingester.errors =
        lakewatch_aws::s3_objects::ErrorLocation::new("no-such-bucket", "errors/");
    let error = s3_ingest::handle(&function, &s3_event(&["bad.ndjson"]), Utc::now(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "cannot write failed records to s3://no-such-bucket/errors/input/bad.ndjson/"
        ),
        "{error}"
    );
}

/// One line of a Firehose `processing-failed` object, as Firehose writes it.
fn processing_failed_line(data: &[u8]) -> String {
    use base64::Engine;
    json!({"attemptsMade": 1, "arrivalTimestamp": 1776406254000_u64,
           "errorCode": "Lambda.ProcessingFailed",
           "errorMessage": "The Lambda function was successfully invoked but it returned an error result.",
           "attemptEndingTimestamp": 1776406256000_u64,
           "rawData": base64::engine::general_purpose::STANDARD.encode(data),
           "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:lakewatch-firehose-transform:live"})
    .to_string()
        + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_failed_records_are_replayed_line_by_line_exactly_once() {
    let aws = aws().await;
    // A record that failed for size (many syslog lines in one record), and a gzip record with a
    // good line and a truncated one; the object itself gzip, as for the lake's GZIP stream.
    let auth_log = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/syslog/auth.log"),
    )
    .unwrap()
    .repeat(2);
    let object = processing_failed_line(&auth_log)
        + &processing_failed_line(&gzip(b"{\"user\":\"alice\"}\n{\"broken\": \n"));
    let key = "errors/firehose/processing-failed/year=2026/month=04/day=17/hour=06/events-1-2026-04-17-06-10-54-0a1b";
    put(&aws.s3, LAKE, key, gzip(object.as_bytes())).await;
    let function = function(&aws, None, FAST).await;
    let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": LAKE}, "object": {"key": key}}}]});

    let response = handle(&function, &event).await;
    let delivered = delivered_by_moto(&aws).await;
    // by_place panics on a record delivered twice.
    let texts: Vec<String> = by_place(&delivered).into_values().collect();
    let mut expected: Vec<String> = String::from_utf8(auth_log)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    expected.push("{\"user\":\"alice\"}".into());
    assert_eq!(
        texts, expected,
        "every line once, in order, alone in its record"
    );
    // The truncated line is reported with its reason, at its place in the replayed object.
    let errors = error_lines(&aws).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["key"], key);
    assert!(
        errors[0]["reason"].as_str().unwrap().contains("truncated"),
        "{errors:?}"
    );
    assert_eq!(errors[0]["record"], "{\"broken\": \n");
    let records = &response["records"];
    assert_eq!(records["sent"], expected.len() as u64);
    assert_eq!(records["failed_to_frame"], 1);
    assert_eq!(records["read"], expected.len() as u64 + 1);

    // A second replay of the same object gives the same event ids: idempotent.
    let first = eventids(&delivered);
    assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), first.len());
    for old in keys(&aws.s3, DESTINATION, "").await {
        aws.s3
            .delete_object()
            .bucket(DESTINATION)
            .key(old)
            .send()
            .await
            .unwrap();
    }
    handle(&function, &event).await;
    let second = eventids(&delivered_by_moto(&aws).await);
    assert_eq!(
        second.into_iter().collect::<BTreeSet<_>>(),
        first.into_iter().collect::<BTreeSet<_>>()
    );
}
