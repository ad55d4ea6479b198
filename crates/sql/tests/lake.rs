//! The local engine on fixture lakes with known answers: partition pruning counted in files
//! opened, Athena's table references, the defendA README queries run unmodified, the saved
//! queries, the errors users see, and a differential test against DuckDB over the same files.

mod common;

use common::{Lake, duckdb, event, partition};
use lakewatch_sql::saved::{parse_param, saved_query};
use lakewatch_sql::{LocalEngine, QueryError, QueryResult};
use serde_json::{Value, json};

async fn query(engine: &LocalEngine, sql: &str) -> QueryResult {
    match engine.query(sql).await {
        Ok(result) => result,
        Err(error) => panic!("{sql}\n{error}"),
    }
}

/// The cells of every row, NULL as "NULL".
fn cells(result: &QueryResult) -> Vec<Vec<String>> {
    result
        .rows()
        .unwrap()
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|c| c.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

fn console_login(time: &str, user: &str, ip: &str) -> Value {
    event(
        time,
        "cloudtrail",
        &format!("ConsoleLogin by {user} from {ip}"),
        &["cloudtrail"],
        json!({
            "eventname": "ConsoleLogin",
            "sourceipaddress": ip,
            "useridentity": {"arn": format!("arn:aws:iam::123456789012:user/{user}")},
            "responseelements": {"consolelogin": "Success"},
            "_ipaddresses": [ip],
        }),
    )
}

/// CloudTrail and G Suite events around the hours of the defendA README's sample queries.
fn defenda_lake() -> Lake {
    let lake = Lake::new();
    lake.write_events(
        "a.json.gz",
        &[
            console_login("2020-06-19T00:10:00", "alice", "7.1.14.12"),
            console_login("2020-06-19T01:20:00", "bob", "10.0.0.9"),
            // Outside the queried hours.
            console_login("2020-06-19T02:00:00", "carol", "10.0.0.7"),
            event(
                "2020-06-19T01:30:00",
                "cloudtrail",
                "CreateLogStream by lambda",
                &[],
                json!({"eventname": "CreateLogStream", "_ipaddresses": ["54.21.12.27"]}),
            ),
            event(
                "2020-06-19T01:40:00",
                "gsuite",
                "login_success",
                &["gsuite"],
                json!({"eventname": "ConsoleLogin"}),
            ),
            event(
                "2020-09-07T18:05:00",
                "cloudtrail",
                "GetObject by etl from 7.1.14.12",
                &["s3"],
                json!({"eventname": "GetObject", "_ipaddresses": ["7.1.14.12", "10.1.1.1"]}),
            ),
            event(
                "2020-09-07T18:06:00",
                "cloudtrail",
                "PutObject by etl from 10.1.1.1",
                &["s3"],
                json!({"eventname": "PutObject", "_ipaddresses": ["10.1.1.1"]}),
            ),
            event(
                "2020-09-07T18:07:00",
                "gsuite",
                "login from 7.1.14.12",
                &[],
                json!({"_ipaddresses": ["7.1.14.12"]}),
            ),
            event(
                "2020-09-07T17:59:00",
                "cloudtrail",
                "ListBuckets from 7.1.14.12",
                &[],
                json!({"_ipaddresses": ["7.1.14.12"]}),
            ),
        ],
    );
    lake
}

/// The first sample query of the defendA README, verbatim.
const README_CONSOLE_LOGINS: &str = include_str!("defenda-readme/console-logins.sql");

/// The second sample query of the defendA README, verbatim.
const README_IP_PIVOT: &str = include_str!("defenda-readme/ip-pivot.sql");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defenda_readme_console_logins_query_runs_unmodified() {
    let lake = defenda_lake();
    let result = query(&lake.engine(), README_CONSOLE_LOGINS).await;
    let mut rows = cells(&result);
    rows.sort();
    assert_eq!(
        result.column_names(),
        ["utctimestamp", "summary", "source", "details"]
    );
    assert_eq!(
        rows.iter().map(|r| r[..3].to_vec()).collect::<Vec<_>>(),
        strings(&[
            &[
                "2020-06-19T00:10:00.000000Z",
                "ConsoleLogin by alice from 7.1.14.12",
                "cloudtrail"
            ],
            &[
                "2020-06-19T01:20:00.000000Z",
                "ConsoleLogin by bob from 10.0.0.9",
                "cloudtrail"
            ],
        ])
    );
    let details: Value = serde_json::from_str(&rows[0][3]).unwrap();
    assert_eq!(
        details["useridentity"]["arn"],
        "arn:aws:iam::123456789012:user/alice"
    );
    assert_eq!(
        result.stats.files_opened, 2,
        "only hours 00 and 01 are read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defenda_readme_ip_pivot_query_runs_unmodified() {
    let lake = defenda_lake();
    let result = query(&lake.engine(), README_IP_PIVOT).await;
    let rows = cells(&result);
    assert_eq!(
        rows.iter()
            .map(|r| vec![r[0].clone(), r[1].clone(), r[4].clone()])
            .collect::<Vec<_>>(),
        strings(&[&[
            "2020-09-07T18:05:00.000000Z",
            "GetObject by etl from 7.1.14.12",
            "[s3]"
        ]])
    );
    assert_eq!(result.stats.files_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_predicates_prune_directories_before_any_file_is_opened() {
    let lake = Lake::new();
    let line = |source: &str| event("2024-01-01T00:00:00", source, "s", &[], json!({})).to_string();
    lake.write(
        "events",
        "2024-01-01T00",
        "a.json.gz",
        &[line("a"), line("a")],
    );
    lake.write("events", "2024-01-01T00", "b.json.gz", &[line("b")]);
    lake.write("events", "2024-01-01T01", "a.json.gz", &[line("c")]);
    lake.write("events", "2024-01-02T05", "a.json.gz", &[line("d")]);
    lake.write("events", "2023-12-31T23", "a.json.gz", &[line("e")]);
    // A file that fails when opened: the queries below must never open it.
    let broken = lake.path().join("events").join(partition("2022-06-01T00"));
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("broken.json.gz"), [0x1f, 0x8b, 0x08, 0x00]).unwrap();
    // Files being written (renamed when complete) are never read.
    let hour = lake.path().join("events").join(partition("2024-01-01T00"));
    for temporary in [".part.json.gz", "_tmp.json.gz", "c.json.gz.tmp"] {
        std::fs::write(hour.join(temporary), b"{half a line").unwrap();
    }
    let engine = lake.engine();

    let cases: &[(&str, &str, u64)] = &[
        (
            "year = '2024' AND month = '01' AND day = '01' AND hour = '00'",
            "3",
            2,
        ),
        ("year = '2024' AND day = '01'", "4", 3),
        ("year || month || day >= '20240102'", "1", 1),
        (
            "(day = '01' AND hour = '01') OR (day = '31' AND hour = '23')",
            "2",
            2,
        ),
        ("hour IN ('05', '23') AND source <> 'x'", "2", 2),
        ("year = '1999'", "0", 0),
    ];
    for (predicate, count, files) in cases {
        let sql = format!("SELECT count(*) FROM events WHERE {predicate}");
        let result = query(&engine, &sql).await;
        assert_eq!(cells(&result), vec![vec![count.to_string()]], "{sql}");
        assert_eq!(result.stats.files_opened, *files, "{sql}");
    }

    // Without a partition predicate every file is opened, the broken one too.
    let error = engine
        .query("SELECT count(*) FROM events")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("broken.json.gz"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_table_references_all_name_the_lake_tables() {
    let lake = defenda_lake();
    let engine = lake.engine();
    for table in [
        "events",
        "\"events\"",
        "EVENTS",
        "\"defenda_data_lake\".\"events\"",
        "db.events",
        "AwsDataCatalog.db.events",
        "\"AwsDataCatalog\".\"lakewatch\".\"events\"",
    ] {
        let result = query(&engine, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(cells(&result), vec![vec!["9".to_string()]], "{table}");
    }
    let alerts = query(&engine, "SELECT count(*) FROM mydb.alerts").await;
    assert_eq!(
        cells(&alerts),
        vec![vec!["0".to_string()]],
        "no alerts yet: empty"
    );
    let tables = query(&engine, "SHOW TABLES").await;
    let names: Vec<String> = cells(&tables).into_iter().map(|r| r[2].clone()).collect();
    assert!(names.contains(&"events".to_string()) && names.contains(&"alerts".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_result_columns_are_called_like_athenas() {
    let lake = defenda_lake();
    let engine = lake.engine();
    let result = query(
        &engine,
        "SELECT source, count(*), lower(source) AS low, events.hour, upper(source) \
         FROM events GROUP BY source, events.hour",
    )
    .await;
    assert_eq!(
        result.column_names(),
        ["source", "_col1", "low", "hour", "_col4"]
    );
    let union = query(&engine, "SELECT 1 UNION ALL SELECT 2").await;
    assert_eq!(union.column_names(), ["_col0"]);
    let star = query(&engine, "SELECT * FROM events LIMIT 1").await;
    assert_eq!(star.column_names()[0], "utctimestamp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_follow_the_glue_schema() {
    let lake = Lake::new();
    let syslog = event(
        "2024-05-06T07:08:09",
        "syslog",
        "line with \"quotes\" and é",
        &["a", "b"],
        json!({"nested": {"list": [1, "two", null]}, "n": 1.5}),
    );
    let details_text = syslog["details"].to_string();
    lake.write(
        "events",
        "2024-05-06T07",
        "a.json.gz",
        &[
            syslog.to_string(),
            "not json at all".to_string(),
            r#"{"source": 7, "tags": "oops", "details": "plain"}"#.to_string(),
        ],
    );
    let engine = lake.engine();
    let result = query(
        &engine,
        "SELECT source, summary, tags, cardinality(tags) AS n, details, year, month, day, hour \
         FROM events ORDER BY summary NULLS LAST, source",
    )
    .await;
    assert_eq!(
        cells(&result),
        strings(&[
            &[
                "syslog",
                "line with \"quotes\" and é",
                "[a, b]",
                "2",
                &details_text,
                "2024",
                "05",
                "06",
                "07"
            ],
            &[
                "7", "NULL", "NULL", "NULL", "plain", "2024", "05", "06", "07"
            ],
            &[
                "NULL", "NULL", "NULL", "NULL", "NULL", "2024", "05", "06", "07"
            ],
        ])
    );
    assert_eq!(result.stats.malformed_lines, 1);
    assert_eq!(result.stats.mismatched_values, 1);
    let schema = query(&engine, "DESCRIBE events").await;
    let described: Vec<(String, String)> = cells(&schema)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(described[0], ("utctimestamp".into(), "Utf8".into()));
    assert!(
        described.contains(&("tags".into(), "List(Utf8)".into())),
        "{described:?}"
    );
    assert_eq!(
        described.last().unwrap(),
        &("hour".to_string(), "Utf8".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_table_has_its_own_columns() {
    let lake = Lake::new();
    let alert = json!({
        "utctimestamp": "2024-04-01T10:05:00.000000Z",
        "alertid": "a1",
        "rule": "impossible-travel",
        "severity": "HIGH",
        "summary": "alice from two countries",
        "windowstart": "2024-04-01T09:00:00.000000Z",
        "windowend": "2024-04-01T10:00:00.000000Z",
        "eventids": ["e1", "e2", "e3"],
        "details": {"user": "alice", "km": 8800.5},
    });
    lake.write("alerts", "2024-04-01T10", "r.json.gz", &[alert.to_string()]);
    let result = query(
        &lake.engine(),
        "SELECT rule, cardinality(eventids) AS n, json_extract_scalar(details, '$.user') AS who, \
         hour FROM lakewatch.alerts WHERE day = '01'",
    )
    .await;
    assert_eq!(
        cells(&result),
        strings(&[&["impossible-travel", "3", "alice", "10"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_files_are_read_in_parallel_and_every_row_counted_once() {
    let lake = Lake::new();
    let mut expected = 0;
    for hour in 0..24 {
        let time = format!("2024-02-03T{hour:02}:00:00");
        for file in 0..3 {
            let lines: Vec<String> = (0..(hour * 10 + file))
                .map(|i| event(&time, "s", &format!("{i}"), &[], json!({"i": i})).to_string())
                .collect();
            expected += lines.len();
            lake.write("events", &time[..13], &format!("{file}.json.gz"), &lines);
        }
    }
    let engine = lake.engine();
    let result = query(
        &engine,
        "SELECT count(*), count(DISTINCT eventid), sum(CAST(json_extract_scalar(details, '$.i') AS BIGINT)) FROM events",
    )
    .await;
    let row = &cells(&result)[0];
    assert_eq!(row[0], expected.to_string());
    assert_eq!(result.stats.files_opened, 72);
    assert_eq!(result.stats.rows, expected as u64);
    let limited = query(&engine, "SELECT summary FROM events LIMIT 5").await;
    assert_eq!(limited.num_rows(), 5);
}

fn s3_audit(time: &str, api: &str, bucket: &str, status: u32, ms: f64) -> Value {
    event(
        time,
        "s3-audit",
        &format!("{api} {bucket}"),
        &[],
        json!({
            "api": {"name": api, "bucket": bucket, "object": "o.txt",
                    "status": if status == 200 { "OK" } else { "Error" }, "statuscode": status},
            "responsetimems": ms,
            "remotehost": "10.0.0.1",
        }),
    )
}

fn storage_lake() -> Lake {
    let lake = Lake::new();
    lake.write_events(
        "a.json.gz",
        &[
            s3_audit("2024-03-01T10:00:00", "PutObject", "logs", 200, 10.0),
            s3_audit("2024-03-01T10:01:00", "GetObject", "logs", 200, 20.0),
            s3_audit("2024-03-01T10:02:00", "GetObject", "logs", 404, 5.0),
            s3_audit("2024-03-01T11:00:00", "PutObject", "media", 503, 100.0),
            s3_audit("2024-03-02T23:00:00", "GetObject", "media", 200, 30.0),
            s3_audit("2024-03-02T23:01:00", "GetObject", "media", 200, 50.0),
            s3_audit("2024-03-02T23:02:00", "DeleteObject", "logs", 403, 8.0),
            // Not storage audit: never counted.
            console_login("2024-03-01T10:30:00", "alice", "7.1.14.12"),
            console_login("2024-03-02T09:00:00", "bob", "10.0.0.9"),
        ],
    );
    lake
}

async fn run_saved(lake: &Lake, name: &str, params: &[&str]) -> QueryResult {
    let params: Vec<(String, String)> = params.iter().map(|p| parse_param(p).unwrap()).collect();
    let sql = saved_query(name).unwrap().render(&params).unwrap();
    query(&lake.engine(), &sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_audit_panels_give_the_known_answers() {
    let lake = storage_lake();
    let avg = run_saved(&lake, "s3-audit-avg-response-time", &[]).await;
    assert_eq!(
        avg.column_names(),
        ["date", "api", "avg_response_ms", "calls"]
    );
    assert_eq!(
        cells(&avg),
        strings(&[
            &["2024-03-01", "GetObject", "12.5", "2"],
            &["2024-03-01", "PutObject", "55.0", "2"],
            &["2024-03-02", "DeleteObject", "8.0", "1"],
            &["2024-03-02", "GetObject", "40.0", "2"],
        ])
    );
    let errors = run_saved(&lake, "s3-audit-errors", &[]).await;
    assert_eq!(
        cells(&errors),
        strings(&[
            &["2024-03-01", "logs", "1"],
            &["2024-03-01", "media", "1"],
            &["2024-03-02", "logs", "1"],
        ])
    );
    let calls = run_saved(&lake, "s3-audit-calls-per-bucket", &[]).await;
    assert_eq!(cells(&calls), strings(&[&["logs", "4"], &["media", "3"]]));
    let per_day = run_saved(&lake, "s3-audit-calls-per-bucket-per-day", &[]).await;
    assert_eq!(per_day.column_names(), ["date", "bucket", "calls"]);
    assert_eq!(
        cells(&per_day),
        strings(&[
            &["2024-03-01", "logs", "3"],
            &["2024-03-01", "media", "1"],
            &["2024-03-02", "media", "2"],
            &["2024-03-02", "logs", "1"],
        ])
    );
    let max = run_saved(&lake, "s3-audit-max-response-time", &[]).await;
    assert_eq!(
        cells(&max),
        strings(&[
            &["PutObject", "100.0"],
            &["GetObject", "50.0"],
            &["DeleteObject", "8.0"]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_queries_hour_range_reads_only_those_partitions() {
    let lake = storage_lake();
    let day2 = run_saved(&lake, "s3-audit-calls-per-bucket", &["from=2024-03-02T00"]).await;
    assert_eq!(cells(&day2), strings(&[&["media", "2"], &["logs", "1"]]));
    assert_eq!(day2.stats.files_opened, 2, "hours 09 and 23 of 2024-03-02");
    let hour = run_saved(
        &lake,
        "s3-audit-max-response-time",
        &["from=2024-03-01T11", "to=2024-03-01T11"],
    )
    .await;
    assert_eq!(cells(&hour), strings(&[&["PutObject", "100.0"]]));
    assert_eq!(hour.stats.files_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logins_and_ip_pivot_saved_queries_give_the_known_answers() {
    let lake = defenda_lake();
    let logins = run_saved(&lake, "console-logins", &[]).await;
    assert_eq!(
        cells(&logins),
        strings(&[
            &[
                "2020-06-19T02:00:00.000000Z",
                "ConsoleLogin by carol from 10.0.0.7",
                "arn:aws:iam::123456789012:user/carol",
                "10.0.0.7",
                "Success"
            ],
            &[
                "2020-06-19T01:20:00.000000Z",
                "ConsoleLogin by bob from 10.0.0.9",
                "arn:aws:iam::123456789012:user/bob",
                "10.0.0.9",
                "Success"
            ],
            &[
                "2020-06-19T00:10:00.000000Z",
                "ConsoleLogin by alice from 7.1.14.12",
                "arn:aws:iam::123456789012:user/alice",
                "7.1.14.12",
                "Success"
            ],
        ])
    );
    let in_range = run_saved(
        &lake,
        "console-logins",
        &["from=2020-06-19T01", "to=2020-06-19T01"],
    )
    .await;
    assert_eq!(in_range.num_rows(), 1);

    let pivot = run_saved(&lake, "ip-pivot", &["ip=7.1.14.12"]).await;
    let summaries: Vec<String> = cells(&pivot).into_iter().map(|r| r[3].clone()).collect();
    assert_eq!(
        summaries,
        [
            "login from 7.1.14.12",
            "GetObject by etl from 7.1.14.12",
            "ListBuckets from 7.1.14.12",
            "ConsoleLogin by alice from 7.1.14.12"
        ]
    );
    let none = run_saved(&lake, "ip-pivot", &["ip=7.1.14.1"]).await;
    assert_eq!(
        none.num_rows(),
        0,
        "an address is matched whole, not as a prefix"
    );
}

async fn error_of(sql: &str) -> (QueryError, String) {
    let lake = defenda_lake();
    let error = lake.engine().query(sql).await.expect_err(sql);
    let text = error.to_string();
    (error, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_is_reported_at_its_position_with_a_hint() {
    let (error, text) = error_of("SELECT source\nFROM events\nWHERE source = = 'x'").await;
    assert!(matches!(error, QueryError::Syntax { .. }), "{error:?}");
    assert!(
        text.starts_with("SQL syntax error at line 3, column 16: Expected: an expression"),
        "{text}"
    );
    assert!(
        text.contains(" 3 | WHERE source = = 'x'\n   |                ^\nhint: "),
        "{text}"
    );

    let (_, text) = error_of("SELECT source FROM events WHERE source = 'x").await;
    assert!(
        text.contains("hint: close the string with a single quote"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_columns_and_functions_say_what_exists() {
    let (error, text) = error_of("SELECT * FROM mydb.evnts").await;
    assert!(
        matches!(error, QueryError::UnknownTable { .. }),
        "{error:?}"
    );
    assert!(
        text.starts_with("unknown table mydb.evnts: the lake has the tables events, alerts"),
        "{text}"
    );

    let (_, text) = error_of("SELECT * FROM events WHERE source = \"cloudtrail\"").await;
    assert!(text.starts_with("No field named cloudtrail."), "{text}");
    assert!(
        text.contains("Valid fields are events.utctimestamp"),
        "{text}"
    );
    assert!(
        text.contains("hint: string values take single quotes"),
        "{text}"
    );

    let (_, text) = error_of("SELECT json_extract_scalr(details, '$.a') FROM events").await;
    assert!(
        text.starts_with("unknown function json_extract_scalr"),
        "{text}"
    );
    assert!(
        text.contains("hint: did you mean json_extract_scalar?"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_functions_we_lack_are_named_as_not_supported_yet() {
    let (error, text) = error_of(
        "SELECT source,\n       url_extract_host(json_extract_scalar(details, '$.url'))\nFROM events",
    )
    .await;
    assert!(
        matches!(error, QueryError::UnsupportedFunction { .. }),
        "{error:?}"
    );
    assert!(
        text.starts_with(
            "Athena function url_extract_host is not supported by lakewatch's local engine yet at line 2, column 8"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_write_are_refused() {
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO events SELECT * FROM events",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "EXPLAIN CREATE TABLE x AS SELECT 1",
    ] {
        let lake = defenda_lake();
        let error = lake.engine().query(sql).await.expect_err(sql);
        assert!(
            error
                .to_string()
                .contains("lakewatch query only reads the lake"),
            "{sql}: {error}"
        );
    }
}

#[test]
fn a_missing_lake_directory_says_how_to_make_one() {
    let error = LocalEngine::open("/nonexistent/lake").err().unwrap();
    assert!(error.to_string().contains("lakewatch ingest"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Differential test: the same queries on DuckDB over the same files.

/// A lake with varied events: several sources and partitions, nested details, arrays, numbers
/// as numbers and as strings, missing keys, escapes and non-ASCII text.
fn differential_lake() -> Lake {
    let lake = Lake::new();
    let sources = ["cloudtrail", "gsuite", "syslog", "s3-audit", "vpcflow"];
    let apis = ["GetObject", "PutObject", "DeleteObject", "ListBuckets"];
    let mut events = Vec::new();
    for i in 0..400u32 {
        let source = sources[(i % 5) as usize];
        let time = format!(
            "2024-0{}-{:02}T{:02}:{:02}:{:02}",
            1 + i % 2,
            1 + (i / 7) % 3,
            (i * 5) % 24,
            i % 60,
            (i * 7) % 60
        );
        let ip = format!("10.0.{}.{}", i % 4, i % 9);
        let mut details = json!({
            "eventname": if i % 3 == 0 { "ConsoleLogin" } else { apis[(i % 4) as usize] },
            "sourceipaddress": ip,
            "_ipaddresses": if i % 6 == 0 { json!([ip, "7.1.14.12"]) } else { json!([ip]) },
            "api": {"name": apis[(i % 4) as usize], "bucket": format!("bucket-{}", i % 3),
                    "statuscode": if i % 7 == 0 { 404 } else { 200 }},
            "responsetimems": (i % 13) as f64 * 1.25,
            "bytes": i * 100,
            "user": format!("user{}", i % 11),
            "note": if i % 10 == 0 { json!("tab\there \"quoted\" é ü") } else { json!(null) },
        });
        if i % 8 == 0 {
            details.as_object_mut().unwrap().remove("user");
        }
        let tags: Vec<String> = (0..(i % 3)).map(|t| format!("tag{t}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut e = event(
            &time,
            source,
            &format!("event {i} from {ip}"),
            &tags,
            details,
        );
        e["severity"] = json!(["INFO", "WARNING", "CRITICAL"][(i % 3) as usize]);
        e["hostname"] = json!(format!("host{}", i % 4));
        events.push(e);
    }
    // Two files in some hours.
    let (first, second) = events.split_at(250);
    lake.write_events("a.json.gz", first);
    lake.write_events("b.json.gz", second);
    lake
}

/// (lakewatch SQL, DuckDB SQL); `None` when the text is the same on both.
const DIFFERENTIAL: &[(&str, Option<&str>)] = &[
    ("SELECT count(*) FROM events", None),
    ("SELECT source, count(*) FROM events GROUP BY source", None),
    (
        "SELECT year, month, day, count(*) FROM events WHERE year = '2024' AND month = '01' GROUP BY 1, 2, 3",
        None,
    ),
    (
        "SELECT hour, count(*) FROM events WHERE day = '02' AND hour BETWEEN '05' AND '12' GROUP BY hour",
        None,
    ),
    (
        "SELECT eventid, details FROM events WHERE source = 'syslog' AND hour = '10'",
        None,
    ),
    (
        "SELECT json_extract_scalar(details, '$.eventname') AS e, count(*) FROM events GROUP BY 1",
        Some(
            "SELECT json_extract_string(details, '$.eventname') AS e, count(*) FROM events GROUP BY 1",
        ),
    ),
    (
        "SELECT count(*) FROM events WHERE source = 'cloudtrail' AND json_extract_scalar(details, '$.eventname') = 'ConsoleLogin'",
        Some(
            "SELECT count(*) FROM events WHERE source = 'cloudtrail' AND json_extract_string(details, '$.eventname') = 'ConsoleLogin'",
        ),
    ),
    (
        "SELECT summary FROM events WHERE json_array_contains(json_extract(details, '$._ipaddresses'), '7.1.14.12')",
        Some(
            "SELECT summary FROM events WHERE list_contains(json_extract_string(details, '$._ipaddresses[*]'), '7.1.14.12')",
        ),
    ),
    (
        "SELECT json_array_length(json_extract(details, '$._ipaddresses')) AS n, count(*) FROM events GROUP BY 1",
        Some(
            "SELECT json_array_length(json_extract(details, '$._ipaddresses')) AS n, count(*) FROM events GROUP BY 1",
        ),
    ),
    (
        "SELECT json_extract_scalar(details, '$.api.bucket') AS b, avg(CAST(json_extract_scalar(details, '$.responsetimems') AS DOUBLE)) FROM events GROUP BY 1",
        Some(
            "SELECT json_extract_string(details, '$.api.bucket') AS b, avg(CAST(json_extract_string(details, '$.responsetimems') AS DOUBLE)) FROM events GROUP BY 1",
        ),
    ),
    (
        "SELECT json_extract_scalar(details, '$.api.name') AS a, max(CAST(json_extract_scalar(details, '$.responsetimems') AS DOUBLE)), min(CAST(json_extract_scalar(details, '$.bytes') AS BIGINT)) FROM events GROUP BY 1",
        Some(
            "SELECT json_extract_string(details, '$.api.name') AS a, max(CAST(json_extract_string(details, '$.responsetimems') AS DOUBLE)), min(CAST(json_extract_string(details, '$.bytes') AS BIGINT)) FROM events GROUP BY 1",
        ),
    ),
    (
        "SELECT json_extract_scalar(details, '$.api.bucket') AS b, count(*) FROM events WHERE json_extract_scalar(details, '$.api.statuscode') <> '200' GROUP BY 1",
        Some(
            "SELECT json_extract_string(details, '$.api.bucket') AS b, count(*) FROM events WHERE json_extract_string(details, '$.api.statuscode') <> '200' GROUP BY 1",
        ),
    ),
    (
        "SELECT count(*), count(json_extract_scalar(details, '$.user')), count(DISTINCT json_extract_scalar(details, '$.user')) FROM events",
        Some(
            "SELECT count(*), count(json_extract_string(details, '$.user')), count(DISTINCT json_extract_string(details, '$.user')) FROM events",
        ),
    ),
    (
        "SELECT json_extract_scalar(details, '$.note') FROM events WHERE json_extract_scalar(details, '$.note') IS NOT NULL",
        Some(
            "SELECT json_extract_string(details, '$.note') FROM events WHERE json_extract_string(details, '$.note') IS NOT NULL",
        ),
    ),
    (
        "SELECT json_extract_scalar(details, '$.api') FROM events LIMIT 3",
        Some(
            "SELECT CASE WHEN json_type(details, '$.api') IN ('OBJECT', 'ARRAY') THEN NULL ELSE json_extract_string(details, '$.api') END FROM events LIMIT 3",
        ),
    ),
    (
        "SELECT severity, cardinality(tags) AS n, count(*) FROM events GROUP BY 1, 2",
        Some("SELECT severity, len(tags) AS n, count(*) FROM events GROUP BY 1, 2"),
    ),
    (
        "SELECT count(*) FROM events WHERE contains(tags, 'tag1')",
        Some("SELECT count(*) FROM events WHERE list_contains(tags, 'tag1')"),
    ),
    (
        "SELECT hostname, count(*) FROM events WHERE summary LIKE 'event 1%' GROUP BY hostname HAVING count(*) > 5",
        None,
    ),
    (
        "SELECT upper(source), lower(severity), length(summary), substr(utctimestamp, 1, 10) FROM events WHERE hour = '00'",
        None,
    ),
    (
        "SELECT CASE WHEN hour < '12' THEN 'am' ELSE 'pm' END AS half, count(*) FROM events GROUP BY 1",
        None,
    ),
    (
        "WITH logins AS (SELECT json_extract_scalar(details, '$.user') AS u FROM events WHERE json_extract_scalar(details, '$.eventname') = 'ConsoleLogin') SELECT u, count(*) FROM logins GROUP BY u",
        Some(
            "WITH logins AS (SELECT json_extract_string(details, '$.user') AS u FROM events WHERE json_extract_string(details, '$.eventname') = 'ConsoleLogin') SELECT u, count(*) FROM logins GROUP BY u",
        ),
    ),
    (
        "SELECT a.source, b.source, count(*) FROM events a JOIN events b ON a.hostname = b.hostname AND a.hour = b.hour WHERE a.day = '01' AND b.day = '01' GROUP BY 1, 2",
        None,
    ),
    (
        "SELECT source FROM events WHERE month = '01' UNION SELECT severity FROM events WHERE month = '02'",
        None,
    ),
    (
        "SELECT utctimestamp, eventid FROM events ORDER BY utctimestamp DESC, eventid LIMIT 7",
        None,
    ),
    (
        "SELECT source, count(*) FROM events WHERE eventid IN (SELECT eventid FROM events WHERE hostname = 'host1') GROUP BY source",
        None,
    ),
    (
        "SELECT coalesce(json_extract_scalar(details, '$.user'), 'nobody') AS u, count(*) FROM events GROUP BY 1",
        Some(
            "SELECT coalesce(json_extract_string(details, '$.user'), 'nobody') AS u, count(*) FROM events GROUP BY 1",
        ),
    ),
    (
        "SELECT source, sum(CAST(json_extract_scalar(details, '$.bytes') AS BIGINT)) FROM events WHERE regexp_like(summary, '^event [0-9]{2} ') GROUP BY source",
        Some(
            "SELECT source, sum(CAST(json_extract_string(details, '$.bytes') AS BIGINT)) FROM events WHERE regexp_matches(summary, '^event [0-9]{2} ') GROUP BY source",
        ),
    ),
];

/// Cells equal as text, or as numbers within rounding.
fn same_cell(a: &Option<String>, b: &Value) -> bool {
    match (a, b) {
        (None, Value::Null) => true,
        (Some(a), Value::String(b)) => {
            a == b
                || match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                    _ => false,
                }
        }
        _ => false,
    }
}

fn sort_key(row: &[Option<String>]) -> String {
    format!("{row:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_agree_with_duckdb_on_the_same_files() {
    assert!(DIFFERENTIAL.len() >= 20);
    let lake = differential_lake();
    let engine = lake.engine();
    let duck_sql: Vec<&str> = DIFFERENTIAL
        .iter()
        .map(|(ours, theirs)| theirs.unwrap_or(ours))
        .collect();
    let theirs = duckdb(lake.path(), &duck_sql);
    let mut failures = Vec::new();
    for ((sql, _), duck) in DIFFERENTIAL.iter().zip(&theirs) {
        if let Some(error) = duck.get("error") {
            failures.push(format!("{sql}\n  DuckDB error: {error}"));
            continue;
        }
        let ours = query(&engine, sql).await;
        let mut our_rows = ours.rows().unwrap();
        let mut duck_rows: Vec<Vec<Value>> = duck["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect();
        // Both sides sorted the same way: row order is only fixed by ORDER BY, and the
        // ordered queries here have a total order, so sorting keeps them comparable.
        let duck_as_text = |row: &Vec<Value>| -> Vec<Option<String>> {
            row.iter().map(|c| c.as_str().map(str::to_string)).collect()
        };
        our_rows.sort_by_key(|r| sort_key(r));
        duck_rows.sort_by_key(|r| sort_key(&duck_as_text(r)));
        let agree = our_rows.len() == duck_rows.len()
            && our_rows
                .iter()
                .zip(&duck_rows)
                .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_cell(x, y)));
        if !agree {
            failures.push(format!(
                "{sql}\n  lakewatch ({} rows): {:?}\n  DuckDB    ({} rows): {:?}",
                our_rows.len(),
                our_rows.iter().take(5).collect::<Vec<_>>(),
                duck_rows.len(),
                duck_rows.iter().take(5).collect::<Vec<_>>()
            ));
        }
        assert!(
            ours.num_rows() > 0 || sql.contains("1999"),
            "a query with no rows proves little: {sql}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n{}",
        failures.len(),
        DIFFERENTIAL.len(),
        failures.join("\n")
    );
}

/// A query while an ingest runs, or after one was killed, reads the published files only: the
/// writer's temporaries follow the lake's one convention, which the engine skips.
#[tokio::test]
async fn queries_during_an_ingest_or_after_a_killed_one_skip_its_temporary_files() {
    use lakewatch_lake::LocalLake;
    use lakewatch_lake::partitions::Hour;
    use lakewatch_lake::schema::EVENTS;

    let lake = Lake::new();
    let local = LocalLake::open(lake.path()).unwrap();
    let hour = Hour::containing("2024-01-01T00:10:00Z".parse().unwrap());
    let line = |id: &str| {
        let mut line = event("2024-01-01T00:10:00", "x", id, &[], json!({})).to_string();
        line.push('\n');
        line
    };
    let mut published = local.writer(hour.start()).with_buffer_budget(0);
    published
        .write_line(&EVENTS, hour, line("done").as_bytes())
        .unwrap();
    published.finish().unwrap();
    // Compressed into a file at once (no buffer), but not published.
    let mut running = local.writer(hour.start()).with_buffer_budget(0);
    running
        .write_line(&EVENTS, hour, line("running").as_bytes())
        .unwrap();
    let dir = lake.path().join("events").join(hour.to_string());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let sql = "SELECT summary FROM events";
    assert_eq!(
        cells(&query(&lake.engine(), sql).await),
        strings(&[&["done"]])
    );
    // Killed: no drop, no checkpoint; the file stays behind under its temporary name.
    std::mem::forget(running);
    assert_eq!(
        cells(&query(&lake.engine(), sql).await),
        strings(&[&["done"]])
    );
}

/// Hour `h` of 2024-03-01, the day of the console logins these tests write.
fn march_first(h: u32) -> lakewatch_lake::partitions::Hour {
    lakewatch_lake::partitions::Hour::from_date_hour(
        chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        h,
    )
    .unwrap()
}

#[tokio::test]
async fn shared_hours_are_read_once_and_answer_as_the_files_do() {
    let lake = Lake::new();
    let logins: Vec<Value> = [
        "2024-03-01T09:10:00",
        "2024-03-01T10:20:00",
        "2024-03-01T11:30:00",
    ]
    .iter()
    .map(|time| console_login(time, "alice", "198.51.100.7"))
    .collect();
    lake.write_events("a.json.gz", &logins);
    let engine = lake.engine();
    let sql = "SELECT utctimestamp, hour FROM events WHERE year = '2024' AND hour >= '09' \
               AND hour <= '11' ORDER BY utctimestamp";
    let from_files = query(&engine, sql).await;
    assert_eq!(from_files.stats.files_opened, 3);

    // Hours 09 and 10 held in memory: read once here, never again by the queries.
    let shared = engine
        .share("events", &[march_first(9), march_first(10)])
        .unwrap();
    assert_eq!((shared.files, shared.files_left), (2, 0));
    assert!(shared.bytes_read > 0);
    for _ in 0..3 {
        let held = query(&engine, sql).await;
        assert_eq!(cells(&held), cells(&from_files));
        assert_eq!(held.stats.files_opened, 1, "only hour 11 from disk");
    }
    // Sharing hours 10 and 11 next keeps hour 10 (not read again) and reads hour 11.
    let next = engine
        .share("events", &[march_first(10), march_first(11)])
        .unwrap();
    let hour_11 = std::fs::metadata(
        lake.path()
            .join("events")
            .join(partition("2024-03-01T11"))
            .join("a.json.gz"),
    )
    .unwrap()
    .len();
    assert_eq!((next.files, next.bytes_read), (2, hour_11));
    // A file rewritten since it was held is read from disk again.
    lake.write_events(
        "a.json.gz",
        &[console_login("2024-03-01T11:45:00", "bob", "198.51.100.8")],
    );
    let rewritten = query(&engine, sql).await;
    assert_eq!(rewritten.stats.files_opened, 2, "hours 09 and 11");
    assert_eq!(
        cells(&rewritten).last().unwrap()[0],
        "2024-03-01T11:45:00.000000Z"
    );
}

#[tokio::test]
async fn held_hours_are_scanned_by_as_many_streams_as_cores_each_with_rows() {
    use datafusion::physical_plan::{ExecutionPlan, streaming::StreamingTableExec};
    use futures::StreamExt;
    use std::sync::Arc;
    let lake = Lake::new();
    let logins: Vec<Value> = ["2024-03-01T09:10:00", "2024-03-01T10:20:00"]
        .iter()
        .map(|time| console_login(time, "alice", "198.51.100.7"))
        .collect();
    lake.write_events("a.json.gz", &logins);
    let engine = lake.engine();
    let shared = engine
        .share("events", &[march_first(9), march_first(10)])
        .unwrap();
    assert_eq!(shared.files, 2);

    fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Option<&StreamingTableExec> {
        plan.downcast_ref::<StreamingTableExec>()
            .or_else(|| plan.children().into_iter().find_map(scan_of))
    }
    let plan = engine
        .context()
        .sql(
            "SELECT utctimestamp FROM events WHERE year = '2024' AND hour >= '09' AND hour <= '10'",
        )
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let scan = scan_of(&plan).expect("the lake table is a streaming scan");
    // Everything is held: no stream of files on disk, and the held files dealt over the cores
    // (one stream beside an empty group of files would keep the filters on one core).
    let cores = engine.context().state().config().target_partitions();
    assert_eq!(scan.partitions().len(), cores.min(2));
    let task = engine.context().task_ctx();
    for partition in scan.partitions() {
        let batches: Vec<_> = partition.execute(task.clone()).collect().await;
        let rows: usize = batches.iter().map(|b| b.as_ref().unwrap().num_rows()).sum();
        assert!(rows > 0, "a stream without rows");
    }
}
