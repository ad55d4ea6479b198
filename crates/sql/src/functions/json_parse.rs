//! `json_parse(varchar)` and `json_format(json)` (<https://trino.io/docs/current/functions/json.html>).
//!
//! Locally a `json` value is its text, so these two convert text to text:
//! - `json_parse` checks the text is JSON and returns Trino's canonical form: compact, with
//!   object members sorted by key (`json_parse('{"b":1, "a":2}')` is `{"a":2,"b":1}`).
//! - `json_format` checks the text is JSON and returns it compacted, order kept.
//!
//! Text that is not JSON is an error naming the row's text (Trino: "Cannot convert value to
//! JSON"), not NULL: use `json_extract*`, which give NULL, to read damaged documents.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use super::args::{Batch, coerce_strings, udf_struct};
use super::json_extract::compact_json;

udf_struct!(
    /// `json_parse(string) -> json`
    JsonParse
);

udf_struct!(
    /// `json_format(json) -> varchar`
    JsonFormat
);

impl ScalarUDFImpl for JsonParse {
    fn name(&self) -> &str {
        "json_parse"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["string"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_json(self.name(), &args.args, |text| {
            let value: Value = serde_json::from_str(text).ok()?;
            let mut out = String::with_capacity(text.len());
            write_sorted(&value, &mut out);
            Some(out)
        })
    }
}

impl ScalarUDFImpl for JsonFormat {
    fn name(&self) -> &str {
        "json_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["json"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_json(self.name(), &args.args, compact_json)
    }
}

/// Applies `convert` to each non-NULL text; `None` from it is the "not JSON" error.
fn map_json(
    name: &str,
    args: &[ColumnarValue],
    convert: impl Fn(&str) -> Option<String>,
) -> Result<ColumnarValue> {
    let batch = Batch::new(args)?;
    let text = batch.strings(0)?;
    let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
    for v in text.iter() {
        match v {
            None => out.append_null(),
            Some(t) => match convert(t) {
                Some(json) => out.append_value(json),
                None => {
                    let shown: String = t.chars().take(80).collect();
                    return exec_err!(
                        "{name}: cannot convert value to JSON: '{shown}' is not valid JSON \
                         (to read damaged documents use json_extract_scalar/json_extract, \
                         which return NULL for them)"
                    );
                }
            },
        }
    }
    batch.finish(Arc::new(out.finish()))
}

/// Writes `v` compactly with object members in key order (Trino's canonical JSON).
fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(k.clone()));
                write_sorted(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let mut out = String::new();
        write_sorted(&serde_json::from_str(text).unwrap(), &mut out);
        out
    }

    #[test]
    fn canonical_form_is_compact_with_sorted_keys() {
        let cases = [
            ("[1, 2, 3]", "[1,2,3]"),
            ("\"abc\"", "\"abc\""),
            (
                r#"{"b": 1, "a": {"d": [true, null], "c": "x"}}"#,
                r#"{"a":{"c":"x","d":[true,null]},"b":1}"#,
            ),
            (r#"{"q": "say \"hi\""}"#, r#"{"q":"say \"hi\""}"#),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input), want);
        }
    }
}
