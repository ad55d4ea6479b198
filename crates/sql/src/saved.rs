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

/// The saved queries, by name: the files of `queries/` (a test keeps this list and the
/// directory in step).
const FILES: &[(&str, &str)] = &[
    (
        "console-logins",
        include_str!("../../../queries/console-logins.sql"),
    ),
    ("ip-pivot", include_str!("../../../queries/ip-pivot.sql")),
    (
        "s3-audit-avg-response-time",
        include_str!("../../../queries/s3-audit-avg-response-time.sql"),
    ),
    (
        "s3-audit-calls-per-bucket",
        include_str!("../../../queries/s3-audit-calls-per-bucket.sql"),
    ),
    (
        "s3-audit-errors",
        include_str!("../../../queries/s3-audit-errors.sql"),
    ),
    (
        "s3-audit-max-response-time",
        include_str!("../../../queries/s3-audit-max-response-time.sql"),
    ),
];

/// A query with its description and declared parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
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

/// Every saved query, sorted by name.
pub fn saved_queries() -> Vec<Template> {
    FILES
        .iter()
        .map(|(name, text)| Template::parse(name, text))
        .collect()
}

/// The saved query called `name`.
pub fn saved_query(name: &str) -> Result<Template, TemplateError> {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Template::parse(n, text))
        .ok_or_else(|| TemplateError::UnknownQuery {
            name: name.to_string(),
            known: FILES.iter().map(|(n, _)| n.to_string()).collect(),
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
            description,
            params,
            sql: text.to_string(),
        }
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
        let listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
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
}
