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
//! It is stored in S3 on AWS ([`S3CursorStore`]) and in a file locally ([`FileCursorStore`]).

use crate::versioned;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

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

/// Where cursors are kept.
pub trait CursorStore {
    /// A name for logs and errors (`s3://bucket/key`, a file path).
    fn location(&self) -> String;
    /// The saved cursor; `None` before the first run.
    fn load(&self) -> impl Future<Output = Result<Option<Cursor>, CursorError>> + Send;
    fn save(&self, cursor: &Cursor) -> impl Future<Output = Result<(), CursorError>> + Send;
}

fn parse(location: &str, bytes: &[u8]) -> Result<Cursor, CursorError> {
    serde_json::from_slice(bytes).map_err(|error| CursorError {
        location: location.to_string(),
        reason: format!(
            "not a valid cursor ({error}); delete it to start again from the look-back window"
        ),
    })
}

/// A cursor in an S3 object (the lake's state prefix), written with conditional writes: a
/// save succeeds only if the object is still the one this store loaded or last saved (or still
/// absent), so two runs of one pull that overlap cannot both move the cursor.
#[derive(Debug)]
pub struct S3CursorStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// The ETag this store last read or wrote; `None` when the object did not exist.
    etag: Mutex<Option<String>>,
}

impl S3CursorStore {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        S3CursorStore {
            client,
            bucket: bucket.into(),
            key: key.into(),
            etag: Mutex::new(None),
        }
    }

    fn etag(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.etag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CursorStore for S3CursorStore {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn load(&self) -> Result<Option<Cursor>, CursorError> {
        let fail = |reason: String| CursorError {
            location: self.location(),
            reason,
        };
        let Some(read) = versioned::read(&self.client, &self.bucket, &self.key)
            .await
            .map_err(fail)?
        else {
            *self.etag() = None;
            return Ok(None);
        };
        let cursor = parse(&self.location(), &read.bytes)?;
        *self.etag() = read.etag;
        Ok(Some(cursor))
    }

    async fn save(&self, cursor: &Cursor) -> Result<(), CursorError> {
        let body = serde_json::to_vec_pretty(cursor).expect("a cursor serializes");
        let expected = self.etag().clone();
        let etag = versioned::write(
            &self.client,
            &self.bucket,
            &self.key,
            body,
            expected.as_deref(),
        )
        .await
        .map_err(|error| CursorError {
            location: self.location(),
            reason: match error {
                versioned::WriteError::Conflict => {
                    "another run of this pull moved the cursor meanwhile; this run stops here \
                         (what it did not ingest is left to the other run or the next one)"
                        .to_string()
                }
                versioned::WriteError::Failed(reason) => reason,
            },
        })?;
        *self.etag() = etag;
        Ok(())
    }
}

/// A cursor in a local file (the local lake's `state/` directory).
#[derive(Debug, Clone)]
pub struct FileCursorStore {
    pub path: PathBuf,
}

impl CursorStore for FileCursorStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn load(&self) -> Result<Option<Cursor>, CursorError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => parse(&self.location(), &bytes).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(CursorError {
                location: self.location(),
                reason: error.to_string(),
            }),
        }
    }

    async fn save(&self, cursor: &Cursor) -> Result<(), CursorError> {
        let fail = |error: std::io::Error| CursorError {
            location: self.location(),
            reason: error.to_string(),
        };
        if let Some(parent) = self.path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(fail)?;
        }
        // Write then rename, so a crash never leaves half a cursor.
        let temporary = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(cursor).expect("a cursor serializes");
        tokio::fs::write(&temporary, body).await.map_err(fail)?;
        tokio::fs::rename(&temporary, &self.path)
            .await
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn a_file_store_starts_empty_and_keeps_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore {
            path: dir.path().join("state/s3-ingest/x.json"),
        };
        assert_eq!(store.load().await.unwrap(), None);
        let cursor = Cursor::first_run(at(0), Duration::hours(1));
        store.save(&cursor).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(cursor));
    }
}

#[cfg(test)]
mod s3_tests {
    use super::*;
    use lakewatch_testkit::moto::MotoServer;

    #[tokio::test]
    async fn overlapping_runs_cannot_both_move_an_s3_cursor() {
        let moto = MotoServer::start();
        let client = crate::config::s3_client(&moto.sdk_config().await);
        client.create_bucket().bucket("lake").send().await.unwrap();
        let first = S3CursorStore::new(client.clone(), "lake", "state/c.json");
        let second = S3CursorStore::new(client.clone(), "lake", "state/c.json");
        assert_eq!(first.load().await.unwrap(), None);
        assert_eq!(second.load().await.unwrap(), None);
        let mut cursor = Cursor::first_run(Utc::now(), Duration::days(1));
        first.save(&cursor).await.unwrap();
        // The second run read "no cursor", which is no longer true.
        let error = second.save(&cursor).await.unwrap_err().to_string();
        assert!(
            error.contains("another run of this pull moved the cursor"),
            "{error}"
        );
        // The first keeps saving over its own writes.
        cursor.advance("a", Utc::now(), Duration::zero());
        first.save(&cursor).await.unwrap();
        // A fresh load sees the latest cursor and may save after it.
        assert_eq!(second.load().await.unwrap(), Some(cursor.clone()));
        let mut later = cursor.clone();
        later.advance("b", Utc::now(), Duration::zero());
        second.save(&later).await.unwrap();
        assert!(first.save(&cursor).await.is_err());
    }
}
