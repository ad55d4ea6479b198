//! `cloudfront`: Amazon CloudFront standard access log entries as flat JSON objects, one per
//! request, with the log's own field names (`date`, `time`, `c-ip`, `cs-method`,
//! `cs-uri-stem`, `cs-uri-query`, `sc-status`, `x-edge-request-id`, `x-host-header`…; keys such
//! as `cs(Host)` arrive lower-cased as `cs(host)`). `-` means no value.
//!
//! A record is recognised by `x-edge-request-id` or `x-edge-location` together with at least
//! one of `cs-method`, `cs-uri-stem`, `sc-status`. `date` + `time` are left for the `timestamp`
//! plugin, `c-ip` and `x-forwarded-for` for `ipaddress`.
//!
//! What this plugin sets:
//!
//! | field | value |
//! | --- | --- |
//! | `source` | `cloudfront` |
//! | `category` | `web` |
//! | `summary` | `GET /wp-login.php 404 from 203.0.113.45` (the query string is kept, after `?`: probes live there) |
//! | `hostname` | the site asked for: `x-host-header`, else `cs(host)` |
//!
//! Severity is not changed: a 404 is a rule's business.

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::Event;
use crate::sources::{SUMMARY_MAX_CHARS, claim, first_logged_value, one_line, parser_registration};

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudFront;

impl Plugin for CloudFront {
    fn name(&self) -> &'static str {
        "cloudfront"
    }

    fn registration(&self) -> Registration {
        parser_registration(vec![
            Trigger::Field("x-edge-request-id".to_string()),
            Trigger::Field("x-edge-location".to_string()),
        ])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let field = |names: &[&str]| first_logged_value(event, names);
        let method = field(&["cs-method"]);
        let stem = field(&["cs-uri-stem"]);
        let status = field(&["sc-status"]);
        if method.is_none() && stem.is_none() && status.is_none() {
            return Ok(Verdict::Unchanged);
        }
        let mut summary = format!(
            "{} {}",
            method.as_deref().unwrap_or("(no method)"),
            stem.as_deref().unwrap_or("/")
        );
        if let Some(query) = field(&["cs-uri-query"]) {
            summary.push('?');
            summary.push_str(&query);
        }
        if let Some(status) = status {
            summary.push(' ');
            summary.push_str(&status);
        }
        if let Some(client) = field(&["c-ip"]) {
            summary.push_str(" from ");
            summary.push_str(&client);
        }
        let host = field(&["x-host-header", "cs(host)"]);
        claim(event, "cloudfront", "web");
        event.summary = one_line(&summary, SUMMARY_MAX_CHARS);
        if let Some(host) = host {
            event.hostname = host;
        }
        Ok(Verdict::Changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;

    const DEFENDA: &str =
        include_str!("../../events/defenda/sample_cloudfront_wordpress_probe.json");
    const ACCESS: &str = include_str!("../../events/cloudfront/access.ndjson");

    fn run(text: &str) -> (Verdict, Event) {
        process_json(&CloudFront, text)
    }

    #[test]
    fn defenda_wordpress_probe_becomes_a_web_event() {
        let (verdict, event) = run(DEFENDA);
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(
            (event.source.as_str(), event.category.as_str()),
            ("cloudfront", "web")
        );
        assert_eq!(event.summary, "GET /wp-login.php 301 from 139.59.66.23");
        assert_eq!(event.hostname, "somewhere.com");
        assert_eq!(event.details["date"], "2020-09-01");
        assert_eq!(event.details["cs(host)"], "c4ixl1pp8t7hvm.cloudfront.net");
    }

    #[test]
    fn sample_access_log_summaries_and_hosts() {
        let events: Vec<Event> = ACCESS.lines().map(|line| run(line).1).collect();
        let summaries: Vec<&str> = events.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "GET /index.html 200 from 198.51.100.23",
                "GET /wp-login.php 404 from 203.0.113.45",
                "POST /xmlrpc.php 403 from 203.0.113.45",
                "GET /.env 404 from 203.0.113.45",
                "GET /search?q=%27%20OR%201=1-- 200 from 2001:db8:7::1",
                "GET /api/health 502 from 198.51.100.99",
            ]
        );
        assert_eq!(events[5].hostname, "api.example.com");
        assert_eq!(events[0].hostname, "www.example.com");
    }

    #[test]
    fn missing_and_dash_fields_still_give_a_summary() {
        let (_, event) = run(
            r#"{"x-edge-location": "IAD89-P1", "sc-status": 500, "c-ip": "-", "x-host-header": "-", "cs(Host)": "d1.cloudfront.net"}"#,
        );
        assert_eq!(event.summary, "(no method) / 500");
        assert_eq!(event.hostname, "d1.cloudfront.net");
    }

    #[test]
    fn records_of_other_shapes_are_unchanged() {
        for text in [
            r#"{"x-edge-request-id": "abc"}"#,
            r#"{"x-edge-location": "IAD89-P1", "cs-method": "-", "sc-status": null}"#,
            r#"{"x-edge-location": "IAD89-P1", "cs-method": {"verb": "GET"}}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Unchanged, "{text}");
            assert_eq!(event.source, "unknown");
        }
    }
}
