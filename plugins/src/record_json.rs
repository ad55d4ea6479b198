//! A JSON record's text as a [`Value`], losing nothing that serde_json's own `Value` drops.
//!
//! serde_json (without its `arbitrary_precision` feature, which would change every crate of the
//! workspace, since cargo features are unified) silently turns an integer beyond 64 bits into
//! a float (`18446744073709551617` becomes `1.8446744073709552e19`) and keeps only the last
//! value of a key that appears twice in one object. A record must reach the lake whole, so:
//!
//! - **An integer that fits neither `i64` nor `u64` is kept as a JSON string of its exact
//!   text** (`18446744073709551617` → `"18446744073709551617"`). serde_json's `Number` cannot
//!   hold it exactly; a string keeps every digit and is what SQL engines read big ids as anyway.
//!   Every other number is parsed exactly as serde_json parses it (`-0` stays `-0.0`).
//! - **Both values of a duplicate key are kept**, the first under the key and the next ones
//!   under `key_2`, `key_3`… in document order, with the same naming as keys that lower-case
//!   alike ([`insert_keeping_both`]).
//!
//! Errors are serde_json's own, with the same messages and positions. Parsing is serde_json's
//! parser with a visitor of ours, so it costs what `serde_json::from_str::<Value>` costs; the
//! exact-integer pass only runs again over a record in which serde_json found a float of
//! magnitude 2^63 or more (which is what it makes of a big integer), and parses such a
//! record's values one level at a time.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::lowercase_keys::{KeyCase, lowercase_key, needs_lowercasing};
use crate::shell::{insert_keeping_both, is_taken_by_the_shell_ignoring_case};

/// Parses one record's JSON text (any JSON value; the caller decides what it accepts).
pub fn parse_record(text: &str) -> Result<Value, serde_json::Error> {
    let flags = Flags::default();
    let value = parse_with(text, KeepingDuplicates::new(&flags, Keys::AsSent))?;
    finish(text, value, &flags)
}

/// [`parse_record`], with every key lower-cased as `lowercase_keys` renames them, in the same
/// pass (perf: walking and rebuilding every event's maps again cost a tenth of the pipeline).
/// A key of the record itself that becomes a name the shell takes (`Summary`, CloudTrail's
/// `eventID`) is left as sent, for the plugin. Where the two ways could name a key differently
/// (two keys of one object that repeat or lower-case alike, `eventID` beside `eventid`, a
/// `details` key, whose object is merged with the record's other keys before lower-casing),
/// the record is parsed again with its keys as sent and `lowercase_keys` does all the work,
/// so the event is the same either way.
pub fn parse_record_lowering_keys(text: &str) -> Result<(Value, KeyCase), serde_json::Error> {
    let flags = Flags::default();
    let value = parse_with(text, KeepingDuplicates::new(&flags, Keys::Record))?;
    if flags.not_lowered.get() {
        return parse_record(text).map(|value| (value, KeyCase::AsSent));
    }
    let keys = if flags.maybe_big.get() {
        // Reparsed keeping the digits of big integers, with every key as sent.
        KeyCase::AsSent
    } else {
        KeyCase::LowerCased {
            renamed: flags.renamed.get(),
            shell_names_left: flags.shell_names_left.get(),
        }
    };
    Ok((finish(text, value, &flags)?, keys))
}

/// The value as parsed, or parsed again keeping the digits of big integers when it may hold
/// one.
fn finish(text: &str, value: Value, flags: &Flags) -> Result<Value, serde_json::Error> {
    if !flags.maybe_big.get() {
        return Ok(value);
    }
    // Parsed again, now that serde_json has checked the syntax and the nesting depth (so the
    // errors, and the recursion below, are serde_json's), keeping the digits of big integers.
    parse_with(text, ExactValue)
}

fn parse_with<'de, S: DeserializeSeed<'de, Value = Value>>(
    text: &'de str,
    seed: S,
) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = seed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Whether serde_json may have given this float for an integer too big for 64 bits: it does
/// so only for integers of magnitude 2^63 and more, and a float of that size is rare.
fn may_be_big_integer(value: f64) -> bool {
    value.abs() >= 2f64.powi(63)
}

/// A float as serde_json's `Value` holds it (non-finite ones cannot come from its parser).
fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// The scalars every visitor here builds the same way serde_json's `Value` does.
macro_rules! scalar_visits {
    () => {
        fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
            Ok(Value::Bool(value))
        }
        fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
            Ok(Value::Number(value.into()))
        }
        fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
            Ok(Value::Number(value.into()))
        }
        fn visit_str<E>(self, value: &str) -> Result<Value, E> {
            Ok(Value::String(value.to_string()))
        }
        fn visit_string<E>(self, value: String) -> Result<Value, E> {
            Ok(Value::String(value))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    };
}

/// What a parse noticed, for [`parse_record`] and [`parse_record_lowering_keys`].
#[derive(Default)]
struct Flags {
    /// A float may have been a big integer.
    maybe_big: Cell<bool>,
    /// A key was lower-cased.
    renamed: Cell<bool>,
    /// A key of the record that becomes a name the shell takes was left as sent.
    shell_names_left: Cell<bool>,
    /// Lower-casing while parsing could give another map than `lowercase_keys` would.
    not_lowered: Cell<bool>,
}

/// Which keys of the object being parsed are lower-cased (see [`KeyCase`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// None, at any depth.
    AsSent,
    /// Every key but those that become a name the shell takes: the record itself (see
    /// [`KeepingDuplicates::record`]).
    Record,
    /// Every key: an object below the record.
    Nested,
}

/// serde_json's `Value` as serde_json parses it, except that duplicate keys are all kept and
/// keys may be lower-cased ([`Keys`]); it notes what [`Flags`] records.
#[derive(Clone, Copy)]
struct KeepingDuplicates<'a> {
    flags: &'a Flags,
    keys: Keys,
}

impl<'a> KeepingDuplicates<'a> {
    fn new(flags: &'a Flags, keys: Keys) -> Self {
        KeepingDuplicates { flags, keys }
    }

    /// The seed of the values inside this one.
    fn inner(self) -> Self {
        let keys = match self.keys {
            Keys::AsSent => Keys::AsSent,
            Keys::Record | Keys::Nested => Keys::Nested,
        };
        KeepingDuplicates { keys, ..self }
    }
}

impl<'de> DeserializeSeed<'de> for KeepingDuplicates<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeepingDuplicates<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    scalar_visits!();

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        if may_be_big_integer(value) {
            self.flags.maybe_big.set(true);
        }
        Ok(float(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(item) = items.next_element_seed(self.inner())? {
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        if self.keys == Keys::Record {
            return self.record(entries);
        }
        let mut map = Map::new();
        while let Some(mut key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(self.inner())?;
            if self.keys == Keys::AsSent {
                insert_keeping_both(&mut map, key, value);
                continue;
            }
            if lowercase_key(&mut key) {
                self.flags.renamed.set(true);
            }
            // With every lower-cased key distinct, the map is the one lowercase_keys makes; a
            // duplicate or a collision needs its naming.
            if map.insert(key, value).is_some() {
                self.flags.not_lowered.set(true);
            }
        }
        Ok(Value::Object(map))
    }
}

impl<'de> KeepingDuplicates<'_> {
    /// The record's own object. The shell takes its fields by their exact names (`eventid`,
    /// never CloudTrail's `eventID`, which stays under `details` as `eventid`), so a key that
    /// would become such a name is left as sent, for `lowercase_keys` to rename; the others
    /// are lower-cased here.
    fn record<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let mut shell_names = false;
        while let Some(mut key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(self.inner())?;
            if key == "details" {
                // Its object is merged with the record's other keys before lower-casing.
                self.flags.not_lowered.set(true);
            }
            if needs_lowercasing(&key) {
                if is_taken_by_the_shell_ignoring_case(&key) {
                    shell_names = true;
                } else {
                    lowercase_key(&mut key);
                    self.flags.renamed.set(true);
                }
            }
            if map.insert(key, value).is_some() {
                self.flags.not_lowered.set(true);
            }
        }
        if shell_names && any_alike_shell_name(&map) {
            // Which `eventid` gets `_2` is lowercase_keys' business.
            self.flags.not_lowered.set(true);
        }
        self.flags.shell_names_left.set(shell_names);
        Ok(Value::Object(map))
    }
}

/// Whether a key left as sent because it becomes a name the shell takes has a twin that
/// lower-cases alike (`eventID` beside `eventid` or `EventId`).
fn any_alike_shell_name(map: &Map<String, Value>) -> bool {
    let mut seen: Vec<String> = Vec::new();
    for key in map.keys() {
        if needs_lowercasing(key) && is_taken_by_the_shell_ignoring_case(key) {
            let lower = key.to_ascii_lowercase();
            if map.contains_key(&lower) || seen.contains(&lower) {
                return true;
            }
            seen.push(lower);
        }
    }
    false
}

/// [`KeepingDuplicates`], and integers beyond 64 bits kept exact: each value of an object or
/// array is taken as its raw text first, so a number's digits are still there to look at.
#[derive(Clone, Copy)]
struct ExactValue;

impl ExactValue {
    fn from_raw<E: de::Error>(raw: &RawValue) -> Result<Value, E> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'-' | b'0'..=b'9') if is_integer_beyond_64_bits(text) => {
                Ok(Value::String(text.to_string()))
            }
            Some(b'{' | b'[') => parse_with(text, ExactValue).map_err(E::custom),
            _ => parse_with(
                text,
                KeepingDuplicates::new(&Flags::default(), Keys::AsSent),
            )
            .map_err(E::custom),
        }
    }
}

/// Whether `text` (a valid JSON number) is an integer that neither `i64` nor `u64` holds.
fn is_integer_beyond_64_bits(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u64>().is_err()
        && text.parse::<i64>().is_err()
}

impl<'de> DeserializeSeed<'de> for ExactValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExactValue {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    scalar_visits!();

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(float(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::new();
        while let Some(raw) = items.next_element::<&'de RawValue>()? {
            array.push(Self::from_raw(raw)?);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let raw = entries.next_value::<&'de RawValue>()?;
            insert_keeping_both(&mut map, key, Self::from_raw(raw)?);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_beyond_64_bits_are_kept_as_exact_strings() {
        let value = parse_record(
            r#"{"big": 18446744073709551617, "neg": -9223372036854775809,
                "list": [1, 340282366920938463463374607431768211457], "deep": {"n": 99999999999999999999}}"#,
        )
        .unwrap();
        assert_eq!(value["big"], "18446744073709551617");
        assert_eq!(value["neg"], "-9223372036854775809");
        assert_eq!(
            value["list"],
            json!([1, "340282366920938463463374607431768211457"])
        );
        assert_eq!(value["deep"]["n"], "99999999999999999999");
    }

    #[test]
    fn numbers_within_64_bits_and_floats_parse_as_serde_json_parses_them() {
        let text = r#"{"max": 18446744073709551615, "min": -9223372036854775808, "zero": -0,
            "f": 1.5, "long": 1234567890123456789.5, "huge": 1e19, "huge_neg": -2.5e30, "exp": 12345678901234567890e-5,
            "digits": "123456789012345678901234"}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_record(text).unwrap(), expected);
        assert_eq!(
            parse_record(text).unwrap().to_string(),
            expected.to_string()
        );
    }

    #[test]
    fn duplicate_keys_keep_every_value_in_document_order() {
        for text in [
            r#"{"user": "alice", "user": "bob", "n": {"a": 1, "a": 2, "a": 3}}"#,
            // The same with a big integer, which takes the exact-integer path.
            r#"{"user": "alice", "user": "bob", "n": {"a": 1, "a": 2, "a": 3}, "id": 1234567890123456789012}"#,
        ] {
            let value = parse_record(text).unwrap();
            assert_eq!(value["user"], "alice", "{text}");
            assert_eq!(value["user_2"], "bob", "{text}");
            assert_eq!(value["n"], json!({"a": 1, "a_2": 2, "a_3": 3}), "{text}");
        }
    }

    #[test]
    fn errors_are_serde_json_errors() {
        for text in [
            "{\"a\": 1,}",
            "{\"a\": 12345678901234567890123",
            "[1, 2",
            "{\"a\": 1} x",
            "{\"a\": 0123}",
            "",
        ] {
            let expected = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            let error = parse_record(text).unwrap_err().to_string();
            assert_eq!(error, expected, "{text:?}");
        }
    }

    #[test]
    fn what_serde_json_parses_without_duplicates_or_big_integers_is_the_same() {
        let text = r#"{"a": [true, null, {"b": "\u00e9\n"}], "c": -12, "d": 0.25, "e": {}}"#;
        assert_eq!(
            parse_record(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
