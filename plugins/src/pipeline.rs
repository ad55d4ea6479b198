//! The pipeline: runs the registered plugins over each record, in a fixed order, and turns
//! whatever happens into one [`Outcome`] per record. Nothing here panics on bad input: a
//! plugin's error or panic fails that one record, with the plugin's name in the reason.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::lowercase_keys::KeyCase;
use crate::plugin::{Plugin, Trigger};
use crate::shell::{Event, KeySignature, Origin, RecordKind};

/// One record as framing found it: its text, whether it is JSON or a raw line, and where it was.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub text: &'a str,
    pub kind: RecordKind,
    pub origin: Origin<'a>,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The finished event, ready for the lake.
    Ok(Event),
    /// A plugin dropped the event on purpose.
    Dropped {
        plugin: &'static str,
        reason: String,
    },
    /// The record could not be processed; the reason says why and, for plugins, which one.
    Failed {
        reason: String,
        /// The plugin that failed (an error or a panic); `None` when the record was not JSON.
        plugin: Option<&'static str>,
    },
}

/// The ordered plugins. Build it once (at Lambda init, at CLI start) and share it.
pub struct Pipeline {
    plugins: Vec<(Box<dyn Plugin>, Triggers)>,
    /// `lowercase_keys` runs first, so records are parsed with their keys lower-cased already ([`crate::lowercase_keys::KeyCase`]).
    lowercases_first: bool,
}

/// A [`Trigger`] prepared once: every record asks every plugin's triggers, so a dotted path
/// below `details` is split here rather than for each record.
enum Matcher {
    /// `Trigger::Field` of a path below `details`, split at its dots, with the
    /// [`KeySignature`] bit of its first key.
    Detail(Vec<String>, u64),
    Other(Trigger),
}

/// One plugin's triggers, prepared once. Most plugins (every source) wait for fields below
/// `details` that nearly no event has: the bits of all their first keys together turn such a
/// plugin away with one test, rather than one per trigger (perf: some forty plugins are asked
/// about every record).
struct Triggers {
    matchers: Vec<Matcher>,
    /// The [`KeySignature`] bits of the first keys of every trigger, when every trigger is a
    /// field below `details`; `None` when some other trigger may match.
    only_details: Option<u64>,
}

impl Triggers {
    fn new(triggers: Vec<Trigger>) -> Self {
        let matchers: Vec<Matcher> = triggers.into_iter().map(Matcher::new).collect();
        let only_details = matchers.iter().try_fold(0, |bits, matcher| match matcher {
            Matcher::Detail(_, bit) => Some(bits | bit),
            Matcher::Other(_) => None,
        });
        Triggers {
            matchers,
            only_details,
        }
    }

    /// Whether any trigger matches; `keys` as in [`Matcher::matches`].
    fn match_any(&self, event: &Event, keys: &mut Option<KeySignature>) -> bool {
        if let Some(bits) = self.only_details {
            let keys = *keys.get_or_insert_with(|| KeySignature::of(&event.details));
            if !keys.may_hold(bits) {
                return false;
            }
        }
        self.matchers
            .iter()
            .any(|matcher| matcher.matches(event, keys))
    }
}

impl Matcher {
    fn new(trigger: Trigger) -> Self {
        match trigger {
            Trigger::Field(path) if !crate::shell::SHELL_FIELDS.contains(&path.as_str()) => {
                let path: Vec<String> = path.split('.').map(str::to_string).collect();
                let bit = KeySignature::bit(&path[0]);
                Matcher::Detail(path, bit)
            }
            other => Matcher::Other(other),
        }
    }

    /// [`Trigger::matches`]; `keys` is the signature of the event's `details` as it is now,
    /// computed on first need.
    fn matches(&self, event: &Event, keys: &mut Option<KeySignature>) -> bool {
        match self {
            Matcher::Detail(path, bit) => {
                let keys = *keys.get_or_insert_with(|| KeySignature::of(&event.details));
                if !keys.may_hold(*bit) {
                    return false;
                }
                let mut value = path.first().and_then(|key| event.details.get(key));
                for key in &path[1..] {
                    value = value
                        .and_then(Value::as_object)
                        .and_then(|map| map.get(key));
                }
                value.is_some()
            }
            Matcher::Other(trigger) => trigger.matches(event),
        }
    }
}

impl Pipeline {
    /// Orders the plugins: normalization before enrichment, then by priority, then by name, so
    /// the output never depends on the order of the list.
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Self {
        let mut plugins: Vec<_> = plugins
            .into_iter()
            .map(|plugin| {
                let registration = plugin.registration();
                (plugin, registration)
            })
            .collect();
        plugins.sort_by(|(a, ra), (b, rb)| {
            (ra.stage, ra.priority, a.name()).cmp(&(rb.stage, rb.priority, b.name()))
        });
        let plugins = plugins
            .into_iter()
            .map(|(plugin, registration)| (plugin, Triggers::new(registration.triggers)))
            .collect::<Vec<_>>();
        let lowercases_first = plugins
            .first()
            .is_some_and(|(plugin, _)| plugin.name() == crate::lowercase_keys::NAME);
        Pipeline {
            plugins,
            lowercases_first,
        }
    }

    /// The plugins' names in the order they run.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|(p, _)| p.name()).collect()
    }

    /// Builds the shell for one record and runs the plugins on it.
    pub fn process(&self, record: Record<'_>, received: DateTime<Utc>) -> Outcome {
        let event = match record.kind {
            RecordKind::Line => Event::from_line(record.text, record.origin, received),
            RecordKind::Json => match self.parse(record.text) {
                Ok((Value::Object(map), key_case)) => {
                    let mut event = Event::from_json(map, record.text, record.origin, received);
                    event.key_case = key_case;
                    event
                }
                Ok((other, _)) => {
                    return Outcome::Failed {
                        reason: format!(
                            "record is JSON but not an object (found {}); send one object per record",
                            json_type_name(&other)
                        ),
                        plugin: None,
                    };
                }
                Err(error) => {
                    return Outcome::Failed {
                        reason: format!("record is not valid JSON: {error}"),
                        plugin: None,
                    };
                }
            },
        };
        self.run(event)
    }

    /// A JSON record's value, with its keys lower-cased when `lowercase_keys` runs first.
    fn parse(&self, text: &str) -> Result<(Value, KeyCase), serde_json::Error> {
        if self.lowercases_first {
            crate::record_json::parse_record_lowering_keys(text)
        } else {
            crate::record_json::parse_record(text).map(|value| (value, KeyCase::AsSent))
        }
    }

    /// Runs the plugins on an event that is already in the shell.
    pub fn run(&self, mut event: Event) -> Outcome {
        let mut keys = None;
        for (plugin, triggers) in &self.plugins {
            if !triggers.match_any(&event, &mut keys) {
                continue;
            }
            // Whatever it says, a plugin that ran may have changed the keys.
            keys = None;
            let verdict = catch_unwind(AssertUnwindSafe(|| plugin.process(&mut event)));
            match verdict {
                Ok(Ok(crate::plugin::Verdict::Unchanged)) => {}
                Ok(Ok(crate::plugin::Verdict::Changed)) => {
                    let name = plugin.name();
                    if !event.plugins.iter().any(|p| p == name) {
                        event.plugins.push(name.to_string());
                    }
                }
                Ok(Ok(crate::plugin::Verdict::Drop(reason))) => {
                    return Outcome::Dropped {
                        plugin: plugin.name(),
                        reason,
                    };
                }
                Ok(Err(error)) => {
                    return Outcome::Failed {
                        reason: format!("plugin {} failed: {error}", plugin.name()),
                        plugin: Some(plugin.name()),
                    };
                }
                Err(panic) => {
                    return Outcome::Failed {
                        reason: format!(
                            "plugin {} panicked: {}",
                            plugin.name(),
                            panic_message(panic.as_ref())
                        ),
                        plugin: Some(plugin.name()),
                    };
                }
            }
        }
        if event.utctimestamp.is_none() {
            event.fall_back_to_received_time();
        }
        Outcome::Ok(event)
    }
}

/// Counts of outcomes, per source, that always add up: `records = ok + dropped + failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: u64,
    pub dropped: u64,
    pub failed: u64,
    /// Per event source (`unknown` for records that failed before a source was known).
    pub by_source: BTreeMap<String, SourceTally>,
    /// Per plugin that dropped or failed a record: which plugin to look at when drops or
    /// failures grow.
    pub by_plugin: BTreeMap<String, PluginTally>,
}

/// What one plugin dropped and failed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginTally {
    pub dropped: u64,
    pub failed: u64,
}

/// Outcome counts of one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceTally {
    pub ok: u64,
    pub dropped: u64,
    pub failed: u64,
}

impl Tally {
    /// Counts one outcome. Dropped and failed records count under `unknown` source.
    pub fn count(&mut self, outcome: &Outcome) {
        let (source, field): (&str, fn(&mut SourceTally) -> &mut u64) = match outcome {
            Outcome::Ok(event) => (&event.source, |t| &mut t.ok),
            Outcome::Dropped { .. } => (crate::shell::UNKNOWN, |t| &mut t.dropped),
            Outcome::Failed { .. } => (crate::shell::UNKNOWN, |t| &mut t.failed),
        };
        match outcome {
            Outcome::Ok(_) => self.ok += 1,
            Outcome::Dropped { .. } => self.dropped += 1,
            Outcome::Failed { .. } => self.failed += 1,
        }
        // Looked up before inserting: a copy of the source's name per record was an allocation
        // per event.
        match self.by_source.get_mut(source) {
            Some(tally) => *field(tally) += 1,
            None => *field(self.by_source.entry(source.to_string()).or_default()) += 1,
        }
        match outcome {
            Outcome::Dropped { plugin, .. } => {
                self.by_plugin
                    .entry(plugin.to_string())
                    .or_default()
                    .dropped += 1;
            }
            Outcome::Failed {
                plugin: Some(plugin),
                ..
            } => self.by_plugin.entry(plugin.to_string()).or_default().failed += 1,
            _ => {}
        }
    }

    /// Counts a record that failed before it reached the pipeline (framing, encoding).
    pub fn count_failed(&mut self) {
        self.count(&Outcome::Failed {
            reason: String::new(),
            plugin: None,
        });
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.dropped += other.dropped;
        self.failed += other.failed;
        for (source, counts) in &other.by_source {
            let mine = self.by_source.entry(source.clone()).or_default();
            mine.ok += counts.ok;
            mine.dropped += counts.dropped;
            mine.failed += counts.failed;
        }
        self.merge_plugins(other);
    }

    /// Adds another tally's per-plugin counts only: the events of a record that failed as a
    /// whole count as failed, yet the plugins that dropped or failed some of them did so.
    pub fn merge_plugins(&mut self, other: &Tally) {
        for (plugin, counts) in &other.by_plugin {
            let mine = self.by_plugin.entry(plugin.clone()).or_default();
            mine.dropped += counts.dropped;
            mine.failed += counts.failed;
        }
    }

    /// Every record counted.
    pub fn records(&self) -> u64 {
        self.ok + self.dropped + self.failed
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{PluginError, Registration, Stage, Trigger, Verdict};
    use std::sync::Mutex;

    /// A plugin for tests: records that it ran, then does what it was told.
    struct Probe {
        name: &'static str,
        registration: Registration,
        action: fn(&mut Event) -> Result<Verdict, PluginError>,
        log: &'static Mutex<Vec<&'static str>>,
    }

    impl Plugin for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn registration(&self) -> Registration {
            self.registration.clone()
        }
        fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
            self.log.lock().unwrap().push(self.name);
            (self.action)(event)
        }
    }

    fn probe(
        name: &'static str,
        stage: Stage,
        priority: i32,
        triggers: Vec<Trigger>,
        action: fn(&mut Event) -> Result<Verdict, PluginError>,
        log: &'static Mutex<Vec<&'static str>>,
    ) -> Box<dyn Plugin> {
        Box::new(Probe {
            name,
            registration: Registration::new(stage, priority, triggers),
            action,
            log,
        })
    }

    fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn json(text: &str) -> Record<'_> {
        Record {
            text,
            kind: RecordKind::Json,
            origin: Origin {
                container: "test",
                position: 0,
            },
        }
    }

    fn changed(_: &mut Event) -> Result<Verdict, PluginError> {
        Ok(Verdict::Changed)
    }

    #[test]
    fn runs_normalization_before_enrichment_then_by_priority_then_name() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let pipeline = Pipeline::new(vec![
            probe(
                "enrich",
                Stage::Enrich,
                -10,
                vec![Trigger::Always],
                changed,
                &LOG,
            ),
            probe(
                "b",
                Stage::Normalize,
                5,
                vec![Trigger::Always],
                changed,
                &LOG,
            ),
            probe(
                "a",
                Stage::Normalize,
                5,
                vec![Trigger::Always],
                changed,
                &LOG,
            ),
            probe(
                "first",
                Stage::Normalize,
                1,
                vec![Trigger::Always],
                changed,
                &LOG,
            ),
        ]);
        assert_eq!(pipeline.plugin_names(), ["first", "a", "b", "enrich"]);
        let Outcome::Ok(event) = pipeline.process(json("{}"), received()) else {
            panic!("expected an event")
        };
        assert_eq!(*LOG.lock().unwrap(), ["first", "a", "b", "enrich"]);
        assert_eq!(event.plugins, ["first", "a", "b", "enrich"]);
    }

    #[test]
    fn triggers_see_changes_made_by_earlier_plugins() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let pipeline = Pipeline::new(vec![
            probe(
                "set-source",
                Stage::Normalize,
                0,
                vec![Trigger::Field("kind".into())],
                |e| {
                    e.source = "gsuite".into();
                    Ok(Verdict::Changed)
                },
                &LOG,
            ),
            probe(
                "on-gsuite",
                Stage::Enrich,
                0,
                vec![Trigger::Source("gsuite".into())],
                changed,
                &LOG,
            ),
            probe(
                "on-tag",
                Stage::Enrich,
                0,
                vec![Trigger::Tag("never".into())],
                changed,
                &LOG,
            ),
            probe(
                "on-line",
                Stage::Enrich,
                0,
                vec![Trigger::RawLine],
                changed,
                &LOG,
            ),
        ]);
        let Outcome::Ok(event) = pipeline.process(json(r#"{"kind":"x"}"#), received()) else {
            panic!("expected an event")
        };
        assert_eq!(event.plugins, ["set-source", "on-gsuite"]);
    }

    #[test]
    fn unchanged_plugins_are_not_listed() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let pipeline = Pipeline::new(vec![probe(
            "looker",
            Stage::Normalize,
            0,
            vec![Trigger::Always],
            |_| Ok(Verdict::Unchanged),
            &LOG,
        )]);
        let Outcome::Ok(event) = pipeline.process(json("{}"), received()) else {
            panic!("expected an event")
        };
        assert!(event.plugins.is_empty());
        assert_eq!(*LOG.lock().unwrap(), ["looker"]);
    }

    #[test]
    fn a_drop_stops_the_pipeline_with_the_reason() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let pipeline = Pipeline::new(vec![
            probe(
                "dropper",
                Stage::Normalize,
                0,
                vec![Trigger::Always],
                |_| Ok(Verdict::Drop("noise".into())),
                &LOG,
            ),
            probe(
                "after",
                Stage::Enrich,
                0,
                vec![Trigger::Always],
                changed,
                &LOG,
            ),
        ]);
        assert_eq!(
            pipeline.process(json("{}"), received()),
            Outcome::Dropped {
                plugin: "dropper",
                reason: "noise".into()
            }
        );
        assert_eq!(*LOG.lock().unwrap(), ["dropper"]);
    }

    #[test]
    fn plugin_errors_and_panics_fail_only_that_record_and_name_the_plugin() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let failing = Pipeline::new(vec![probe(
            "broken",
            Stage::Normalize,
            0,
            vec![Trigger::Always],
            |_| Err("bad field".into()),
            &LOG,
        )]);
        assert_eq!(
            failing.process(json("{}"), received()),
            Outcome::Failed {
                reason: "plugin broken failed: bad field".into(),
                plugin: Some("broken"),
            }
        );
        let panicking = Pipeline::new(vec![probe(
            "boom",
            Stage::Normalize,
            0,
            vec![Trigger::Field("explode".into())],
            |_| panic!("kaboom"),
            &LOG,
        )]);
        assert_eq!(
            panicking.process(json(r#"{"explode":1}"#), received()),
            Outcome::Failed {
                reason: "plugin boom panicked: kaboom".into(),
                plugin: Some("boom"),
            }
        );
        assert!(matches!(
            panicking.process(json("{}"), received()),
            Outcome::Ok(_)
        ));
    }

    #[test]
    fn invalid_and_non_object_json_fail_with_a_reason() {
        let pipeline = Pipeline::new(vec![]);
        let Outcome::Failed { reason, .. } = pipeline.process(json("{oops"), received()) else {
            panic!("expected a failure")
        };
        assert!(reason.starts_with("record is not valid JSON"), "{reason}");
        let Outcome::Failed { reason, .. } = pipeline.process(json("[1]"), received()) else {
            panic!("expected a failure")
        };
        assert!(reason.contains("not an object"), "{reason}");
    }

    #[test]
    fn big_integers_and_duplicate_keys_reach_the_lake_line_whole() {
        let pipeline = crate::builtin_pipeline(&crate::PluginConfig::default()).unwrap();
        let record = r#"{"bytes":18446744073709551617,"user":"alice","User":"carol","user":"bob","n":{"id":-99999999999999999999}}"#;
        let Outcome::Ok(event) = pipeline.process(json(record), received()) else {
            panic!("expected an event")
        };
        let line: Value = serde_json::from_str(&event.to_json_line()).unwrap();
        let details = &line["details"];
        assert_eq!(details["bytes"], "18446744073709551617");
        assert_eq!(details["n"]["id"], "-99999999999999999999");
        // The duplicate comes second in the document and gets `_2`; the key that lower-cases
        // alike is renamed after both, as lowercase_keys names its collisions.
        assert_eq!(
            (&details["user"], &details["user_2"], &details["user_3"]),
            (&"alice".into(), &"bob".into(), &"carol".into())
        );
    }

    #[test]
    fn without_an_event_time_the_received_time_is_used_and_tagged() {
        let Outcome::Ok(event) = Pipeline::new(vec![]).process(json("{}"), received()) else {
            panic!("expected an event")
        };
        assert_eq!(event.utctimestamp, Some(received()));
        assert_eq!(event.tags, [crate::shell::TIMESTAMP_FALLBACK_TAG]);
    }

    #[test]
    fn tally_names_the_plugins_that_dropped_or_failed() {
        static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let pipeline = Pipeline::new(vec![
            probe(
                "dropper",
                Stage::Normalize,
                0,
                vec![Trigger::Field("drop".into())],
                |_| Ok(Verdict::Drop("noise".into())),
                &LOG,
            ),
            probe(
                "broken",
                Stage::Normalize,
                1,
                vec![Trigger::Field("fail".into())],
                |_| Err("bad field".into()),
                &LOG,
            ),
        ]);
        let mut tally = Tally::default();
        for record in [
            r#"{"drop":1}"#,
            r#"{"drop":2}"#,
            r#"{"fail":1}"#,
            "{}",
            "nope",
        ] {
            tally.count(&pipeline.process(json(record), received()));
        }
        assert_eq!(
            tally.by_plugin["dropper"],
            PluginTally {
                dropped: 2,
                failed: 0
            }
        );
        assert_eq!(
            tally.by_plugin["broken"],
            PluginTally {
                dropped: 0,
                failed: 1
            }
        );
        assert_eq!(tally.by_plugin.len(), 2, "invalid JSON names no plugin");
        let mut merged = Tally::default();
        merged.merge(&tally);
        assert_eq!(merged, tally);
    }

    #[test]
    fn tally_adds_up_per_source() {
        let mut tally = Tally::default();
        let pipeline = Pipeline::new(vec![]);
        tally.count(&pipeline.process(json(r#"{"source":"a"}"#), received()));
        tally.count(&pipeline.process(json("nope"), received()));
        tally.count_failed();
        assert_eq!((tally.ok, tally.dropped, tally.failed), (1, 0, 2));
        assert_eq!(tally.records(), 3);
        assert_eq!(tally.by_source["a"].ok, 1);
        assert_eq!(tally.by_source["unknown"].failed, 2);
    }
}
