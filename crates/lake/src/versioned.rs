//! Small state documents read with a version and written with compare-and-swap: the pull
//! cursors, the detector's rule state, and whatever else must not be moved by two overlapping
//! runs at once. A write names the version it read (`None`: "there was nothing"), and is
//! refused with [`WriteError::Conflict`] when the document changed since, so of two runs that
//! read the same version only the first can write.
//!
//! [`VersionedStore`] is the one abstraction; S3 objects with `If-Match` implement it on AWS
//! (`lakewatch_aws::s3::state`), and [`FileStore`] locally, with the same guarantee between
//! processes on one machine. Atomic file replacement ([`write_atomically`]) lives here too, so
//! every local file that must never be seen half written is written the same way.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A document's bytes and the version they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub version: String,
}

/// Why a conditional write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The document changed (or appeared) since it was read.
    #[error("changed since it was read")]
    Conflict,
    /// Anything else, as text.
    #[error("{0}")]
    Failed(String),
}

/// Documents by name (`<rule>.json`, `aws/bucket/prefix/cursor.json`) in one place: a
/// directory, or an S3 bucket and prefix.
pub trait VersionedStore {
    /// Where the document `name` is, for logs and errors (a path, `s3://bucket/key`).
    fn location(&self, name: &str) -> String;
    /// The document and its version; `None` when there is none.
    fn read(&self, name: &str) -> impl Future<Output = Result<Option<Versioned>, String>> + Send;
    /// Writes `bytes` if the document is still at `expected` (`None`: if there is none);
    /// returns the new version.
    fn write(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<String, WriteError>> + Send;
}

/// Documents as files in a directory, versioned by a hash of their content. A lock file beside
/// the document makes check-and-write atomic between processes; the write itself replaces the
/// file atomically, so a reader never sees half a document.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// The file of the document `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// [`VersionedStore::read`] without a runtime (a file store never waits on anything).
    pub fn read_now(&self, name: &str) -> io::Result<Option<Versioned>> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(Versioned {
                version: version_of(&bytes),
                bytes,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`VersionedStore::write`] without a runtime.
    pub fn write_now(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        let path = self.path(name);
        let failed = |e: io::Error| WriteError::Failed(e.to_string());
        std::fs::create_dir_all(path.parent().expect("a document has a directory"))
            .map_err(failed)?;
        let _lock = LockFile::acquire(&sibling(&path, "lock")).map_err(failed)?;
        let current = self.read_now(name).map_err(failed)?;
        if current.as_ref().map(|c| c.version.as_str()) != expected {
            return Err(WriteError::Conflict);
        }
        write_atomically(&path, |file| file.write_all(bytes)).map_err(failed)?;
        Ok(version_of(bytes))
    }
}

impl VersionedStore for FileStore {
    fn location(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    async fn read(&self, name: &str) -> Result<Option<Versioned>, String> {
        self.read_now(name).map_err(|e| e.to_string())
    }

    async fn write(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        self.write_now(name, &bytes, expected)
    }
}

fn version_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

/// `path` with `.<suffix>` appended to its file name (`a.json` → `a.json.tmp`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes a file so that it is replaced whole or not at all: `write` fills `<path>.tmp`, which
/// is synced to disk and then renamed over `path`. A crash leaves the old file (and at most a
/// stray `.tmp`), never half a new one.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let temporary = sibling(path, "tmp");
    let mut file = File::create(&temporary)?;
    write(&mut file)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// A file created exclusively and removed on drop.
struct LockFile(PathBuf);

impl LockFile {
    fn acquire(path: &Path) -> io::Result<LockFile> {
        for _ in 0..200 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return Ok(LockFile(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{} is held by another run; delete it if no other lakewatch process is running",
            path.display()
        )))
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_testkit::block_on;

    #[test]
    fn a_writer_holding_a_stale_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let name = "nested/doc.json";
        assert_eq!(block_on(store.read(name)).unwrap(), None);
        let first = block_on(store.write(name, b"1".to_vec(), None)).unwrap();
        // A second writer that also saw no document.
        assert_eq!(
            block_on(store.write(name, b"x".to_vec(), None)),
            Err(WriteError::Conflict)
        );
        let second = block_on(store.write(name, b"2".to_vec(), Some(&first))).unwrap();
        // A writer still holding the first version.
        assert_eq!(
            block_on(store.write(name, b"y".to_vec(), Some(&first))),
            Err(WriteError::Conflict)
        );
        let read = block_on(store.read(name)).unwrap().unwrap();
        assert_eq!((read.bytes.as_slice(), read.version), (&b"2"[..], second));
        // Only the document is left: no lock, no temporary file.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["doc.json"]);
    }

    #[test]
    fn concurrent_writers_from_one_version_let_exactly_one_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let base = block_on(store.write("d", b"0".to_vec(), None)).unwrap();
        let wins: usize = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let (store, base) = (&store, &base);
                    scope.spawn(move || {
                        block_on(store.write("d", vec![b'a' + i], Some(base))).is_ok() as usize
                    })
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file_or_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, |f| f.write_all(b"old")).unwrap();
        let failed = write_atomically(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("interrupted"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        write_atomically(&path, |f| f.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
