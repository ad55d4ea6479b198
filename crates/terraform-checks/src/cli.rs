//! Runs the `terraform` CLI with the real AWS provider on a copy of the repository's
//! `terraform/` tree, so tests can validate, plan and apply the module against a moto server.
//!
//! The provider comes from a local filesystem mirror (a directory holding
//! `registry.terraform.io/hashicorp/aws/<version>/<platform>/`), passed to
//! `terraform init -plugin-dir`: no network, and exactly the version the lock file names. The
//! mirror is `$LAKEWATCH_TERRAFORM_PLUGIN_DIR`, else the first of the usual mirror directories
//! that holds the AWS provider.
//!
//! Tests call [`terraform_or_skip`] first: without a `terraform` binary they are skipped with a
//! message, except in CI (`CI=true`), where a missing binary or mirror fails the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The variable naming the provider mirror directory (the one holding `registry.terraform.io`).
pub const PLUGIN_DIR_ENV: &str = "LAKEWATCH_TERRAFORM_PLUGIN_DIR";

/// The functions the module deploys, each as `<lambda_dist_dir>/<function>/bootstrap.zip`.
pub const FUNCTIONS: [&str; 4] = ["firehose-transform", "s3-ingest", "partitions", "detector"];

/// The AWS services the module uses: each gets the moto endpoint in the provider block.
const SERVICES: [&str; 13] = [
    "athena",
    "cloudwatch",
    "events",
    "firehose",
    "glue",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "sts",
];

/// Directories where Terraform looks for provider mirrors by itself (besides the one
/// [`PLUGIN_DIR_ENV`] names), and where machine images usually put one.
fn mirror_candidates() -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::from("/opt/tf-plugins")];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        candidates.push(home.join(".terraform.d/plugins"));
        candidates.push(home.join(".local/share/terraform/plugins"));
    }
    candidates.push(PathBuf::from("/usr/local/share/terraform/plugins"));
    candidates.push(PathBuf::from("/usr/share/terraform/plugins"));
    candidates
}

/// The repository's `terraform/` directory.
pub fn terraform_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

/// Whether this run is in CI, where nothing may be skipped.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// True when `terraform` runs here. Otherwise prints why `test` is skipped and returns false,
/// or, in CI, panics: CI must prove the module with the real provider.
pub fn terraform_or_skip(test: &str) -> bool {
    match Command::new("terraform").arg("version").output() {
        Ok(output) if output.status.success() => true,
        outcome => {
            let why = match outcome {
                Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                Err(error) => error.to_string(),
            };
            let message = format!(
                "terraform is not installed ({}): install Terraform 1.5 or later \
                 (https://developer.hashicorp.com/terraform/install) to run {test}",
                why.trim()
            );
            if in_ci() {
                panic!("{message}; CI=true, so this is a failure, not a skip");
            }
            eprintln!("SKIPPED: {message}");
            false
        }
    }
}

/// The provider mirror: the directory holding `registry.terraform.io/hashicorp/aws/...`.
///
/// # Panics
/// When none is found, with how to provide one: a test that needs the provider never passes
/// without it.
pub fn provider_mirror() -> PathBuf {
    let holds_aws = |dir: &Path| dir.join("registry.terraform.io/hashicorp/aws").is_dir();
    if let Some(dir) = std::env::var_os(PLUGIN_DIR_ENV).map(PathBuf::from) {
        assert!(
            holds_aws(&dir),
            "{PLUGIN_DIR_ENV}={} holds no registry.terraform.io/hashicorp/aws/<version>/<platform>/",
            dir.display()
        );
        return dir;
    }
    let candidates = mirror_candidates();
    candidates
        .iter()
        .find(|dir| holds_aws(dir))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no local mirror of the hashicorp/aws provider found (looked in {}). Find one with \
                 `find / -xdev -path '*registry.terraform.io/hashicorp/aws/*' -name \
                 'terraform-provider-aws*'` and set {PLUGIN_DIR_ENV} to the directory holding \
                 registry.terraform.io, or create one with `terraform providers mirror <dir>` in \
                 terraform/examples/complete",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The provider versions in the mirror (e.g. `["5.100.0"]`).
pub fn mirrored_versions(mirror: &Path) -> Vec<String> {
    let dir = mirror.join("registry.terraform.io/hashicorp/aws");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions
}

/// A provider block that sends every request the module makes to `endpoint` (a moto server),
/// with dummy credentials, for an override file (`*_override.tf`) of a root module.
pub fn moto_provider_override(endpoint: &str) -> String {
    let mut endpoints = String::new();
    for service in SERVICES {
        let _ = writeln!(endpoints, "    {service} = \"{endpoint}\"");
    }
    format!(
        "# Written by crates/terraform-checks: every AWS API call goes to a moto server.\n\
         provider \"aws\" {{\n  \
           access_key                  = \"test\"\n  \
           secret_key                  = \"test\"\n  \
           skip_credentials_validation = true\n  \
           skip_metadata_api_check     = true\n  \
           skip_region_validation      = true\n  \
           s3_use_path_style           = true\n  \
           endpoints {{\n{endpoints}  }}\n\
         }}\n"
    )
}

/// A copy of `terraform/` in a temporary directory, next to a `dist/lambda` directory and the
/// bundled `rules/`, `sources/` and `queries/`, laid out as in the repository so the module's
/// and the example's relative paths hold. Removed on drop.
pub struct Workspace {
    dir: tempfile::TempDir,
    mirror: PathBuf,
}

/// The outcome of a terraform command: its exit code and what it printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything printed, for failure messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Workspace {
    /// Copies the tree (without `.terraform/` directories or state files) and finds the mirror.
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        copy_tree(&terraform_root(), &dir.path().join("terraform"))
            .expect("copy terraform/ to a temporary directory");
        // The bundled content the module uploads, where it finds it (the repository root).
        for content in ["rules", "sources", "queries"] {
            copy_tree(
                &terraform_root().join("..").join(content),
                &dir.path().join(content),
            )
            .unwrap_or_else(|e| panic!("copy {content}/ to a temporary directory: {e}"));
        }
        std::fs::create_dir_all(dir.path().join("dist")).expect("create dist/");
        Workspace {
            dir,
            mirror: provider_mirror(),
        }
    }

    /// A path inside the copied `terraform/` tree, e.g. `examples/complete`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join("terraform").join(relative)
    }

    /// Where the module finds the Lambda packages (`dist/lambda`, as in the repository).
    pub fn lambda_dist(&self) -> PathBuf {
        self.dir.path().join("dist/lambda")
    }

    /// Links `dist/lambda` to a directory of built packages (`scripts/build-lambdas` output).
    pub fn use_lambda_packages(&self, packages: &Path) {
        let packages = packages
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", packages.display()));
        for function in FUNCTIONS {
            let zip = packages.join(function).join("bootstrap.zip");
            assert!(
                zip.is_file(),
                "{} is missing: build the packages with scripts/build-lambdas",
                zip.display()
            );
        }
        std::os::unix::fs::symlink(&packages, self.lambda_dist())
            .expect("link dist/lambda to the packages");
    }

    /// Writes a small zip per function, for plans: terraform only hashes the files, and
    /// moto stores functions without running them.
    pub fn use_placeholder_packages(&self) {
        for function in FUNCTIONS {
            let dir = self.lambda_dist().join(function);
            std::fs::create_dir_all(&dir).expect("create a package directory");
            std::fs::write(dir.join("bootstrap.zip"), EMPTY_ZIP).expect("write a placeholder zip");
        }
    }

    /// Writes `file` (relative to the tree) with `text`.
    pub fn write(&self, file: &str, text: &str) {
        let path = self.path(file);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create the file's directory");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Runs `terraform <args>` in `dir` (relative to the tree) and returns what happened.
    pub fn run(&self, dir: &str, args: &[&str]) -> Run {
        let output = Command::new("terraform")
            .arg(format!("-chdir={}", self.path(dir).display()))
            .args(args)
            // The machine's CLI configuration could redirect provider installation.
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("run terraform");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `terraform <args>` in `dir` and returns its standard output.
    ///
    /// # Panics
    /// When the command fails, with everything it printed.
    pub fn ok(&self, dir: &str, args: &[&str]) -> String {
        let run = self.run(dir, args);
        assert_eq!(
            run.code,
            Some(0),
            "terraform {} in {dir} failed:\n{}",
            args.join(" "),
            run.output()
        );
        run.stdout
    }

    /// `terraform init` with the provider from the mirror only (no registry, no network).
    pub fn init(&self, dir: &str, backend: bool) {
        let plugin_dir = format!("-plugin-dir={}", self.mirror.display());
        let backend = format!("-backend={backend}");
        self.ok(dir, &["init", "-no-color", &plugin_dir, &backend]);
    }

    /// The plan of `dir` as `terraform show -json` prints it, or the failed run.
    pub fn plan_json(&self, dir: &str, extra: &[&str]) -> Result<Value, Run> {
        let mut args = vec!["plan", "-no-color", "-out=check.tfplan"];
        args.extend_from_slice(extra);
        let run = self.run(dir, &args);
        if run.code != Some(0) {
            return Err(run);
        }
        let shown = self.ok(dir, &["show", "-json", "check.tfplan"]);
        Ok(serde_json::from_str(&shown).expect("terraform show -json prints JSON"))
    }
}

/// A zip archive with no entries: enough for `filebase64sha256` and for moto.
const EMPTY_ZIP: &[u8] = &[
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text == ".terraform" || name_text.contains(".tfstate") {
            continue;
        }
        let source = entry.path();
        if entry.file_type()?.is_dir() {
            copy_tree(&source, &to.join(&name))?;
        } else {
            std::fs::copy(&source, to.join(&name))?;
        }
    }
    Ok(())
}

/// Every resource of a plan's `resource_changes`, as (address, change).
pub fn resource_changes(plan: &Value) -> Vec<(&str, &Value)> {
    plan["resource_changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|change| (change["address"].as_str().unwrap_or(""), &change["change"]))
                .collect()
        })
        .unwrap_or_default()
}

/// The planned values (`change.after`) of the resource at `address`.
pub fn planned<'a>(plan: &'a Value, address: &str) -> &'a Value {
    resource_changes(plan)
        .into_iter()
        .find(|(a, _)| *a == address)
        .map(|(_, change)| &change["after"])
        .unwrap_or_else(|| panic!("the plan has no resource {address}"))
}
