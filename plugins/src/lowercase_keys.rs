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

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct LowercaseKeys;

impl Plugin for LowercaseKeys {
    fn name(&self) -> &'static str {
        "lowercase_keys"
    }

    fn registration(&self) -> Registration {
        Registration::new(Stage::Normalize, PRIORITY, vec![Trigger::Always])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        Ok(if lowercase_map(&mut event.details) {
            Verdict::Changed
        } else {
            Verdict::Unchanged
        })
    }
}

/// Lower-cases the keys of `map` and of everything below it; says whether any key changed.
pub fn lowercase_map(map: &mut Map<String, Value>) -> bool {
    if !map.keys().any(|key| needs_lowercasing(key)) {
        // The usual case once a source is lower case: the map stays as it is.
        return map
            .values_mut()
            .fold(false, |changed, value| lowercase_value(value) | changed);
    }
    // Rebuilt from its own entries: keys are lower-cased in place (no new allocation for
    // ASCII keys), which is cheaper than removing and re-inserting each camelCase key. The
    // kept keys come out in order, so the map is built from them in one pass rather than by
    // one search per key.
    let mut renamed = Vec::new();
    let mut kept = Vec::with_capacity(map.len());
    for (key, mut value) in std::mem::take(map) {
        lowercase_value(&mut value);
        if needs_lowercasing(&key) {
            renamed.push((key, value));
        } else {
            kept.push((key, value));
        }
    }
    *map = kept.into_iter().collect();
    // Keys that were lower case already keep their names; the renamed ones are inserted
    // after them, so on a collision it is the renamed key that gets the `_2` suffix.
    for (mut key, value) in renamed {
        if key.is_ascii() {
            key.make_ascii_lowercase();
        } else {
            key = key.to_lowercase();
        }
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

/// Whether lower-casing would change the key. Cheap for the usual ASCII key.
fn needs_lowercasing(key: &str) -> bool {
    if key.is_ascii() {
        key.bytes().any(|b| b.is_ascii_uppercase())
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
        }
    }
}
