//! `lowercase_keys`: lower-cases every key of `details`, at every depth.
//!
//! Producers spell the same field differently (CloudTrail's `eventName`, a forwarder's
//! `eventname`); queries are written once, against lower-case paths (`$.eventname`), so every
//! key is lower-cased before anything else looks at the event. Objects inside arrays are
//! lower-cased too.
//!
//! Two keys that lower-case alike (`eventName` and `eventname`) are both kept: a key that was
//! already lower case keeps its name, and the renamed one takes the next free name with
//! [`insert_keeping_both`] (`eventname_2`, `eventname_3`…), so no value is ever lost.
//!
//! This runs on every event, so a map whose keys are all lower case already is left in place
//! (only its values are visited); only a map with a key to rename is rebuilt.

use serde_json::map::Entry;
use serde_json::{Map, Value};

use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::{Event, insert_keeping_both};

/// Runs first of all (priority -100), so every other plugin sees lower-case keys only.
pub const PRIORITY: i32 = -100;
/// The plugin's name: the pipeline looks for it to parse records with their keys lower-cased
/// already ([`KeyCase`]).
pub const NAME: &str = "lowercase_keys";

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct LowercaseKeys;

impl Plugin for LowercaseKeys {
    fn name(&self) -> &'static str {
        NAME
    }

    fn registration(&self) -> Registration {
        Registration::new(Stage::Normalize, PRIORITY, vec![Trigger::Always])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let changed = match std::mem::take(&mut event.key_case) {
            KeyCase::AsSent => lowercase_map(&mut event.details),
            KeyCase::LowerCased {
                renamed,
                shell_names_left: false,
            } => renamed,
            // Left to do: a top-level key that the shell would have taken (`eventID`).
            KeyCase::LowerCased {
                renamed,
                shell_names_left: true,
            } => lowercase_own_keys(&mut event.details) | renamed,
        };
        Ok(if changed {
            Verdict::Changed
        } else {
            Verdict::Unchanged
        })
    }
}

/// What parsing already did with the keys of a record, so that this plugin does not walk and
/// rebuild every map a second time.
///
/// The pipeline parses a record with [`crate::record_json::parse_record_lowering_keys`] when
/// this plugin runs first: every object is then built with its keys already lower-cased by
/// `lowercase_key`, as [`lowercase_map`] would have renamed them. A record in which the two
/// could name a key differently (two keys of one object that repeat or lower-case alike,
/// `eventID` beside `eventid`, a `details` object of its own) is parsed as sent and
/// lower-cased here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyCase {
    /// As the producer sent them: this plugin lower-cases every depth.
    #[default]
    AsSent,
    /// Lower-cased while parsing; `renamed` says whether any key changed. With
    /// `shell_names_left`, a record's own key that becomes a name the shell takes (CloudTrail's
    /// `eventID`: the shell must not take it) was left as sent, for this plugin to rename.
    LowerCased {
        renamed: bool,
        shell_names_left: bool,
    },
}

/// Lower-cases the keys of `map` and of everything below it; says whether any key changed.
pub fn lowercase_map(map: &mut Map<String, Value>) -> bool {
    let changed = map
        .values_mut()
        .fold(false, |changed, value| lowercase_value(value) | changed);
    lowercase_own_keys(map) | changed
}

/// Lower-cases the keys of `map` itself, not of the objects below it; says whether any changed.
fn lowercase_own_keys(map: &mut Map<String, Value>) -> bool {
    let renamed: Vec<String> = map
        .keys()
        .filter(|key| needs_lowercasing(key))
        .cloned()
        .collect();
    if renamed.is_empty() {
        // The usual case once a source is lower case: the map stays as it is.
        return false;
    }
    // Keys that were lower case already keep their names; the renamed ones are taken out and
    // inserted again after them, in the map's order, so on a collision it is the renamed key
    // that gets the `_2` suffix.
    let renamed: Vec<(String, Value)> = renamed
        .into_iter()
        .filter_map(|key| map.remove_entry(&key))
        .collect();
    for (mut key, value) in renamed {
        lowercase_key(&mut key);
        // One search for the usual case of no collision.
        match map.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(taken) => {
                let key = taken.key().clone();
                insert_keeping_both(map, key, value);
            }
        }
    }
    true
}

/// Lower-cases one key as this plugin renames it; says whether it changed. The parser calls it
/// for every key (see [`KeyCase`]).
pub(crate) fn lowercase_key(key: &mut String) -> bool {
    if !needs_lowercasing(key) {
        return false;
    }
    if key.is_ascii() {
        key.make_ascii_lowercase();
    } else {
        *key = key.to_lowercase();
    }
    true
}

/// Lower-cases the keys of the objects in `value`, through arrays; says whether any changed.
fn lowercase_value(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => lowercase_map(map),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| lowercase_value(item) | changed),
        _ => false,
    }
}

/// Whether lower-casing would change the key. Cheap for the usual ASCII key (this runs for
/// every key of every record).
pub(crate) fn needs_lowercasing(key: &str) -> bool {
    if !crate::bytewise::any_ascii_uppercase_or_non_ascii(key.as_bytes()) {
        false
    } else if key.is_ascii() {
        true
    } else {
        key.chars().any(|c| c.to_lowercase().ne(std::iter::once(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::RecordKind;
    use chrono::Utc;
    use serde_json::json;

    fn run(details: Value) -> (Verdict, Value) {
        let mut event = Event::empty(Utc::now(), RecordKind::Json);
        let Value::Object(map) = details else {
            panic!("details are an object")
        };
        event.details = map;
        let verdict = LowercaseKeys.process(&mut event).unwrap();
        (verdict, Value::Object(event.details))
    }

    #[test]
    fn lower_cases_keys_at_every_depth() {
        let (verdict, details) = run(json!({
            "eventName": "ConsoleLogin",
            "userIdentity": {"sessionContext": {"sessionIssuer": {"userName": "x"}}}
        }));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(
            details,
            json!({
                "eventname": "ConsoleLogin",
                "useridentity": {"sessioncontext": {"sessionissuer": {"username": "x"}}}
            })
        );
    }

    #[test]
    fn lower_cases_objects_inside_arrays_and_nested_arrays() {
        let (verdict, details) = run(json!({
            "events": [{"Name": "login_success", "Parameters": [{"Name": "a"}]}, "Text", [{"Deep": 1}]]
        }));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(
            details,
            json!({
                "events": [{"name": "login_success", "parameters": [{"name": "a"}]}, "Text", [{"deep": 1}]]
            })
        );
    }

    #[test]
    fn values_are_never_lower_cased() {
        let (_, details) = run(json!({"Key": "MixedCase Value", "list": ["UPPER"]}));
        assert_eq!(
            details,
            json!({"key": "MixedCase Value", "list": ["UPPER"]})
        );
    }

    #[test]
    fn a_collision_keeps_both_values_and_the_lower_case_key_keeps_its_name() {
        let (verdict, details) = run(json!({"eventName": "A", "eventname": "B", "EVENTNAME": "C"}));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(details["eventname"], "B");
        let mut others = vec![
            details["eventname_2"].clone(),
            details["eventname_3"].clone(),
        ];
        others.sort_by_key(|v| v.to_string());
        assert_eq!(others, [json!("A"), json!("C")]);
        assert_eq!(details.as_object().unwrap().len(), 3);
    }

    #[test]
    fn a_collision_in_a_nested_object_keeps_both_values() {
        let (_, details) = run(json!({"actor": {"Email": "a@x", "email": "b@x"}}));
        assert_eq!(
            details,
            json!({"actor": {"email": "b@x", "email_2": "a@x"}})
        );
    }

    #[test]
    fn already_lower_case_events_are_unchanged() {
        let original = json!({"eventname": "x", "nested": [{"a": {"b": 1}}], "n": null});
        let (verdict, details) = run(original.clone());
        assert_eq!(verdict, Verdict::Unchanged);
        assert_eq!(details, original);
    }

    #[test]
    fn lower_cases_non_ascii_keys() {
        let (verdict, details) = run(json!({"Ünïcode": 1, "straße": 2}));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(details, json!({"ünïcode": 1, "straße": 2}));
    }

    #[test]
    fn needs_lowercasing_detects_only_keys_that_change() {
        for (key, expected) in [
            ("eventname", false),
            ("eventName", true),
            ("c-ip", false),
            ("cs(User-Agent)", true),
            ("", false),
            ("ÉTÉ", true),
            ("été", false),
            ("日本", false),
        ] {
            assert_eq!(needs_lowercasing(key), expected, "{key}");
        }
    }

    #[test]
    fn collisions_that_lowercasing_while_parsing_would_name_otherwise_are_left_to_the_plugin() {
        use crate::pipeline::{Outcome, Pipeline, Record};
        use crate::shell::Origin;
        let pipeline = Pipeline::new(vec![Box::new(LowercaseKeys)]);
        for (record, expected) in [
            // `eventID` is not the shell's; the typed `eventid` goes back under `details`
            // first, so `eventID` is the one renamed, after `EventID_2` in the map's order.
            (
                r#"{"eventid":1,"EventID":"x","EventID_2":"y"}"#,
                json!({"eventid": 1, "eventid_2": "x", "eventid_2_2": "y"}),
            ),
            (r#"{"a":{"B":1,"b":2}}"#, json!({"a": {"b": 2, "b_2": 1}})),
            (
                r#"{"details":{"User":1},"user":2}"#,
                json!({"user": 2, "user_2": 1}),
            ),
        ] {
            let origin = Origin {
                container: "test",
                position: 0,
            };
            let record = Record {
                text: record,
                kind: RecordKind::Json,
                origin,
            };
            let Outcome::Ok(event) = pipeline.process(record, Utc::now()) else {
                panic!("expected an event")
            };
            assert_eq!(Value::Object(event.details), expected);
            assert_eq!(event.plugins, [NAME]);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Nested values whose keys collide often once lower-cased (`a`, `A`, `aB`, `Ab`…).
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(Value::from),
                "[a-z]{0,3}".prop_map(Value::from),
                Just(Value::Null),
            ];
            leaf.prop_recursive(3, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map("[aAbB]{1,2}", inner, 0..5)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        /// Every scalar in a value, as text, sorted: what must survive lower-casing.
        fn leaves(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
                Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
                scalar => out.push(scalar.to_string()),
            }
        }

        fn keys_are_lower_case(value: &Value) -> bool {
            match value {
                Value::Object(map) => map
                    .iter()
                    .all(|(k, v)| *k == k.to_lowercase() && keys_are_lower_case(v)),
                Value::Array(items) => items.iter().all(keys_are_lower_case),
                _ => true,
            }
        }

        proptest! {
            #[test]
            fn lower_casing_loses_no_value_and_a_second_run_changes_nothing(
                map in prop::collection::btree_map("[aAbB]{1,2}", value(), 0..6)
            ) {
                let original = Value::Object(map.into_iter().collect());
                let (_, details) = run(original.clone());
                let (mut before, mut after) = (Vec::new(), Vec::new());
                leaves(&original, &mut before);
                leaves(&details, &mut after);
                before.sort();
                after.sort();
                prop_assert_eq!(before, after);
                prop_assert!(keys_are_lower_case(&details), "{}", details);
                let (verdict, again) = run(details.clone());
                prop_assert_eq!(verdict, Verdict::Unchanged);
                prop_assert_eq!(again, details);
            }

            #[test]
            fn lower_casing_while_parsing_gives_the_event_this_plugin_gives(
                record in object_text(2)
            ) {
                use crate::pipeline::{Outcome, Pipeline, Record};
                use crate::shell::Origin;
                let origin = Origin { container: "test", position: 0 };
                let received = Utc::now();
                // The reference: parsed as sent, then every depth lower-cased by the plugin.
                let Ok(Value::Object(map)) = crate::record_json::parse_record(&record) else {
                    panic!("test records are objects: {record}")
                };
                let mut expected = Event::from_json(map, &record, origin, received);
                let verdict = LowercaseKeys.process(&mut expected).unwrap();
                if verdict == Verdict::Changed && !expected.plugins.iter().any(|p| p == NAME) {
                    expected.plugins.push(NAME.to_string());
                }
                expected.fall_back_to_received_time();
                let pipeline = Pipeline::new(vec![Box::new(LowercaseKeys)]);
                let record = Record { text: &record, kind: RecordKind::Json, origin };
                let Outcome::Ok(event) = pipeline.process(record, received) else {
                    panic!("expected an event")
                };
                prop_assert_eq!(event, expected);
            }
        }

        /// The text of a JSON object whose keys repeat, collide once lower-cased and take
        /// the shell's names in any case, with objects of such keys inside, `depth` deep.
        fn object_text(depth: u32) -> BoxedStrategy<String> {
            let key = prop_oneof![
                Just("a"),
                Just("A"),
                Just("a_2"),
                Just("A_2"),
                Just("b"),
                Just("Ünï"),
                Just("eventid"),
                Just("eventID"),
                Just("EventId"),
                Just("Summary"),
                Just("summary"),
                Just("severity"),
                Just("SEVERITY"),
                Just("Details"),
                Just("details"),
                Just("tags"),
                Just("Tags"),
                Just("eventid_2"),
                Just("EventID_2"),
            ];
            let leaf = prop_oneof![
                Just("1".to_string()),
                Just("\"x\"".to_string()),
                Just("null".to_string()),
                Just("[\"t\"]".to_string()),
            ];
            let value = if depth == 0 {
                leaf.boxed()
            } else {
                prop_oneof![
                    3 => leaf,
                    1 => object_text(depth - 1),
                    1 => object_text(depth - 1).prop_map(|o| format!("[{o}]")),
                ]
                .boxed()
            };
            prop::collection::vec((key, value), 0..6)
                .prop_map(|entries| {
                    let fields: Vec<String> = entries
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                })
                .boxed()
        }
    }
}
