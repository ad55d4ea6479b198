//! The `lakewatch` command line: local mode for everything the Lambdas do.

use clap::Parser;

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
