//! Detection: rules, their compilation to SQL over time windows, watermarks and alerts.
//!
//! The same code runs in the detector Lambda (Athena, state in S3) and in `lakewatch detect`
//! (the embedded engine, state in a file): only the [`engine::QueryEngine`], the
//! [`state::StateStore`] and the [`alert::AlertSink`] differ.

pub mod compile;
pub mod duration;
pub mod rule;
pub mod window;

pub use rule::{Query, Rule, RuleTest, load_rules};
pub use window::Window;
