//! `date_diff(unit, timestamp1, timestamp2)` and `date_add(unit, value, timestamp)`
//! (<https://trino.io/docs/current/functions/datetime.html#interval-functions>).
//!
//! Units: `millisecond`, `second`, `minute`, `hour` (exact durations between instants) and
//! `day`, `week`, `month`, `quarter`, `year` (calendar units, computed on the wall clock in the
//! zone of the (first) timestamp, as Trino does: adding a day across a daylight-saving change
//! keeps the time of day; a month added to Jan 31 gives the last day of February).
//! `date_diff` counts whole units from `timestamp1` to `timestamp2`, truncated toward zero
//! (negative when `timestamp2` is earlier). `date_add` returns the type of its timestamp.
//! A date argument is read as midnight; `date_add` on a date then returns a timestamp
//! (Trino returns a date).

use std::sync::Arc;

use chrono::{Datelike, Duration, Months, NaiveDateTime};
use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, Compiled, check_arity, coerce_integer, coerce_string, udf_struct};
use super::time::{Instants, coerce_timestamp, from_local, instant_from_nanos, to_unit};

udf_struct!(
    /// `date_diff(unit, timestamp1, timestamp2) -> bigint`
    DateDiff
);

udf_struct!(
    /// `date_add(unit, value, timestamp) -> [same as timestamp]`
    DateAdd
);

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Unit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    pub fn parse(function: &str, s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "millisecond" => Unit::Millisecond,
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "quarter" => Unit::Quarter,
            "year" => Unit::Year,
            _ => {
                return exec_err!(
                    "{function}: '{s}' is not a valid unit; use one of millisecond, second, \
                     minute, hour, day, week, month, quarter, year"
                );
            }
        })
    }

    /// The length of an exact unit in nanoseconds; `None` for calendar units.
    fn nanos(self) -> Option<i128> {
        Some(match self {
            Unit::Millisecond => 1_000_000,
            Unit::Second => 1_000_000_000,
            Unit::Minute => 60_000_000_000,
            Unit::Hour => 3_600_000_000_000,
            _ => return None,
        })
    }
}

/// Whole calendar units from `a` to `b` (wall-clock times), truncated toward zero.
fn calendar_diff(unit: Unit, a: NaiveDateTime, b: NaiveDateTime) -> i64 {
    match unit {
        Unit::Day | Unit::Week => {
            let mut days = (b.date() - a.date()).num_days();
            let at = a + Duration::days(days);
            if days > 0 && at > b {
                days -= 1;
            } else if days < 0 && at < b {
                days += 1;
            }
            if unit == Unit::Week { days / 7 } else { days }
        }
        _ => {
            let mut months =
                (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64;
            let at = add_months(a, months);
            if months > 0 && at.is_some_and(|t| t > b) {
                months -= 1;
            } else if months < 0 && at.is_some_and(|t| t < b) {
                months += 1;
            }
            match unit {
                Unit::Quarter => months / 3,
                Unit::Year => months / 12,
                _ => months,
            }
        }
    }
}

/// Adds months, clamping the day to the end of a shorter month (Joda's and chrono's rule).
fn add_months(t: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let m = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        t.checked_add_months(m)
    } else {
        t.checked_sub_months(m)
    }
}

/// Reads the unit argument, compiled once when it is constant.
struct Units<'a> {
    function: &'a str,
    cache: Compiled<Unit>,
}

impl Units<'_> {
    fn get(&mut self, text: &str) -> Result<Unit> {
        let function = self.function;
        self.cache
            .get(text, |t| Unit::parse(function, t))
            .map(|u| *u)
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "date_diff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(unit, timestamp1, timestamp2)",
            arg_types.len(),
            &[3],
        )?;
        Ok(vec![
            coerce_string(self.name(), "unit", &arg_types[0])?,
            coerce_timestamp(self.name(), "timestamp1", &arg_types[1])?,
            coerce_timestamp(self.name(), "timestamp2", &arg_types[2])?,
        ])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let units = batch.strings(0)?;
        let (t1, t2) = (
            Instants::new(&batch.arrays[1])?,
            Instants::new(&batch.arrays[2])?,
        );
        let mut unit_of = Units {
            function: self.name(),
            cache: Compiled::new(),
        };
        let mut out = Int64Builder::with_capacity(units.len());
        for i in 0..units.len() {
            if units.is_null(i) {
                out.append_null();
                continue;
            }
            let unit = unit_of.get(units.value(i))?;
            let diff = match unit.nanos() {
                Some(len) => t1
                    .nanos(i)
                    .zip(t2.nanos(i))
                    .map(|(a, b)| ((b - a) / len) as i64),
                None => t1.utc(i).zip(t2.utc(i)).map(|(a, b)| {
                    // Both wall clocks in timestamp1's zone, as Trino uses its chronology.
                    let zone = &t1.zone;
                    calendar_diff(
                        unit,
                        a.with_timezone(zone).naive_local(),
                        b.with_timezone(zone).naive_local(),
                    )
                }),
            };
            out.append_option(diff);
        }
        batch.finish(Arc::new(out.finish()))
    }
}

impl ScalarUDFImpl for DateAdd {
    fn name(&self) -> &str {
        "date_add"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(unit, value, timestamp)",
            arg_types.len(),
            &[3],
        )?;
        Ok(vec![
            coerce_string(self.name(), "unit", &arg_types[0])?,
            coerce_integer(self.name(), "value", &arg_types[1])?,
            coerce_timestamp(self.name(), "timestamp", &arg_types[2])?,
        ])
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[2].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let units = batch.strings(0)?;
        let values = batch.arrays[1].as_primitive::<Int64Type>();
        let t = Instants::new(&batch.arrays[2])?;
        let t_unit = t.unit();
        let mut unit_of = Units {
            function: self.name(),
            cache: Compiled::new(),
        };
        let mut shifted = Vec::with_capacity(units.len());
        for i in 0..units.len() {
            if units.is_null(i) || values.is_null(i) {
                shifted.push(None);
                continue;
            }
            let (unit, n) = (unit_of.get(units.value(i))?, values.value(i));
            let result = match unit.nanos() {
                Some(len) => t
                    .nanos(i)
                    .and_then(|v| instant_from_nanos(v + n as i128 * len)),
                None => t.local(i).and_then(|local| {
                    let moved = match unit {
                        Unit::Day => local.checked_add_signed(Duration::try_days(n)?),
                        Unit::Week => local.checked_add_signed(Duration::try_weeks(n)?),
                        Unit::Month => add_months(local, n),
                        Unit::Quarter => add_months(local, n.checked_mul(3)?),
                        _ => add_months(local, n.checked_mul(12)?),
                    }?;
                    from_local(&t.zone, moved)
                }),
            };
            match result {
                Some(r) => shifted.push(Some(r)),
                None if t.raw(i).is_none() => shifted.push(None),
                None => {
                    return exec_err!(
                        "date_add: adding {n} {unit:?} overflows the timestamp range"
                    );
                }
            }
        }
        // Build the raw values, then give them the input's type (a reinterpreting cast).
        let mut raw = Int64Builder::with_capacity(shifted.len());
        for v in shifted {
            match v.map(|t| to_unit(t, t_unit)) {
                None => raw.append_null(),
                Some(Some(x)) => raw.append_value(x),
                Some(None) => {
                    return exec_err!("date_add: the result is outside the timestamp range");
                }
            }
        }
        let result = cast(&raw.finish(), batch.arrays[2].data_type())?;
        batch.finish(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn calendar_units_count_whole_units_toward_zero() {
        let cases = [
            (Unit::Day, "2020-03-01 00:00:00", "2020-03-02 00:00:00", 1),
            (Unit::Day, "2020-03-01 12:00:00", "2020-03-02 11:59:59", 0),
            (Unit::Day, "2020-03-02 11:59:59", "2020-03-01 12:00:00", 0),
            (Unit::Day, "2020-03-03 00:00:00", "2020-03-01 00:00:01", -1),
            (Unit::Week, "2020-03-01 00:00:00", "2020-03-15 00:00:00", 2),
            (Unit::Week, "2020-03-01 00:00:00", "2020-03-14 23:59:59", 1),
            (Unit::Month, "2020-01-31 00:00:00", "2020-02-29 00:00:00", 1),
            (Unit::Month, "2020-01-15 10:00:00", "2020-02-15 09:59:59", 0),
            (
                Unit::Month,
                "2020-03-15 00:00:00",
                "2020-01-15 00:00:00",
                -2,
            ),
            (
                Unit::Quarter,
                "2020-01-01 00:00:00",
                "2020-12-31 00:00:00",
                3,
            ),
            (Unit::Year, "2019-06-01 00:00:00", "2021-05-31 23:59:59", 1),
            (Unit::Year, "2021-05-31 00:00:00", "2019-06-01 00:00:00", -1),
        ];
        for (unit, a, b, want) in cases {
            assert_eq!(calendar_diff(unit, t(a), t(b)), want, "{unit:?} {a} → {b}");
        }
    }

    #[test]
    fn units_are_case_insensitive_and_unknown_units_are_errors() {
        assert_eq!(Unit::parse("f", "HOUR").unwrap(), Unit::Hour);
        let err = Unit::parse("date_diff", "fortnight")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'fortnight' is not a valid unit"), "{err}");
    }
}
