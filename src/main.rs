//! The `lakewatch` command line: local mode for everything the Lambdas do.

use clap::Parser;

/// Every record builds and frees a tree of maps and strings, as in the transform Lambda
/// (`functions/firehose-transform/src/main.rs`); glibc's allocator spent about 15% of
/// `lakewatch ingest`'s CPU on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = lakewatch::cli::Cli::parse();
    match lakewatch::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
