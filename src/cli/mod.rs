//! Command-line interface: one module per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// lakewatch: a serverless security data lake and detection engine, run locally.
#[derive(Debug, Parser)]
#[command(name = "lakewatch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs one subcommand and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {}
}
