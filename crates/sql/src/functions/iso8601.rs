//! `from_iso8601_timestamp(string)` and `to_iso8601(x)`
//! (<https://trino.io/docs/current/functions/datetime.html>).
//!
//! `from_iso8601_timestamp` reads `YYYY[-MM[-DD]][Thh[:mm[:ss[.fff…]]][Z|±hh[[:]mm]]]`; the
//! time defaults to midnight and the zone to the session's (UTC, as in Athena). Fractions
//! beyond milliseconds are truncated (Trino's result is `timestamp(3)`). Text that is not
//! ISO 8601 is an error, as in Trino. The result keeps the zone of a constant argument
//! (`'…+05:30'` → `Timestamp(Millisecond, "+05:30")`, `'…Z'` → `"UTC"`); for a column the
//! values are instants in `"UTC"` (Arrow has one zone per column; see [`super::time`]).
//!
//! `to_iso8601` prints a timestamp with time zone as `2020-05-11T11:15:05.055+05:30` (`Z` for
//! a zero offset), a timestamp without zone as `2020-05-11T11:15:05.055`, a date as
//! `2020-05-11`: always milliseconds, as Trino prints `timestamp(3)`.

use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, Utc};
use datafusion::arrow::array::{Array, AsArray, StringBuilder, TimestampMillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Batch, check_arity, coerce_strings, udf_struct};
use super::time::{Instants, UTC, iso_offset, timestamp_tz};

udf_struct!(
    /// `from_iso8601_timestamp(string) -> timestamp(3) with time zone`
    FromIso8601Timestamp
);

udf_struct!(
    /// `to_iso8601(x) -> varchar`
    ToIso8601
);

/// A parsed ISO 8601 timestamp: the instant and the offset it was written with, if any.
#[derive(Debug, PartialEq)]
pub(crate) struct Iso8601 {
    pub instant: DateTime<Utc>,
    pub offset: Option<FixedOffset>,
}

impl ScalarUDFImpl for FromIso8601Timestamp {
    fn name(&self) -> &str {
        "from_iso8601_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_strings(self.name(), &["string"], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamp_tz(UTC))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // A constant keeps its written zone, so to_iso8601/date_format print it as Trino does.
        let zone = match args.scalar_arguments.first() {
            Some(Some(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
            )) => parse_iso8601(s)?.offset.map(zone_name),
            _ => None,
        };
        Ok(Arc::new(Field::new(
            self.name(),
            timestamp_tz(zone.as_deref().unwrap_or(UTC)),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let text = batch.strings(0)?;
        let DataType::Timestamp(_, zone) = args.return_field.data_type() else {
            return exec_err!("internal: from_iso8601_timestamp returns a timestamp");
        };
        let mut out = TimestampMillisecondBuilder::with_capacity(text.len());
        for v in text.iter() {
            out.append_option(
                v.map(parse_iso8601)
                    .transpose()?
                    .map(|p| p.instant.timestamp_millis()),
            );
        }
        batch.finish(Arc::new(out.finish().with_timezone_opt(zone.clone())))
    }
}

/// Arrow's name for a fixed offset: `UTC` for zero (as Trino shows `Z`), else `+05:30`.
fn zone_name(offset: FixedOffset) -> String {
    match iso_offset(offset.local_minus_utc()) {
        z if z == "Z" => UTC.to_string(),
        z => z,
    }
}

/// Parses ISO 8601 text as `from_iso8601_timestamp` does.
pub(crate) fn parse_iso8601(text: &str) -> Result<Iso8601> {
    parse_parts(text.trim()).ok_or_else(|| {
        datafusion::error::DataFusionError::Execution(format!(
            "from_iso8601_timestamp: invalid ISO 8601 timestamp '{text}'; expected for \
             example 2020-05-11, 2020-05-11T11:15:05, 2020-05-11T11:15:05.055Z or \
             2020-05-11T11:15:05+05:30"
        ))
    })
}

fn parse_parts(s: &str) -> Option<Iso8601> {
    let (date_part, rest) = match s.find('T') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut ymd = date_part.split('-');
    let year: i32 = digits(ymd.next()?, 4, 4)?;
    let month = ymd.next().map_or(Some(1), |m| digits(m, 2, 2))?;
    let day = ymd.next().map_or(Some(1), |d| digits(d, 2, 2))?;
    if ymd.next().is_some() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let (time, offset) = match rest {
        None => (NaiveTime::MIN, None),
        Some(r) => {
            let zone_at = r.find(['Z', '+', '-']).unwrap_or(r.len());
            (parse_time(&r[..zone_at])?, parse_offset(&r[zone_at..])?)
        }
    };
    let local = NaiveDateTime::new(date, time);
    let instant = match offset {
        Some(o) => (local - o.fix()).and_utc(),
        None => local.and_utc(),
    };
    Some(Iso8601 { instant, offset })
}

/// `hh[:mm[:ss[.f…]]]`, fraction truncated to milliseconds.
fn parse_time(t: &str) -> Option<NaiveTime> {
    let (hms, fraction) = match t.find(['.', ',']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut parts = hms.split(':');
    let h = digits(parts.next()?, 2, 2)?;
    let m = parts.next().map_or(Some(0), |m| digits(m, 2, 2))?;
    let sec = parts.next().map_or(Some(0), |x| digits(x, 2, 2))?;
    if parts.next().is_some() {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(f) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) || sec_missing(hms) {
                return None;
            }
            format!("{:0<3}", &f[..f.len().min(3)]).parse().ok()?
        }
    };
    NaiveTime::from_hms_milli_opt(h, m, sec, millis)
}

fn sec_missing(hms: &str) -> bool {
    hms.matches(':').count() < 2
}

/// `""` (no zone), `Z`, `±hh`, `±hhmm`, `±hh:mm`.
fn parse_offset(z: &str) -> Option<Option<FixedOffset>> {
    if z.is_empty() {
        return Some(None);
    }
    if z == "Z" {
        return Some(Some(FixedOffset::east_opt(0)?));
    }
    let sign = match z.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = z[1..].replace(':', "");
    let (h, m) = match body.len() {
        2 => (digits::<i32>(&body, 2, 2)?, 0),
        4 => (
            digits::<i32>(&body[..2], 2, 2)?,
            digits::<i32>(&body[2..], 2, 2)?,
        ),
        _ => return None,
    };
    if m >= 60 {
        return None;
    }
    Some(Some(FixedOffset::east_opt(sign * (h * 3600 + m * 60))?))
}

fn digits<T: std::str::FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl ScalarUDFImpl for ToIso8601 {
    fn name(&self) -> &str {
        "to_iso8601"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), "(x)", arg_types.len(), &[1])?;
        match &arg_types[0] {
            t @ (DataType::Timestamp(_, _) | DataType::Date32) => Ok(vec![t.clone()]),
            DataType::Date64 => Ok(vec![DataType::Date32]),
            DataType::Null => Ok(vec![timestamp_tz(UTC)]),
            t => plan_err!("to_iso8601: x must be a date or timestamp, got {t}"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let batch = Batch::new(&args.args)?;
        let array = &batch.arrays[0];
        let mut out = StringBuilder::with_capacity(array.len(), array.len() * 29);
        if let DataType::Date32 = array.data_type() {
            for d in array.as_primitive::<Date32Type>().iter() {
                let date = d.and_then(|d| NaiveDate::from_num_days_from_ce_opt(d + UNIX_EPOCH_CE));
                out.append_option(
                    date.map(|d| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())),
                );
            }
        } else {
            let with_zone = matches!(array.data_type(), DataType::Timestamp(_, Some(_)));
            let t = Instants::new(array)?;
            for i in 0..array.len() {
                out.append_option(t.utc(i).map(|utc| {
                    let local = utc.with_timezone(&t.zone);
                    let mut s = local.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
                    if with_zone {
                        s.push_str(&iso_offset(local.offset().fix().local_minus_utc()));
                    }
                    s
                }));
            }
        }
        batch.finish(Arc::new(out.finish()))
    }
}

/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01, for Arrow's Date32.
const UNIX_EPOCH_CE: i32 = 719_163;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_iso8601_forms_trino_documents() {
        let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let cases: &[(&str, &str, Option<i32>)] = &[
            ("2020-05-11", "2020-05-11T00:00:00Z", None),
            ("2020-05-11T11:15:05", "2020-05-11T11:15:05Z", None),
            (
                "2020-05-11T11:15:05.055+01:00",
                "2020-05-11T10:15:05.055Z",
                Some(3600),
            ),
            (
                "2020-05-11T11:15:05.055+05:30",
                "2020-05-11T05:45:05.055Z",
                Some(19800),
            ),
            ("2020-05-11T11:15:05Z", "2020-05-11T11:15:05Z", Some(0)),
            (
                "2020-05-11T11:15:05.123456789Z",
                "2020-05-11T11:15:05.123Z",
                Some(0),
            ),
            (
                "2020-05-11T11:15-0800",
                "2020-05-11T19:15:00Z",
                Some(-28800),
            ),
            ("2020-05-11T11+02", "2020-05-11T09:00:00Z", Some(7200)),
            ("2020-05", "2020-05-01T00:00:00Z", None),
            ("2020", "2020-01-01T00:00:00Z", None),
        ];
        for (text, instant, offset) in cases {
            let p = parse_iso8601(text).unwrap();
            assert_eq!(p.instant, utc(instant), "{text}");
            assert_eq!(p.offset.map(|o| o.local_minus_utc()), *offset, "{text}");
        }
    }

    #[test]
    fn rejects_text_that_is_not_iso8601() {
        for text in [
            "",
            "2020-13-01",
            "2020-02-30",
            "2020-05-11 11:15:05",
            "11:15:05",
            "2020-05-11T",
            "2020-05-11T25:00",
            "2020-05-11T11:15:05+5",
            "yesterday",
            "2020-05-11T11:15.5",
        ] {
            let err = parse_iso8601(text).unwrap_err().to_string();
            assert!(err.contains("invalid ISO 8601 timestamp"), "{text}: {err}");
        }
    }
}
