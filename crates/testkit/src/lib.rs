//! Helpers for tests that run real components: servers started on free ports, waited for,
//! and always stopped.

pub mod runtime_api;
pub mod moto;
