//! The Glue catalog of the lake: table inputs generated from [`lakewatch_lake::schema`], and the
//! partition generator that keeps the catalog's hour partitions in step with the bucket.
//!
//! Athena only reads partitions the catalog lists. The generator (the `partitions` Lambda, on
//! a schedule) ensures, for `events` and `alerts`:
//! - the current and the next hour, so rows are queryable the moment they land;
//! - every hour that holds objects within a look-back window, because late and back-filled
//!   data lands in old hours by event time.
//!
//! It lists one S3 prefix per UTC day of the window with delimiter `/` (the hour directories come
//! back as common prefixes: no object is listed one by one), and adds what is missing with
//! `BatchCreatePartition`, 100 at a time. A partition that exists already is reported as such, not
//! as an error, so a repeated run changes nothing. The plan itself is pure code in
//! [`lakewatch_lake::partitions`].

use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::operation::get_table::GetTableError;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionError, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use chrono::{DateTime, Utc};
use lakewatch_lake::partitions::{
    DEFAULT_LOOKBACK_HOURS, Hour, MAX_LOOKBACK_HOURS, TablePlan, Window,
};
use lakewatch_lake::schema::{self, Table, storage};

/// Glue's limit on partitions per `BatchCreatePartition` call.
pub const BATCH_LIMIT: usize = 100;

/// The error code of a batch entry for a partition that exists already.
const ALREADY_EXISTS: &str = "AlreadyExistsException";

/// The database input for `name`.
pub fn database_input(name: &str) -> DatabaseInput {
    DatabaseInput::builder()
        .name(name)
        .description("lakewatch: events and alerts")
        .build()
        .expect("the name is set")
}

/// The table input of `table` over `s3://bucket/<prefix>/`: the columns of the schema, gzip
/// NDJSON read by the OpenX JSON SerDe, Hive partitions `year/month/day/hour` as strings. The same
/// definition as the Terraform module's and `lakewatch ddl`'s.
pub fn table_input(table: &Table, bucket: &str) -> TableInput {
    let columns = table
        .columns
        .iter()
        .map(|column| glue_column(column.name, column.kind.hive_name(), column.comment))
        .collect();
    let mut serde_info = SerDeInfo::builder()
        .name("json")
        .serialization_library(storage::SERDE);
    for (key, value) in storage::SERDE_PARAMETERS {
        serde_info = serde_info.parameters(*key, *value);
    }
    let storage_descriptor = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(table.location(bucket))
        .input_format(storage::INPUT_FORMAT)
        .output_format(storage::OUTPUT_FORMAT)
        .compressed(true)
        .serde_info(serde_info.build())
        .build();
    let mut input = TableInput::builder()
        .name(table.name)
        .description(format!(
            "lakewatch {}: gzip NDJSON in hourly partitions",
            table.name
        ))
        .table_type("EXTERNAL_TABLE")
        .parameters("EXTERNAL", "TRUE")
        .set_partition_keys(Some(
            table
                .partition_keys
                .iter()
                .map(|key| glue_column(key, "string", ""))
                .collect(),
        ))
        .storage_descriptor(storage_descriptor);
    for (key, value) in storage::TABLE_PARAMETERS {
        input = input.parameters(*key, *value);
    }
    input.build().expect("the name is set")
}

fn glue_column(name: &str, kind: &str, comment: &str) -> Column {
    let column = Column::builder().name(name).r#type(kind);
    let column = if comment.is_empty() {
        column
    } else {
        column.comment(comment)
    };
    column.build().expect("the name is set")
}

/// The partition input of `hour`: the table's storage descriptor (as the catalog holds it, so
/// SerDe, formats and columns always match the table) with the hour's location under the table's.
pub fn partition_input(table_descriptor: &StorageDescriptor, hour: Hour) -> PartitionInput {
    let mut descriptor = table_descriptor.clone();
    let table_location = descriptor.location.as_deref().unwrap_or_default();
    descriptor.location = Some(format!("{}/{hour}/", table_location.trim_end_matches('/')));
    PartitionInput::builder()
        .set_values(Some(hour.values().to_vec()))
        .storage_descriptor(descriptor)
        .build()
}

/// What the generator needs to know; in the Lambda, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorSettings {
    /// The lake bucket (`LAKEWATCH_LAKE_BUCKET`).
    pub bucket: String,
    /// The Glue database holding `events` and `alerts` (`LAKEWATCH_GLUE_DATABASE`).
    pub database: String,
    /// How many hours before the current one to look for data (`LAKEWATCH_LOOKBACK_HOURS`,
    /// default 48, at most 2160).
    pub lookback_hours: u32,
    /// Keys per S3 listing page (S3 returns at most 1000); small values exercise paging in tests.
    pub page_size: i32,
}

/// A setting missing or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set: set it to the {1} (the Terraform module sets it on the function)")]
    Missing(&'static str, &'static str),
    #[error(
        "LAKEWATCH_LOOKBACK_HOURS={0:?} is not a number of hours from 0 to {MAX_LOOKBACK_HOURS}"
    )]
    Lookback(String),
}

impl GeneratorSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name: &'static str, what: &'static str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .ok_or(SettingsError::Missing(name, what))
        };
        let lookback_hours = match lookup("LAKEWATCH_LOOKBACK_HOURS") {
            None => DEFAULT_LOOKBACK_HOURS,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|hours| *hours <= MAX_LOOKBACK_HOURS)
                .ok_or(SettingsError::Lookback(text))?,
        };
        Ok(GeneratorSettings {
            bucket: required("LAKEWATCH_LAKE_BUCKET", "lake bucket's name")?,
            database: required("LAKEWATCH_GLUE_DATABASE", "Glue database of the lake")?,
            lookback_hours,
            page_size: 1000,
        })
    }
}

/// What one run did, summed over the tables. `checked = added + already_there + failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Partitions the run made sure of: current and next hours, and hours found with data.
    pub checked: usize,
    pub added: usize,
    pub already_there: usize,
    /// Partitions Glue refused (each logged with its reason) or that could not be sent.
    pub failed: usize,
    /// Hours with data found in the look-back window.
    pub found: usize,
    /// Keys under the listed prefixes that name no partition (logged, never guessed at).
    pub malformed_keys: usize,
}

/// A problem that stopped a table's partitions from being checked, or failed some of them.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error(
        "Glue table {database}.{table} does not exist: create it with terraform (module \
         terraform/modules/lakewatch) or `lakewatch ddl --bucket <lake bucket> --database {database}` \
         in Athena"
    )]
    MissingTable { database: String, table: String },
    #[error(
        "Glue table {database}.{table} has no storage location: recreate it with terraform or \
         `lakewatch ddl`"
    )]
    NoLocation { database: String, table: String },
    #[error(
        "reading Glue table {database}.{table} failed: {message} (check the function's \
         glue:GetTable permission and the database name)"
    )]
    GetTable {
        database: String,
        table: String,
        message: String,
    },
    #[error(
        "listing s3://{bucket}/{prefix} failed: {message} (check the bucket name and the \
         function's s3:ListBucket permission on it)"
    )]
    List {
        bucket: String,
        prefix: String,
        message: String,
    },
    #[error(
        "{failed} partition(s) of {database}.{table} could not be added (see the log lines \
         above); the next run tries again"
    )]
    PartitionsFailed {
        database: String,
        table: String,
        failed: usize,
    },
}

/// The outcome of a run: counts over all tables, and the problems met on the way. A problem
/// with one table does not stop the others.
#[derive(Debug, Default)]
pub struct Report {
    pub counts: Counts,
    pub errors: Vec<GeneratorError>,
}

impl Report {
    /// Logs the run's one line of counts, then each problem as an error line.
    pub fn log(&self, settings: &GeneratorSettings, now: DateTime<Utc>) {
        let counts = self.counts;
        tracing::info!(
            database = %settings.database,
            now = %now.to_rfc3339(),
            lookback_hours = settings.lookback_hours,
            checked = counts.checked,
            added = counts.added,
            already_there = counts.already_there,
            failed = counts.failed,
            found = counts.found,
            malformed_keys = counts.malformed_keys,
            "partitions checked"
        );
        for error in &self.errors {
            tracing::error!("{error}");
        }
    }
}

/// Ensures the partitions of every lake table for a run at `now`.
pub async fn ensure_partitions(
    s3: &aws_sdk_s3::Client,
    glue: &aws_sdk_glue::Client,
    settings: &GeneratorSettings,
    now: DateTime<Utc>,
) -> Report {
    let window = Window::new(now, settings.lookback_hours);
    let mut report = Report::default();
    for table in schema::TABLES {
        if let Err(error) =
            ensure_table(s3, glue, settings, *table, window, &mut report.counts).await
        {
            report.errors.push(error);
        }
    }
    report
}

/// Plans and ensures one table's partitions, adding to `counts`.
async fn ensure_table(
    s3: &aws_sdk_s3::Client,
    glue: &aws_sdk_glue::Client,
    settings: &GeneratorSettings,
    table: Table,
    window: Window,
    counts: &mut Counts,
) -> Result<(), GeneratorError> {
    // The table first: without it there is nothing to add partitions to, and its descriptor is
    // what every partition copies.
    let descriptor = table_descriptor(glue, &settings.database, table.name).await?;

    let mut plan = TablePlan::new(table, window);
    for prefix in plan.day_prefixes() {
        for key in list_prefix(s3, &settings.bucket, &prefix, settings.page_size).await? {
            plan.add_listed(&key);
        }
    }
    for malformed in &plan.malformed {
        tracing::warn!(bucket = %settings.bucket, "skipped a key that names no partition: {malformed}");
    }
    counts.found += plan.found.len();
    counts.malformed_keys += plan.malformed.len();
    counts.checked += plan.ensure.len();

    let inputs: Vec<PartitionInput> = plan
        .ensure
        .iter()
        .map(|hour| partition_input(&descriptor, *hour))
        .collect();
    let mut failed = 0;
    for chunk in inputs.chunks(BATCH_LIMIT) {
        let outcome = create_batch(glue, &settings.database, table.name, chunk).await;
        counts.added += outcome.added;
        counts.already_there += outcome.already_there;
        failed += outcome.failed;
    }
    counts.failed += failed;
    if failed > 0 {
        return Err(GeneratorError::PartitionsFailed {
            database: settings.database.clone(),
            table: table.name.to_owned(),
            failed,
        });
    }
    Ok(())
}

/// The storage descriptor of `database.table`, with its location.
async fn table_descriptor(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
) -> Result<StorageDescriptor, GeneratorError> {
    let output = glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .map_err(|error| match error.as_service_error() {
            Some(GetTableError::EntityNotFoundException(_)) => GeneratorError::MissingTable {
                database: database.to_owned(),
                table: table.to_owned(),
            },
            _ => GeneratorError::GetTable {
                database: database.to_owned(),
                table: table.to_owned(),
                message: DisplayErrorContext(&error).to_string(),
            },
        })?;
    output
        .table()
        .and_then(|table| table.storage_descriptor())
        .filter(|descriptor| descriptor.location().is_some_and(|l| !l.is_empty()))
        .cloned()
        .ok_or_else(|| GeneratorError::NoLocation {
            database: database.to_owned(),
            table: table.to_owned(),
        })
}

/// Every common prefix and key directly under `prefix` (delimiter `/`), page by page.
async fn list_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    page_size: i32,
) -> Result<Vec<String>, GeneratorError> {
    let mut names = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .max_keys(page_size)
            .set_continuation_token(continuation.take())
            .send()
            .await
            .map_err(|error| GeneratorError::List {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                message: aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
            })?;
        names.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|common| common.prefix().map(str::to_owned)),
        );
        names.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(token) if page.is_truncated() == Some(true) => {
                continuation = Some(token.to_owned())
            }
            _ => return Ok(names),
        }
    }
}

/// How one `BatchCreatePartition` call went.
#[derive(Debug, Default, PartialEq, Eq)]
struct BatchOutcome {
    added: usize,
    already_there: usize,
    failed: usize,
}

/// Sends one batch (at most [`BATCH_LIMIT`]) and sorts its per-entry errors: an existing
/// partition is "already there", anything else failed and is logged with the partition.
async fn create_batch(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
    partitions: &[PartitionInput],
) -> BatchOutcome {
    let sent = glue
        .batch_create_partition()
        .database_name(database)
        .table_name(table)
        .set_partition_input_list(Some(partitions.to_vec()))
        .send()
        .await;
    let output = match sent {
        Ok(output) => output,
        Err(error) => {
            tracing::error!(
                database,
                table,
                partitions = partitions.len(),
                "BatchCreatePartition failed: {}",
                DisplayErrorContext(&error)
            );
            return BatchOutcome {
                failed: partitions.len(),
                ..BatchOutcome::default()
            };
        }
    };
    sort_entry_errors(database, table, partitions.len(), output.errors())
}

/// Sorts the per-entry errors of a batch of `sent` partitions: an existing partition is
/// "already there", anything else failed and is logged with the partition; the rest were added.
fn sort_entry_errors(
    database: &str,
    table: &str,
    sent: usize,
    errors: &[PartitionError],
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    for entry in errors {
        let detail = entry.error_detail();
        let code = detail.and_then(|d| d.error_code()).unwrap_or("unknown");
        if code == ALREADY_EXISTS {
            outcome.already_there += 1;
        } else {
            outcome.failed += 1;
            tracing::error!(
                database,
                table,
                partition = entry.partition_values().join("/"),
                code,
                "Glue refused the partition: {}",
                detail.and_then(|d| d.error_message()).unwrap_or("")
            );
        }
    }
    outcome.added = sent.saturating_sub(outcome.already_there + outcome.failed);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_lake::schema::{ALERTS, EVENTS};
    use std::collections::HashMap;

    #[test]
    fn table_input_columns_are_the_schema_columns() {
        for table in schema::TABLES {
            let input = table_input(table, "my-lake");
            let descriptor = input.storage_descriptor().unwrap();
            let columns: Vec<(&str, &str, Option<&str>)> = descriptor
                .columns()
                .iter()
                .map(|c| (c.name(), c.r#type().unwrap(), c.comment()))
                .collect();
            let expected: Vec<(&str, &str, Option<&str>)> = table
                .columns
                .iter()
                .map(|c| (c.name, c.kind.hive_name(), Some(c.comment)))
                .collect();
            assert_eq!(columns, expected, "{}", table.name);
        }
    }

    #[test]
    fn table_input_is_gzip_json_partitioned_by_hour_at_the_table_prefix() {
        let input = table_input(&EVENTS, "my-lake");
        assert_eq!(input.name(), "events");
        assert_eq!(input.table_type(), Some("EXTERNAL_TABLE"));
        let keys: Vec<(&str, Option<&str>)> = input
            .partition_keys()
            .iter()
            .map(|c| (c.name(), c.r#type()))
            .collect();
        assert_eq!(
            keys,
            [
                ("year", Some("string")),
                ("month", Some("string")),
                ("day", Some("string")),
                ("hour", Some("string"))
            ]
        );
        let parameters = input.parameters().unwrap();
        assert_eq!(parameters["compressionType"], "gzip");
        assert_eq!(parameters["classification"], "json");
        let descriptor = input.storage_descriptor().unwrap();
        assert_eq!(descriptor.location(), Some("s3://my-lake/events/"));
        assert!(descriptor.compressed());
        assert_eq!(
            descriptor.input_format(),
            Some("org.apache.hadoop.mapred.TextInputFormat")
        );
        let serde = descriptor.serde_info().unwrap();
        assert_eq!(
            serde.serialization_library(),
            Some("org.openx.data.jsonserde.JsonSerDe")
        );
        assert_eq!(serde.parameters().unwrap()["ignore.malformed.json"], "true");
    }

    #[test]
    fn partition_input_copies_the_table_descriptor_with_the_hour_location() {
        let table = table_input(&ALERTS, "my-lake");
        let descriptor = table.storage_descriptor().unwrap();
        let hour = Hour::containing("2026-12-31T23:59:00Z".parse().unwrap());
        let partition = partition_input(descriptor, hour);
        assert_eq!(partition.values(), ["2026", "12", "31", "23"]);
        let copied = partition.storage_descriptor().unwrap();
        assert_eq!(
            copied.location(),
            Some("s3://my-lake/alerts/year=2026/month=12/day=31/hour=23/")
        );
        assert_eq!(copied.serde_info(), descriptor.serde_info());
        assert_eq!(copied.columns(), descriptor.columns());
    }

    #[test]
    fn batch_entry_errors_split_into_already_there_and_failed() {
        let entry = |hour: &str, code: Option<&str>| {
            let mut detail = aws_sdk_glue::types::ErrorDetail::builder().error_message("why");
            if let Some(code) = code {
                detail = detail.error_code(code);
            }
            PartitionError::builder()
                .set_partition_values(Some(vec![
                    "2026".into(),
                    "11".into(),
                    "23".into(),
                    hour.into(),
                ]))
                .error_detail(detail.build())
                .build()
        };
        let errors = [
            entry("01", Some("AlreadyExistsException")),
            entry("02", Some("InvalidInputException")),
            entry("03", Some("AlreadyExistsException")),
            entry("04", None),
        ];
        assert_eq!(
            sort_entry_errors("lakewatch", "events", 10, &errors),
            BatchOutcome {
                added: 6,
                already_there: 2,
                failed: 2
            }
        );
        assert_eq!(
            sort_entry_errors("lakewatch", "events", 3, &[]),
            BatchOutcome {
                added: 3,
                ..BatchOutcome::default()
            }
        );
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<GeneratorSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GeneratorSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn settings_default_the_lookback_and_require_bucket_and_database() {
        let ok = settings(&[
            ("LAKEWATCH_LAKE_BUCKET", "lake"),
            ("LAKEWATCH_GLUE_DATABASE", "lakewatch"),
        ])
        .unwrap();
        assert_eq!(ok.lookback_hours, DEFAULT_LOOKBACK_HOURS);
        assert_eq!(
            settings(&[("LAKEWATCH_GLUE_DATABASE", "lakewatch")]),
            Err(SettingsError::Missing(
                "LAKEWATCH_LAKE_BUCKET",
                "lake bucket's name"
            ))
        );
        assert!(matches!(
            settings(&[
                ("LAKEWATCH_LAKE_BUCKET", "lake"),
                ("LAKEWATCH_GLUE_DATABASE", " ")
            ]),
            Err(SettingsError::Missing("LAKEWATCH_GLUE_DATABASE", _))
        ));
    }

    #[test]
    fn settings_reject_a_lookback_that_is_not_hours_in_range() {
        for bad in ["-1", "two", "2161", ""] {
            let error = settings(&[
                ("LAKEWATCH_LAKE_BUCKET", "lake"),
                ("LAKEWATCH_GLUE_DATABASE", "lakewatch"),
                ("LAKEWATCH_LOOKBACK_HOURS", bad),
            ])
            .unwrap_err();
            assert_eq!(error, SettingsError::Lookback(bad.to_owned()));
        }
    }
}
