//! `current_timestamp` (and its alias `now()`): the query's start time as
//! `timestamp(3) with time zone` in UTC, Athena's session zone
//! (<https://trino.io/docs/current/functions/datetime.html>).
//!
//! DataFusion's `now()` (aliased `current_timestamp`) returns nanoseconds in the session's
//! zone, none by default; ours replaces both names so values compare and print as in Athena.
//! The SQL parser hands the bare keyword `current_timestamp` (no parentheses, as Trino writes
//! it) to the function of that name, so both `current_timestamp` and `now()` reach this one.
//! Like DataFusion's, it is folded into a constant when the query is planned, so every row
//! of a query sees the same instant.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::time::{UTC, timestamp_tz};

/// `current_timestamp -> timestamp(3) with time zone`
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentTimestamp {
    signature: Signature,
    aliases: Vec<String>,
}

impl Default for CurrentTimestamp {
    fn default() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Stable),
            aliases: vec!["now".to_string()],
        }
    }
}

impl ScalarUDFImpl for CurrentTimestamp {
    fn name(&self) -> &str {
        "current_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamp_tz(UTC))
    }
    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), timestamp_tz(UTC), false)))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("current_timestamp is replaced by a constant when the query is planned")
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let Some(start) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::TimestampMillisecond(Some(start.timestamp_millis()), Some(UTC.into())),
            None,
        )))
    }
}
