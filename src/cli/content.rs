//! Where a command's content comes from (`--rules`, `--sources`, `--queries`, each repeatable,
//! and the switches that turn the bundled content off), and `lakewatch validate-content`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use lakewatch_detect::{Rule, Window};
use lakewatch_plugins::content::{ContentSet, line_of};
use lakewatch_plugins::declarative::{self, check};
use lakewatch_plugins::{PluginConfig, builtin_pipeline};
use lakewatch_sql::LocalEngine;
use lakewatch_sql::saved::Template;

/// Rule directories.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleDirs {
    /// A directory of your own rule files (*.toml), used beside the bundled rules; repeat for
    /// several. An id defined twice is an error naming both files.
    #[arg(long = "rules", value_name = "DIR")]
    pub rule_dirs: Vec<PathBuf>,
    /// Leave out the rules bundled in this binary (only those of --rules run).
    #[arg(long)]
    pub no_bundled_rules: bool,
}

/// Source directories.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceDirs {
    /// A directory of your own source files (*.toml, see `lakewatch test-sources`), used beside
    /// the bundled ones; repeat for several. An id defined twice is an error naming both files.
    #[arg(long = "sources", value_name = "DIR")]
    pub source_dirs: Vec<PathBuf>,
    /// Leave out the source files bundled in this binary (the Rust parsers stay).
    #[arg(long)]
    pub no_bundled_sources: bool,
}

/// Saved query directories.
#[derive(Debug, Clone, Default, Args)]
pub struct QueryDirs {
    /// A directory of your own saved queries (*.sql with a header comment, see
    /// `lakewatch query --list-saved`), beside the bundled ones; repeat for several.
    #[arg(long = "queries", value_name = "DIR")]
    pub query_dirs: Vec<PathBuf>,
    /// Leave out the saved queries bundled in this binary.
    #[arg(long)]
    pub no_bundled_queries: bool,
}

fn set(bundled_off: bool, dirs: &[PathBuf]) -> ContentSet {
    ContentSet {
        bundled: !bundled_off,
        ..ContentSet::with_dirs(dirs.to_vec())
    }
}

impl RuleDirs {
    pub fn set(&self) -> ContentSet {
        set(self.no_bundled_rules, &self.rule_dirs)
    }
}

impl SourceDirs {
    pub fn set(&self) -> ContentSet {
        set(self.no_bundled_sources, &self.source_dirs)
    }
}

impl QueryDirs {
    pub fn set(&self) -> ContentSet {
        set(self.no_bundled_queries, &self.query_dirs)
    }

    pub fn load(&self) -> anyhow::Result<Vec<Template>> {
        Ok(lakewatch_sql::saved::load(&self.set())?)
    }
}

/// Check content before it is deployed: load every rule, source and saved query (the bundled
/// ones and those of the directories), compile every rule's SQL for a window and run it, and
/// every saved query with its defaults, on an empty lake with the local engine (Athena's
/// dialect and functions), and run every source's tests through the whole pipeline.
///
/// Prints one line per problem, naming the file and line, and exits non-zero when there is
/// one. `terraform apply` runs it before it uploads content; CI runs it too.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  lakewatch validate-content
  lakewatch validate-content --rules ./my-rules --sources ./my-sources --queries ./my-queries")]
pub struct ValidateContentArgs {
    #[command(flatten)]
    pub rules: RuleDirs,
    #[command(flatten)]
    pub sources: SourceDirs,
    #[command(flatten)]
    pub queries: QueryDirs,
}

/// Runs `lakewatch validate-content`.
pub fn run(args: ValidateContentArgs) -> anyhow::Result<ExitCode> {
    let problems = validate(&args)?;
    let counts = problems.counts;
    for problem in &problems.found {
        println!("{problem}");
    }
    println!(
        "validate-content: {} rules, {} sources ({} tests), {} saved queries; {} problem(s)",
        counts.rules,
        counts.sources,
        counts.source_tests,
        counts.queries,
        problems.found.len()
    );
    Ok(if problems.found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What was checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub rules: usize,
    pub sources: usize,
    pub source_tests: usize,
    pub queries: usize,
}

/// The problems found, one line each (`file:line: what`), and what was checked.
#[derive(Debug, Default)]
pub struct Validation {
    pub found: Vec<String>,
    pub counts: Counts,
}

/// Every check of `validate-content`. A file that does not load is one problem (its kind's
/// other checks then cannot run); everything else is checked one by one.
pub fn validate(args: &ValidateContentArgs) -> anyhow::Result<Validation> {
    let mut out = Validation::default();
    let lake = tempfile::tempdir()?;
    let engine = LocalEngine::open(lake.path())?;
    // Rules read the detection extract (quarter-hour partitions), saved queries the lake.
    let rules_engine = LocalEngine::open_extract(lake.path())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let rule_set = args.rules.set();
    match lakewatch_detect::load(&rule_set) {
        Err(error) => out.found.push(error.to_string()),
        Ok(rules) => {
            out.counts.rules = rules.len();
            let files = rule_set
                .gather(lakewatch_plugins::content::Kind::Rules, &[])
                .unwrap_or_default();
            for rule in &rules {
                if let Err(why) = runtime.block_on(check_rule(&rules_engine, rule)) {
                    let (file, line) = rule_location(rule, &files);
                    out.found
                        .push(format!("{file}:{line}: rule {}: {why}", rule.id));
                }
            }
        }
    }
    let config = PluginConfig {
        sources: args.sources.set(),
        ..PluginConfig::default()
    };
    match declarative::load(&config.sources) {
        Err(error) => out.found.push(error.to_string()),
        Ok(sources) => {
            out.counts.sources = sources.len();
            let pipeline = builtin_pipeline(&config)?;
            for result in check::run(&pipeline, &sources) {
                out.counts.source_tests += 1;
                let file = sources
                    .iter()
                    .find(|s| s.id() == result.source)
                    .map_or("", |s| s.file());
                for failure in &result.failures {
                    out.found.push(format!(
                        "{file}: test {:?} of source {}: {failure}",
                        result.test, result.source
                    ));
                }
            }
            for source in sources.iter().filter(|s| s.tests().is_empty()) {
                out.found.push(format!(
                    "{}: source {} has no [[tests]]: add a sample record and what it must give",
                    source.file(),
                    source.id()
                ));
            }
        }
    }
    match args.queries.load() {
        Err(error) => out.found.push(format!("{error:#}")),
        Ok(queries) => {
            out.counts.queries = queries.len();
            for query in &queries {
                if let Err(why) = runtime.block_on(check_query(&engine, query)) {
                    out.found
                        .push(format!("{}:1: query {}: {why}", query.file, query.name));
                }
            }
        }
    }
    Ok(out)
}

/// A window the rule's SQL is compiled for: any aligned window does.
fn sample_window(rule: &Rule) -> Window {
    let end: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().expect("a fixed time");
    Window::new(end - rule.window.max(TimeDelta::minutes(1)), end)
}

/// Compiles the rule's query for a window and runs it on an empty lake: the SQL must parse
/// and plan (known columns and functions) as Athena's dialect. A silence rule has no SQL (it
/// reads the event counters): loading it already checked its settings.
async fn check_rule(engine: &LocalEngine, rule: &Rule) -> Result<(), String> {
    if matches!(rule.query, lakewatch_detect::Query::Silence { .. }) {
        return Ok(());
    }
    let sql =
        lakewatch_detect::compile::compile(rule, sample_window(rule)).map_err(|e| e.to_string())?;
    engine
        .query(&sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs the query with its defaults (and a placeholder value for required parameters) on an
/// empty lake.
async fn check_query(engine: &LocalEngine, query: &Template) -> Result<(), String> {
    let values: Vec<(String, String)> = query
        .params
        .iter()
        .filter(|p| p.default.is_none())
        .map(|p| (p.name.clone(), "x".to_string()))
        .collect();
    let sql = query.render(&values).map_err(|e| e.to_string())?;
    engine
        .query(&sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The file a rule came from and the line of its `[query]` table (where a SQL problem is).
fn rule_location(
    rule: &Rule,
    files: &[lakewatch_plugins::content::ContentFile],
) -> (String, usize) {
    let bundled = format!("rules/{}.toml", rule.id);
    let file = files
        .iter()
        .find(|f| f.text.contains(&format!("id = \"{}\"", rule.id)));
    match file {
        Some(file) => {
            let line = file
                .text
                .find("[query]")
                .map_or(1, |offset| line_of(&file.text, offset));
            (file.origin.clone(), line)
        }
        None => (bundled, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// [`validate`] on a thread with the main thread's stack: planning SQL in a debug build
    /// needs more than a test thread's 2 MB.
    fn validate(args: &ValidateContentArgs) -> anyhow::Result<Validation> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn_scoped(scope, || super::validate(args))
                .unwrap()
                .join()
                .unwrap()
        })
    }

    fn args(rules: &std::path::Path) -> ValidateContentArgs {
        ValidateContentArgs {
            rules: RuleDirs {
                rule_dirs: vec![rules.to_path_buf()],
                no_bundled_rules: false,
            },
            sources: SourceDirs::default(),
            queries: QueryDirs::default(),
        }
    }

    #[test]
    fn the_bundled_content_and_a_good_rule_validate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("curl-runs.toml"), RULE).unwrap();
        let validation = validate(&args(dir.path())).unwrap();
        assert!(validation.found.is_empty(), "{:#?}", validation.found);
        assert!(validation.counts.rules > 10 && validation.counts.queries >= 7);
        assert!(validation.counts.source_tests > 0);
    }

    #[test]
    fn a_rule_whose_sql_does_not_plan_is_named_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curl-runs.toml");
        std::fs::write(&path, RULE.replace("SELECT hostname", "SELECT hostnme")).unwrap();
        let found = validate(&args(dir.path())).unwrap().found;
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with(&format!("{}:9: rule curl-runs: ", path.display())),
            "{}",
            found[0]
        );
        assert!(found[0].contains("hostnme"), "{}", found[0]);
    }

    #[test]
    fn a_toml_error_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curl-runs.toml");
        std::fs::write(&path, RULE.replace("severity = \"low\"", "severity = low")).unwrap();
        let found = validate(&args(dir.path())).unwrap().found;
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with(&path.display().to_string()),
            "{}",
            found[0]
        );
        assert!(found[0].contains("line 4"), "{}", found[0]);
    }

    #[test]
    fn a_source_whose_test_fails_and_a_bad_query_are_problems() {
        let sources = tempfile::tempdir().unwrap();
        std::fs::write(
            sources.path().join("acme.toml"),
            r#"id = "acme"
description = "Acme"
source = "acme"
category = "test"
summary = "{action}"
[[match.all]]
field = "acme_kind"
exists = true
[[tests]]
name = "one"
record = '{"acme_kind": "x", "action": "login"}'
[tests.expect]
summary = "logout"
"#,
        )
        .unwrap();
        let queries = tempfile::tempdir().unwrap();
        std::fs::write(
            queries.path().join("mine.sql"),
            "-- Mine.\nSELECT nope(1) FROM events",
        )
        .unwrap();
        let args = ValidateContentArgs {
            rules: RuleDirs::default(),
            sources: SourceDirs {
                source_dirs: vec![sources.path().to_path_buf()],
                no_bundled_sources: true,
            },
            queries: QueryDirs {
                query_dirs: vec![queries.path().to_path_buf()],
                no_bundled_queries: true,
            },
        };
        let validation = validate(&args).unwrap();
        let found = validation.found;
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with(&format!(
                "{}: test \"one\" of source acme: summary",
                sources.path().join("acme.toml").display()
            )),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with(&format!(
                "{}:1: query mine: ",
                queries.path().join("mine.sql").display()
            )),
            "{}",
            found[1]
        );
        assert_eq!(validation.counts.sources, 1);
        assert_eq!(validation.counts.queries, 1);
    }
}
