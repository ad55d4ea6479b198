//! Errors a user can act on: where in the SQL, what is wrong, and what to do.

use std::ops::ControlFlow;
use std::path::PathBuf;

use datafusion::common::DataFusionError;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Spanned, visit_expressions};

/// A 1-based position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why a query did not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The lake directory is missing or unreadable.
    #[error("lake directory {}: {reason}", path.display())]
    Lake { path: PathBuf, reason: String },

    /// The SQL does not parse.
    #[error("SQL syntax error{}: {message}{}", at(*position), excerpt(sql, *position, hint))]
    Syntax {
        message: String,
        position: Option<Position>,
        sql: String,
        hint: String,
    },

    /// A table that the lake does not have.
    #[error(
        "unknown table {name}: the lake has the tables {} (any database or catalog prefix is accepted, e.g. \"mydb\".\"events\")",
        tables.join(", ")
    )]
    UnknownTable { name: String, tables: Vec<String> },

    /// A function of Athena's that the local engine does not have yet.
    #[error(
        "Athena function {name} is not supported by lakewatch's local engine yet{}{}",
        at(*position),
        excerpt(sql, *position, "run this query on Athena, or rewrite it without the function (docs/query.md lists what is supported)")
    )]
    UnsupportedFunction {
        name: String,
        position: Option<Position>,
        sql: String,
    },

    /// The query is valid SQL but cannot be planned (unknown column, wrong types, unknown
    /// function…).
    #[error("{message}{}", excerpt(sql, *position, hint))]
    Plan {
        message: String,
        position: Option<Position>,
        sql: String,
        hint: String,
    },

    /// Statements that would change something: the local engine only reads the lake.
    #[error(
        "{what} is not allowed: lakewatch query only reads the lake (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
    )]
    NotAllowed { what: String },

    /// The query failed while running (an unreadable file, a function error on a value).
    #[error("query failed: {0}")]
    Execution(String),
}

fn at(position: Option<Position>) -> String {
    match position {
        Some(p) => format!(" at line {}, column {}", p.line, p.column),
        None => String::new(),
    }
}

/// The SQL line at `position` with a caret under the column, then the hint.
fn excerpt(sql: &str, position: Option<Position>, hint: &str) -> String {
    let mut out = String::new();
    if let Some(p) = position
        && let Some(line) = sql.lines().nth(p.line.saturating_sub(1))
    {
        let number = p.line.to_string();
        let pad = " ".repeat(number.len());
        // Tabs stay tabs so the caret lines up under them.
        let indent: String = line
            .chars()
            .take(p.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!(
            "\n {pad} |\n {number} | {line}\n {pad} | {indent}^"
        ));
    }
    if !hint.is_empty() {
        out.push_str("\nhint: ");
        out.push_str(hint);
    }
    out
}

impl QueryError {
    /// The error for a parse failure: sqlparser reports `... at Line: L, Column: C`.
    pub(crate) fn syntax(error: &DataFusionError, sql: &str) -> Self {
        let text = error.find_root().to_string();
        let text = text
            .strip_prefix("SQL error: ParserError(\"")
            .and_then(|t| t.strip_suffix("\")"))
            .unwrap_or(&text)
            .to_string();
        let text = text.strip_prefix("sql parser error: ").unwrap_or(&text);
        let (message, position) = match text.rsplit_once(" at Line: ") {
            Some((message, rest)) => {
                let mut numbers = rest
                    .split(", Column: ")
                    .map(|n| n.trim().parse::<usize>().ok());
                let position = match (numbers.next().flatten(), numbers.next().flatten()) {
                    (Some(line), Some(column)) => Some(Position { line, column }),
                    _ => None,
                };
                (message.to_string(), position)
            }
            None => (text.to_string(), None),
        };
        let hint = if message.contains("Unterminated string literal") {
            "close the string with a single quote; write a quote inside a string as ''"
        } else {
            "lakewatch accepts Athena's (Trino's) SELECT syntax; check the SQL at the caret"
        };
        QueryError::Syntax {
            message,
            position,
            sql: sql.to_string(),
            hint: hint.to_string(),
        }
    }

    /// The error for a planning failure, with the position DataFusion found, if any.
    pub(crate) fn plan(error: DataFusionError, sql: &str) -> Self {
        let position = error
            .diagnostic()
            .and_then(|d| d.span)
            .filter(|s| s.start.line > 0)
            .map(|s| Position {
                line: s.start.line as usize,
                column: s.start.column as usize,
            });
        let raw = error.find_root().to_string();
        let message = ["Error during planning: ", "Schema error: "]
            .iter()
            .find_map(|prefix| raw.strip_prefix(prefix))
            .unwrap_or(&raw)
            .to_string();
        let (message, hint) = if let Some(rest) = message.strip_prefix("Invalid function '") {
            // "Invalid function 'x'.\nDid you mean 'y'?"
            let name = rest.split('\'').next().unwrap_or_default();
            let suggestion = rest
                .split("Did you mean '")
                .nth(1)
                .and_then(|s| s.split('\'').next());
            let hint = match suggestion {
                Some(s) => format!("did you mean {s}?"),
                None => String::new(),
            };
            (format!("unknown function {name}"), hint)
        } else if message.contains("No field named") && sql.contains('"') {
            (
                message,
                "string values take single quotes ('cloudtrail'); double quotes name columns"
                    .to_string(),
            )
        } else {
            (message, String::new())
        };
        QueryError::Plan {
            message,
            position,
            sql: sql.to_string(),
            hint,
        }
    }
}

/// The first function called in `statement` that `known` does not know, if Athena has it.
pub(crate) fn unsupported_function(
    statement: &Statement,
    known: &dyn Fn(&str) -> bool,
    sql: &str,
) -> Option<QueryError> {
    let inner = match statement {
        Statement::Statement(s) => s,
        Statement::Explain(e) => return unsupported_function(&e.statement, known, sql),
        _ => return None,
    };
    let mut found = None;
    let _ = visit_expressions(inner.as_ref(), |expr| {
        if let SqlExpr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_lowercase();
            // A qualified name (`system.f`) is the last part.
            let name = name.rsplit('.').next().unwrap_or(&name).trim_matches('"');
            if !known(name) && crate::trino_names::is_athena_function(name) {
                let span = f.name.span();
                let position = (span.start.line > 0).then_some(Position {
                    line: span.start.line as usize,
                    column: span.start.column as usize,
                });
                found = Some(QueryError::UnsupportedFunction {
                    name: name.to_string(),
                    position,
                    sql: sql.to_string(),
                });
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_puts_the_caret_under_the_column() {
        let sql = "SELECT *\nFROM events\nWHERE x = = 1";
        let text = excerpt(
            sql,
            Some(Position {
                line: 3,
                column: 11,
            }),
            "a hint",
        );
        assert_eq!(
            text,
            "\n   |\n 3 | WHERE x = = 1\n   |           ^\nhint: a hint"
        );
    }

    #[test]
    fn excerpt_without_position_is_only_the_hint() {
        assert_eq!(excerpt("SELECT", None, ""), "");
        assert_eq!(excerpt("SELECT", None, "h"), "\nhint: h");
    }
}
