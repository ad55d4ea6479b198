//! Durations as rule files write them: `90s`, `15m`, `2h`, `30d`.

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer};

/// Parses `<n><unit>` with unit `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit: write e.g. 15m, 2h or 30d"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} must start with a whole number, e.g. 15m"))?;
    let delta = match unit {
        "s" => TimeDelta::try_seconds(number),
        "m" => TimeDelta::try_minutes(number),
        "h" => TimeDelta::try_hours(number),
        "d" => TimeDelta::try_days(number),
        _ => None,
    };
    delta.ok_or_else(|| format!("duration {text:?}: the unit must be s, m, h or d"))
}

/// Serde adapter for a duration field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TimeDelta, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Serde adapter for an optional duration field.
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TimeDelta>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse_duration(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("90s"), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse_duration("15m"), Ok(TimeDelta::minutes(15)));
        assert_eq!(parse_duration("2h"), Ok(TimeDelta::hours(2)));
        assert_eq!(parse_duration("30d"), Ok(TimeDelta::days(30)));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("15w").unwrap_err().contains("unit must be"));
        assert!(parse_duration("m").unwrap_err().contains("whole number"));
    }
}
