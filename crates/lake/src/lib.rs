//! The lake's layout, shared by the Lambdas and the local mode: where events and alerts live,
//! how partitions are named, and what the tables' columns are.

pub mod ddl;
pub mod partitions;
pub mod schema;
