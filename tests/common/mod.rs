//! Paths into the source tree shared by the integration tests (the commands themselves use the
//! rules and test GeoIP databases embedded in the binary).

use std::path::{Path, PathBuf};

use lakewatch::cli::detect::test_geoip_in;

/// The rules of the source tree, read as files.
pub fn bundled_rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// The test GeoIP databases of the source tree.
pub fn bundled_geoip() -> lakewatch_plugins::PluginConfig {
    test_geoip_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("events/geoip"))
}
