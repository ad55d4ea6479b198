//! Athena's (Trino's) scalar functions on DataFusion, with Trino's semantics, so queries and
//! rules written for Athena run unmodified in local mode.
//!
//! One module per function or tight family; [`all`] lists each function once. Where DataFusion
//! has a function of the same name and the same semantics (`regexp_like`, `date_trunc`,
//! `cardinality`) we keep DataFusion's and prove it in `tests/conformance.rs`; where the name
//! exists with other semantics (`contains`, `date_format`, `from_unixtime`, `to_unixtime`,
//! `current_timestamp`/`now`) ours replaces it. See `docs/sql-functions.md`.

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

mod args;
mod cast;
mod contains;
mod current_timestamp;
mod date_arith;
mod date_format;
mod great_circle_distance;
mod iso8601;
mod json_array;
mod json_extract;
mod json_parse;
mod json_path;
mod regexp_extract;
mod split;
mod time;
mod unixtime;

pub use cast::AthenaCasts;
pub use json_path::JsonPath;

/// Every function of ours, each listed once.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(json_extract::JsonExtractScalar::default()),
        ScalarUDF::from(json_extract::JsonExtract::default()),
        ScalarUDF::from(json_array::JsonArrayContains::default()),
        ScalarUDF::from(json_array::JsonArrayLength::default()),
        ScalarUDF::from(json_parse::JsonParse::default()),
        ScalarUDF::from(json_parse::JsonFormat::default()),
        ScalarUDF::from(iso8601::FromIso8601Timestamp::default()),
        ScalarUDF::from(iso8601::ToIso8601::default()),
        ScalarUDF::from(unixtime::FromUnixtime::default()),
        ScalarUDF::from(unixtime::ToUnixtime::default()),
        ScalarUDF::from(current_timestamp::CurrentTimestamp::default()),
        ScalarUDF::from(date_arith::DateDiff::default()),
        ScalarUDF::from(date_arith::DateAdd::default()),
        ScalarUDF::from(date_format::DateFormat::default()),
        ScalarUDF::from(regexp_extract::RegexpExtract::default()),
        ScalarUDF::from(split::Split::default()),
        ScalarUDF::from(contains::Contains::default()),
        ScalarUDF::from(great_circle_distance::GreatCircleDistance::default()),
    ]
}

/// Registers every function of [`all`] on `ctx`, replacing DataFusion's built-in of the same
/// name (or alias) where Athena's semantics differ, and adds the [`AthenaCasts`] rule that
/// makes `CAST` round and print as Athena.
pub fn register_all(ctx: &SessionContext) {
    for udf in all() {
        ctx.register_udf(udf);
    }
    ctx.add_analyzer_rule(Arc::new(AthenaCasts));
}
