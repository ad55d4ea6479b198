//! The destinations file (`destinations.toml`): where alerts go, which alerts go where, and how
//! long a delivery is retried.
//!
//! ```toml
//! [delivery]
//! give_up_after = "24h"      # then a delivery stays in the outbox as given up
//!
//! [[destination]]
//! name = "soc-webhook"
//! kind = "webhook"
//! url = "https://soc.example.com/hooks/lakewatch"
//! secret = "env:SOC_WEBHOOK_SECRET"          # HMAC-SHA256 signing key (optional)
//! headers = { "X-Team" = "soc" }
//!
//! [[destination]]
//! name = "slack"
//! kind = "slack"
//! url = "env:SLACK_WEBHOOK_URL"              # the incoming webhook URL is itself a secret
//! link = "https://console.aws.amazon.com/athena/home#/query-editor?alert={alertid}"
//!
//! [[route]]
//! severities = ["HIGH", "CRITICAL"]
//! destinations = ["slack"]
//! ```
//!
//! Secrets are references, never values: `env:NAME` (an environment variable, the local way)
//! or a Secrets Manager secret (`arn:aws:secretsmanager:…` or `secretsmanager:NAME`). They are
//! resolved once when the run starts ([`DestinationsFile::resolve`]); a resolved value is a
//! [`Secret`], whose `Debug` prints `***`, so no log line or error can show it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::Path;

use chrono::TimeDelta;
use lakewatch_detect::duration::parse_duration;
use serde::Deserialize;
use toml::Spanned;

/// PagerDuty's Events API v2 endpoint
/// (<https://developer.pagerduty.com/docs/send-alert-event>).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The name of the destination a detector without a destinations file delivers to: the
/// alerts topic (SNS on AWS, `LAKE/topic/alerts.ndjson` locally).
pub const DEFAULT_DESTINATION: &str = "alerts-topic";

/// A resolved secret value. Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a value comes from, as the file writes it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`.
    Env(String),
    /// `arn:aws:secretsmanager:…` or `secretsmanager:NAME`: the secret's id for GetSecretValue.
    SecretsManager(String),
    /// Written in the file itself (allowed for URLs only).
    Literal(String),
}

impl SecretRef {
    fn parse(text: &str) -> SecretRef {
        if let Some(name) = text.strip_prefix("env:") {
            SecretRef::Env(name.trim().to_string())
        } else if let Some(id) = text.strip_prefix("secretsmanager:") {
            SecretRef::SecretsManager(id.trim().to_string())
        } else if text.starts_with("arn:aws:secretsmanager:") {
            SecretRef::SecretsManager(text.trim().to_string())
        } else {
            SecretRef::Literal(text.to_string())
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::SecretsManager(id) => write!(f, "secretsmanager:{id}"),
            // A webhook URL written in the file may still carry a token.
            SecretRef::Literal(_) => f.write_str("***"),
        }
    }
}

/// Resolves secret references: environment variables locally, Secrets Manager on AWS.
pub trait SecretSource {
    /// The value behind `reference` (never [`SecretRef::Literal`]); the error names the
    /// reference, never a value.
    fn secret(&self, reference: &SecretRef) -> impl Future<Output = Result<String, String>>;
}

/// Secrets from environment variables (`env:NAME`) only, the local way.
pub struct EnvSecrets<F>(pub F);

impl EnvSecrets<fn(&str) -> Option<String>> {
    /// This process's environment.
    pub fn process() -> Self {
        EnvSecrets(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> SecretSource for EnvSecrets<F> {
    async fn secret(&self, reference: &SecretRef) -> Result<String, String> {
        env_secret(&self.0, reference)
    }
}

/// The value of an `env:NAME` reference through `lookup`; other references are an error
/// saying where they can be resolved.
pub fn env_secret(
    lookup: impl Fn(&str) -> Option<String>,
    reference: &SecretRef,
) -> Result<String, String> {
    match reference {
        SecretRef::Env(name) => lookup(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("environment variable {name} is not set (or empty)")),
        SecretRef::SecretsManager(id) => Err(format!(
            "secret {id} is in Secrets Manager, which only the detector Lambda reads; locally \
             use env:NAME"
        )),
        SecretRef::Literal(value) => Ok(value.clone()),
    }
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; each further failure doubles it.
    pub first_retry: TimeDelta,
    /// The longest wait between attempts.
    pub max_retry: TimeDelta,
    /// A delivery still failing this long after its alert was handed over is given up (and
    /// stays in the outbox, counted as given up).
    pub give_up_after: TimeDelta,
    /// How long delivered and given-up deliveries stay in the outbox: a retried handover of
    /// the same alert within this time is recognized and not sent again.
    pub keep_done: TimeDelta,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_retry: TimeDelta::seconds(30),
            max_retry: TimeDelta::hours(1),
            give_up_after: TimeDelta::hours(24),
            keep_done: TimeDelta::days(7),
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `attempts` attempts: `first_retry` doubled per
    /// further attempt, at most `max_retry`.
    pub fn backoff(&self, attempts: u32) -> TimeDelta {
        let doublings = attempts.saturating_sub(1).min(20);
        (self.first_retry * (1 << doublings)).min(self.max_retry)
    }
}

/// A destination with its secrets resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub target: Target,
}

/// What a destination is and what sending to it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A JSON POST of the alert; signed with HMAC-SHA256 when a secret is given.
    Webhook {
        url: Secret,
        signing_secret: Option<Secret>,
        headers: Vec<(String, String)>,
    },
    /// A Slack incoming webhook.
    Slack { url: Secret, link: Option<String> },
    /// PagerDuty Events API v2.
    PagerDuty {
        url: String,
        routing_key: Secret,
        link: Option<String>,
    },
    /// An SNS topic (locally: the topic file), the alert line as the message.
    Sns { topic_arn: String },
}

/// Which alerts go to which destinations. Each non-empty list must match (a route with none
/// matches every alert).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub severities: Vec<String>,
    pub rules: Vec<String>,
    pub tags: Vec<String>,
    pub destinations: Vec<String>,
}

impl Route {
    fn matches(&self, rule: &str, severity: &str, tags: &[String]) -> bool {
        (self.severities.is_empty()
            || self
                .severities
                .iter()
                .any(|s| s.eq_ignore_ascii_case(severity)))
            && (self.rules.is_empty() || self.rules.iter().any(|r| r == rule))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t)))
    }
}

/// Destinations ready to send to.
#[derive(Debug, Clone, PartialEq)]
pub struct Destinations {
    pub destinations: Vec<Destination>,
    pub routes: Vec<Route>,
    pub retry: RetryPolicy,
}

impl Destinations {
    /// The detector without a destinations file: every alert to the alerts topic.
    pub fn topic(topic_arn: impl Into<String>) -> Destinations {
        Destinations {
            destinations: vec![Destination {
                name: DEFAULT_DESTINATION.to_string(),
                target: Target::Sns {
                    topic_arn: topic_arn.into(),
                },
            }],
            routes: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// No destination: alerts are written to the table only.
    pub fn none() -> Destinations {
        Destinations {
            destinations: Vec::new(),
            routes: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The destinations of an alert of `rule` with `severity`: those of every matching route
    /// (each once, in file order), or every destination when the file has no routes.
    pub fn route(&self, rule: &str, severity: &str, tags: &[String]) -> Vec<&Destination> {
        if self.routes.is_empty() {
            return self.destinations.iter().collect();
        }
        let chosen: BTreeSet<&str> = self
            .routes
            .iter()
            .filter(|route| route.matches(rule, severity, tags))
            .flat_map(|route| route.destinations.iter().map(String::as_str))
            .collect();
        self.destinations
            .iter()
            .filter(|d| chosen.contains(d.name.as_str()))
            .collect()
    }
}

/// A destinations file that is wrong, or whose secrets cannot be resolved: `file:line: what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Webhook,
    Slack,
    Pagerduty,
    Sns,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    delivery: Option<Spanned<RawDelivery>>,
    #[serde(default, rename = "destination")]
    destinations: Vec<Spanned<RawDestination>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    give_up_after: Option<String>,
    first_retry: Option<String>,
    max_retry: Option<String>,
    keep_done: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    name: String,
    kind: Kind,
    url: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    routing_key: Option<String>,
    topic_arn: Option<String>,
    link: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    destinations: Vec<String>,
}

/// A destination as written, its secrets still references.
#[derive(Debug, Clone, PartialEq)]
struct PlannedDestination {
    name: String,
    line: usize,
    kind: Kind,
    url: Option<SecretRef>,
    secret: Option<SecretRef>,
    headers: Vec<(String, String)>,
    routing_key: Option<SecretRef>,
    topic_arn: Option<String>,
    link: Option<String>,
}

/// A parsed and checked destinations file whose secrets are not resolved yet.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationsFile {
    file: String,
    destinations: Vec<PlannedDestination>,
    routes: Vec<Route>,
    retry: RetryPolicy,
}

impl DestinationsFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<DestinationsFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read the destinations file: {e}"),
        })?;
        DestinationsFile::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks the text of a destinations file named `file` (for errors).
    pub fn parse(file: &str, text: &str) -> Result<DestinationsFile, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let error = |line: usize, message: String| ConfigError {
            file: file.to_string(),
            line,
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(s.start)).unwrap_or(0);
            error(line, e.message().to_string())
        })?;
        let mut retry = RetryPolicy::default();
        if let Some(delivery) = &raw.delivery {
            let line = line_of(delivery.span().start);
            let d = delivery.get_ref();
            for (value, slot) in [
                (&d.give_up_after, &mut retry.give_up_after),
                (&d.first_retry, &mut retry.first_retry),
                (&d.max_retry, &mut retry.max_retry),
                (&d.keep_done, &mut retry.keep_done),
            ] {
                if let Some(text) = value {
                    *slot = parse_duration(text).map_err(|e| error(line, e))?;
                }
            }
            if retry.keep_done < retry.give_up_after {
                return Err(error(
                    line,
                    "keep_done must be at least give_up_after: a delivery is forgotten only \
                     after it is done"
                        .to_string(),
                ));
            }
        }
        let mut destinations: Vec<PlannedDestination> = Vec::new();
        for spanned in &raw.destinations {
            let line = line_of(spanned.span().start);
            let d = spanned.get_ref();
            let fail =
                |message: String| error(line, format!("destination {:?}: {message}", d.name));
            if destinations.iter().any(|other| other.name == d.name) {
                return Err(fail("another destination has this name".to_string()));
            }
            let kind_name = format!("{:?}", d.kind).to_lowercase();
            let required = |field: &Option<String>, name: &str| {
                field
                    .clone()
                    .ok_or_else(|| fail(format!("a {kind_name} destination needs {name}")))
            };
            let secret_only = |field: &Option<String>, name: &str| {
                field
                    .as_deref()
                    .map(|text| match SecretRef::parse(text) {
                        SecretRef::Literal(_) => Err(fail(format!(
                            "{name} must be a reference (env:NAME, or a Secrets Manager ARN), \
                             not the value itself"
                        ))),
                        reference => Ok(reference),
                    })
                    .transpose()
            };
            let unused: Vec<&str> = [
                ("url", d.url.is_some() && d.kind == Kind::Sns),
                ("secret", d.secret.is_some() && d.kind != Kind::Webhook),
                ("headers", !d.headers.is_empty() && d.kind != Kind::Webhook),
                (
                    "routing_key",
                    d.routing_key.is_some() && d.kind != Kind::Pagerduty,
                ),
                ("topic_arn", d.topic_arn.is_some() && d.kind != Kind::Sns),
                (
                    "link",
                    d.link.is_some() && !matches!(d.kind, Kind::Slack | Kind::Pagerduty),
                ),
            ]
            .into_iter()
            .filter(|(_, unused)| *unused)
            .map(|(name, _)| name)
            .collect();
            if !unused.is_empty() {
                return Err(fail(format!(
                    "a {kind_name} destination has no {}",
                    unused.join(", ")
                )));
            }
            let url = match d.kind {
                Kind::Webhook | Kind::Slack => Some(required(&d.url, "url")?),
                Kind::Pagerduty => Some(
                    d.url
                        .clone()
                        .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string()),
                ),
                Kind::Sns => None,
            }
            .map(|url| SecretRef::parse(&url));
            if let Some(SecretRef::Literal(url)) = &url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(fail(
                    "url must start with https:// (or be a reference: env:NAME, a Secrets \
                     Manager ARN)"
                        .to_string(),
                ));
            }
            destinations.push(PlannedDestination {
                name: d.name.clone(),
                line,
                kind: d.kind,
                url,
                secret: secret_only(&d.secret, "secret")?,
                headers: d
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                routing_key: match d.kind {
                    Kind::Pagerduty => Some(required(&d.routing_key, "routing_key")?),
                    _ => None,
                }
                .map(|key| secret_only(&Some(key), "routing_key"))
                .transpose()?
                .flatten(),
                topic_arn: match d.kind {
                    Kind::Sns => Some(required(&d.topic_arn, "topic_arn")?),
                    _ => None,
                },
                link: d.link.clone(),
            });
        }
        let mut routes = Vec::new();
        for spanned in &raw.routes {
            let line = line_of(spanned.span().start);
            let r = spanned.get_ref();
            if r.destinations.is_empty() {
                return Err(error(line, "a route needs destinations".to_string()));
            }
            if let Some(unknown) = r
                .destinations
                .iter()
                .find(|name| !destinations.iter().any(|d| &d.name == *name))
            {
                let known: Vec<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
                return Err(error(
                    line,
                    format!(
                        "the route names destination {unknown:?}, which is not defined; \
                         destinations: {}",
                        known.join(", ")
                    ),
                ));
            }
            routes.push(Route {
                severities: r.severities.clone(),
                rules: r.rules.clone(),
                tags: r.tags.clone(),
                destinations: r.destinations.clone(),
            });
        }
        Ok(DestinationsFile {
            file: file.to_string(),
            destinations,
            routes,
            retry,
        })
    }

    /// The Secrets Manager ids the file refers to (what the detector's role must read).
    pub fn secrets_manager_ids(&self) -> Vec<String> {
        self.references()
            .filter_map(|r| match r {
                SecretRef::SecretsManager(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    fn references(&self) -> impl Iterator<Item = &SecretRef> {
        self.destinations
            .iter()
            .flat_map(|d| [&d.url, &d.secret, &d.routing_key])
            .flatten()
    }

    /// Resolves every secret through `source`; the error names the destination and its line.
    pub async fn resolve(&self, source: &impl SecretSource) -> Result<Destinations, ConfigError> {
        let mut destinations = Vec::with_capacity(self.destinations.len());
        for planned in &self.destinations {
            let fail = |message: String| ConfigError {
                file: self.file.clone(),
                line: planned.line,
                message: format!("destination {:?}: {message}", planned.name),
            };
            let resolve = async |reference: &Option<SecretRef>| match reference {
                None => Ok(None),
                Some(SecretRef::Literal(text)) => Ok(Some(Secret::new(text.clone()))),
                Some(reference) => source
                    .secret(reference)
                    .await
                    .map(|value| Some(Secret::new(value)))
                    .map_err(|e| fail(format!("{reference:?}: {e}"))),
            };
            let url = resolve(&planned.url).await?;
            let signing_secret = resolve(&planned.secret).await?;
            let routing_key = resolve(&planned.routing_key).await?;
            let target = match planned.kind {
                Kind::Webhook => Target::Webhook {
                    url: url.expect("checked when parsed"),
                    signing_secret,
                    headers: planned.headers.clone(),
                },
                Kind::Slack => Target::Slack {
                    url: url.expect("checked when parsed"),
                    link: planned.link.clone(),
                },
                Kind::Pagerduty => Target::PagerDuty {
                    url: url.expect("checked when parsed").expose().to_string(),
                    routing_key: routing_key.expect("checked when parsed"),
                    link: planned.link.clone(),
                },
                Kind::Sns => Target::Sns {
                    topic_arn: planned.topic_arn.clone().expect("checked when parsed"),
                },
            };
            destinations.push(Destination {
                name: planned.name.clone(),
                target,
            });
        }
        Ok(Destinations {
            destinations,
            routes: self.routes.clone(),
            retry: self.retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_testkit::block_on;

    const FILE: &str = r#"
[delivery]
give_up_after = "2h"

[[destination]]
name = "hook"
kind = "webhook"
url = "https://example.com/hook"
secret = "env:HOOK_SECRET"
headers = { "X-Team" = "soc" }

[[destination]]
name = "slack"
kind = "slack"
url = "env:SLACK_URL"
link = "https://console.aws.amazon.com/athena/home#/query-editor?alert={alertid}"

[[destination]]
name = "pd"
kind = "pagerduty"
routing_key = "arn:aws:secretsmanager:us-east-1:1:secret:pd-AbCdEf"

[[destination]]
name = "topic"
kind = "sns"
topic_arn = "arn:aws:sns:us-east-1:1:alerts"

[[route]]
severities = ["HIGH", "CRITICAL"]
destinations = ["pd", "slack"]

[[route]]
tags = ["cloudtrail"]
destinations = ["hook"]

[[route]]
rules = ["oom-kills"]
destinations = ["topic"]
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_SECRET" => Some("hunter2".into()),
            "SLACK_URL" => Some("https://hooks.slack.com/services/T/B/hunter3".into()),
            _ => None,
        }
    }

    /// Env for `env:`, a fixed value for the one Secrets Manager id.
    struct Both;
    impl SecretSource for Both {
        async fn secret(&self, reference: &SecretRef) -> Result<String, String> {
            match reference {
                SecretRef::SecretsManager(id) if id.contains("pd-") => Ok("rk-hunter4".into()),
                other => env_secret(env, other),
            }
        }
    }

    #[test]
    fn parses_destinations_routes_and_retry_and_routes_by_severity_rule_and_tag() {
        let file = DestinationsFile::parse("d.toml", FILE).unwrap();
        assert_eq!(
            file.secrets_manager_ids(),
            ["arn:aws:secretsmanager:us-east-1:1:secret:pd-AbCdEf"]
        );
        let destinations = block_on(file.resolve(&Both)).unwrap();
        assert_eq!(destinations.retry.give_up_after, TimeDelta::hours(2));
        let names = |rule: &str, severity: &str, tags: &[&str]| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            destinations
                .route(rule, severity, &tags)
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("r", "HIGH", &[]), ["slack", "pd"]);
        assert_eq!(names("r", "high", &["cloudtrail"]), ["hook", "slack", "pd"]);
        assert_eq!(names("oom-kills", "LOW", &[]), ["topic"]);
        assert!(names("r", "LOW", &["gsuite"]).is_empty());
        match &destinations.get("pd").unwrap().target {
            Target::PagerDuty {
                url, routing_key, ..
            } => {
                assert_eq!(url, PAGERDUTY_EVENTS_URL);
                assert_eq!(routing_key.expose(), "rk-hunter4");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let file = DestinationsFile::parse("d.toml", FILE).unwrap();
        let destinations = block_on(file.resolve(&Both)).unwrap();
        let shown = format!("{destinations:?} {file:?}");
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("env:HOOK_SECRET"), "references are shown");
    }

    #[test]
    fn errors_name_the_file_and_line_and_say_what_to_do() {
        let cases = [
            (
                "[[destination]]\nname = \"a\"\nkind = \"teams\"\n",
                "d.toml:3: unknown variant `teams`",
            ),
            (
                "[[destination]]\nname = \"a\"\nkind = \"slack\"\n",
                "d.toml:1: destination \"a\": a slack destination needs url",
            ),
            (
                "\n[[destination]]\nname = \"a\"\nkind = \"pagerduty\"\nrouting_key = \"R0UT1NG\"\n",
                "d.toml:2: destination \"a\": routing_key must be a reference (env:NAME, or a \
                 Secrets Manager ARN), not the value itself",
            ),
            (
                "[[destination]]\nname = \"a\"\nkind = \"sns\"\ntopic_arn = \"t\"\n\n[[route]]\ndestinations = [\"b\"]\n",
                "d.toml:6: the route names destination \"b\", which is not defined; destinations: a",
            ),
            (
                "[[destination]]\nname = \"a\"\nkind = \"sns\"\ntopic_arn = \"t\"\nlink = \"x\"\n",
                "d.toml:1: destination \"a\": a sns destination has no link",
            ),
            (
                "[delivery]\ngive_up_after = \"2 hours\"\n",
                "d.toml:1: duration \"2 hours\": the unit must be s, m, h or d",
            ),
        ];
        for (text, expected) in cases {
            let error = DestinationsFile::parse("d.toml", text)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{error}\nexpected: {expected}");
            assert!(!error.contains("R0UT1NG"), "{error}");
        }
    }

    #[test]
    fn an_unresolvable_secret_names_the_destination_and_the_reference() {
        let file = DestinationsFile::parse("d.toml", FILE).unwrap();
        let error = block_on(file.resolve(&EnvSecrets(|_: &str| None)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "d.toml:5: destination \"hook\": env:HOOK_SECRET: environment variable HOOK_SECRET \
             is not set (or empty)"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let policy = RetryPolicy::default();
        let waits: Vec<i64> = (1..=9).map(|a| policy.backoff(a).num_seconds()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
