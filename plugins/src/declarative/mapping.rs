//! The pieces of a source's mapping that are more than a field lookup: summary templates,
//! time formats (with Unix `date` zone abbreviations), casts, and moving values between paths.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::shell::{Event, insert_keeping_both};
use crate::sources::text;
use crate::timestamp::{parse_str, parse_time, plausible};

/// A summary or tag template: text with `{path}` and `{path|fallback}` placeholders; `{{` and
/// `}}` are literal braces.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field { path: String, fallback: String },
}

impl Template {
    /// Parses a template; the error says what is wrong and where (character offset).
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &template[at + 1..];
                    let end = rest.find('}').ok_or_else(|| {
                        format!("placeholder at character {at} has no closing '}}'")
                    })?;
                    let inner = &rest[..end];
                    let (path, fallback) = inner.split_once('|').unwrap_or((inner, ""));
                    check_path(path.trim())?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field {
                        path: path.trim().to_string(),
                        fallback: fallback.to_string(),
                    });
                    for _ in 0..inner.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => return Err(format!("'}}' at character {at} closes no placeholder")),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// The text with each placeholder replaced by its field's scalar (as text), or its
    /// fallback when the field is missing, empty or not a scalar.
    pub fn render(&self, event: &Event) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { path, fallback } => match event.detail(path).and_then(text) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(fallback),
                },
            }
        }
        out
    }
}

/// A dotted path below `details` as source files write them: lower case (keys are lower-cased
/// before any source runs), no empty segment.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("{path:?} is not a field path (write a.b.c)"));
    }
    if path.chars().any(char::is_uppercase) {
        return Err(format!(
            "{path:?}: keys are lower-cased before sources run, write {:?}",
            path.to_lowercase()
        ));
    }
    Ok(())
}

/// How a time field is written.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeFormat {
    /// Whatever the `timestamp` plugin reads (RFC 3339, epoch by magnitude, syslog…).
    Auto,
    Rfc3339,
    /// Epoch time in this many nanoseconds per unit.
    Epoch(u64),
    /// `Apr 17 06:10:54`, the year chosen as the `timestamp` plugin does.
    Syslog,
    /// Unix `date` output: `Wed Mar 25 15:06:26 AEDT 2020`.
    UnixDate,
    /// A chrono strftime format; without a zone (`%z`) the time is UTC.
    Strftime(String),
}

impl TimeFormat {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "epoch_s" => TimeFormat::Epoch(1_000_000_000),
            "epoch_ms" => TimeFormat::Epoch(1_000_000),
            "epoch_us" => TimeFormat::Epoch(1_000),
            "epoch_ns" => TimeFormat::Epoch(1),
            "syslog" => TimeFormat::Syslog,
            "unix_date" => TimeFormat::UnixDate,
            custom if custom.contains('%') => {
                // chrono reports a bad format only when parsing; try it once here instead.
                if chrono::format::StrftimeItems::new(custom)
                    .any(|item| matches!(item, chrono::format::Item::Error))
                {
                    return Err(format!("{custom:?} is not a valid strftime format"));
                }
                TimeFormat::Strftime(custom.to_string())
            }
            other => {
                return Err(format!(
                    "unknown time format {other:?}: expected auto, rfc3339, epoch_s, epoch_ms, \
                     epoch_us, epoch_ns, syslog, unix_date or a strftime format such as \
                     \"%d/%m/%Y %H:%M:%S\""
                ));
            }
        })
    }
}

/// Zone abbreviations Unix `date` prints that mean one offset only. Ambiguous ones (IST is
/// India, Ireland or Israel; CST is US Central or China) are left to a source's `zones`.
pub const ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("GMT", 0),
    ("Z", 0),
    ("WET", 0),
    ("WEST", 3600),
    ("BST", 3600),
    ("CET", 3600),
    ("CEST", 7200),
    ("EET", 7200),
    ("EEST", 10800),
    ("MSK", 10800),
    ("JST", 9 * 3600),
    ("KST", 9 * 3600),
    ("HKT", 8 * 3600),
    ("SGT", 8 * 3600),
    ("AWST", 8 * 3600),
    ("ACST", 9 * 3600 + 1800),
    ("ACDT", 10 * 3600 + 1800),
    ("AEST", 10 * 3600),
    ("AEDT", 11 * 3600),
    ("NZST", 12 * 3600),
    ("NZDT", 13 * 3600),
    ("EST", -5 * 3600),
    ("EDT", -4 * 3600),
    ("CDT", -5 * 3600),
    ("MST", -7 * 3600),
    ("MDT", -6 * 3600),
    ("PST", -8 * 3600),
    ("PDT", -7 * 3600),
    ("AKST", -9 * 3600),
    ("AKDT", -8 * 3600),
    ("HST", -10 * 3600),
];

/// A zone offset as written in a source file (`+05:30`, `-0800`), in seconds east of UTC.
pub fn parse_offset(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?} is not a zone offset (write +05:30 or -08:00)");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = digits[2..].parse().map_err(|_| bad())?;
    if hours > 14 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// The time in a field, in `format`, if it is one and plausible for an event received at
/// `received` (see [`crate::timestamp::plausible`]).
pub fn read_time(
    value: &Value,
    format: &TimeFormat,
    zones: &BTreeMap<String, i32>,
    received: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let time = match format {
        TimeFormat::Auto => return parse_time(value, received),
        TimeFormat::Syslog => return parse_str(value.as_str()?, received),
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(value.as_str()?.trim())
            .ok()?
            .to_utc(),
        TimeFormat::Epoch(unit) => epoch(&text(value)?, *unit)?,
        TimeFormat::UnixDate => unix_date(value.as_str()?, zones)?,
        TimeFormat::Strftime(format) => {
            let text = value.as_str()?.trim();
            DateTime::parse_from_str(text, format)
                .map(|t| t.to_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(|t| t.and_utc()))
                .ok()?
        }
    };
    plausible(time, received).then_some(time)
}

/// `digits[.digits]` counting `unit` nanoseconds each.
fn epoch(text: &str, unit: u64) -> Option<DateTime<Utc>> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let unit = u128::from(unit);
    let fraction = &fraction[..fraction.len().min(9)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().ok()? * unit / 10u128.pow(fraction.len() as u32)
    };
    let nanos = whole.parse::<u128>().ok()?.checked_mul(unit)? + fraction_nanos;
    DateTime::from_timestamp(
        i64::try_from(nanos / 1_000_000_000).ok()?,
        (nanos % 1_000_000_000) as u32,
    )
}

/// Unix `date` output, `Wed Mar 25 15:06:26 AEDT 2020` (the weekday is optional and not
/// checked; the zone is an abbreviation from [`ZONES`] or `zones`, or a `+hhmm` offset).
fn unix_date(text: &str, zones: &BTreeMap<String, i32>) -> Option<DateTime<Utc>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let words = match words.len() {
        6 => &words[1..],
        5 => &words[..],
        _ => return None,
    };
    let (month, day, time, zone, year) = (words[0], words[1], words[2], words[3], words[4]);
    let offset = zones
        .get(zone)
        .copied()
        .or_else(|| {
            ZONES
                .iter()
                .find(|(name, _)| *name == zone)
                .map(|(_, s)| *s)
        })
        .or_else(|| parse_offset(zone).ok())?;
    let naive =
        NaiveDateTime::parse_from_str(&format!("{month} {day} {year} {time}"), "%b %d %Y %H:%M:%S")
            .ok()?;
    let local = naive
        .and_local_timezone(FixedOffset::east_opt(offset)?)
        .single()?;
    Some(local.to_utc())
}

/// A conversion of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTo {
    Integer,
    Float,
    String,
    Boolean,
    /// A Go-style duration (`"2246401314ns"`, `"1m2.5s"`) as whole nanoseconds.
    DurationNs,
    /// A Go-style duration as (fractional) milliseconds.
    DurationMs,
}

impl CastTo {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "integer" => CastTo::Integer,
            "float" => CastTo::Float,
            "string" => CastTo::String,
            "boolean" => CastTo::Boolean,
            "duration_ns" => CastTo::DurationNs,
            "duration_ms" => CastTo::DurationMs,
            other => {
                return Err(format!(
                    "unknown cast {other:?}: expected integer, float, string, boolean, \
                     duration_ns or duration_ms"
                ));
            }
        })
    }

    /// The converted value, or why it cannot be converted.
    pub fn apply(self, value: &Value) -> Result<Value, String> {
        let shown = || value.to_string();
        let scalar = text(value).ok_or_else(|| format!("{} is not a scalar", shown()))?;
        let scalar = scalar.trim();
        let converted = match self {
            CastTo::String => Some(Value::String(scalar.to_string())),
            CastTo::Integer => scalar.parse::<i64>().ok().map(Value::from).or_else(|| {
                let float = scalar.parse::<f64>().ok()?;
                (float.fract() == 0.0 && float.abs() < 9e15).then(|| Value::from(float as i64))
            }),
            CastTo::Float => scalar
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            CastTo::Boolean => match scalar.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            CastTo::DurationNs => crate::s3_audit::duration_ms(scalar)
                .map(|ms| (ms * 1e6).round())
                .filter(|ns| *ns < 9e18)
                .map(|ns| Value::from(ns as u64)),
            CastTo::DurationMs => crate::s3_audit::duration_ms(scalar)
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
        };
        converted.ok_or_else(|| format!("{} is not {}", shown(), self.noun()))
    }

    fn noun(self) -> &'static str {
        match self {
            CastTo::Integer => "an integer",
            CastTo::Float => "a number",
            CastTo::String => "text",
            CastTo::Boolean => "a boolean",
            CastTo::DurationNs | CastTo::DurationMs => "a duration (such as 2246401314ns)",
        }
    }
}

/// Text taken apart into fields (`[[extract]]`): what ALB access logs and auditd lines need.
#[derive(Debug)]
pub struct Extraction {
    pub field: String,
    pub how: Extractor,
    /// The object the fields go into; `None`: the top of `details`.
    pub into: Option<String>,
    /// Values meaning "no value", left out.
    pub absent: Vec<String>,
}

#[derive(Debug)]
pub enum Extractor {
    /// Named captures become fields.
    Regex(regex::Regex),
    /// `key=value key="quoted value" key='quoted'`, keys lower-cased.
    Pairs,
}

impl Extraction {
    /// Adds the fields found in the text; text that does not match adds nothing (the source's
    /// conditions say which records have the shape).
    pub fn apply(&self, details: &mut Map<String, Value>) {
        let Some(Value::String(text)) = lookup(details, &self.field) else {
            return;
        };
        let fields: Vec<(String, String)> = match &self.how {
            Extractor::Regex(regex) => {
                let Some(captures) = regex.captures(text) else {
                    return;
                };
                regex
                    .capture_names()
                    .flatten()
                    .filter_map(|name| {
                        let value = captures.name(name)?.as_str();
                        Some((name.to_string(), value.to_string()))
                    })
                    .collect()
            }
            Extractor::Pairs => key_value_pairs(text),
        };
        for (key, value) in fields {
            if value.is_empty() || self.absent.contains(&value) {
                continue;
            }
            let path = match &self.into {
                Some(into) => format!("{into}.{key}"),
                None => key,
            };
            put_path(details, &path, Value::String(value));
        }
    }
}

/// `key=value` pairs separated by whitespace (or auditd's 0x1d before its enriched fields);
/// a value in double or single quotes may hold spaces; words without `=` are skipped.
pub fn key_value_pairs(text: &str) -> Vec<(String, String)> {
    let separator = |c: char| c.is_whitespace() || c == '\u{1d}';
    let mut pairs = Vec::new();
    let mut rest = text.trim_start_matches(separator);
    while !rest.is_empty() {
        let word_end = rest.find(separator).unwrap_or(rest.len());
        let Some(eq) = rest[..word_end].find('=') else {
            rest = rest[word_end..].trim_start_matches(separator);
            continue;
        };
        let key = rest[..eq].to_lowercase();
        let after = &rest[eq + 1..];
        let (value, next) = match after.chars().next() {
            Some(quote @ ('"' | '\'')) => match after[1..].find(quote) {
                Some(end) => (&after[1..end + 1], &after[end + 2..]),
                None => (&after[1..], ""),
            },
            _ => {
                let end = after.find(separator).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if !key.is_empty() {
            pairs.push((key, value.to_string()));
        }
        rest = next.trim_start_matches(separator);
    }
    pairs
}

/// Top-level keys with dots (`id.orig_h`) moved to the nested path they spell.
pub fn unflatten(details: &mut Map<String, Value>) {
    let dotted: Vec<String> = details
        .keys()
        .filter(|key| key.contains('.') && check_path(key).is_ok())
        .cloned()
        .collect();
    for key in dotted {
        if let Some(value) = details.remove(&key) {
            put_path(details, &key, value);
        }
    }
}

/// The value at a dotted path below `details`, a list standing for its first element (Kubernetes'
/// `sourceips`, the first address a request came through).
pub fn first_scalar<'a>(event: &'a Event, path: &str) -> Option<std::borrow::Cow<'a, str>> {
    match event.detail(path)? {
        Value::Array(values) => values.first().and_then(text),
        value => text(value),
    }
}

fn lookup<'a>(details: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = details.get(parts.next()?)?;
    parts.try_fold(first, |value, key| value.as_object()?.get(key))
}

/// Removes and returns the value at a dotted path below `details`.
pub fn take_path(details: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.rsplit_once('.') {
        None => details.remove(path),
        Some((parent, key)) => parent_mut(details, parent)?.remove(key),
    }
}

/// Puts a value at a dotted path below `details`, creating the objects on the way; a value
/// already at the path is kept beside it (`key_2`), and a scalar on the way is never replaced:
/// the value then goes to the top of `details` under the whole path as its key.
pub fn put_path(details: &mut Map<String, Value>, path: &str, value: Value) {
    let Some((parent, key)) = path.rsplit_once('.') else {
        insert_keeping_both(details, path.to_string(), value);
        return;
    };
    let mut walkable = true;
    let mut current = &*details;
    for segment in parent.split('.') {
        match current.get(segment) {
            Some(Value::Object(map)) => current = map,
            Some(_) => {
                walkable = false;
                break;
            }
            None => break,
        }
    }
    if !walkable {
        insert_keeping_both(details, path.to_string(), value);
        return;
    }
    let mut current = details;
    for segment in parent.split('.') {
        current = current
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("checked above: every segment on the way is an object or absent");
    }
    insert_keeping_both(current, key.to_string(), value);
}

fn parent_mut<'a>(
    details: &'a mut Map<String, Value>,
    parent: &str,
) -> Option<&'a mut Map<String, Value>> {
    let mut current = details;
    for segment in parent.split('.') {
        current = current.get_mut(segment)?.as_object_mut()?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{json_event, received};
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn time(value: Value, format: &str) -> Option<DateTime<Utc>> {
        read_time(
            &value,
            &TimeFormat::parse(format).unwrap(),
            &BTreeMap::new(),
            received(),
        )
    }

    #[test]
    fn templates_fill_fields_and_fallbacks() {
        let event = json_event(r#"{"api": {"name": "GetObject", "statuscode": 403}}"#);
        let template =
            Template::parse("{api.name} {api.bucket|-} -> {api.statuscode} {{x}}").unwrap();
        assert_eq!(template.render(&event), "GetObject - -> 403 {x}");
        for bad in ["{api.name", "x}", "{}", "{API.name}", "{a..b}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Template::parse("{API.name}")
                .unwrap_err()
                .contains("\"api.name\"")
        );
    }

    #[test]
    fn unix_date_with_zone_abbreviations() {
        assert_eq!(
            time(json!("Wed Mar 25 15:06:26 AEDT 2020"), "unix_date"),
            Some(at("2020-03-25T04:06:26Z"))
        );
        assert_eq!(
            time(json!("Mar  5 15:06:26 PST 2020"), "unix_date"),
            Some(at("2020-03-05T23:06:26Z"))
        );
        assert_eq!(
            time(json!("Wed Mar 25 15:06:26 +0530 2020"), "unix_date"),
            Some(at("2020-03-25T09:36:26Z"))
        );
        // Ambiguous abbreviations are not guessed…
        assert_eq!(
            time(json!("Wed Mar 25 15:06:26 IST 2020"), "unix_date"),
            None
        );
        // …unless the source says what it means.
        let zones = BTreeMap::from([("IST".to_string(), 19800)]);
        assert_eq!(
            read_time(
                &json!("Wed Mar 25 15:06:26 IST 2020"),
                &TimeFormat::UnixDate,
                &zones,
                received()
            ),
            Some(at("2020-03-25T09:36:26Z"))
        );
    }

    #[test]
    fn epoch_units_rfc3339_syslog_and_strftime() {
        let expected = at("2020-03-25T04:06:26Z");
        assert_eq!(time(json!(1585109186), "epoch_s"), Some(expected));
        assert_eq!(time(json!("1585109186000"), "epoch_ms"), Some(expected));
        assert_eq!(time(json!(1585109186000000u64), "epoch_us"), Some(expected));
        assert_eq!(
            time(json!("1585109186000000000"), "epoch_ns"),
            Some(expected)
        );
        assert_eq!(
            time(json!("1585109186.5"), "epoch_s"),
            Some(at("2020-03-25T04:06:26.5Z"))
        );
        // The unit is the one declared, not guessed by magnitude.
        assert_eq!(time(json!(1585109186), "epoch_ms"), None);
        assert_eq!(
            time(json!("2022-10-20T14:08:43.3Z"), "rfc3339"),
            Some(at("2022-10-20T14:08:43.3Z"))
        );
        assert_eq!(time(json!("1585109186"), "rfc3339"), None);
        assert_eq!(
            time(json!("Apr 17 06:10:54"), "syslog"),
            Some(at("2026-04-17T06:10:54Z"))
        );
        assert_eq!(
            time(json!("25/03/2020 15:06:26"), "%d/%m/%Y %H:%M:%S"),
            Some(expected + chrono::Duration::hours(11))
        );
        assert_eq!(
            time(json!("25/03/2020 15:06:26 +1100"), "%d/%m/%Y %H:%M:%S %z"),
            Some(expected)
        );
        // Implausible times are refused in every format.
        assert_eq!(time(json!(0), "epoch_s"), None);
        assert!(TimeFormat::parse("%Q").is_err());
        assert!(TimeFormat::parse("iso").is_err());
    }

    #[test]
    fn casts_convert_or_say_why_not() {
        assert_eq!(
            CastTo::DurationNs.apply(&json!("2246401314ns")),
            Ok(json!(2246401314u64))
        );
        assert_eq!(
            CastTo::DurationMs.apply(&json!("2246401314ns")),
            Ok(json!(2246.401314))
        );
        assert_eq!(CastTo::Integer.apply(&json!("42")), Ok(json!(42)));
        assert_eq!(CastTo::Integer.apply(&json!(42.0)), Ok(json!(42)));
        assert_eq!(CastTo::Float.apply(&json!("1.5")), Ok(json!(1.5)));
        assert_eq!(CastTo::String.apply(&json!(443)), Ok(json!("443")));
        assert_eq!(CastTo::Boolean.apply(&json!("TRUE")), Ok(json!(true)));
        assert_eq!(
            CastTo::DurationNs.apply(&json!("soon")),
            Err("\"soon\" is not a duration (such as 2246401314ns)".to_string())
        );
        assert!(CastTo::Integer.apply(&json!({"a": 1})).is_err());
    }

    #[test]
    fn paths_are_taken_and_put_keeping_what_is_there() {
        let mut details = json!({"a": {"b": 1}, "c": 2, "s": "x"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(take_path(&mut details, "a.b"), Some(json!(1)));
        assert_eq!(take_path(&mut details, "a.z"), None);
        put_path(&mut details, "n.m", json!(3));
        put_path(&mut details, "c", json!(4));
        put_path(&mut details, "s.t", json!(5));
        assert_eq!(
            Value::Object(details),
            json!({"a": {}, "c": 2, "c_2": 4, "n": {"m": 3}, "s": "x", "s.t": 5})
        );
    }
}
