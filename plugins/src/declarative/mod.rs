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
use mapping::{CastTo, Template, TimeFormat, check_path, put_path, read_time, take_path};
use matcher::{Condition, Test};

/// The source files shipped with lakewatch, as (file name, text). Listed by hand (a test checks
/// the list against `sources/`), so the binary runs exactly the sources it was built with.
const BUNDLED: &[(&str, &str)] = &[
    (
        "carbon-black.toml",
        include_str!("../../../sources/carbon-black.toml"),
    ),
    (
        "minio-audit.toml",
        include_str!("../../../sources/minio-audit.toml"),
    ),
    (
        "raw-line.toml",
        include_str!("../../../sources/raw-line.toml"),
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
    renames: Vec<(String, String)>,
    casts: Vec<(String, CastTo, String)>,
    time: Option<TimeSpec>,
    hostname: Vec<String>,
    summary: Option<Template>,
    severity: Option<String>,
    severity_from: Option<(String, BTreeMap<String, String>)>,
    tags: Vec<Template>,
    source_ip: Vec<String>,
    destination_ip: Vec<String>,
    auth: Option<config::Auth>,
    tests: Vec<SampleTest>,
}

/// Which records a source looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Json,
    Line,
    Any,
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
        if let Some(key) = &self.keep_line
            && event.kind == RecordKind::Line
            && let Some(line) = event.details.get("message").cloned()
        {
            crate::shell::insert_keeping_both(&mut event.details, key.clone(), line);
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
        if let Some(time) = &self.time
            && event.utctimestamp.is_none()
        {
            self.set_time(time, event);
        }
        let first = |event: &Event, paths: &[String]| {
            paths
                .iter()
                .find_map(|path| detail_text(event, path))
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
        if let Some((field, map)) = &self.severity_from
            && let Some(severity) = detail_text(event, field).and_then(|v| map.get(v.as_ref()))
        {
            raise_severity(event, severity);
        }
        if let Some(auth) = &self.auth {
            let user = first(event, &auth.user);
            let outcome = detail_text(event, &auth.outcome).map(|t| t.into_owned());
            if let (Some(user), Some(outcome)) = (user, outcome) {
                let success = auth.success.contains(&outcome);
                if success || auth.failure.contains(&outcome) {
                    crate::authentication::record_login(event, &user, success, &auth.service);
                }
            }
        }
        if let Some((source, category)) = &self.claim {
            claim(event, source, category);
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
            Some((map.field.clone(), values))
        }
    };
    if let Some(auth) = &raw.auth {
        for p in auth.user.iter().chain([&auth.outcome]) {
            check_path(p).map_err(|m| at(None, format!("auth: {m}")))?;
        }
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
        auth: raw.auth,
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
