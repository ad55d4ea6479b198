//! Every Lambda reads its settings from its environment (the Terraform module sets them) through
//! [`Env`], so that a missing or wrong setting is reported the same way by every function, with
//! the variable's name and what it should be.
//!
//! Conventions: a value that is empty or only blanks counts as not set for names and prefixes;
//! a number that is set must parse (blanks around it are ignored), or the function does not
//! start.

use std::str::FromStr;

/// A setting is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set: set it to the {1} (the Terraform module sets it on the function)")]
    Missing(&'static str, &'static str),
    #[error("{name}={value:?} is not {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// A function's settings, read from its environment.
pub trait FromEnv: Sized {
    /// Reads the settings through `env`.
    fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, SettingsError>;

    /// Reads the settings from the process environment.
    fn from_env() -> Result<Self, SettingsError> {
        Self::read(&Env::process())
    }

    /// Reads the settings through `lookup` (a map in tests).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Self::read(&Env::new(lookup))
    }
}

/// Reads settings through a lookup: the process environment in the Lambdas, a map in tests.
pub struct Env<F> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// The value of `name`, unless it is unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value of `name`; `what` says what it names, for the error when it is not set.
    pub fn required(
        &self,
        name: &'static str,
        what: &'static str,
    ) -> Result<String, SettingsError> {
        self.optional(name)
            .ok_or(SettingsError::Missing(name, what))
    }

    /// A key prefix (`state/detector/`): `default` when unset, and always ending with `/`.
    pub fn prefix(&self, name: &str, default: &str) -> String {
        let mut prefix = self.optional(name).unwrap_or_else(|| default.to_string());
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix
    }

    /// A value parsed from `name`, `default` when unset; `expected` describes the values
    /// `valid` accepts, for the error.
    pub fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, SettingsError> {
        match (self.lookup)(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .ok()
                .filter(|parsed| valid(parsed))
                .ok_or(SettingsError::Invalid {
                    name,
                    value,
                    expected,
                }),
        }
    }

    /// A whole number above 0 from `name`, `default` when unset.
    pub fn positive(&self, name: &'static str, default: u64) -> Result<u64, SettingsError> {
        self.parse(name, default, "a whole number above 0", |n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn blank_names_are_missing_and_prefixes_end_with_a_slash() {
        let env = env(&[("A", " "), ("P", "lw/state")]);
        assert_eq!(
            env.required("A", "lake bucket's name")
                .unwrap_err()
                .to_string(),
            "A is not set: set it to the lake bucket's name (the Terraform module sets it on the \
             function)"
        );
        assert_eq!(env.prefix("P", "x/"), "lw/state/");
        assert_eq!(env.prefix("A", "state/detector/"), "state/detector/");
    }

    #[test]
    fn numbers_are_trimmed_and_checked() {
        let env = env(&[("N", " 60 "), ("Z", "0"), ("E", "")]);
        assert_eq!(env.positive("N", 1), Ok(60));
        assert_eq!(env.positive("U", 7), Ok(7));
        assert_eq!(
            env.positive("Z", 1).unwrap_err().to_string(),
            "Z=\"0\" is not a whole number above 0"
        );
        assert!(
            env.positive("E", 1).is_err(),
            "set but empty is not a number"
        );
    }
}
