//! The detection extract of a local lake (`LAKE/extract/`, [`extract_dir`]): the pass
//! ([`lakewatch_detect::extract`]) over the lake's files. The lake's objects are its `events/`
//! files, versioned by size and modification time; extract objects are files below the lake
//! directory at the same keys as in the lake bucket, each written whole or not at all
//! ([`write_atomically`]).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use lakewatch_detect::extract::{ExtractError, LakeObject, LakeObjects, extract_new};
use lakewatch_lake::LocalLake;
use lakewatch_lake::schema::EVENTS;
use lakewatch_lake::versioned::{FileStore, write_atomically};

pub use lakewatch_detect::extract::ExtractReport;
use lakewatch_lake::local::extract_dir;

/// How much of a file one read takes.
const CHUNK_BYTES: usize = 64 * 1024;

/// The files of a local lake, as the extract pass reads and writes them.
pub struct LocalObjects {
    lake: LocalLake,
}

impl LocalObjects {
    pub fn open(lake: &Path) -> anyhow::Result<Self> {
        Ok(LocalObjects {
            lake: LocalLake::open(lake)?,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.lake.root().join(key)
    }
}

impl LakeObjects for LocalObjects {
    type Body = File;

    async fn list_events(&self) -> Result<Vec<LakeObject>, String> {
        let root = self.lake.root();
        let files = self.lake.data_files(&EVENTS).map_err(|e| e.to_string())?;
        files
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let key = path
                    .strip_prefix(root)
                    .expect("lake files are below the lake")
                    .to_string_lossy()
                    .replace('\\', "/");
                Ok(LakeObject {
                    key,
                    version: format!("{}-{modified}", meta.len()),
                })
            })
            .collect()
    }

    async fn open(&self, key: &str) -> Result<File, String> {
        let path = self.path(key);
        File::open(&path).map_err(|e| format!("{}: cannot open: {e}", path.display()))
    }

    async fn next_chunk(&self, body: &mut File) -> Result<Option<Vec<u8>>, String> {
        let mut chunk = vec![0; CHUNK_BYTES];
        let read = body.read(&mut chunk).map_err(|e| e.to_string())?;
        chunk.truncate(read);
        Ok((read > 0).then_some(chunk))
    }

    async fn write(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        let file = self.path(key);
        let dir = file.parent().expect("an extract key has a directory");
        std::fs::create_dir_all(dir)
            .and_then(|()| write_atomically(&file, |out| out.write_all(&bytes)))
            .map_err(|e| format!("{}: cannot write: {e}", file.display()))
    }
}

/// Extracts the lake files new since the last pass and records the pass; the rules' queries
/// then read [`extract_dir`]. `store` is the detector's state store.
pub async fn update(
    lake: &Path,
    store: &FileStore,
    now: DateTime<Utc>,
) -> anyhow::Result<ExtractReport> {
    let objects = LocalObjects::open(lake)?;
    // The rules open the extract even before anything is in it.
    let target = extract_dir(lake);
    std::fs::create_dir_all(&target)
        .with_context(|| format!("{}: cannot create", target.display()))?;
    extract_new(&objects, store, now, None)
        .await
        .map_err(|e| match e {
            ExtractError::Conflict { .. } => anyhow::anyhow!("{e}; run again"),
            ExtractError::Failed(_) => anyhow::Error::new(e),
        })
        .with_context(|| format!("{}: cannot extract the new lake files", lake.display()))
}
