//! Declarative sources: a log type described in a file (`sources/<id>.toml`) instead of a Rust
//! plugin. A file says how a record is recognised (conditions on its fields) and how it maps
//! into the shell (time, hostname, summary, severity, tags, addresses, logins, renames and
//! casts); its sample records and the fields they must give are tests in the same file, run by
//! `lakewatch test-sources` and by `cargo test`.
//!
//! Each file becomes one [`DeclarativeSource`], a [`Plugin`] like the Rust parsers: the
//! normalization stage, priority -50 unless the file says otherwise, triggered by the first
//! field its conditions need (so records of other shapes never reach it). The bundled files
//! (`sources/` of the repository) are embedded in every binary; users add directories
//! (`lakewatch ingest --sources DIR`). The format is documented in docs/plugins-sources.md,
//! section "Declarative sources".

pub mod check;
mod config;
mod mapping;
mod matcher;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use toml::Spanned;

use crate::content::{ContentError, ContentSet, Kind, check_unique, line_of};
use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::{Event, RecordKind};
use crate::sources::{
    PARSER_PRIORITY, SUMMARY_MAX_CHARS, claim, detail_text, one_line, raise_severity,
};
use mapping::{
    CastTo, Extraction, Extractor, Template, TimeFormat, check_path, first_scalar, put_path,
    read_time, take_path,
};
use matcher::{Condition, Test};

/// The source files shipped with lakewatch, as (file name, text). Listed by hand (a test checks
/// the list against `sources/`), so the binary runs exactly the sources it was built with.
const BUNDLED: &[(&str, &str)] = &[
    (
        "1password-signin.toml",
        include_str!("../../../sources/1password-signin.toml"),
    ),
    ("alb.toml", include_str!("../../../sources/alb.toml")),
    ("auditd.toml", include_str!("../../../sources/auditd.toml")),
    (
        "aws-waf.toml",
        include_str!("../../../sources/aws-waf.toml"),
    ),
    (
        "carbon-black.toml",
        include_str!("../../../sources/carbon-black.toml"),
    ),
    (
        "cloudflare-http.toml",
        include_str!("../../../sources/cloudflare-http.toml"),
    ),
    (
        "crowdstrike-fdr.toml",
        include_str!("../../../sources/crowdstrike-fdr.toml"),
    ),
    (
        "duo-auth.toml",
        include_str!("../../../sources/duo-auth.toml"),
    ),
    (
        "entra-signin.toml",
        include_str!("../../../sources/entra-signin.toml"),
    ),
    (
        "github-audit.toml",
        include_str!("../../../sources/github-audit.toml"),
    ),
    (
        "guardduty.toml",
        include_str!("../../../sources/guardduty.toml"),
    ),
    (
        "kubernetes-audit.toml",
        include_str!("../../../sources/kubernetes-audit.toml"),
    ),
    (
        "m365-management.toml",
        include_str!("../../../sources/m365-management.toml"),
    ),
    (
        "minio-audit.toml",
        include_str!("../../../sources/minio-audit.toml"),
    ),
    ("okta.toml", include_str!("../../../sources/okta.toml")),
    (
        "osquery.toml",
        include_str!("../../../sources/osquery.toml"),
    ),
    (
        "raw-line.toml",
        include_str!("../../../sources/raw-line.toml"),
    ),
    (
        "route53-resolver.toml",
        include_str!("../../../sources/route53-resolver.toml"),
    ),
    (
        "security-hub.toml",
        include_str!("../../../sources/security-hub.toml"),
    ),
    (
        "suricata.toml",
        include_str!("../../../sources/suricata.toml"),
    ),
    (
        "zeek-conn.toml",
        include_str!("../../../sources/zeek-conn.toml"),
    ),
    (
        "zeek-dns.toml",
        include_str!("../../../sources/zeek-dns.toml"),
    ),
    (
        "zeek-http.toml",
        include_str!("../../../sources/zeek-http.toml"),
    ),
];

/// When a test does not say when its record was received.
pub const DEFAULT_TEST_RECEIVED: &str = "2026-04-17T12:00:00Z";

/// A source file that cannot be used: which file, which line, and what is wrong.
pub type SourceError = ContentError;

/// One source file, compiled: the plugin that runs it.
#[derive(Debug)]
pub struct DeclarativeSource {
    /// The id, leaked once per load: [`Plugin::name`] is `&'static str`, and sources are
    /// loaded once per process (at Lambda init, at CLI start).
    name: &'static str,
    file: String,
    description: String,
    priority: i32,
    claim: Option<(String, String)>,
    input: Input,
    all: Vec<Condition>,
    any: Vec<Condition>,
    lift: Option<String>,
    keep_line: Option<String>,
    unflatten: bool,
    extracts: Vec<Extraction>,
    renames: Vec<(String, String)>,
    casts: Vec<(String, CastTo, String)>,
    time: Option<TimeSpec>,
    hostname: Vec<String>,
    summary: Option<Template>,
    severity: Option<String>,
    severity_from: Option<SeverityFrom>,
    tags: Vec<Template>,
    source_ip: Vec<String>,
    destination_ip: Vec<String>,
    auth: Option<AuthSpec>,
    tests: Vec<SampleTest>,
}

/// Which records a source looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Json,
    Line,
    Any,
}

/// Severity read from a field: exact values, then numeric thresholds.
#[derive(Debug)]
struct SeverityFrom {
    field: String,
    map: BTreeMap<String, String>,
    /// (threshold, severity), highest threshold first.
    at_least: Vec<(f64, String)>,
}

impl SeverityFrom {
    fn severity(&self, value: &str) -> Option<&String> {
        self.map.get(value).or_else(|| {
            let number: f64 = value.trim().parse().ok()?;
            self.at_least
                .iter()
                .find(|(threshold, _)| number >= *threshold)
                .map(|(_, severity)| severity)
        })
    }
}

/// The `[auth]` table, compiled.
#[derive(Debug)]
struct AuthSpec {
    user: Vec<String>,
    outcome: String,
    success: Vec<String>,
    /// `None`: every value other than a success is a failure.
    failure: Option<Vec<String>>,
    service: String,
    when: Vec<Condition>,
}

#[derive(Debug)]
struct TimeSpec {
    fields: Vec<String>,
    /// Tried in order for each field.
    formats: Vec<TimeFormat>,
    zones: BTreeMap<String, i32>,
}

/// A sample record of a source and what the lake line made of it must hold.
#[derive(Debug, Clone)]
pub struct SampleTest {
    pub name: String,
    pub text: String,
    pub kind: RecordKind,
    pub received: DateTime<Utc>,
    /// Paths into the lake line (`source`, `details.api.name`) and their expected values.
    pub expect: BTreeMap<String, Value>,
}

impl DeclarativeSource {
    /// The source's id (its file name without `.toml`).
    pub fn id(&self) -> &'static str {
        self.name
    }

    /// Where it was loaded from (`sources/x.toml` for bundled ones).
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn tests(&self) -> &[SampleTest] {
        &self.tests
    }

    fn recognises(&self, event: &Event) -> bool {
        let input = match event.kind {
            RecordKind::Json => Input::Json,
            RecordKind::Line => Input::Line,
        };
        (self.input == Input::Any || self.input == input)
            && self.all.iter().all(|c| c.holds(event))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(event)))
    }

    /// The mapping, in the order the file format documents.
    fn map(&self, event: &mut Event) -> Result<(), PluginError> {
        if let Some(wrapper) = &self.lift
            && let Some(Value::Object(inner)) = take_path(&mut event.details, wrapper)
        {
            for (key, value) in inner {
                crate::shell::insert_keeping_both(&mut event.details, key, value);
            }
        }
        if self.unflatten {
            mapping::unflatten(&mut event.details);
        }
        if let Some(key) = &self.keep_line
            && event.kind == RecordKind::Line
            && let Some(line) = event.details.get("message").cloned()
        {
            crate::shell::insert_keeping_both(&mut event.details, key.clone(), line);
        }
        for extraction in &self.extracts {
            extraction.apply(&mut event.details);
        }
        for (from, to) in &self.renames {
            if let Some(value) = take_path(&mut event.details, from) {
                put_path(&mut event.details, to, value);
            }
        }
        for (field, to, into) in &self.casts {
            let Some(value) = event.detail(field) else {
                continue;
            };
            let converted = to.apply(value).map_err(|why| {
                PluginError(format!("source {}: cast of {field}: {why}", self.name))
            })?;
            if into == field {
                take_path(&mut event.details, field);
            }
            put_path(&mut event.details, into, converted);
        }
        // Claimed before the rest, so the record's own `source`/`category` (1Password's
        // `category` is a sign-in's outcome) is under `details` for templates and `[auth]`.
        if let Some((source, category)) = &self.claim {
            claim(event, source, category);
            keep_vendor_severity(event);
        }
        if let Some(time) = &self.time
            && event.utctimestamp.is_none()
        {
            self.set_time(time, event);
        }
        let first = |event: &Event, paths: &[String]| {
            paths
                .iter()
                .find_map(|path| first_scalar(event, path))
                .map(|text| text.into_owned())
        };
        if let Some(host) = first(event, &self.hostname) {
            event.hostname = host;
        }
        let summary = self
            .summary
            .as_ref()
            .map(|t| one_line(&t.render(event), SUMMARY_MAX_CHARS));
        let tags: Vec<String> = self.tags.iter().map(|t| t.render(event)).collect();
        for (key, paths) in [
            (crate::ipaddress::SOURCE_KEY, &self.source_ip),
            (crate::ipaddress::DESTINATION_KEY, &self.destination_ip),
        ] {
            if !event.details.contains_key(key)
                && let Some(address) = first(event, paths)
            {
                event
                    .details
                    .insert(key.to_string(), Value::String(address));
            }
        }
        if let Some(severity) = &self.severity {
            raise_severity(event, severity);
        }
        if let Some(from) = &self.severity_from
            && let Some(severity) =
                detail_text(event, &from.field).and_then(|v| from.severity(&v).cloned())
        {
            raise_severity(event, &severity);
        }
        if let Some(auth) = &self.auth
            && auth.when.iter().all(|c| c.holds(event))
        {
            let user = first(event, &auth.user);
            let outcome = detail_text(event, &auth.outcome).map(|t| t.into_owned());
            if let (Some(user), Some(outcome)) = (user, outcome) {
                let success = auth.success.contains(&outcome);
                let failure = auth
                    .failure
                    .as_ref()
                    .map_or(!success, |f| f.contains(&outcome));
                if success || failure {
                    crate::authentication::record_login(event, &user, success, &auth.service);
                }
            }
        }
        if let Some(summary) = summary.filter(|s| !s.is_empty()) {
            event.summary = summary;
        }
        for tag in tags.iter().filter(|t| !t.is_empty()) {
            event.add_tag(tag);
        }
        Ok(())
    }

    /// The first field in precedence holding a time in the format wins; when some are present
    /// but none holds a believable time, the received time stands in, tagged, as the
    /// `timestamp` plugin does.
    fn set_time(&self, time: &TimeSpec, event: &mut Event) {
        let mut present = false;
        for field in &time.fields {
            let Some(value) = event.detail(field) else {
                continue;
            };
            present = true;
            let received = event.receivedtimestamp;
            if let Some(at) = time
                .formats
                .iter()
                .find_map(|format| read_time(value, format, &time.zones, received))
            {
                event.utctimestamp = Some(at);
                return;
            }
        }
        if present {
            event.fall_back_to_received_time();
        }
    }
}

/// A record's own `severity` on the vendor's scale (GuardDuty's `2`, Okta's `WARN`) is not a
/// shell severity: it moves to `details.severity` (unless that holds it already, as a number
/// does) and the event starts at `INFO`, for `severity_from` to map the vendor's value.
fn keep_vendor_severity(event: &mut Event) {
    if matches!(
        event.severity.as_str(),
        "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL"
    ) {
        return;
    }
    let theirs = std::mem::replace(&mut event.severity, "INFO".to_string());
    if !theirs.is_empty() && !event.details.contains_key("severity") {
        event
            .details
            .insert("severity".to_string(), Value::String(theirs));
    }
}

impl Plugin for DeclarativeSource {
    fn name(&self) -> &'static str {
        self.name
    }

    /// The first field the conditions need (a record without it cannot be recognised), raw
    /// lines for line sources, every event otherwise.
    fn registration(&self) -> Registration {
        let needed = self.all.iter().find(|c| c.needs_field());
        let triggers = match (self.input, needed) {
            (Input::Line, _) => vec![Trigger::RawLine],
            (_, Some(condition)) => vec![Trigger::Field(condition.path.clone())],
            (_, None) if !self.any.is_empty() && self.any.iter().all(Condition::needs_field) => {
                self.any
                    .iter()
                    .map(|c| Trigger::Field(c.path.clone()))
                    .collect()
            }
            _ => vec![Trigger::Always],
        };
        Registration::new(Stage::Normalize, self.priority, triggers)
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        if !self.recognises(event) {
            return Ok(Verdict::Unchanged);
        }
        self.map(event)?;
        Ok(Verdict::Changed)
    }
}

/// Every source of `set`: the bundled ones (unless turned off), then those of each directory
/// (`*.toml`, sorted by name), then the files given (read from S3). An id defined twice is an
/// error naming both files.
pub fn load(set: &ContentSet) -> Result<Vec<DeclarativeSource>, SourceError> {
    let files = set.gather(Kind::Sources, BUNDLED)?;
    let sources = files
        .iter()
        .map(|file| parse(&file.origin, &file.text))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(
        Kind::Sources,
        sources.iter().map(|s| (s.name, s.file.as_str())),
    )?;
    Ok(sources)
}

/// Reads and checks one source file; `file` names it in errors and must end in `<id>.toml`.
pub fn parse(file: &str, text: &str) -> Result<DeclarativeSource, SourceError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| SourceError {
        file: file.to_string(),
        line: span.map(|span| line_of(text, span.start)),
        message,
    };
    let raw: config::SourceFile =
        toml::from_str(text).map_err(|e| at(e.span(), e.message().to_string()))?;
    let spanned = |value: &Spanned<String>, check: &dyn Fn(&str) -> Result<(), String>| {
        check(value.get_ref()).map_err(|m| at(Some(value.span()), m))
    };
    let path = |value: &Spanned<String>| {
        spanned(value, &check_path)?;
        Ok::<_, SourceError>(value.get_ref().clone())
    };
    let paths = |values: &[Spanned<String>]| values.iter().map(path).collect::<Result<Vec<_>, _>>();
    let stem = Path::new(file).file_stem().map(|s| s.to_string_lossy());
    if stem.as_deref() != Some(raw.id.get_ref().as_str()) {
        return Err(at(
            Some(raw.id.span()),
            format!(
                "id {:?} must be the file's name without .toml",
                raw.id.get_ref()
            ),
        ));
    }
    let priority = match &raw.priority {
        Some(p) if !(-99..=-1).contains(p.get_ref()) => {
            return Err(at(
                Some(p.span()),
                "priority must be from -99 (after lowercase_keys) to -1 (before timestamp)"
                    .to_string(),
            ));
        }
        Some(p) => *p.get_ref(),
        None => PARSER_PRIORITY,
    };
    let claim = match (raw.source, raw.category) {
        (Some(source), Some(category)) => Some((source, category)),
        (None, None) => None,
        _ => {
            return Err(at(
                Some(raw.id.span()),
                "source and category go together: give both, or neither".to_string(),
            ));
        }
    };
    let input = match raw
        .recognise
        .input
        .as_ref()
        .map(|i| (i.get_ref().as_str(), i.span()))
    {
        None | Some(("json", _)) => Input::Json,
        Some(("line", _)) => Input::Line,
        Some(("any", _)) => Input::Any,
        Some((other, span)) => {
            return Err(at(
                Some(span),
                format!("match.input {other:?}: expected json, line or any"),
            ));
        }
    };
    let condition = |spanned: &Spanned<config::Condition>| {
        build_condition(spanned.get_ref(), spanned.span(), text, file)
    };
    let all = raw
        .recognise
        .all
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    let any = raw
        .recognise
        .any
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    if all.is_empty() && any.is_empty() && input != Input::Line {
        return Err(at(
            None,
            "match needs at least one condition (all or any): a source must not claim every record"
                .to_string(),
        ));
    }
    let template = |value: &Spanned<String>| {
        Template::parse(value.get_ref()).map_err(|m| at(Some(value.span()), m))
    };
    let severity_name = |value: &Spanned<String>| {
        spanned(value, &|s| match s {
            "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL" => Ok(()),
            other => Err(format!(
                "severity {other:?}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )),
        })?;
        Ok::<_, SourceError>(value.get_ref().clone())
    };
    let time = match &raw.time {
        None => None,
        Some(time) => {
            if let (Some(format), false) = (&time.format, time.formats.is_empty()) {
                return Err(at(
                    Some(format.span()),
                    "give format or formats, not both".to_string(),
                ));
            }
            let mut formats = time
                .format
                .iter()
                .chain(&time.formats)
                .map(|f| TimeFormat::parse(f.get_ref()).map_err(|m| at(Some(f.span()), m)))
                .collect::<Result<Vec<_>, _>>()?;
            if formats.is_empty() {
                formats.push(TimeFormat::Auto);
            }
            let mut zones = BTreeMap::new();
            for (name, offset) in &time.zones {
                let seconds = mapping::parse_offset(offset.get_ref())
                    .map_err(|m| at(Some(offset.span()), m))?;
                zones.insert(name.clone(), seconds);
            }
            Some(TimeSpec {
                fields: paths(&time.fields)?,
                formats,
                zones,
            })
        }
    };
    let mut renames = Vec::new();
    for (from, to) in &raw.rename {
        check_path(from).map_err(|m| at(Some(to.span()), m))?;
        renames.push((from.clone(), path(to)?));
    }
    let mut casts = Vec::new();
    for cast in &raw.cast {
        let to = CastTo::parse(cast.to.get_ref()).map_err(|m| at(Some(cast.to.span()), m))?;
        let into = cast.into.clone().unwrap_or_else(|| cast.field.clone());
        for path in [&cast.field, &into] {
            check_path(path).map_err(|m| at(Some(cast.to.span()), m))?;
        }
        casts.push((cast.field.clone(), to, into));
    }
    let severity_from = match &raw.severity_from {
        None => None,
        Some(map) => {
            check_path(&map.field).map_err(|m| at(None, format!("severity_from: {m}")))?;
            let mut values = BTreeMap::new();
            for (value, severity) in &map.map {
                values.insert(value.clone(), severity_name(severity)?);
            }
            let mut at_least = Vec::new();
            for (threshold, severity) in &map.at_least {
                let number: f64 = threshold.parse().map_err(|_| {
                    at(
                        Some(severity.span()),
                        format!("severity_from.at_least: {threshold:?} is not a number"),
                    )
                })?;
                at_least.push((number, severity_name(severity)?));
            }
            at_least.sort_by(|a, b| b.0.total_cmp(&a.0));
            Some(SeverityFrom {
                field: map.field.clone(),
                map: values,
                at_least,
            })
        }
    };
    let auth = match raw.auth {
        None => None,
        Some(auth) => {
            for p in auth.user.iter().chain([&auth.outcome]) {
                check_path(p).map_err(|m| at(None, format!("auth: {m}")))?;
            }
            Some(AuthSpec {
                when: auth.when.iter().map(condition).collect::<Result<_, _>>()?,
                user: auth.user,
                outcome: auth.outcome,
                success: auth.success,
                failure: auth.failure,
                service: auth.service,
            })
        }
    };
    let mut extracts = Vec::new();
    for extract in &raw.extract {
        let wrong = |message: String| at(extract.regex.as_ref().map(Spanned::span), message);
        for p in std::iter::once(&extract.field).chain(&extract.into) {
            check_path(p).map_err(|m| wrong(format!("extract: {m}")))?;
        }
        let how = match (&extract.regex, extract.pairs) {
            (Some(pattern), None | Some(false)) => Extractor::Regex(
                regex::Regex::new(pattern.get_ref())
                    .map_err(|e| wrong(format!("extract regex: {e}")))?,
            ),
            (None, Some(true)) => Extractor::Pairs,
            _ => {
                return Err(wrong(format!(
                    "extract of {:?}: give exactly one of regex or pairs = true",
                    extract.field
                )));
            }
        };
        if let Extractor::Regex(regex) = &how
            && let Some(name) = regex
                .capture_names()
                .flatten()
                .find(|name| check_path(name).is_err())
        {
            return Err(wrong(format!(
                "extract regex: group {name:?} is not a lower-case field name"
            )));
        }
        extracts.push(Extraction {
            field: extract.field.clone(),
            how,
            into: extract.into.clone(),
            absent: extract.absent.clone(),
        });
    }
    let tests = raw
        .tests
        .iter()
        .map(|test| sample_test(test, &at))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DeclarativeSource {
        name: Box::leak(raw.id.into_inner().into_boxed_str()),
        file: file.to_string(),
        description: raw.description,
        priority,
        claim,
        input,
        all,
        any,
        lift: raw.lift.as_ref().map(path).transpose()?,
        keep_line: raw.keep_line.as_ref().map(path).transpose()?,
        unflatten: raw.unflatten,
        extracts,
        renames,
        casts,
        time,
        hostname: paths(&raw.hostname)?,
        summary: raw.summary.as_ref().map(template).transpose()?,
        severity: raw.severity.as_ref().map(severity_name).transpose()?,
        severity_from,
        tags: raw.tags.iter().map(template).collect::<Result<_, _>>()?,
        source_ip: paths(&raw.source_ip)?,
        destination_ip: paths(&raw.destination_ip)?,
        auth,
        tests,
    })
}

/// One `[[match.all]]` / `[[match.any]]` condition: exactly one test.
fn build_condition(
    c: &config::Condition,
    span: std::ops::Range<usize>,
    text: &str,
    file: &str,
) -> Result<Condition, SourceError> {
    let error = |message: String| SourceError {
        file: file.to_string(),
        line: Some(line_of(text, span.start)),
        message: format!("condition on {:?}: {message}", c.field),
    };
    check_path(&c.field).map_err(&error)?;
    let given = [
        c.exists.is_some(),
        c.equals.is_some(),
        c.one_of.is_some(),
        c.regex.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(error(
            "give exactly one of exists, equals, one_of, regex".to_string(),
        ));
    }
    let scalar = |value: &Value| {
        matcher::expected_text(value)
            .ok_or_else(|| error(format!("{value} is not a text, number or boolean")))
    };
    let test = if let Some(exists) = c.exists {
        Test::Exists(exists)
    } else if let Some(value) = &c.equals {
        Test::OneOf(vec![scalar(value)?])
    } else if let Some(values) = &c.one_of {
        Test::OneOf(values.iter().map(scalar).collect::<Result<_, _>>()?)
    } else {
        let pattern = c.regex.as_deref().unwrap_or_default();
        Test::Regex(regex::Regex::new(pattern).map_err(|e| error(e.to_string()))?)
    };
    Ok(Condition {
        path: c.field.clone(),
        test,
    })
}

fn sample_test(
    test: &config::Test,
    at: &dyn Fn(Option<std::ops::Range<usize>>, String) -> SourceError,
) -> Result<SampleTest, SourceError> {
    let named = |m: &str| format!("test {:?}: {m}", test.name);
    let (text, kind) = match (&test.record, &test.line) {
        (Some(record), None) => (record.trim().to_string(), RecordKind::Json),
        (None, Some(line)) => (line.clone(), RecordKind::Line),
        _ => return Err(at(None, named("give exactly one of record (JSON) or line"))),
    };
    let received = match &test.received {
        None => DEFAULT_TEST_RECEIVED.to_string(),
        Some(r) => r.get_ref().clone(),
    };
    let received = DateTime::parse_from_rfc3339(&received)
        .map_err(|e| {
            at(
                test.received.as_ref().map(Spanned::span),
                named(&format!("received {received:?}: {e}")),
            )
        })?
        .to_utc();
    if test.expect.is_empty() {
        return Err(at(
            None,
            named("expect is empty: say what the record must give"),
        ));
    }
    Ok(SampleTest {
        name: test.name.clone(),
        text,
        kind,
        received,
        expect: test.expect.clone(),
    })
}

#[cfg(test)]
mod tests;
