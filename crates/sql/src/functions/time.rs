//! How Trino's timestamps map to Arrow, and the conversions the date/time functions share.
//!
//! Trino's `timestamp(3) with time zone` is Arrow `Timestamp(Millisecond, Some(zone))`: the
//! value is the UTC instant, the zone is the column's (Arrow keeps one zone per column, Trino
//! one per value). Our functions that make such values (`from_iso8601_timestamp`,
//! `from_unixtime`, `current_timestamp`) return `Timestamp(Millisecond, Some("UTC"))`, or the
//! zone of a constant argument (`from_iso8601_timestamp('…+05:30')`, `from_unixtime(x, zone)`).
//! Comparisons and arithmetic are on instants, so the zone only matters for printing and for
//! calendar units (day, month…), which are computed in the value's zone.
//! A plain `timestamp` (no zone: DataFusion's `TIMESTAMP '…'` literal, nanoseconds) is read as
//! local time with no zone, like Trino's `timestamp`. Functions accept any Arrow time unit.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, exec_err, plan_err};

/// The zone name Trino shows for UTC and that our constructors use by default.
pub(crate) const UTC: &str = "UTC";

/// The Arrow type of Trino's `timestamp(3) with time zone` in `zone`.
pub(crate) fn timestamp_tz(zone: &str) -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(zone.into()))
}

/// Accepts a timestamp of any unit and zone as is; a date becomes a timestamp at midnight
/// without zone. Text is refused with the function to use, as Athena refuses it.
pub(crate) fn coerce_timestamp(function: &str, what: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Date32 | DataType::Date64 => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
        DataType::Null => Ok(timestamp_tz(UTC)),
        t if super::args::is_string(t) => plan_err!(
            "{function}: {what} must be a timestamp, got varchar; convert it with \
             from_iso8601_timestamp(x) (ISO 8601 text such as 2020-05-11T11:15:05Z)"
        ),
        t => plan_err!("{function}: {what} must be a timestamp, got {t}"),
    }
}

/// Parses an Arrow/Trino zone name (`UTC`, `+05:30`, `America/New_York`).
pub(crate) fn parse_zone(zone: &str) -> Result<Tz> {
    match zone.parse::<Tz>() {
        Ok(tz) => Ok(tz),
        Err(e) => exec_err!(
            "unknown time zone '{zone}' ({e}); use an IANA name such as 'America/New_York' \
             or an offset such as '+05:30'"
        ),
    }
}

/// A timestamp column read as instants, with the zone its calendar fields are computed in
/// (UTC for a timestamp without zone, whose local time is then its value).
pub(crate) struct Instants<'a> {
    array: &'a ArrayRef,
    unit: TimeUnit,
    pub zone: Tz,
}

impl<'a> Instants<'a> {
    pub fn new(array: &'a ArrayRef) -> Result<Self> {
        let DataType::Timestamp(unit, zone) = array.data_type() else {
            return exec_err!("internal: expected a timestamp, got {}", array.data_type());
        };
        let zone = parse_zone(zone.as_deref().unwrap_or(UTC))?;
        Ok(Self {
            array,
            unit: *unit,
            zone,
        })
    }

    /// The raw value in the array's unit, `None` when NULL.
    pub fn raw(&self, i: usize) -> Option<i64> {
        if self.array.is_null(i) {
            return None;
        }
        Some(match self.unit {
            TimeUnit::Second => self.array.as_primitive::<TimestampSecondType>().value(i),
            TimeUnit::Millisecond => self
                .array
                .as_primitive::<TimestampMillisecondType>()
                .value(i),
            TimeUnit::Microsecond => self
                .array
                .as_primitive::<TimestampMicrosecondType>()
                .value(i),
            TimeUnit::Nanosecond => self
                .array
                .as_primitive::<TimestampNanosecondType>()
                .value(i),
        })
    }

    /// Nanoseconds since the epoch (i128: no overflow for any unit).
    pub fn nanos(&self, i: usize) -> Option<i128> {
        self.raw(i).map(|v| v as i128 * nanos_per(self.unit))
    }

    /// The value as a UTC instant.
    pub fn utc(&self, i: usize) -> Option<DateTime<Utc>> {
        self.nanos(i).and_then(instant_from_nanos)
    }

    /// The value's wall-clock time in its zone.
    pub fn local(&self, i: usize) -> Option<NaiveDateTime> {
        self.utc(i)
            .map(|t| t.with_timezone(&self.zone).naive_local())
    }

    pub fn unit(&self) -> TimeUnit {
        self.unit
    }
}

pub(crate) fn nanos_per(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

pub(crate) fn instant_from_nanos(n: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, n.rem_euclid(1_000_000_000) as u32)
}

/// An instant in `unit` since the epoch (floored), `None` when it does not fit in i64.
pub(crate) fn to_unit(t: DateTime<Utc>, unit: TimeUnit) -> Option<i64> {
    let nanos = t.timestamp() as i128 * 1_000_000_000 + t.timestamp_subsec_nanos() as i128;
    i64::try_from(nanos.div_euclid(nanos_per(unit))).ok()
}

/// The instant of a wall-clock time in `zone`; in a daylight-saving gap, the time an hour
/// later (as Joda, which Trino uses, moves forward).
pub(crate) fn from_local(zone: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Formats an offset as Trino prints it in ISO 8601: `Z` for zero, else `+05:30`.
pub(crate) fn iso_offset(seconds: i32) -> String {
    if seconds == 0 {
        return "Z".into();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}:{:02}", s / 3600, s % 3600 / 60)
}
