//! `json_array_contains(json, value)` and `json_array_length(json)` over JSON text
//! (<https://trino.io/docs/current/functions/json.html>).
//!
//! Both look only at the top-level array and return NULL when `json` is not an array or is
//! malformed (as Trino, which also gives NULL there). `json_array_contains` compares like
//! Trino: a varchar `value` matches JSON strings, a boolean matches `true`/`false`, a bigint
//! matches integer numbers of equal value, a double matches any number of equal value; nested
//! arrays and objects never match. It answers `true` at the first match without reading on.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, coerce_string, coerce_strings, is_string, udf_struct};
use super::json_path::{Scanner, unescape};

udf_struct!(
    /// `json_array_contains(json, value) -> boolean`
    JsonArrayContains
);

udf_struct!(
    /// `json_array_length(json) -> bigint`
    JsonArrayLength
);

impl ScalarUDFImpl for JsonArrayContains {
    fn name(&self) -> &str {
        "json_array_contains"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), "(json, value)", arg_types.len(), &[2])?;
        let value = match &arg_types[1] {
            DataType::Boolean => DataType::Boolean,
            t if t.is_integer() => DataType::Int64,
            t if t.is_numeric() => DataType::Float64,
            t if is_string(t) => DataType::Utf8,
            t => {
                return plan_err!(
                    "json_array_contains: value must be a boolean, number or varchar, got {t}"
                );
            }
        };
        Ok(vec![
            coerce_string(self.name(), "json", &arg_types[0])?,
            value,
        ])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let json = batch.strings(0)?;
        let values = &batch.arrays[1];
        let mut out = BooleanBuilder::with_capacity(json.len());
        for i in 0..json.len() {
            let result = match needle(values, i) {
                Some(n) if !json.is_null(i) => array_contains(json.value(i), &n),
                _ => None,
            };
            out.append_option(result);
        }
        batch.finish(Arc::new(out.finish()))
    }
}

impl ScalarUDFImpl for JsonArrayLength {
    fn name(&self) -> &str {
        "json_array_length"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["json"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let json = batch.strings(0)?;
        let mut out = Int64Builder::with_capacity(json.len());
        for v in json.iter() {
            out.append_option(v.and_then(array_length));
        }
        batch.finish(Arc::new(out.finish()))
    }
}

/// The value searched for, typed as Trino compares it.
enum Needle<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn needle(values: &ArrayRef, i: usize) -> Option<Needle<'_>> {
    if values.is_null(i) {
        return None;
    }
    Some(match values.data_type() {
        DataType::Boolean => Needle::Bool(values.as_boolean().value(i)),
        DataType::Int64 => Needle::Int(values.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Needle::Float(values.as_primitive::<Float64Type>().value(i)),
        _ => Needle::Str(values.as_string::<i32>().value(i)),
    })
}

/// Calls `visit` on each top-level element of the array `json` (the scanner rests on the
/// element); `visit` returns `Some(true)` to stop early. `None` when not an array or malformed.
fn each_element(json: &str, mut visit: impl FnMut(&mut Scanner) -> Option<bool>) -> Option<bool> {
    let mut s = Scanner::new(json);
    s.ws();
    if s.peek()? != b'[' {
        return None;
    }
    let mut elements = s.elements()?;
    while elements.at_element(&mut s) {
        if visit(&mut s)? {
            return Some(true);
        }
        elements.next(&mut s)?;
    }
    Some(false)
}

fn array_contains(json: &str, needle: &Needle) -> Option<bool> {
    each_element(json, |s| match s.peek()? {
        b'"' => {
            let (content, escaped) = s.string()?;
            Some(match needle {
                Needle::Str(n) if escaped => unescape(content).is_some_and(|c| c == *n),
                Needle::Str(n) => content == *n,
                _ => false,
            })
        }
        b'{' | b'[' => s.skip_value().map(|_| false),
        _ => {
            let token = s.scalar_token()?;
            Some(match needle {
                Needle::Bool(b) => token == if *b { "true" } else { "false" },
                Needle::Int(n) => token.parse::<i64>().is_ok_and(|t| t == *n),
                Needle::Float(f) => token.parse::<f64>().is_ok_and(|t| t == *f),
                Needle::Str(_) => false,
            })
        }
    })
}

fn array_length(json: &str) -> Option<i64> {
    let mut n = 0;
    each_element(json, |s| {
        n += 1;
        s.skip_value().map(|_| false)
    })?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_compares_as_trino() {
        let cases: &[(&str, Needle, Option<bool>)] = &[
            ("[1, 2, 3]", Needle::Int(2), Some(true)),
            ("[1, 2, 3]", Needle::Int(4), Some(false)),
            ("[1.0, 2]", Needle::Int(1), Some(false)),
            ("[1.0, 2]", Needle::Float(1.0), Some(true)),
            ("[\"1\"]", Needle::Int(1), Some(false)),
            (
                "[\"10.0.0.1\", \"a\\\"b\"]",
                Needle::Str("a\"b"),
                Some(true),
            ),
            ("[[\"x\"], {\"x\": 1}]", Needle::Str("x"), Some(false)),
            ("[true, false]", Needle::Bool(false), Some(true)),
            ("[]", Needle::Int(1), Some(false)),
            ("{\"a\": 1}", Needle::Int(1), None),
            ("[1, 2", Needle::Int(5), None),
            ("[1, 2", Needle::Int(1), Some(true)),
            ("nope", Needle::Int(1), None),
            ("", Needle::Int(1), None),
        ];
        for (json, needle, want) in cases {
            assert_eq!(array_contains(json, needle), *want, "{json}");
        }
    }

    #[test]
    fn length_counts_top_level_elements() {
        let cases: &[(&str, Option<i64>)] = &[
            ("[1, 2, 3]", Some(3)),
            ("[]", Some(0)),
            (" [ [1, 2], {\"a\": [3]}, \"]\" ] ", Some(3)),
            ("{\"a\": 1}", None),
            ("\"[1]\"", None),
            ("[1, 2", None),
            ("[1 2]", None),
            ("", None),
        ];
        for (json, want) in cases {
            assert_eq!(array_length(json), *want, "{json}");
        }
    }
}
