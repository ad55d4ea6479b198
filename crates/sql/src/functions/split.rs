//! `split(string, delimiter [, limit])` (<https://trino.io/docs/current/functions/string.html>).
//!
//! Splits on every occurrence of `delimiter` (a plain string, not a pattern) into
//! `array(varchar)`; empty pieces are kept (`split('a,,b', ',')` is `[a, "", b]`, and
//! `split('', ',')` is `[""]`). With `limit`, at most `limit` pieces, the last holding the
//! rest. An empty delimiter or a limit below 1 is an error, as in Trino.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, coerce_integer, coerce_string, optional_int, udf_struct};

udf_struct!(
    /// `split(string, delimiter [, limit]) -> array(varchar)`
    Split
);

fn item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        "split"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(string, delimiter) or (string, delimiter, limit)",
            arg_types.len(),
            &[2, 3],
        )?;
        let mut out = vec![
            coerce_string(self.name(), "string", &arg_types[0])?,
            coerce_string(self.name(), "delimiter", &arg_types[1])?,
        ];
        if let Some(l) = arg_types.get(2) {
            out.push(coerce_integer(self.name(), "limit", l)?);
        }
        Ok(out)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(item()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let (text, delims) = (batch.strings(0)?, batch.strings(1)?);
        let limits = batch.arrays.get(2).map(|l| l.as_primitive::<Int64Type>());
        let mut out = ListBuilder::new(StringBuilder::new()).with_field(item());
        for i in 0..text.len() {
            let limit = optional_int(limits, i, i64::MAX);
            let (Some(limit), true, true) = (limit, text.is_valid(i), delims.is_valid(i)) else {
                out.append(false);
                continue;
            };
            let delim = delims.value(i);
            if delim.is_empty() {
                return exec_err!("split: the delimiter may not be the empty string");
            }
            if limit < 1 {
                return exec_err!("split: limit must be positive, got {limit}");
            }
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            for piece in text.value(i).splitn(limit, delim) {
                out.values().append_value(piece);
            }
            out.append(true);
        }
        batch.finish(Arc::new(out.finish()))
    }
}
