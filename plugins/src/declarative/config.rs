//! The source file format, as serde reads it: `sources/<id>.toml`. Only the shape is checked
//! here; [`super::compile`] checks the meaning (paths, formats, regexes) and builds the plugin.
//! Every table refuses keys it does not know, so a typo is an error with its line, not a
//! setting silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// One source file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// The source's id: the file's name without `.toml`, and the plugin's name in `plugins`.
    pub id: Spanned<String>,
    /// One line for people: what log type this is, where it comes from.
    pub description: String,
    /// The event's `source` once recognised; left as it is when not given (a file that only
    /// adds fields, such as keeping a raw line, for a parser that runs after it).
    pub source: Option<String>,
    /// The event's `category` once recognised (needs `source`).
    pub category: Option<String>,
    /// Where it runs among the normalization plugins: -99 (just after `lowercase_keys`) to -1
    /// (just before `timestamp`); the Rust parsers run at -50.
    pub priority: Option<Spanned<i32>>,
    /// How a record is recognised.
    #[serde(rename = "match")]
    pub recognise: Match,
    /// A nested object (a dotted path) whose fields move to the top of `details`.
    pub lift: Option<Spanned<String>>,
    /// For raw text lines: the `details` key that keeps the whole line as it arrived.
    pub keep_line: Option<Spanned<String>>,
    /// Top-level keys with dots (Zeek's `id.orig_h`) become nested objects (`id.orig_h` as a
    /// path), so paths can reach them.
    #[serde(default)]
    pub unflatten: bool,
    /// Fields taken apart into more fields (text formats), in order, after `keep_line`.
    #[serde(default)]
    pub extract: Vec<Extract>,
    /// Fields moved to another path, before casts and everything else: `{ "from" = "to" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, Spanned<String>>,
    /// Fields converted to another type, in order.
    #[serde(default)]
    pub cast: Vec<Cast>,
    /// The event time.
    pub time: Option<Time>,
    /// Paths whose first present value becomes `hostname`.
    #[serde(default)]
    pub hostname: Vec<Spanned<String>>,
    /// The summary: text with `{dotted.path}` placeholders (`{path|fallback}` for a missing one).
    pub summary: Option<Spanned<String>>,
    /// A fixed severity (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`); only ever raised.
    pub severity: Option<Spanned<String>>,
    /// A severity read from a field: `{ field = "…", map = { "403" = "WARNING" } }`.
    pub severity_from: Option<SeverityMap>,
    /// Tags added to every recognised event; placeholders as in the summary.
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    /// Paths whose first present value becomes `details.sourceipaddress` (unless set).
    #[serde(default)]
    pub source_ip: Vec<Spanned<String>>,
    /// Paths whose first present value becomes `details.destinationipaddress` (unless set).
    #[serde(default)]
    pub destination_ip: Vec<Spanned<String>>,
    /// Logins: fill `details.auth` as the `authentication` plugin does for its sources.
    pub auth: Option<Auth>,
    /// Sample records and the fields they must give.
    #[serde(default)]
    pub tests: Vec<Test>,
}

/// Conditions on the record's fields (keys already lower case); all must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// `json` (the default), `line` (raw text lines, the line is `message`) or `any`.
    pub input: Option<Spanned<String>>,
    /// Every condition must hold.
    #[serde(default)]
    pub all: Vec<Spanned<Condition>>,
    /// At least one of these must hold (when any are given).
    #[serde(default)]
    pub any: Vec<Spanned<Condition>>,
}

/// One test on one field: exactly one of `exists`, `equals`, `one_of`, `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub exists: Option<bool>,
    pub equals: Option<Value>,
    pub one_of: Option<Vec<Value>>,
    pub regex: Option<String>,
}

/// A conversion of one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cast {
    pub field: String,
    /// `integer`, `float`, `string`, `boolean`, `duration_ns` or `duration_ms`.
    pub to: Spanned<String>,
    /// Where the converted value goes; the field itself when not given.
    pub into: Option<String>,
}

/// Text taken apart into fields: a regex's named captures, or `key=value` pairs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    /// The text field (a dotted path; `message` is a raw line).
    pub field: String,
    /// A regex whose named groups become fields, as text.
    pub regex: Option<Spanned<String>>,
    /// `true`: the text is `key=value` pairs separated by spaces, values optionally quoted.
    pub pairs: Option<bool>,
    /// The object the fields go into; the top of `details` when not given.
    pub into: Option<String>,
    /// Values that mean "no value" (ALB writes `-`): such fields are left out.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// Where and how the event time is read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// Paths in precedence: the first that holds a time in `format` wins.
    pub fields: Vec<Spanned<String>>,
    /// `auto` (the default: what the `timestamp` plugin reads), `rfc3339`, `epoch_s`,
    /// `epoch_ms`, `epoch_us`, `epoch_ns`, `syslog`, `unix_date`, or a strftime format.
    pub format: Option<Spanned<String>>,
    /// Several formats, tried in order for each field (instead of `format`).
    #[serde(default)]
    pub formats: Vec<Spanned<String>>,
    /// Zone abbreviations for `unix_date` beyond the built-in ones: `{ IST = "+05:30" }`.
    #[serde(default)]
    pub zones: BTreeMap<String, Spanned<String>>,
}

/// Severity by a field's value (as text); values not in `map` leave the severity alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityMap {
    pub field: String,
    #[serde(default)]
    pub map: BTreeMap<String, Spanned<String>>,
    /// Numeric thresholds (`{ "7" = "ERROR" }`): the highest one the value reaches applies
    /// (GuardDuty's severity 1.0 to 10.0).
    #[serde(default)]
    pub at_least: BTreeMap<String, Spanned<String>>,
}

/// The `details.auth` shape of a login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Paths whose first present value is the user.
    pub user: Vec<String>,
    /// The path holding the outcome.
    pub outcome: String,
    /// Values of `outcome` that mean success.
    pub success: Vec<String>,
    /// Values of `outcome` that mean failure; when not given, every other value is a failure
    /// (Entra ID's `status.errorcode`: 0 or an error code).
    pub failure: Option<Vec<String>>,
    /// `details.auth.service`.
    pub service: String,
    /// Conditions (as in `[match]`) that must all hold for the event to be a login at all
    /// (Okta's `eventtype` of a sign-in, not every event with an outcome).
    #[serde(default)]
    pub when: Vec<Spanned<Condition>>,
}

/// A sample record and what the lake line made of it must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub name: String,
    /// A JSON record…
    pub record: Option<String>,
    /// …or a raw text line.
    pub line: Option<String>,
    /// When the record was received (RFC 3339): times are believed up to a day after it.
    pub received: Option<Spanned<String>>,
    /// Paths into the lake line (`source`, `details.api.name`) and their values.
    pub expect: BTreeMap<String, Value>,
}
