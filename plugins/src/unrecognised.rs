//! What a record that no source recognised still says: a hostname from the fields producers
//! commonly use for one, and a summary from its most telling fields, instead of
//! `unknown event from unknown`. An analyst scanning `summary` and `hostname` then sees what
//! happened where, even for a log type lakewatch does not know yet.
//!
//! Both are worked out when the lake line is written, and only for an event without a
//! summary (every source sets one, so only unrecognised records pay): a few map lookups.

use std::borrow::Cow;

use crate::shell::Event;
use crate::sources::{SUMMARY_MAX_CHARS, detail_text, first_detail_text, one_line};

/// Fields that name the machine, most specific first (keys are lower case by now: `hostName`
/// is `hostname`). `host.name` is the Elastic Common Schema's.
const HOSTNAME_FIELDS: &[&str] = &[
    "hostname",
    "host_name",
    "computer_name",
    "computername",
    "device_name",
    "devicename",
    "machine_name",
    "machinename",
    "host.name",
    "host.hostname",
    "host",
    "dvchost",
    "server_name",
    "node",
];

/// Fields that say what happened.
const ACTION_FIELDS: &[&str] = &[
    "eventname",
    "event_name",
    "event_type",
    "eventtype",
    "event.action",
    "action",
    "operation",
    "activity",
    "event",
    "type",
];

/// Fields that say who did it.
const ACTOR_FIELDS: &[&str] = &[
    "user",
    "username",
    "user_name",
    "user.name",
    "actor",
    "principal",
    "email",
    "account",
];

/// Fields that say from where (the `ipaddress` plugin has put the first address it found in
/// `sourceipaddress` by the time the line is written).
const ADDRESS_FIELDS: &[&str] = &[
    "sourceipaddress",
    "src_ip",
    "srcip",
    "source_ip",
    "client_ip",
    "remote_addr",
    "ip",
];

/// Fields that describe it in words.
const MESSAGE_FIELDS: &[&str] = &["message", "msg", "description", "reason", "status"];

/// Scalar fields shown as `key=value` when none of the above is there.
const FIELDS_LISTED: usize = 4;

/// The hostname of an unrecognised record: the first common hostname field holding text.
pub fn hostname(event: &Event) -> Option<Cow<'_, str>> {
    first_detail_text(event, HOSTNAME_FIELDS).filter(|h| !h.is_empty() && h != "-")
}

/// The record's own `hostname` (a shell field, so not in `details`), or one found.
fn own_or_found_hostname(event: &Event) -> Option<Cow<'_, str>> {
    if event.hostname.is_empty() {
        hostname(event)
    } else {
        Some(Cow::Borrowed(event.hostname.as_str()))
    }
}

/// A one-line summary of an unrecognised record:
/// `<action> by <actor> on <host> from <address>: <message>` with the parts it has; the first
/// few scalar fields as `key=value` when it has none of them; `unknown event from <source>`
/// for an empty record.
pub fn summary(event: &Event) -> String {
    let part = |paths: &[&str]| first_detail_text(event, paths).filter(|t| !t.is_empty());
    let mut out = String::new();
    if let Some(action) = part(ACTION_FIELDS) {
        out.push_str(&action);
    }
    for (word, value) in [
        ("by", part(ACTOR_FIELDS)),
        ("on", own_or_found_hostname(event)),
        ("from", part(ADDRESS_FIELDS)),
    ] {
        if let Some(value) = value {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
            out.push(' ');
            out.push_str(&value);
        }
    }
    if let Some(message) = part(MESSAGE_FIELDS) {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&message);
    }
    if out.is_empty() {
        out = listed_fields(event);
    }
    if out.is_empty() {
        return format!("{} event from {}", event.category, event.source);
    }
    one_line(&out, SUMMARY_MAX_CHARS)
}

/// `key=value` for the first scalar fields of `details`, by name.
fn listed_fields(event: &Event) -> String {
    event
        .details
        .iter()
        .filter(|(key, value)| !key.starts_with('_') && !value.is_object() && !value.is_array())
        .filter_map(|(key, _)| Some((key, detail_text(event, key)?)))
        .filter(|(_, value)| !value.is_empty())
        .take(FIELDS_LISTED)
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::json_event;
    use crate::{PluginConfig, builtin_pipeline};
    use serde_json::{Value, json};

    /// The lake line the whole built-in pipeline makes of a record.
    fn lake_line(record: Value) -> Value {
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        match pipeline.run(json_event(&record.to_string())) {
            crate::Outcome::Ok(event) => serde_json::from_str(&event.to_json_line()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_endpoint_record_gets_its_host_and_a_telling_summary() {
        let line = lake_line(json!({
            "device_name": "WS-0042", "event_type": "usb_mount", "userName": "alice",
            "src_ip": "198.51.100.7", "message": "Kingston DataTraveler mounted at E:"
        }));
        assert_eq!(line["source"], "unknown");
        assert_eq!(line["hostname"], "WS-0042");
        assert_eq!(
            line["summary"],
            "usb_mount by alice on WS-0042 from 198.51.100.7: Kingston DataTraveler mounted at E:"
        );
    }

    #[test]
    fn every_common_hostname_field_is_read_with_any_capitalisation() {
        for field in [
            "hostname",
            "hostName",
            "host",
            "computer_name",
            "ComputerName",
            "device_name",
        ] {
            let line = lake_line(json!({ field: "srv-7", "action": "restart" }));
            assert_eq!(line["hostname"], "srv-7", "{field}");
            assert_eq!(line["summary"], "restart on srv-7", "{field}");
        }
        let ecs = lake_line(json!({"host": {"name": "k8s-node-3"}, "event": {"action": "exec"}}));
        assert_eq!(ecs["hostname"], "k8s-node-3");
        assert_eq!(ecs["summary"], "exec on k8s-node-3");
    }

    #[test]
    fn without_telling_fields_the_first_fields_are_listed() {
        let line = lake_line(
            json!({"zone": "eu-2", "count": 7, "nested": {"a": 1}, "ok": true, "x": "y", "z": "w"}),
        );
        assert_eq!(
            line["summary"], "count=7 ok=true x=y z=w",
            "by name: details keep no order"
        );
        assert_eq!(line["hostname"], "");
    }

    #[test]
    fn a_recognised_record_keeps_its_parsers_summary_and_empty_hostname() {
        let line = lake_line(json!({
            "eventVersion": "1.08", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "eventTime": "2026-04-17T06:10:54Z", "sourceIPAddress": "198.51.100.23", "host": "not-a-machine",
            "userIdentity": {"arn": "arn:aws:iam::111122223333:user/alice"}
        }));
        assert_eq!(line["source"], "cloudtrail");
        assert_eq!(line["hostname"], "", "CloudTrail calls have no host");
        assert!(
            line["summary"]
                .as_str()
                .unwrap()
                .starts_with("ConsoleLogin by")
        );
    }

    #[test]
    fn a_long_message_is_one_line_and_cut() {
        let line = lake_line(json!({"host": "h", "message": format!("a\nb {}", "x".repeat(300))}));
        let summary = line["summary"].as_str().unwrap();
        assert!(summary.starts_with("on h: a b xxx"), "{summary}");
        assert_eq!(
            summary.chars().count(),
            SUMMARY_MAX_CHARS + 1,
            "cut, then …"
        );
        assert!(summary.ends_with('…'));
    }

    #[test]
    fn a_raw_line_no_source_knows_keeps_the_whole_line_as_summary_and_in_details_raw() {
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let line =
            "2026/04/17 06:10:54 [error] 311#0: upstream timed out (110: Connection timed out)";
        let crate::Outcome::Ok(event) = pipeline.run(crate::sources::testing::line_event(line))
        else {
            panic!("a line is never dropped")
        };
        let value: Value = serde_json::from_str(&event.to_json_line()).unwrap();
        assert_eq!(value["source"], "unknown");
        assert_eq!(value["details"]["raw"], line);
        assert_eq!(value["summary"], line);
    }
}
