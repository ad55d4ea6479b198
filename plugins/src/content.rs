//! Content: what a user adds as files, without Rust: detection rules (`*.toml`), sources
//! (`*.toml`, see [`crate::declarative`]) and saved queries (`*.sql`). One home for where
//! content comes from and how it is gathered; each kind is parsed in its own home (rules in
//! `lakewatch-detect`, sources in [`crate::declarative`], queries in `lakewatch-sql`).
//!
//! Content of a kind comes, in this order, from the files bundled in the binary (the
//! repository's `rules/`, `sources/` and `queries/`, embedded at build time; on by default), the
//! user's directories (`--rules DIR`, repeatable), and files already read from elsewhere (the
//! Lambdas read a [`Bundle`] from S3 at cold start). An id defined twice, in any of them, is an
//! error naming both files: a user's file never silently replaces another.

use std::path::{Path, PathBuf};

/// The three kinds of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Rules,
    Sources,
    Queries,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Rules, Kind::Sources, Kind::Queries];

    /// The directory name (in the repository, in the content prefix of the lake bucket) and
    /// the word people use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rules => "rules",
            Kind::Sources => "sources",
            Kind::Queries => "queries",
        }
    }

    /// One of them, in errors.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Rules => "rule",
            Kind::Sources => "source",
            Kind::Queries => "query",
        }
    }

    /// The extension of its files: other files of a directory (READMEs, test events) are not
    /// content of this kind.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Rules | Kind::Sources => "toml",
            Kind::Queries => "sql",
        }
    }
}

/// One content file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentFile {
    /// Where it came from, as errors name it: `rules/x.toml` for a bundled file, the path as
    /// given for a user's file.
    pub origin: String,
    pub text: String,
    /// The directory it was read from, when it was read from one: files it refers to (a rule's
    /// test events) are relative to it.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

impl ContentFile {
    /// The id a file must define: its name without the extension.
    pub fn stem(&self) -> &str {
        let name = self.origin.rsplit('/').next().unwrap_or(&self.origin);
        name.rsplit_once('.').map_or(name, |(stem, _)| stem)
    }
}

/// Where one kind of content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentSet {
    /// Whether the files bundled in the binary are used (default: yes).
    pub bundled: bool,
    /// The user's directories, read in order (their files sorted by name).
    pub dirs: Vec<PathBuf>,
    /// Files already read (from an S3 bundle), after the directories.
    pub files: Vec<ContentFile>,
}

impl Default for ContentSet {
    fn default() -> Self {
        ContentSet {
            bundled: true,
            dirs: Vec::new(),
            files: Vec::new(),
        }
    }
}

impl ContentSet {
    /// The bundled files and those of `dirs`.
    pub fn with_dirs(dirs: Vec<PathBuf>) -> Self {
        ContentSet {
            dirs,
            ..ContentSet::default()
        }
    }

    /// Only these files (what a Lambda read from S3, bundled content included).
    pub fn only_files(files: Vec<ContentFile>) -> Self {
        ContentSet {
            bundled: false,
            dirs: Vec::new(),
            files,
        }
    }

    /// Every file of the set, in order: `bundled` (as (file name, text), named
    /// `<kind>/<name>`) when the set uses them, each directory's files, the files given.
    pub fn gather(
        &self,
        kind: Kind,
        bundled: &[(&str, &str)],
    ) -> Result<Vec<ContentFile>, ContentError> {
        let mut files: Vec<ContentFile> = Vec::new();
        if self.bundled {
            files.extend(bundled.iter().map(|(name, text)| ContentFile {
                origin: format!("{}/{name}", kind.name()),
                text: text.to_string(),
                dir: None,
            }));
        }
        for dir in &self.dirs {
            files.extend(read_dir(kind, dir)?);
        }
        files.extend(self.files.iter().cloned());
        Ok(files)
    }
}

/// A content file that cannot be used: which file, which line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ContentError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The `*.<extension>` files of a directory (not below it: a rules directory keeps its test
/// events in `tests/`), sorted by name.
pub fn read_dir(kind: Kind, dir: &Path) -> Result<Vec<ContentFile>, ContentError> {
    let error = |message: String| ContentError {
        file: dir.display().to_string(),
        line: None,
        message,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(format!("cannot read the {} directory: {e}", kind.name())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == kind.extension()))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| ContentError {
                file: path.display().to_string(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            Ok(ContentFile {
                origin: path.display().to_string(),
                text,
                dir: Some(dir.to_path_buf()),
            })
        })
        .collect()
}

/// Refuses an id defined twice: the error names the later file, the id and the first file.
/// `items` are (id, file) in load order.
pub fn check_unique<'a>(
    kind: Kind,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ContentError> {
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (id, file) in items {
        if let Some(first) = seen.insert(id, file) {
            return Err(ContentError {
                file: file.to_string(),
                line: None,
                message: format!("{} {id:?} is already defined in {first}", kind.singular()),
            });
        }
    }
    Ok(())
}

/// The 1-based line of a byte offset of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// One kind of content as one object, the way the Lambdas read it from S3 at cold start: one
/// request, and a deployment that changes several files is seen whole or not at all. Terraform
/// writes it (`terraform/modules/lakewatch/content.tf`) with the same field names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub files: Vec<ContentFile>,
}

impl Bundle {
    /// Reads a bundle object; `name` says where it came from, for the error.
    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Bundle, ContentError> {
        serde_json::from_slice(bytes).map_err(|e| ContentError {
            file: name.to_string(),
            line: Some(e.line()),
            message: format!(
                "not a content bundle ({{\"files\": [{{\"origin\", \"text\"}}]}}): {e}"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lakewatch-content-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn gathers_bundled_then_each_directory_sorted_then_given_files() {
        let first = dir_with(&[("b.toml", "B"), ("a.toml", "A"), ("notes.md", "no")]);
        std::fs::write(first.join("tests/t.toml"), "not read").unwrap();
        let second = dir_with(&[("c.sql", "C"), ("c.toml", "C2")]);
        let set = ContentSet {
            bundled: true,
            dirs: vec![first.clone(), second.clone()],
            files: vec![ContentFile {
                origin: "s3://b/content/rules/z.toml".into(),
                text: "Z".into(),
                dir: None,
            }],
        };
        let files = set.gather(Kind::Rules, &[("x.toml", "X")]).unwrap();
        let origins: Vec<_> = files.iter().map(|f| f.origin.clone()).collect();
        assert_eq!(
            origins,
            [
                "rules/x.toml".to_string(),
                first.join("a.toml").display().to_string(),
                first.join("b.toml").display().to_string(),
                second.join("c.toml").display().to_string(),
                "s3://b/content/rules/z.toml".to_string(),
            ]
        );
        assert_eq!(files[1].dir.as_deref(), Some(first.as_path()));
        assert_eq!(files[0].stem(), "x");
        let queries = set.gather(Kind::Queries, &[]).unwrap();
        assert_eq!(queries.len(), 2, "c.sql and the given file");
        let unbundled = ContentSet {
            bundled: false,
            ..set
        };
        assert_eq!(
            unbundled.gather(Kind::Rules, &[("x.toml", "X")]).unwrap()[0].text,
            "A"
        );
        for dir in [first, second] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let set = ContentSet::with_dirs(vec![PathBuf::from("/no/such/queries")]);
        let error = set.gather(Kind::Queries, &[]).unwrap_err().to_string();
        assert!(
            error.starts_with("/no/such/queries: cannot read the queries directory"),
            "{error}"
        );
    }

    #[test]
    fn an_id_defined_twice_names_both_files() {
        let error = check_unique(
            Kind::Queries,
            [
                ("ip-pivot", "queries/ip-pivot.sql"),
                ("mine", "mine/mine.sql"),
                ("ip-pivot", "mine/ip-pivot.sql"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "mine/ip-pivot.sql: query \"ip-pivot\" is already defined in queries/ip-pivot.sql"
        );
        let rules = check_unique(Kind::Rules, [("a", "x/a.toml"), ("a", "y/a.toml")]);
        assert!(rules.unwrap_err().message.starts_with("rule \"a\""));
        let sources = check_unique(Kind::Sources, [("a", "x/a.toml"), ("a", "y/a.toml")]);
        assert!(sources.unwrap_err().message.starts_with("source \"a\""));
        assert!(check_unique(Kind::Rules, [("a", "x"), ("b", "x")]).is_ok());
    }

    #[test]
    fn a_bundle_reads_back_and_a_bad_one_says_what_it_expected() {
        let bundle = Bundle {
            files: vec![ContentFile {
                origin: "rules/x.toml".into(),
                text: "id = \"x\"".into(),
                dir: None,
            }],
        };
        let json = serde_json::to_vec(&bundle).unwrap();
        assert_eq!(Bundle::from_json("b", &json).unwrap(), bundle);
        let error = Bundle::from_json("s3://b/content/rules.json", b"{\"files\": 1}")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("s3://b/content/rules.json:1: not a content bundle"),
            "{error}"
        );
    }
}
