//! The event shell: the fixed set of columns every event in the lake has.
//!
//! Producers send whatever JSON they have; the shell is what makes it queryable with the same
//! SQL whatever the source. A record becomes an [`Event`] with [`Event::from_json`] or
//! [`Event::from_line`]; plugins then fill in the shell fields; [`Event::to_json_line`] writes
//! the line the lake stores.
//!
//! Nothing a producer sent is lost on the way in: top-level keys that are not shell fields move
//! under `details`, and shell fields of the wrong type are coerced (scalars become strings) or,
//! when they cannot be, kept under `details` with their original value.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// The shell's field names, in the order they are written to the lake.
pub const SHELL_FIELDS: [&str; 11] = [
    "utctimestamp",
    "receivedtimestamp",
    "eventid",
    "summary",
    "category",
    "source",
    "hostname",
    "severity",
    "tags",
    "plugins",
    "details",
];

/// Top-level keys that [`Event::from_json`] takes into shell fields rather than `details`
/// (times always go under `details`, for the timestamp plugin).
const SHELL_FIELDS_TAKEN: [&str; 8] = [
    "eventid", "summary", "category", "source", "hostname", "severity", "tags", "plugins",
];

/// Whether the shell takes a top-level key of that name out of the record ([`Event::from_json`])
/// once its ASCII letters are lower-cased.
pub(crate) fn is_taken_by_the_shell_ignoring_case(key: &str) -> bool {
    key.eq_ignore_ascii_case("details")
        || SHELL_FIELDS_TAKEN
            .iter()
            .any(|name| name.eq_ignore_ascii_case(key))
}

/// Severity of an event that did not say.
pub const DEFAULT_SEVERITY: &str = "INFO";
/// Category and source of an event no plugin recognised.
pub const UNKNOWN: &str = "unknown";
/// Tag of an event whose own time could not be used, so its received time stands in.
pub const TIMESTAMP_FALLBACK_TAG: &str = "timestamp_fallback";

/// How a record reached the pipeline: as JSON, or as a raw text line (syslog and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Json,
    Line,
}

/// Where a record came from, so that its derived `eventid` is the same each time the same
/// record is processed (a Lambda retry, an object ingested twice) and different for two
/// identical records at different places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The container of the record: `s3://bucket/key#etag`, a Firehose record id, a file path.
    pub container: &'a str,
    /// The record's position in its container (line number or record index).
    pub position: u64,
}

/// One event: the shell fields plus the source's own fields under `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub eventid: String,
    /// Event time. `None` until the timestamp plugin decides; the pipeline falls back to the
    /// received time (tagged [`TIMESTAMP_FALLBACK_TAG`]) when nothing set it.
    pub utctimestamp: Option<DateTime<Utc>>,
    pub receivedtimestamp: DateTime<Utc>,
    pub summary: String,
    pub category: String,
    pub source: String,
    pub hostname: String,
    pub severity: String,
    pub tags: Vec<String>,
    pub plugins: Vec<String>,
    pub details: Map<String, Value>,
    /// Whether the record was a raw text line rather than JSON. Not written to the lake.
    pub kind: RecordKind,
    /// Whether the keys of `details` were lower-cased while parsing; `lowercase_keys` reads
    /// it (and resets it). Not written to the lake.
    pub key_case: crate::lowercase_keys::KeyCase,
}

impl Event {
    /// An empty shell with defaults, as a record with no fields at all would give.
    pub fn empty(received: DateTime<Utc>, kind: RecordKind) -> Self {
        Event {
            eventid: String::new(),
            utctimestamp: None,
            receivedtimestamp: received,
            summary: String::new(),
            category: UNKNOWN.to_string(),
            source: UNKNOWN.to_string(),
            hostname: String::new(),
            severity: DEFAULT_SEVERITY.to_string(),
            tags: Vec::new(),
            plugins: Vec::new(),
            details: Map::new(),
            kind,
            key_case: Default::default(),
        }
    }

    /// Builds the shell from a JSON object.
    ///
    /// `raw` is the record's text as it arrived; with `origin` it derives the `eventid` when
    /// the record has no string `eventid` of its own.
    pub fn from_json(
        record: Map<String, Value>,
        raw: &str,
        origin: Origin<'_>,
        received: DateTime<Utc>,
    ) -> Self {
        let mut event = Event::empty(received, RecordKind::Json);
        let mut record = record;
        // `details` first, so that top-level keys moved below it never overwrite its keys.
        // Most records hold none of the shell's own fields: look up only those that may be there.
        let keys = KeySignature::of(&record);
        let take = |record: &mut Map<String, Value>, name: &str| {
            keys.may_hold(KeySignature::bit(name))
                .then(|| record.remove(name))
                .flatten()
        };
        match take(&mut record, "details") {
            Some(Value::Object(details)) => event.details = details,
            Some(Value::Null) | None => {
                // The usual case: the record's own map becomes `details` once the shell fields
                // are out, rather than being rebuilt key by key (perf: every record does this).
                // Nothing can collide: the map's keys are unique, and a shell field that goes
                // back under `details` (a typed value) was removed from it first.
                let shell: Vec<(&str, Value)> = SHELL_FIELDS_TAKEN
                    .iter()
                    .filter_map(|name| Some((*name, take(&mut record, name)?)))
                    .collect();
                event.details = record;
                for (key, value) in shell {
                    event.take_top_level(key.to_string(), value);
                }
                record = Map::new();
            }
            Some(other) => {
                insert_keeping_both(&mut event.details, "details".to_string(), other);
            }
        }
        for (key, value) in record {
            event.take_top_level(key, value);
        }
        if event.eventid.is_empty() {
            event.eventid = derive_eventid(raw, origin);
        }
        event
    }

    /// Builds the shell from a raw text line: the line goes to `details.message`.
    pub fn from_line(line: &str, origin: Origin<'_>, received: DateTime<Utc>) -> Self {
        let mut event = Event::empty(received, RecordKind::Line);
        event
            .details
            .insert("message".to_string(), Value::String(line.to_string()));
        event.eventid = derive_eventid(line, origin);
        event
    }

    /// Places one top-level key of the incoming record: a shell field if the value fits,
    /// otherwise under `details`.
    fn take_top_level(&mut self, key: String, value: Value) {
        let slot = match key.as_str() {
            "eventid" => Some(&mut self.eventid),
            "summary" => Some(&mut self.summary),
            "category" => Some(&mut self.category),
            "source" => Some(&mut self.source),
            "hostname" => Some(&mut self.hostname),
            "severity" => Some(&mut self.severity),
            _ => None,
        };
        if let Some(slot) = slot {
            // eventid must be a string to be kept: a number could collide with derived ids.
            let coerced = match (&value, key.as_str()) {
                (Value::String(s), _) => Some(s.clone()),
                (_, "eventid") => None,
                _ => scalar_to_string(&value),
            };
            match coerced {
                Some(text) if !text.is_empty() => {
                    *slot = if key == "severity" {
                        text.to_uppercase()
                    } else {
                        text
                    };
                    if !matches!(value, Value::String(_)) {
                        // Keep the original typed value too: coercion must not lose it.
                        insert_keeping_both(&mut self.details, key, value);
                    }
                }
                Some(_) => {}
                None if value.is_null() => {}
                None => insert_keeping_both(&mut self.details, key, value),
            }
            return;
        }
        match key.as_str() {
            "tags" | "plugins" => match string_list(&value) {
                Some(list) => {
                    for item in list {
                        if key == "tags" {
                            self.add_tag(&item);
                        } else if !self.plugins.contains(&item) {
                            self.plugins.push(item);
                        }
                    }
                }
                None => insert_keeping_both(&mut self.details, key, value),
            },
            "utctimestamp" | "receivedtimestamp" => {
                // Times are decided by the timestamp plugin (which reads `details`) and the
                // pipeline; the producer's value is kept for it under `details`.
                insert_keeping_both(&mut self.details, key, value);
            }
            _ => insert_keeping_both(&mut self.details, key, value),
        }
    }

    /// Adds a tag unless the event has it already.
    pub fn add_tag(&mut self, tag: &str) {
        if !self.tags.iter().any(|t| t == tag) {
            self.tags.push(tag.to_string());
        }
    }

    /// Uses the received time as event time and says so with a tag.
    pub fn fall_back_to_received_time(&mut self) {
        self.utctimestamp = Some(self.receivedtimestamp);
        self.add_tag(TIMESTAMP_FALLBACK_TAG);
    }

    /// The event time, or the received time when no event time was set.
    pub fn event_time(&self) -> DateTime<Utc> {
        self.utctimestamp.unwrap_or(self.receivedtimestamp)
    }

    /// The value at a dotted path below `details` (`"id.time"`), if present.
    pub fn detail(&self, path: &str) -> Option<&Value> {
        // Cut at each dot by hand: plugins ask for many paths of every event, and `split`'s
        // searcher costs more than these short lookups.
        let dot = |text: &str| text.bytes().position(|b| b == b'.');
        let Some(at) = dot(path) else {
            return self.details.get(path);
        };
        let mut current = self.details.get(&path[..at])?;
        let mut rest = &path[at + 1..];
        while let Some(at) = dot(rest) {
            current = current.as_object()?.get(&rest[..at])?;
            rest = &rest[at + 1..];
        }
        current.as_object()?.get(rest)
    }

    /// The string at a dotted path below `details`, if it is a string.
    pub fn detail_str(&self, path: &str) -> Option<&str> {
        self.detail(path)?.as_str()
    }

    /// Whether a field is present: a shell field name, or a dotted path below `details`.
    /// A shell field counts as present when it holds something other than its default.
    pub fn has_field(&self, path: &str) -> bool {
        match path {
            "eventid" => !self.eventid.is_empty(),
            "utctimestamp" => self.utctimestamp.is_some(),
            "receivedtimestamp" => true,
            "summary" => !self.summary.is_empty(),
            "category" => self.category != UNKNOWN,
            "source" => self.source != UNKNOWN,
            "hostname" => !self.hostname.is_empty(),
            "severity" => true,
            "tags" => !self.tags.is_empty(),
            "plugins" => !self.plugins.is_empty(),
            _ => self.detail(path).is_some(),
        }
    }

    /// The line the lake stores: one JSON object, no trailing newline.
    pub fn to_json_line(&self) -> String {
        let mut line = Vec::new();
        self.write_json_line(&mut line);
        line.pop();
        String::from_utf8(line).expect("JSON written from strings is UTF-8")
    }

    /// Appends the lake line and a newline to `out`.
    ///
    /// Written by hand rather than through [`Serialize`] (which gives the same bytes, a test
    /// checks it): serde_json looks at every byte of every string for escapes one at a time,
    /// which was the largest single cost of the pipeline. Here a string is checked sixteen
    /// bytes at a time and copied whole; only one that needs escaping goes to serde_json.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let summary = self.summary_text();
        let hostname = self.hostname_text();
        let (time, received) = (
            TimestampText::of(self.event_time()),
            TimestampText::of(self.receivedtimestamp),
        );
        let texts = [
            ("utctimestamp", time.as_str()),
            ("receivedtimestamp", received.as_str()),
            ("eventid", &self.eventid),
            ("summary", &summary),
            ("category", &self.category),
            ("source", &self.source),
            ("hostname", &hostname),
            ("severity", &self.severity),
        ];
        out.push(b'{');
        for (name, text) in texts {
            write_json_key(out, name);
            write_json_str(out, text);
            out.push(b',');
        }
        for (name, list) in [("tags", &self.tags), ("plugins", &self.plugins)] {
            write_json_key(out, name);
            write_json_array(out, list, |out, item| write_json_str(out, item));
            out.push(b',');
        }
        write_json_key(out, "details");
        write_json_map(out, &self.details);
        out.extend_from_slice(b"}\n");
    }

    /// The summary as written: the event's own, or, for a record no source described, one
    /// made from its telling fields ([`crate::unrecognised::summary`]).
    fn summary_text(&self) -> std::borrow::Cow<'_, str> {
        if self.summary.is_empty() {
            std::borrow::Cow::Owned(crate::unrecognised::summary(self))
        } else {
            std::borrow::Cow::Borrowed(self.summary.as_str())
        }
    }

    /// The hostname as written: the event's own, or, for a record no source described (no
    /// summary), the first common hostname field ([`crate::unrecognised::hostname`]).
    fn hostname_text(&self) -> std::borrow::Cow<'_, str> {
        if self.hostname.is_empty() && self.summary.is_empty() {
            crate::unrecognised::hostname(self).unwrap_or_default()
        } else {
            std::borrow::Cow::Borrowed(self.hostname.as_str())
        }
    }
}

/// `"name":` for a name that needs no escaping.
fn write_json_key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, as serde_json writes it.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if crate::bytewise::any_json_escape(text.as_bytes()) {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// A JSON object, as serde_json writes a [`Map`].
fn write_json_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, key);
        out.push(b':');
        write_json_value(out, value);
    }
    out.push(b'}');
}

/// A JSON array of `items`, each written by `write`.
fn write_json_array<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// A JSON value, as serde_json writes it (numbers are left to serde_json).
fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            serde_json::to_writer(&mut *out, number).expect("writing to a Vec cannot fail")
        }
        Value::String(text) => write_json_str(out, text),
        Value::Array(items) => write_json_array(out, items, write_json_value),
        Value::Object(map) => write_json_map(out, map),
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(SHELL_FIELDS.len()))?;
        map.serialize_entry("utctimestamp", &TimestampText::of(self.event_time()))?;
        map.serialize_entry(
            "receivedtimestamp",
            &TimestampText::of(self.receivedtimestamp),
        )?;
        map.serialize_entry("eventid", &self.eventid)?;
        map.serialize_entry("summary", &self.summary_text())?;
        map.serialize_entry("category", &self.category)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("hostname", &self.hostname_text())?;
        map.serialize_entry("severity", &self.severity)?;
        map.serialize_entry("tags", &self.tags)?;
        map.serialize_entry("plugins", &self.plugins)?;
        map.serialize_entry("details", &self.details)?;
        map.end()
    }
}

/// The lake's timestamp format: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always UTC with six digits.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    TimestampText::of(time).as_str().to_string()
}

/// A time in the lake's format, written digit by digit on the stack: every event writes two
/// of these, and chrono's `format` re-parses its format string each time (about 5% of the
/// whole pipeline once). Years outside 0–9999 and leap seconds, which chrono spells
/// specially, still go through chrono.
enum TimestampText {
    Usual([u8; 27]),
    Unusual(String),
}

impl TimestampText {
    fn of(time: DateTime<Utc>) -> Self {
        let year = time.year();
        if !(0..=9999).contains(&year) || time.nanosecond() >= 1_000_000_000 {
            return TimestampText::Unusual(time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |end: usize, width: usize, mut value: u32| {
            for i in (end - width..end).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(4, 4, year as u32);
        put(7, 2, time.month());
        put(10, 2, time.day());
        put(13, 2, time.hour());
        put(16, 2, time.minute());
        put(19, 2, time.second());
        put(26, 6, time.nanosecond() / 1_000);
        TimestampText::Usual(out)
    }

    fn as_str(&self) -> &str {
        match self {
            TimestampText::Usual(bytes) => std::str::from_utf8(bytes).expect("ASCII digits"),
            TimestampText::Unusual(text) => text,
        }
    }
}

impl Serialize for TimestampText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Derives a deterministic event id from where a record came from and its text.
///
/// The same record at the same place always gets the same id, so a retried Lambda or a
/// re-ingested object writes the same ids; two identical records at different positions
/// get different ids.
pub fn derive_eventid(raw: &str, origin: Origin<'_>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(origin.container.as_bytes());
    hasher.update(&[0]);
    hasher.update(&origin.position.to_le_bytes());
    hasher.update(raw.as_bytes());
    id_from_hash(&hasher.finalize())
}

/// An id from a hash: its first 128 bits, laid out like a UUID so it reads as an id in consoles
/// and SQL. Event ids and alert ids share it.
pub fn id_from_hash(hash: &blake3::Hash) -> String {
    // Pieces pushed one by one: `format!` costs more than the hash on short records.
    let hex = hash.to_hex();
    let mut id = String::with_capacity(36);
    for (i, range) in [0..8, 8..12, 12..16, 16..20, 20..32]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            id.push('-');
        }
        id.push_str(&hex[range]);
    }
    id
}

/// A 64-bit summary of the keys of a map (an event's `details`, a record): a key's bit is set
/// when some key may be that key, clear when none is. Field triggers, the timestamp's list of
/// fields and the shell's own fields are looked up in every event and nearly all of them miss;
/// a clear bit turns one away without searching the map (string comparisons in those searches
/// were 7% of the pipeline).
#[derive(Clone, Copy)]
pub(crate) struct KeySignature(u64);

impl KeySignature {
    pub(crate) fn of(details: &Map<String, Value>) -> Self {
        KeySignature(details.keys().fold(0, |bits, key| bits | Self::bit(key)))
    }

    /// The bit of one key, from its length and its first and last bytes.
    pub(crate) fn bit(key: &str) -> u64 {
        let bytes = key.as_bytes();
        let (first, last) = (bytes.first().copied(), bytes.last().copied());
        let mix =
            bytes.len() * 7 + usize::from(first.unwrap_or(0)) * 3 + usize::from(last.unwrap_or(0));
        1 << (mix % 64)
    }

    /// Whether a key of one of these bits (one key's, or several keys' together) may be in
    /// the map.
    pub(crate) fn may_hold(self, bits: u64) -> bool {
        self.0 & bits != 0
    }
}

/// Inserts `value` under `key`, or under `key_2`, `key_3`… when `key` is taken, so that a
/// collision (two keys that lower-case alike, a top-level key that exists under `details`)
/// keeps both values.
pub fn insert_keeping_both(map: &mut Map<String, Value>, key: String, value: Value) {
    // One lookup on the common path (no collision): this runs for every key of every record.
    let key = match map.entry(key) {
        serde_json::map::Entry::Vacant(slot) => {
            slot.insert(value);
            return;
        }
        serde_json::map::Entry::Occupied(taken) => taken.key().clone(),
    };
    let mut n = 2;
    loop {
        let candidate = format!("{key}_{n}");
        if !map.contains_key(&candidate) {
            map.insert(candidate, value);
            return;
        }
        n += 1;
    }
}

/// A JSON scalar as text; `None` for null, arrays and objects.
fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string, or an array of scalars, as a list of strings; `None` for anything else.
fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(scalar_to_string).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-17T06:10:54.5Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn origin() -> Origin<'static> {
        Origin {
            container: "test",
            position: 1,
        }
    }

    fn shell(value: Value) -> Event {
        let raw = value.to_string();
        let Value::Object(map) = value else {
            panic!("test records are objects")
        };
        Event::from_json(map, &raw, origin(), received())
    }

    #[test]
    fn moves_unknown_top_level_keys_under_details() {
        let event = shell(json!({"eventName": "ConsoleLogin", "nested": {"a": 1}}));
        assert_eq!(event.details["eventName"], "ConsoleLogin");
        assert_eq!(event.details["nested"]["a"], 1);
    }

    #[test]
    fn top_level_key_never_overwrites_a_details_key() {
        let event = shell(json!({"user": "top", "details": {"user": "nested"}}));
        assert_eq!(event.details["user"], "nested");
        assert_eq!(event.details["user_2"], "top");
    }

    #[test]
    fn keeps_a_string_eventid_and_derives_one_otherwise() {
        assert_eq!(shell(json!({"eventid": "abc"})).eventid, "abc");
        let derived = shell(json!({"a": 1})).eventid;
        assert_eq!(derived.len(), 36);
        assert_eq!(derived, shell(json!({"a": 1})).eventid, "deterministic");
        assert_ne!(derived, shell(json!({"a": 2})).eventid);
    }

    #[test]
    fn numeric_eventid_is_kept_under_details_and_an_id_is_derived() {
        let event = shell(json!({"eventid": 42}));
        assert_eq!(event.details["eventid"], 42);
        assert_eq!(event.eventid.len(), 36);
    }

    #[test]
    fn identical_records_at_different_positions_get_different_ids() {
        let a = Event::from_line("same", origin(), received());
        let b = Event::from_line(
            "same",
            Origin {
                position: 2,
                ..origin()
            },
            received(),
        );
        assert_ne!(a.eventid, b.eventid);
    }

    #[test]
    fn coerces_scalar_shell_fields_and_keeps_the_typed_original() {
        let event = shell(json!({"severity": 5, "hostname": true, "summary": "x"}));
        assert_eq!(event.severity, "5");
        assert_eq!(event.hostname, "true");
        assert_eq!(event.details["severity"], 5);
        assert_eq!(event.details["hostname"], true);
        assert_eq!(event.summary, "x");
    }

    #[test]
    fn shell_field_holding_an_object_is_kept_under_details() {
        let event = shell(json!({"source": {"ip": "10.0.0.1"}}));
        assert_eq!(event.source, UNKNOWN);
        assert_eq!(event.details["source"]["ip"], "10.0.0.1");
    }

    #[test]
    fn severity_is_upper_case_and_defaults_to_info() {
        assert_eq!(shell(json!({"severity": "warning"})).severity, "WARNING");
        assert_eq!(shell(json!({})).severity, "INFO");
    }

    #[test]
    fn tags_are_deduplicated_and_a_single_string_is_a_tag() {
        assert_eq!(shell(json!({"tags": ["a", "b", "a"]})).tags, ["a", "b"]);
        assert_eq!(shell(json!({"tags": "solo"})).tags, ["solo"]);
        let bad = shell(json!({"tags": {"not": "a list"}}));
        assert!(bad.tags.is_empty());
        assert_eq!(bad.details["tags"]["not"], "a list");
    }

    #[test]
    fn non_object_details_is_kept() {
        let event = shell(json!({"details": "text"}));
        assert_eq!(event.details["details"], "text");
    }

    #[test]
    fn serializes_the_shell_in_order_with_six_digit_utc_times() {
        let mut event = shell(json!({"summary": "s", "eventid": "e"}));
        event.utctimestamp = Some(received());
        let line = event.to_json_line();
        assert!(line.starts_with(
            r#"{"utctimestamp":"2026-04-17T06:10:54.500000Z","receivedtimestamp":"2026-04-17T06:10:54.500000Z","eventid":"e","summary":"s","category":"unknown","source":"unknown","hostname":"","severity":"INFO","tags":[],"plugins":[],"details":{"#
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value, with strings that need escaping and numbers of every kind.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "(?s).{0,24}".prop_map(Value::from),
                "[a\"\\\\\u{0}-\u{1f}\u{7f}é]{0,24}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("(?s).{0,6}", inner, 0..4)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn needs_escape_finds_exactly_what_serde_json_escapes(
                bytes in prop::collection::vec(prop_oneof![20 => 0x20u8..=0xff, 1 => any::<u8>()], 0..40)
            ) {
                let expected = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
                prop_assert_eq!(crate::bytewise::any_json_escape(&bytes), expected);
            }

            #[test]
            fn the_lake_line_is_what_serde_json_writes(
                details in prop::collection::btree_map("(?s).{0,8}", value(), 0..6),
                summary in "(?s).{0,12}",
                tags in prop::collection::vec("(?s).{0,8}", 0..3),
            ) {
                let mut event = Event::from_line("a\tline", origin(), received());
                event.details = details.into_iter().collect();
                event.summary = summary;
                event.tags = tags;
                let mut line = Vec::new();
                event.write_json_line(&mut line);
                let expected = serde_json::to_string(&event).unwrap() + "\n";
                prop_assert_eq!(String::from_utf8(line).unwrap(), expected);
            }
        }
    }

    #[test]
    fn summary_is_never_empty() {
        let line = Event::from_line("hello world", origin(), received()).to_json_line();
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["summary"], "hello world");
        let value: Value = serde_json::from_str(&shell(json!({})).to_json_line()).unwrap();
        assert_eq!(value["summary"], "unknown event from unknown");
    }

    #[test]
    fn format_timestamp_matches_chrono_for_every_kind_of_time() {
        let chrono_format = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        for text in [
            "2026-04-17T06:10:54.5Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999999Z",
            "0001-01-01T00:00:00.000001Z",
            "9999-12-31T23:59:59.123456Z",
            "2016-12-31T23:59:60.25Z",
        ] {
            let time = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(format_timestamp(time), chrono_format(time), "{text}");
        }
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(format_timestamp(far), chrono_format(far), "year 10000");
        assert_eq!(format_timestamp(received()), "2026-04-17T06:10:54.500000Z");
    }

    #[test]
    fn finds_fields_by_dotted_path() {
        let event = shell(json!({"id": {"time": "t"}, "summary": "s"}));
        assert!(event.has_field("id.time"));
        assert!(event.has_field("summary"));
        assert!(!event.has_field("id.other"));
        assert_eq!(event.detail_str("id.time"), Some("t"));
    }
}
