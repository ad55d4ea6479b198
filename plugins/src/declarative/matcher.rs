//! Recognition: the conditions of a source file's `[match]` table, compiled once.

use regex::Regex;
use serde_json::Value;

use crate::shell::Event;
use crate::sources::text;

/// One compiled condition on the field at `path` (below `details`).
#[derive(Debug)]
pub struct Condition {
    pub path: String,
    pub test: Test,
}

#[derive(Debug)]
pub enum Test {
    /// The field is present (`true`) or absent (`false`).
    Exists(bool),
    /// The field's scalar, as text, is one of these (numbers and text read alike).
    OneOf(Vec<String>),
    /// The field's scalar, as text, matches.
    Regex(Regex),
}

impl Condition {
    /// Whether the condition holds for the event as it is now.
    pub fn holds(&self, event: &Event) -> bool {
        let value = event.detail(&self.path);
        match &self.test {
            Test::Exists(wanted) => value.is_some() == *wanted,
            Test::OneOf(values) => {
                scalar(value).is_some_and(|found| values.iter().any(|v| *v == found))
            }
            Test::Regex(regex) => scalar(value).is_some_and(|found| regex.is_match(&found)),
        }
    }

    /// Whether the condition needs the field to be present: such a field can be the plugin's
    /// trigger, so the pipeline skips the source for records without it.
    pub fn needs_field(&self) -> bool {
        !matches!(self.test, Test::Exists(false))
    }
}

fn scalar(value: Option<&Value>) -> Option<std::borrow::Cow<'_, str>> {
    text(value?)
}

/// A condition's expected value as the text it is compared with.
pub fn expected_text(value: &Value) -> Option<String> {
    text(value).map(std::borrow::Cow::into_owned)
}
