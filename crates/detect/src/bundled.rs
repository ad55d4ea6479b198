//! The rules shipped with lakewatch (`rules/*.toml`) and their test events, embedded at build
//! time (see `build.rs`): the detector Lambda runs them, and the `lakewatch` command uses them
//! by default, so an installed binary needs no checkout beside it.

use std::path::Path;

use lakewatch_plugins::content::ContentSet;

use crate::rule::{Rule, RuleError};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/rules.rs"));
}

/// The bundled rule files as (file name, text), for [`crate::rule::load`].
pub(crate) const FILES: &[(&str, &str)] = embedded::RULES;

/// The bundled rules, checked as a rules directory is.
pub fn rules() -> Result<Vec<Rule>, RuleError> {
    let rules = crate::rule::load(&ContentSet::default())?;
    if rules.is_empty() {
        return Err(RuleError {
            path: "embedded rules".into(),
            message: "this binary was built without rules: add rules/*.toml and rebuild".into(),
        });
    }
    Ok(rules)
}

/// The text of a bundled rule's test events: `path` as the rule names it (`tests/x.ndjson`).
pub fn test_events(path: &Path) -> Option<&'static str> {
    embedded::TEST_EVENTS
        .iter()
        .find(|(name, _)| Path::new(name) == path)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_file_is_embedded_with_its_test_events() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let on_disk = crate::load_rules(&dir).unwrap();
        let embedded = rules().unwrap();
        let ids = |rules: &[Rule]| rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&embedded), ids(&on_disk));
        assert!(ids(&embedded).contains(&"impossible-travel".to_string()));
        for rule in &embedded {
            for test in &rule.tests {
                let text = test_events(&test.events).unwrap_or_else(|| {
                    panic!("{}: {} not embedded", rule.id, test.events.display())
                });
                assert_eq!(
                    text,
                    std::fs::read_to_string(dir.join(&test.events)).unwrap()
                );
            }
        }
    }
}
