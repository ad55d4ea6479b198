//! Helpers for tests that run real components: servers started on free ports, waited for,
//! and always stopped.

pub mod fake_firehose;
pub mod moto;
pub mod runtime_api;
