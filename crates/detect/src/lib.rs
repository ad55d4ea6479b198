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
pub mod extract;
pub mod metrics;
pub mod previous;
pub mod rule;
pub mod runner;
pub mod scheduled;
pub mod sequence;
pub mod silence;
pub mod state;
pub mod window;

pub use alert::{Alert, Row};
pub use metrics::{delivery_figures, run_figures};
pub use rule::{Query, Rule, RuleTest, load, load_rules};
pub use runner::{
    AlertDelivery, AlertSink, Deliveries, DeliveryCounts, Mode, QueryEngine, RuleReport, TableOnly,
    run_rules,
};
pub use scheduled::{RuleOutcome, run_scheduled, run_scheduled_and_deliver};
pub use silence::SourceCounts;
pub use state::{RuleState, StateStore, UnpublishedAlert};
pub use window::Window;
