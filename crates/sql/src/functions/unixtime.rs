//! `from_unixtime(unixtime [, zone | , hours, minutes])` and `to_unixtime(timestamp)`
//! (<https://trino.io/docs/current/functions/datetime.html>).
//!
//! They replace DataFusion's functions of the same names, which differ: DataFusion's
//! `from_unixtime` takes integer seconds and returns seconds precision without zone, its
//! `to_unixtime` returns integer seconds. As in Trino, `from_unixtime` takes seconds as a
//! double (milliseconds kept, rounded) and returns `timestamp(3) with time zone` (UTC unless a
//! zone or an offset in hours and minutes is given, which must be constants here);
//! `to_unixtime` returns the seconds as a double (fractions kept).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Float64Builder, TimestampMillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, coerce_integer, coerce_string, udf_struct};
use super::time::{
    Instants, UTC, coerce_timestamp, iso_offset, nanos_per, parse_zone, timestamp_tz,
};

udf_struct!(
    /// `from_unixtime(unixtime) -> timestamp(3) with time zone`
    FromUnixtime
);

udf_struct!(
    /// `to_unixtime(timestamp) -> double`
    ToUnixtime
);

fn as_f64(what: &str, t: &DataType) -> Result<DataType> {
    if t.is_numeric() || t.is_null() {
        Ok(DataType::Float64)
    } else {
        plan_err!("from_unixtime: {what} must be a number, got {t}")
    }
}

/// The zone named by the constant arguments after `unixtime`.
fn zone_of(args: &[Option<&ScalarValue>], arg_count: usize) -> Result<String> {
    let number = |v: Option<&ScalarValue>| match v {
        Some(ScalarValue::Float64(Some(x))) => Some(*x),
        Some(s) => s.cast_to(&DataType::Float64).ok().and_then(|c| match c {
            ScalarValue::Float64(x) => x,
            _ => None,
        }),
        None => None,
    };
    match arg_count {
        1 => Ok(UTC.to_string()),
        2 => match args.get(1).copied().flatten() {
            Some(
                ScalarValue::Utf8(Some(z))
                | ScalarValue::Utf8View(Some(z))
                | ScalarValue::LargeUtf8(Some(z)),
            ) => {
                parse_zone(z)?;
                Ok(z.clone())
            }
            _ => plan_err!(
                "from_unixtime: zone must be a constant string such as 'America/New_York'"
            ),
        },
        _ => match (
            number(args.get(1).copied().flatten()),
            number(args.get(2).copied().flatten()),
        ) {
            (Some(h), Some(m)) if h.abs() <= 14.0 && m.abs() < 60.0 => {
                let secs = (h as i32) * 3600 + (m as i32) * 60;
                Ok(match iso_offset(secs) {
                    z if z == "Z" => UTC.to_string(),
                    z => z,
                })
            }
            _ => plan_err!(
                "from_unixtime: hours and minutes must be constant numbers of a valid offset"
            ),
        },
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(
            self.name(),
            "(unixtime), (unixtime, zone) or (unixtime, hours, minutes)",
            arg_types.len(),
            &[1, 2, 3],
        )?;
        let mut out = vec![as_f64("unixtime", &arg_types[0])?];
        match arg_types.len() {
            2 => out.push(coerce_string(self.name(), "zone", &arg_types[1])?),
            3 => {
                // bigint, as Trino: an integer literal then stays a constant we can read.
                out.push(coerce_integer(self.name(), "hours", &arg_types[1])?);
                out.push(coerce_integer(self.name(), "minutes", &arg_types[2])?);
            }
            _ => {}
        }
        Ok(out)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamp_tz(UTC))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = zone_of(args.scalar_arguments, args.arg_fields.len())?;
        Ok(Arc::new(Field::new(self.name(), timestamp_tz(&zone), true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Timestamp(_, zone) = args.return_field.data_type() else {
            return exec_err!("internal: from_unixtime returns a timestamp");
        };
        let batch = Batch::new(&args.args[..1])?;
        let seconds = batch.arrays[0].as_primitive::<Float64Type>();
        let mut out = TimestampMillisecondBuilder::with_capacity(seconds.len());
        for s in seconds.iter() {
            // Java's Math.round(unixtime * 1000): half up. NaN and infinities have no instant.
            let millis = s
                .map(|s| (s * 1000.0 + 0.5).floor())
                .filter(|m| m.is_finite() && m.abs() < 9.2e18);
            out.append_option(millis.map(|m| m as i64));
        }
        batch.finish(Arc::new(out.finish().with_timezone_opt(zone.clone())))
    }
}

impl ScalarUDFImpl for ToUnixtime {
    fn name(&self) -> &str {
        "to_unixtime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), "(timestamp)", arg_types.len(), &[1])?;
        Ok(vec![coerce_timestamp(
            self.name(),
            "timestamp",
            &arg_types[0],
        )?])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let t = Instants::new(&batch.arrays[0])?;
        // Divide in the array's own unit: millis / 1000.0 is exactly Trino's double.
        let per_second = (1_000_000_000 / nanos_per(t.unit())) as f64;
        let mut out = Float64Builder::with_capacity(batch.arrays[0].len());
        for i in 0..batch.arrays[0].len() {
            out.append_option(t.raw(i).map(|v| v as f64 / per_second));
        }
        batch.finish(Arc::new(out.finish()))
    }
}
