//! Conformance of our Athena (Trino) functions, run as SQL through a real DataFusion
//! `SessionContext` with `register_all`. Expected values come from Trino's documentation
//! (cited per case: trino.io/docs/current/functions/<page>.html) or follow from the
//! semantics it documents; each function is checked on NULLs and edge cases, both on
//! constants (folded at planning) and on columns (the per-batch kernels).

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    lakewatch_sql::functions::register_all(&ctx);
    ctx
}

/// The first column of every row, as text (`None` for NULL).
async fn column(ctx: &SessionContext, sql: &str) -> Vec<Option<String>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(0);
        let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
        for i in 0..col.len() {
            out.push(col.is_valid(i).then(|| fmt.value(i).to_string()));
        }
    }
    out
}

/// Runs `SELECT <expr>` for each case and compares the single value.
async fn check(cases: &[(&str, Option<&str>)]) {
    let ctx = context();
    let mut failures = Vec::new();
    for (expr, want) in cases {
        let got = column(&ctx, &format!("SELECT {expr}")).await;
        if got != vec![want.map(str::to_string)] {
            failures.push(format!("{expr}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `SELECT <template with x> FROM (VALUES …) t(x)` over `rows` as one column, so the
/// kernels see arrays (not folded constants); compares row by row.
async fn check_column(template: &str, rows: &[(Option<&str>, Option<&str>)]) {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (x, _))| match x {
            Some(x) => format!("({i}, '{}')", x.replace('\'', "''")),
            None => format!("({i}, CAST(NULL AS VARCHAR))"),
        })
        .collect();
    let sql = format!(
        "SELECT {template} FROM (VALUES {}) AS t(i, x) ORDER BY i",
        values.join(", ")
    );
    let got = column(&context(), &sql).await;
    let want: Vec<Option<String>> = rows.iter().map(|(_, w)| w.map(str::to_string)).collect();
    assert_eq!(got, want, "{sql}");
}

/// The error text of a statement that must fail (at planning or execution).
async fn error(sql: &str) -> String {
    let ctx = context();
    let result = match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => panic!("{sql}: expected an error"),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------- JSON (json.html)

/// The document of the JSONPath examples Trino's docs point to (`$.store.book[0].author`).
const STORE: &str = r#"{"store": {"book": [{"author": "Nigel Rees", "title": "Sayings", "price": 8.95},
 {"author": "Evelyn Waugh", "price": 12.99, "isbn": null}], "bicycle": {"color": "red"}},
 "key with space": "spaced", "key-dash": 7, "tags": ["a", "b"], "nested": {"deep": {"x": [1, [2, 3]]}}}"#;

#[tokio::test]
async fn json_extract_scalar_follows_trino() {
    let s = STORE.replace('\n', "");
    let q = |path: &str| format!("json_extract_scalar('{s}', '{}')", path.replace('\'', "''"));
    check(&[
        // json.html: json_extract_scalar(json, '$.store.book[0].author')
        (&q("$.store.book[0].author"), Some("Nigel Rees")),
        (&q("$.store.book[1].price"), Some("12.99")),
        (&q("$.store.bicycle.color"), Some("red")),
        (&q("$[\"key with space\"]"), Some("spaced")),
        (&q("$['key with space']"), Some("spaced")),
        (&q("$[\"key-dash\"]"), Some("7")),
        (&q("$.tags[1]"), Some("b")),
        (&q("$.nested.deep.x[1][0]"), Some("2")),
        // objects, arrays and JSON null are not scalars: NULL
        (&q("$.store"), None),
        (&q("$.tags"), None),
        (&q("$.store.book[1].isbn"), None),
        // missing paths: NULL
        (&q("$.store.book[5].author"), None),
        (&q("$.nope"), None),
        (&q("$.tags.x"), None),
        // json.html: json_extract_scalar('[1, 2, 3]', '$[2]') is '3'
        ("json_extract_scalar('[1, 2, 3]', '$[2]')", Some("3")),
        ("json_extract_scalar('\"abc\"', '$')", Some("abc")),
        (
            "json_extract_scalar('{\"a\": \"x\\u0041\\\"\"}', '$.a')",
            Some("xA\""),
        ),
        (
            "json_extract_scalar('{\"a\": false}', '$.a')",
            Some("false"),
        ),
        // malformed JSON: NULL
        ("json_extract_scalar('{\"a\": ', '$.a')", None),
        ("json_extract_scalar('not json', '$.a')", None),
        ("json_extract_scalar('', '$.a')", None),
        // NULL inputs: NULL
        ("json_extract_scalar(NULL, '$.a')", None),
        ("json_extract_scalar('{\"a\": 1}', NULL)", None),
    ])
    .await;
}

#[tokio::test]
async fn json_extract_scalar_over_a_column() {
    check_column(
        "json_extract_scalar(x, '$.eventname')",
        &[
            (
                Some(r#"{"eventname": "ConsoleLogin", "n": 1}"#),
                Some("ConsoleLogin"),
            ),
            (Some(r#"{"other": 1}"#), None),
            (Some("{broken"), None),
            (Some(""), None),
            (None, None),
            (Some(r#"{"eventname": ""}"#), Some("")),
        ],
    )
    .await;
    // A path that varies by row.
    let got = column(
        &context(),
        "SELECT json_extract_scalar('{\"a\": 1, \"b\": 2}', p) FROM (VALUES (1, '$.a'), (2, '$.b'), (3, NULL)) t(i, p) ORDER BY i",
    )
    .await;
    assert_eq!(got, vec![Some("1".into()), Some("2".into()), None]);
}

#[tokio::test]
async fn invalid_json_path_is_an_error_not_null() {
    for path in ["$.a-b", "a", "$[*]", "$..a", "$.a["] {
        let err = error(&format!("SELECT json_extract_scalar('{{}}', '{path}')")).await;
        assert!(err.contains("Invalid JSON path"), "{path}: {err}");
    }
    let err = error("SELECT json_extract('{}', '$.key-dash')").await;
    assert!(
        err.contains("$[\"a-b\"]"),
        "the error shows the bracket form: {err}"
    );
}

#[tokio::test]
async fn json_extract_returns_json_text() {
    let s = STORE.replace('\n', "");
    check(&[
        // json.html: json_extract(json, '$.store.book')
        (
            &format!("json_extract('{s}', '$.store.bicycle')"),
            Some(r#"{"color":"red"}"#),
        ),
        (
            &format!("json_extract('{s}', '$.tags')"),
            Some(r#"["a","b"]"#),
        ),
        (&format!("json_extract('{s}', '$.tags[0]')"), Some("\"a\"")),
        (
            &format!("json_extract('{s}', '$.store.book[1].isbn')"),
            Some("null"),
        ),
        (
            &format!("json_extract('{s}', '$.nested.deep.x[1]')"),
            Some("[2,3]"),
        ),
        (&format!("json_extract('{s}', '$.missing')"), None),
        ("json_extract('{\"a\": [1, 2', '$.a')", None),
        (
            "json_extract('[1, {\"b\": \"x y\"}]', '$[1]')",
            Some(r#"{"b":"x y"}"#),
        ),
        ("json_extract(NULL, '$')", None),
    ])
    .await;
}

#[tokio::test]
async fn json_array_contains_and_length_follow_trino() {
    check(&[
        // json.html: json_array_contains('[1, 2, 3]', 2) is true
        ("json_array_contains('[1, 2, 3]', 2)", Some("true")),
        ("json_array_contains('[1, 2, 3]', 5)", Some("false")),
        (
            "json_array_contains('[\"10.0.0.1\", \"192.168.1.1\"]', '192.168.1.1')",
            Some("true"),
        ),
        (
            "json_array_contains('[\"10.0.0.1\"]', '10.0.0.2')",
            Some("false"),
        ),
        ("json_array_contains('[true, false]', false)", Some("true")),
        ("json_array_contains('[1.5, 2]', 1.5)", Some("true")),
        ("json_array_contains('[[1], {\"a\": 1}]', 1)", Some("false")),
        ("json_array_contains('[]', 1)", Some("false")),
        ("json_array_contains('{\"a\": 1}', 1)", None),
        ("json_array_contains('[1, 2', 3)", None),
        ("json_array_contains(NULL, 1)", None),
        ("json_array_contains('[1]', NULL)", None),
        // json.html: json_array_length('[1, 2, 3]') is 3
        ("json_array_length('[1, 2, 3]')", Some("3")),
        ("json_array_length('[]')", Some("0")),
        ("json_array_length('[[1, 2], {\"a\": [3]}]')", Some("2")),
        ("json_array_length('{\"a\": 1}')", None),
        ("json_array_length('[1, 2')", None),
        ("json_array_length('')", None),
        ("json_array_length(NULL)", None),
    ])
    .await;
}

#[tokio::test]
async fn ip_pivot_of_the_readme_runs_unmodified() {
    check_column(
        "json_array_contains(json_extract(x, '$._ipaddresses'), '10.1.2.3')",
        &[
            (
                Some(r#"{"_ipaddresses": ["10.1.2.3", "8.8.8.8"], "x": 1}"#),
                Some("true"),
            ),
            (Some(r#"{"_ipaddresses": ["8.8.8.8"]}"#), Some("false")),
            (Some(r#"{"sourceipaddress": "10.1.2.3"}"#), None),
            (None, None),
        ],
    )
    .await;
}

#[tokio::test]
async fn json_parse_and_json_format_follow_trino() {
    check(&[
        // json.html: json_parse('[1, 2, 3]') is JSON '[1,2,3]'; json_parse('"abc"') is '"abc"'
        ("json_parse('[1, 2, 3]')", Some("[1,2,3]")),
        ("json_parse('\"abc\"')", Some("\"abc\"")),
        (
            "json_parse('{\"b\": 1, \"a\": {\"d\": 2, \"c\": 3}}')",
            Some(r#"{"a":{"c":3,"d":2},"b":1}"#),
        ),
        // json.html: json_format(JSON '[1, 2, 3]') is '[1,2,3]', json_format(JSON '"a"') is '"a"'
        ("json_format(json_parse('[1, 2, 3]'))", Some("[1,2,3]")),
        ("json_format('\"a\"')", Some("\"a\"")),
        (
            "json_format('{\"b\": 1,  \"a\": [1, 2]}')",
            Some(r#"{"b":1,"a":[1,2]}"#),
        ),
        (
            "json_extract_scalar(json_parse('{\"a\": {\"b\": 3}}'), '$.a.b')",
            Some("3"),
        ),
        ("json_parse(NULL)", None),
    ])
    .await;
    let err = error("SELECT json_parse('{not json')").await;
    assert!(err.contains("cannot convert value to JSON"), "{err}");
}

// ------------------------------------------------------- date and time (datetime.html)

#[tokio::test]
async fn from_iso8601_timestamp_and_to_iso8601_keep_zones_and_milliseconds() {
    check(&[
        // datetime.html: from_iso8601_timestamp('2020-05-11T11:15:05.055+01:00')
        //   is 2020-05-11 11:15:05.055 +01:00
        (
            "to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05.055+01:00'))",
            Some("2020-05-11T11:15:05.055+01:00"),
        ),
        (
            "to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05.055+05:30'))",
            Some("2020-05-11T11:15:05.055+05:30"),
        ),
        (
            "arrow_typeof(from_iso8601_timestamp('2020-05-11T11:15:05.055+05:30'))",
            Some("Timestamp(ms, \"+05:30\")"),
        ),
        // datetime.html: the time defaults to 00:00:00.000 and the zone to the session's (UTC)
        ("to_iso8601(from_iso8601_timestamp('2020-05-11'))", Some("2020-05-11T00:00:00.000Z")),
        ("to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05'))", Some("2020-05-11T11:15:05.000Z")),
        ("to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05Z'))", Some("2020-05-11T11:15:05.000Z")),
        (
            "to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05.123456789Z'))",
            Some("2020-05-11T11:15:05.123Z"),
        ),
        // Same instant whatever the written zone.
        (
            "from_iso8601_timestamp('2020-05-11T11:15:05+05:30') = from_iso8601_timestamp('2020-05-11T05:45:05Z')",
            Some("true"),
        ),
        ("to_iso8601(TIMESTAMP '2020-05-11 11:15:05.055')", Some("2020-05-11T11:15:05.055")),
        ("to_iso8601(DATE '2020-05-11')", Some("2020-05-11")),
        ("from_iso8601_timestamp(NULL)", None),
        ("to_iso8601(NULL)", None),
    ])
    .await;
    // A column: instants in UTC (one zone per Arrow column).
    check_column(
        "to_iso8601(from_iso8601_timestamp(x))",
        &[
            (
                Some("2020-05-11T11:15:05.055+05:30"),
                Some("2020-05-11T05:45:05.055Z"),
            ),
            (
                Some("2017-01-01T00:00:00Z"),
                Some("2017-01-01T00:00:00.000Z"),
            ),
            (None, None),
        ],
    )
    .await;
    let err = error("SELECT from_iso8601_timestamp('2020-05-11 11:15:05')").await;
    assert!(err.contains("invalid ISO 8601 timestamp"), "{err}");
}

#[tokio::test]
async fn unixtime_conversions_use_double_seconds_in_utc() {
    check(&[
        (
            "to_iso8601(from_unixtime(0))",
            Some("1970-01-01T00:00:00.000Z"),
        ),
        (
            "to_iso8601(from_unixtime(1589195705.055))",
            Some("2020-05-11T11:15:05.055Z"),
        ),
        (
            "to_iso8601(from_unixtime(1589195705))",
            Some("2020-05-11T11:15:05.000Z"),
        ),
        (
            "to_iso8601(from_unixtime(-1.5))",
            Some("1969-12-31T23:59:58.500Z"),
        ),
        (
            "arrow_typeof(from_unixtime(1))",
            Some("Timestamp(ms, \"UTC\")"),
        ),
        (
            "to_iso8601(from_unixtime(1589195705, 'Asia/Kolkata'))",
            Some("2020-05-11T16:45:05.000+05:30"),
        ),
        (
            "to_iso8601(from_unixtime(1589195705, 2, 30))",
            Some("2020-05-11T13:45:05.000+02:30"),
        ),
        (
            "to_unixtime(from_unixtime(1589195705.055))",
            Some("1589195705.055"),
        ),
        (
            "to_unixtime(from_iso8601_timestamp('2020-05-11T11:15:05.055+01:00'))",
            Some("1589192105.055"),
        ),
        (
            "to_unixtime(TIMESTAMP '1970-01-01 00:00:01.5')",
            Some("1.5"),
        ),
        ("from_unixtime(NULL)", None),
        ("to_unixtime(NULL)", None),
    ])
    .await;
}

#[tokio::test]
async fn current_timestamp_is_a_utc_millisecond_timestamp_without_parentheses() {
    check(&[
        (
            "arrow_typeof(current_timestamp)",
            Some("Timestamp(ms, \"UTC\")"),
        ),
        ("arrow_typeof(now())", Some("Timestamp(ms, \"UTC\")")),
        ("current_timestamp = now()", Some("true")),
        (
            "current_timestamp > from_iso8601_timestamp('2024-01-01')",
            Some("true"),
        ),
        // Athena's usual recency filter: interval arithmetic keeps the type.
        (
            "date_diff('minute', current_timestamp - INTERVAL '1' HOUR, current_timestamp)",
            Some("60"),
        ),
        (
            "arrow_typeof(current_timestamp - INTERVAL '1' DAY)",
            Some("Timestamp(ms, \"UTC\")"),
        ),
        (
            "date_diff('second', current_timestamp, from_unixtime(to_unixtime(current_timestamp)))",
            Some("0"),
        ),
    ])
    .await;
}

#[tokio::test]
async fn date_diff_counts_whole_units_toward_zero() {
    check(&[
        // datetime.html examples:
        ("date_diff('second', TIMESTAMP '2020-03-01 00:00:00', TIMESTAMP '2020-03-02 00:00:00')", Some("86400")),
        (
            "date_diff('hour', from_iso8601_timestamp('2020-03-01T00:00:00Z'), from_iso8601_timestamp('2020-03-02T00:00:00Z'))",
            Some("24"),
        ),
        ("date_diff('day', DATE '2020-03-01', DATE '2020-03-02')", Some("1")),
        (
            "date_diff('second', TIMESTAMP '2020-06-01 12:30:45.000000000', TIMESTAMP '2020-06-02 12:30:45.123456789')",
            Some("86400"),
        ),
        (
            "date_diff('millisecond', TIMESTAMP '2020-06-01 12:30:45.000000000', TIMESTAMP '2020-06-02 12:30:45.123456789')",
            Some("86400123"),
        ),
        // truncation toward zero, both directions
        ("date_diff('hour', TIMESTAMP '2020-03-01 00:00:00', TIMESTAMP '2020-03-01 01:59:59')", Some("1")),
        ("date_diff('hour', TIMESTAMP '2020-03-01 01:59:59', TIMESTAMP '2020-03-01 00:00:00')", Some("-1")),
        ("date_diff('minute', TIMESTAMP '2020-03-01 00:00:30', TIMESTAMP '2020-03-01 00:01:29')", Some("0")),
        ("date_diff('month', DATE '2020-01-31', DATE '2020-02-29')", Some("1")),
        ("date_diff('year', DATE '2019-06-01', DATE '2021-05-31')", Some("1")),
        ("date_diff('week', DATE '2020-03-01', DATE '2020-03-15')", Some("2")),
        ("date_diff('quarter', DATE '2020-01-01', DATE '2020-12-31')", Some("3")),
        ("date_diff('HOUR', TIMESTAMP '2020-03-01 00:00:00', TIMESTAMP '2020-03-01 05:00:00')", Some("5")),
        // across zones: instants for exact units
        (
            "date_diff('hour', from_iso8601_timestamp('2020-03-01T10:00:00+05:00'), from_iso8601_timestamp('2020-03-01T10:00:00Z'))",
            Some("5"),
        ),
        ("date_diff('hour', NULL, TIMESTAMP '2020-03-01 00:00:00')", None),
        ("date_diff(NULL, TIMESTAMP '2020-03-01 00:00:00', TIMESTAMP '2020-03-01 00:00:00')", None),
    ])
    .await;
    let err = error("SELECT date_diff('fortnight', DATE '2020-01-01', DATE '2020-02-01')").await;
    assert!(err.contains("not a valid unit"), "{err}");
    let err = error("SELECT date_diff('hour', '2020-01-01T00:00:00Z', DATE '2020-02-01')").await;
    assert!(
        err.contains("from_iso8601_timestamp"),
        "the error says how to convert text: {err}"
    );
}

#[tokio::test]
async fn date_add_adds_units_in_the_values_zone() {
    check(&[
        // datetime.html examples:
        (
            "to_iso8601(date_add('second', 86, TIMESTAMP '2020-03-01 00:00:00'))",
            Some("2020-03-01T00:01:26.000"),
        ),
        (
            "to_iso8601(date_add('hour', 9, TIMESTAMP '2020-03-01 00:00:00'))",
            Some("2020-03-01T09:00:00.000"),
        ),
        (
            "to_iso8601(date_add('day', -1, from_iso8601_timestamp('2020-03-01T00:00:00Z')))",
            Some("2020-02-29T00:00:00.000Z"),
        ),
        // datetime.html operators: timestamp '2012-10-31 01:00' + interval '1' month is 2012-11-30
        (
            "to_iso8601(date_add('month', 1, TIMESTAMP '2012-10-31 01:00:00'))",
            Some("2012-11-30T01:00:00.000"),
        ),
        (
            "to_iso8601(date_add('minute', -90, TIMESTAMP '2020-03-01 00:00:00'))",
            Some("2020-02-29T22:30:00.000"),
        ),
        (
            "to_iso8601(date_add('year', 1, TIMESTAMP '2020-02-29 00:00:00'))",
            Some("2021-02-28T00:00:00.000"),
        ),
        (
            "to_iso8601(date_add('quarter', 1, TIMESTAMP '2020-01-15 00:00:00'))",
            Some("2020-04-15T00:00:00.000"),
        ),
        (
            "to_iso8601(date_add('week', 2, TIMESTAMP '2020-01-15 00:00:00'))",
            Some("2020-01-29T00:00:00.000"),
        ),
        (
            "to_iso8601(date_add('millisecond', 5, TIMESTAMP '2020-01-15 00:00:00'))",
            Some("2020-01-15T00:00:00.005"),
        ),
        // A day across the US daylight-saving change keeps the wall-clock time (23 hours later).
        (
            "to_iso8601(date_add('day', 1, from_unixtime(1583600400, 'America/New_York')))",
            Some("2020-03-08T12:00:00.000-04:00"),
        ),
        (
            "arrow_typeof(date_add('hour', 1, from_unixtime(0)))",
            Some("Timestamp(ms, \"UTC\")"),
        ),
        (
            "date_add('hour', NULL, TIMESTAMP '2020-03-01 00:00:00')",
            None,
        ),
        ("date_add('hour', 1, NULL)", None),
    ])
    .await;
}

#[tokio::test]
async fn date_trunc_is_datafusions_with_trinos_results() {
    // datetime.html truncation table, for 2001-08-22 03:04:05.321
    let t = "from_iso8601_timestamp('2001-08-22T03:04:05.321Z')";
    let q = |unit: &str| format!("to_iso8601(date_trunc('{unit}', {t}))");
    check(&[
        (&q("millisecond"), Some("2001-08-22T03:04:05.321Z")),
        (&q("second"), Some("2001-08-22T03:04:05.000Z")),
        (&q("minute"), Some("2001-08-22T03:04:00.000Z")),
        (&q("hour"), Some("2001-08-22T03:00:00.000Z")),
        (&q("HOUR"), Some("2001-08-22T03:00:00.000Z")),
        (&q("day"), Some("2001-08-22T00:00:00.000Z")),
        (&q("week"), Some("2001-08-20T00:00:00.000Z")),
        (&q("month"), Some("2001-08-01T00:00:00.000Z")),
        (&q("quarter"), Some("2001-07-01T00:00:00.000Z")),
        (&q("year"), Some("2001-01-01T00:00:00.000Z")),
        // datetime.html: date_trunc('month', TIMESTAMP '2022-10-20 05:10:00') is 2022-10-01
        (
            "to_iso8601(date_trunc('month', TIMESTAMP '2022-10-20 05:10:00'))",
            Some("2022-10-01T00:00:00.000"),
        ),
        // In the value's zone.
        (
            "to_iso8601(date_trunc('day', from_iso8601_timestamp('2020-05-11T01:15:05+05:30')))",
            Some("2020-05-11T00:00:00.000+05:30"),
        ),
        ("date_trunc('hour', CAST(NULL AS TIMESTAMP))", None),
    ])
    .await;
}

#[tokio::test]
async fn date_format_uses_mysql_specifiers() {
    check(&[
        // datetime.html: date_format(TIMESTAMP '2022-10-20 05:10:00', '%m-%d-%Y %H') is '10-20-2022 05'
        (
            "date_format(TIMESTAMP '2022-10-20 05:10:00', '%m-%d-%Y %H')",
            Some("10-20-2022 05"),
        ),
        (
            "date_format(TIMESTAMP '2001-08-22 03:04:05.321', '%Y-%m-%d %H:%i:%s.%f')",
            Some("2001-08-22 03:04:05.321000"),
        ),
        (
            "date_format(TIMESTAMP '2001-08-22 15:04:05', '%W %M %e %r %p')",
            Some("Wednesday August 22 03:04:05 PM PM"),
        ),
        (
            "date_format(from_iso8601_timestamp('2020-05-11T23:30:00+05:30'), '%Y-%m-%d %H:%i')",
            Some("2020-05-11 23:30"),
        ),
        ("date_format(NULL, '%Y')", None),
        ("date_format(TIMESTAMP '2001-08-22 03:04:05', NULL)", None),
    ])
    .await;
    let err = error("SELECT date_format(TIMESTAMP '2001-08-22 03:04:05', '%D')").await;
    assert!(err.contains("not supported"), "{err}");
}

// -------------------------------------------------------------- regexp (regexp.html)

#[tokio::test]
async fn regexp_like_and_regexp_extract_follow_trino() {
    check(&[
        // regexp.html: regexp_like('1a 2b 14m', '\d+b') is true
        ("regexp_like('1a 2b 14m', '\\d+b')", Some("true")),
        ("regexp_like('1a 2b 14m', '^\\d+b')", Some("false")),
        ("regexp_like(NULL, 'a')", None),
        // regexp.html: regexp_extract('1a 2b 14m', '\d+') is '1'
        ("regexp_extract('1a 2b 14m', '\\d+')", Some("1")),
        // regexp.html: regexp_extract('1a 2b 14m', '(\d+)([a-z]+)', 2) is 'a'
        (
            "regexp_extract('1a 2b 14m', '(\\d+)([a-z]+)', 2)",
            Some("a"),
        ),
        (
            "regexp_extract('1a 2b 14m', '(\\d+)([a-z]+)', 0)",
            Some("1a"),
        ),
        ("regexp_extract('abc', '\\d+')", None),
        ("regexp_extract('abc', '(x)?abc', 1)", None),
        ("regexp_extract('', '^$')", Some("")),
        ("regexp_extract(NULL, 'a')", None),
        ("regexp_extract('a', NULL)", None),
        ("regexp_extract('a', 'a', NULL)", None),
    ])
    .await;
    let err = error("SELECT regexp_extract('1a', '(\\d+)', 2)").await;
    assert!(err.contains("Cannot access group 2"), "{err}");
    let err = error("SELECT regexp_extract('1a', '(')").await;
    assert!(err.contains("invalid regular expression"), "{err}");
    check_column(
        "regexp_extract(x, 'user=(\\w+)', 1)",
        &[
            (Some("login user=alice ok"), Some("alice")),
            (Some("no user"), None),
            (None, None),
        ],
    )
    .await;
}

// ------------------------------------------------- strings and arrays (string/array.html)

#[tokio::test]
async fn split_contains_and_cardinality_follow_trino() {
    check(&[
        ("split('a.b.c', '.')", Some("[a, b, c]")),
        ("split('a,,b', ',')", Some("[a, , b]")),
        ("split('', ',')", Some("[]")),
        ("cardinality(split('', ','))", Some("1")),
        ("split('a.b.c', '.', 2)", Some("[a, b.c]")),
        // Array subscripts are 1-based, as in Trino.
        ("split('a.b.c', '.')[2]", Some("b")),
        ("split(NULL, ',')", None),
        ("cardinality(split('a,b,c', ','))", Some("3")),
        ("cardinality(ARRAY[1, 2, 3])", Some("3")),
        ("cardinality(CAST(NULL AS INT[]))", None),
        // array.html: contains(x, element): true if the array contains the element
        ("contains(ARRAY[1, 2, 3], 2)", Some("true")),
        ("contains(ARRAY[1, 2, 3], 4)", Some("false")),
        ("contains(ARRAY[1, NULL, 3], 4)", None),
        ("contains(ARRAY[1, NULL, 3], 1)", Some("true")),
        ("contains(ARRAY['cloudtrail', 'vpc'], 'vpc')", Some("true")),
        ("contains(split('a,b', ','), 'b')", Some("true")),
        ("contains(ARRAY[1, 2], NULL)", None),
        ("contains(CAST(NULL AS INT[]), 1)", None),
    ])
    .await;
    let err = error("SELECT split('abc', '')").await;
    assert!(
        err.contains("delimiter may not be the empty string"),
        "{err}"
    );
    let err = error("SELECT contains('haystack', 'hay')").await;
    assert!(err.contains("takes an array"), "{err}");
}

// ------------------------------------------------------------- geospatial.html

#[tokio::test]
async fn great_circle_distance_in_kilometres() {
    check(&[
        // Trino's TestGeoFunctions: 2886.448973436703
        ("great_circle_distance(36.12, -86.67, 33.94, -118.40) BETWEEN 2886.4489734 AND 2886.4489735", Some("true")),
        ("great_circle_distance(0, 0, 0, 0)", Some("0.0")),
        ("great_circle_distance(NULL, 0, 0, 0)", None),
    ])
    .await;
    let err = error("SELECT great_circle_distance(91, 0, 0, 0)").await;
    assert!(err.contains("latitude must be between -90 and 90"), "{err}");
}

// ------------------------------------------------------------ CAST (conversion.html)

#[tokio::test]
async fn rewritten_casts_keep_their_column_names() {
    // The same header as DataFusion gives without our rule.
    let ctx = context();
    let plain = SessionContext::new();
    for sql in [
        "SELECT CAST(x AS BIGINT) FROM (VALUES (1.5)) t(x)",
        "SELECT CAST(TIMESTAMP '2020-01-01 00:00:00' AS VARCHAR), TRY_CAST(2.5 AS INT)",
    ] {
        let ours = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let theirs = plain.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        assert_eq!(
            ours.schema().field_names(),
            theirs.schema().field_names(),
            "{sql}"
        );
        if sql.contains("VALUES") {
            // (The constant query is folded away by then.)
            assert!(
                format!("{ours}").contains("for_cast"),
                "{sql}: our rule rewrote the cast"
            );
        }
    }
    let got = column(
        &ctx,
        "SELECT CAST(x AS BIGINT) FROM (VALUES (1.5), (-2.5), (2.4)) t(x)",
    )
    .await;
    assert_eq!(
        got,
        vec![Some("2".into()), Some("-3".into()), Some("2".into())]
    );
}

#[tokio::test]
async fn casts_behave_as_athena() {
    check(&[
        ("CAST(12 AS VARCHAR)", Some("12")),
        ("CAST(1.5e0 AS VARCHAR)", Some("1.5")),
        ("CAST(12.0e0 AS VARCHAR)", Some("12.0")),
        // A known difference (docs/sql-functions.md): Trino prints 1.0E20.
        ("CAST(1e20 AS VARCHAR)", Some("1e20")),
        ("CAST('12' AS BIGINT)", Some("12")),
        ("CAST('1.5' AS DOUBLE)", Some("1.5")),
        ("CAST(NULL AS BIGINT)", None),
        // ISO 8601 text with 'T' and 'Z' reads as the UTC wall-clock time.
        (
            "to_iso8601(CAST('2020-05-11T11:15:05Z' AS TIMESTAMP))",
            Some("2020-05-11T11:15:05.000"),
        ),
        (
            "to_iso8601(CAST('2020-05-11 11:15:05.055' AS TIMESTAMP))",
            Some("2020-05-11T11:15:05.055"),
        ),
        // Trino rounds a double to the nearest bigint (half away from zero).
        ("CAST(12.5 AS BIGINT)", Some("13")),
        ("CAST(-12.5 AS BIGINT)", Some("-13")),
        ("CAST(12.4 AS BIGINT)", Some("12")),
        (
            "CAST(json_extract_scalar('{\"n\": 3}', '$.n') AS BIGINT) + 1",
            Some("4"),
        ),
    ])
    .await;
}
