//! The embedded SQL engine of local mode: the lake's tables and Athena's (Trino's) functions
//! on DataFusion, so queries and rules written for Athena run unmodified on a laptop.
pub mod functions;
