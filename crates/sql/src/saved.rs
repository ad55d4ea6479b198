//! Saved queries (`queries/<name>.sql`, built into the binary) and the `${name}` parameters of
//! any query.
//!
//! A query file starts with comment lines: the first says what the query answers, then one
//! line per parameter:
//!
//! ```sql
//! -- Every event that mentions an IP address.
//! -- param ip: the address to look for, e.g. 7.1.14.12
//! -- param from = 0000: first hour partition to read (YYYY-MM-DDTHH)
//! SELECT ... WHERE json_array_contains(json_extract(details, '$._ipaddresses'), '${ip}')
//! ```
//!
//! `${name}` is replaced by the value given for `name` (`--param name=value`), or by the
//! default after `=` in its `-- param` line. Values are inserted with `'` doubled, so a
//! placeholder belongs inside a string literal (`'${ip}'`) and a value can never end the
//! literal early. Every placeholder needs a value and every given value must be used: a typo
//! in a parameter name is an error, not a silently ignored filter.

use std::collections::BTreeMap;

use lakewatch_plugins::content::{ContentError, ContentSet, Kind, check_unique, line_of};

/// The bundled saved queries as (file name, text): the files of `queries/` (a test keeps this
/// list and the directory in step).
const FILES: &[(&str, &str)] = &[
    (
        "console-logins.sql",
        include_str!("../../../queries/console-logins.sql"),
    ),
    (
        "ip-pivot.sql",
        include_str!("../../../queries/ip-pivot.sql"),
    ),
    (
        "s3-audit-avg-response-time.sql",
        include_str!("../../../queries/s3-audit-avg-response-time.sql"),
    ),
    (
        "s3-audit-calls-per-bucket.sql",
        include_str!("../../../queries/s3-audit-calls-per-bucket.sql"),
    ),
    (
        "s3-audit-calls-per-bucket-per-day.sql",
        include_str!("../../../queries/s3-audit-calls-per-bucket-per-day.sql"),
    ),
    (
        "s3-audit-errors.sql",
        include_str!("../../../queries/s3-audit-errors.sql"),
    ),
    (
        "s3-audit-max-response-time.sql",
        include_str!("../../../queries/s3-audit-max-response-time.sql"),
    ),
];

/// A query with its description and declared parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// Where it was read from (`queries/ip-pivot.sql` for a bundled one).
    pub file: String,
    /// The first comment line.
    pub description: String,
    pub params: Vec<Param>,
    /// The whole text, comments included (Athena accepts them too).
    pub sql: String,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub default: Option<String>,
    pub description: String,
}

/// Why a query could not be prepared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("no saved query named {name}; saved queries: {}", known.join(", "))]
    UnknownQuery { name: String, known: Vec<String> },
    #[error(
        "{query} needs a value for parameter {name}: add --param {name}=VALUE{}",
        describe(description)
    )]
    MissingParam {
        query: String,
        name: String,
        description: String,
    },
    #[error(
        "{query} has no parameter {name} (its parameters: {})",
        none_if_empty(known)
    )]
    UnknownParam {
        query: String,
        name: String,
        known: Vec<String>,
    },
    #[error("--param {0}: expected NAME=VALUE")]
    BadParam(String),
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(" ({description})")
    }
}

fn none_if_empty(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Every saved query of `set`: the bundled ones unless turned off, then those of each
/// directory (`*.sql`), then the files given; sorted by name. A query file must describe
/// itself and declare every `${name}` it uses; a name defined twice is an error naming both
/// files.
pub fn load(set: &ContentSet) -> Result<Vec<Template>, ContentError> {
    let files = set.gather(Kind::Queries, FILES)?;
    let mut queries = Vec::with_capacity(files.len());
    for file in &files {
        let query = Template::parse(file.stem(), &file.text).read_from(&file.origin);
        query.check()?;
        queries.push(query);
    }
    check_unique(
        Kind::Queries,
        queries.iter().map(|q| (q.name.as_str(), q.file.as_str())),
    )?;
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queries)
}

/// Every bundled saved query, sorted by name.
pub fn saved_queries() -> Vec<Template> {
    load(&ContentSet::default()).expect("the bundled queries are checked by the tests")
}

/// The bundled saved query called `name`.
pub fn saved_query(name: &str) -> Result<Template, TemplateError> {
    find(&saved_queries(), name).cloned()
}

/// The query called `name` among `queries`.
pub fn find<'a>(queries: &'a [Template], name: &str) -> Result<&'a Template, TemplateError> {
    queries
        .iter()
        .find(|q| q.name == name)
        .ok_or_else(|| TemplateError::UnknownQuery {
            name: name.to_string(),
            known: queries.iter().map(|q| q.name.clone()).collect(),
        })
}

/// Splits `NAME=VALUE` (the value may contain `=`).
pub fn parse_param(text: &str) -> Result<(String, String), TemplateError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(TemplateError::BadParam(text.to_string())),
    }
}

impl Template {
    /// Reads the header comments of `text`: the description, then `-- param` lines.
    pub fn parse(name: &str, text: &str) -> Template {
        let mut description = String::new();
        let mut params = Vec::new();
        for line in text.lines() {
            let Some(comment) = line.trim().strip_prefix("--") else {
                if line.trim().is_empty() {
                    continue;
                }
                break;
            };
            let comment = comment.trim();
            if let Some(decl) = comment.strip_prefix("param ") {
                let (head, about) = decl.split_once(':').unwrap_or((decl, ""));
                let (pname, default) = match head.split_once('=') {
                    Some((n, d)) => (n.trim(), Some(d.trim().to_string())),
                    None => (head.trim(), None),
                };
                params.push(Param {
                    name: pname.to_string(),
                    default,
                    description: about.trim().to_string(),
                });
            } else if description.is_empty() {
                description = comment.to_string();
            }
        }
        Template {
            name: name.to_string(),
            file: name.to_string(),
            description,
            params,
            sql: text.to_string(),
        }
    }

    /// The same query, named in errors by the file it came from.
    fn read_from(self, file: &str) -> Template {
        Template {
            file: file.to_string(),
            ..self
        }
    }

    /// What a saved query file must be: described (its first comment line) and with every
    /// `${name}` declared by a `-- param` line, so `--list-saved` tells all it needs. The error
    /// names the file and the line.
    pub fn check(&self) -> Result<(), ContentError> {
        let error = |offset: usize, message: String| ContentError {
            file: self.file.clone(),
            line: Some(line_of(&self.sql, offset)),
            message,
        };
        if self.description.is_empty() {
            return Err(error(
                0,
                "no description: start the file with a comment saying what the query answers \
                 (-- Every event that mentions an IP address.)"
                    .to_string(),
            ));
        }
        if let Some((start, _, name)) = placeholders(&self.sql)
            .into_iter()
            .find(|(_, _, name)| !self.params.iter().any(|p| p.name == *name))
        {
            return Err(error(
                start,
                format!(
                    "${{{name}}} is not declared: add a header line \
                     -- param {name}: what it is (or -- param {name} = default: what it is)"
                ),
            ));
        }
        Ok(())
    }

    /// The SQL with every `${name}` replaced (see the module docs for the rules).
    pub fn render(&self, values: &[(String, String)]) -> Result<String, TemplateError> {
        let mut given: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, value) in values {
            given.insert(name, value);
        }
        let placeholders = placeholders(&self.sql);
        for name in given.keys() {
            if !placeholders.iter().any(|(_, _, p)| p == name) {
                let mut known: Vec<String> =
                    placeholders.iter().map(|(_, _, p)| p.to_string()).collect();
                known.sort();
                known.dedup();
                return Err(TemplateError::UnknownParam {
                    query: self.name.clone(),
                    name: name.to_string(),
                    known,
                });
            }
        }
        let mut out = String::with_capacity(self.sql.len());
        let mut last = 0;
        for (start, end, name) in placeholders {
            let declared = self.params.iter().find(|p| p.name == name);
            let value = match (given.get(name), declared.and_then(|p| p.default.as_deref())) {
                (Some(v), _) => *v,
                (None, Some(default)) => default,
                (None, None) => {
                    return Err(TemplateError::MissingParam {
                        query: self.name.clone(),
                        name: name.to_string(),
                        description: declared.map(|p| p.description.clone()).unwrap_or_default(),
                    });
                }
            };
            out.push_str(&self.sql[last..start]);
            out.push_str(&value.replace('\'', "''"));
            last = end;
        }
        out.push_str(&self.sql[last..]);
        Ok(out)
    }
}

/// The `${name}` placeholders of `sql`: byte range and name.
fn placeholders(sql: &str) -> Vec<(usize, usize, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = sql[from..].find("${") {
        let start = from + i;
        let rest = &sql[start + 2..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len > 0 && rest[len..].starts_with('}') {
            found.push((start, start + 2 + len + 1, &rest[..len]));
            from = start + 2 + len + 1;
        } else {
            from = start + 2;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::parse(
            "t",
            "-- Finds things.\n-- param ip: an address\n-- param from = 0000: first hour\nSELECT '${ip}', '${from}', '${ip}', '$.x', '${ not}'",
        )
    }

    fn values(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn header_gives_description_and_params_with_defaults() {
        let t = template();
        assert_eq!(t.description, "Finds things.");
        assert_eq!(
            t.params,
            vec![
                Param {
                    name: "ip".into(),
                    default: None,
                    description: "an address".into()
                },
                Param {
                    name: "from".into(),
                    default: Some("0000".into()),
                    description: "first hour".into()
                },
            ]
        );
    }

    #[test]
    fn render_replaces_every_placeholder_and_uses_defaults() {
        let sql = template().render(&values(&[("ip", "1.2.3.4")])).unwrap();
        assert!(
            sql.ends_with("SELECT '1.2.3.4', '0000', '1.2.3.4', '$.x', '${ not}'"),
            "{sql}"
        );
    }

    #[test]
    fn quotes_in_values_cannot_end_the_literal() {
        let sql = template()
            .render(&values(&[("ip", "x' OR '1'='1")]))
            .unwrap();
        assert!(sql.contains("'x'' OR ''1''=''1'"), "{sql}");
    }

    #[test]
    fn missing_and_unknown_params_are_errors_naming_them() {
        assert_eq!(
            template().render(&[]).unwrap_err().to_string(),
            "t needs a value for parameter ip: add --param ip=VALUE (an address)"
        );
        assert_eq!(
            template()
                .render(&values(&[("ip", "1"), ("form", "2")]))
                .unwrap_err()
                .to_string(),
            "t has no parameter form (its parameters: from, ip)"
        );
    }

    #[test]
    fn param_arguments_split_at_the_first_equals_sign() {
        assert_eq!(parse_param("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=x").is_err());
    }

    #[test]
    fn unknown_saved_query_lists_the_saved_ones() {
        let error = saved_query("ip-pivto").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "no saved query named ip-pivto; saved queries: console-logins, ip-pivot"
            ),
            "{error}"
        );
    }

    #[test]
    fn every_file_in_queries_is_listed_once_and_documented() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".sql").map(str::to_string)
            })
            .collect();
        on_disk.sort();
        let listed: Vec<String> = FILES
            .iter()
            .map(|(n, _)| n.trim_end_matches(".sql").to_string())
            .collect();
        assert_eq!(listed, on_disk, "FILES must list queries/*.sql, sorted");
        for query in saved_queries() {
            assert!(
                !query.description.is_empty(),
                "{} has no description",
                query.name
            );
            for (_, _, name) in placeholders(&query.sql) {
                assert!(
                    query.params.iter().any(|p| p.name == name),
                    "{}: ${{{name}}} is not declared with -- param",
                    query.name
                );
            }
        }
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_users_directory_adds_its_queries_beside_the_bundled_ones() {
        let dir = dir_with(&[
            (
                "my-hunt.sql",
                "-- Hosts that ran curl.\n-- param host: the host\nSELECT '${host}'",
            ),
            ("README.md", "not a query"),
        ]);
        let set = ContentSet::with_dirs(vec![dir.path().to_path_buf()]);
        let queries = load(&set).unwrap();
        let names: Vec<&str> = queries.iter().map(|q| q.name.as_str()).collect();
        assert!(
            names.contains(&"ip-pivot") && names.contains(&"my-hunt"),
            "{names:?}"
        );
        let mine = find(&queries, "my-hunt").unwrap();
        assert_eq!(mine.description, "Hosts that ran curl.");
        assert_eq!(
            mine.file,
            dir.path().join("my-hunt.sql").display().to_string()
        );
        let only_mine = ContentSet {
            bundled: false,
            ..set
        };
        assert_eq!(load(&only_mine).unwrap().len(), 1);
    }

    #[test]
    fn a_query_file_without_description_or_with_an_undeclared_parameter_names_file_and_line() {
        let dir = dir_with(&[(
            "bad.sql",
            "-- Finds things.\n-- param ip: an address\nSELECT '${ip}'\nWHERE x = '${host}'",
        )]);
        let set = ContentSet::with_dirs(vec![dir.path().to_path_buf()]);
        let error = load(&set).unwrap_err().to_string();
        let file = dir.path().join("bad.sql").display().to_string();
        assert!(
            error.starts_with(&format!("{file}:4: ${{host}} is not declared")),
            "{error}"
        );
        std::fs::write(dir.path().join("bad.sql"), "SELECT 1").unwrap();
        let error = load(&set).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{file}:1: no description")),
            "{error}"
        );
    }

    #[test]
    fn a_query_named_like_a_bundled_one_is_an_error_naming_both_files() {
        let dir = dir_with(&[("ip-pivot.sql", "-- Mine.\nSELECT 1")]);
        let error = load(&ContentSet::with_dirs(vec![dir.path().to_path_buf()]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "{}: query \"ip-pivot\" is already defined in queries/ip-pivot.sql",
                dir.path().join("ip-pivot.sql").display()
            )
        );
    }
}
