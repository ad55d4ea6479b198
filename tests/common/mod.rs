//! Paths into the source tree shared by the integration tests (the commands themselves use the
//! rules and test GeoIP databases embedded in the binary).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lakewatch::cli::detect::{detect, test_geoip_in};
use lakewatch_detect::{Mode, Rule, RuleReport};

/// The rules of the source tree, read as files.
pub fn bundled_rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// The test GeoIP databases of the source tree.
pub fn bundled_geoip() -> lakewatch_plugins::PluginConfig {
    test_geoip_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events/geoip"))
}

/// Runs one rule on the lake (replay or scheduled) and returns its report, which must hold no
/// error.
pub fn run(lake: &Path, rule: &Rule, now: DateTime<Utc>, mode: Mode) -> RuleReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut reports = runtime
        .block_on(detect(lake, std::slice::from_ref(rule), now, mode))
        .unwrap()
        .reports;
    let report = reports.remove(0);
    assert_eq!(report.error, None);
    report
}
