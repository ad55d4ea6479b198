//! Local mode as a library: what the `lakewatch` commands do, without argument parsing or
//! printing, so detection replays, the demo and tests run the same code.

pub mod ingest;
