//! `terraform apply` validates the content before it uploads it: a rule whose SQL does not
//! plan fails the apply with the file and line, before any upload; fixed, the apply goes on.
//! Only the validation is applied (`-target`), against a moto server, with the `lakewatch` binary
//! cargo built for these tests. (Not `cargo run`: from inside a test it resolves the root
//! package's features alone and builds the whole dependency tree a second time.)

use lakewatch_terraform_checks::cli::{Workspace, moto_provider_override, terraform_or_skip};
use lakewatch_testkit::moto::MotoServer;

const RULE: &str = r#"id = "curl-runs"
title = "curl"
description = "d"
severity = "low"
interval = "5m"
window = "5m"
summary = "{hostname}"

[query]
kind = "sql"
sql = "SELECT hostname FROM events WHERE {{window}} AND summary LIKE '%curl%'"
"#;

fn validator() -> String {
    serde_json::to_string(&[env!("CARGO_BIN_EXE_lakewatch")]).unwrap()
}

#[test]
fn bad_content_fails_terraform_apply_with_file_and_line_before_any_upload() {
    if !terraform_or_skip("bad_content_fails_terraform_apply") {
        return;
    }
    let workspace = Workspace::new();
    workspace.use_placeholder_packages();
    let moto = MotoServer::start();
    workspace.write(
        "check/moto_override.tf",
        &moto_provider_override(moto.endpoint()),
    );
    let rules = workspace.path("my-rules");
    std::fs::create_dir_all(&rules).unwrap();
    let rule = rules.join("curl-runs.toml");
    std::fs::write(&rule, RULE.replace("SELECT hostname", "SELECT hostnme")).unwrap();
    workspace.write(
        "check/main.tf",
        &format!(
            "provider \"aws\" {{\n  region = \"eu-west-1\"\n}}\n\n\
             module \"lakewatch\" {{\n  source            = \"../modules/lakewatch\"\n  \
             lambda_dist_dir   = \"{dist}\"\n  rule_dirs         = [\"{rules}\"]\n  \
             content_validator = {validator}\n}}\n",
            dist = workspace.lambda_dist().display(),
            rules = rules.display(),
            validator = validator(),
        ),
    );
    workspace.init("check", false);
    let apply = [
        "apply",
        "-no-color",
        "-auto-approve",
        "-target=module.lakewatch.terraform_data.content_validation",
    ];
    let failed = workspace.run("check", &apply);
    assert_ne!(failed.code, Some(0), "{}", failed.output());
    let output = failed.output();
    assert!(
        output.contains(&format!("{}:9: rule curl-runs:", rule.display())),
        "{output}"
    );
    assert!(output.contains("hostnme"), "{output}");

    std::fs::write(&rule, RULE).unwrap();
    let fixed = workspace.run("check", &apply);
    assert_eq!(fixed.code, Some(0), "{}", fixed.output());
    assert!(
        fixed.output().contains("validate-content: "),
        "{}",
        fixed.output()
    );
}
