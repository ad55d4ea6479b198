//! The scheduled run (`lakewatch_detect::run_scheduled`, the detector Lambda's loop) with the
//! local implementations: the embedded engine, state files with compare-and-swap, and the local
//! alert sink. The same run against moto is in functions/detector/tests/aws_moto.rs.

use std::path::Path;

use chrono::{DateTime, Utc};

use lakewatch::cli::detect::test_geoip_in;
use lakewatch::local::detect::{LocalAlerts, LocalQueries, extract_for_rules, state_dir};
use lakewatch::local::ingest::Ingest;
use lakewatch_detect::state::StateError;
use lakewatch_detect::{RuleOutcome, StateStore, run_scheduled};
use lakewatch_lake::layout::alert_object_key;
use lakewatch_lake::local::LocalLake;
use lakewatch_lake::versioned::FileStore;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Six failed logins of one user, 09:00:30 to 09:05:30 on 2026-11-20 (a rule test's events).
fn ingest_failures(lake: &Path) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests/brute-force-user-positive.ndjson");
    let pipeline = lakewatch_plugins::builtin_pipeline(&test_geoip_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("events/geoip"),
    ))
    .unwrap();
    let local = LocalLake::open(lake).unwrap();
    let mut failures = Vec::new();
    let mut ingest = Ingest::new(&pipeline, local.writer(Utc::now()), |m: &str| {
        failures.push(m.to_string())
    });
    let name = path.display().to_string();
    ingest
        .ingest(&name, &name, std::fs::File::open(&path).unwrap())
        .unwrap();
    ingest.finish().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

fn run(lake: &Path, now: &str) -> RuleOutcome {
    let rules: Vec<_> = lakewatch_detect::bundled::rules()
        .unwrap()
        .into_iter()
        .filter(|rule| rule.id == "brute-force-user")
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = FileStore::new(state_dir(lake));
    let (_, engine) = runtime
        .block_on(extract_for_rules(lake, &store, at(now)))
        .unwrap();
    let mut outcomes = runtime.block_on(run_scheduled(
        &rules,
        &LocalQueries::new(&engine),
        &store,
        &LocalAlerts::new(lake),
        at(now),
        12,
    ));
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

#[test]
fn a_scheduled_run_on_the_local_implementations_writes_publishes_and_keeps_its_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ingest_failures(lake);

    // A first run starts the rule at its latest due window, before the failures.
    let first = run(lake, "2026-11-20T08:52:00Z");
    assert_eq!(
        (first.report.error.as_ref(), first.report.windows.len()),
        (None, 1)
    );
    assert_eq!(first.report.alerts.len(), 0);

    // The next run catches up every window since, alerts once (later windows are suppressed),
    // writes the alert file of its window, publishes to the local topic, moves the watermark.
    let second = run(lake, "2026-11-20T09:42:00Z");
    assert_eq!(second.report.error, None);
    assert_eq!(second.report.windows.len(), 10);
    assert_eq!(second.report.alerts.len(), 1, "{:?}", second.report.alerts);
    assert_eq!(second.published, 1);
    let alert = &second.report.alerts[0];
    let window = second
        .report
        .windows
        .iter()
        .copied()
        .find(|w| w.end.to_rfc3339() == at(&alert.windowend).to_rfc3339())
        .unwrap_or_else(|| panic!("{} is the end of an evaluated window", alert.windowend));
    assert!(
        lake.join(alert_object_key(
            "brute-force-user",
            window.start,
            window.end
        ))
        .is_file()
    );
    let topic = std::fs::read_to_string(LocalAlerts::topic_path(lake)).unwrap();
    assert_eq!(topic.lines().count(), 1);
    let store = FileStore::new(state_dir(lake));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let saved = runtime.block_on(store.load("brute-force-user")).unwrap();
    assert_eq!(saved.state.watermark, Some(at("2026-11-20T09:35:00Z")));

    // Nothing is due again at the same time, and nothing is published twice.
    let again = run(lake, "2026-11-20T09:42:00Z");
    assert_eq!((again.report.windows.len(), again.published), (0, 0));
    assert_eq!(
        std::fs::read_to_string(LocalAlerts::topic_path(lake)).unwrap(),
        topic
    );

    // A run that read the state before it moved may not save over it.
    let stale = runtime.block_on(store.save("brute-force-user", &saved.state, None));
    assert!(
        matches!(stale, Err(StateError::Conflict { .. })),
        "{stale:?}"
    );
}
