//! A scheduled pull: ingest the objects of a bucket/prefix in any S3-compatible store that are
//! new since the last run, then advance the cursor ([`crate::cursor`]).
//!
//! One run lists the prefix, keeps the objects the cursor has not seen, and ingests them oldest
//! first (by `LastModified`, then key). The cursor remembers every key ingested over the whole
//! look-back window (`lookback_days`), not only the last minutes: an object that becomes visible
//! late with an older `LastModified` (a multipart upload started before, and completed after, a
//! later object) is still taken as long as its time is within the window. Objects older than the
//! window are the only ones not taken: each run counts them (`outside_window`) and logs them. The cursor is saved after each object, once its records
//! were accepted; the first object that fails stops the run with an error, leaving the cursor
//! just before it, so the next run starts again from that object: nothing is skipped, and
//! objects already done are not ingested twice. A run cut short by the Lambda timeout is caught
//! up the same way.
//!
//! The same code pulls into Firehose in the Lambda and into a local lake from the CLI: the
//! caller passes what to do with each object.

use std::fmt;
use std::io::Read;
use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use lakewatch_plugins::envelope::Provenance;

use lakewatch_lake::versioned::{FileStore, VersionedStore};

use crate::cursor::{Cursor, CursorError, StoredCursor};
use crate::s3_objects::{ObjectRef, open};

/// The pull section of a scheduled invocation (`{"pull": {...}}`), and of the CLI's options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// The store's endpoint, e.g. `https://s3.example.net`; none for AWS S3 itself.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    pub bucket: String,
    /// Only keys under this prefix are pulled.
    #[serde(default)]
    pub prefix: String,
    /// A Secrets Manager secret holding the store's keys (see [`crate::secrets`]); without it
    /// the function's own role is used.
    #[serde(default)]
    pub secret_arn: Option<String>,
    /// How far back a first run looks, in days.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// The store's region, when it cares (most S3-compatible stores accept any).
    #[serde(default)]
    pub region: Option<String>,
    /// How far below the cursor objects were looked for by cursors written before the cursor
    /// kept its whole look-back window; such a cursor is complete from `since` minus this.
    #[serde(default = "default_overlap_minutes")]
    pub overlap_minutes: u32,
}

fn default_lookback_days() -> u32 {
    30
}

fn default_overlap_minutes() -> u32 {
    15
}

impl PullConfig {
    /// A pull of `bucket`/`prefix` with the defaults.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        PullConfig {
            endpoint_url: None,
            bucket: bucket.into(),
            prefix: prefix.into(),
            secret_arn: None,
            lookback_days: default_lookback_days(),
            region: None,
            overlap_minutes: default_overlap_minutes(),
        }
    }

    fn overlap(&self) -> Duration {
        Duration::minutes(i64::from(self.overlap_minutes))
    }

    /// How far below the cursor objects are looked for: the look-back (at least the overlap).
    /// The cursor keeps the keys ingested within it, about one line per object.
    fn window(&self) -> Duration {
        Duration::days(i64::from(self.lookback_days)).max(self.overlap())
    }

    /// A pull of `s3://bucket/prefix` (the CLI's argument), from `endpoint_url` if given.
    pub fn from_url(url: &str, endpoint_url: Option<&str>) -> Option<Self> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        let mut config = PullConfig::new(bucket, prefix);
        config.endpoint_url = endpoint_url.map(str::to_string);
        Some(config)
    }

    /// The cursor's name under the state prefix: one cursor per store, bucket and prefix, so
    /// two pulls never share one. E.g. `s3.example.net/audit/logs/cursor.json`.
    pub fn cursor_name(&self) -> String {
        let store = self
            .endpoint_url
            .as_deref()
            .map(|url| {
                let host = url.split("://").nth(1).unwrap_or(url);
                host.trim_end_matches('/').replace('/', "_")
            })
            .unwrap_or_else(|| "aws".to_string());
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("{store}/{}/cursor.json", self.bucket)
        } else {
            format!("{store}/{}/{prefix}/cursor.json", self.bucket)
        }
    }
}

/// An S3 client for the store a pull reads: its endpoint (path-style addressing, which every
/// S3-compatible store accepts), its region and the given credentials, else the function's.
pub fn store_client(
    base: &SdkConfig,
    config: &PullConfig,
    credentials: Option<Credentials>,
) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(base);
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url).force_path_style(true);
    } else if base.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    if let Some(region) = &config.region {
        builder = builder.region(Region::new(region.clone()));
    } else if base.region().is_none() {
        builder = builder.region(Region::new("us-east-1"));
    }
    if let Some(credentials) = credentials {
        builder = builder.credentials_provider(credentials);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An object the listing found new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub last_modified: DateTime<Utc>,
    pub size: i64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSummary {
    /// Objects under the prefix.
    pub listed: u64,
    /// Objects the cursor had not seen.
    pub new: u64,
    /// New objects ingested.
    pub ingested: u64,
    /// New objects left for the next run because this one ran out of time.
    pub left: u64,
    /// The cursor after the run.
    pub since: Option<DateTime<Utc>>,
    /// Objects under the prefix older than the window: not taken (see the module docs).
    pub outside_window: u64,
}

/// What a listing found: how many objects, the new ones, and the ones too old to tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub listed: u64,
    pub new: Vec<Listed>,
    /// Objects older than the cursor's floor; a few keys are kept for the log.
    pub outside_window: u64,
    pub outside_examples: Vec<Listed>,
}

/// Why a run stopped. The cursor stays before the object that failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "cannot list s3://{bucket}/{prefix}: {reason}; check the endpoint, bucket and credentials"
    )]
    List {
        bucket: String,
        prefix: String,
        reason: String,
    },
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error("cannot start the pull: {0}")]
    Setup(String),
    #[error(
        "{object}: {reason}; {ingested} of {new} new object(s) were ingested before it; the \
         cursor stays before this object and the next run resumes from it"
    )]
    Object {
        object: ObjectRef,
        reason: String,
        ingested: u64,
        new: u64,
    },
}

/// The objects under the prefix that the cursor has not seen, oldest first.
pub async fn list_new(
    s3: &aws_sdk_s3::Client,
    config: &PullConfig,
    cursor: &Cursor,
) -> Result<Listing, PullError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(&config.bucket)
        .prefix(&config.prefix)
        .into_paginator()
        .send();
    let mut listing = Listing::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|error| PullError::List {
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;
        for object in page.contents() {
            listing.listed += 1;
            let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else {
                continue;
            };
            let Some(modified) = DateTime::from_timestamp(modified.secs(), modified.subsec_nanos())
            else {
                continue;
            };
            let found = Listed {
                key: key.to_string(),
                last_modified: modified,
                size: object.size().unwrap_or(0),
            };
            if modified < cursor.floor(config.window()) {
                listing.outside_window += 1;
                if listing.outside_examples.len() < OUTSIDE_EXAMPLES {
                    listing.outside_examples.push(found);
                }
            } else if cursor.is_new(key, modified, config.window()) {
                listing.new.push(found);
            }
        }
    }
    listing
        .new
        .sort_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)));
    Ok(listing)
}

/// Keys of objects outside the window named in a run's log line.
const OUTSIDE_EXAMPLES: usize = 5;

/// One run of a pull; `ingest` does what the caller wants with each new object (send it to
/// Firehose, write it to a local lake) and must return `Ok` only when all its records are safe.
///
/// No new object is started after `stop_by` (a Lambda's deadline less a margin), so a long
/// backlog (a first run's look-back) is worked off over several runs instead of timing out;
/// every run ingests at least one object, so a backlog always shrinks.
pub async fn pull<V, F, E>(
    s3: &aws_sdk_s3::Client,
    config: &PullConfig,
    store: &StoredCursor<V>,
    now: DateTime<Utc>,
    stop_by: Option<std::time::Instant>,
    mut ingest: F,
) -> Result<PullSummary, PullError>
where
    V: VersionedStore,
    F: AsyncFnMut(&ObjectRef) -> Result<(), E>,
    E: fmt::Display,
{
    let (mut cursor, mut version) = match store.load().await? {
        Some((cursor, version)) => (cursor, Some(version)),
        None => (
            Cursor::first_run(now, Duration::days(i64::from(config.lookback_days))),
            None,
        ),
    };
    // A cursor from before `complete_from` knows its keys only over the overlap.
    let overlap_floor = cursor.since - config.overlap();
    cursor.complete_from.get_or_insert(overlap_floor);
    let Listing {
        listed,
        new,
        outside_window,
        outside_examples,
    } = list_new(s3, config, &cursor).await?;
    let mut summary = PullSummary {
        listed,
        new: new.len() as u64,
        outside_window,
        ..PullSummary::default()
    };
    if outside_window > 0 {
        tracing::info!(
            bucket = %config.bucket,
            prefix = %config.prefix,
            outside_window,
            floor = %cursor.floor(config.window()),
            examples = ?outside_examples.iter().map(|o| (&o.key, o.last_modified)).collect::<Vec<_>>(),
            "pull: objects older than the look-back window are not taken (ingest them by hand \
             if they are new, e.g. with `lakewatch ingest s3://…`)"
        );
    }
    tracing::info!(
        bucket = %config.bucket,
        prefix = %config.prefix,
        cursor = %store.location(),
        since = %cursor.since,
        listed,
        new = summary.new,
        "pull: objects listed"
    );
    for object in new {
        if summary.ingested > 0 && stop_by.is_some_and(|t| std::time::Instant::now() >= t) {
            summary.left = summary.new - summary.ingested;
            tracing::warn!(
                left = summary.left,
                "pull: out of time; the next run continues from the cursor"
            );
            break;
        }
        let object_ref = ObjectRef {
            bucket: config.bucket.clone(),
            key: object.key.clone(),
            version_id: None,
        };
        if let Err(error) = ingest(&object_ref).await {
            return Err(PullError::Object {
                object: object_ref,
                reason: error.to_string(),
                ingested: summary.ingested,
                new: summary.new,
            });
        }
        cursor.advance(&object.key, object.last_modified, config.window());
        version = Some(store.save(&cursor, version.as_deref()).await?);
        summary.ingested += 1;
    }
    summary.since = Some(cursor.since);
    tracing::info!(
        bucket = %config.bucket,
        prefix = %config.prefix,
        listed,
        new = summary.new,
        ingested = summary.ingested,
        left = summary.left,
        since = %cursor.since,
        "pull: run complete"
    );
    Ok(summary)
}

/// Where a local lake keeps the cursor of a pull: `<lake>/state/s3-ingest/<cursor name>`.
pub fn local_cursor(lake_root: &Path, config: &PullConfig) -> StoredCursor<FileStore> {
    StoredCursor {
        store: FileStore::new(lakewatch_lake::local::state_dir(lake_root, "s3-ingest")),
        name: config.cursor_name(),
    }
}

/// A pull into a local lake, for `lakewatch ingest s3://bucket/prefix`: the same listing,
/// cursor rules and object reading as the Lambda, with the cursor in a file under the lake.
///
/// Blocking (it runs its own runtime). `ingest` gets each new object's provenance (its
/// [`Provenance::container`] gives the same event ids as on AWS) and body (gzip or plain, to
/// be framed), and must return `Ok` only once the object's records are safely written: the
/// cursor advances right after. `sdk` is the SDK configuration to use; `None` reads the
/// standard environment (credentials chain, region) as the AWS CLI does.
pub fn pull_into_lake<F, E>(
    config: &PullConfig,
    lake_root: &Path,
    now: DateTime<Utc>,
    sdk: Option<SdkConfig>,
    mut ingest: F,
) -> Result<PullSummary, PullError>
where
    F: FnMut(&Provenance, &mut (dyn Read + Send)) -> Result<(), E>,
    E: fmt::Display,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| PullError::Setup(error.to_string()))?;
    runtime.block_on(async {
        let sdk = match sdk {
            Some(sdk) => sdk,
            None => crate::config::load(config.endpoint_url.as_deref()).await,
        };
        let s3 = store_client(&sdk, config, None);
        let store = local_cursor(lake_root, config);
        pull(
            &s3,
            config,
            &store,
            now,
            None,
            async |object: &ObjectRef| {
                let mut opened = open(&s3, object).await.map_err(|e| e.to_string())?;
                // The body is read on this thread while the runtime's other worker downloads it.
                tokio::task::block_in_place(|| ingest(&opened.provenance, &mut opened.reader))
                    .map_err(|e| e.to_string())?;
                match opened.download.failure() {
                    Some(reason) => Err(format!("the download broke off: {reason}")),
                    None => Ok(()),
                }
            },
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduled_input_reads_with_defaults() {
        let config: PullConfig = serde_json::from_str(
            r#"{"endpoint_url": null, "bucket": "audit", "prefix": "logs/", "secret_arn": null, "lookback_days": 7}"#,
        )
        .unwrap();
        assert_eq!(config.bucket, "audit");
        assert_eq!(config.lookback_days, 7);
        assert_eq!(config.overlap_minutes, 15);
        let minimal: PullConfig = serde_json::from_str(r#"{"bucket": "b"}"#).unwrap();
        assert_eq!(minimal, PullConfig::new("b", ""));
        let typo = serde_json::from_str::<PullConfig>(r#"{"bucket": "b", "prefx": "x"}"#);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `prefx`")
        );
    }

    #[test]
    fn s3_urls_give_bucket_and_prefix() {
        let config = PullConfig::from_url("s3://audit/logs/2026/", Some("http://x:9000")).unwrap();
        assert_eq!(
            (config.bucket.as_str(), config.prefix.as_str()),
            ("audit", "logs/2026/")
        );
        assert_eq!(config.endpoint_url.as_deref(), Some("http://x:9000"));
        assert_eq!(PullConfig::from_url("s3://audit", None).unwrap().prefix, "");
        assert_eq!(PullConfig::from_url("s3:///x", None), None);
        assert_eq!(PullConfig::from_url("/var/log/x", None), None);
    }

    #[test]
    fn each_store_bucket_and_prefix_has_its_own_cursor() {
        let mut config = PullConfig::new("audit", "logs/");
        assert_eq!(config.cursor_name(), "aws/audit/logs/cursor.json");
        config.endpoint_url = Some("https://s3.example.net:9000/".into());
        assert_eq!(
            config.cursor_name(),
            "s3.example.net:9000/audit/logs/cursor.json"
        );
        config.prefix = String::new();
        assert_eq!(
            config.cursor_name(),
            "s3.example.net:9000/audit/cursor.json"
        );
    }
}

/// The local pull against moto: the same cursor rules, the cursor in the lake directory.
#[cfg(test)]
mod local_tests {
    use super::*;
    use aws_sdk_s3::primitives::ByteStream;
    use lakewatch_plugins::framing::frame_reader;
    use lakewatch_testkit::moto::MotoServer;

    /// Each object ingested: (key, record texts, container).
    type Seen = Vec<(String, Vec<String>, String)>;

    fn run(config: &PullConfig, lake: &Path, sdk: &SdkConfig) -> (PullSummary, Seen) {
        let mut seen = Seen::new();
        let summary = pull_into_lake(
            config,
            lake,
            Utc::now(),
            Some(sdk.clone()),
            |provenance, body| {
                let texts = frame_reader(body)
                    .map(|r| r.map(|r| r.text))
                    .collect::<Result<Vec<_>, _>>();
                let texts = texts.map_err(|e| e.to_string())?;
                seen.push((provenance.key.clone(), texts, provenance.container()));
                Ok::<(), String>(())
            },
        )
        .unwrap();
        (summary, seen)
    }

    #[test]
    fn a_local_pull_reads_new_objects_once_and_keeps_its_cursor_in_the_lake() {
        let moto = MotoServer::start();
        let setup = tokio::runtime::Runtime::new().unwrap();
        let sdk = setup.block_on(moto.sdk_config());
        let s3 = crate::config::s3_client(&sdk);
        let put = |key: &'static str, body: &'static [u8]| {
            setup.block_on(async {
                s3.put_object()
                    .bucket("store")
                    .key(key)
                    .body(ByteStream::from_static(body))
                    .send()
                    .await
                    .unwrap();
            })
        };
        setup.block_on(async { s3.create_bucket().bucket("store").send().await.unwrap() });
        put("logs/a.json", b"{\"a\":1}\n{\"a\":2}\n");
        put("other/b.json", b"{\"b\":1}\n");
        let lake = tempfile::tempdir().unwrap();
        let config = PullConfig::from_url("s3://store/logs/", moto.endpoint().into()).unwrap();

        let (summary, seen) = run(&config, lake.path(), &sdk);
        assert_eq!((summary.listed, summary.new, summary.ingested), (1, 1, 1));
        assert_eq!(seen[0].0, "logs/a.json");
        assert_eq!(seen[0].1, ["{\"a\":1}", "{\"a\":2}"]);
        assert!(
            seen[0].2.starts_with("s3://store/logs/a.json#"),
            "{}",
            seen[0].2
        );
        let cursor = local_cursor(lake.path(), &config);
        assert!(cursor.store.path(&cursor.name).is_file());

        let (summary, seen) = run(&config, lake.path(), &sdk);
        assert_eq!((summary.new, seen.len()), (0, 0));
        put("logs/c.json", b"line\n");
        let (_, seen) = run(&config, lake.path(), &sdk);
        assert_eq!(
            seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["logs/c.json"]
        );
    }

    #[test]
    fn an_object_that_appears_late_with_an_older_time_is_taken_unless_outside_the_window() {
        let moto = MotoServer::start();
        let setup = tokio::runtime::Runtime::new().unwrap();
        let sdk = setup.block_on(moto.sdk_config());
        let s3 = crate::config::s3_client(&sdk);
        setup.block_on(async {
            s3.create_bucket().bucket("store").send().await.unwrap();
            s3.put_object()
                .bucket("store")
                .key("logs/late.json")
                .body(ByteStream::from_static(b"{\"late\":1}\n"))
                .send()
                .await
                .unwrap();
        });
        let lake = tempfile::tempdir().unwrap();
        let config = PullConfig::from_url("s3://store/logs/", moto.endpoint().into()).unwrap();
        let store = local_cursor(lake.path(), &config);
        // The cursor of a pull that started yesterday and has since ingested an object stamped
        // an hour from now: `late.json` (stamped now) is far below it, but it was never seen.
        let now = Utc::now();
        let save = |complete_from: DateTime<Utc>| {
            let cursor = Cursor {
                since: now + Duration::hours(1),
                done: [("logs/newer.json".to_string(), now + Duration::hours(1))].into(),
                complete_from: Some(complete_from),
            };
            let version = setup
                .block_on(store.load())
                .unwrap()
                .map(|(_, version)| version);
            setup
                .block_on(store.save(&cursor, version.as_deref()))
                .unwrap();
        };
        save(now - Duration::days(1));
        let (summary, seen) = run(&config, lake.path(), &sdk);
        assert_eq!((summary.new, summary.outside_window), (1, 0));
        assert_eq!(seen[0].0, "logs/late.json");
        let (summary, seen) = run(&config, lake.path(), &sdk);
        assert_eq!((summary.new, seen.len()), (0, 0));

        // A cursor complete only from after its time: it cannot tell, so it counts it instead.
        save(now + Duration::minutes(30));
        let (summary, seen) = run(&config, lake.path(), &sdk);
        assert_eq!((summary.new, summary.outside_window, seen.len()), (0, 1, 0));
    }
}
