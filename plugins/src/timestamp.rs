//! `timestamp`: decides the event time (`utctimestamp`) from the record's own fields.
//!
//! Sources name and spell their time differently: CloudTrail `eventTime` in RFC 3339, VPC
//! flow logs `start` in epoch seconds, CloudFront a `date` and a `time` column, syslog
//! `Apr 17 06:10:54` without a year, G Suite `id.time`. The lake partitions by event time, so
//! this plugin looks through a fixed list of fields ([`PRECEDENCE`]) and takes the first one
//! whose value is a plausible time. Field values are never changed or removed: the raw value
//! stays under `details` for anyone who needs it.
//!
//! - An event whose `utctimestamp` is already set (by a source parser that ran earlier) is left
//!   alone.
//! - When some candidate fields are present but none holds a plausible time, the event gets its
//!   received time and the tag `timestamp_fallback`, so the record is never lost and the guess
//!   is visible.
//! - When no candidate field is present at all the plugin changes nothing; the pipeline then
//!   falls back to the received time in the same way, after every plugin had its chance.
//!
//! [`parse_time`] is public so source parsers accept exactly the same formats.

use std::sync::LazyLock;

use chrono::format::{self, Item, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use serde_json::{Number, Value};

use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::{Event, KeySignature};

/// A place the event time may be found, below `details` (keys are lower case by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// One field, or a dotted path to a nested one (`id.time`).
    Path(&'static str),
    /// A date field and a time-of-day field that only make a time together (CloudFront's
    /// `date` "2019-12-19" and `time` "03:47:42").
    DateAndTime {
        date: &'static str,
        time: &'static str,
    },
}

impl TimeField {
    /// The top-level key of `details` this place needs (every one of them needs one).
    fn first_key(self) -> &'static str {
        let path = match self {
            TimeField::Path(path) => path,
            TimeField::DateAndTime { date, .. } => date,
        };
        path.split('.').next().unwrap_or(path)
    }
}

/// Where the event time is looked for, in order: the first field whose value is a plausible
/// time wins. Top-level fields come before nested ones. A field whose value does not parse
/// (CloudFront's bare `time` "03:47:42") is passed over for the next one.
pub const PRECEDENCE: &[TimeField] = &[
    // A producer's own `utctimestamp` (the shell keeps it under `details`, see shell.rs).
    TimeField::Path("utctimestamp"),
    TimeField::Path("timestamp"),
    // Elasticsearch / Beats / Logstash.
    TimeField::Path("@timestamp"),
    // EventBridge, many JSON loggers; a bare time of day does not parse and falls through.
    TimeField::Path("time"),
    // CloudFront and W3C extended logs.
    TimeField::DateAndTime {
        date: "date",
        time: "time",
    },
    // CloudTrail (`eventTime`), nxlog.
    TimeField::Path("eventtime"),
    // VPC flow logs: start of the capture window, epoch seconds.
    TimeField::Path("start"),
    // Okta System Log.
    TimeField::Path("published"),
    // Microsoft Entra ID (Azure AD) sign-in and audit logs.
    TimeField::Path("createddatetime"),
    // Azure Monitor / Log Analytics exports.
    TimeField::Path("timegenerated"),
    // GitHub audit log, many SaaS APIs.
    TimeField::Path("created_at"),
    // Nested fields, after every top-level one.
    // G Suite / Google Workspace Reports API.
    TimeField::Path("id.time"),
    // A CloudTrail record wrapped in an EventBridge event.
    TimeField::Path("detail.eventtime"),
    // Elastic Common Schema.
    TimeField::Path("event.created"),
];

/// The [`KeySignature`] bit of each place's top-level key, in [`PRECEDENCE`] order.
static PRECEDENCE_KEY_BITS: LazyLock<Vec<u64>> = LazyLock::new(|| {
    PRECEDENCE
        .iter()
        .map(|field| KeySignature::bit(field.first_key()))
        .collect()
});

/// The earliest event time believed: anything before is a default or a broken clock.
pub fn earliest_plausible() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
        .and_utc()
}

/// How far ahead of the received time an event time may be (clock skew, time zones mistaken
/// for UTC); anything later is not believed.
pub fn future_tolerance() -> Duration {
    Duration::days(1)
}

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timestamp;

impl Plugin for Timestamp {
    fn name(&self) -> &'static str {
        "timestamp"
    }

    fn registration(&self) -> Registration {
        Registration::new(Stage::Normalize, 0, vec![Trigger::Always])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        if event.utctimestamp.is_some() {
            return Ok(Verdict::Unchanged);
        }
        let received = event.receivedtimestamp;
        let mut candidates = 0;
        let keys = KeySignature::of(&event.details);
        for (field, bit) in PRECEDENCE.iter().zip(PRECEDENCE_KEY_BITS.iter()) {
            if !keys.may_hold(*bit) {
                continue;
            }
            let time = match *field {
                TimeField::Path(path) => event.detail(path).map(|v| parse_time(v, received)),
                TimeField::DateAndTime { date, time } => {
                    match (event.detail_str(date), event.detail_str(time)) {
                        (Some(date), Some(time)) => Some(parse_str(
                            &format!("{}T{}", date.trim(), time.trim()),
                            received,
                        )),
                        _ => None,
                    }
                }
            };
            match time {
                Some(Some(time)) => {
                    event.utctimestamp = Some(time);
                    return Ok(Verdict::Changed);
                }
                Some(None) => candidates += 1,
                None => {}
            }
        }
        if candidates == 0 {
            return Ok(Verdict::Unchanged);
        }
        event.fall_back_to_received_time();
        Ok(Verdict::Changed)
    }
}

/// Parses a time the way the lake accepts it, or `None` when it is unparseable or implausible.
///
/// Accepted: RFC 3339 / ISO 8601 (`T` or space between date and time, with or without a
/// fraction, `Z` or a `+hh:mm`/`+hhmm` offset; without an offset it is UTC), RFC 2822, the
/// Common Log Format's `10/Oct/2000:13:55:36 -0700`, syslog's `Apr 17 06:10:54` (the year is the
/// latest that puts the time no more than a day after `received`), and epoch times as numbers
/// or numeric strings, whose unit is told by magnitude ([`epoch_unit_nanos`]).
///
/// Implausible: before 2000-01-01 UTC, or more than a day after `received`.
pub fn parse_time(value: &Value, received: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => {
            parse_epoch(&number_text(number)).filter(|t| plausible(*t, received))
        }
        Value::String(text) => parse_str(text, received),
        _ => None,
    }
}

/// [`parse_time`] for text.
pub fn parse_str(text: &str, received: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let first = *text.as_bytes().first()?;
    let time = if first.is_ascii_digit() {
        parse_epoch(text)
            .or_else(|| parse_iso8601(text))
            .or_else(|| parse_common_log(text))
    } else {
        parse_syslog(text, received)
            .or_else(|| DateTime::parse_from_rfc2822(text).ok().map(|t| t.to_utc()))
    }?;
    let time = without_leap_second(time);
    plausible(time, received).then_some(time)
}

/// A leap second (`23:59:60`, which chrono reads as second 59 plus a whole second of
/// nanoseconds) as the instant after it (`00:00:00`): the lake's `utctimestamp` then always has
/// seconds 00-59, which every engine parses (Athena's `from_iso8601_timestamp` refuses `:60`).
/// The raw value stays in `details`.
fn without_leap_second(time: DateTime<Utc>) -> DateTime<Utc> {
    match time.nanosecond().checked_sub(1_000_000_000) {
        Some(nanos) => time.with_nanosecond(nanos).expect("below a second") + Duration::seconds(1),
        None => time,
    }
}

/// Whether an event time is believable for an event received at `received`.
pub fn plausible(time: DateTime<Utc>, received: DateTime<Utc>) -> bool {
    time >= earliest_plausible() && time <= received + future_tolerance()
}

/// A JSON number as plain decimal text (never in exponent notation).
fn number_text(number: &Number) -> String {
    let text = number.to_string();
    if text.contains(['e', 'E']) {
        number.as_f64().map(|f| format!("{f:.9}")).unwrap_or(text)
    } else {
        text
    }
}

/// Nanoseconds per unit of an epoch time whose whole part is `whole`: below 10^11 it counts
/// seconds (10^11 s is the year 5138), below 10^14 milliseconds, below 10^17 microseconds,
/// and nanoseconds above. Every time since 1973 is thus read in the right unit.
pub fn epoch_unit_nanos(whole: u64) -> u64 {
    match whole {
        0..100_000_000_000 => 1_000_000_000,
        100_000_000_000..100_000_000_000_000 => 1_000_000,
        100_000_000_000_000..100_000_000_000_000_000 => 1_000,
        _ => 1,
    }
}

/// `digits[.digits]` as an epoch time in the unit its magnitude says.
fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let unit = u128::from(epoch_unit_nanos(whole));
    // Nine fraction digits are below a nanosecond in every unit.
    let fraction = &fraction[..fraction.len().min(9)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().ok()? * unit / 10u128.pow(fraction.len() as u32)
    };
    let nanos = u128::from(whole) * unit + fraction_nanos;
    let seconds = i64::try_from(nanos / 1_000_000_000).ok()?;
    DateTime::from_timestamp(seconds, (nanos % 1_000_000_000) as u32)
}

/// RFC 3339 and the ISO 8601 forms producers actually send.
fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    // A space between date and time is as common as the `T`.
    let owned;
    let text = if text.as_bytes().get(10) == Some(&b' ') {
        owned = format!("{}T{}", &text[..10], &text[11..]);
        owned.as_str()
    } else {
        text
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.to_utc());
    }
    static WITH_OFFSET: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| format_items("%Y-%m-%dT%H:%M:%S%.f%z"));
    static WITHOUT_OFFSET: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| format_items("%Y-%m-%dT%H:%M:%S%.f"));
    if let Some(time) = parse_with(text, &WITH_OFFSET).and_then(|p| p.to_datetime().ok()) {
        return Some(time.to_utc());
    }
    parse_with(text, &WITHOUT_OFFSET)?
        .to_naive_datetime_with_offset(0)
        .ok()
        .map(|naive| naive.and_utc())
}

/// A format string's items, read once: chrono's `parse_from_str` reads its format again for
/// every value, which cost more than the parse.
fn format_items(format: &'static str) -> Vec<Item<'static>> {
    StrftimeItems::new(format)
        .parse()
        .expect("the time formats are valid")
}

/// The fields of `text` read with `items`, as `parse_from_str` reads them.
fn parse_with(text: &str, items: &[Item<'_>]) -> Option<Parsed> {
    let mut fields = Parsed::new();
    format::parse(&mut fields, text, items.iter()).ok()?;
    Some(fields)
}

/// Apache / nginx access logs: `10/Oct/2000:13:55:36 -0700`.
fn parse_common_log(text: &str) -> Option<DateTime<Utc>> {
    static FORMAT: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| format_items("%d/%b/%Y:%H:%M:%S %z"));
    parse_with(text, &FORMAT)?
        .to_datetime()
        .ok()
        .map(|time| time.to_utc())
}

/// Syslog's `Apr 17 06:10:54` (RFC 3164), which has no year: the latest year that puts the time
/// no more than a day after `received`, so a December line read in January lands in the old
/// year and a line from a clock a little ahead around New Year lands in the new one.
fn parse_syslog(text: &str, received: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !text.as_bytes().first()?.is_ascii_alphabetic() {
        return None;
    }
    // Parsed once in 2000, a leap year, so that every syslog time (29 February too) parses;
    // the real year is then chosen by date arithmetic alone.
    static FORMAT: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| format_items("%Y %b %e %H:%M:%S%.f"));
    let parsed = parse_with(&format!("2000 {text}"), &FORMAT)?
        .to_naive_datetime_with_offset(0)
        .ok()?;
    let limit = received + future_tolerance();
    let year = received.year();
    // Eight years back reaches a leap year for a `Feb 29` even across 2100.
    (year - 8..=year + 1).rev().find_map(|year| {
        parsed
            .date()
            .with_year(year)
            .map(|date| date.and_time(parsed.time()).and_utc())
            .filter(|time| *time <= limit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::TIMESTAMP_FALLBACK_TAG;
    use crate::sources::testing::{json_event, process_json, received};
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn parse(value: Value) -> Option<DateTime<Utc>> {
        parse_time(&value, received())
    }

    fn run(details: Value) -> (Verdict, Event) {
        process_json(&Timestamp, &details.to_string())
    }

    #[test]
    fn parses_rfc3339_and_iso8601_forms() {
        let cases = [
            ("2019-09-04T17:54:59Z", "2019-09-04T17:54:59Z"),
            ("2020-03-02T17:54:33.253Z", "2020-03-02T17:54:33.253Z"),
            ("2014-04-17T06:10:54+00:00", "2014-04-17T06:10:54Z"),
            ("2014-04-17T08:10:54+02:00", "2014-04-17T06:10:54Z"),
            ("2014-04-17T08:10:54+0200", "2014-04-17T06:10:54Z"),
            ("2014-04-17T01:10:54.5-05:00", "2014-04-17T06:10:54.5Z"),
            ("2014-12-14T04:06:50", "2014-12-14T04:06:50Z"),
            ("2014-12-14 04:06:50", "2014-12-14T04:06:50Z"),
            ("2014-12-14 04:06:50.123456", "2014-12-14T04:06:50.123456Z"),
            (
                "2014-12-14T04:06:50.123456789Z",
                "2014-12-14T04:06:50.123456789Z",
            ),
            ("2014-12-14 04:06:50Z", "2014-12-14T04:06:50Z"),
            ("  2014-12-14T04:06:50Z\n", "2014-12-14T04:06:50Z"),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(json!(input)), Some(at(expected)), "{input}");
        }
    }

    #[test]
    fn a_leap_second_becomes_the_next_second() {
        assert_eq!(
            parse(json!("2026-04-17T09:06:60Z")),
            Some(at("2026-04-17T09:07:00Z"))
        );
        assert_eq!(
            parse(json!("2026-04-17T09:06:60.250Z")),
            Some(at("2026-04-17T09:07:00.250Z"))
        );
        assert_eq!(
            parse(json!("Apr 17 09:06:60")),
            Some(at("2026-04-17T09:07:00Z"))
        );
    }

    #[test]
    fn parses_rfc2822_and_common_log_format() {
        assert_eq!(
            parse(json!("Tue, 1 Jul 2025 10:52:37 +0200")),
            Some(at("2025-07-01T08:52:37Z"))
        );
        assert_eq!(
            parse(json!("10/Oct/2025:13:55:36 -0700")),
            Some(at("2025-10-10T20:55:36Z"))
        );
    }

    #[test]
    fn parses_epoch_numbers_and_strings_by_magnitude() {
        let expected = at("2019-12-19T03:47:42Z");
        for value in [
            json!(1576727262),
            json!("1576727262"),
            json!(1576727262000u64),
            json!("1576727262000"),
            json!(1576727262000000u64),
            json!(1576727262000000000u64),
            json!("1576727262000000000"),
        ] {
            assert_eq!(parse(value.clone()), Some(expected), "{value}");
        }
        let fraction = at("2019-12-19T03:47:42.123Z");
        for value in [
            json!(1576727262.123),
            json!("1576727262.123"),
            json!(1576727262123.0),
            json!("1576727262123"),
            json!("1576727262123000"),
        ] {
            assert_eq!(parse(value.clone()), Some(fraction), "{value}");
        }
    }

    #[test]
    fn epoch_unit_boundaries() {
        assert_eq!(epoch_unit_nanos(0), 1_000_000_000);
        assert_eq!(epoch_unit_nanos(99_999_999_999), 1_000_000_000);
        assert_eq!(epoch_unit_nanos(100_000_000_000), 1_000_000);
        assert_eq!(epoch_unit_nanos(99_999_999_999_999), 1_000_000);
        assert_eq!(epoch_unit_nanos(100_000_000_000_000), 1_000);
        assert_eq!(epoch_unit_nanos(99_999_999_999_999_999), 1_000);
        assert_eq!(epoch_unit_nanos(100_000_000_000_000_000), 1);
        assert_eq!(epoch_unit_nanos(u64::MAX), 1);
        // Just below the millisecond boundary is read as seconds: the year 5138, not believed.
        assert_eq!(parse(json!(99_999_999_999u64)), None);
        // Just above it is read as milliseconds: 1973, before 2000, not believed either.
        assert_eq!(parse(json!(100_000_000_000u64)), None);
    }

    #[test]
    fn parses_syslog_times_in_the_year_that_is_not_in_the_future() {
        assert_eq!(
            parse(json!("Apr 17 06:10:54")),
            Some(at("2026-04-17T06:10:54Z"))
        );
        assert_eq!(
            parse(json!("Apr  7 06:10:54")),
            Some(at("2026-04-07T06:10:54Z"))
        );
        assert_eq!(
            parse(json!("Apr 17 06:10:54.250")),
            Some(at("2026-04-17T06:10:54.25Z"))
        );
        // Later in the year than the received time: it was last year.
        assert_eq!(
            parse(json!("Jun 17 06:10:54")),
            Some(at("2025-06-17T06:10:54Z"))
        );
        // Up to a day ahead is still this year.
        assert_eq!(
            parse(json!("Apr 18 11:00:00")),
            Some(at("2026-04-18T11:00:00Z"))
        );
    }

    #[test]
    fn syslog_year_around_new_year() {
        // A December line read on New Year's morning is from the old year.
        let january = at("2027-01-01T00:10:00Z");
        assert_eq!(
            parse_time(&json!("Dec 31 23:59:58"), january),
            Some(at("2026-12-31T23:59:58Z"))
        );
        // A line from a clock a little ahead, read on New Year's Eve, is from the new year.
        let new_years_eve = at("2026-12-31T23:00:00Z");
        assert_eq!(
            parse_time(&json!("Jan  1 00:30:00"), new_years_eve),
            Some(at("2027-01-01T00:30:00Z"))
        );
        // 29 February goes to the latest leap year that is not in the future.
        assert_eq!(
            parse_time(&json!("Feb 29 12:00:00"), at("2026-03-01T00:00:00Z")),
            Some(at("2024-02-29T12:00:00Z"))
        );
    }

    #[test]
    fn rejects_implausible_times() {
        // Before 2000.
        assert_eq!(parse(json!("1999-12-31T23:59:59Z")), None);
        assert_eq!(parse(json!(0)), None);
        assert_eq!(parse(json!(946_684_799)), None);
        assert_eq!(parse(json!(946_684_800)), Some(earliest_plausible()));
        // More than a day after the received time.
        assert_eq!(parse(json!("2026-04-18T12:00:01Z")), None);
        assert_eq!(
            parse(json!("2026-04-18T12:00:00Z")),
            Some(at("2026-04-18T12:00:00Z"))
        );
        // Two hours ahead is clock skew: accepted.
        assert_eq!(
            parse(json!("2026-04-17T14:00:00Z")),
            Some(at("2026-04-17T14:00:00Z"))
        );
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for value in [
            json!(null),
            json!(true),
            json!(-1576727262),
            json!(""),
            json!("   "),
            json!("yesterday"),
            json!("03:47:42"),
            json!("2019-12-19"),
            json!("2019-13-45T00:00:00Z"),
            json!("1576727262abc"),
            json!("1.2.3"),
            json!({"time": "2019-12-19T03:47:42Z"}),
            json!(["2019-12-19T03:47:42Z"]),
            json!("99999999999999999999999999"),
        ] {
            assert_eq!(parse(value.clone()), None, "{value}");
        }
    }

    #[test]
    fn sets_the_time_from_the_first_field_in_precedence_order() {
        let (verdict, event) = run(json!({
            "utctimestamp": "2026-01-01T00:00:00Z",
            "timestamp": "2026-01-02T00:00:00Z",
            "eventtime": "2026-01-03T00:00:00Z",
        }));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.utctimestamp, Some(at("2026-01-01T00:00:00Z")));

        let (_, event) = run(json!({
            "@timestamp": "2026-01-02T00:00:00Z",
            "eventtime": "2026-01-03T00:00:00Z",
            "start": 1_767_225_600,
        }));
        assert_eq!(event.utctimestamp, Some(at("2026-01-02T00:00:00Z")));

        let (_, event) = run(json!({
            "eventtime": "2026-01-03T00:00:00Z",
            "start": 1_767_225_600,
        }));
        assert_eq!(event.utctimestamp, Some(at("2026-01-03T00:00:00Z")));
    }

    #[test]
    fn top_level_fields_come_before_nested_ones() {
        let (_, event) = run(json!({
            "id": {"time": "2026-01-01T00:00:00Z"},
            "start": 1_767_312_000,
        }));
        assert_eq!(event.utctimestamp, Some(at("2026-01-02T00:00:00Z")));
    }

    #[test]
    fn each_position_in_the_precedence_list_is_used() {
        let cases = [
            (
                json!({"utctimestamp": "2014-04-17T06:10:54+00:00"}),
                "2014-04-17T06:10:54Z",
            ),
            (
                json!({"timestamp": 1_700_000_000_000u64}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"@timestamp": "2023-11-14T22:13:20.000Z"}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"time": "2023-11-14T22:13:20Z"}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"date": "2019-12-19", "time": "03:47:42"}),
                "2019-12-19T03:47:42Z",
            ),
            (
                json!({"eventtime": "2019-09-04T17:54:59Z"}),
                "2019-09-04T17:54:59Z",
            ),
            (json!({"start": 1_418_530_010}), "2014-12-14T04:06:50Z"),
            (
                json!({"published": "2023-11-14T22:13:20.000Z"}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"createddatetime": "2023-11-14T22:13:20Z"}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"timegenerated": "2023-11-14T22:13:20Z"}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"created_at": 1_700_000_000_000u64}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"id": {"time": "2020-03-02T17:54:33.253Z"}}),
                "2020-03-02T17:54:33.253Z",
            ),
            (
                json!({"detail": {"eventtime": "2023-11-14T22:13:20Z"}}),
                "2023-11-14T22:13:20Z",
            ),
            (
                json!({"event": {"created": "2023-11-14T22:13:20Z"}}),
                "2023-11-14T22:13:20Z",
            ),
        ];
        assert_eq!(cases.len(), PRECEDENCE.len(), "one case per field");
        for (details, expected) in cases {
            let (verdict, event) = run(details.clone());
            assert_eq!(verdict, Verdict::Changed, "{details}");
            assert_eq!(event.utctimestamp, Some(at(expected)), "{details}");
            assert!(event.tags.is_empty(), "{details}");
        }
    }

    #[test]
    fn vpc_flow_start_may_be_epoch_seconds_or_iso8601() {
        let (_, event) = run(json!({"start": "2014-12-14T04:06:50", "end": "2014-12-14T04:07:50"}));
        assert_eq!(event.utctimestamp, Some(at("2014-12-14T04:06:50Z")));
    }

    #[test]
    fn cloudfront_date_and_time_beat_the_bare_time_of_day() {
        let (_, event) = run(json!({"date": "2020-09-01", "time": "17:48:18", "c-ip": "x"}));
        assert_eq!(event.utctimestamp, Some(at("2020-09-01T17:48:18Z")));
    }

    #[test]
    fn an_unparseable_field_falls_through_to_the_next_one() {
        let (_, event) = run(json!({"timestamp": "garbage", "eventtime": "2019-09-04T17:54:59Z"}));
        assert_eq!(event.utctimestamp, Some(at("2019-09-04T17:54:59Z")));
        assert!(event.tags.is_empty());
    }

    #[test]
    fn keeps_the_raw_value() {
        let (_, event) = run(json!({"timestamp": "Apr 17 06:10:54"}));
        assert_eq!(event.details["timestamp"], "Apr 17 06:10:54");
    }

    #[test]
    fn unparseable_or_absurd_times_fall_back_to_received_time_with_a_tag() {
        for details in [
            json!({"timestamp": "not a time"}),
            json!({"eventtime": "1999-06-01T00:00:00Z"}),
            json!({"time": "2026-05-17T12:00:00Z"}),
            json!({"start": 0}),
        ] {
            let (verdict, event) = run(details.clone());
            assert_eq!(verdict, Verdict::Changed, "{details}");
            assert_eq!(event.utctimestamp, Some(received()), "{details}");
            assert_eq!(event.tags, [TIMESTAMP_FALLBACK_TAG], "{details}");
        }
    }

    #[test]
    fn without_any_time_field_leaves_the_decision_to_the_pipeline() {
        let (verdict, event) = run(json!({"message": "hello"}));
        assert_eq!(verdict, Verdict::Unchanged);
        assert_eq!(event.utctimestamp, None);
        assert!(event.tags.is_empty());
    }

    #[test]
    fn a_time_set_by_a_source_parser_is_left_alone() {
        let mut event = json_event(r#"{"timestamp": "2026-01-01T00:00:00Z"}"#);
        event.utctimestamp = Some(at("2025-01-01T00:00:00Z"));
        assert_eq!(Timestamp.process(&mut event).unwrap(), Verdict::Unchanged);
        assert_eq!(event.utctimestamp, Some(at("2025-01-01T00:00:00Z")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_parses_to_a_plausible_time_or_to_nothing(
                text in prop_oneof![
                    ".{0,40}",
                    "[0-9]{1,22}(\\.[0-9]{0,12})?",
                    "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
                    "[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}",
                ]
            ) {
                if let Some(time) = parse_str(&text, received()) {
                    prop_assert!(plausible(time, received()), "{text} -> {time}");
                }
            }

            #[test]
            fn any_number_parses_to_a_plausible_time_or_to_nothing(
                number in prop_oneof![
                    any::<u64>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    any::<f64>().prop_map(Value::from),
                ]
            ) {
                if let Some(time) = parse_time(&number, received()) {
                    prop_assert!(plausible(time, received()), "{number} -> {time}");
                }
            }
        }
    }
}
