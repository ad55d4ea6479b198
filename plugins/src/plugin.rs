//! The small trait at the centre: a plugin decides about one event at a time.
//!
//! The pipeline owns ordering, matching and error handling; a plugin only says what it
//! registers on ([`Registration`]) and what it does to one event ([`Plugin::process`]).

use crate::shell::{Event, RecordKind};

/// When a plugin runs: all normalization plugins run before any enrichment plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Turn a source's own format into the shell (keys, time, source, summary…).
    Normalize,
    /// Add knowledge to a normalized event (addresses, geography, user agents…).
    Enrich,
}

/// What makes a plugin run on an event. A plugin runs when any of its triggers matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every event (`*`).
    Always,
    /// A shell field, or a dotted path below `details` (`"kind"`, `"id.time"`), is present.
    Field(String),
    /// `source` equals this value.
    Source(String),
    /// `category` equals this value.
    Category(String),
    /// The event carries this tag.
    Tag(String),
    /// The record arrived as a raw text line rather than JSON.
    RawLine,
}

impl Trigger {
    /// Whether this trigger matches the event as it is now (earlier plugins may have changed it).
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Trigger::Always => true,
            Trigger::Field(path) => event.has_field(path),
            Trigger::Source(source) => event.source == *source,
            Trigger::Category(category) => event.category == *category,
            Trigger::Tag(tag) => event.tags.iter().any(|t| t == tag),
            Trigger::RawLine => event.kind == RecordKind::Line,
        }
    }
}

/// What a plugin registers on, and where it runs among the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub stage: Stage,
    /// Lower runs first within a stage; ties are broken by plugin name.
    pub priority: i32,
    pub triggers: Vec<Trigger>,
}

impl Registration {
    pub fn new(stage: Stage, priority: i32, triggers: Vec<Trigger>) -> Self {
        Registration {
            stage,
            priority,
            triggers,
        }
    }

    /// Whether any trigger matches the event.
    pub fn matches(&self, event: &Event) -> bool {
        self.triggers.iter().any(|trigger| trigger.matches(event))
    }
}

/// What a plugin did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Looked, changed nothing: its name is not added to `plugins`.
    Unchanged,
    /// Changed the event: its name is added to `plugins`.
    Changed,
    /// The event must not reach the lake; the reason is counted and logged.
    Drop(String),
}

/// A plugin failed on an event: the record fails (`ProcessingFailed`), with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        PluginError(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        PluginError(message.to_string())
    }
}

/// A plugin: a plain Rust type registered in [`crate::builtin_plugins`].
pub trait Plugin: Send + Sync {
    /// Short, stable name: it is written into each changed event's `plugins` list.
    fn name(&self) -> &'static str;
    /// What it registers on and where it runs.
    fn registration(&self) -> Registration;
    /// Looks at one event, may change it, and says what it did.
    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError>;
}
