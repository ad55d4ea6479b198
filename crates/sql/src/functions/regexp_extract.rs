//! `regexp_extract(string, pattern [, group])`
//! (<https://trino.io/docs/current/functions/regexp.html>).
//!
//! Returns the first substring matched by `pattern`, or with `group` that capturing group of
//! the first match; NULL when nothing matches (or the group took no part in the match). A
//! group number the pattern does not have is an error, as in Trino. Patterns use the Rust
//! `regex` syntax, which matches Trino's (Java-style) for the common cases: classes, `\d\w\s`,
//! groups, `(?i)`; look-around and back-references are not supported and give an error.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::args::{
    Batch, Compiled, check_arity, coerce_integer, coerce_string, optional_int, udf_struct,
};

udf_struct!(
    /// `regexp_extract(string, pattern [, group]) -> varchar`
    RegexpExtract
);

/// Compiles a pattern, naming it in the error.
pub(crate) fn compile_regex(function: &str, pattern: &str) -> Result<Regex> {
    match Regex::new(pattern) {
        Ok(r) => Ok(r),
        Err(e) => exec_err!("{function}: invalid regular expression '{pattern}': {e}"),
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(string, pattern) or (string, pattern, group)",
            arg_types.len(),
            &[2, 3],
        )?;
        let mut out = vec![
            coerce_string(self.name(), "string", &arg_types[0])?,
            coerce_string(self.name(), "pattern", &arg_types[1])?,
        ];
        if let Some(g) = arg_types.get(2) {
            out.push(coerce_integer(self.name(), "group", g)?);
        }
        Ok(out)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let (text, patterns) = (batch.strings(0)?, batch.strings(1)?);
        let groups = batch.arrays.get(2).map(|g| g.as_primitive::<Int64Type>());
        let mut compiled = Compiled::new();
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * 8);
        for i in 0..text.len() {
            let group = optional_int(groups, i, 0);
            let (Some(group), true, true) = (group, text.is_valid(i), patterns.is_valid(i)) else {
                out.append_null();
                continue;
            };
            let re = compiled.get(patterns.value(i), |p| compile_regex(self.name(), p))?;
            let count = re.captures_len() as i64 - 1;
            if group < 0 || group > count {
                return exec_err!(
                    "regexp_extract: pattern has {count} groups. Cannot access group {group}"
                );
            }
            let found = re
                .captures(text.value(i))
                .and_then(|c| c.get(group as usize))
                .map(|m| m.as_str());
            out.append_option(found);
        }
        batch.finish(Arc::new(out.finish()))
    }
}
