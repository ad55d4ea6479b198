//! Per-rule state: the watermark (end of the last completed window), what is suppressed, and
//! alerts still to publish. Saved with compare-and-swap, so two overlapping runs cannot both
//! advance a watermark: the second save is refused as stale.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;

use chrono::{DateTime, Utc};
use lakewatch_lake::layout::baseline_document;
use lakewatch_lake::versioned::{VersionedStore, WriteError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::arrivals::{ARRIVALS_DOCUMENT, Arrivals};
use crate::baseline::{decode_baseline, encode_baseline};
use crate::window::Window;

/// What a rule remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// End of the last window whose alerts were durably written.
    pub watermark: Option<DateTime<Utc>>,
    /// De-duplication key → the period in which an alert with that key was already raised.
    #[serde(default)]
    pub suppressed: BTreeMap<String, Suppression>,
    /// Alerts written to the table whose publication failed: retried by the next run.
    #[serde(default)]
    pub unpublished: Vec<UnpublishedAlert>,
    /// The window after the watermark whose evaluation failed, and how many runs in a row
    /// failed it the same way: after [`SET_ASIDE_AFTER`] it is set aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<FailedWindow>,
    /// Windows set aside after failing again and again, so that the rule went on with later
    /// windows; `lakewatch detect --set-aside` evaluates them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_aside: Vec<FailedWindow>,
    /// The last extract pass ([`crate::arrivals::Arrival::seq`]) whose late events this rule
    /// has evaluated: later passes' events behind the watermark reopen their windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_seen: Option<u64>,
}

/// How many scheduled runs in a row may fail a window the same way before it is set aside:
/// one bad value (a time no function parses) must not stop a rule for good, while an outage
/// that fails differently, or a failure that goes away, never skips a window.
pub const SET_ASIDE_AFTER: u32 = 3;

/// A window whose evaluation failed, with the latest error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub error: String,
    pub attempts: u32,
}

impl FailedWindow {
    pub fn window(&self) -> Window {
        Window::new(self.start, self.end)
    }
}

/// What makes two failures "the same": the error without its numbers and ids (an Athena query
/// id, a byte offset), which differ from one attempt to the next.
fn failure_signature(error: &str) -> String {
    error
        .split_whitespace()
        .filter(|word| !word.bytes().any(|b| b.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[since, until)`: an alert with the same key whose window ends in this period is a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// An alert kept in the state until its publication succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpublishedAlert {
    pub line: String,
}

impl UnpublishedAlert {
    pub fn of(alert: &Alert) -> Self {
        UnpublishedAlert {
            line: alert.to_json_line(),
        }
    }
}

impl RuleState {
    /// Counts a failed evaluation of `window` and returns it with the runs in a row that failed
    /// it the same way (a different window or error starts again at one).
    pub fn note_failure(&mut self, window: Window, error: &str) -> FailedWindow {
        let attempts = match &self.failing {
            Some(failed)
                if failed.window() == window
                    && failure_signature(&failed.error) == failure_signature(error) =>
            {
                failed.attempts + 1
            }
            _ => 1,
        };
        let failed = FailedWindow {
            start: window.start,
            end: window.end,
            error: error.to_string(),
            attempts,
        };
        self.failing = Some(failed.clone());
        failed
    }

    /// Whether an alert with this key and window end duplicates one already raised.
    pub fn is_suppressed(&self, key: &str, window_end: DateTime<Utc>) -> bool {
        self.suppressed
            .get(key)
            .is_some_and(|s| s.since <= window_end && window_end < s.until)
    }

    /// Records an alert raised at `window_end`, and forgets suppressions that ended before it.
    pub fn suppress(&mut self, key: &str, window_end: DateTime<Utc>, period: chrono::TimeDelta) {
        self.suppressed.retain(|_, s| s.until > window_end);
        self.suppressed.insert(
            key.to_string(),
            Suppression {
                since: window_end,
                until: window_end + period,
            },
        );
    }
}

/// A rule's state with the version it was read at (`None`: never saved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    pub state: RuleState,
    pub version: Option<String>,
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the state of rule {rule} changed since it was read: another detector run is active; this run stops for the rule"
    )]
    Conflict { rule: String },
    #[error("state of rule {rule}: {message}")]
    Storage { rule: String, message: String },
}

/// Where rule state lives. Every [`VersionedStore`] is one (an S3 prefix on AWS, a directory
/// locally): a rule's state is the JSON document `<rule>.json` in it.
pub trait StateStore {
    fn load(&self, rule: &str) -> impl Future<Output = Result<Stored, StateError>>;
    /// Saves if the stored version is still `expected` (`None`: nothing stored yet); returns
    /// the new version.
    fn save(
        &self,
        rule: &str,
        state: &RuleState,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<String, StateError>>;

    /// Whether this store keeps first-seen baselines ([`crate::baseline`]); a store that does
    /// not leaves those rules reading their history by SQL on every window.
    fn keeps_baselines(&self) -> bool {
        false
    }

    /// A rule's baseline with its version; `None` when none is stored. A baseline is the
    /// compact state a rule keeps instead of reading its history: a first-seen rule's
    /// [`crate::baseline::Baseline`], a pairing rule's [`crate::previous::Previous`].
    fn load_baseline<B: DeserializeOwned>(
        &self,
        rule: &str,
    ) -> impl Future<Output = Result<Option<(B, String)>, StateError>> {
        let _ = rule;
        std::future::ready(Ok(None))
    }

    /// Saves a rule's baseline if the stored version is still `expected` (`None`: nothing
    /// stored yet), like [`save`](Self::save); returns the new version.
    fn save_baseline<B: Serialize>(
        &self,
        rule: &str,
        baseline: &B,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<String, StateError>> {
        let _ = (baseline, expected);
        std::future::ready(Err(StateError::Storage {
            rule: rule.to_string(),
            message: "this state store keeps no baselines".to_string(),
        }))
    }

    /// What reached the lake, by arrival ([`Arrivals`]); none where nothing keeps it.
    fn load_arrivals(&self) -> impl Future<Output = Result<Arrivals, StateError>> {
        async { Ok(Arrivals::default()) }
    }
}

/// The name of a rule's state document.
fn document(rule: &str) -> String {
    format!("{rule}.json")
}

fn storage_error<V: VersionedStore>(store: &V, rule: &str, message: impl Display) -> StateError {
    document_error(store, rule, &document(rule), message)
}

/// Writes one of a rule's documents with compare-and-swap; a stale version is a
/// [`StateError::Conflict`] (another run is active).
async fn write_document<V: VersionedStore>(
    store: &V,
    rule: &str,
    name: &str,
    body: Vec<u8>,
    expected: Option<&str>,
) -> Result<String, StateError> {
    match store.write(name, body, expected).await {
        Ok(version) => Ok(version),
        Err(WriteError::Conflict) => Err(StateError::Conflict {
            rule: rule.to_string(),
        }),
        Err(WriteError::Failed(reason)) => Err(document_error(store, rule, name, reason)),
    }
}

fn document_error<V: VersionedStore>(
    store: &V,
    rule: &str,
    name: &str,
    message: impl Display,
) -> StateError {
    StateError::Storage {
        rule: rule.to_string(),
        message: format!("{}: {message}", store.location(name)),
    }
}

impl<V: VersionedStore> StateStore for V {
    async fn load(&self, rule: &str) -> Result<Stored, StateError> {
        let Some(read) = self
            .read(&document(rule))
            .await
            .map_err(|e| storage_error(self, rule, e))?
        else {
            return Ok(Stored::default());
        };
        let state = serde_json::from_slice(&read.bytes).map_err(|e| {
            storage_error(
                self,
                rule,
                format!(
                    "not a rule state ({e}); fix it, or delete it to start the rule again from \
                     its latest window"
                ),
            )
        })?;
        Ok(Stored {
            state,
            version: Some(read.version),
        })
    }

    async fn load_arrivals(&self) -> Result<Arrivals, StateError> {
        let error = |message: String| StateError::Storage {
            rule: ARRIVALS_DOCUMENT.to_string(),
            message: format!("{}: {message}", self.location(ARRIVALS_DOCUMENT)),
        };
        match self.read(ARRIVALS_DOCUMENT).await.map_err(error)? {
            None => Ok(Arrivals::default()),
            Some(read) => serde_json::from_slice(&read.bytes)
                .map_err(|e| error(format!("not an arrivals document ({e})"))),
        }
    }

    async fn save(
        &self,
        rule: &str,
        state: &RuleState,
        expected: Option<&str>,
    ) -> Result<String, StateError> {
        let body = serde_json::to_vec_pretty(state).expect("a rule state serializes");
        write_document(self, rule, &document(rule), body, expected).await
    }

    fn keeps_baselines(&self) -> bool {
        true
    }

    async fn load_baseline<B: DeserializeOwned>(
        &self,
        rule: &str,
    ) -> Result<Option<(B, String)>, StateError> {
        let name = baseline_document(rule);
        let Some(read) = self
            .read(&name)
            .await
            .map_err(|e| document_error(self, rule, &name, e))?
        else {
            return Ok(None);
        };
        let baseline = decode_baseline(&read.bytes).map_err(|e| {
            document_error(
                self,
                rule,
                &name,
                format!("{e}; delete it to build the baseline again from history"),
            )
        })?;
        Ok(Some((baseline, read.version)))
    }

    async fn save_baseline<B: Serialize>(
        &self,
        rule: &str,
        baseline: &B,
        expected: Option<&str>,
    ) -> Result<String, StateError> {
        write_document(
            self,
            rule,
            &baseline_document(rule),
            encode_baseline(baseline),
            expected,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use lakewatch_lake::versioned::FileStore as FileStateStore;

    fn block_on<F: Future>(future: F) -> F::Output {
        // The file store never awaits anything: poll once with a no-op waker.
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the file store does not suspend"),
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-23T{hour:02}:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_stale_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path());
        let first = block_on(store.load("r")).unwrap();
        assert_eq!(first.version, None);
        let mut advanced = first.state.clone();
        advanced.watermark = Some(at(10));
        let version = block_on(store.save("r", &advanced, None)).unwrap();
        // A second run that read the state before the first saved cannot overwrite it.
        let mut stale = first.state.clone();
        stale.watermark = Some(at(9));
        assert!(matches!(
            block_on(store.save("r", &stale, None)),
            Err(StateError::Conflict { .. })
        ));
        let reloaded = block_on(store.load("r")).unwrap();
        assert_eq!(reloaded.state.watermark, Some(at(10)));
        assert_eq!(reloaded.version.as_deref(), Some(version.as_str()));
        advanced.watermark = Some(at(11));
        block_on(store.save("r", &advanced, Some(&version))).unwrap();
    }

    #[test]
    fn failures_count_up_only_for_the_same_window_and_error() {
        let mut state = RuleState::default();
        let window = Window::new(at(9), at(10));
        let error = "query failed: Athena query 1f2e ended FAILED: INVALID_FUNCTION_ARGUMENT";
        assert_eq!(state.note_failure(window, error).attempts, 1);
        let other_id = error.replace("1f2e", "9a8b");
        assert_eq!(state.note_failure(window, &other_id).attempts, 2);
        assert_eq!(state.note_failure(window, "throttled").attempts, 1);
        assert_eq!(
            state
                .note_failure(Window::new(at(10), at(11)), "throttled")
                .attempts,
            1
        );
    }

    #[test]
    fn suppression_covers_its_period_only() {
        let mut state = RuleState::default();
        state.suppress("k", at(10), TimeDelta::hours(2));
        assert!(state.is_suppressed("k", at(10)));
        assert!(state.is_suppressed("k", at(11)));
        assert!(!state.is_suppressed("k", at(12)));
        assert!(
            !state.is_suppressed("k", at(9)),
            "an earlier window is not a duplicate"
        );
        assert!(!state.is_suppressed("other", at(11)));
        // Expired entries are forgotten, so the state stays small.
        state.suppress("later", at(13), TimeDelta::hours(1));
        assert!(!state.suppressed.contains_key("k"));
    }
}
