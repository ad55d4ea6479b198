//! `terraform validate` and `terraform plan` with the real AWS provider (from the local mirror,
//! see `lakewatch_terraform_checks::cli`): what parsing the HCL cannot see, such as dependency
//! cycles, functions failing at plan time, and what the provider is asked to create.
//!
//! Plans read only the caller's identity from AWS; a moto server answers it.

use lakewatch_terraform_checks::cli::{
    Run, Workspace, moto_provider_override, planned, resource_changes, terraform_or_skip,
};
use lakewatch_testkit::moto::MotoServer;
use serde_json::Value;

/// The moto server's account, which becomes part of every bucket name.
const MOTO_ACCOUNT: &str = "123456789012";

#[test]
fn module_and_example_validate_with_the_real_provider() {
    if !terraform_or_skip("module_and_example_validate_with_the_real_provider") {
        return;
    }
    let workspace = Workspace::new();
    for dir in ["modules/lakewatch", "examples/complete"] {
        workspace.init(dir, false);
        let output = workspace.ok(dir, &["validate", "-no-color"]);
        assert!(output.contains("The configuration is valid"), "{output}");
    }
}

/// A root module calling the module with `arguments` (HCL lines), planned against moto.
struct ModulePlan {
    workspace: Workspace,
    _moto: MotoServer,
    region: String,
}

impl ModulePlan {
    fn new(region: &str) -> ModulePlan {
        let workspace = Workspace::new();
        workspace.use_placeholder_packages();
        let moto = MotoServer::start();
        workspace.write(
            "check/moto_override.tf",
            &moto_provider_override(moto.endpoint()),
        );
        let plan = ModulePlan {
            workspace,
            _moto: moto,
            region: region.to_owned(),
        };
        plan.write_root("");
        plan.workspace.init("check", false);
        plan
    }

    fn write_root(&self, arguments: &str) {
        let root = format!(
            "provider \"aws\" {{\n  region = \"{region}\"\n}}\n\n\
             module \"lakewatch\" {{\n  source          = \"../modules/lakewatch\"\n  \
             lambda_dist_dir = \"{dist}\"\n{arguments}\n}}\n",
            region = self.region,
            dist = self.workspace.lambda_dist().display(),
        );
        self.workspace.write("check/main.tf", &root);
    }

    /// Plans the module with `arguments`.
    fn plan(&self, arguments: &str) -> Result<Value, Run> {
        self.write_root(arguments);
        self.workspace.plan_json("check", &[])
    }

    /// Plans the module with `arguments`, which must succeed.
    fn plan_ok(&self, arguments: &str) -> Value {
        self.plan(arguments)
            .unwrap_or_else(|run| panic!("plan with {arguments:?} failed:\n{}", run.output()))
    }
}

fn function_environment(plan: &Value, function: &str) -> serde_json::Map<String, Value> {
    let address = format!("module.lakewatch.aws_lambda_function.this[\"{function}\"]");
    planned(plan, &address)["environment"][0]["variables"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn geoip_without_an_asn_database_plans_and_leaves_the_asn_setting_out() {
    if !terraform_or_skip("geoip_without_an_asn_database_plans") {
        return;
    }
    let check = ModulePlan::new("eu-west-1");
    let layer = "arn:aws:lambda:eu-west-1:123456789012:layer:geoip:1";
    let plan = check.plan_ok(&format!("  geoip = {{ layer_arn = \"{layer}\" }}"));
    let environment = function_environment(&plan, "firehose-transform");
    assert_eq!(
        environment["LAKEWATCH_GEOIP_CITY_DATABASE"],
        "/opt/GeoLite2-City.mmdb"
    );
    assert!(
        !environment.contains_key("LAKEWATCH_GEOIP_ASN_DATABASE"),
        "{environment:?}"
    );

    let plan = check.plan_ok(&format!(
        "  geoip = {{ layer_arn = \"{layer}\", asn_database_path = \"/opt/GeoLite2-ASN.mmdb\" }}"
    ));
    let environment = function_environment(&plan, "firehose-transform");
    assert_eq!(
        environment["LAKEWATCH_GEOIP_ASN_DATABASE"],
        "/opt/GeoLite2-ASN.mmdb"
    );
}

#[test]
fn bucket_names_fit_s3_with_the_longest_name_in_the_longest_region() {
    if !terraform_or_skip("bucket_names_fit_s3_with_the_longest_name_in_the_longest_region") {
        return;
    }
    // 26 characters, the longest `name` the module's validation accepts, and a 15-character
    // region code (the longest AWS has).
    let name = format!("l{}z", "a".repeat(24));
    let check = ModulePlan::new("us-isof-south-1");
    let plan = check.plan_ok(&format!("  name = \"{name}\""));
    let buckets: Vec<String> = resource_changes(&plan)
        .into_iter()
        .filter(|(address, _)| address.ends_with("aws_s3_bucket.this"))
        .map(|(_, change)| change["after"]["bucket"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    for bucket in &buckets {
        assert!(bucket.contains(MOTO_ACCOUNT), "{bucket}");
        assert!(
            bucket.len() <= 63,
            "{bucket} has {} characters; S3 allows 63",
            bucket.len()
        );
    }
}

#[test]
fn zero_buffering_is_refused_because_dynamic_partitioning_has_none() {
    if !terraform_or_skip("zero_buffering_is_refused") {
        return;
    }
    let check = ModulePlan::new("eu-west-1");
    let run = check
        .plan("  firehose_buffering_interval_seconds = 0")
        .expect_err("a zero buffering interval must be refused at plan time");
    assert!(
        run.output().contains("zero buffering is not available"),
        "{}",
        run.output()
    );
    let plan = check.plan_ok("  firehose_buffering_interval_seconds = 900");
    let stream = planned(
        &plan,
        "module.lakewatch.aws_kinesis_firehose_delivery_stream.events",
    );
    assert_eq!(
        stream["extended_s3_configuration"][0]["buffering_interval"],
        900
    );
}

/// The address of the planned subscription with `endpoint`.
fn subscription_address(plan: &Value, endpoint: &str) -> String {
    resource_changes(plan)
        .into_iter()
        .find(|(address, change)| {
            address.contains("aws_sns_topic_subscription")
                && change["after"]["endpoint"] == endpoint
        })
        .map(|(address, _)| address.to_owned())
        .unwrap_or_else(|| panic!("no subscription for {endpoint} in the plan"))
}

#[test]
fn subscriptions_keep_their_address_when_another_is_removed_and_firehose_needs_a_role() {
    if !terraform_or_skip("subscriptions_keep_their_address") {
        return;
    }
    let check = ModulePlan::new("eu-west-1");
    let both = check.plan_ok(
        "  alert_subscriptions = [\n    \
         { protocol = \"email\", endpoint = \"first@example.com\" },\n    \
         { protocol = \"email\", endpoint = \"second@example.com\" },\n  ]",
    );
    let second = check.plan_ok(
        "  alert_subscriptions = [{ protocol = \"email\", endpoint = \"second@example.com\" }]",
    );
    // Keyed by position, the second would move to the first's place: destroyed and created
    // again, and its recipient asked to confirm again.
    assert_eq!(
        subscription_address(&both, "second@example.com"),
        subscription_address(&second, "second@example.com")
    );

    let stream = "arn:aws:firehose:eu-west-1:123456789012:deliverystream/alerts-archive";
    let run = check
        .plan(&format!(
            "  alert_subscriptions = [{{ protocol = \"firehose\", endpoint = \"{stream}\" }}]"
        ))
        .expect_err("a firehose subscription without a role must be refused");
    assert!(
        run.output().contains("needs subscription_role_arn"),
        "{}",
        run.output()
    );
    let role = "arn:aws:iam::123456789012:role/sns-to-firehose";
    let plan = check.plan_ok(&format!(
        "  alert_subscriptions = [{{ protocol = \"firehose\", endpoint = \"{stream}\", subscription_role_arn = \"{role}\" }}]"
    ));
    let address = subscription_address(&plan, stream);
    assert_eq!(
        planned(&plan, &address)["subscription_role_arn"],
        role,
        "{address}"
    );
}

#[test]
fn functions_reserve_no_concurrency_unless_asked() {
    if !terraform_or_skip("functions_reserve_no_concurrency_unless_asked") {
        return;
    }
    let reserved = |plan: &Value| -> Vec<(String, i64)> {
        resource_changes(plan)
            .into_iter()
            .filter(|(address, _)| address.contains("aws_lambda_function.this"))
            .map(|(address, change)| {
                let value = change["after"]["reserved_concurrent_executions"]
                    .as_i64()
                    .unwrap();
                (address.to_owned(), value)
            })
            .collect()
    };
    let check = ModulePlan::new("eu-west-1");
    // -1 is Lambda's "unreserved": accounts with a concurrency quota of 10 cannot reserve any.
    let defaults = reserved(&check.plan_ok("  enable_detector = true"));
    assert_eq!(defaults.len(), 4, "{defaults:?}");
    assert!(
        defaults.iter().all(|(_, value)| *value == -1),
        "{defaults:?}"
    );

    let one = reserved(&check.plan_ok("  reserved_concurrency = { firehose_transform = 5 }"));
    for (address, value) in one {
        let expected = if address.contains("firehose-transform") {
            5
        } else {
            -1
        };
        assert_eq!(value, expected, "{address}");
    }
}

/// The planned alarms on lakewatch's own metrics, by alarm name suffix.
fn lakewatch_alarms(plan: &Value) -> Vec<(String, &Value)> {
    resource_changes(plan)
        .into_iter()
        .filter(|(address, _)| address.contains("aws_cloudwatch_metric_alarm.this"))
        .map(|(_, change)| &change["after"])
        .filter(|alarm| alarm["namespace"] == lakewatch_metrics::NAMESPACE)
        .map(|alarm| (alarm["alarm_name"].as_str().unwrap().to_owned(), alarm))
        .collect()
}

#[test]
fn alarms_use_only_metrics_and_dimensions_the_functions_emit() {
    if !terraform_or_skip("alarms_use_only_metrics_and_dimensions_the_functions_emit") {
        return;
    }
    let check = ModulePlan::new("eu-west-1");
    let plan = check.plan_ok(
        "  enable_detector = true\n  alarm_actions = [\"arn:aws:sns:eu-west-1:123456789012:ops\"]",
    );
    let alarms = lakewatch_alarms(&plan);
    let names: Vec<&str> = alarms.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "transform-records-failed",
        "s3-ingest-records-failed",
        "alert-deliveries-failed",
        "detector-rule-failures",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(expected)),
            "no {expected} alarm among {names:?}"
        );
    }
    for (name, alarm) in &alarms {
        let metric_name = alarm["metric_name"].as_str().unwrap();
        let metric = lakewatch_metrics::ALL
            .iter()
            .find(|m| m.name == metric_name)
            .unwrap_or_else(|| panic!("{name} alarms on {metric_name}, which nothing emits"));
        let mut dimensions: Vec<&str> = alarm["dimensions"]
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut emitted = metric.dimensions.to_vec();
        dimensions.sort();
        emitted.sort();
        assert_eq!(
            dimensions, emitted,
            "{name}: CloudWatch matches a metric by its exact dimensions"
        );
        assert_eq!(
            alarm["alarm_actions"],
            serde_json::json!(["arn:aws:sns:eu-west-1:123456789012:ops"]),
            "{name} notifies the alarm topic"
        );
    }
    let mut function_values: Vec<&str> = alarms
        .iter()
        .filter_map(|(_, a)| a["dimensions"]["Function"].as_str())
        .collect();
    function_values.sort();
    assert_eq!(
        function_values,
        [firehose_transform::FUNCTION, s3_ingest::FUNCTION],
        "Function values the functions use"
    );
    // A rule failing in 3 runs in a row: three periods of the detector's 5-minute schedule.
    let (_, rules) = alarms
        .iter()
        .find(|(name, _)| name.ends_with("detector-rule-failures"))
        .unwrap();
    assert_eq!(
        (
            &rules["evaluation_periods"],
            &rules["datapoints_to_alarm"],
            &rules["period"]
        ),
        (&Value::from(3), &Value::from(3), &Value::from(300))
    );
    let hourly = check.plan_ok(
        "  enable_detector = true\n  detector_schedule = \"rate(1 hour)\"\n  rule_failure_runs = 2",
    );
    let (_, rules) = lakewatch_alarms(&hourly)
        .into_iter()
        .find(|(name, _)| name.ends_with("detector-rule-failures"))
        .unwrap();
    assert_eq!(
        (&rules["evaluation_periods"], &rules["period"]),
        (&Value::from(2), &Value::from(3600))
    );
    let refused = check
        .plan("  enable_detector = true\n  rule_failure_runs = 0")
        .expect_err("0 runs is refused");
    assert!(
        refused
            .output()
            .contains("rule_failure_runs must be a whole number"),
        "{}",
        refused.output()
    );
}

#[test]
fn the_content_is_uploaded_per_kind_and_named_in_the_functions_environment() {
    if !terraform_or_skip("the_content_is_uploaded_per_kind") {
        return;
    }
    let module = ModulePlan::new("eu-west-1");
    let mine = module.workspace.path("my-rules");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("mine.toml"), "id = \"mine\"").unwrap();
    let plan = module.plan_ok(&format!(
        "  enable_detector = true\n  rule_dirs = [\"{}\"]\n  content_validator = []",
        mine.display()
    ));
    let object = |kind: &str| {
        planned(
            &plan,
            &format!("module.lakewatch.aws_s3_object.content[\"{kind}\"]"),
        )
        .clone()
    };
    let rules = object("rules");
    assert_eq!(rules["key"], "content/rules.json");
    assert_eq!(rules["server_side_encryption"], "aws:kms");
    let bundle: Value = serde_json::from_str(rules["content"].as_str().unwrap()).unwrap();
    let origins: Vec<&str> = bundle["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["origin"].as_str().unwrap())
        .collect();
    assert!(
        origins.contains(&"rules/impossible-travel.toml"),
        "{origins:?}"
    );
    let mine_origin = format!("{}/mine.toml", mine.display());
    assert_eq!(origins.last(), Some(&mine_origin.as_str()));
    let sources: Value =
        serde_json::from_str(object("sources")["content"].as_str().unwrap()).unwrap();
    assert!(
        sources["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["origin"] == "sources/raw-line.toml")
    );
    assert_eq!(object("queries")["key"], "content/queries.json");
    // The detector's environment holds values known only after apply (the topic's ARN), so a
    // plan does not show it; both come from local.content_environment.
    let environment = function_environment(&plan, "firehose-transform");
    assert_eq!(environment["LAKEWATCH_CONTENT_PREFIX"], "content/");
    assert!(
        environment["LAKEWATCH_CONTENT_BUCKET"]
            .as_str()
            .unwrap()
            .contains("-lake-"),
        "{environment:?}"
    );
    let sources_bundle = object("sources")["content"].as_str().unwrap().to_string();
    assert_eq!(
        environment["LAKEWATCH_CONTENT_SHA256"].as_str().unwrap(),
        sha256_hex(&sources_bundle),
        "the hash of what is uploaded: a new upload is a new version"
    );
    let embedded = module.plan_ok("  deploy_content = false");
    assert!(
        resource_changes(&embedded)
            .iter()
            .all(|(address, _)| !address.contains("aws_s3_object.content")
                && !address.contains("content_validation")),
        "deploy_content = false uploads and validates nothing"
    );
    let environment = function_environment(&embedded, "firehose-transform");
    assert!(
        environment.get("LAKEWATCH_CONTENT_BUCKET").is_none(),
        "without deployed content the transform uses its embedded sources: {environment:?}"
    );
    let missing = module
        .plan("  rule_dirs = [\"/no/such/dir\"]")
        .unwrap_err()
        .output();
    assert!(
        missing.contains("Each of rule_dirs must be a directory holding rule files"),
        "{missing}"
    );
}

/// SHA-256 in hex, as Terraform's `sha256()` gives it.
fn sha256_hex(text: &str) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}
