//! `syslog`: turns raw syslog lines (RFC 3164 and RFC 5424) into the shell, and tidies JSON
//! records that a syslog shipper already labelled `source: syslog`.
//!
//! Raw lines reach the pipeline as they were received or written:
//!
//! - RFC 3164 ("BSD"), as sent on the wire: `<34>Oct 11 22:14:15 mymachine su[123]: msg`;
//!   and as rsyslog/syslog-ng write it to files, without the `<PRI>`:
//!   `Apr 17 06:10:54 host sshd[42]: msg`. The time may also be RFC 3339, as rsyslog's
//!   high-precision file format writes it.
//! - RFC 5424: `<165>1 2003-10-11T22:14:15.003Z host app procid msgid [sd-id k="v"] msg`.
//!
//! The parsed line gives `source` = `syslog`, `category` = `syslog`, `hostname`, a summary
//! `<program>: <message>`, the shell severity from the syslog severity, and under `details`:
//! `facility` and `severity` (names, e.g. `auth`, `err`), `priority` (the number), `program`,
//! `pid`, `msgid`, `structured_data` (`{sd-id: {param: value}}`), `message` (the text after the
//! header) and `timestamp` (the header's time text, parsed by the `timestamp` plugin: this
//! plugin reads no clock). Fields a line does not have (no `<PRI>` in a file, `-` in RFC 5424)
//! are left out rather than guessed; without a `<PRI>` the severity stays `INFO`.
//!
//! A raw line that is not syslog is left alone (`details.message` holds it, unchanged).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::plugin::{Plugin, PluginError, Registration, Trigger, Verdict};
use crate::shell::{Event, RecordKind, insert_keeping_both};
use crate::sources::{
    SUMMARY_MAX_CHARS, claim, detail_text, into_one_line, not_dash, one_line, parser_registration,
};

/// RFC 3164 header: optional `<PRI>`, a BSD (`Oct  1 22:14:15`) or RFC 3339 time, the host,
/// then the tag and message (split by [`TAG`]), which are the text after the match and the
/// spaces that follow it.
///
/// This pattern, [`TAG`] and [`RFC5424`] are written so that at each byte only one way
/// through them is possible (the day `[ \d]?\d` as ` \d|\d\d?`; the spaces before the
/// rest and the message trimmed in code instead of by ` +` and ` ?`): `regex` then takes their
/// captures with its one-pass DFA rather than its backtracker, which cost more than the rest
/// of the syslog plugin. They match the header only: the rest of the line is whatever follows
/// the match, so it is not run through the automaton at all.
static RFC3164: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?s)^(?:<(?P<pri>\d{1,3})>)?(?P<time>[A-Z][a-z]{2} (?: \d|\d\d?) \d{2}:\d{2}:\d{2}(?:\.\d+)?|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) +(?P<host>\S+) ",
    )
    .expect("RFC 3164 pattern is valid")
});

/// The RFC 3164 tag: `program[pid]:` or `program:`; the message follows it, after one
/// optional space.
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^(?P<program>[^\s\[\]:]{1,64})(?:\[(?P<pid>[^\]\s]*)\])?:")
        .expect("tag pattern is valid")
});

/// Capture groups by number: `Captures::name` looks each name up in a hash map, which cost
/// more per line than the one-pass match itself. A test checks the numbers against the names.
mod group {
    /// [`super::RFC3164`] and [`super::RFC5424`].
    pub const PRI: usize = 1;
    pub const TIME: usize = 2;
    pub const HOST: usize = 3;
    /// [`super::RFC5424`] only.
    pub const APP: usize = 4;
    pub const PROCID: usize = 5;
    pub const MSGID: usize = 6;
    /// [`super::TAG`].
    pub const PROGRAM: usize = 1;
    pub const PID: usize = 2;
}

/// RFC 5424 header up to MSGID; structured data and message are parsed by hand after it.
static RFC5424: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?s)^<(?P<pri>\d{1,3})>[1-9]\d{0,2} (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+)(?: |$)",
    )
    .expect("RFC 5424 pattern is valid")
});

/// Facility names by code (RFC 5424 §6.2.1), as `rsyslog` and `logger` spell them.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Syslog severity names by code, and the shell severity each one maps to.
const SEVERITIES: [(&str, &str); 8] = [
    ("emerg", "CRITICAL"),
    ("alert", "CRITICAL"),
    ("crit", "CRITICAL"),
    ("err", "ERROR"),
    ("warning", "WARNING"),
    ("notice", "INFO"),
    ("info", "INFO"),
    ("debug", "DEBUG"),
];

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Syslog;

impl Plugin for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }

    /// Raw lines, and JSON that a shipper labelled `source: syslog`.
    fn registration(&self) -> Registration {
        parser_registration(vec![
            Trigger::RawLine,
            Trigger::Source("syslog".to_string()),
        ])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        Ok(match event.kind {
            RecordKind::Line => parse_line(event),
            RecordKind::Json if event.source == "syslog" => tidy_shipped(event),
            RecordKind::Json => Verdict::Unchanged,
        })
    }
}

/// One syslog line taken apart. Borrowed from the line; `None` where the line has no value.
#[derive(Debug, Default, PartialEq)]
struct Parsed<'a> {
    priority: Option<u8>,
    time: Option<&'a str>,
    host: Option<&'a str>,
    program: Option<&'a str>,
    pid: Option<&'a str>,
    msgid: Option<&'a str>,
    structured_data: Option<Map<String, Value>>,
    message: &'a str,
}

fn parse_line(event: &mut Event) -> Verdict {
    // Taken out while parsed (the parts borrow from it), put back if it is not syslog.
    let line = match event.details.remove("message") {
        Some(Value::String(line)) => line,
        Some(other) => {
            event.details.insert("message".into(), other);
            return Verdict::Unchanged;
        }
        None => return Verdict::Unchanged,
    };
    let Some(parsed) = parse_rfc5424(&line).or_else(|| parse_rfc3164(&line)) else {
        event.details.insert("message".into(), Value::String(line));
        return Verdict::Unchanged;
    };
    let mut fields = Map::new();
    if let Some(priority) = parsed.priority {
        fields.insert(
            "facility".into(),
            FACILITIES[usize::from(priority >> 3)].into(),
        );
        let (name, shell_severity) = SEVERITIES[usize::from(priority & 7)];
        fields.insert("severity".into(), name.into());
        fields.insert("priority".into(), priority.into());
        event.severity = shell_severity.to_string();
    }
    let optional = [
        ("program", parsed.program),
        ("pid", parsed.pid),
        ("msgid", parsed.msgid),
        ("timestamp", parsed.time),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            fields.insert(key.into(), value.into());
        }
    }
    if let Some(sd) = parsed.structured_data {
        fields.insert("structured_data".into(), Value::Object(sd));
    }
    event.summary = summary(parsed.program, parsed.message, parsed.host);
    event.hostname = parsed.host.unwrap_or_default().to_string();
    fields.insert("message".into(), parsed.message.into());
    for (key, value) in fields {
        insert_keeping_both(&mut event.details, key, value);
    }
    claim(event, "syslog", "syslog");
    Verdict::Changed
}

/// `<program>: <message>` on one line, or what there is of it.
fn summary(program: Option<&str>, message: &str, host: Option<&str>) -> String {
    let text = match (program, message.trim().is_empty()) {
        (Some(program), false) => {
            // Pieces pushed: `format!` cost more than the rest of the summary.
            let mut text = String::with_capacity(program.len() + 2 + message.len());
            text.push_str(program);
            text.push_str(": ");
            text.push_str(message);
            text
        }
        (Some(program), true) => format!("{program}: (empty message)"),
        (None, false) => message.to_string(),
        (None, true) => format!(
            "empty syslog message from {}",
            host.unwrap_or("unknown host")
        ),
    };
    into_one_line(text, SUMMARY_MAX_CHARS)
}

/// A `<PRI>` value, valid only up to 191 (facility 23, severity 7).
fn priority(text: &str) -> Option<u8> {
    text.parse::<u8>().ok().filter(|p| *p <= 191)
}

fn parse_rfc3164(line: &str) -> Option<Parsed<'_>> {
    let caps = RFC3164.captures(line)?;
    let priority = match caps.get(group::PRI) {
        Some(pri) => Some(priority(pri.as_str())?),
        None => None,
    };
    let host = caps.get(group::HOST)?;
    // A "host" ending in `:` is the tag: local programs writing to /dev/log send no host
    // (`<13>Oct 11 22:14:15 su[12]: msg`). A host never ends in `:`, even an IPv6 one.
    let (host, rest) = if host.as_str().ends_with(':') {
        (None, &line[host.start()..])
    } else {
        (
            Some(host.as_str()),
            line[caps.get(0)?.end()..].trim_start_matches(' '),
        )
    };
    let (program, pid, message) = match TAG.captures(rest) {
        Some(tag) => (
            tag.get(group::PROGRAM).map(|m| m.as_str()),
            tag.get(group::PID)
                .map(|m| m.as_str())
                .filter(|p| !p.is_empty()),
            {
                let message = &rest[tag.get(0).map_or(rest.len(), |m| m.end())..];
                message.strip_prefix(' ').unwrap_or(message)
            },
        ),
        None => (None, None, rest),
    };
    Some(Parsed {
        priority,
        time: caps.get(group::TIME).map(|m| m.as_str()),
        host,
        program,
        pid,
        message,
        ..Parsed::default()
    })
}

fn parse_rfc5424(line: &str) -> Option<Parsed<'_>> {
    let caps = RFC5424.captures(line)?;
    let priority = priority(caps.get(group::PRI)?.as_str())?;
    let rest = &line[caps.get(0)?.end()..];
    let (structured_data, message) = match rest.strip_prefix('-') {
        Some(after) => (None, after),
        None => match parse_structured_data(rest) {
            Some((sd, after)) => (Some(sd), after),
            // Not valid structured data: keep everything as the message rather than lose it.
            None => (None, rest),
        },
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let field = |group: usize| caps.get(group).and_then(|m| not_dash(m.as_str()));
    Some(Parsed {
        priority: Some(priority),
        time: field(group::TIME),
        host: field(group::HOST),
        program: field(group::APP),
        pid: field(group::PROCID),
        msgid: field(group::MSGID),
        structured_data,
        message,
    })
}

/// Parses RFC 5424 STRUCTURED-DATA (`[id k="v" …][id2 …]`) at the start of `text`; returns the
/// elements as `{id: {param: value}}` and the text after them. A parameter named twice in one
/// element keeps every value (as an array). `None` if `text` does not start with a valid
/// element.
fn parse_structured_data(text: &str) -> Option<(Map<String, Value>, &str)> {
    let mut elements = Map::new();
    let mut rest = text;
    while let Some(after_bracket) = rest.strip_prefix('[') {
        let id_end = after_bracket.find([' ', ']'])?;
        let id = &after_bracket[..id_end];
        if id.is_empty() {
            return None;
        }
        let mut params = Map::new();
        let mut cursor = &after_bracket[id_end..];
        loop {
            cursor = cursor.trim_start_matches(' ');
            if let Some(after) = cursor.strip_prefix(']') {
                cursor = after;
                break;
            }
            let eq = cursor.find('=')?;
            let name = &cursor[..eq];
            let (value, after) = quoted_value(cursor[eq + 1..].strip_prefix('"')?)?;
            add_param(&mut params, name, value);
            cursor = after;
        }
        insert_keeping_both(&mut elements, id.to_string(), Value::Object(params));
        rest = cursor;
    }
    (!elements.is_empty()).then_some((elements, rest))
}

/// Reads a PARAM-VALUE up to its closing quote, undoing the `\"`, `\\` and `\]` escapes.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\' | ']'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

fn add_param(params: &mut Map<String, Value>, name: &str, value: String) {
    match params.get_mut(name) {
        None => {
            params.insert(name.to_string(), Value::String(value));
        }
        Some(Value::Array(values)) => values.push(Value::String(value)),
        Some(first) => {
            let first = first.take();
            params.insert(
                name.to_string(),
                Value::Array(vec![first, Value::String(value)]),
            );
        }
    }
}

/// A JSON record a syslog shipper labelled `source: syslog` is already in the shell; fill in
/// what it left empty (hostname, summary) and tidy its summary onto one line. Its own category
/// (e.g. `monitoring`) is respected.
fn tidy_shipped(event: &mut Event) -> Verdict {
    let mut changed = false;
    if event.hostname.is_empty()
        && let Some(host) = detail_text(event, "hostname")
    {
        event.hostname = host.into_owned();
        changed = true;
    }
    let summary = if event.summary.trim().is_empty() {
        let program = detail_text(event, "program");
        let message = detail_text(event, "message").unwrap_or_default();
        summary(program.as_deref(), &message, Some(&event.hostname))
    } else {
        one_line(&event.summary, SUMMARY_MAX_CHARS)
    };
    if summary != event.summary {
        event.summary = summary;
        changed = true;
    }
    if changed {
        Verdict::Changed
    } else {
        Verdict::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{json_event, line_event};
    use serde_json::json;

    const AUTH_LOG: &str = include_str!("../../events/syslog/auth.log");
    const RFC5424_LOG: &str = include_str!("../../events/syslog/rfc5424.log");
    const SHIPPED: &str = include_str!("../../events/defenda/sample_syslog_sudo.json");

    #[test]
    fn group_numbers_are_those_of_the_named_groups() {
        let number = |regex: &Regex, name: &str| {
            regex.capture_names().position(|n| n == Some(name)).unwrap()
        };
        for regex in [&*RFC3164, &*RFC5424] {
            assert_eq!(number(regex, "pri"), group::PRI);
            assert_eq!(number(regex, "time"), group::TIME);
            assert_eq!(number(regex, "host"), group::HOST);
        }
        assert_eq!(number(&RFC5424, "app"), group::APP);
        assert_eq!(number(&RFC5424, "procid"), group::PROCID);
        assert_eq!(number(&RFC5424, "msgid"), group::MSGID);
        assert_eq!(number(&TAG, "program"), group::PROGRAM);
        assert_eq!(number(&TAG, "pid"), group::PID);
    }

    fn parsed(line: &str) -> (Verdict, Event) {
        let mut event = line_event(line);
        let verdict = Syslog.process(&mut event).unwrap();
        (verdict, event)
    }

    #[test]
    fn parses_rfc3164_with_priority_into_the_shell() {
        let (verdict, event) =
            parsed("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick");
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.source, "syslog");
        assert_eq!(event.category, "syslog");
        assert_eq!(event.hostname, "mymachine");
        assert_eq!(event.severity, "CRITICAL");
        assert_eq!(event.summary, "su: 'su root' failed for lonvick");
        let expected = json!({
            "facility": "auth", "severity": "crit", "priority": 34, "program": "su",
            "pid": "123", "timestamp": "Oct 11 22:14:15",
            "message": "'su root' failed for lonvick",
        });
        assert_eq!(Value::Object(event.details), expected);
    }

    #[test]
    fn parses_rfc3164_file_lines_without_priority_as_info() {
        let (_, event) = parsed("Apr  7 06:10:54 host sshd[42]: Failed password for root");
        assert_eq!(event.severity, "INFO");
        assert_eq!(event.details["timestamp"], "Apr  7 06:10:54");
        assert_eq!(event.details["program"], "sshd");
        assert!(event.details.get("facility").is_none());
        assert!(event.details.get("priority").is_none());
    }

    #[test]
    fn rfc3164_without_a_tag_keeps_the_rest_as_the_message() {
        let (_, event) = parsed("Oct 11 22:14:15 mymachine last message repeated 3 times");
        assert_eq!(event.hostname, "mymachine");
        assert!(event.details.get("program").is_none());
        assert_eq!(event.details["message"], "last message repeated 3 times");
        assert_eq!(event.summary, "last message repeated 3 times");
    }

    #[test]
    fn rfc3164_from_dev_log_without_a_host_keeps_the_tag() {
        let (_, event) =
            parsed("<86>Oct 11 22:14:15 sudo[991]: alice : TTY=pts/0 ; COMMAND=/bin/ls");
        assert_eq!(event.hostname, "");
        assert_eq!(event.details["program"], "sudo");
        assert_eq!(event.details["pid"], "991");
        assert_eq!(
            event.details["message"],
            "alice : TTY=pts/0 ; COMMAND=/bin/ls"
        );
        let (_, event) = parsed("Oct 11 22:14:15 kernel: [1.0] booted");
        assert_eq!(event.details["program"], "kernel");
        assert_eq!(event.summary, "kernel: [1.0] booted");
    }

    #[test]
    fn rfc3164_accepts_an_rfc3339_time() {
        let (_, event) = parsed("2026-04-17T06:10:54.123456+00:00 web-01 nginx: started");
        assert_eq!(
            event.details["timestamp"],
            "2026-04-17T06:10:54.123456+00:00"
        );
        assert_eq!(event.summary, "nginx: started");
    }

    #[test]
    fn every_line_of_the_auth_log_sample_parses_with_host_program_and_time() {
        for line in AUTH_LOG.lines() {
            let (verdict, event) = parsed(line);
            assert_eq!(verdict, Verdict::Changed, "{line}");
            assert!(
                ["bastion", "web-01"].contains(&event.hostname.as_str()),
                "{line}"
            );
            assert!(event.details["program"].is_string(), "{line}");
            assert!(
                event.details["timestamp"]
                    .as_str()
                    .unwrap()
                    .starts_with("Apr 17 "),
                "{line}"
            );
        }
        let (_, oom) = parsed(
            AUTH_LOG
                .lines()
                .find(|l| l.contains("Out of memory"))
                .unwrap(),
        );
        assert_eq!(oom.details["program"], "kernel");
        assert!(oom.details.get("pid").is_none());
        assert!(
            oom.summary
                .starts_with("kernel: [912345.678901] Out of memory: Killed process 4242")
        );
        let long = format!("Apr 17 06:10:54 web-01 app: {}", "x".repeat(500));
        let (_, long) = parsed(&long);
        assert_eq!(long.summary.chars().count(), SUMMARY_MAX_CHARS + 1);
        assert!(long.summary.ends_with('…'), "long messages are cut");
        assert_eq!(long.details["message"].as_str().unwrap().len(), 500);
        let (_, sudo) = parsed(
            AUTH_LOG
                .lines()
                .find(|l| l.contains("incorrect password"))
                .unwrap(),
        );
        assert_eq!(
            sudo.summary,
            "sudo: bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/cat /etc/shadow"
        );
    }

    #[test]
    fn parses_rfc5424_with_structured_data() {
        let first = RFC5424_LOG.lines().next().unwrap();
        let (verdict, event) = parsed(first);
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(event.hostname, "fw-01.example.com");
        assert_eq!(event.severity, "INFO");
        let expected = json!({
            "facility": "local4", "severity": "notice", "priority": 165,
            "program": "evntslog", "msgid": "ID47",
            "timestamp": "2026-04-17T06:20:00.003Z",
            "structured_data": {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}},
            "message": "An application event log entry",
        });
        assert_eq!(Value::Object(event.details), expected);
        assert_eq!(event.summary, "evntslog: An application event log entry");
    }

    #[test]
    fn rfc5424_sample_lines_give_severity_bom_free_messages_and_nil_fields() {
        let events: Vec<Event> = RFC5424_LOG.lines().map(|l| parsed(l).1).collect();
        let severities: Vec<&str> = events.iter().map(|e| e.severity.as_str()).collect();
        assert_eq!(
            severities,
            [
                "INFO", "CRITICAL", "INFO", "ERROR", "INFO", "CRITICAL", "INFO"
            ]
        );
        assert_eq!(
            events[1].details["message"],
            "'su root' failed for lonvick on /dev/pts/8"
        );
        assert_eq!(events[2].details["pid"], "2201");
        assert_eq!(events[2].details["facility"], "authpriv");
        assert_eq!(
            events[4].details["structured_data"],
            json!({"origin": {"ip": "198.51.100.7"}, "meta": {"sequenceId": "30", "sysUpTime": "37"}})
        );
        let nil_host = &events[6];
        assert_eq!(nil_host.hostname, "");
        assert_eq!(
            nil_host.details["structured_data"]["note"]["text"],
            r#"a "quoted" ] bracket"#
        );
        assert_eq!(nil_host.details["message"], "");
        assert_eq!(nil_host.summary, "backup: (empty message)");
    }

    #[test]
    fn rfc5424_repeated_params_keep_every_value_and_bad_sd_stays_in_the_message() {
        let (_, event) = parsed(r#"<14>1 - - app - - [x a="1" a="2" a="3"] m"#);
        assert_eq!(
            event.details["structured_data"]["x"]["a"],
            json!(["1", "2", "3"])
        );
        assert!(
            event.details.get("timestamp").is_none(),
            "nil time left out"
        );
        let (_, event) = parsed(r#"<14>1 - host app - - [unterminated a="1 rest"#);
        assert!(event.details.get("structured_data").is_none());
        assert_eq!(event.details["message"], r#"[unterminated a="1 rest"#);
    }

    #[test]
    fn lines_that_are_not_syslog_are_left_as_they_are() {
        for line in [
            "just some application output",
            "<999>Oct 11 22:14:15 host app: priority out of range",
            "<34>",
            "",
            "Oct 11 22:14:15",
            "{\"not\": \"json framed\"}",
        ] {
            let (verdict, event) = parsed(line);
            assert_eq!(verdict, Verdict::Unchanged, "{line:?}");
            assert_eq!(event.details["message"], line);
            assert_eq!(event.source, "unknown");
        }
    }

    #[test]
    fn a_line_record_without_a_message_is_unchanged() {
        let mut event = line_event("x");
        event.details.clear();
        assert_eq!(Syslog.process(&mut event).unwrap(), Verdict::Unchanged);
    }

    #[test]
    fn shipped_json_keeps_its_category_gets_a_hostname_and_a_one_line_summary() {
        let mut event = json_event(SHIPPED);
        assert!(Syslog.registration().matches(&event));
        assert_eq!(Syslog.process(&mut event).unwrap(), Verdict::Changed);
        assert_eq!(event.source, "syslog");
        assert_eq!(event.category, "monitoring");
        assert_eq!(event.hostname, "something.example.com");
        assert_eq!(
            event.summary,
            "nagios : TTY=unknown ; PWD=/ ; USER=root ; COMMAND=/usr/lib64/nagios/plugins/custom/check_auditd.sh"
        );
        assert_eq!(event.details["timestamp"], "Apr 17 06:10:54");
        assert_eq!(Syslog.process(&mut event).unwrap(), Verdict::Unchanged);
    }

    #[test]
    fn json_of_another_source_is_unchanged() {
        let mut event = json_event(r#"{"program": "cron", "message": "job done"}"#);
        assert_eq!(Syslog.process(&mut event).unwrap(), Verdict::Unchanged);
        assert_eq!(event.summary, "");
    }

    #[test]
    fn shipped_json_without_summary_gets_one_from_program_and_message() {
        let mut event = json_event(
            r#"{"source": "syslog", "program": "cron", "message": "job done", "hostname": 7}"#,
        );
        assert_eq!(Syslog.process(&mut event).unwrap(), Verdict::Changed);
        assert_eq!(event.summary, "cron: job done");
        assert_eq!(event.hostname, "7");
    }

    #[test]
    fn a_raw_lines_own_fields_are_never_overwritten_by_parsed_ones() {
        let mut event = line_event("<13>Oct 11 22:14:15 host app: hi");
        event
            .details
            .insert("program".into(), json!("from-elsewhere"));
        Syslog.process(&mut event).unwrap();
        assert_eq!(event.details["program"], "from-elsewhere");
        assert_eq!(event.details["program_2"], "app");
    }
}
