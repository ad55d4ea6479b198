//! `lakewatch test-sources`: every source file's sample records through the whole pipeline.

use std::process::ExitCode;

use clap::Args;
use lakewatch_plugins::declarative::{self, check};
use lakewatch_plugins::{PluginConfig, builtin_pipeline};

use super::content::SourceDirs;

/// Run every source file's tests offline: each sample record goes through the whole built-in
/// pipeline (bundled sources plus those of --sources), and the lake line it becomes must hold
/// the expected fields. Exits non-zero when a test fails or a source file does not load.
#[derive(Debug, Args)]
pub struct TestSourcesArgs {
    #[command(flatten)]
    pub sources: SourceDirs,
}

pub fn run(args: TestSourcesArgs) -> anyhow::Result<ExitCode> {
    let config = PluginConfig {
        sources: args.sources.set(),
        ..PluginConfig::default()
    };
    let sources = declarative::load(&config.sources)?;
    let pipeline = builtin_pipeline(&config)?;
    let (mut passed, mut failed) = (0, 0);
    for source in &sources {
        if source.tests().is_empty() {
            failed += 1;
            println!(
                "FAIL {} ({}): the source has no tests",
                source.id(),
                source.file()
            );
        }
    }
    for result in check::run(&pipeline, &sources) {
        if result.failures.is_empty() {
            passed += 1;
            println!("ok   {} / {}", result.source, result.test);
        } else {
            failed += 1;
            println!("FAIL {} / {}", result.source, result.test);
            for failure in &result.failures {
                println!("       {failure}");
            }
        }
    }
    println!("\ntest-sources: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
