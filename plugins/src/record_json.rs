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

use crate::shell::insert_keeping_both;

/// Parses one record's JSON text (any JSON value; the caller decides what it accepts).
pub fn parse_record(text: &str) -> Result<Value, serde_json::Error> {
    let maybe_big = Cell::new(false);
    let value = parse_with(text, KeepingDuplicates(&maybe_big))?;
    if !maybe_big.get() {
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

/// serde_json's `Value` as serde_json parses it, except that duplicate keys are all kept; it
/// notes whether a float may have been a big integer.
#[derive(Clone, Copy)]
struct KeepingDuplicates<'a>(&'a Cell<bool>);

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
            self.0.set(true);
        }
        Ok(float(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(item) = items.next_element_seed(self)? {
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(self)?;
            insert_keeping_both(&mut map, key, value);
        }
        Ok(Value::Object(map))
    }
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
            _ => parse_with(text, KeepingDuplicates(&Cell::new(false))).map_err(E::custom),
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
