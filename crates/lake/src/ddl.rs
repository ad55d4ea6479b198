//! Athena DDL for the lake's tables, generated from [`crate::schema`].
//!
//! For users who create the tables by hand (in the Athena console, or in an account where
//! Terraform does not manage Glue): `lakewatch ddl --bucket B` prints exactly what the Terraform
//! module and the partition generator expect, so the three never disagree on a column.

use std::fmt::Write;

use crate::schema::{Table, storage};

/// A name that would make the generated statement invalid or mean something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
    #[error(
        "database name {0:?} is not valid for Glue: use 1-255 lower-case letters, digits and \
         underscores (e.g. lakewatch)"
    )]
    Database(String),
    #[error(
        "bucket name {0:?} is not a valid S3 bucket name: use 3-63 lower-case letters, digits, \
         dots and dashes (the lake bucket, e.g. the lake_bucket output of the Terraform module)"
    )]
    Bucket(String),
}

/// `CREATE DATABASE IF NOT EXISTS` for `database`.
pub fn create_database(database: &str) -> Result<String, DdlError> {
    check_database(database)?;
    Ok(format!("CREATE DATABASE IF NOT EXISTS `{database}`;\n"))
}

/// `CREATE EXTERNAL TABLE IF NOT EXISTS` for `table` in `database`, over `s3://bucket/<prefix>/`,
/// partitioned by hour.
pub fn create_table(table: &Table, database: &str, bucket: &str) -> Result<String, DdlError> {
    check_database(database)?;
    check_bucket(bucket)?;
    let mut sql = String::new();
    let name = table.name;
    // Writing to a String cannot fail.
    let _ = writeln!(
        sql,
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{name}` ("
    );
    for (i, column) in table.columns.iter().enumerate() {
        let separator = if i + 1 < table.columns.len() { "," } else { "" };
        let _ = writeln!(
            sql,
            "  `{}` {} COMMENT {}{separator}",
            column.name,
            column.kind.hive_name(),
            string_literal(column.comment)
        );
    }
    let partitions: Vec<String> = table
        .partition_keys
        .iter()
        .map(|key| format!("`{key}` string"))
        .collect();
    let _ = writeln!(sql, ")");
    let _ = writeln!(sql, "PARTITIONED BY ({})", partitions.join(", "));
    let _ = writeln!(sql, "ROW FORMAT SERDE {}", string_literal(storage::SERDE));
    let _ = writeln!(
        sql,
        "WITH SERDEPROPERTIES ({})",
        properties(storage::SERDE_PARAMETERS)
    );
    let _ = writeln!(
        sql,
        "STORED AS INPUTFORMAT {}",
        string_literal(storage::INPUT_FORMAT)
    );
    let _ = writeln!(
        sql,
        "OUTPUTFORMAT {}",
        string_literal(storage::OUTPUT_FORMAT)
    );
    let _ = writeln!(sql, "LOCATION {}", string_literal(&table.location(bucket)));
    let _ = writeln!(
        sql,
        "TBLPROPERTIES ({});",
        properties(storage::TABLE_PARAMETERS)
    );
    Ok(sql)
}

/// The database and every table of the lake, ready to paste into Athena one statement at a time.
pub fn create_all(database: &str, bucket: &str) -> Result<String, DdlError> {
    let mut sql = create_database(database)?;
    for table in crate::schema::TABLES {
        sql.push('\n');
        sql.push_str(&create_table(table, database, bucket)?);
    }
    Ok(sql)
}

/// A Hive string literal: single quotes, with `\` and `'` escaped by a backslash.
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn properties(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{} = {}", string_literal(key), string_literal(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_database(database: &str) -> Result<(), DdlError> {
    let valid = (1..=255).contains(&database.len())
        && database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid
        .then_some(())
        .ok_or_else(|| DdlError::Database(database.to_owned()))
}

fn check_bucket(bucket: &str) -> Result<(), DdlError> {
    let bytes = bucket.as_bytes();
    let valid = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    valid
        .then_some(())
        .ok_or_else(|| DdlError::Bucket(bucket.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ALERTS, EVENTS, TABLES};

    /// The `name type` pairs between the statement's opening parenthesis and `)`.
    fn declared_columns(sql: &str) -> Vec<(String, String)> {
        let body = &sql[sql.find("(\n").unwrap() + 2..sql.find("\n)\n").unwrap()];
        body.lines()
            .map(|line| {
                let mut words = line.split_whitespace();
                let name = words.next().unwrap().trim_matches('`').to_owned();
                (name, words.next().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn ddl_columns_are_the_schema_columns_in_order() {
        for table in TABLES {
            let sql = create_table(table, "lakewatch", "my-lake").unwrap();
            let expected: Vec<(String, String)> = table
                .columns
                .iter()
                .map(|c| (c.name.to_owned(), c.kind.hive_name().to_owned()))
                .collect();
            assert_eq!(declared_columns(&sql), expected, "{}", table.name);
        }
    }

    #[test]
    fn events_ddl_is_partitioned_by_hour_and_read_by_the_json_serde() {
        let sql = create_table(&EVENTS, "lakewatch", "my-lake").unwrap();
        assert!(sql.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS `lakewatch`.`events` (\n"));
        for line in [
            r"  `details` string COMMENT 'the source\'s own fields as JSON text'",
            "  `tags` array<string> COMMENT 'de-duplicated tags',",
            "PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)",
            "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'",
            "WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'case.insensitive' = 'false')",
            "STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'",
            "LOCATION 's3://my-lake/events/'",
            "TBLPROPERTIES ('classification' = 'json', 'compressionType' = 'gzip');",
        ] {
            assert!(sql.lines().any(|l| l == line), "missing {line:?} in\n{sql}");
        }
    }

    #[test]
    fn all_statements_create_the_database_then_each_table() {
        let sql = create_all("security_lake", "my-lake").unwrap();
        let statements: Vec<&str> = sql
            .split(";\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(statements.len(), 1 + TABLES.len());
        assert_eq!(
            statements[0],
            "CREATE DATABASE IF NOT EXISTS `security_lake`"
        );
        assert!(statements[2].contains("`security_lake`.`alerts`"));
        assert!(statements[2].contains(&format!("LOCATION '{}'", ALERTS.location("my-lake"))));
    }

    #[test]
    fn quotes_and_backslashes_in_literals_are_escaped() {
        assert_eq!(string_literal(r"it's a\b"), r"'it\'s a\\b'");
    }

    #[test]
    fn rejects_names_that_would_break_the_statement() {
        for database in ["", "Lakewatch", "lake-watch", "db`; DROP", "a b"] {
            assert_eq!(
                create_table(&EVENTS, database, "my-lake"),
                Err(DdlError::Database(database.to_owned()))
            );
        }
        for bucket in [
            "",
            "ab",
            "My-Lake",
            "lake/events",
            "-lake",
            "lake-",
            "la'ke",
        ] {
            assert_eq!(
                create_table(&EVENTS, "lakewatch", bucket),
                Err(DdlError::Bucket(bucket.to_owned()))
            );
        }
    }
}
