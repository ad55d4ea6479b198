//! Command-line interface: one module per subcommand.
//!
//! Adding a subcommand: a module with an `Args` struct (its doc comment is the `--help` text)
//! and a `run(args) -> anyhow::Result<ExitCode>`, one variant below and one match arm.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakewatch_metrics::Figures;

pub mod content;
pub mod ddl;
pub mod demo;
pub mod detect;
pub mod ingest;
pub mod partitions;
pub mod query;
pub mod sources;

/// lakewatch: a serverless security data lake and detection engine, run locally.
///
/// The same pipeline, lake layout and rules as the AWS deployment, on one machine: ingest logs
/// into a lake directory, then query it and run detections.
#[derive(Debug, Parser)]
#[command(name = "lakewatch", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Each subcommand's help is the doc comment of its Args struct.
    Demo(demo::DemoArgs),
    Ingest(ingest::IngestArgs),
    Detect(detect::DetectArgs),
    /// Run every detection rule's test cases offline.
    TestRules(detect::TestRulesArgs),
    TestSources(sources::TestSourcesArgs),
    Ddl(ddl::DdlArgs),
    Partitions(partitions::PartitionsArgs),
    Query(query::QueryArgs),
    ValidateContent(content::ValidateContentArgs),
}

/// Runs one subcommand and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Detect(args) => detect::run(args),
        Command::TestRules(args) => detect::run_tests(args),
        Command::TestSources(args) => sources::run(args),
        Command::Ddl(args) => ddl::run(args),
        Command::Partitions(args) => partitions::run(args),
        Command::Query(args) => query::run(args),
        Command::ValidateContent(args) => content::run(args),
    }
}

/// How `ingest` and `detect` end: with the run's metrics as a table, as the CloudWatch EMF
/// lines the Lambdas print for the same figures, or not at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsFormat {
    #[default]
    Table,
    Emf,
    None,
}

impl MetricsFormat {
    /// The figures in this format, stamped `now` (EMF), after a blank line.
    pub fn render(self, figures: &Figures, now: chrono::DateTime<chrono::Utc>) -> String {
        match self {
            MetricsFormat::Table => format!(
                "\nmetrics (namespace {})\n{}",
                lakewatch_metrics::NAMESPACE,
                figures.table()
            ),
            MetricsFormat::Emf => {
                let mut out = String::from("\n");
                for line in figures.emf_lines(now.timestamp_millis()) {
                    out.push_str(&line);
                    out.push('\n');
                }
                out
            }
            MetricsFormat::None => String::new(),
        }
    }
}
