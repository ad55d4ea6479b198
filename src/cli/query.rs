//! `lakewatch query`: Athena SQL on a local lake, with the embedded engine.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use lakewatch_sql::saved::{Template, find, parse_param};

use super::content::QueryDirs;
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
///
/// Saved queries are the bundled ones and the *.sql files of --queries DIR. A saved query file
/// starts with comment lines: the first says what it answers, then one line per parameter,
/// `-- param NAME: what it is` or `-- param NAME = DEFAULT: what it is`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  lakewatch query --lake ./lake \"SELECT source, count(*) FROM events GROUP BY source\"
  lakewatch query --lake ./lake --saved ip-pivot --param ip=7.1.14.12
  lakewatch query --lake ./lake --saved console-logins --param from=2024-03-01T00 --format json
  lakewatch query --lake ./lake --file hunt.sql --format csv > hunt.csv
  lakewatch query --list-saved --queries ./my-queries
  lakewatch query --lake ./lake --queries ./my-queries --saved my-hunt --param host=web-01")]
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
    #[arg(long, conflicts_with_all = ["sql", "file", "saved"])]
    pub list_saved: bool,

    #[command(flatten)]
    pub queries: QueryDirs,

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
        print!("{}", list_saved(&args.queries.load()?));
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
        return Ok(find(&args.queries.load()?, name)?.clone());
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
            args.queries
                .load()?
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

/// The saved queries, their descriptions and parameters, and the file of each that is not
/// bundled.
fn list_saved(queries: &[Template]) -> String {
    let mut out = String::new();
    for query in queries {
        out.push_str(&format!("{}\n    {}\n", query.name, query.description));
        if !query.file.starts_with("queries/") {
            out.push_str(&format!("    (from {})\n", query.file));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ingest::ingest_paths;
    use crate::local::ingest::{InputPath, expand_paths};
    use lakewatch_lake::LocalLake;
    use lakewatch_sql::saved::saved_queries;
    use std::path::Path;

    /// The defendA README's two sample queries, verbatim (shared with lakewatch-sql's tests).
    const README_CONSOLE_LOGINS: &str =
        include_str!("../../crates/sql/tests/defenda-readme/console-logins.sql");
    const README_IP_PIVOT: &str =
        include_str!("../../crates/sql/tests/defenda-readme/ip-pivot.sql");

    /// CloudTrail as delivered (`{"Records": [...]}`), at and around the hours the defendA
    /// README's sample queries read.
    const README_HOURS: &str = r#"{"Records": [
      {"eventVersion": "1.08", "eventTime": "2020-06-19T00:10:00Z", "eventSource": "signin.amazonaws.com",
       "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice", "userName": "alice"},
       "responseElements": {"ConsoleLogin": "Success"}, "eventType": "AwsConsoleSignIn",
       "eventID": "0a6a6c39-0000-4000-8000-000000000001"},
      {"eventVersion": "1.08", "eventTime": "2020-06-19T01:20:00Z", "eventSource": "signin.amazonaws.com",
       "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.8",
       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/bob", "userName": "bob"},
       "responseElements": {"ConsoleLogin": "Failure"}, "eventType": "AwsConsoleSignIn",
       "eventID": "0a6a6c39-0000-4000-8000-000000000002"},
      {"eventVersion": "1.08", "eventTime": "2020-06-19T02:05:00Z", "eventSource": "signin.amazonaws.com",
       "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.9",
       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/carol", "userName": "carol"},
       "responseElements": {"ConsoleLogin": "Success"}, "eventType": "AwsConsoleSignIn",
       "eventID": "0a6a6c39-0000-4000-8000-000000000003"},
      {"eventVersion": "1.08", "eventTime": "2020-09-07T18:05:00Z", "eventSource": "s3.amazonaws.com",
       "eventName": "GetObject", "awsRegion": "us-west-2", "sourceIPAddress": "7.1.14.12",
       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/etl", "userName": "etl"},
       "requestParameters": {"bucketName": "finance", "key": "q3.csv"}, "eventType": "AwsApiCall",
       "eventID": "0a6a6c39-0000-4000-8000-000000000004"},
      {"eventVersion": "1.08", "eventTime": "2020-09-07T17:55:00Z", "eventSource": "s3.amazonaws.com",
       "eventName": "ListBuckets", "awsRegion": "us-west-2", "sourceIPAddress": "7.1.14.12",
       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/etl", "userName": "etl"},
       "eventType": "AwsApiCall", "eventID": "0a6a6c39-0000-4000-8000-000000000005"}
    ]}"#;

    /// A lake ingested, through the real pipeline and lake writer, from the bundled events/
    /// (without the Lambda fixtures) and the records above.
    fn ingested_lake() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("readme-hours.json");
        std::fs::write(&extra, README_HOURS).unwrap();
        let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let mut inputs: Vec<InputPath> = expand_paths(&[events.clone()])
            .unwrap()
            .into_iter()
            .filter(|i| matches!(i, InputPath::File(p) if !p.starts_with(events.join("lambda"))))
            .collect();
        inputs.push(InputPath::File(extra));
        let lake = LocalLake::open(dir.path().join("lake")).unwrap();
        ingest_paths(
            &lake,
            &inputs,
            None,
            &lakewatch_plugins::PluginConfig::default(),
            true,
        )
        .unwrap();
        dir
    }

    async fn rows(engine: &LocalEngine, sql: &str) -> Vec<Vec<Option<String>>> {
        match engine.query(sql).await {
            Ok(result) => result.rows().unwrap(),
            Err(error) => panic!("{sql}\n{error}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn defenda_readme_queries_run_unmodified_on_an_ingested_lake() {
        let dir = ingested_lake();
        let engine = LocalEngine::open(dir.path().join("lake")).unwrap();
        let logins = rows(&engine, README_CONSOLE_LOGINS).await;
        let mut times: Vec<_> = logins.iter().map(|r| r[0].clone().unwrap()).collect();
        times.sort();
        assert_eq!(
            times,
            ["2020-06-19T00:10:00.000000Z", "2020-06-19T01:20:00.000000Z"]
        );
        assert!(logins.iter().all(|r| r[2].as_deref() == Some("cloudtrail")));
        let details: serde_json::Value =
            serde_json::from_str(logins[0][3].as_deref().unwrap()).unwrap();
        assert_eq!(
            details["eventname"], "ConsoleLogin",
            "keys are lower-cased at ingest"
        );

        let pivot = rows(&engine, README_IP_PIVOT).await;
        assert_eq!(pivot.len(), 1, "{pivot:?}");
        assert_eq!(pivot[0][0].as_deref(), Some("2020-09-07T18:05:00.000000Z"));
        assert!(
            pivot[0][3]
                .as_deref()
                .unwrap()
                .contains("\"_ipaddresses\":[\"7.1.14.12\"")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_saved_query_runs_on_an_ingested_lake() {
        let dir = ingested_lake();
        let engine = LocalEngine::open(dir.path().join("lake")).unwrap();
        for query in saved_queries() {
            let params: Vec<(String, String)> = query
                .params
                .iter()
                .filter(|p| p.default.is_none())
                .map(|p| (p.name.clone(), "7.1.14.12".to_string()))
                .collect();
            let sql = query.render(&params).unwrap();
            let found = rows(&engine, &sql).await;
            assert!(
                !found.is_empty(),
                "{} found nothing in the samples",
                query.name
            );
        }
    }

    fn args(sql: Option<&str>, file: Option<PathBuf>, saved: Option<&str>) -> QueryArgs {
        QueryArgs {
            sql: sql.map(str::to_string),
            file,
            saved: saved.map(str::to_string),
            params: Vec::new(),
            list_saved: false,
            queries: QueryDirs::default(),
            lake: Some(PathBuf::from("lake")),
            format: Format::Table,
        }
    }

    #[test]
    fn the_query_comes_from_the_argument_a_file_or_the_saved_ones() {
        assert_eq!(
            template(&args(Some("SELECT 1"), None, None)).unwrap().sql,
            "SELECT 1"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.sql");
        std::fs::write(&file, "-- Mine.\n-- param x: a value\nSELECT '${x}'").unwrap();
        let from_file = template(&args(None, Some(file), None)).unwrap();
        assert_eq!(from_file.params[0].name, "x");
        let saved = template(&args(None, None, Some("ip-pivot"))).unwrap();
        assert!(saved.sql.contains("json_array_contains"));
        let none = template(&args(None, None, None)).unwrap_err().to_string();
        assert!(
            none.contains("saved queries: console-logins, ip-pivot"),
            "{none}"
        );
        let missing = template(&args(None, Some("/no/such.sql".into()), None)).unwrap_err();
        assert!(format!("{missing:#}").contains("/no/such.sql"));
    }

    #[test]
    fn the_saved_list_shows_parameters_and_defaults() {
        let list = list_saved(&lakewatch_sql::saved::saved_queries());
        assert!(
            list.contains("ip-pivot\n    Every event that mentions an IP address"),
            "{list}"
        );
        assert!(
            list.contains("--param ip=… (required): the IPv4 or IPv6 address"),
            "{list}"
        );
        assert!(
            list.contains("--param from=… (default 0000-00-00T00)"),
            "{list}"
        );
    }

    #[test]
    fn the_saved_list_adds_the_queries_of_a_directory_with_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my-hunt.sql");
        std::fs::write(
            &file,
            "-- Hosts that ran curl.\n-- param host: the host\nSELECT '${host}'",
        )
        .unwrap();
        let queries = QueryDirs {
            query_dirs: vec![dir.path().to_path_buf()],
            no_bundled_queries: false,
        };
        let list = list_saved(&queries.load().unwrap());
        assert!(
            list.contains(&format!(
                "my-hunt\n    Hosts that ran curl.\n    (from {})\n    --param host=… (required): the host",
                file.display()
            )),
            "{list}"
        );
        assert!(list.contains("ip-pivot\n    Every event"), "{list}");
        let mut with_saved = args(None, None, Some("my-hunt"));
        with_saved.queries = queries;
        assert_eq!(template(&with_saved).unwrap().params[0].name, "host");
    }

    #[test]
    fn list_saved_works_with_a_lake_set_and_needs_none() {
        use clap::Parser;
        for line in [
            vec!["lakewatch", "query", "--list-saved"],
            vec!["lakewatch", "query", "--list-saved", "--lake", "lake"],
        ] {
            let cli = crate::cli::Cli::try_parse_from(&line).unwrap();
            assert!(matches!(cli.command, crate::cli::Command::Query(q) if q.list_saved));
        }
        let without_lake = crate::cli::Cli::try_parse_from(["lakewatch", "query", "SELECT 1"]);
        assert!(without_lake.is_err() || std::env::var_os("LAKEWATCH_LAKE").is_some());
    }
}
