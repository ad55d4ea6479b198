//! `json_extract_scalar(json, path)` and `json_extract(json, path)`: Trino's legacy JSON
//! extraction (<https://trino.io/docs/current/functions/json.html>), over JSON held as text.
//!
//! - `json_extract_scalar` returns the scalar at `path` as varchar: a string unquoted and
//!   unescaped, a number or boolean as written; NULL for objects, arrays, JSON `null`, a missing
//!   path or malformed JSON.
//! - `json_extract` returns the value at `path` as JSON text, compacted (insignificant
//!   whitespace removed, member order and escapes kept); NULL for a missing path or malformed
//!   JSON. A JSON `null` there is the text `null`, as in Trino.
//!
//! A constant path is compiled once per batch; see [`super::json_path`] for the subset and
//! for why the document is walked rather than parsed.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, Compiled, coerce_strings, constant_str, udf_struct};
use super::json_path::{JsonPath, unescape};

udf_struct!(
    /// `json_extract_scalar(json, json_path) -> varchar`
    JsonExtractScalar
);

udf_struct!(
    /// `json_extract(json, json_path) -> json` (JSON text)
    JsonExtract
);

impl ScalarUDFImpl for JsonExtractScalar {
    fn name(&self) -> &str {
        "json_extract_scalar"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["json", "json_path"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        extract_each(&args.args, scalar_text)
    }
}

impl ScalarUDFImpl for JsonExtract {
    fn name(&self) -> &str {
        "json_extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["json", "json_path"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        extract_each(&args.args, |v| compact_json(v).map(Cow::Owned))
    }
}

/// The path argument: compiled once when constant, else per distinct row value.
enum PathArg {
    Constant(Option<JsonPath>),
    PerRow(Compiled<JsonPath>),
}

/// Runs `emit` on the located value of every row (NULL json, NULL path or missing value give
/// NULL, as does `emit` returning `None`).
fn extract_each(
    args: &[ColumnarValue],
    mut emit: impl FnMut(&str) -> Option<Cow<'_, str>>,
) -> Result<ColumnarValue> {
    let mut path = match constant_str(&args[1]) {
        Some(p) => PathArg::Constant(p.map(JsonPath::parse).transpose()?),
        None => PathArg::PerRow(Compiled::new()),
    };
    let batch = Batch::new(args)?;
    let json = batch.strings(0)?;
    let paths = batch.strings(1)?;
    let mut out = StringBuilder::with_capacity(json.len(), json.len() * 8);
    for i in 0..json.len() {
        let row_path;
        let p = match &mut path {
            PathArg::Constant(p) => p.as_ref(),
            PathArg::PerRow(cache) => {
                if paths.is_null(i) {
                    None
                } else {
                    row_path = cache.get(paths.value(i), JsonPath::parse)?;
                    Some(&*row_path)
                }
            }
        };
        let value = match p {
            Some(p) if !json.is_null(i) => p.locate(json.value(i)).and_then(&mut emit),
            _ => None,
        };
        out.append_option(value);
    }
    batch.finish(Arc::new(out.finish()))
}

/// A located value as `json_extract_scalar` returns it.
fn scalar_text(v: &str) -> Option<Cow<'_, str>> {
    match v.as_bytes()[0] {
        b'"' => {
            let content = &v[1..v.len() - 1];
            if content.contains('\\') {
                unescape(content).map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(content))
            }
        }
        b'{' | b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(v)),
    }
}

/// Validates a JSON value and removes whitespace outside strings; `None` if not valid JSON.
pub(crate) fn compact_json(v: &str) -> Option<String> {
    serde_json::from_str::<&serde_json::value::RawValue>(v).ok()?;
    let mut out = String::with_capacity(v.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in v.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::common::config::ConfigOptions;

    use super::*;

    fn run(
        udf: &dyn ScalarUDFImpl,
        json: Vec<Option<&str>>,
        path: ColumnarValue,
    ) -> Vec<Option<String>> {
        let n = json.len();
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(StringArray::from(json))),
                path,
            ],
            arg_fields: vec![
                Arc::new(Field::new("j", DataType::Utf8, true)),
                Arc::new(Field::new("p", DataType::Utf8, true)),
            ],
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(a) = udf.invoke_with_args(args).unwrap() else {
            panic!("expected an array");
        };
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    fn lit(p: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(p.to_string())))
    }

    #[test]
    fn scalar_kernel_cases_including_nulls() {
        let udf = JsonExtractScalar::default();
        let rows = vec![
            Some(r#"{"a": "x\"y\u00e9"}"#),
            Some(r#"{"a": 1.50}"#),
            Some(r#"{"a": true}"#),
            Some(r#"{"a": null}"#),
            Some(r#"{"a": {"b": 1}}"#),
            Some(r#"{"a": [1]}"#),
            Some(r#"{"b": 1}"#),
            Some("{not json"),
            Some(""),
            None,
        ];
        let want = [
            Some("x\"yé"),
            Some("1.50"),
            Some("true"),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ];
        let got = run(&udf, rows, lit("$.a"));
        assert_eq!(got, want.map(|w| w.map(str::to_string)));
    }

    #[test]
    fn null_path_gives_null_and_per_row_paths_are_honoured() {
        let udf = JsonExtractScalar::default();
        let got = run(
            &udf,
            vec![Some(r#"{"a":1}"#)],
            ColumnarValue::Scalar(ScalarValue::Utf8(None)),
        );
        assert_eq!(got, vec![None]);
        let paths = ColumnarValue::Array(Arc::new(StringArray::from(vec![
            Some("$.a"),
            Some("$.b"),
            None,
        ])));
        let doc = Some(r#"{"a":1,"b":2}"#);
        assert_eq!(
            run(&udf, vec![doc, doc, doc], paths),
            vec![Some("1".into()), Some("2".into()), None]
        );
    }

    #[test]
    fn extract_returns_compact_json_text() {
        let udf = JsonExtract::default();
        let rows = vec![
            Some(r#"{"a": {"b": [1, 2, {"c": "x y"}]}}"#),
            Some(r#"{"a": null}"#),
            Some(r#"{"a": "s"}"#),
            Some(r#"{"a": [1, 2}"#),
            Some(r#"{"b": 1}"#),
            None,
        ];
        let got = run(&udf, rows, lit("$.a"));
        assert_eq!(
            got,
            vec![
                Some(r#"{"b":[1,2,{"c":"x y"}]}"#.into()),
                Some("null".into()),
                Some("\"s\"".into()),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn invalid_constant_path_is_an_error_not_null() {
        let udf = JsonExtractScalar::default();
        let args = ScalarFunctionArgs {
            args: vec![lit("{}"), lit("$.a-b")],
            arg_fields: vec![],
            number_rows: 1,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let err = udf.invoke_with_args(args).unwrap_err().to_string();
        assert!(err.contains("Invalid JSON path: '$.a-b'"), "{err}");
    }
}
