//! Detection: rules, their compilation to SQL over time windows, watermarks and alerts.
//!
//! The same code runs in the detector Lambda (Athena, state in S3) and in `lakewatch detect`
//! (the embedded engine, state in a file): only the [`engine::QueryEngine`], the
//! [`state::StateStore`] and the [`alert::AlertSink`] differ.

pub mod alert;
pub mod arrivals;
pub mod baseline;
pub mod bundled;
pub mod compile;
pub mod duration;
pub mod rule;
pub mod runner;
pub mod scheduled;
pub mod state;
pub mod window;

pub use alert::{Alert, Row};
pub use rule::{Query, Rule, RuleTest, load, load_rules};
pub use runner::{AlertSink, Mode, QueryEngine, RuleReport, run_rules};
pub use scheduled::{RuleOutcome, run_scheduled};
pub use state::{RuleState, StateStore};
pub use window::Window;
