//! Local mode as a library: what the `lakewatch` subcommands do, with the CLI only parsing
//! their arguments.

pub mod detect;
pub mod extract;
pub mod ingest;
