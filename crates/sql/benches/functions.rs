//! Micro-benchmark of `json_extract_scalar` on realistic `details` text: our lazy walker
//! (through the registered UDF, path compiled once per batch) against the obvious
//! alternative, parsing each row into a full `serde_json::Value` and reading the field.
//!
//! Run: `cargo bench -p lakewatch-sql --bench functions` (a release build of DataFusion:
//! about 20 minutes cold on 2 cores). Throughput is reported in rows per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};
use serde_json::Value;

const ROWS: usize = 8192;

/// A CloudTrail `details` object as the pipeline stores it (lower-cased keys, `_ipaddresses`
/// added), about 1.2 KB, varied per row so nothing is cached by accident.
fn details(i: usize) -> String {
    let event = ["ConsoleLogin", "CreateLogStream", "GetObject", "AssumeRole"][i % 4];
    format!(
        r#"{{"eventversion": "1.10", "useridentity": {{"type": "IAMUser", "principalid": "AIDAEXAMPLE{i:08}",
"arn": "arn:aws:iam::111122223333:user/user{i}", "accountid": "111122223333", "accesskeyid": "ASIA{i:016}",
"username": "user{i}", "sessioncontext": {{"sessionissuer": {{}}, "webidfederationdata": {{}},
"attributes": {{"creationdate": "2026-04-17T08:15:02Z", "mfaauthenticated": "{mfa}"}}}}}},
"eventtime": "2026-04-17T08:{m:02}:02Z", "eventsource": "signin.amazonaws.com", "eventname": "{event}",
"awsregion": "us-east-1", "sourceipaddress": "198.51.{a}.{b}",
"useragent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
"requestparameters": {{"bucketname": "logs-{i}", "key": "AWSLogs/111122223333/CloudTrail/us-east-1/2026/04/17/file-{i}.json.gz"}},
"responseelements": {{"consolelogin": "Success"}}, "additionaleventdata": {{"loginto": "https://console.aws.amazon.com/console/home",
"mobileversion": "No", "mfaused": "Yes", "bytestransferredin": {i}, "bytestransferredout": 0.0}},
"eventid": "3f1e2c9a-0b7d-4c2e-9a51-{i:012}", "readonly": false, "eventtype": "AwsConsoleSignIn",
"managementevent": true, "recipientaccountid": "111122223333", "eventcategory": "Management",
"_ipaddresses": ["198.51.{a}.{b}", "10.0.{a}.{b}"]}}"#,
        mfa = i % 2 == 0,
        m = i % 60,
        a = i % 250,
        b = i / 250 % 250,
    )
    .replace('\n', " ")
}

/// The baseline: a full `Value` per row, then the path by `pointer`.
fn full_value_parse(json: &StringArray, pointer: &str) -> StringArray {
    let mut out = StringBuilder::new();
    for v in json.iter() {
        let found = v
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| match v.pointer(pointer)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            });
        out.append_option(found);
    }
    out.finish()
}

fn bench(c: &mut Criterion) {
    let json: Arc<StringArray> = Arc::new((0..ROWS).map(|i| Some(details(i))).collect());
    let udf: ScalarUDF = lakewatch_sql::functions::all()
        .into_iter()
        .find(|f| f.name() == "json_extract_scalar")
        .expect("json_extract_scalar is registered");
    let invoke = |path: &str| {
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(json.clone()),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(path.to_string()))),
            ],
            arg_fields: vec![
                Arc::new(Field::new("details", DataType::Utf8, true)),
                Arc::new(Field::new("path", DataType::Utf8, false)),
            ],
            number_rows: ROWS,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        match udf.invoke_with_args(args).unwrap() {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(_) => unreachable!("array input gives an array"),
        }
    };
    let cases = [
        ("eventname", "$.eventname", "/eventname"),
        (
            "nested",
            "$.useridentity.sessioncontext.attributes.mfaauthenticated",
            "/useridentity/sessioncontext/attributes/mfaauthenticated",
        ),
        ("last_key", "$.eventcategory", "/eventcategory"),
    ];
    // The two must agree before their speed is compared.
    for (name, path, pointer) in cases {
        let lazy = invoke(path);
        let full: Arc<dyn Array> = Arc::new(full_value_parse(&json, pointer));
        assert_eq!(
            &lazy, &full,
            "{name}: the walker and the full parse disagree"
        );
        assert_eq!(lazy.null_count(), 0, "{name}: every row has the field");
    }

    let mut group = c.benchmark_group("json_extract_scalar");
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, path, pointer) in cases {
        group.bench_function(format!("lazy_walker/{name}"), |b| {
            b.iter(|| black_box(invoke(path).len()))
        });
        group.bench_function(format!("full_value_parse/{name}"), |b| {
            b.iter(|| black_box(full_value_parse(&json, pointer).len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
