//! `lakewatch ddl`: the Athena statements that create the lake's database and tables.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use lakewatch_lake::ddl;

/// Print the Athena DDL of the lake's database and tables.
///
/// The tables match what the Terraform module creates and what the partitions Lambda expects:
/// the columns of the event shell (and of alerts), gzip NDJSON read by the OpenX JSON SerDe,
/// partitioned by year/month/day/hour (strings) under s3://BUCKET/events/ and
/// s3://BUCKET/alerts/. Use it where Terraform does not manage Glue: run each statement in the
/// Athena console, then let the partitions Lambda (or MSCK REPAIR TABLE) add the partitions.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  lakewatch ddl --bucket lakewatch-lake-123456789012-eu-west-1
  lakewatch ddl --bucket my-lake --database security_lake > tables.sql")]
pub struct DdlArgs {
    /// The lake bucket (the Terraform module's `lake_bucket` output).
    #[arg(long, value_name = "BUCKET", env = "LAKEWATCH_LAKE_BUCKET")]
    pub bucket: Option<String>,

    /// The Glue database (the Terraform module's `glue_database` output).
    #[arg(
        long,
        value_name = "NAME",
        env = "LAKEWATCH_GLUE_DATABASE",
        default_value = "lakewatch"
    )]
    pub database: String,
}

pub fn run(args: DdlArgs) -> anyhow::Result<ExitCode> {
    let Some(bucket) = args.bucket else {
        bail!(
            "which bucket holds the lake? pass --bucket (the Terraform module's lake_bucket \
             output: `terraform output lake_bucket`) or set LAKEWATCH_LAKE_BUCKET"
        );
    };
    print!("{}", ddl::create_all(&args.database, &bucket)?);
    Ok(ExitCode::SUCCESS)
}
