//! What each kind of destination receives for one delivery: the generic webhook's JSON (and
//! its HMAC-SHA256 signature), a Slack message, a PagerDuty event. SNS and the local topic get
//! the alerts-table line itself, as before there were destinations.

use hmac::{Hmac, Mac};
use lakewatch_detect::Alert;
use lakewatch_detect::alert::EVIDENCE_COLUMNS;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::Secret;
use crate::outbox::Delivery;

/// The header a signed webhook carries: `sha256=<hex of HMAC-SHA256(secret, body)>`, as
/// GitHub's `X-Hub-Signature-256`, so receivers can reuse their verification code.
pub const SIGNATURE_HEADER: &str = "X-Lakewatch-Signature";

/// The header that lets a webhook or Slack drop a delivery it already received: the delivery
/// id, the same on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Slack's Block Kit limits (<https://docs.slack.dev/reference/block-kit/blocks/header-block>,
/// <https://docs.slack.dev/reference/block-kit/blocks/section-block>): a header's text at most
/// 150 characters, a section's text 3000, each of at most 10 fields 2000.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_TEXT_MAX: usize = 3000;
const SLACK_FIELD_MAX: usize = 2000;

/// PagerDuty's `payload.summary` is at most 1024 characters, `source` and `dedup_key` 255
/// (<https://developer.pagerduty.com/docs/send-alert-event>).
const PAGERDUTY_SUMMARY_MAX: usize = 1024;
const PAGERDUTY_FIELD_MAX: usize = 255;

/// The alert a delivery carries.
pub fn alert_of(delivery: &Delivery) -> Result<Alert, String> {
    serde_json::from_str(&delivery.alert).map_err(|e| {
        format!(
            "delivery {}: the alert is not an alert line: {e}",
            delivery.id
        )
    })
}

/// The generic webhook's body: the delivery's ids and the alert as the alerts table has it.
pub fn webhook(delivery: &Delivery) -> Result<Vec<u8>, String> {
    let alert: Value = serde_json::from_str(&delivery.alert)
        .map_err(|e| format!("delivery {}: the alert is not JSON: {e}", delivery.id))?;
    Ok(serde_json::to_vec(&json!({
        "delivery_id": delivery.id,
        "destination": delivery.destination,
        "title": delivery.title,
        "alert": alert,
    }))
    .expect("JSON values serialize"))
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The link of a destination's `link` template for an alert: `{alertid}`, `{rule}`,
/// `{windowstart}` and `{windowend}` replaced by the alert's values (URL-safe as they are:
/// ids, rule ids and RFC 3339 times).
pub fn link(template: &str, alert: &Alert) -> String {
    template
        .replace("{alertid}", &alert.alertid)
        .replace("{rule}", &alert.rule)
        .replace("{windowstart}", &alert.windowstart)
        .replace("{windowend}", &alert.windowend)
}

/// What the alert is about: its non-evidence columns, `column=value`.
pub fn entity(alert: &Alert) -> String {
    alert
        .details
        .iter()
        .filter(|(column, value)| !EVIDENCE_COLUMNS.contains(&column.as_str()) && !value.is_null())
        .map(|(column, value)| match value {
            Value::String(text) => format!("{column}={text}"),
            other => format!("{column}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Slack incoming-webhook message
/// (<https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks>): `text` is the
/// notification's fallback, the blocks show title, summary, severity, rule, entity, time and
/// the link.
pub fn slack(delivery: &Delivery, link_template: Option<&str>) -> Result<Value, String> {
    let alert = alert_of(delivery)?;
    let field = |name: &str, value: &str| json!({"type": "mrkdwn", "text": cut(&format!("*{name}*\n{}", escape(value)), SLACK_FIELD_MAX)});
    let entity = entity(&alert);
    let mut fields = vec![
        field("Severity", &alert.severity),
        field("Rule", &alert.rule),
        field(
            "Time",
            &format!("{} to {}", alert.windowstart, alert.windowend),
        ),
    ];
    if !entity.is_empty() {
        fields.insert(2, field("Entity", &entity));
    }
    let mut context = format!("alert {}", alert.alertid);
    if let Some(template) = link_template {
        context.push_str(&format!(" | <{}|Open the query>", link(template, &alert)));
    }
    Ok(json!({
        "text": cut(
            &format!("[{}] {}: {}", alert.severity, delivery.title, alert.summary),
            SLACK_TEXT_MAX
        ),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&delivery.title, SLACK_HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(&escape(&alert.summary), SLACK_TEXT_MAX)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }))
}

/// A PagerDuty Events API v2 trigger (<https://developer.pagerduty.com/docs/send-alert-event>):
/// `dedup_key` is the alert id, so a retried delivery updates the same PagerDuty alert instead
/// of opening another.
pub fn pagerduty(
    delivery: &Delivery,
    routing_key: &Secret,
    link_template: Option<&str>,
) -> Result<Value, String> {
    let alert = alert_of(delivery)?;
    let entity = entity(&alert);
    let source = if entity.is_empty() {
        format!("lakewatch/{}", alert.rule)
    } else {
        entity
    };
    let mut event = json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": cut(&alert.alertid, PAGERDUTY_FIELD_MAX),
        "client": "lakewatch",
        "payload": {
            "summary": cut(&format!("{}: {}", delivery.title, alert.summary), PAGERDUTY_SUMMARY_MAX),
            "source": cut(&source, PAGERDUTY_FIELD_MAX),
            "severity": pagerduty_severity(&alert.severity),
            "timestamp": alert.windowend,
            "component": alert.rule,
            "class": alert.rule,
            "custom_details": {
                "alertid": alert.alertid,
                "windowstart": alert.windowstart,
                "windowend": alert.windowend,
                "eventids": alert.eventids,
                "details": alert.details,
            },
        },
    });
    if let Some(template) = link_template {
        event["links"] = json!([{"href": link(template, &alert), "text": "Open the query"}]);
    }
    Ok(event)
}

/// Rule severities onto PagerDuty's four (`critical`, `error`, `warning`, `info`).
pub fn pagerduty_severity(severity: &str) -> &'static str {
    match severity.to_ascii_uppercase().as_str() {
        "CRITICAL" => "critical",
        "HIGH" => "error",
        "MEDIUM" => "warning",
        _ => "info",
    }
}

/// Slack's mrkdwn control characters, escaped as its docs ask (`&`, `<`, `>`).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, the last one `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Status;
    use chrono::{DateTime, Utc};

    fn delivery(summary: &str) -> Delivery {
        let alert = json!({
            "utctimestamp": "2026-11-23T10:15:00.000000Z",
            "alertid": "a1b2",
            "rule": "brute-force-user",
            "severity": "HIGH",
            "summary": summary,
            "windowstart": "2026-11-23T10:00:00.000000Z",
            "windowend": "2026-11-23T10:15:00.000000Z",
            "eventids": ["e1", "e2"],
            "details": {"user": "erin@example.com", "event_count": "7", "ip": null},
        });
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:16:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Delivery {
            id: "d1".into(),
            destination: "x".into(),
            alert_id: "a1b2".into(),
            rule: "brute-force-user".into(),
            title: "Brute force against one user".into(),
            alert: alert.to_string(),
            created: at,
            status: Status::Pending,
            attempts: 0,
            next_attempt: at,
            last_error: None,
            done_at: None,
        }
    }

    fn string(value: &Value, pointer: &str) -> String {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{pointer} is not a string in {value}"))
            .to_string()
    }

    /// Field names and types of a Slack incoming-webhook message with Block Kit blocks, from
    /// <https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks> (`text`, and
    /// `blocks` as the fallback's richer form) and the block references: `header` with a
    /// `plain_text` text object of at most 150 characters, `section` with a `mrkdwn` text (at
    /// most 3000) or `fields` (at most 10 text objects of at most 2000), `context` with
    /// `elements` of text objects.
    #[test]
    fn slack_messages_follow_the_block_kit_schema() {
        let long = "x".repeat(5000);
        let message = slack(
            &delivery(&format!("erin <script> & {long}")),
            Some("https://console.aws.amazon.com/athena/home#/q?alert={alertid}"),
        )
        .unwrap();
        assert_eq!(
            message.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["blocks", "text"]
        );
        assert!(string(&message, "/text").starts_with("[HIGH] Brute force against one user: "));
        let blocks = message["blocks"].as_array().unwrap();
        for block in blocks {
            let kind = string(block, "/type");
            match kind.as_str() {
                "header" => {
                    assert_eq!(string(block, "/text/type"), "plain_text");
                    assert!(string(block, "/text/text").chars().count() <= SLACK_HEADER_MAX);
                }
                "section" => {
                    if let Some(text) = block.get("text") {
                        assert_eq!(string(text, "/type"), "mrkdwn");
                        let text = string(text, "/text");
                        assert!(text.chars().count() <= SLACK_TEXT_MAX);
                        assert!(text.starts_with("erin &lt;script&gt; &amp; "), "{text}");
                    } else {
                        let fields = block["fields"].as_array().unwrap();
                        assert!(fields.len() <= 10);
                        for field in fields {
                            assert_eq!(string(field, "/type"), "mrkdwn");
                            assert!(string(field, "/text").chars().count() <= SLACK_FIELD_MAX);
                        }
                    }
                }
                "context" => {
                    let elements = block["elements"].as_array().unwrap();
                    assert_eq!(string(&elements[0], "/type"), "mrkdwn");
                    assert_eq!(
                        string(&elements[0], "/text"),
                        "alert a1b2 | <https://console.aws.amazon.com/athena/home#/q?alert=a1b2|Open the query>"
                    );
                }
                other => panic!("unexpected block type {other}"),
            }
        }
        let fields: Vec<String> = blocks[2]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| string(f, "/text"))
            .collect();
        assert_eq!(
            fields,
            [
                "*Severity*\nHIGH",
                "*Rule*\nbrute-force-user",
                "*Entity*\nuser=erin@example.com",
                "*Time*\n2026-11-23T10:00:00.000000Z to 2026-11-23T10:15:00.000000Z",
            ]
        );
    }

    /// Field names and types of an Events API v2 trigger, from
    /// <https://developer.pagerduty.com/docs/send-alert-event>: `routing_key` (string, 32
    /// characters in PagerDuty's own keys), `event_action` one of trigger/acknowledge/resolve,
    /// `dedup_key` (string, at most 255), `payload.summary` (string, at most 1024),
    /// `payload.source` (string), `payload.severity` one of critical/error/warning/info,
    /// `payload.timestamp` (ISO 8601), optional `component`, `class`, `custom_details`
    /// (object), `client` (string) and `links` (objects with `href` and `text`).
    #[test]
    fn pagerduty_events_follow_the_events_api_v2_schema() {
        let event = pagerduty(
            &delivery(&"y".repeat(2000)),
            &Secret::new("R0UTINGKEY"),
            Some("https://example.com/a/{alertid}"),
        )
        .unwrap();
        let mut keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "client",
                "dedup_key",
                "event_action",
                "links",
                "payload",
                "routing_key"
            ]
        );
        assert_eq!(string(&event, "/routing_key"), "R0UTINGKEY");
        assert_eq!(string(&event, "/event_action"), "trigger");
        assert_eq!(string(&event, "/dedup_key"), "a1b2");
        let payload = &event["payload"];
        assert!(string(payload, "/summary").chars().count() <= PAGERDUTY_SUMMARY_MAX);
        assert_eq!(string(payload, "/source"), "user=erin@example.com");
        assert_eq!(string(payload, "/severity"), "error");
        assert!(
            DateTime::parse_from_rfc3339(&string(payload, "/timestamp")).is_ok(),
            "ISO 8601"
        );
        assert!(payload["custom_details"].is_object());
        assert_eq!(
            string(&event, "/links/0/href"),
            "https://example.com/a/a1b2"
        );
        assert_eq!(string(&event, "/links/0/text"), "Open the query");
        for severity in ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO", "whatever"] {
            assert!(
                ["critical", "error", "warning", "info"].contains(&pagerduty_severity(severity))
            );
        }
    }

    #[test]
    fn webhooks_carry_the_alert_and_a_verifiable_signature() {
        let body = webhook(&delivery("s")).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["delivery_id"], "d1");
        assert_eq!(value["alert"]["alertid"], "a1b2");
        // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?".
        assert_eq!(
            signature(&Secret::new("Jefe"), b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
