//! The tables' columns, defined once. The Glue table input, the Athena DDL, the local SQL
//! engine's tables and the Terraform table definition all derive from (or are tested against)
//! these lists, so they cannot drift apart.

/// A column's type, in the few kinds the lake uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Athena `string`. `details` is one too: the JSON text of the nested object, as Athena's
    /// JSON SerDe returns an object for a string column.
    String,
    /// Athena `array<string>`.
    ArrayOfString,
}

impl ColumnType {
    /// The type as Glue and Athena DDL spell it.
    pub fn hive_name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::ArrayOfString => "array<string>",
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    pub comment: &'static str,
}

/// A table of the lake: its columns, and the Hive-style partitions under its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Table name in Glue and in the local engine.
    pub name: &'static str,
    /// Key prefix in the lake bucket (and directory in a local lake).
    pub prefix: &'static str,
    pub columns: &'static [Column],
    /// Partition columns, all strings, in path order: `year=YYYY/month=MM/day=DD/hour=HH`.
    pub partition_keys: &'static [&'static str],
}

const fn string(name: &'static str, comment: &'static str) -> Column {
    Column {
        name,
        kind: ColumnType::String,
        comment,
    }
}

const fn strings(name: &'static str, comment: &'static str) -> Column {
    Column {
        name,
        kind: ColumnType::ArrayOfString,
        comment,
    }
}

/// Hour partitions of both tables.
pub const PARTITION_KEYS: &[&str] = &["year", "month", "day", "hour"];

/// Events: one row per event shell.
pub const EVENTS: Table = Table {
    name: "events",
    prefix: "events",
    columns: &[
        string("utctimestamp", "event time, YYYY-MM-DDTHH:MM:SS.ffffffZ"),
        string("receivedtimestamp", "when the pipeline processed the event"),
        string("eventid", "unique, deterministic event id"),
        string("summary", "human-readable one-line summary"),
        string("category", "e.g. authentication, network, syslog"),
        string("source", "e.g. cloudtrail, gsuite, syslog, vpcflow"),
        string("hostname", "host the event is about, may be empty"),
        string("severity", "upper case, INFO by default"),
        strings("tags", "de-duplicated tags"),
        strings("plugins", "plugins that changed the event, in run order"),
        string("details", "the source's own fields as JSON text"),
    ],
    partition_keys: PARTITION_KEYS,
};

/// Alerts written by the detector: one row per alert.
pub const ALERTS: Table = Table {
    name: "alerts",
    prefix: "alerts",
    columns: &[
        string(
            "utctimestamp",
            "time of the alert, YYYY-MM-DDTHH:MM:SS.ffffffZ",
        ),
        string(
            "alertid",
            "deterministic from rule, de-duplication key and window",
        ),
        string("rule", "id of the rule that fired"),
        string("severity", "upper case"),
        string("summary", "human-readable one-line summary"),
        string("windowstart", "start of the evaluated window"),
        string("windowend", "end of the evaluated window"),
        strings("eventids", "ids of the events behind the alert"),
        string("details", "the rule's output row as JSON text"),
    ],
    partition_keys: PARTITION_KEYS,
};

/// Every table of the lake.
pub const TABLES: &[Table] = &[EVENTS, ALERTS];

/// Partitions of the detection extract: the hour's, then its quarter
/// ([`crate::partitions::Slice`]: `minute` is `00`, `15`, `30` or `45`).
pub const EXTRACT_PARTITION_KEYS: &[&str] = &["year", "month", "day", "hour", "minute"];

/// The detection extract: the lake's events again, each filed under the quarter hour of its own
/// `utctimestamp` wherever the lake stored it (`lakewatch_detect::extract`). Same columns as
/// [`EVENTS`], partitions one level finer ([`EXTRACT_PARTITION_KEYS`]); only the detector
/// writes it (on AWS the Glue table `events_extract`, locally `LAKE/extract/events/`), so it is
/// not one of [`TABLES`], which the ingest side and the partition generator keep.
pub const EXTRACT: Table = Table {
    name: "events_extract",
    prefix: "extract/events",
    columns: EVENTS.columns,
    partition_keys: EXTRACT_PARTITION_KEYS,
};

impl Table {
    /// The table's location in the lake bucket, as Glue and Athena want it (trailing slash):
    /// `s3://bucket/events/`.
    pub fn location(&self, bucket: &str) -> String {
        format!("s3://{bucket}/{}/", self.prefix)
    }
}

/// How both tables are stored: gzip NDJSON, one shell object per line, read by the OpenX JSON
/// SerDe (the one that hands a nested object to a `string` column as its JSON text). The Glue
/// table input and the Athena DDL both come from these, and match terraform/modules/lakewatch/glue.tf.
pub mod storage {
    /// The SerDe that reads one JSON object per line.
    pub const SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
    /// Lines of text; Hadoop decompresses `.gz` objects by their extension.
    pub const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.TextInputFormat";
    pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
    /// A malformed line becomes a row of NULLs instead of failing the whole query; keys are
    /// matched as written (the shell's are lower case).
    pub const SERDE_PARAMETERS: &[(&str, &str)] = &[
        ("ignore.malformed.json", "true"),
        ("case.insensitive", "false"),
    ];
    /// Table properties (Glue's `EXTERNAL` comes with the table type, not from here).
    pub const TABLE_PARAMETERS: &[(&str, &str)] =
        &[("classification", "json"), ("compressionType", "gzip")];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extract_is_the_events_table_below_the_extract_directory() {
        assert_eq!(EXTRACT.columns, EVENTS.columns);
        assert_eq!(
            EXTRACT.prefix,
            format!("{}/{}", crate::local::EXTRACT_DIR, EVENTS.prefix)
        );
    }

    #[test]
    fn events_columns_are_the_shell_fields_in_lake_order() {
        let names: Vec<_> = EVENTS.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, lakewatch_plugins::shell::SHELL_FIELDS);
    }
}
