//! The lake's layout, shared by the Lambdas and the local mode: where events and alerts live,
//! how partitions are named, and what the tables' columns are.

pub mod counts;
pub mod ddl;
mod gzip_members;
pub mod layout;
pub mod local;
pub mod partitions;
pub mod processing_failed;
pub mod schema;
pub mod versioned;

pub use layout::{events_key, object_key};
pub use local::{FailedRecord, LakeError, LakeWriter, LocalLake, WriteSummary};
