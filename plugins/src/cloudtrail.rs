//! `cloudtrail`: AWS CloudTrail records, as the trail writes them (framing splits the
//! `{"Records": [...]}` file into one record each) or wrapped by EventBridge
//! (`{"detail-type": "AWS API Call via CloudTrail", "detail": {...}}`).
//!
//! A record is recognised by `eventversion` with `eventname` or `eventsource` (at the top, or
//! under `detail` for EventBridge). Its time (`eventtime`) is left for the `timestamp` plugin,
//! its addresses (`sourceipaddress`) for the `ipaddress` plugin.
//!
//! What this plugin sets:
//!
//! | field | value |
//! | --- | --- |
//! | `source` | `cloudtrail` (an EventBridge envelope's own `source`, e.g. `aws.signin`, moves to `details.source`) |
//! | `category` | from [`CATEGORIES`], first matching row; `management` if none |
//! | `summary` | `<eventname> by <identity> from <ip>`, plus ` failed: <errorcode or errormessage>` when the call failed; ` from <ip>` is left out without an address |
//! | `severity` | `WARNING` for a failed `ConsoleLogin` and for access-denied errors (`AccessDenied`, `UnauthorizedOperation`, `*NotAuthorized*`, `*Forbidden*`); other errors (`NoSuchEntity`, throttling…) are routine and stay `INFO` |
//! | `tags` | `errorcode:<code>` when the call failed; `login_success` / `login_failure` for `ConsoleLogin` (the same tags as the `gsuite` plugin, so one rule covers both) |
//!
//! The identity is the first of `useridentity.arn`, `.username`, `.principalid`, `.invokedby`,
//! `.type` that is present (`unknown identity` otherwise). `hostname` stays empty.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::Event;
use crate::sources::{
    SUMMARY_MAX_CHARS, claim, into_one_line, parser_registration, raise_severity, text,
};

/// What a row of [`CATEGORIES`] matches on.
#[derive(Debug, Clone, Copy)]
pub enum Match {
    /// `eventname` is one of these.
    EventName(&'static [&'static str]),
    /// `eventsource` is one of these.
    EventSource(&'static [&'static str]),
    /// `eventsource` is the first, and `eventname` contains one of the others.
    NameFromSource(&'static str, &'static [&'static str]),
    /// `eventcategory` (`Management`, `Data`, `Insight`) is this.
    EventCategory(&'static str),
}

/// The category of a CloudTrail event: the first row that matches decides.
pub const CATEGORIES: &[(Match, &str)] = &[
    (
        Match::EventName(&[
            "ConsoleLogin",
            "CheckMfa",
            "GetSigninToken",
            "SwitchRole",
            "ExternalIdPDirectoryLogin",
            "UserAuthentication",
            "CredentialChallenge",
            "CredentialVerification",
        ]),
        "authentication",
    ),
    // Sign-in, and every STS call that hands out credentials (AssumeRole*, GetSessionToken,
    // GetFederationToken): who became whom is authentication.
    (
        Match::EventSource(&[
            "signin.amazonaws.com",
            "sts.amazonaws.com",
            "sso.amazonaws.com",
        ]),
        "authentication",
    ),
    (
        Match::EventSource(&[
            "iam.amazonaws.com",
            "identitystore.amazonaws.com",
            "sso-directory.amazonaws.com",
        ]),
        "iam",
    ),
    (Match::EventSource(&["s3.amazonaws.com"]), "storage"),
    (
        Match::NameFromSource(
            "ec2.amazonaws.com",
            &[
                "SecurityGroup",
                "NetworkAcl",
                "Vpc",
                "Subnet",
                "Route",
                "Gateway",
            ],
        ),
        "network",
    ),
    // Changes to the audit trail itself (StopLogging, DeleteTrail, detectors, recorders).
    (
        Match::EventSource(&[
            "cloudtrail.amazonaws.com",
            "config.amazonaws.com",
            "guardduty.amazonaws.com",
        ]),
        "audit",
    ),
    (Match::EventCategory("Data"), "data"),
    (Match::EventCategory("Insight"), "insight"),
];

/// Category of an event no row of [`CATEGORIES`] matches: a control-plane call.
pub const DEFAULT_CATEGORY: &str = "management";

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudTrail;

impl Plugin for CloudTrail {
    fn name(&self) -> &'static str {
        "cloudtrail"
    }

    fn registration(&self) -> Registration {
        parser_registration(vec![
            Trigger::Field("eventversion".to_string()),
            Trigger::Field("detail.eventversion".to_string()),
        ])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let wrapped = event.details.get("detail").and_then(Value::as_object);
        let Some(record) = Trail::read(&event.details).or_else(|| wrapped.and_then(Trail::read))
        else {
            return Ok(Verdict::Unchanged);
        };
        let category = record.category();
        let summary = record.summary();
        let failed_login = record.name == "ConsoleLogin" && record.failed();
        let login_tag = (record.name == "ConsoleLogin").then(|| {
            if record.failed() {
                "login_failure"
            } else {
                "login_success"
            }
        });
        let error_tag = record.error_code.as_ref().map(|c| format!("errorcode:{c}"));
        let denied = record.error_code.as_deref().is_some_and(is_access_denied);
        claim(event, "cloudtrail", category);
        event.summary = summary;
        if failed_login || denied {
            raise_severity(event, "WARNING");
        }
        for tag in login_tag.into_iter().chain(error_tag.as_deref()) {
            event.add_tag(tag);
        }
        Ok(Verdict::Changed)
    }
}

/// The fields of one CloudTrail record that the shell needs, owned so the event can change.
#[derive(Debug)]
struct Trail {
    name: String,
    source: Option<String>,
    event_category: Option<String>,
    identity: String,
    ip: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    console_login: Option<String>,
}

impl Trail {
    /// Reads the record whose fields are the keys of `record` (`details`, or `details.detail`
    /// for EventBridge); `None` when it is not a CloudTrail record.
    fn read(record: &Map<String, Value>) -> Option<Self> {
        // `path` is a key and the keys below it, as in `["useridentity", "arn"]`.
        let at = |path: &[&str]| -> Option<String> {
            let (first, below) = path.split_first()?;
            let value = below
                .iter()
                .try_fold(record.get(*first)?, |value, key| value.get(key))?;
            text(value).map(Cow::into_owned)
        };
        let field = |key: &str| at(&[key]);
        field("eventversion")?;
        let name = field("eventname");
        let source = field("eventsource");
        if name.is_none() && source.is_none() {
            return None;
        }
        let identity = ["arn", "username", "principalid", "invokedby", "type"]
            .iter()
            .find_map(|key| at(&["useridentity", key]))
            .unwrap_or_else(|| "unknown identity".to_string());
        Some(Trail {
            name: name.unwrap_or_else(|| "(no eventname)".to_string()),
            source,
            event_category: field("eventcategory"),
            identity,
            ip: field("sourceipaddress"),
            error_code: field("errorcode"),
            error_message: field("errormessage"),
            console_login: at(&["responseelements", "consolelogin"]),
        })
    }

    /// Whether the call failed: an error code, or a console sign-in answered `Failure`.
    fn failed(&self) -> bool {
        self.error_code.is_some() || self.console_login.as_deref() == Some("Failure")
    }

    fn category(&self) -> &'static str {
        let source = self.source.as_deref().unwrap_or_default();
        let category = self.event_category.as_deref().unwrap_or_default();
        CATEGORIES
            .iter()
            .find(|(rule, _)| match rule {
                Match::EventName(names) => names.contains(&self.name.as_str()),
                Match::EventSource(sources) => sources.contains(&source),
                Match::NameFromSource(from, parts) => {
                    source == *from
                        && parts
                            .iter()
                            .any(|part| crate::bytewise::contains_short(&self.name, part))
                }
                Match::EventCategory(wanted) => category == *wanted,
            })
            .map_or(DEFAULT_CATEGORY, |(_, category)| category)
    }

    fn summary(&self) -> String {
        let mut text = String::with_capacity(self.name.len() + 4 + self.identity.len() + 64);
        text.push_str(&self.name);
        text.push_str(" by ");
        text.push_str(&self.identity);
        if let Some(ip) = &self.ip {
            text.push_str(" from ");
            text.push_str(ip);
        }
        if self.failed() {
            let reason = self
                .error_code
                .as_deref()
                .or(self.error_message.as_deref())
                .unwrap_or("Failure");
            text.push_str(" failed: ");
            text.push_str(reason);
        }
        into_one_line(text, SUMMARY_MAX_CHARS)
    }
}

/// Error codes that mean "not allowed", as opposed to routine failures.
fn is_access_denied(code: &str) -> bool {
    ["AccessDenied", "Unauthorized", "NotAuthorized", "Forbidden"]
        .iter()
        .any(|part| crate::bytewise::contains_short(code, part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;

    const DEFENDA: &str =
        include_str!("../../events/defenda/sample_cloudtrail_create_log_stream.json");
    const CONSOLE_LOGINS: &str = include_str!("../../events/cloudtrail/console-logins.json");

    fn run(text: &str) -> (Verdict, Event) {
        process_json(&CloudTrail, text)
    }

    fn sample_events() -> Vec<Event> {
        let file: Value = serde_json::from_str(CONSOLE_LOGINS).unwrap();
        file["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| run(&r.to_string()).1)
            .collect()
    }

    #[test]
    fn defenda_sample_in_shell_form_is_recognised_under_details() {
        let (verdict, event) = run(DEFENDA);
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.source, "cloudtrail");
        assert_eq!(event.category, "management");
        assert_eq!(
            event.summary,
            "CreateLogStream by arn:aws:sts::123456789012:assumed-role/some_lambda-us-west-2-lambdaRole/some_lambda from 54.21.12.27"
        );
        assert!(event.tags.is_empty());
        assert!(
            !event.details.contains_key("source"),
            "same source: nothing moved"
        );
    }

    #[test]
    fn sample_trail_gives_categories_summaries_severities_and_tags() {
        let events = sample_events();
        let rows: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|e| (e.category.as_str(), e.severity.as_str(), e.summary.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "authentication",
                    "INFO",
                    "ConsoleLogin by arn:aws:iam::111122223333:user/alice from 198.51.100.23"
                ),
                (
                    "authentication",
                    "WARNING",
                    "ConsoleLogin by bob from 203.0.113.45 failed: Failed authentication"
                ),
                (
                    "authentication",
                    "WARNING",
                    "ConsoleLogin by HIDDEN_DUE_TO_SECURITY_REASONS from 203.0.113.45 failed: No username found in supplied account"
                ),
                (
                    "authentication",
                    "INFO",
                    "ConsoleLogin by arn:aws:iam::111122223333:root from 2001:db8::4a:1"
                ),
                (
                    "authentication",
                    "INFO",
                    "AssumeRole by arn:aws:iam::111122223333:user/alice from 198.51.100.23"
                ),
                (
                    "authentication",
                    "INFO",
                    "AssumeRole by lambda.amazonaws.com from lambda.amazonaws.com"
                ),
                (
                    "storage",
                    "INFO",
                    "GetObject by arn:aws:sts::111122223333:assumed-role/deploy-readonly/alice-cli from 198.51.100.23"
                ),
                (
                    "iam",
                    "WARNING",
                    "CreateAccessKey by arn:aws:sts::111122223333:assumed-role/deploy-readonly/alice-cli from 198.51.100.23 failed: AccessDenied"
                ),
                (
                    "audit",
                    "INFO",
                    "StopLogging by arn:aws:iam::111122223333:user/mallory from 203.0.113.45"
                ),
            ]
        );
        assert_eq!(events[0].tags, ["login_success"]);
        assert_eq!(events[1].tags, ["login_failure"]);
        assert_eq!(events[7].tags, ["errorcode:AccessDenied"]);
        assert!(events.iter().all(|e| e.source == "cloudtrail"));
        assert_eq!(events[0].details["eventtime"], "2026-04-17T08:15:02Z");
    }

    #[test]
    fn category_table_cases() {
        let cases = [
            ("ConsoleLogin", None, None, "authentication"),
            (
                "GetSessionToken",
                Some("sts.amazonaws.com"),
                None,
                "authentication",
            ),
            ("CreateUser", Some("iam.amazonaws.com"), None, "iam"),
            (
                "PutObject",
                Some("s3.amazonaws.com"),
                Some("Data"),
                "storage",
            ),
            (
                "AuthorizeSecurityGroupIngress",
                Some("ec2.amazonaws.com"),
                None,
                "network",
            ),
            (
                "RunInstances",
                Some("ec2.amazonaws.com"),
                None,
                "management",
            ),
            (
                "DeleteTrail",
                Some("cloudtrail.amazonaws.com"),
                None,
                "audit",
            ),
            ("Invoke", Some("lambda.amazonaws.com"), Some("Data"), "data"),
            (
                "ApiCallRateInsight",
                Some("ec2.amazonaws.com"),
                Some("Insight"),
                "insight",
            ),
            (
                "DescribeTable",
                Some("dynamodb.amazonaws.com"),
                None,
                "management",
            ),
        ];
        for (name, source, category, expected) in cases {
            let trail = Trail {
                name: name.to_string(),
                source: source.map(str::to_string),
                event_category: category.map(str::to_string),
                identity: String::new(),
                ip: None,
                error_code: None,
                error_message: None,
                console_login: None,
            };
            assert_eq!(trail.category(), expected, "{name} {source:?}");
        }
    }

    #[test]
    fn eventbridge_wrapped_records_are_read_under_detail_and_keep_the_envelope_source() {
        let (verdict, event) = run(
            r#"{"version": "0", "detail-type": "AWS Console Sign In via CloudTrail",
                "source": "aws.signin", "time": "2026-04-17T08:15:02Z",
                "detail": {"eventVersion": "1.10", "eventName": "ConsoleLogin",
                           "eventSource": "signin.amazonaws.com",
                           "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
                           "sourceIPAddress": "192.0.2.44",
                           "responseElements": {"ConsoleLogin": "Success"}}}"#,
        );
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.source, "cloudtrail");
        assert_eq!(event.details["source"], "aws.signin");
        assert_eq!(
            event.summary,
            "ConsoleLogin by arn:aws:iam::111122223333:root from 192.0.2.44"
        );
    }

    #[test]
    fn missing_identity_and_address_still_give_a_summary() {
        let (_, event) = run(r#"{"eventVersion": "1.08", "eventSource": "kms.amazonaws.com"}"#);
        assert_eq!(event.summary, "(no eventname) by unknown identity");
        let (_, event) = run(
            r#"{"eventVersion": 1.08, "eventName": "ListBuckets", "userIdentity": "weird",
                "errorCode": "ThrottlingException"}"#,
        );
        assert_eq!(
            event.summary,
            "ListBuckets by unknown identity failed: ThrottlingException"
        );
        assert_eq!(event.severity, "INFO", "routine errors are not raised");
        assert_eq!(event.tags, ["errorcode:ThrottlingException"]);
    }

    #[test]
    fn records_of_other_shapes_are_unchanged() {
        for text in [
            r#"{"eventVersion": "1.08"}"#,
            r#"{"eventVersion": {"major": 1}, "eventName": "X"}"#,
            r#"{"eventversion": null, "eventname": "X"}"#,
            r#"{"detail": {"eventVersion": "1"}}"#,
            r#"{"detail": "eventVersion", "eventName": "X"}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Unchanged, "{text}");
            assert_eq!(event.source, "unknown");
        }
    }

    #[test]
    fn access_denied_family_is_recognised() {
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "Client.UnauthorizedOperation",
            "NotAuthorizedException",
            "Forbidden",
        ] {
            assert!(is_access_denied(code), "{code}");
        }
        for code in ["NoSuchEntity", "ThrottlingException", "ValidationError"] {
            assert!(!is_access_denied(code), "{code}");
        }
    }
}
