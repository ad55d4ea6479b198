//! Runs the sample records of source files through the whole pipeline and compares the lake
//! line with what each test expects: `lakewatch test-sources` and the bundled sources' unit
//! test are this function.

use serde_json::Value;

use super::{DeclarativeSource, SampleTest};
use crate::pipeline::{Outcome, Pipeline, Record};
use crate::shell::Origin;

/// What became of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    pub source: String,
    pub test: String,
    /// Empty when the test passed; otherwise one line per difference.
    pub failures: Vec<String>,
}

/// Runs every test of `sources` through `pipeline` (which must hold those sources).
pub fn run(pipeline: &Pipeline, sources: &[DeclarativeSource]) -> Vec<TestResult> {
    let mut results = Vec::new();
    for source in sources {
        for (position, test) in source.tests().iter().enumerate() {
            results.push(TestResult {
                source: source.id().to_string(),
                test: test.name.clone(),
                failures: run_one(pipeline, source, test, position as u64),
            });
        }
    }
    results
}

fn run_one(
    pipeline: &Pipeline,
    source: &DeclarativeSource,
    test: &SampleTest,
    position: u64,
) -> Vec<String> {
    let record = Record {
        text: &test.text,
        kind: test.kind,
        origin: Origin {
            container: source.file(),
            position,
        },
    };
    let event = match pipeline.process(record, test.received) {
        Outcome::Ok(event) => event,
        Outcome::Dropped { plugin, reason } => {
            return vec![format!("dropped by {plugin}: {reason}")];
        }
        Outcome::Failed { reason, .. } => return vec![format!("failed: {reason}")],
    };
    let mut failures = Vec::new();
    if !event.plugins.iter().any(|p| p == source.id()) {
        failures.push(format!(
            "not recognised by {} (plugins that changed it: {})",
            source.id(),
            event.plugins.join(", ")
        ));
    }
    let line: Value = serde_json::from_str(&event.to_json_line()).expect("the lake line is JSON");
    for (path, expected) in &test.expect {
        let found = lookup(&line, path);
        if !same(found, expected) {
            let found = found.map_or("(absent)".to_string(), Value::to_string);
            failures.push(format!("{path}: expected {expected}, got {found}"));
        }
    }
    failures
}

/// The value at a dotted path of the lake line (`details.api.name`).
fn lookup<'a>(line: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(line, |value, key| value.get(key))
}

/// Equal values; numbers compare by value (`2246.401314` as written in TOML and as computed).
fn same(found: Option<&Value>, expected: &Value) -> bool {
    match (found, expected) {
        (Some(Value::Number(a)), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            _ => a == b,
        },
        (Some(found), expected) => found == expected,
        (None, _) => false,
    }
}
