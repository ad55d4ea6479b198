//! `lakewatch query`: Athena SQL on a local lake, with the embedded engine.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use lakewatch_sql::saved::{Template, parse_param, saved_queries, saved_query};
use lakewatch_sql::{LocalEngine, QueryResult};

/// Run Athena SQL on a local lake.
///
/// The same SQL as on Athena (Trino's dialect and functions) over the lake's tables `events`
/// and `alerts`: `details` is the JSON text of the source's fields (query it with
/// json_extract_scalar(details, '$.key')), and year/month/day/hour are the partition columns
/// (strings): a predicate on them skips whole directories, as it limits what Athena scans.
/// Database prefixes are accepted as Athena writes them ("mydb"."events", mydb.events,
/// AwsDataCatalog.mydb.events).
///
/// Queries can take parameters: ${name} in the SQL is replaced by the value of
/// --param name=VALUE (quotes in values are doubled, so put ${name} inside '...').
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  lakewatch query --lake ./lake \"SELECT source, count(*) FROM events GROUP BY source\"
  lakewatch query --lake ./lake --saved ip-pivot --param ip=7.1.14.12
  lakewatch query --lake ./lake --saved console-logins --param from=2024-03-01T00 --format json
  lakewatch query --lake ./lake --file hunt.sql --format csv > hunt.csv
  lakewatch query --list-saved")]
pub struct QueryArgs {
    /// The SQL to run; `-` reads it from standard input. Or use --file or --saved.
    #[arg(value_name = "SQL", conflicts_with_all = ["file", "saved"])]
    pub sql: Option<String>,

    /// Read the SQL from this file.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "saved")]
    pub file: Option<PathBuf>,

    /// Run the saved query NAME (see --list-saved).
    #[arg(long, short = 's', value_name = "NAME")]
    pub saved: Option<String>,

    /// A value for a ${NAME} placeholder of the query; repeat for several.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// List the saved queries with their parameters, and exit.
    #[arg(long, exclusive = true)]
    pub list_saved: bool,

    /// The lake directory (holding events/ and alerts/).
    #[arg(
        long,
        value_name = "DIR",
        env = "LAKEWATCH_LAKE",
        required_unless_present = "list_saved"
    )]
    pub lake: Option<PathBuf>,

    /// Output: an aligned table for people, or one JSON object per row, or CSV with a header,
    /// for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if args.list_saved {
        print!("{}", list_saved());
        return Ok(ExitCode::SUCCESS);
    }
    let template = template(&args)?;
    let params = args
        .params
        .iter()
        .map(|p| parse_param(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sql = template.render(&params)?;
    let lake = args.lake.expect("clap requires --lake");

    let engine = LocalEngine::open(&lake)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the query runtime")?;
    let started = Instant::now();
    let result = runtime.block_on(engine.query(&sql))?;
    let elapsed = started.elapsed();

    match write_result(&result, args.format) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("cannot write the result")?,
    }
    let stats = &result.stats;
    if args.format == Format::Table {
        eprintln!(
            "{} row{} in {:.2?} ({} file{} read, {:.1} MB)",
            result.num_rows(),
            if result.num_rows() == 1 { "" } else { "s" },
            elapsed,
            stats.files_opened,
            if stats.files_opened == 1 { "" } else { "s" },
            stats.bytes_read as f64 / 1e6
        );
    }
    if stats.malformed_lines > 0 || stats.mismatched_values > 0 {
        eprintln!(
            "warning: {} line(s) were not JSON objects and were read as rows of NULLs, {} value(s) \
             had the wrong type and were read as NULL (as Athena's JSON SerDe does); first: {}",
            stats.malformed_lines,
            stats.mismatched_values,
            stats.malformed_examples.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The query to run, from the argument, stdin, a file or the saved queries.
fn template(args: &QueryArgs) -> anyhow::Result<Template> {
    if let Some(name) = &args.saved {
        return Ok(saved_query(name)?);
    }
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SQL file {}", path.display()))?;
        return Ok(Template::parse(&path.display().to_string(), &text));
    }
    match args.sql.as_deref() {
        Some("-") => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .context("cannot read SQL from standard input")?;
            Ok(Template::parse("the query", &text))
        }
        Some(sql) => Ok(Template::parse("the query", sql)),
        None => bail!(
            "no query: give the SQL as an argument, --file FILE or --saved NAME (saved queries: {})",
            saved_queries()
                .iter()
                .map(|q| q.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn write_result(result: &QueryResult, format: Format) -> io::Result<()> {
    // Rendered first, written at once: a closed pipe (`| head`) is then one clean error.
    let mut text = Vec::new();
    match format {
        Format::Table => {
            let table = result.to_table().map_err(io::Error::other)?;
            text.extend_from_slice(table.as_bytes());
            text.push(b'\n');
        }
        Format::Json => result.write_json(&mut text).map_err(io::Error::other)?,
        Format::Csv => result.write_csv(&mut text).map_err(io::Error::other)?,
    }
    let mut out = io::stdout().lock();
    out.write_all(&text)?;
    out.flush()
}

/// The saved queries, their descriptions and parameters.
fn list_saved() -> String {
    let mut out = String::new();
    for query in saved_queries() {
        out.push_str(&format!("{}\n    {}\n", query.name, query.description));
        for param in &query.params {
            let default = match &param.default {
                Some(d) => format!(" (default {d})"),
                None => " (required)".to_string(),
            };
            out.push_str(&format!(
                "    --param {}=…{default}: {}\n",
                param.name, param.description
            ));
        }
    }
    out
}
