//! Properties of terraform/ that a deployment relies on, checked on the HCL itself.

use lakewatch_terraform_checks::cli::terraform_root;
use lakewatch_terraform_checks::{
    TerraformFile, as_str, attribute, block_name, blocks, nested, object_entries, parse_tree,
    render, string_list,
};
use std::collections::{BTreeMap, BTreeSet};

fn tree() -> Vec<TerraformFile> {
    parse_tree(&terraform_root()).unwrap_or_else(|e| panic!("terraform/ does not parse: {e}"))
}

fn module_files(files: &[TerraformFile], module: &str) -> Vec<TerraformFile> {
    let dir = terraform_root().join(module).canonicalize().unwrap();
    parse_tree(&dir)
        .unwrap()
        .into_iter()
        .filter(|f| f.path.parent().map(|p| p.canonicalize().unwrap()) == Some(dir.clone()))
        .filter(|f| {
            files
                .iter()
                .any(|g| g.path.ends_with(f.path.file_name().unwrap()))
        })
        .collect()
}

#[test]
fn every_terraform_file_parses() {
    let files = tree();
    let names: BTreeSet<_> = files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
        assert!(
            names.contains(expected),
            "{expected} missing from terraform/"
        );
    }
    assert!(files.len() >= 15, "only {} .tf files found", files.len());
}

/// Whether an IAM action is a wildcard over a whole service (`*`, `s3:*`).
fn is_service_wildcard(action: &str) -> bool {
    action == "*" || action.ends_with(":*")
}

#[test]
fn no_iam_statement_allows_wildcard_actions_or_s3_star() {
    let files = tree();
    let mut statements = 0;
    for (file, document) in blocks(&files, "data", "aws_iam_policy_document") {
        for statement in nested(document.body(), "statement") {
            statements += 1;
            let effect = attribute(statement, "effect")
                .and_then(as_str)
                .unwrap_or("Allow");
            let actions = attribute(statement, "actions")
                .map(string_list)
                .unwrap_or_default();
            assert!(
                attribute(statement, "not_actions").is_none(),
                "{}: {} uses not_actions",
                file.path.display(),
                block_name(document)
            );
            if effect == "Allow" {
                for action in &actions {
                    assert!(
                        !is_service_wildcard(action),
                        "{}: policy {} allows the wildcard action {action}",
                        file.path.display(),
                        block_name(document)
                    );
                }
            }
        }
    }
    assert!(statements > 20, "found only {statements} IAM statements");
    // Policies are only ever written as policy documents, and no managed policy is attached.
    assert_eq!(
        blocks(&files, "resource", "aws_iam_role_policy_attachment").count(),
        0
    );
    assert_eq!(blocks(&files, "resource", "aws_iam_policy").count(), 0);
}

#[test]
fn wildcard_check_catches_service_wildcards() {
    assert!(is_service_wildcard("*"));
    assert!(is_service_wildcard("s3:*"));
    assert!(!is_service_wildcard("s3:GetObject"));
    assert!(!is_service_wildcard("kms:Describe*"));
}

#[test]
fn each_function_has_its_own_role_and_policy() {
    let files = tree();
    let (_, function) = blocks(&files, "resource", "aws_lambda_function")
        .find(|(_, b)| block_name(b) == "this")
        .expect("aws_lambda_function.this");
    let role = render(attribute(function.body(), "role").unwrap());
    assert_eq!(role, "aws_iam_role.function[each.key].arn");
    let (_, roles) = blocks(&files, "resource", "aws_iam_role")
        .find(|(_, b)| block_name(b) == "function")
        .expect("aws_iam_role.function");
    let for_each = |body| render(attribute(body, "for_each").unwrap());
    assert_eq!(for_each(function.body()), "local.functions");
    assert_eq!(for_each(roles.body()), "local.functions");

    let locals: Vec<_> = files
        .iter()
        .flat_map(|f| f.body.blocks().filter(|b| b.identifier() == "locals"))
        .collect();
    let policies = locals
        .iter()
        .find_map(|b| attribute(b.body(), "function_policies"))
        .expect("local.function_policies");
    let policies: BTreeMap<_, _> = object_entries(policies)
        .into_iter()
        .map(|(k, v)| (k, render(v)))
        .collect();
    assert_eq!(
        policies.keys().map(String::as_str).collect::<Vec<_>>(),
        ["detector", "firehose-transform", "partitions", "s3-ingest"]
    );
    let distinct: BTreeSet<_> = policies.values().collect();
    assert_eq!(
        distinct.len(),
        policies.len(),
        "two functions share a policy"
    );
    let functions = locals
        .iter()
        .find_map(|b| attribute(b.body(), "functions"))
        .map(render)
        .expect("local.functions");
    for name in policies.keys() {
        assert!(
            functions.contains(&format!("{name} ")),
            "{name} missing from local.functions"
        );
    }
}

#[test]
fn firehose_invokes_the_transform_through_its_alias() {
    let files = tree();
    let (_, stream) = blocks(&files, "resource", "aws_kinesis_firehose_delivery_stream")
        .next()
        .expect("a Firehose delivery stream");
    let s3 = &nested(stream.body(), "extended_s3_configuration")[0];
    let processing = &nested(s3, "processing_configuration")[0];
    let processor = &nested(processing, "processors")[0];
    let lambda_arn = nested(processor, "parameters")
        .into_iter()
        .find(|p| attribute(p, "parameter_name").and_then(as_str) == Some("LambdaArn"))
        .map(|p| render(attribute(p, "parameter_value").unwrap()))
        .expect("a LambdaArn parameter");
    assert!(
        lambda_arn.starts_with("aws_lambda_alias."),
        "Firehose must invoke a published alias, not {lambda_arn}"
    );
    let prefix = render(attribute(s3, "prefix").unwrap());
    assert!(prefix.contains(
        "year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/"
    ));
    let errors = render(attribute(s3, "error_output_prefix").unwrap());
    assert!(errors.contains("!{firehose:error-output-type}"));
    assert_eq!(
        attribute(s3, "compression_format").and_then(as_str),
        Some("GZIP")
    );
    // The alias points at the published version, never $LATEST.
    let (_, alias) = blocks(&files, "resource", "aws_lambda_alias")
        .next()
        .unwrap();
    assert_eq!(
        render(attribute(alias.body(), "function_version").unwrap()),
        "aws_lambda_function.this[each.key].version"
    );
}

#[test]
fn every_bucket_is_kms_encrypted_tls_only_and_private() {
    let files = tree();
    let buckets: Vec<_> = blocks(&files, "resource", "aws_s3_bucket").collect();
    assert_eq!(
        buckets.len(),
        1,
        "every bucket must come from modules/bucket, which holds the only aws_s3_bucket"
    );
    assert!(
        buckets[0]
            .0
            .path
            .to_string_lossy()
            .contains("modules/bucket")
    );
    let module = module_files(&files, "modules/lakewatch/modules/bucket");

    let (_, encryption) = blocks(
        &module,
        "resource",
        "aws_s3_bucket_server_side_encryption_configuration",
    )
    .next()
    .expect("server-side encryption");
    let rule = &nested(encryption.body(), "rule")[0];
    let default = &nested(rule, "apply_server_side_encryption_by_default")[0];
    assert_eq!(
        attribute(default, "sse_algorithm").and_then(as_str),
        Some("aws:kms")
    );
    assert_eq!(
        render(attribute(default, "kms_master_key_id").unwrap()),
        "var.kms_key_arn"
    );

    let (_, policy) = blocks(&module, "data", "aws_iam_policy_document")
        .next()
        .expect("a bucket policy");
    let denies_plain_http = nested(policy.body(), "statement").iter().any(|s| {
        attribute(s, "effect").and_then(as_str) == Some("Deny")
            && nested(s, "condition").iter().any(|c| {
                attribute(c, "variable").and_then(as_str) == Some("aws:SecureTransport")
                    && string_list(attribute(c, "values").unwrap()) == ["false"]
            })
    });
    assert!(
        denies_plain_http,
        "bucket policy must deny non-TLS requests"
    );

    let (_, public) = blocks(&module, "resource", "aws_s3_bucket_public_access_block")
        .next()
        .expect("public access block");
    for setting in [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ] {
        assert_eq!(
            render(attribute(public.body(), setting).unwrap()),
            "true",
            "{setting}"
        );
    }

    // The parent module passes its customer key to every bucket.
    let parent = module_files(&files, "modules/lakewatch");
    let calls: Vec<_> = parent
        .iter()
        .flat_map(|f| f.body.blocks().filter(|b| b.identifier() == "module"))
        .filter(|b| attribute(b.body(), "source").and_then(as_str) == Some("./modules/bucket"))
        .collect();
    assert_eq!(calls.len(), 3, "lake, input and athena-results buckets");
    for call in calls {
        assert_eq!(
            render(attribute(call.body(), "kms_key_arn").unwrap()),
            "aws_kms_key.this.arn"
        );
    }
}

#[test]
fn glue_tables_match_the_rust_schema() {
    let files = tree();
    let locals = files
        .iter()
        .flat_map(|f| f.body.blocks().filter(|b| b.identifier() == "locals"))
        .find(|b| attribute(b.body(), "table_columns").is_some())
        .expect("local.table_columns in glue.tf");
    let tables = object_entries(attribute(locals.body(), "table_columns").unwrap());
    let terraform: BTreeMap<String, Vec<(String, String, String)>> = tables
        .into_iter()
        .map(|(table, columns)| {
            let hcl::Expression::Array(columns) = columns else {
                panic!("columns of {table} must be a list")
            };
            let columns = columns
                .iter()
                .map(|column| {
                    let fields: BTreeMap<_, _> = object_entries(column)
                        .into_iter()
                        .map(|(k, v)| (k, render(v)))
                        .collect();
                    (
                        fields["name"].clone(),
                        fields["type"].clone(),
                        fields["comment"].clone(),
                    )
                })
                .collect();
            (table, columns)
        })
        .collect();
    let rust: BTreeMap<String, Vec<(String, String, String)>> = lakewatch_lake::schema::TABLES
        .iter()
        .map(|table| {
            let columns = table
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.kind.hive_name().to_string(),
                        c.comment.to_string(),
                    )
                })
                .collect();
            (table.name.to_string(), columns)
        })
        .collect();
    assert_eq!(
        terraform, rust,
        "terraform/modules/lakewatch/glue.tf drifted from crates/lake/src/schema.rs"
    );

    let partition_keys = attribute(locals.body(), "partition_keys")
        .map(string_list)
        .unwrap();
    assert_eq!(partition_keys, lakewatch_lake::schema::PARTITION_KEYS);
}

#[test]
fn every_function_may_decrypt_its_environment_with_the_deployment_key() {
    // Lambda decrypts an environment encrypted with a customer key using the function's role:
    // without kms:Decrypt on that key, every invocation fails.
    let files = tree();
    let (_, function) = blocks(&files, "resource", "aws_lambda_function")
        .find(|(_, b)| block_name(b) == "this")
        .unwrap();
    assert_eq!(
        render(attribute(function.body(), "kms_key_arn").unwrap()),
        "aws_kms_key.this.arn"
    );
    let (_, baseline) = blocks(&files, "data", "aws_iam_policy_document")
        .find(|(_, b)| block_name(b) == "baseline")
        .expect("a baseline policy document");
    let decrypts = nested(baseline.body(), "statement").iter().any(|s| {
        string_list(attribute(s, "actions").unwrap()).contains(&"kms:Decrypt".to_string())
            && string_list(attribute(s, "resources").unwrap()) == ["aws_kms_key.this.arn"]
    });
    assert!(
        decrypts,
        "the baseline must allow kms:Decrypt on the deployment key"
    );

    let policies = files
        .iter()
        .flat_map(|f| f.body.blocks().filter(|b| b.identifier() == "locals"))
        .find_map(|b| attribute(b.body(), "function_policies"))
        .expect("local.function_policies");
    for (function, policy) in object_entries(policies) {
        let policy = render(policy);
        let baseline = format!("data.aws_iam_policy_document.baseline[\"{function}\"].json");
        if policy == baseline {
            continue;
        }
        let name = policy
            .trim_start_matches("data.aws_iam_policy_document.")
            .trim_end_matches(".json");
        let (_, document) = blocks(&files, "data", "aws_iam_policy_document")
            .find(|(_, b)| block_name(b) == name)
            .unwrap_or_else(|| panic!("{function}: no policy document {name}"));
        let sources = attribute(document.body(), "source_policy_documents")
            .map(string_list)
            .unwrap_or_default();
        assert_eq!(sources, [baseline], "{function} must build on its baseline");
    }
}

#[test]
fn the_detector_may_use_the_results_location_as_athena_documents() {
    // Athena writes large query results as multipart uploads, which it lists and aborts: the
    // actions it documents for a workgroup's query runner on the results location.
    let files = tree();
    let (_, detector) = blocks(&files, "data", "aws_iam_policy_document")
        .find(|(_, b)| block_name(b) == "detector")
        .expect("the detector's policy document");
    let granted = |resource: &str| -> BTreeSet<String> {
        nested(detector.body(), "statement")
            .into_iter()
            .filter(|s| attribute(s, "effect").and_then(as_str).unwrap_or("Allow") == "Allow")
            .filter(|s| {
                // A template renders with its quotes.
                string_list(attribute(s, "resources").unwrap())
                    .iter()
                    .any(|r| r.trim_matches('"') == resource)
            })
            .flat_map(|s| string_list(attribute(s, "actions").unwrap()))
            .collect()
    };
    let bucket = granted("local.athena_results_arn");
    for action in [
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
    ] {
        assert!(
            bucket.contains(action),
            "{action} missing on the results bucket: {bucket:?}"
        );
    }
    let objects = granted("${local.athena_results_arn}/*");
    for action in [
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ] {
        assert!(
            objects.contains(action),
            "{action} missing on the results: {objects:?}"
        );
    }
}

#[test]
fn nothing_uses_what_provider_6_deprecates() {
    // Provider 6 deprecates `data.aws_region.<name>.name` in favour of `region`, which provider
    // 5 lacks; `id` is the region's name in both.
    let deprecated = regex::Regex::new(r"data\.aws_region\.[A-Za-z0-9_-]+\.name\b").unwrap();
    let found: Vec<String> = tree()
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file.path).unwrap();
            text.lines()
                .filter(|line| deprecated.is_match(line))
                .map(|line| format!("{}: {}", file.path.display(), line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "deprecated in provider 6: {found:?}");
}

/// The provider version the example's lock file names.
fn locked_provider_version() -> String {
    let lock = terraform_root().join("examples/complete/.terraform.lock.hcl");
    let body = hcl::parse(&std::fs::read_to_string(&lock).expect(
        "terraform/examples/complete/.terraform.lock.hcl is missing: run terraform init there",
    ))
    .unwrap();
    let provider = body
        .blocks()
        .find(|b| {
            b.identifier() == "provider"
                && b.labels().first().map(|l| l.as_str())
                    == Some("registry.terraform.io/hashicorp/aws")
        })
        .expect("the lock file pins hashicorp/aws");
    attribute(provider.body(), "version")
        .and_then(as_str)
        .unwrap()
        .to_owned()
}

#[test]
fn the_version_constraint_admits_only_the_tested_provider_line() {
    // CI applies the example with the provider the lock file names: every module accepts that
    // version and later 5.x releases (~> 5.<minor>), nothing older and no other major version.
    let locked = locked_provider_version();
    let mut parts = locked.split('.');
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    let expected = format!("~> {major}.{minor}");
    let files = tree();
    let mut constraints = 0;
    for file in files.iter().filter(|f| f.path.ends_with("versions.tf")) {
        for terraform in file.body.blocks().filter(|b| b.identifier() == "terraform") {
            for required in nested(terraform.body(), "required_providers") {
                let aws = attribute(required, "aws").expect("an aws provider requirement");
                let version = object_entries(aws)
                    .into_iter()
                    .find(|(key, _)| key == "version")
                    .map(|(_, value)| render(value))
                    .unwrap();
                assert_eq!(version, expected, "{}", file.path.display());
                constraints += 1;
            }
        }
    }
    assert_eq!(
        constraints, 3,
        "the module, the bucket module and the example"
    );
    let readme = std::fs::read_to_string(terraform_root().join("../README.md")).unwrap();
    let deploy = &readme[readme.find("## Deploy").expect("a Deploy section")..];
    assert!(
        deploy.contains(&format!("hashicorp/aws {locked}")),
        "the README's Deploy section must name the tested provider, hashicorp/aws {locked}"
    );
}

#[test]
fn the_default_transform_buffer_is_no_larger_than_the_transform_is_sized_for() {
    // Raw syslog grows ~10x into the response; a larger buffer fails records for size
    // (issue 15). firehose-transform's tests/growth.rs measures that growth against the same
    // constant.
    let files = tree();
    let (_, variable) = blocks(&files, "variable", "transform_buffering_size_mb")
        .next()
        .expect("a transform_buffering_size_mb variable");
    let default_mb: f64 = render(attribute(variable.body(), "default").expect("a default"))
        .parse()
        .expect("a number");
    // Whole bytes: 0.4 MB is 419,430.4 bytes, which Firehose cannot buffer a fraction of.
    let default_bytes = (default_mb * 1024.0 * 1024.0).floor();
    assert!(
        default_bytes <= firehose_transform::PROCESSING_BUFFER_BYTES as f64,
        "transform_buffering_size_mb defaults to {default_mb} MB, more than the \
         {} bytes firehose_transform::PROCESSING_BUFFER_BYTES is measured against",
        firehose_transform::PROCESSING_BUFFER_BYTES
    );
    assert!(default_mb >= 0.2, "Firehose accepts 0.2-3 MB");
}
