//! The built Lambda binary, driven through the Lambda Runtime API protocol exactly as Lambda
//! drives it: the fixture batch in `events/lambda/` goes in, Firehose's answer comes out.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use firehose_transform::{PROCESSING_BUFFER_BYTES, RESPONSE_LIMIT_BYTES};
use lakewatch_testkit::runtime_api::LambdaProcess;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_firehose-transform");

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/lambda")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Sends a batch to the running function and returns its response body.
async fn respond(lambda: &LambdaProcess, batch: &KinesisFirehoseEvent) -> Vec<u8> {
    lambda
        .invoke(serde_json::to_vec(batch).unwrap())
        .await
        .unwrap()
        .into_response()
        .unwrap()
}

/// The decoded answer of one record: result, partition keys and the events of its data.
struct Answer {
    result: String,
    keys: HashMap<String, String>,
    events: Vec<Value>,
}

fn answers(body: &[u8]) -> Vec<(String, Answer)> {
    let response: KinesisFirehoseResponse =
        serde_json::from_slice(body).expect("the response is Firehose's format");
    response
        .records
        .into_iter()
        .map(|record| {
            let text = String::from_utf8(record.data.0).expect("output data is UTF-8");
            let events = text
                .split_terminator('\n')
                .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
                .collect();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "newline-terminated"
            );
            let answer = Answer {
                result: record.result.unwrap(),
                keys: record.metadata.partition_keys,
                events,
            };
            (record.record_id.unwrap(), answer)
        })
        .collect()
}

/// The shell: every field present with its type, times in the lake's format.
fn assert_shell(event: &Value) {
    let object = event.as_object().expect("an event is an object");
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut shell = lakewatch_plugins::shell::SHELL_FIELDS.to_vec();
    fields.sort();
    shell.sort();
    assert_eq!(fields, shell, "exactly the shell fields");
    for time in ["utctimestamp", "receivedtimestamp"] {
        let text = event[time].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
                && text.len() == 27,
            "{time} {text}"
        );
    }
    for field in ["eventid", "summary", "category", "source", "severity"] {
        assert!(
            !event[field].as_str().unwrap().is_empty(),
            "{field} empty in {event}"
        );
    }
    assert!(event["hostname"].is_string());
    assert_eq!(
        event["severity"].as_str().unwrap(),
        event["severity"].as_str().unwrap().to_uppercase()
    );
    for list in ["tags", "plugins"] {
        assert!(event[list].as_array().unwrap().iter().all(Value::is_string));
    }
    assert!(event["details"].is_object());
}

/// `year`…`hour` of an event's `utctimestamp`.
fn hour_keys(event: &Value) -> HashMap<String, String> {
    let time = event["utctimestamp"].as_str().unwrap();
    [
        ("year", &time[0..4]),
        ("month", &time[5..7]),
        ("day", &time[8..10]),
        ("hour", &time[11..13]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn log_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn the_binary_answers_the_fixture_batch_record_by_record() {
    let batch = fixture("firehose-batch.json");
    let input: KinesisFirehoseEvent = serde_json::from_slice(&batch).unwrap();
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = lambda
        .invoke(batch.clone())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let answers = answers(&body);

    // One answer per record, in order, with the record's id; the id says the expected result.
    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    let input_ids: Vec<&str> = input
        .records
        .iter()
        .map(|r| r.record_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids, input_ids);
    for (id, answer) in &answers {
        let expected = match id.split('-').next().unwrap() {
            "ok" => "Ok",
            "dropped" => "Dropped",
            _ => "ProcessingFailed",
        };
        assert_eq!(answer.result, expected, "{id}");
        if expected == "Ok" {
            assert!(!answer.events.is_empty(), "{id}");
            answer.events.iter().for_each(assert_shell);
            assert_eq!(answer.keys, hour_keys(&answer.events[0]), "{id}");
        } else {
            assert!(answer.events.is_empty(), "{id} carries no data");
            assert!(answer.keys.is_empty(), "{id} has no partition keys");
        }
    }
    let by_id: HashMap<&str, &Answer> = answers.iter().map(|(id, a)| (id.as_str(), a)).collect();

    let gsuite = &by_id["ok-json-object"].events;
    assert_eq!(gsuite.len(), 1);
    assert_eq!(gsuite[0]["source"], "gsuite");
    assert_eq!(gsuite[0]["utctimestamp"], "2020-03-02T17:54:33.253000Z");
    assert_eq!(
        by_id["ok-json-object"].keys["year"].as_str(),
        "2020",
        "partition from the event time, not the arrival time"
    );

    let cloudtrail = &by_id["ok-cloudtrail-records"].events;
    assert_eq!(cloudtrail.len(), 9, "each element of Records is an event");
    assert!(cloudtrail.iter().all(|e| e["source"] == "cloudtrail"));
    assert_eq!(cloudtrail[0]["details"]["eventname"], "ConsoleLogin");

    assert_eq!(by_id["ok-ndjson"].events.len(), 3);

    let array = &by_id["ok-json-array"].events;
    assert_eq!(array.len(), 2);
    assert_eq!(
        array[0]["eventid"], "producer-id-1",
        "a producer's eventid is kept"
    );
    assert_eq!(
        array[0]["details"]["service"], "api",
        "keys are lower-cased"
    );
    assert_eq!(by_id["ok-json-array"].keys["hour"].as_str(), "07");

    let syslog = &by_id["ok-syslog-lines"].events;
    assert_eq!(syslog.len(), 2);
    assert!(syslog.iter().all(|e| e["source"] == "syslog"));
    assert_eq!(syslog[0]["hostname"], "fw-01.example.com");
    assert_eq!(syslog[0]["utctimestamp"], "2026-04-17T06:20:00.003000Z");

    let enveloped = &by_id["ok-enveloped"].events[0];
    assert_eq!(enveloped["source"], "syslog");
    assert_eq!(enveloped["details"]["_origin"]["bucket"], "lakewatch-input");
    assert_eq!(
        enveloped["details"]["_origin"]["key"],
        "hosts/bastion/auth.log"
    );
    assert_eq!(enveloped["details"]["_origin"]["offset"], 312);

    // A retry of the same batch writes the same event ids.
    let retry = lambda.invoke(batch).await.unwrap().into_response().unwrap();
    let ids_of = |answers: &[(String, Answer)]| -> Vec<Value> {
        answers
            .iter()
            .flat_map(|(_, a)| a.events.iter().map(|e| e["eventid"].clone()))
            .collect()
    };
    let first_ids = ids_of(&answers);
    assert_eq!(ids_of(&self::answers(&retry)), first_ids);
    let mut unique = first_ids.clone();
    unique.sort_by_key(|v| v.to_string());
    unique.dedup();
    assert_eq!(unique.len(), first_ids.len(), "every event has its own id");

    // One summary line per invocation, with counts that add up; a warning per failed record.
    let logs = lambda.stop();
    let lines = log_lines(&logs);
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "batch transformed")
        .collect();
    assert_eq!(summaries.len(), 2, "{logs}");
    let summary = summaries[0];
    let count = |name: &str| summary[name].as_u64().unwrap();
    assert_eq!(count("records_in"), 11);
    assert_eq!(
        (
            count("records_ok"),
            count("records_dropped"),
            count("records_failed")
        ),
        (6, 1, 4)
    );
    let events_ok: usize = answers.iter().map(|(_, a)| a.events.len()).sum();
    assert_eq!(count("events_ok"), events_ok as u64);
    let failed: Vec<&str> = lines
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["record_id"].as_str())
        .collect();
    assert_eq!(
        failed[..4],
        [
            "failed-invalid-utf8",
            "failed-truncated-json",
            "failed-not-objects",
            "failed-one-bad-event"
        ]
    );
    assert!(
        lines.iter().all(|l| l.get("timestamp").is_none()),
        "no timestamps: CloudWatch adds them"
    );
}

/// The EMF lines of the captured output, each checked against the format.
fn emf_lines(logs: &str) -> Vec<serde_json::Map<String, Value>> {
    logs.lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| {
            lakewatch_metrics::parse_emf_line(line).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect()
}

#[tokio::test]
async fn the_binary_prints_emf_metrics_that_add_up_for_its_batch() {
    let batch = fixture("firehose-batch.json");
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = lambda.invoke(batch).await.unwrap().into_response().unwrap();
    let mut written: HashMap<String, u64> = HashMap::new();
    for (_, answer) in answers(&body) {
        for event in answer.events {
            *written
                .entry(event["source"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let logs = lambda.stop();
    let lines = emf_lines(&logs);
    assert!(!lines.is_empty(), "no EMF line in {logs}");
    for line in &lines {
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Lakewatch"
        );
    }
    let records = lines
        .iter()
        .find(|l| l.get("Function").is_some_and(|f| f == "firehose-transform"))
        .expect("a line of record counts");
    let count = |line: &serde_json::Map<String, Value>, name: &str| line[name].as_u64().unwrap();
    assert_eq!(
        (
            count(records, "RecordsIn"),
            count(records, "RecordsOk"),
            count(records, "RecordsDropped"),
            count(records, "RecordsFailed")
        ),
        (11, 6, 1, 4),
        "the fixture's records by result, a failed one among them"
    );
    let per_source: HashMap<String, &serde_json::Map<String, Value>> = lines
        .iter()
        .filter_map(|l| Some((l.get("Source")?.as_str()?.to_string(), l)))
        .collect();
    let events: HashMap<String, u64> = per_source
        .iter()
        .map(|(source, line)| (source.clone(), count(line, "Events")))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(events, written, "Events per source = events in the answer");
    for (source, line) in &per_source {
        assert_eq!(
            count(line, "EventsIn"),
            count(line, "Events") + count(line, "EventsDropped") + count(line, "EventsFailed"),
            "{source}"
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Source"]])
        );
    }
    assert!(
        count(per_source["unknown"], "EventsFailed") >= 4,
        "every failed record's events count as failed"
    );
}

#[tokio::test]
async fn the_binary_keeps_its_response_under_6_mb() {
    // Seven records of about 900 KB of NDJSON: about 6.3 MB in, far more than 6 MB out.
    let line = format!(r#"{{"source":"bulk","message":"{}"}}"#, "m".repeat(870));
    let data = std::iter::repeat_n(line.as_str(), 1000)
        .collect::<Vec<_>>()
        .join("\n");
    let mut batch = KinesisFirehoseEvent::default();
    batch.records = (0..7)
        .map(|i| {
            let mut record =
                aws_lambda_events::event::firehose::KinesisFirehoseEventRecord::default();
            record.record_id = Some(format!("bulk-{i}"));
            record.data.0 = data.clone().into_bytes();
            record
        })
        .collect();
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = respond(&lambda, &batch).await;
    assert!(
        body.len() <= RESPONSE_LIMIT_BYTES,
        "{} bytes answered",
        body.len()
    );
    let answers = answers(&body);
    assert_eq!(answers.len(), 7);
    let ok = answers.iter().filter(|(_, a)| a.result == "Ok").count();
    assert!((1..7).contains(&ok), "some fit, some do not: {ok} ok");
    assert!(
        answers[ok..]
            .iter()
            .all(|(_, a)| a.result == "ProcessingFailed")
    );
    let logs = lambda.stop();
    assert!(
        logs.contains("response would exceed Lambda's 6291456-byte limit"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_record_fails_alone_in_bounded_memory() {
    // About 6 KB of gzip that expands to 2 million `{}` lines: ~600 MB of events if built.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..2_000_000 {
        std::io::Write::write_all(&mut encoder, b"{}\n").unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 10_000, "{} bytes", bomb.len());
    let mut batch = KinesisFirehoseEvent::default();
    batch.records = [("bomb", bomb), ("small", br#"{"a":1}"#.to_vec())]
        .into_iter()
        .map(|(id, data)| {
            let mut record =
                aws_lambda_events::event::firehose::KinesisFirehoseEventRecord::default();
            record.record_id = Some(id.to_string());
            record.data.0 = data;
            record
        })
        .collect();
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = respond(&lambda, &batch).await;
    let peak = lakewatch_testkit::peak_rss_kib(lambda.pid()) as f64 / 1024.0;
    let answers = answers(&body);
    assert_eq!(answers[0].1.result, "ProcessingFailed");
    assert_eq!(answers[1].1.result, "Ok");
    let logs = lambda.stop();
    assert!(logs.contains("processing stopped"), "{logs}");
    eprintln!("gzip bomb: transform peak RSS {peak:.1} MiB");
    assert!(peak < 128.0, "peak RSS {peak:.1} MiB");
}

#[tokio::test]
async fn the_binary_places_addresses_with_the_geoip_database_from_its_environment() {
    let database =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/geoip/test-city.mmdb");
    let mut batch = KinesisFirehoseEvent::default();
    let mut record = aws_lambda_events::event::firehose::KinesisFirehoseEventRecord::default();
    record.record_id = Some("login".into());
    record.data.0 = br#"{"eventName":"ConsoleLogin","sourceIPAddress":"192.0.2.70"}"#.to_vec();
    batch.records = vec![record];
    let lambda = LambdaProcess::start(
        BINARY,
        &[("LAKEWATCH_GEOIP_CITY_DATABASE", database.to_str().unwrap())],
    )
    .await
    .unwrap();
    let body = respond(&lambda, &batch).await;
    let placed = answers(&body);
    let geo = &placed[0].1.events[0]["details"]["sourcegeo"];
    assert_eq!(geo["city"], "London", "{geo}");
    assert_eq!(geo["country"], "GB");
    assert!(lambda.stop().contains("pipeline ready"));

    // Without the variable the plugin is left out, and the start-up log says how to enable it.
    let plain = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = respond(&plain, &batch).await;
    assert!(
        answers(&body)[0].1.events[0]["details"]
            .get("sourcegeo")
            .is_none()
    );
    assert!(plain.stop().contains("plugin configuration"));
}

#[tokio::test]
async fn records_with_malformed_fields_fail_alone_and_the_batch_is_answered() {
    use base64::Engine;
    let good = base64::engine::general_purpose::STANDARD.encode(br#"{"a":1}"#);
    let batch = serde_json::json!({
        "invocationId": "invocation-malformed",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/lake",
        "region": "us-east-1",
        "records": [
            {"recordId": "ok-1", "approximateArrivalTimestamp": 1, "data": good},
            {"recordId": "bad-base64", "approximateArrivalTimestamp": 1, "data": "%%%"},
            {"approximateArrivalTimestamp": 1, "data": good},
            {"recordId": "twice", "approximateArrivalTimestamp": 1, "data": good},
            {"recordId": "twice", "approximateArrivalTimestamp": 1, "data": good},
            {"recordId": "ok-2", "approximateArrivalTimestamp": 1, "data": good},
        ],
    });
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let body = lambda
        .invoke(serde_json::to_vec(&batch).unwrap())
        .await
        .unwrap()
        .into_response()
        .expect("one malformed record does not fail the invocation");
    let response: Value = serde_json::from_slice(&body).unwrap();
    let answers: Vec<(Value, &str)> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["recordId"].clone(), r["result"].as_str().unwrap()))
        .collect();
    let failed = "ProcessingFailed";
    assert_eq!(
        answers,
        [
            (Value::from("ok-1"), "Ok"),
            (Value::from("bad-base64"), failed),
            (Value::Null, failed),
            (Value::from("twice"), failed),
            (Value::from("twice"), failed),
            (Value::from("ok-2"), "Ok"),
        ]
    );
    let logs = lambda.stop();
    for reason in [
        "`data` is not valid base64",
        "it has no `recordId`",
        "its recordId appears 2 times",
    ] {
        assert!(logs.contains(reason), "{reason} not logged: {logs}");
    }
}

/// A batch of about `bytes` of `auth.log` records (each the sample twice, ~4.7 KB, as a
/// producer batching lines would send), with Firehose-length record ids.
fn auth_log_batch(bytes: usize) -> KinesisFirehoseEvent {
    let data = fixture("../syslog/auth.log").repeat(2);
    let mut batch = KinesisFirehoseEvent::default();
    batch.records = (0..bytes / data.len())
        .map(|i| {
            let mut record =
                aws_lambda_events::event::firehose::KinesisFirehoseEventRecord::default();
            record.record_id = Some(format!("{i:056}"));
            record.data.0 = data.clone();
            record
        })
        .collect();
    batch
}

#[tokio::test]
async fn a_default_buffer_of_syslog_lines_never_fails_for_size() {
    let lambda = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let results = |body: Vec<u8>| {
        answers(&body)
            .into_iter()
            .map(|(_, answer)| answer.result)
            .collect::<Vec<_>>()
    };
    // Issue 15: 1 MB (Firehose's own default buffer) of syslog grows past the 6 MB response.
    let one_mb = results(respond(&lambda, &auth_log_batch(1024 * 1024)).await);
    let failed = one_mb.iter().filter(|r| *r == "ProcessingFailed").count();
    assert!(failed > 0, "{} records, none failed", one_mb.len());
    eprintln!(
        "1 MiB of auth.log: {failed} of {} records failed for size",
        one_mb.len()
    );
    // The buffer the module configures by default answers every record.
    let default = results(respond(&lambda, &auth_log_batch(PROCESSING_BUFFER_BYTES)).await);
    assert!(default.len() > 50, "{} records", default.len());
    assert!(default.iter().all(|r| r == "Ok"), "{default:?}");
    let logs = lambda.stop();
    assert!(logs.contains("response would exceed"), "{logs}");
}

/// A source of the deployment's own, as `terraform apply` uploads it beside the bundled ones.
const ACME_SOURCE: &str = r#"id = "acme"
description = "Acme badge readers"
source = "acme"
category = "physical"
summary = "badge {badge} at {door}"
[[match.all]]
field = "acme_kind"
equals = "badge"
[[tests]]
name = "a badge swipe"
record = '{"acme_kind": "badge", "badge": "0042", "door": "lobby"}'
[tests.expect]
summary = "badge 0042 at lobby"
"#;

/// Uploads the sources bundle (the repository's `sources/` and [`ACME_SOURCE`]) to a moto
/// bucket `lake` under `content/`, as Terraform does; returns the function's environment.
async fn upload_sources(server: &lakewatch_testkit::moto::MotoServer) -> Vec<(&str, String)> {
    use lakewatch_plugins::content::{Bundle, ContentFile, Kind, read_dir};
    let s3 = lakewatch_aws::config::s3_client(&server.sdk_config().await);
    s3.create_bucket().bucket("lake").send().await.unwrap();
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sources");
    let mut files = read_dir(Kind::Sources, &bundled).unwrap();
    files.push(ContentFile {
        origin: "my-sources/acme.toml".into(),
        text: ACME_SOURCE.into(),
        dir: None,
    });
    let body = serde_json::to_vec(&Bundle { files }).unwrap();
    s3.put_object()
        .bucket("lake")
        .key(lakewatch_lake::layout::content_bundle_key(
            "content/",
            Kind::Sources,
        ))
        .body(body.into())
        .send()
        .await
        .unwrap();
    vec![
        ("AWS_ENDPOINT_URL", server.endpoint().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("LAKEWATCH_CONTENT_BUCKET", "lake".into()),
        ("LAKEWATCH_CONTENT_PREFIX", "content/".into()),
    ]
}

/// Answers an empty batch; returns the milliseconds since `started` and the peak resident
/// memory (KiB) so far.
async fn first_answer(lambda: &LambdaProcess, started: std::time::Instant) -> (f64, u64) {
    lambda
        .invoke(br#"{"records":[]}"#.to_vec())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    (
        started.elapsed().as_secs_f64() * 1000.0,
        lakewatch_testkit::peak_rss_kib(lambda.pid()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_the_sources_of_the_content_bundle_in_s3() {
    let server = lakewatch_testkit::moto::MotoServer::start();
    let env = upload_sources(&server).await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Cold start (spawn to the first answer) and peak memory after init, with the sources from
    // S3 and, for comparison, embedded: the figures in docs/firehose-transform.md.
    let embedded = LambdaProcess::start(BINARY, &[]).await.unwrap();
    let (embedded_ms, embedded_kib) = first_answer(&embedded, std::time::Instant::now()).await;
    embedded.stop();
    let started = std::time::Instant::now();
    let lambda = LambdaProcess::start(BINARY, &env).await.unwrap();
    let (from_s3_ms, from_s3_kib) = first_answer(&lambda, started).await;
    eprintln!(
        "cold start to the first answer: {from_s3_ms:.0} ms, {:.1} MiB peak resident with the \
         sources from S3; {embedded_ms:.0} ms, {:.1} MiB embedded",
        from_s3_kib as f64 / 1024.0,
        embedded_kib as f64 / 1024.0
    );
    let record = |id: &str, data: &str| {
        serde_json::json!({"recordId": id, "approximateArrivalTimestamp": 1776405054000_i64,
                           "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data)})
    };
    let batch = serde_json::json!({
        "invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/s",
        "region": "us-east-1",
        "records": [
            record("acme", r#"{"acme_kind": "badge", "badge": "0042", "door": "lobby"}"#),
            record("line", "kernel: oom-killer invoked on web-03"),
        ]
    });
    let body = lambda
        .invoke(serde_json::to_vec(&batch).unwrap())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let answers = answers(&body);
    let acme = &answers[0].1.events[0];
    assert_eq!(acme["source"], "acme", "{acme}");
    assert_eq!(acme["summary"], "badge 0042 at lobby");
    let line = &answers[1].1.events[0];
    assert_eq!(
        line["details"]["raw"], "kernel: oom-killer invoked on web-03",
        "the bundled raw-line source came from the bundle too"
    );
    lambda.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_content_bundle_the_binary_fails_its_init_saying_why() {
    let server = lakewatch_testkit::moto::MotoServer::start();
    let lambda = LambdaProcess::start(
        BINARY,
        &[
            ("AWS_ENDPOINT_URL", server.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("LAKEWATCH_CONTENT_BUCKET", "no-such-bucket"),
        ],
    )
    .await
    .unwrap();
    let error = lambda
        .invoke(br#"{"records":[]}"#.to_vec())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let logs = lambda.stop();
    assert!(
        logs.contains("the transform cannot load its sources")
            && logs.contains("s3://no-such-bucket/content/sources.json"),
        "{error}\n{logs}"
    );
}
