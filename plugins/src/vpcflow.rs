//! `vpcflow`: Amazon VPC flow log records as flat JSON objects, one per flow: the default
//! version 2 fields (`srcaddr`, `dstaddr`, `srcport`, `dstport`, `protocol`, `packets`,
//! `bytes`, `start`, `end`, `action`, `log_status`, `interface_id`, `account_id`).
//!
//! `log_status` and `interface_id` are accepted with underscores (as most converters write
//! them) or hyphens (`log-status`, as the flow log format spells them); values as numbers or
//! text (a record converted from the space-separated log has only strings; `-` is no value).
//! `start`/`end` are left for the `timestamp` plugin, the addresses for `ipaddress`.
//!
//! What this plugin sets:
//!
//! | field | value |
//! | --- | --- |
//! | `source` | `vpcflow` |
//! | `category` | `network` |
//! | `summary` | `ACCEPT tcp 198.51.100.1:443 -> 192.0.2.1:49152 (840 bytes)` (IPv6 as `[2001:db8::1]:443`); the protocol number is named (`tcp`, `udp`, `icmp`…, `proto 99` otherwise); a record without traffic (`log_status` `NODATA`/`SKIPDATA`) reads `NODATA flow log record for eni-…` |
//!
//! `hostname` stays empty and severity is not changed: whether a `REJECT` matters is a rule's
//! decision, not a parser's.

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::Event;
use crate::sources::{SUMMARY_MAX_CHARS, claim, first_logged_value, one_line, parser_registration};

/// IANA protocol numbers seen in flow logs, and their names.
const PROTOCOLS: [(&str, &str); 8] = [
    ("1", "icmp"),
    ("6", "tcp"),
    ("17", "udp"),
    ("47", "gre"),
    ("50", "esp"),
    ("51", "ah"),
    ("58", "icmpv6"),
    ("132", "sctp"),
];

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct VpcFlow;

impl Plugin for VpcFlow {
    fn name(&self) -> &'static str {
        "vpcflow"
    }

    fn registration(&self) -> Registration {
        parser_registration(vec![
            Trigger::Field("srcaddr".to_string()),
            Trigger::Field("log_status".to_string()),
            Trigger::Field("log-status".to_string()),
        ])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        // A field by either spelling; `-` counts as absent.
        let field = |name: &str| first_logged_value(event, &[name]);
        let src = field("srcaddr");
        let dst = field("dstaddr");
        // The only default fields whose names have a separator, in both spellings.
        let status = first_logged_value(event, &["log_status", "log-status"]);
        let interface = first_logged_value(event, &["interface_id", "interface-id"]);
        let is_flow = src.is_some() && dst.is_some();
        let is_empty_window = status.is_some() && interface.is_some();
        if !is_flow && !is_empty_window {
            return Ok(Verdict::Unchanged);
        }
        let summary = if is_flow {
            // IPv6 addresses are bracketed before a port, as in URLs: `[2001:db8::1]:443`.
            let endpoint = |address: Option<String>, port: Option<String>| {
                let address = address.unwrap_or_default();
                match port {
                    Some(port) if address.contains(':') => format!("[{address}]:{port}"),
                    Some(port) => format!("{address}:{port}"),
                    None => address,
                }
            };
            let protocol = field("protocol").map_or_else(
                || "ip".to_string(),
                |number| match PROTOCOLS.iter().find(|(n, _)| *n == number) {
                    Some((_, name)) => name.to_string(),
                    None => format!("proto {number}"),
                },
            );
            let mut text = format!(
                "{} {protocol} {} -> {}",
                field("action").unwrap_or_else(|| "FLOW".to_string()),
                endpoint(src, field("srcport")),
                endpoint(dst, field("dstport")),
            );
            if let Some(bytes) = field("bytes") {
                text.push_str(&format!(" ({bytes} bytes)"));
            }
            text
        } else {
            format!(
                "{} flow log record for {}",
                status.unwrap_or_default(),
                interface.unwrap_or_default()
            )
        };
        claim(event, "vpcflow", "network");
        event.summary = one_line(&summary, SUMMARY_MAX_CHARS);
        Ok(Verdict::Changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::process_json;

    const DEFENDA: &str = include_str!("../../events/defenda/sample_vpc_flow_log.json");
    const FLOWS: &str = include_str!("../../events/vpcflow/flows.ndjson");

    fn run(text: &str) -> (Verdict, Event) {
        process_json(&VpcFlow, text)
    }

    #[test]
    fn defenda_sample_becomes_a_network_event() {
        let (verdict, event) = run(DEFENDA);
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(
            (event.source.as_str(), event.category.as_str()),
            ("vpcflow", "network")
        );
        assert_eq!(
            event.summary,
            "ACCEPT tcp 198.51.100.1:443 -> 192.0.2.1:49152 (840 bytes)"
        );
        assert_eq!(event.hostname, "");
        assert_eq!(event.details["start"], "2014-12-14T04:06:50");
    }

    #[test]
    fn sample_flows_name_protocols_and_handle_text_values_and_nodata() {
        let summaries: Vec<String> = FLOWS.lines().map(|line| run(line).1.summary).collect();
        assert_eq!(
            summaries,
            [
                "ACCEPT tcp 198.51.100.23:50522 -> 10.0.1.15:22 (5120 bytes)",
                "REJECT tcp 203.0.113.45:41822 -> 10.0.1.15:22 (180 bytes)",
                "REJECT tcp 203.0.113.45:41823 -> 10.0.1.16:3389 (120 bytes)",
                "ACCEPT udp 10.0.1.15:53211 -> 192.0.2.53:53 (146 bytes)",
                "ACCEPT tcp 10.0.1.15:44120 -> 203.0.113.200:443 (26214400 bytes)",
                "ACCEPT icmp 192.0.2.77:0 -> 10.0.1.15:0 (336 bytes)",
                "ACCEPT tcp [2001:db8:1::25]:53312 -> [2001:db8:2::80]:80 (2048 bytes)",
                "NODATA flow log record for eni-0a1b2c3d4e5f60003",
            ]
        );
    }

    #[test]
    fn hyphenated_names_unknown_protocols_and_missing_parts() {
        let (_, event) = run(
            r#"{"srcaddr": "192.0.2.1", "dstaddr": "192.0.2.2", "protocol": 99, "log-status": "OK"}"#,
        );
        assert_eq!(event.summary, "FLOW proto 99 192.0.2.1 -> 192.0.2.2");
        let (_, event) = run(r#"{"interface-id": "eni-1", "log-status": "SKIPDATA"}"#);
        assert_eq!(event.summary, "SKIPDATA flow log record for eni-1");
    }

    #[test]
    fn records_of_other_shapes_are_unchanged() {
        for text in [
            r#"{"srcaddr": "192.0.2.1"}"#,
            r#"{"srcaddr": "-", "dstaddr": "-"}"#,
            r#"{"srcaddr": {"ip": "192.0.2.1"}, "dstaddr": ["192.0.2.2"]}"#,
            r#"{"log_status": "OK"}"#,
            r#"{"log_status": "OK", "interface_id": null}"#,
        ] {
            let (verdict, event) = run(text);
            assert_eq!(verdict, Verdict::Unchanged, "{text}");
            assert_eq!(event.source, "unknown");
        }
    }
}
