//! `gsuite`: Google Workspace (G Suite) activity from the Admin SDK Reports API
//! (`kind` = `admin#reports#activity`), login activity above all.
//!
//! Each record is one activity: who (`actor.email`), from where (`ipAddress`), when (`id.time`,
//! parsed by the `timestamp` plugin) and one or more events (`events[].name`, e.g.
//! `login_success`, `login_failure`, `login_challenge`, `suspicious_login`, `logout`) with
//! typed parameters (`value`, `multiValue`, `boolValue`, `intValue`).
//!
//! What this plugin sets:
//!
//! | field | value |
//! | --- | --- |
//! | `source` | `gsuite` |
//! | `category` | `authentication` for the `login` application; otherwise the application's name (`admin`, `drive`, `token`…), `unknown` if none |
//! | `summary` | `<email> login <success\|failure> from <ip>` when an event says how a login went (a failure wins over a success in the same activity); otherwise `<email> <event names> from <ip>`; ` from <ip>` is left out when there is no address |
//! | `tags` | every event name |
//! | `severity` | `WARNING` when Google flags the activity as suspicious (`is_suspicious` true, or a `suspicious_login*` / `gov_attack_warning` event), tagged `suspicious` |
//! | `details.parameters` | every event's parameters as `{name: value}`, so `is_suspicious` or `login_type` are one JSON path away; the original `events` stay as they were |
//!
//! `hostname` stays empty: the activity is about an account, not a machine.

use serde_json::{Map, Value};

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::{Event, insert_keeping_both};
use crate::sources::{
    SUMMARY_MAX_CHARS, claim, detail_text, first_detail_text, one_line, parser_registration,
    raise_severity,
};

/// The `kind` of an Admin SDK Reports activity.
pub const ACTIVITY_KIND: &str = "admin#reports#activity";

/// Tag of an activity Google flagged as suspicious.
pub const SUSPICIOUS_TAG: &str = "suspicious";

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gsuite;

impl Plugin for Gsuite {
    fn name(&self) -> &'static str {
        "gsuite"
    }

    fn registration(&self) -> Registration {
        parser_registration(vec![Trigger::Field("kind".to_string())])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        if event.detail_str("kind") != Some(ACTIVITY_KIND) {
            return Ok(Verdict::Unchanged);
        }
        let activity = Activity::read(event);
        let category = match activity.application.as_deref() {
            Some("login") => "authentication".to_string(),
            Some(other) => other.to_lowercase(),
            None if activity.has_login_event => "authentication".to_string(),
            None => crate::shell::UNKNOWN.to_string(),
        };
        claim(event, "gsuite", &category);
        event.summary = activity.summary();
        for name in &activity.names {
            event.add_tag(name);
        }
        if activity.suspicious {
            raise_severity(event, "WARNING");
            event.add_tag(SUSPICIOUS_TAG);
        }
        if !activity.parameters.is_empty() {
            insert_keeping_both(
                &mut event.details,
                "parameters".to_string(),
                Value::Object(activity.parameters),
            );
        }
        Ok(Verdict::Changed)
    }
}

/// What the plugin needs from one activity record, read without assuming its shape.
#[derive(Debug, Default)]
struct Activity {
    actor: String,
    ip: Option<String>,
    application: Option<String>,
    names: Vec<String>,
    has_login_event: bool,
    suspicious: bool,
    parameters: Map<String, Value>,
}

impl Activity {
    fn read(event: &Event) -> Self {
        let mut activity = Activity {
            actor: first_detail_text(event, &["actor.email", "actor.profileid"])
                .map_or_else(|| "unknown user".to_string(), |a| a.into_owned()),
            ip: detail_text(event, "ipaddress").map(|ip| ip.into_owned()),
            application: detail_text(event, "id.applicationname").map(|a| a.into_owned()),
            ..Activity::default()
        };
        let events = event.details.get("events").and_then(Value::as_array);
        for item in events.into_iter().flatten().filter_map(Value::as_object) {
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                activity.suspicious |=
                    name.starts_with("suspicious_login") || name == "gov_attack_warning";
                if !activity.names.iter().any(|n| n == name) {
                    activity.names.push(name.to_string());
                }
            }
            activity.has_login_event |= item.get("type").and_then(Value::as_str) == Some("login");
            let parameters = item.get("parameters").and_then(Value::as_array);
            for parameter in parameters.into_iter().flatten() {
                activity.add_parameter(parameter);
            }
        }
        activity
    }

    /// Keeps one `{name, value|multiValue|boolValue|intValue|multiIntValue}` parameter.
    fn add_parameter(&mut self, parameter: &Value) {
        let Some(name) = parameter.get("name").and_then(Value::as_str) else {
            return;
        };
        let value = [
            "value",
            "boolvalue",
            "intvalue",
            "multivalue",
            "multiintvalue",
        ]
        .iter()
        .find_map(|key| parameter.get(*key));
        let Some(value) = value else {
            return;
        };
        if name == "is_suspicious" && is_true(value) {
            self.suspicious = true;
        }
        if self.parameters.get(name) != Some(value) {
            insert_keeping_both(&mut self.parameters, name.to_string(), value.clone());
        }
    }

    /// How a login went, if an event says: a failure anywhere wins over a success.
    fn login_outcome(&self) -> Option<&'static str> {
        let has = |name: &str| self.names.iter().any(|n| n == name);
        if has("login_failure") {
            Some("failure")
        } else if has("login_success") {
            Some("success")
        } else {
            None
        }
    }

    fn summary(&self) -> String {
        let what = match (self.login_outcome(), self.names.is_empty()) {
            (Some(outcome), _) => format!("login {outcome}"),
            (None, false) => self.names.join(", "),
            (None, true) => format!(
                "{} activity",
                self.application.as_deref().unwrap_or("gsuite")
            ),
        };
        let text = match &self.ip {
            Some(ip) => format!("{} {what} from {ip}", self.actor),
            None => format!("{} {what}", self.actor),
        };
        one_line(&text, SUMMARY_MAX_CHARS)
    }
}

/// `true` and `"true"` both count: exports and forwarders do not agree on the type.
fn is_true(value: &Value) -> bool {
    value.as_bool() == Some(true) || value.as_str() == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;
    use serde_json::json;

    const DEFENDA: &str = include_str!("../../events/defenda/sample_gsuite_login_event.json");
    const LOGINS: &str = include_str!("../../events/gsuite/logins.json");

    fn run(text: &str) -> (Verdict, Event) {
        process_json(&Gsuite, text)
    }

    fn logins() -> Vec<Event> {
        let Value::Array(records) = serde_json::from_str(LOGINS).unwrap() else {
            panic!("logins.json is an array")
        };
        records.iter().map(|r| run(&r.to_string()).1).collect()
    }

    #[test]
    fn defenda_login_sample_becomes_an_authentication_event() {
        let (verdict, event) = run(DEFENDA);
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.source, "gsuite");
        assert_eq!(event.category, "authentication");
        assert_eq!(
            event.summary,
            "someone@somewhere.com login success from 123.456.253.226"
        );
        assert_eq!(event.tags, ["login_success"]);
        assert_eq!(event.hostname, "");
        assert_eq!(event.severity, "INFO");
        assert_eq!(
            Value::Object(event.details["parameters"].as_object().unwrap().clone()),
            json!({"login_type": "exchange", "login_challenge_method": ["none"], "is_suspicious": false})
        );
        assert_eq!(event.details["id"]["time"], "2020-03-02T17:54:33.253Z");
    }

    #[test]
    fn sample_logins_give_outcomes_tags_and_suspicion() {
        let events = logins();
        let summaries: Vec<&str> = events.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "alice@example.com login success from 198.51.100.23",
                "bob@example.com login failure from 203.0.113.45",
                "bob@example.com login failure from 203.0.113.45",
                "bob@example.com login_challenge, suspicious_login from 203.0.113.45",
                "carol@example.com login success from 2001:db8:85a3::8a2e:370:7334",
                "alice@example.com logout from 198.51.100.23",
                "svc-reports@example.com login success",
            ]
        );
        let severities: Vec<&str> = events.iter().map(|e| e.severity.as_str()).collect();
        assert_eq!(
            severities,
            ["INFO", "INFO", "WARNING", "WARNING", "INFO", "INFO", "INFO"]
        );
        assert_eq!(events[2].tags, ["login_failure", "suspicious"]);
        assert_eq!(events[4].tags, ["login_verification", "login_success"]);
        assert_eq!(
            events[4].details["parameters"]["login_challenge_method"],
            json!(["totp"])
        );
        assert_eq!(
            events[4].details["parameters"]["login_challenge_method_2"],
            json!(["password", "totp"])
        );
        assert!(events.iter().all(|e| e.category == "authentication"));
    }

    #[test]
    fn missing_fields_still_give_a_sensible_summary() {
        let (_, event) = run(r#"{"kind": "admin#reports#activity"}"#);
        assert_eq!(event.summary, "unknown user gsuite activity");
        assert_eq!(event.category, "unknown");
        let (_, event) = run(
            r#"{"kind": "admin#reports#activity", "actor": {"profileId": 42},
                "events": [{"type": "login", "name": "login_failure"}]}"#,
        );
        assert_eq!(event.summary, "42 login failure");
        assert_eq!(event.category, "authentication");
    }

    #[test]
    fn odd_shapes_do_not_panic_and_are_read_as_far_as_they_go() {
        for text in [
            r#"{"kind": "admin#reports#activity", "events": "login_success"}"#,
            r#"{"kind": "admin#reports#activity", "events": [1, null, {"name": 5}]}"#,
            r#"{"kind": "admin#reports#activity", "events": [{"name": "x", "parameters": {"a": 1}}]}"#,
            r#"{"kind": "admin#reports#activity", "events": [{"name": "x", "parameters": [1, {"name": 2}, {"name": "n"}]}]}"#,
            r#"{"kind": "admin#reports#activity", "actor": "someone", "id": [], "ipAddress": {"v": 4}}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Changed, "{text}");
            assert!(!event.summary.is_empty(), "{text}");
            assert!(!event.details.contains_key("parameters"), "{text}");
        }
    }

    #[test]
    fn other_applications_use_their_name_as_category() {
        let (_, event) = run(
            r#"{"kind": "admin#reports#activity", "id": {"applicationName": "Drive"},
                "actor": {"email": "a@example.com"}, "ipAddress": "192.0.2.7",
                "events": [{"type": "access", "name": "download"}]}"#,
        );
        assert_eq!(event.category, "drive");
        assert_eq!(event.summary, "a@example.com download from 192.0.2.7");
    }

    #[test]
    fn is_suspicious_as_text_counts_and_a_records_own_source_is_kept() {
        let (_, event) = run(
            r#"{"kind": "admin#reports#activity", "source": "reports-poller",
                "events": [{"name": "login_success", "parameters": [{"name": "is_suspicious", "value": "true"}]}]}"#,
        );
        assert_eq!(event.severity, "WARNING");
        assert_eq!(event.source, "gsuite");
        assert_eq!(event.details["source"], "reports-poller");
    }

    #[test]
    fn other_kinds_are_unchanged() {
        for text in [
            r#"{"kind": "admin#directory#user"}"#,
            r#"{"kind": 7}"#,
            r#"{"kind": {"nested": true}}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Unchanged, "{text}");
            assert_eq!(event.source, "unknown");
        }
    }
}
