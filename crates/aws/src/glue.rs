//! The Glue catalog of the lake: table inputs generated from [`lakewatch_lake::schema`],
//! partition inputs, and the calls the partition generator (`functions/partitions`) makes:
//! reading a table, adding partitions in batches.

use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::operation::get_table::GetTableError;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionError, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use lakewatch_lake::partitions::Hour;
use lakewatch_lake::schema::{Table, storage};

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

/// The table `database.table` as the catalog holds it; `None` when there is no such table.
pub async fn get_table(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
) -> Result<Option<aws_sdk_glue::types::Table>, String> {
    match glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
    {
        Ok(output) => Ok(output.table),
        Err(error) => match error.as_service_error() {
            Some(GetTableError::EntityNotFoundException(_)) => Ok(None),
            _ => Err(DisplayErrorContext(&error).to_string()),
        },
    }
}

/// How one `BatchCreatePartition` call went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub added: usize,
    pub already_there: usize,
    pub failed: usize,
}

/// Sends one batch (at most [`BATCH_LIMIT`]) and sorts its per-entry errors: an existing
/// partition is "already there", anything else failed and is logged with the partition.
pub async fn create_batch(
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
    use lakewatch_lake::schema::{self, ALERTS, EVENTS};

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
}
