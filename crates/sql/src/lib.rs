//! The embedded SQL engine of local mode: the lake's tables and Athena's (Trino's) functions
//! on DataFusion, so queries and rules written for Athena run unmodified on a laptop.
//!
//! ```no_run
//! # async fn run() -> Result<(), lakewatch_sql::QueryError> {
//! let engine = lakewatch_sql::LocalEngine::open("lake")?;
//! let result = engine
//!     .query("SELECT source, count(*) FROM \"mydb\".\"events\" WHERE year = '2024' GROUP BY 1")
//!     .await?;
//! println!("{}", result.to_table().unwrap());
//! # Ok(()) }
//! ```
//!
//! - [`table`]: `events` and `alerts` over `LAKE/<table>/year=/month=/day=/hour=/*.json.gz`,
//!   partition predicates pruning directories; [`reader`] decodes the gzip NDJSON lines.
//! - [`catalog`]: Athena's table references (`"db"."events"`, `AwsDataCatalog.db.events`).
//! - [`functions`]: Athena's (Trino's) functions.
//! - [`error`]: errors with the position in the SQL and what to do.
//! - [`saved`]: the saved queries of `queries/`, run by name with parameters.

pub mod catalog;
pub mod engine;
pub mod error;
pub mod functions;
pub mod output;
pub mod reader;
pub mod saved;
pub mod table;
pub mod trino_names;

pub use engine::{LocalEngine, QueryResult};
pub use error::{Position, QueryError};
pub use reader::ScanStats;
pub use table::Shared;
