//! lakewatch's local mode: the same pipeline, lake layout, partitions and rules as the
//! Lambdas, on one machine. The `lakewatch` binary is a thin layer over [`cli`].

pub mod cli;
pub mod detection;
pub mod local;
