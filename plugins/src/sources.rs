//! What the source parsers (`gsuite`, `cloudtrail`, `vpcflow`, `cloudfront`, `syslog`,
//! `s3_audit`) share, so each of them is only the knowledge of its own format.
//!
//! Every parser runs at [`Stage::Normalize`] with [`PARSER_PRIORITY`]: after the key
//! lower-casing plugin (so it reads lower-case keys) and before the timestamp plugin (so the
//! time fields it leaves, or puts, under `details` are parsed in one place).

use std::borrow::Cow;

use serde_json::Value;

use crate::plugin::{Registration, Stage, Trigger};
use crate::shell::{Event, UNKNOWN, insert_keeping_both};

/// Where the source parsers run within [`Stage::Normalize`]: after `lowercase_keys` (-100),
/// before `timestamp` (0).
pub const PARSER_PRIORITY: i32 = -50;

/// Longest summary a parser writes, in characters; longer text is cut with `…`.
pub const SUMMARY_MAX_CHARS: usize = 200;

/// The registration every source parser uses: normalization, at [`PARSER_PRIORITY`].
pub fn parser_registration(triggers: Vec<Trigger>) -> Registration {
    Registration::new(Stage::Normalize, PARSER_PRIORITY, triggers)
}

/// Marks the event as coming from `source`, in `category`.
///
/// A record may carry its own `source`/`category` (a shipper's name, a sample's label): when it
/// differs from ours it is kept under `details` (beside anything already there), never lost.
pub fn claim(event: &mut Event, source: &str, category: &str) {
    let theirs = [
        ("source", replace_field(&mut event.source, source)),
        ("category", replace_field(&mut event.category, category)),
    ];
    for (key, value) in theirs {
        if let Some(value) = value {
            insert_keeping_both(&mut event.details, key.to_string(), Value::String(value));
        }
    }
}

/// Puts `ours` in a shell field; returns the record's own value when it said something else.
fn replace_field(slot: &mut String, ours: &str) -> Option<String> {
    if slot == ours {
        return None;
    }
    let theirs = std::mem::replace(slot, ours.to_string());
    (theirs != UNKNOWN && !theirs.is_empty()).then_some(theirs)
}

/// A scalar as text, whatever JSON type the producer used (`443` and `"443"` read alike).
/// `None` for null, empty strings, arrays and objects.
pub fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// The scalar at a dotted path below `details`, as text (see [`text`]).
pub fn detail_text<'a>(event: &'a Event, path: &str) -> Option<Cow<'a, str>> {
    text(event.detail(path)?)
}

/// The first of several paths below `details` that holds a scalar, as text.
pub fn first_detail_text<'a>(event: &'a Event, paths: &[&str]) -> Option<Cow<'a, str>> {
    paths.iter().find_map(|path| detail_text(event, path))
}

/// `None` for `-`, the "no value" that CloudFront, VPC flow logs and RFC 5424 all write.
pub fn not_dash<T: AsRef<str>>(text: T) -> Option<T> {
    (text.as_ref() != "-").then_some(text)
}

/// The first of several paths below `details` with a value, as owned text, for formats that
/// write `-` for "no value" (see [`not_dash`]).
pub fn first_logged_value(event: &Event, paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .find_map(|path| detail_text(event, path).and_then(not_dash))
        .map(Cow::into_owned)
}

/// Text fit for a one-line summary: whitespace runs (newlines included) become one space,
/// the ends are trimmed, and text longer than `max_chars` is cut with `…`.
pub fn one_line(text: &str, max_chars: usize) -> String {
    if is_one_line_already(text, max_chars) {
        // The usual summary: nothing to collapse or cut (perf: every syslog line gets here).
        return text.to_string();
    }
    collapse_whitespace(text, max_chars)
}

/// [`one_line`] of a text made for the purpose: kept as it is when it is fit already, which
/// saves a copy (perf: every syslog line's summary).
pub fn into_one_line(text: String, max_chars: usize) -> String {
    if is_one_line_already(&text, max_chars) {
        return text;
    }
    collapse_whitespace(&text, max_chars)
}

/// [`one_line`] the long way, for any text.
fn collapse_whitespace(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut chars = 0;
    for word in text.split_whitespace() {
        if chars > 0 {
            if chars >= max_chars {
                out.push('…');
                return out;
            }
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= max_chars {
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// Whether [`one_line`] would return `text` as it is: short ASCII, single spaces between
/// words, none at the ends.
fn is_one_line_already(text: &str, max_chars: usize) -> bool {
    let bytes = text.as_bytes();
    bytes.len() <= max_chars
        && bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
        && !crate::bytewise::any_non_ascii_or_whitespace_control(bytes)
        && memchr::memmem::find(bytes, b"  ").is_none()
}

/// Rank of the shell's severities, lowest first; unknown names rank with `INFO`.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "DEBUG" => 0,
        "WARNING" => 2,
        "ERROR" => 3,
        "CRITICAL" => 4,
        _ => 1,
    }
}

/// Raises the event's severity to `severity`; never lowers what the producer or an earlier
/// plugin decided.
pub fn raise_severity(event: &mut Event, severity: &str) {
    if severity_rank(severity) > severity_rank(&event.severity) {
        event.severity = severity.to_string();
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds events the way the pipeline hands them to a source parser.

    use chrono::{DateTime, Utc};
    use serde_json::Value;

    use crate::lowercase_keys::lowercase_map;
    use crate::plugin::{Plugin, Verdict};
    use crate::shell::{Event, Origin};

    pub fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-17T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn origin() -> Origin<'static> {
        Origin {
            container: "test",
            position: 0,
        }
    }

    /// The shell of one JSON object, with its keys lower-cased by `lowercase_keys` as the
    /// pipeline does before any source parser runs.
    pub fn json_event(text: &str) -> Event {
        let Value::Object(map) = serde_json::from_str::<Value>(text).expect("test JSON") else {
            panic!("test records are objects")
        };
        let mut event = Event::from_json(map, text, origin(), received());
        lowercase_map(&mut event.details);
        event
    }

    /// The shell of one raw text line.
    pub fn line_event(line: &str) -> Event {
        Event::from_line(line, origin(), received())
    }

    /// Runs one plugin on the shell of one JSON object (see [`json_event`]).
    pub fn process_json(plugin: &dyn Plugin, text: &str) -> (Verdict, Event) {
        let mut event = json_event(text);
        let verdict = plugin
            .process(&mut event)
            .expect("source parsers never fail");
        (verdict, event)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::json_event;
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_keeps_a_different_own_source_and_category_under_details() {
        let mut event = json_event(r#"{"source": "shipper-7", "category": "monitoring"}"#);
        claim(&mut event, "syslog", "syslog");
        assert_eq!(
            (event.source.as_str(), event.category.as_str()),
            ("syslog", "syslog")
        );
        assert_eq!(event.details["source"], "shipper-7");
        assert_eq!(event.details["category"], "monitoring");
    }

    #[test]
    fn claim_keeps_an_earlier_details_source_beside_the_moved_one() {
        let mut event = json_event(r#"{"source": "a", "details": {"source": "b"}}"#);
        claim(&mut event, "gsuite", "authentication");
        assert_eq!(event.details["source"], "b");
        assert_eq!(event.details["source_2"], "a");
    }

    #[test]
    fn claim_adds_nothing_when_the_record_said_the_same_or_nothing() {
        let mut event = json_event(r#"{"source": "cloudtrail"}"#);
        claim(&mut event, "cloudtrail", "authentication");
        assert!(event.details.is_empty(), "{:?}", event.details);
    }

    #[test]
    fn text_reads_strings_numbers_and_booleans_but_not_empty_or_nested_values() {
        let cases = [
            (json!("x"), Some("x")),
            (json!(443), Some("443")),
            (json!(1.5), Some("1.5")),
            (json!(true), Some("true")),
            (json!(""), None),
            (json!(null), None),
            (json!([1]), None),
            (json!({"a": 1}), None),
        ];
        for (value, expected) in cases {
            assert_eq!(text(&value).as_deref(), expected, "{value}");
        }
    }

    #[test]
    fn a_dash_means_no_value() {
        assert_eq!(not_dash("-"), None);
        assert_eq!(not_dash("--"), Some("--"));
        assert_eq!(not_dash(String::from("x")).as_deref(), Some("x"));
    }

    #[test]
    fn one_line_returns_what_the_long_way_does() {
        use proptest::prelude::*;
        proptest!(|(text in "[ a\t\n\u{0b}\u{85}\u{a0}é.]{0,12}", max in 0usize..10)| {
            prop_assert_eq!(one_line(&text, max), collapse_whitespace(&text, max));
        });
    }

    #[test]
    fn one_line_collapses_whitespace_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(one_line("  a\n b\t\tc \n", 10), "a b c");
        assert_eq!(one_line("ééééé", 3), "ééé…");
        assert_eq!(one_line("abc def", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(one_line("", 3), "");
    }

    #[test]
    fn severity_is_only_ever_raised() {
        let mut event = json_event("{}");
        raise_severity(&mut event, "WARNING");
        assert_eq!(event.severity, "WARNING");
        raise_severity(&mut event, "INFO");
        assert_eq!(event.severity, "WARNING");
        raise_severity(&mut event, "CRITICAL");
        assert_eq!(event.severity, "CRITICAL");
    }

    mod every_parser {
        //! Arbitrary values in the fields the source parsers read: they never panic, and an
        //! event they claim always gets a summary.

        use proptest::prelude::*;
        use serde_json::{Map, Value};

        use crate::plugin::{Plugin, Verdict};
        use crate::sources::testing::{json_event, line_event};

        fn parsers() -> Vec<Box<dyn Plugin>> {
            vec![
                Box::new(crate::gsuite::Gsuite),
                Box::new(crate::cloudtrail::CloudTrail),
                Box::new(crate::vpcflow::VpcFlow),
                Box::new(crate::cloudfront::CloudFront),
                Box::new(crate::syslog::Syslog),
                Box::new(crate::s3_audit::S3Audit),
            ]
        }

        /// Keys the parsers look for, so arbitrary values land where they are read.
        const KEYS: &[&str] = &[
            "kind",
            "id",
            "applicationname",
            "actor",
            "email",
            "ipaddress",
            "events",
            "name",
            "type",
            "parameters",
            "value",
            "boolvalue",
            "multivalue",
            "eventversion",
            "eventname",
            "eventsource",
            "useridentity",
            "arn",
            "username",
            "errorcode",
            "responseelements",
            "consolelogin",
            "detail",
            "srcaddr",
            "dstaddr",
            "srcport",
            "protocol",
            "bytes",
            "log_status",
            "interface_id",
            "x-edge-request-id",
            "cs-method",
            "cs-uri-stem",
            "sc-status",
            "c-ip",
            "api",
            "bucket",
            "object",
            "status",
            "statuscode",
            "timetoresponse",
            "remotehost",
            "source",
            "category",
            "summary",
            "hostname",
            "program",
            "message",
        ];

        /// Values that make a parser take a record, mixed with anything at all.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
                prop::sample::select(vec![
                    "admin#reports#activity",
                    "1.08",
                    "ConsoleLogin",
                    "Failure",
                    "-",
                    "login_failure",
                    "is_suspicious",
                    "true",
                    "123ns",
                    "1m2.5s",
                    "syslog",
                    "192.0.2.1",
                    "2001:db8::1",
                    "PutObject",
                    "",
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 32, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(
                        |pairs| {
                            Value::Object(
                                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                            )
                        }
                    ),
                ]
            })
        }

        /// The least each parser needs to take a record; arbitrary fields are added around
        /// (and inside) it, so the parsers' reading of every other field is exercised.
        const TEMPLATES: &[&str] = &[
            r#"{"kind": "admin#reports#activity"}"#,
            r#"{"eventversion": "1.08", "eventname": "ConsoleLogin"}"#,
            r#"{"detail": {"eventversion": "1.08", "eventsource": "s3.amazonaws.com"}}"#,
            r#"{"srcaddr": "192.0.2.1", "dstaddr": "2001:db8::1"}"#,
            r#"{"log_status": "NODATA", "interface_id": "eni-1"}"#,
            r#"{"x-edge-location": "IAD89-P1", "sc-status": 200}"#,
            r#"{"api": {"name": "PutObject"}, "remotehost": "192.0.2.1"}"#,
            r#"{"source": "syslog"}"#,
        ];

        fn fields() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
            prop::collection::vec((prop::sample::select(KEYS), value()), 0..10)
        }

        fn record() -> impl Strategy<Value = Map<String, Value>> {
            (prop::sample::select(TEMPLATES), fields(), fields()).prop_map(
                |(template, outer, inner)| {
                    let mut record: Map<String, Value> =
                        outer.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    let Ok(Value::Object(template)) = serde_json::from_str(template) else {
                        unreachable!("templates are objects")
                    };
                    for (key, value) in template {
                        let value = match value {
                            Value::Object(mut nested) => {
                                for (k, v) in &inner {
                                    nested.entry(k.to_string()).or_insert_with(|| v.clone());
                                }
                                Value::Object(nested)
                            }
                            scalar => scalar,
                        };
                        record.insert(key, value);
                    }
                    record
                },
            )
        }

        proptest! {
            #[test]
            fn arbitrary_records_never_panic_and_claimed_ones_get_a_summary(record in record()) {
                let text = Value::Object(record).to_string();
                for parser in parsers() {
                    let mut event = json_event(&text);
                    if !parser.registration().matches(&event) {
                        continue;
                    }
                    let verdict = parser.process(&mut event).unwrap();
                    if verdict == Verdict::Changed {
                        prop_assert!(!event.summary.is_empty(), "{}: {text}", parser.name());
                        prop_assert!(event.source != "unknown", "{}: {text}", parser.name());
                    }
                }
            }

            #[test]
            fn arbitrary_lines_never_panic(
                line in prop_oneof![
                    // RFC 3164-like: optional PRI, BSD time, host, tag, anything.
                    "(<[0-9]{1,3}>)?[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [a-z0-9.-]{0,8} ?[a-z0-9:\\[\\]]{0,12} ?.{0,30}",
                    // RFC 5424-like: header fields, structured data with quotes and escapes.
                    "<[0-9]{1,3}>1 [-0-9TZ:.]{1,25} [a-z.-]{1,8} [a-z-]{1,6} [0-9-]{1,4} [A-Z0-9-]{1,4} (-|(\\[[a-z@0-9 =\"\\\\\\]]{0,25}\\]){0,2}) ?.{0,20}",
                    ".{0,60}",
                ]
            ) {
                let mut event = line_event(&line);
                let verdict = crate::syslog::Syslog.process(&mut event).unwrap();
                if verdict == Verdict::Unchanged {
                    prop_assert_eq!(event.details["message"].as_str(), Some(line.as_str()));
                } else {
                    prop_assert!(!event.summary.is_empty());
                }
            }
        }
    }
}
