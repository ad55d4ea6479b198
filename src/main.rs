//! The `lakewatch` command line: local mode for everything the Lambdas do.

use clap::Parser;

/// `lakewatch ingest` runs the pipeline, whose every record builds and frees a tree of maps
/// and strings: mimalloc spends about a tenth fewer instructions on it than glibc's allocator
/// (docs/firehose-transform.md).
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
