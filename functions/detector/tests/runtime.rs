//! The built detector binary driven through the Lambda Runtime API against moto server (S3,
//! Athena, SNS): init from the environment, one invocation with the scheduled event of
//! `events/lambda/`, one JSON log line per embedded rule, state objects with watermarks, and
//! the invocation failing only when every rule failed. Alerts written from seeded results are
//! covered at library level in `crates/aws/tests/detector_moto.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use lakewatch_detect::load_rules;
use lakewatch_testkit::moto::MotoServer;
use lakewatch_testkit::runtime_api::{Invocation, LambdaProcess, RuntimeApiError};
use serde_json::Value;

const BUCKET: &str = "lake";
const WORKGROUP: &str = "detector";

fn scheduled_event() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/lambda/detector-scheduled.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rule_ids() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    load_rules(&dir)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn start(server: &MotoServer, extra: &[(&str, &str)]) -> LambdaProcess {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", server.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("LAKEWATCH_LAKE_BUCKET", BUCKET),
        ("LAKEWATCH_GLUE_DATABASE", "lakewatch"),
        ("LAKEWATCH_ATHENA_WORKGROUP", WORKGROUP),
    ];
    env.extend_from_slice(extra);
    LambdaProcess::start(env!("CARGO_BIN_EXE_detector"), &env)
        .await
        .unwrap()
}

/// The function's logs once they hold a line for each of `rules` rules: the reader threads
/// may still be copying the last lines when the answer arrives.
async fn logs_of(lambda: &LambdaProcess, rules: usize) -> String {
    for _ in 0..200 {
        let logs = lambda.logs();
        if rule_lines(&logs).len() >= rules {
            return logs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    lambda.logs()
}

/// The JSON log lines that name a rule, by rule.
fn rule_lines(logs: &str) -> BTreeMap<String, Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| Some((line.get("rule")?.as_str()?.to_string(), line)))
        .collect()
}

async fn s3(server: &MotoServer) -> aws_sdk_s3::Client {
    let s3 = lakewatch_aws::config::s3_client(&server.sdk_config().await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3
}

/// The Athena workgroup the detector's settings name.
async fn workgroup(server: &MotoServer) {
    aws_sdk_athena::Client::new(&server.sdk_config().await)
        .create_work_group()
        .name(WORKGROUP)
        .send()
        .await
        .unwrap();
}

/// A scheduled invocation that must succeed: its answer, and the logs up to its rules' lines.
async fn invoke_scheduled(lambda: &LambdaProcess) -> (Value, String) {
    let answer = lambda
        .invoke(scheduled_event())
        .await
        .unwrap()
        .into_response();
    let logs = logs_of(lambda, rule_ids().len()).await;
    (serde_json::from_slice(&answer.unwrap()).unwrap(), logs)
}

#[tokio::test]
async fn a_scheduled_invocation_runs_every_embedded_rule_and_saves_its_watermark() {
    let server = MotoServer::start();
    let s3 = s3(&server).await;
    workgroup(&server).await;
    let lambda = start(&server, &[]).await;
    let ids = rule_ids();
    let (answer, logs) = invoke_scheduled(&lambda).await;
    assert_eq!(answer["rules"], ids.len(), "{answer}\n{logs}");
    assert_eq!(answer["failed"], serde_json::json!([]));
    // moto returns no rows for unseeded queries: every rule evaluates its latest window quietly.
    assert_eq!(answer["alerts"], 0);
    assert_eq!(answer["windows"], ids.len());

    let lines = rule_lines(&logs);
    assert_eq!(lines.keys().cloned().collect::<Vec<_>>(), ids, "{logs}");
    for (rule, line) in &lines {
        assert_eq!(line["windows"], 1, "{rule}: {line}");
        assert_eq!(line["rows"], 0, "{rule}: {line}");
        assert_eq!(line["bytes_scanned"], 0, "{rule}: {line}");
        assert!(line["duration_ms"].is_u64(), "{rule}: {line}");
        assert!(line.get("rule_failed").is_none(), "{rule}: {line}");
    }
    assert!(
        logs.contains("LAKEWATCH_ALERTS_TOPIC_ARN is not set"),
        "no topic is said once at init: {logs}"
    );

    // The event's time is 10:20: brute-force-user (5m interval, 5m lateness) stops at 10:15.
    let state = s3
        .get_object()
        .bucket(BUCKET)
        .key("state/detector/brute-force-user.json")
        .send()
        .await
        .unwrap();
    let state: Value =
        serde_json::from_slice(&state.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(state["watermark"], "2026-11-23T10:15:00Z");
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("state/detector/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    // One state per rule, and a baseline per rule that keeps one (the first-seen rules,
    // impossible-travel's previous logins and brute-force-success's recent events), built with
    // its first window.
    let baselines: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("state/detector/baselines/"))
        .collect();
    assert_eq!(
        baselines,
        [
            "state/detector/baselines/atypical-country.json.gz",
            "state/detector/baselines/brute-force-success.json.gz",
            "state/detector/baselines/impossible-travel.json.gz",
            "state/detector/baselines/new-country.json.gz",
            "state/detector/baselines/new-device.json.gz",
        ]
    );
    assert_eq!(keys.len() - baselines.len(), ids.len());
}

#[tokio::test]
async fn the_invocation_fails_when_every_rule_fails_and_each_logs_rule_failed() {
    let server = MotoServer::start();
    s3(&server).await;
    // No workgroup: moto refuses every StartQueryExecution; and no CloudWatch for the silence
    // rules, which read event counts there instead of querying Athena.
    let lambda = start(
        &server,
        &[("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")],
    )
    .await;
    let answer = lambda.invoke(scheduled_event()).await.unwrap();
    let ids = rule_ids();
    let logs = logs_of(&lambda, ids.len()).await;
    let Invocation::Error { body, .. } = answer else {
        panic!("the invocation succeeded: {answer:?}\n{logs}");
    };
    assert!(
        body.contains(&format!("all {} rules failed", ids.len())),
        "{body}"
    );
    assert!(body.contains("WorkGroup does not exist"), "{body}");
    let lines = rule_lines(&logs);
    assert_eq!(lines.len(), ids.len(), "{logs}");
    assert!(
        lines
            .values()
            .all(|l| l["rule_failed"] == true && l["error"].is_string()),
        "{logs}"
    );
}

#[tokio::test]
async fn a_missing_setting_stops_the_init_with_a_line_naming_the_variable() {
    let server = MotoServer::start();
    let lambda = start(&server, &[("LAKEWATCH_ATHENA_WORKGROUP", "")]).await;
    let error = lambda.invoke(scheduled_event()).await.unwrap_err();
    let RuntimeApiError::Exited { logs, .. } = &error else {
        panic!("expected the process to exit, got {error}");
    };
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "the detector cannot start")
        .map(|l| l["error"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        line.contains("LAKEWATCH_ATHENA_WORKGROUP is not set: set it to the Athena workgroup"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_invocation_extracts_the_new_lake_objects_before_its_rules_run() {
    let server = MotoServer::start();
    let s3 = s3(&server).await;
    workgroup(&server).await;
    // A Firehose record filed under its first event's hour (09:58), the rest at 10:0x.
    let source = "events/year=2026/month=11/day=23/hour=09/lakewatch-events-1-2026-11-23-10-06-00-c3.json.gz";
    let lines: Vec<String> = ["09:58", "10:01", "10:02", "10:03"]
        .iter()
        .enumerate()
        .map(|(n, time)| {
            format!(r#"{{"utctimestamp":"2026-11-23T{time}:00.000000Z","eventid":"e{n}"}}"#)
        })
        .collect();
    lakewatch_aws::s3::put(
        &s3,
        BUCKET,
        source,
        "application/gzip",
        lakewatch_lake::layout::gzip_lines(&lines),
    )
    .await
    .unwrap();
    let lambda = start(&server, &[("LAKEWATCH_EXTRACT_TABLE", "lw_extract")]).await;
    let (answer, logs) = invoke_scheduled(&lambda).await;
    assert_eq!(answer["failed"], serde_json::json!([]), "{answer}\n{logs}");
    let extract = &answer["extract"];
    assert_eq!(
        (
            &extract["objects"],
            &extract["events"],
            &extract["outside_partition"]
        ),
        (&Value::from(1), &Value::from(4), &Value::from(3)),
        "{answer}"
    );
    assert_eq!(extract["written"], 2, "{answer}");

    let json_lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    let pass = json_lines
        .iter()
        .find(|l| l["message"] == "extract pass")
        .unwrap_or_else(|| panic!("no extract pass line: {logs}"));
    for (field, value) in [
        ("objects", 1),
        ("bytes_read", extract["bytes_read"].as_u64().unwrap()),
        ("events", 4),
        ("outside_partition", 3),
        ("untimed", 0),
    ] {
        assert_eq!(pass[field], value, "{field} in {pass}");
    }
    // Every Athena query is logged with what it scanned.
    let queries = json_lines
        .iter()
        .filter(|l| l["message"] == "query")
        .count();
    let run: u64 = answer["rules"].as_u64().unwrap();
    assert!(
        queries > 0 && queries as u64 <= run * 2,
        "{queries} query lines\n{logs}"
    );
    assert!(
        json_lines
            .iter()
            .filter(|l| l["message"] == "query")
            .all(|l| l["bytes_scanned"].is_i64() && l["query_execution_id"].is_string()),
        "{logs}"
    );

    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("extract/events/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "extract/events/year=2026/month=11/day=23/hour=09/minute=45/year=2026_month=11_day=23_hour=09_lakewatch-events-1-2026-11-23-10-06-00-c3.p0.json.zst",
            "extract/events/year=2026/month=11/day=23/hour=10/minute=00/year=2026_month=11_day=23_hour=09_lakewatch-events-1-2026-11-23-10-06-00-c3.p0.json.zst",
        ]
    );
    let arrivals = s3
        .get_object()
        .bucket(BUCKET)
        .key("state/detector/_arrivals.json")
        .send()
        .await
        .unwrap();
    let arrivals: Value =
        serde_json::from_slice(&arrivals.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(
        arrivals["objects"].as_object().unwrap().len(),
        1,
        "{arrivals}"
    );

    // The rules read the extract table the environment names.
    let athena = aws_sdk_athena::Client::new(&server.sdk_config().await);
    let executions = athena
        .list_query_executions()
        .send()
        .await
        .unwrap()
        .query_execution_ids()
        .to_vec();
    assert_eq!(executions.len(), queries);
    for id in &executions {
        let execution = athena
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap();
        let sql = execution
            .query_execution()
            .unwrap()
            .query()
            .unwrap_or_default();
        assert!(
            sql.starts_with("WITH events AS (SELECT * FROM lw_extract)"),
            "{sql}"
        );
    }

    // The next invocation finds nothing new.
    let again = lambda
        .invoke(scheduled_event())
        .await
        .unwrap()
        .into_response();
    let again: Value = serde_json::from_slice(&again.unwrap()).unwrap();
    assert_eq!(again["extract"]["objects"], 0, "{again}");
}

/// A rule's state object as the detector saved it.
async fn rule_state(s3: &aws_sdk_s3::Client, rule: &str) -> Value {
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(format!("state/detector/{rule}.json"))
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap()
}

#[tokio::test]
async fn windows_set_aside_after_three_failed_runs_are_evaluated_again_when_asked() {
    let server = MotoServer::start();
    let s3 = s3(&server).await;
    // No workgroup yet: every query fails the same way, three scheduled runs in a row.
    let failing = start(
        &server,
        &[("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")],
    )
    .await;
    let ids = rule_ids();
    for run in 1..=3 {
        let answer = failing.invoke(scheduled_event()).await.unwrap();
        assert!(
            matches!(answer, Invocation::Error { .. }),
            "run {run}: {answer:?}"
        );
    }
    drop(failing);
    let state = rule_state(&s3, "brute-force-user").await;
    assert_eq!(state["watermark"], "2026-11-23T10:15:00Z", "{state}");
    let set_aside = state["set_aside"].as_array().expect("a set-aside list");
    assert_eq!(set_aside.len(), 1, "{state}");
    assert_eq!(set_aside[0]["end"], "2026-11-23T10:15:00Z", "{state}");
    assert!(
        set_aside[0]["error"]
            .as_str()
            .unwrap()
            .contains("WorkGroup does not exist"),
        "{state}"
    );

    // The cause is fixed; a scheduled run now has nothing due, the operator's invocation
    // evaluates the set-aside windows.
    workgroup(&server).await;
    let lambda = start(&server, &[]).await;
    let answer = lambda
        .invoke(br#"{"set_aside": true}"#.to_vec())
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let logs = logs_of(&lambda, ids.len()).await;
    assert_eq!(answer["failed"], serde_json::json!([]), "{answer}\n{logs}");
    assert_eq!(
        answer["windows"],
        ids.len(),
        "one set-aside window each: {answer}"
    );
    assert_eq!(answer["set_aside"], 0, "{answer}");
    assert!(
        logs.contains("evaluating the set-aside windows again"),
        "{logs}"
    );
    for rule in &ids {
        let state = rule_state(&s3, rule).await;
        assert!(state.get("set_aside").is_none(), "{rule}: {state}");
    }
    let state = rule_state(&s3, "brute-force-user").await;
    assert_eq!(state["watermark"], "2026-11-23T10:15:00Z", "{state}");

    // Nothing is left to evaluate again.
    let again: Value = serde_json::from_slice(
        &lambda
            .invoke(br#"{"set_aside": true}"#.to_vec())
            .await
            .unwrap()
            .into_response()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(again["windows"], 0, "{again}");
}
