//! `authentication`: one shape for login attempts of every source, so detection rules (brute
//! force, impossible travel, new country, new device) are written once.
//!
//! Sets `details.auth` = `{user, outcome, service}` where `outcome` is `success` or `failure`:
//!
//! | source | recognised | user | outcome |
//! | --- | --- | --- | --- |
//! | `gsuite` | events `login_success`, `login_failure` | `actor.email` | from the event name (a failure wins) |
//! | `cloudtrail` | `eventname` `ConsoleLogin` | `useridentity.username`, else the last part of `useridentity.arn` | `responseelements.consolelogin` (`Success`/`Failure`) |
//! | `syslog` | `sshd`: `Accepted <method> for <user>`, `Failed <method> for [invalid user] <user>` | the user | accepted / failed |
//! | `syslog` | `sudo`: `pam_unix(sudo:auth): authentication failure; … user=<user>`, `<user> : N incorrect password attempts` | the user | failure |
//!
//! For sshd the address a login came from is only in the message text: it is set as
//! `details.sourceipaddress` (when not already set), so the `ipaddress` plugin, which runs next,
//! validates and collects it and GeoIP places it. Other events are left unchanged. Runs after
//! the source parsers and before the address and GeoIP enrichment.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::Event;

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Authentication;

/// A login attempt as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    user: String,
    success: bool,
    service: &'static str,
    /// Where the attempt came from, when only the message says so (sshd).
    address: Option<String>,
}

impl Plugin for Authentication {
    fn name(&self) -> &'static str {
        "authentication"
    }

    fn registration(&self) -> Registration {
        Registration::new(
            Stage::Enrich,
            -10,
            vec![
                Trigger::Source("gsuite".into()),
                Trigger::Source("cloudtrail".into()),
                Trigger::Source("syslog".into()),
            ],
        )
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let attempt = match event.source.as_str() {
            "gsuite" => gsuite_attempt(event),
            "cloudtrail" => cloudtrail_attempt(event),
            "syslog" => syslog_attempt(event),
            _ => None,
        };
        let Some(attempt) = attempt else {
            return Ok(Verdict::Unchanged);
        };
        record_login(event, &attempt.user, attempt.success, attempt.service);
        if let Some(address) = attempt.address
            && !event.details.contains_key("sourceipaddress")
        {
            event
                .details
                .insert("sourceipaddress".into(), Value::String(address));
        }
        Ok(Verdict::Changed)
    }
}

/// Writes a login attempt in the one shape the rules read: `details.auth` = `{user, outcome,
/// service}` and the tag `login_success` or `login_failure`. Declarative sources with an
/// `[auth]` table write their logins with it too.
pub fn record_login(event: &mut Event, user: &str, success: bool, service: &str) {
    let outcome = if success { "success" } else { "failure" };
    event.details.insert(
        "auth".into(),
        json!({"user": user, "outcome": outcome, "service": service}),
    );
    event.add_tag(&format!("login_{outcome}"));
}

fn gsuite_attempt(event: &Event) -> Option<Attempt> {
    let names: Vec<&str> = event
        .detail("events")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("name")?.as_str())
        .collect();
    let success = if names.contains(&"login_failure") {
        false
    } else if names.contains(&"login_success") {
        true
    } else {
        return None;
    };
    Some(Attempt {
        user: event.detail_str("actor.email")?.to_lowercase(),
        success,
        service: "gsuite",
        address: None,
    })
}

fn cloudtrail_attempt(event: &Event) -> Option<Attempt> {
    if event.detail_str("eventname") != Some("ConsoleLogin") {
        return None;
    }
    let success = match event.detail_str("responseelements.consolelogin")? {
        "Success" => true,
        "Failure" => false,
        _ => return None,
    };
    let user = event
        .detail_str("useridentity.username")
        .map(String::from)
        .or_else(|| {
            let arn = event.detail_str("useridentity.arn")?;
            Some(arn.rsplit(['/', ':']).next()?.to_string())
        })?;
    Some(Attempt {
        user,
        success,
        service: "aws-console",
        address: None,
    })
}

static SSHD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(Accepted|Failed) \S+ for (?:invalid user )?(\S+) from (\S+)")
        .expect("valid regex")
});
static SUDO_PAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^pam_unix\(sudo:auth\): authentication failure;.*\buser=(\S+)")
        .expect("valid regex")
});
static SUDO_ATTEMPTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(\S+) : \d+ incorrect password attempts?").expect("valid regex")
});

fn syslog_attempt(event: &Event) -> Option<Attempt> {
    let program = event.detail_str("program")?;
    let message = event.detail("message").and_then(Value::as_str)?;
    match program {
        "sshd" => {
            let captures = SSHD.captures(message)?;
            Some(Attempt {
                user: captures[2].to_string(),
                success: &captures[1] == "Accepted",
                service: "sshd",
                address: Some(captures[3].to_string()),
            })
        }
        "sudo" => {
            let captures = SUDO_PAM
                .captures(message)
                .or_else(|| SUDO_ATTEMPTS.captures(message))?;
            Some(Attempt {
                user: captures[1].to_string(),
                success: false,
                service: "sudo",
                address: None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Origin;
    use chrono::Utc;
    use serde_json::json;

    fn event(source: &str, details: Value) -> Event {
        let Value::Object(details) = details else {
            panic!("details are an object")
        };
        let mut event = Event::from_json(
            Default::default(),
            "",
            Origin {
                container: "t",
                position: 0,
            },
            Utc::now(),
        );
        event.source = source.into();
        event.details = details;
        event
    }

    fn auth(mut event: Event) -> Option<Value> {
        match Authentication.process(&mut event).unwrap() {
            Verdict::Changed => Some(event.details["auth"].clone()),
            _ => None,
        }
    }

    #[test]
    fn gsuite_logins_with_a_failure_winning() {
        let success = event(
            "gsuite",
            json!({"actor": {"email": "Alice@Example.com"}, "events": [{"name": "login_success"}]}),
        );
        assert_eq!(
            auth(success),
            Some(json!({"user": "alice@example.com", "outcome": "success", "service": "gsuite"}))
        );
        let mixed = event(
            "gsuite",
            json!({"actor": {"email": "a@example.com"}, "events": [{"name": "login_success"}, {"name": "login_failure"}]}),
        );
        assert_eq!(auth(mixed).unwrap()["outcome"], "failure");
        let logout = event(
            "gsuite",
            json!({"actor": {"email": "a@example.com"}, "events": [{"name": "logout"}]}),
        );
        assert_eq!(auth(logout), None);
    }

    #[test]
    fn cloudtrail_console_logins() {
        let failure = event(
            "cloudtrail",
            json!({"eventname": "ConsoleLogin", "responseelements": {"consolelogin": "Failure"},
                   "useridentity": {"arn": "arn:aws:iam::123456789012:user/bob"}}),
        );
        assert_eq!(
            auth(failure),
            Some(json!({"user": "bob", "outcome": "failure", "service": "aws-console"}))
        );
        let other = event("cloudtrail", json!({"eventname": "GetObject"}));
        assert_eq!(auth(other), None);
    }

    #[test]
    fn sshd_and_sudo_lines() {
        let accepted = event(
            "syslog",
            json!({"program": "sshd", "message": "Accepted publickey for alice from 198.51.100.23 port 50522 ssh2"}),
        );
        assert_eq!(auth(accepted).unwrap()["user"], "alice");
        let invalid = event(
            "syslog",
            json!({"program": "sshd", "message": "Failed password for invalid user admin from 203.0.113.45 port 41822 ssh2"}),
        );
        let mut failed = invalid.clone();
        assert_eq!(
            auth(invalid),
            Some(json!({"user": "admin", "outcome": "failure", "service": "sshd"}))
        );
        Authentication.process(&mut failed).unwrap();
        assert_eq!(failed.details["sourceipaddress"], "203.0.113.45");
        let sudo = event(
            "syslog",
            json!({"program": "sudo", "message": "pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/0 ruser=bob rhost=  user=bob"}),
        );
        assert_eq!(auth(sudo).unwrap()["service"], "sudo");
        let attempts = event(
            "syslog",
            json!({"program": "sudo", "message": "    carol : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/carol ; USER=root ; COMMAND=/bin/bash"}),
        );
        assert_eq!(auth(attempts).unwrap()["user"], "carol");
        let unrelated = event(
            "syslog",
            json!({"program": "sshd", "message": "Connection closed by 203.0.113.45"}),
        );
        assert_eq!(auth(unrelated), None);
    }
}
