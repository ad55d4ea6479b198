//! lakewatch's AWS adapters: everything that calls an AWS API goes through here, with a
//! configurable endpoint so tests run the same code against a local server.

pub mod athena;
pub mod config;
pub mod cursor;
pub mod detector;
pub mod firehose;
pub mod glue;
pub mod pull;
pub mod s3_objects;
pub mod secrets;
pub mod versioned;
