//! lakewatch's local mode: the same pipeline, lake layout, partitions and rules as the
//! Lambdas, on one machine. The `lakewatch` binary is a thin layer over [`cli`], which parses
//! arguments for the library code in [`local`].

pub mod cli;
pub mod local;
