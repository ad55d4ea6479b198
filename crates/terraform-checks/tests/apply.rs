//! `terraform apply` of `terraform/examples/complete` against a moto server, with the real AWS
//! provider and the built Lambda packages; then a second plan must show no changes, the
//! deployed resources must work with lakewatch's own code through the AWS SDK for Rust, and
//! `terraform destroy` must remove everything.
//!
//! The packages are those `scripts/build-lambdas` writes, found through `LAKEWATCH_LAMBDA_DIST`
//! (e.g. `dist/lambda`). The test is ignored in a plain `cargo test` because it needs them;
//! `.ci/test` runs it after building them:
//!
//! ```sh
//! scripts/build-lambdas
//! LAKEWATCH_LAMBDA_DIST=dist/lambda cargo test -p lakewatch-terraform-checks --test apply -- --ignored
//! ```
//!
//! What moto does not implement, and how it is covered instead:
//! - Lambda: moto stores functions but does not return their `logging_config` or
//!   `dead_letter_config`, so the provider would plan to set them again on every plan. The copy
//!   applied here ignores changes to those two blocks (`moto_gaps_override.tf` below); that they
//!   are set is checked on the HCL (`tests/terraform.rs`) and by checkov (CKV_AWS_116), and
//!   their argument names by `terraform validate` with the real provider.
//! - S3 bucket policies: moto evaluates them without the request's context, so the TLS-only
//!   Deny statements (`aws:SecureTransport`, `s3:TlsVersion`) refuse every object read, and moto
//!   only speaks plain HTTP here. The policies are applied and re-planned like everything else;
//!   before the SDK checks, the test deletes them from the lake and input buckets (after checking
//!   they deny insecure transport) so lakewatch's code can read objects. Their statements are
//!   checked on the HCL (`every_bucket_is_kms_encrypted_tls_only_and_private`) and by checkov.
//! - Lambda invocation: moto runs no function code, so Firehose's transform is not called and
//!   records land unchanged under an arrival-time prefix instead of the dynamic partitions; the
//!   transform itself runs through the Lambda Runtime API in functions/firehose-transform's
//!   tests. The s3-ingest and partitions functions' library code runs here, in the test
//!   process, with the settings the module gives each function.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use chrono::{Timelike, Utc};
use lakewatch_terraform_checks::cli::{Workspace, moto_provider_override, terraform_or_skip};
use lakewatch_testkit::moto::MotoServer;
use serde_json::Value;

const EXAMPLE: &str = "examples/complete";

/// The example's default region.
const REGION: &str = "eu-west-1";

/// Lets destroy remove buckets the test wrote to (the example keeps the safe default), and
/// deploys no content: moto checks the lake bucket's policy on PutObject without the request's
/// context, so its `DenyInsecureTransport` statement refuses every upload (403). The content
/// upload's validation is applied in the root package's tests/content_validation.rs; its objects are checked in tests/plan.rs.
const TEST_DEPLOYMENT_OVERRIDE: &str = "\
# Written by crates/terraform-checks: a test deployment, destroyed with its objects.
module \"lakewatch\" {
  force_destroy  = true
  deploy_content = false
}
";

/// moto does not return these two blocks of a function (see the module docs above).
const MOTO_GAPS_OVERRIDE: &str = "\
# Written by crates/terraform-checks: moto stores but does not return these blocks.
resource \"aws_lambda_function\" \"this\" {
  lifecycle {
    ignore_changes = [logging_config, dead_letter_config]
  }
}
";

/// The built packages: `$LAKEWATCH_LAMBDA_DIST`.
fn lambda_packages() -> PathBuf {
    std::env::var_os("LAKEWATCH_LAMBDA_DIST")
        .map(PathBuf::from)
        .expect(
            "LAKEWATCH_LAMBDA_DIST is not set: build the packages with scripts/build-lambdas and \
             set LAKEWATCH_LAMBDA_DIST=dist/lambda (the directory holding <function>/bootstrap.zip)",
        )
}

#[test]
#[ignore = "needs the built Lambda packages: scripts/build-lambdas, then LAKEWATCH_LAMBDA_DIST=dist/lambda cargo test -p lakewatch-terraform-checks --test apply -- --ignored (.ci/test does this)"]
fn the_complete_example_applies_replans_clean_works_and_destroys_against_moto() {
    if !terraform_or_skip("the_complete_example_applies_against_moto") {
        return;
    }
    let packages = lambda_packages();
    let moto = MotoServer::start();
    let workspace = Workspace::new();
    workspace.use_lambda_packages(&packages);
    workspace.write(
        &format!("{EXAMPLE}/moto_override.tf"),
        &format!(
            "{}\n{}",
            moto_provider_override(moto.endpoint()),
            TEST_DEPLOYMENT_OVERRIDE
        ),
    );
    workspace.write(
        "modules/lakewatch/moto_gaps_override.tf",
        MOTO_GAPS_OVERRIDE,
    );

    // The committed lock file is copied along: init fails when the mirror's provider does not
    // match it.
    workspace.init(EXAMPLE, true);
    let alert = "-var=alert_email=soc@example.com";
    workspace.ok(EXAMPLE, &["apply", "-no-color", "-auto-approve", alert]);

    let replan = workspace.run(EXAMPLE, &["plan", "-no-color", "-detailed-exitcode", alert]);
    assert_eq!(
        replan.code,
        Some(0),
        "a plan right after apply must show no changes (exit code 0, 2 means changes):\n{}",
        replan.output()
    );

    let outputs = outputs(&workspace);
    let state: Value =
        serde_json::from_str(&workspace.ok(EXAMPLE, &["show", "-json", "-no-color"])).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sdk = moto
            .sdk_config()
            .await
            .to_builder()
            .region(Region::new(REGION))
            .build();
        let s3 = lakewatch_aws::config::s3_client(&sdk);
        for bucket in [&outputs["lake_bucket"], &outputs["input_bucket"]] {
            let policy = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
            assert!(
                policy
                    .policy()
                    .unwrap_or("")
                    .contains("aws:SecureTransport"),
                "{bucket} must refuse plain HTTP"
            );
            s3.delete_bucket_policy()
                .bucket(bucket)
                .send()
                .await
                .unwrap();
        }
        records_put_to_the_stream_arrive_in_the_lake(&sdk, &outputs).await;
        glue_tables_have_the_rust_schema(&sdk, &outputs).await;
        partitions_code_creates_partitions_in_the_table(&sdk, &outputs, &state).await;
        s3_ingest_code_sends_an_input_object_to_the_stream(&sdk, &outputs, &state).await;
    });

    workspace.ok(EXAMPLE, &["destroy", "-no-color", "-auto-approve", alert]);
    let buckets = runtime.block_on(async {
        let sdk = moto.sdk_config().await;
        let s3 = lakewatch_aws::config::s3_client(&sdk);
        let listed = s3.list_buckets().send().await.unwrap();
        listed
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect::<Vec<_>>()
    });
    assert!(buckets.is_empty(), "left after destroy: {buckets:?}");
}

/// `terraform output -json` as name → string value.
fn outputs(workspace: &Workspace) -> BTreeMap<String, String> {
    let json: Value =
        serde_json::from_str(&workspace.ok(EXAMPLE, &["output", "-json", "-no-color"])).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .filter_map(|(name, output)| Some((name.clone(), output["value"].as_str()?.to_owned())))
        .collect()
}

/// A function's environment variables as deployed (from the state terraform read back).
fn function_environment(state: &Value, function: &str) -> BTreeMap<String, String> {
    let address = format!("module.lakewatch.aws_lambda_function.this[\"{function}\"]");
    let modules = state["values"]["root_module"]["child_modules"]
        .as_array()
        .unwrap();
    let resource = modules
        .iter()
        .flat_map(|module| module["resources"].as_array().into_iter().flatten())
        .find(|resource| resource["address"] == address.as_str())
        .unwrap_or_else(|| panic!("{address} is not in the state"));
    resource["values"]["environment"][0]["variables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect()
}

/// Every object under `prefix` of `bucket`, as text.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        found.push((key.to_owned(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    found
}

/// Waits until some object under `prefix` of `bucket` contains every one of `markers`.
async fn wait_for_markers(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, markers: &[&str]) {
    for _ in 0..50 {
        let all: String = objects(s3, bucket, prefix)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        if markers.iter().all(|marker| all.contains(marker)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "s3://{bucket}/{prefix} never held {markers:?}; it holds {:?}",
        objects(s3, bucket, prefix).await
    );
}

async fn records_put_to_the_stream_arrive_in_the_lake(
    sdk: &SdkConfig,
    outputs: &BTreeMap<String, String>,
) {
    let firehose = lakewatch_aws::firehose::client(sdk);
    let s3 = lakewatch_aws::config::s3_client(sdk);
    let markers = ["direct-put-record-1", "direct-put-record-2"];
    let records = markers.iter().map(|marker| {
        aws_sdk_firehose::types::Record::builder()
            .data(aws_sdk_firehose::primitives::Blob::new(format!(
                "{{\"summary\":\"{marker}\"}}\n"
            )))
            .build()
            .unwrap()
    });
    let sent = firehose
        .put_record_batch()
        .delivery_stream_name(&outputs["firehose_stream_name"])
        .set_records(Some(records.collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.failed_put_count(), 0);
    wait_for_markers(&s3, &outputs["lake_bucket"], "events/", &markers).await;
}

async fn glue_tables_have_the_rust_schema(sdk: &SdkConfig, outputs: &BTreeMap<String, String>) {
    let glue = aws_sdk_glue::Client::new(sdk);
    let tables = glue
        .get_tables()
        .database_name(&outputs["glue_database"])
        .send()
        .await
        .unwrap();
    let deployed: BTreeMap<&str, Vec<(&str, &str, &str)>> = tables
        .table_list()
        .iter()
        .map(|table| {
            let columns = table
                .storage_descriptor()
                .map(|descriptor| descriptor.columns())
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    (
                        c.name(),
                        c.r#type().unwrap_or(""),
                        c.comment().unwrap_or(""),
                    )
                })
                .collect();
            (table.name(), columns)
        })
        .collect();
    // The lake's tables, and the detection extract the detector writes.
    let rust: BTreeMap<&str, Vec<(&str, &str, &str)>> = lakewatch_lake::schema::TABLES
        .iter()
        .chain([&lakewatch_lake::schema::EXTRACT])
        .map(|table| {
            let columns = table
                .columns
                .iter()
                .map(|c| (c.name, c.kind.hive_name(), c.comment))
                .collect();
            (table.name, columns)
        })
        .collect();
    assert_eq!(
        deployed, rust,
        "the deployed Glue tables differ from crates/lake/src/schema.rs"
    );
    for table in tables.table_list() {
        let keys: Vec<&str> = table.partition_keys().iter().map(|k| k.name()).collect();
        let expected = if table.name() == lakewatch_lake::schema::EXTRACT.name {
            lakewatch_lake::schema::EXTRACT_PARTITION_KEYS
        } else {
            lakewatch_lake::schema::PARTITION_KEYS
        };
        assert_eq!(keys, expected, "{}", table.name());
    }
}

async fn partitions_code_creates_partitions_in_the_table(
    sdk: &SdkConfig,
    outputs: &BTreeMap<String, String>,
    state: &Value,
) {
    use lakewatch_lambda::settings::FromEnv;
    use partitions::{GeneratorSettings, ensure_partitions};
    let environment = function_environment(state, "partitions");
    let settings = GeneratorSettings::from_lookup(|name| environment.get(name).cloned())
        .expect("the module gives the partitions function every setting it needs");
    assert_eq!(settings.bucket, outputs["lake_bucket"]);
    assert_eq!(settings.database, outputs["glue_database"]);

    let s3 = lakewatch_aws::config::s3_client(sdk);
    let glue = aws_sdk_glue::Client::new(sdk);
    // Late data five hours back, which only the look-back finds.
    let now = Utc::now();
    let late = (now - chrono::Duration::hours(5)).with_minute(0).unwrap();
    let late_values = [
        late.format("%Y").to_string(),
        late.format("%m").to_string(),
        late.format("%d").to_string(),
        late.format("%H").to_string(),
    ];
    let late_key = format!(
        "events/year={}/month={}/day={}/hour={}/late.json.gz",
        late_values[0], late_values[1], late_values[2], late_values[3]
    );
    s3.put_object()
        .bucket(&settings.bucket)
        .key(&late_key)
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();

    let report = ensure_partitions(&s3, &glue, &settings, now).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.counts.added >= 5, "{:?}", report.counts);

    let partitions = glue
        .get_partitions()
        .database_name(&settings.database)
        .table_name("events")
        .send()
        .await
        .unwrap();
    let values: Vec<Vec<String>> = partitions
        .partitions()
        .iter()
        .map(|p| p.values().to_vec())
        .collect();
    let current = [
        now.format("%Y").to_string(),
        now.format("%m").to_string(),
        now.format("%d").to_string(),
        now.format("%H").to_string(),
    ];
    for expected in [current.to_vec(), late_values.to_vec()] {
        assert!(
            values.contains(&expected),
            "partition {expected:?} missing from {values:?}"
        );
    }
}

async fn s3_ingest_code_sends_an_input_object_to_the_stream(
    sdk: &SdkConfig,
    outputs: &BTreeMap<String, String>,
    state: &Value,
) {
    use lakewatch_aws::s3_objects::ObjectRef;
    let environment = function_environment(state, "s3-ingest");
    let settings = s3_ingest::Settings::from_env(|name| environment.get(name).cloned())
        .expect("the module gives the s3-ingest function every setting it needs");
    assert_eq!(settings.stream, outputs["firehose_stream_name"]);
    let function = s3_ingest::Function::new(settings, sdk.clone());

    let input = &outputs["input_bucket"];
    let key = "cloudtrail/2026/12/04/input object.json";
    let markers = ["s3-ingest-line-1", "s3-ingest-line-2", "s3-ingest-line-3"];
    let body: String = markers
        .iter()
        .map(|marker| format!("{{\"summary\":\"{marker}\"}}\n"))
        .collect();
    function
        .s3
        .put_object()
        .bucket(input)
        .key(key)
        .body(body.into_bytes().into())
        .send()
        .await
        .unwrap();

    let object = ObjectRef {
        bucket: input.clone(),
        key: key.to_owned(),
        version_id: None,
    };
    let summary = function.ingester.ingest(&object).await.unwrap();
    assert_eq!((summary.read, summary.sent), (3, 3), "{summary:?}");
    let s3 = lakewatch_aws::config::s3_client(sdk);
    wait_for_markers(&s3, &outputs["lake_bucket"], "events/", &markers).await;
}
