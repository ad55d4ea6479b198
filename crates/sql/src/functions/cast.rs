//! `CAST` as Athena does it where DataFusion differs: an analyzer rule, run after type
//! coercion, that rewrites two kinds of casts (`TRY_CAST` likewise):
//!
//! - a floating-point value to an integer type rounds to the nearest integer, halves away from
//!   zero, as Trino (`CAST(12.5 AS BIGINT)` is 13, `CAST(-12.5 AS BIGINT)` is -13); Arrow
//!   truncates (12, -12);
//! - a timestamp to text prints Trino's form, `2020-05-11 11:15:05.055` (a space, always
//!   milliseconds), with ` UTC` or ` +05:30` after a timestamp with time zone; Arrow prints
//!   `2020-05-11T11:15:05.055` (`+05:30` glued on).
//!
//! Casts that already agree and are kept as DataFusion does them: text to BIGINT/DOUBLE, any
//! value to VARCHAR other than timestamps, and text to TIMESTAMP, which also accepts ISO 8601
//! with `T` and a zone (`CAST('2020-05-11T11:15:05Z' AS TIMESTAMP)` is the UTC wall-clock
//! time), where Trino accepts only `2020-05-11 11:15:05[.fff]`.
//! Column names are preserved, so `SELECT CAST(x AS BIGINT)` keeps its usual header.

use std::sync::Arc;

use chrono::Offset;
use datafusion::arrow::array::{Array, AsArray, Float64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::args::{Batch, udf_struct};
use super::time::{Instants, iso_offset};

/// The analyzer rule; `register_all` adds it to the session.
#[derive(Debug, Default)]
pub struct AthenaCasts;

impl AnalyzerRule for AthenaCasts {
    fn name(&self) -> &str {
        "athena_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let round = Arc::new(ScalarUDF::from(RoundForCast::default()));
        let text = Arc::new(ScalarUDF::from(TimestampText::default()));
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(ts) = &plan {
                schema.merge(&DFSchema::try_from_qualified_schema(
                    ts.table_name.clone(),
                    &ts.source.schema(),
                )?);
            }
            let preserver = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let saved = preserver.save(&expr);
                let rewritten = expr.transform_up(|e| rewrite(e, &schema, &round, &text))?;
                Ok(if rewritten.transformed {
                    Transformed::yes(saved.restore(rewritten.data))
                } else {
                    rewritten
                })
            })
        })
        .map(|t| t.data)
    }
}

fn rewrite(
    e: Expr,
    schema: &DFSchema,
    round: &Arc<ScalarUDF>,
    text: &Arc<ScalarUDF>,
) -> Result<Transformed<Expr>> {
    let (inner, field, is_try) = match e {
        Expr::Cast(Cast { expr, field }) => (expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
        other => return Ok(Transformed::no(other)),
    };
    let from = inner.get_type(schema).ok();
    let target = field.data_type();
    let wrap = |udf: &Arc<ScalarUDF>, inner: Box<Expr>| {
        Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(udf),
            vec![*inner],
        )))
    };
    let (inner, changed) = match (&from, target) {
        (Some(DataType::Float32 | DataType::Float64), t) if t.is_integer() => {
            (wrap(round, inner), true)
        }
        (
            Some(DataType::Timestamp(_, _)),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
        ) => (wrap(text, inner), true),
        _ => (inner, false),
    };
    let cast = if is_try {
        Expr::TryCast(TryCast { expr: inner, field })
    } else {
        Expr::Cast(Cast { expr: inner, field })
    };
    Ok(if changed {
        Transformed::yes(cast)
    } else {
        Transformed::no(cast)
    })
}

udf_struct!(
    /// Rounds a float half away from zero (Rust's `round`, Guava's `HALF_UP` in Trino).
    RoundForCast,
    Signature::any(1, Volatility::Immutable)
);

impl ScalarUDFImpl for RoundForCast {
    fn name(&self) -> &str {
        "round_half_away_for_cast"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let a = &batch.arrays[0];
        let mut out = Float64Builder::with_capacity(a.len());
        match a.data_type() {
            DataType::Float64 => a
                .as_primitive::<Float64Type>()
                .iter()
                .for_each(|v| out.append_option(v.map(f64::round))),
            DataType::Float32 => a
                .as_primitive::<Float32Type>()
                .iter()
                .for_each(|v| out.append_option(v.map(|v| f64::from(v).round()))),
            t => return exec_err!("internal: round_half_away_for_cast got {t}"),
        }
        batch.finish(Arc::new(out.finish()))
    }
}

udf_struct!(
    /// Prints a timestamp as Trino casts it to varchar.
    TimestampText,
    Signature::any(1, Volatility::Immutable)
);

impl ScalarUDFImpl for TimestampText {
    fn name(&self) -> &str {
        "timestamp_text_for_cast"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let a = &batch.arrays[0];
        let zone_name = match a.data_type() {
            DataType::Timestamp(_, z) => z.clone(),
            t => return exec_err!("internal: timestamp_text_for_cast got {t}"),
        };
        let t = Instants::new(a)?;
        let mut out = StringBuilder::with_capacity(a.len(), a.len() * 30);
        for i in 0..a.len() {
            out.append_option(t.utc(i).map(|utc| {
                let local = utc.with_timezone(&t.zone);
                let mut s = local.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
                if let Some(name) = &zone_name {
                    // Trino shows the zone as written: a name, or an offset like +05:30.
                    let offset = iso_offset(local.offset().fix().local_minus_utc());
                    let shown = if name.starts_with(['+', '-']) {
                        offset.as_str()
                    } else {
                        name
                    };
                    s.push(' ');
                    s.push_str(if shown == "Z" { "UTC" } else { shown });
                }
                s
            }));
        }
        batch.finish(Arc::new(out.finish()))
    }
}
