//! The detector's rules come from the content bundle that `terraform apply` uploads: a changed
//! rule file and a new upload change what a new detector runs, with the same package. Against
//! a moto server, through the real SDK.

use detector::load_rules;
use lakewatch_aws::content::ContentLocation;
use lakewatch_lake::layout::content_bundle_key;
use lakewatch_plugins::content::{Bundle, ContentFile, Kind};
use lakewatch_testkit::moto::MotoServer;

const BUCKET: &str = "lake";

fn rule(id: &str, severity: &str) -> ContentFile {
    ContentFile {
        origin: format!("my-rules/{id}.toml"),
        text: format!(
            r#"id = "{id}"
title = "t"
description = "d"
severity = "{severity}"
interval = "5m"
window = "5m"
summary = "s"
[query]
kind = "sql"
sql = "SELECT 1 FROM events WHERE {{{{window}}}}"
"#
        ),
        dir: None,
    }
}

async fn upload(s3: &aws_sdk_s3::Client, key: &str, files: Vec<ContentFile>) {
    let body = serde_json::to_vec(&Bundle { files }).unwrap();
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detector_runs_the_rules_of_the_uploaded_bundle_and_sees_a_new_upload() {
    let moto = MotoServer::start();
    let s3 = lakewatch_aws::config::s3_client(&moto.sdk_config().await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let location = ContentLocation {
        bucket: BUCKET.into(),
        prefix: "content/".into(),
    };
    let key = content_bundle_key(&location.prefix, Kind::Rules);
    assert_eq!(key, "content/rules.json");

    // Before any upload: a clear error, never the embedded rules in disguise.
    let missing = load_rules(&s3, Some(&location)).await.unwrap_err();
    assert!(
        missing.starts_with("s3://lake/content/rules.json: no such object"),
        "{missing}"
    );

    upload(&s3, &key, vec![rule("curl-runs", "low")]).await;
    let rules = load_rules(&s3, Some(&location)).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].severity, "LOW");

    // A changed rule file and a new rule, uploaded again: the next cold start runs them.
    upload(
        &s3,
        &key,
        vec![rule("curl-runs", "high"), rule("wget-runs", "medium")],
    )
    .await;
    let rules = load_rules(&s3, Some(&location)).await.unwrap();
    let ids: Vec<_> = rules
        .iter()
        .map(|r| (r.id.as_str(), r.severity.as_str()))
        .collect();
    assert_eq!(ids, [("curl-runs", "HIGH"), ("wget-runs", "MEDIUM")]);

    // A bad rule in the bundle fails the load with its file (terraform validates first).
    upload(&s3, &key, vec![rule("Bad Id", "low")]).await;
    let bad = load_rules(&s3, Some(&location)).await.unwrap_err();
    assert!(bad.starts_with("my-rules/Bad Id.toml: id"), "{bad}");

    // Without a content location: the rules embedded in the binary.
    let embedded = load_rules(&s3, None).await.unwrap();
    assert!(embedded.iter().any(|r| r.id == "impossible-travel"));
}
