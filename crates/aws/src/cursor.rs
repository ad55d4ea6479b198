//! The cursor of a scheduled pull: which objects of a bucket/prefix have been ingested.
//!
//! S3 cannot list "objects modified since T", so each run lists the prefix and keeps the
//! objects the cursor has not seen. The cursor is a small JSON document:
//!
//! - `since`: the newest `LastModified` ingested so far (or, on a first run, now minus the
//!   look-back);
//! - `done`: the keys already ingested whose `LastModified` is within the window below `since`,
//!   with that time;
//! - `complete_from`: `done` holds every key ingested with a `LastModified` at or after this
//!   time (the start of the first run's look-back); absent in cursors written before it was
//!   kept, which hold only their overlap.
//!
//! An object is new when its `LastModified` is at or after the [floor](Cursor::floor)
//! (`since - window`, but not before `complete_from`) and `done` does not hold it with the same
//! time. So objects sharing the cursor's timestamp are neither skipped nor ingested twice, and
//! an object that becomes visible late with an older time (a multipart upload is stamped when
//! it started, however long it took) is still picked up as long as that time is within the
//! window. The pull makes the window its whole look-back (see [`crate::pull`]), and counts and
//! logs the objects below the floor, the only ones it does not take. A key written again later
//! has a new time and is ingested again.
//!
//! The cursor advances one object at a time, only after that object's records were accepted
//! ([`Cursor::advance`]), and is saved after each, so a run that fails half way leaves the
//! cursor just before the object that failed, and the next run resumes there.
//!
//! It is a document of a [`VersionedStore`] ([`StoredCursor`]): an S3 object in the state
//! prefix on AWS, a file in the local lake's `state/` directory locally. Each save names the
//! version the run read or last wrote, so two overlapping runs of one pull cannot both move it.

use std::collections::BTreeMap;

use lakewatch_lake::versioned::{VersionedStore, WriteError};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where a pull stands. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub done: BTreeMap<String, DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_from: Option<DateTime<Utc>>,
}

impl Cursor {
    /// The cursor of a first run: everything modified in the look-back window is new.
    pub fn first_run(now: DateTime<Utc>, lookback: Duration) -> Self {
        Cursor {
            since: now - lookback,
            done: BTreeMap::new(),
            complete_from: Some(now - lookback),
        }
    }

    /// The oldest `LastModified` still looked at: objects older than this are not taken, as
    /// `done` no longer tells whether they were.
    pub fn floor(&self, window: Duration) -> DateTime<Utc> {
        let floor = self.since - window;
        self.complete_from.map_or(floor, |from| floor.max(from))
    }

    /// Whether an object with this key and `LastModified` still has to be ingested.
    pub fn is_new(&self, key: &str, modified: DateTime<Utc>, window: Duration) -> bool {
        modified >= self.floor(window) && self.done.get(key) != Some(&modified)
    }

    /// Records that an object was ingested, and forgets keys that fell out of the window.
    pub fn advance(&mut self, key: &str, modified: DateTime<Utc>, window: Duration) {
        self.since = self.since.max(modified);
        self.done.insert(key.to_string(), modified);
        let floor = self.floor(window);
        self.done.retain(|_, time| *time >= floor);
    }
}

/// A cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cursor {location}: {reason}")]
pub struct CursorError {
    pub location: String,
    pub reason: String,
}

/// A pull's cursor: the document `name` of `store`.
#[derive(Debug, Clone)]
pub struct StoredCursor<V> {
    pub store: V,
    pub name: String,
}

impl<V: VersionedStore> StoredCursor<V> {
    /// Where the cursor is, for logs and errors (`s3://bucket/key`, a file path).
    pub fn location(&self) -> String {
        self.store.location(&self.name)
    }

    fn error(&self, reason: impl Into<String>) -> CursorError {
        CursorError {
            location: self.location(),
            reason: reason.into(),
        }
    }

    /// The saved cursor with its version; `None` before the first run.
    pub async fn load(&self) -> Result<Option<(Cursor, String)>, CursorError> {
        let Some(read) = self
            .store
            .read(&self.name)
            .await
            .map_err(|reason| self.error(reason))?
        else {
            return Ok(None);
        };
        Ok(Some((parse(&self.location(), &read.bytes)?, read.version)))
    }

    /// Saves the cursor if it is still at `expected` (`None`: if there was none); returns the
    /// new version.
    pub async fn save(
        &self,
        cursor: &Cursor,
        expected: Option<&str>,
    ) -> Result<String, CursorError> {
        let body = serde_json::to_vec_pretty(cursor).expect("a cursor serializes");
        self.store
            .write(&self.name, body, expected)
            .await
            .map_err(|error| {
                self.error(match error {
                    WriteError::Conflict => {
                        "another run of this pull moved the cursor meanwhile; this run stops here \
                         (what it did not ingest is left to the other run or the next one)"
                            .to_string()
                    }
                    WriteError::Failed(reason) => reason,
                })
            })
    }
}

fn parse(location: &str, bytes: &[u8]) -> Result<Cursor, CursorError> {
    serde_json::from_slice(bytes).map_err(|error| CursorError {
        location: location.to_string(),
        reason: format!(
            "not a valid cursor ({error}); delete it to start again from the look-back window"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_lake::versioned::FileStore;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    const NONE: Duration = Duration::zero();

    #[test]
    fn a_first_run_takes_the_look_back_window() {
        let cursor = Cursor::first_run(at(0), Duration::days(30));
        assert!(cursor.is_new("a", at(-29 * 86_400), NONE));
        assert!(!cursor.is_new("a", at(-31 * 86_400), NONE));
    }

    #[test]
    fn objects_at_the_cursor_time_are_neither_skipped_nor_repeated() {
        let mut cursor = Cursor::first_run(at(0), Duration::hours(1));
        cursor.advance("a", at(10), NONE);
        // "b" has the same LastModified as the cursor and was not ingested yet.
        assert!(!cursor.is_new("a", at(10), NONE));
        assert!(cursor.is_new("b", at(10), NONE));
        cursor.advance("b", at(10), NONE);
        assert!(!cursor.is_new("b", at(10), NONE));
        assert_eq!(cursor.done.len(), 2);
        // A newer time forgets the keys of the older one (overlap 0).
        cursor.advance("c", at(11), NONE);
        assert_eq!(cursor.done.keys().collect::<Vec<_>>(), ["c"]);
        assert!(!cursor.is_new("a", at(10), NONE));
        assert!(!cursor.is_new("z", at(9), NONE));
    }

    #[test]
    fn the_overlap_catches_objects_that_appear_late_with_an_older_time() {
        let overlap = Duration::minutes(15);
        let mut cursor = Cursor::first_run(at(0), Duration::hours(1));
        cursor.advance("late-writer-done", at(600), overlap);
        cursor.advance("b", at(1200), overlap);
        assert!(cursor.is_new("late", at(500), overlap));
        assert!(!cursor.is_new("late-writer-done", at(600), overlap));
        assert!(!cursor.is_new("older", at(1200 - 901), overlap));
    }

    #[test]
    fn a_key_written_again_is_new_again() {
        let mut cursor = Cursor::first_run(at(0), Duration::hours(1));
        cursor.advance("a", at(10), NONE);
        assert!(cursor.is_new("a", at(20), NONE));
    }

    #[test]
    fn the_cursor_round_trips_through_json() {
        let mut cursor = Cursor::first_run(at(0), Duration::hours(1));
        cursor.advance("a b/c.json", at(5), Duration::minutes(1));
        let text = serde_json::to_string(&cursor).unwrap();
        assert_eq!(parse("x", text.as_bytes()).unwrap(), cursor);
        let error = parse("s3://b/k", b"{").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cursor s3://b/k: not a valid cursor")
        );
    }

    #[tokio::test]
    async fn a_file_store_starts_empty_keeps_what_was_saved_and_refuses_a_stale_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoredCursor {
            store: FileStore::new(dir.path().join("state/s3-ingest")),
            name: "aws/b/x/cursor.json".to_string(),
        };
        assert_eq!(store.load().await.unwrap(), None);
        let cursor = Cursor::first_run(at(0), Duration::hours(1));
        let version = store.save(&cursor, None).await.unwrap();
        assert_eq!(
            store.load().await.unwrap(),
            Some((cursor.clone(), version.clone()))
        );
        // A second run that also started from "no cursor" cannot overwrite it.
        let error = store.save(&cursor, None).await.unwrap_err().to_string();
        assert!(
            error.contains("another run of this pull moved the cursor"),
            "{error}"
        );
        store.save(&cursor, Some(&version)).await.unwrap();
    }
}

#[cfg(test)]
mod s3_tests {
    use super::*;
    use crate::s3_state::S3Store;
    use lakewatch_testkit::moto::MotoServer;

    #[tokio::test]
    async fn overlapping_runs_cannot_both_move_an_s3_cursor() {
        let moto = MotoServer::start();
        let client = crate::config::s3_client(&moto.sdk_config().await);
        client.create_bucket().bucket("lake").send().await.unwrap();
        let store = StoredCursor {
            store: S3Store::new(client.clone(), "lake", "state/"),
            name: "c.json".to_string(),
        };
        assert_eq!(store.location(), "s3://lake/state/c.json");
        assert_eq!(store.load().await.unwrap(), None);
        let mut cursor = Cursor::first_run(Utc::now(), Duration::days(1));
        let first = store.save(&cursor, None).await.unwrap();
        // A second run that read "no cursor", which is no longer true.
        let error = store.save(&cursor, None).await.unwrap_err().to_string();
        assert!(
            error.contains("another run of this pull moved the cursor"),
            "{error}"
        );
        // The first keeps saving over its own writes.
        cursor.advance("a", Utc::now(), Duration::zero());
        let latest = store.save(&cursor, Some(&first)).await.unwrap();
        // A fresh load sees the latest cursor and may save after it; the stale version may not.
        assert_eq!(
            store.load().await.unwrap(),
            Some((cursor.clone(), latest.clone()))
        );
        let mut later = cursor.clone();
        later.advance("b", Utc::now(), Duration::zero());
        store.save(&later, Some(&latest)).await.unwrap();
        assert!(store.save(&cursor, Some(&first)).await.is_err());
    }
}
