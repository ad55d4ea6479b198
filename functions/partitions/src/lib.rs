//! The partition generator Lambda: on a schedule, makes sure the Glue catalog lists every hour
//! partition of `events` and `alerts` that Athena needs. Athena only reads partitions the
//! catalog lists. The generator ensures, for each table:
//! - the current and the next hour, so rows are queryable the moment they land;
//! - every hour that holds objects within a look-back window, because late and back-filled
//!   data lands in old hours by event time.
//!
//! It lists one S3 prefix per UTC day of the window with delimiter `/` (the hour directories come
//! back as common prefixes: no object is listed one by one), and adds what is missing with
//! `BatchCreatePartition`, 100 at a time. A partition that exists already is reported as such, not
//! as an error, so a repeated run changes nothing. The plan itself is pure code in
//! [`lakewatch_lake::partitions`]; the S3 and Glue calls are in [`lakewatch_aws`].
//!
//! Settings come from the environment (`LAKEWATCH_LAKE_BUCKET`, `LAKEWATCH_GLUE_DATABASE`,
//! `LAKEWATCH_LOOKBACK_HOURS`), clients are built once at init ([`Function`]). The run's time
//! is the scheduled event's `time` (so a retried or delayed invocation plans the hour it was
//! meant for), or the clock when the event has none (e.g. a manual `{}` invocation).

use aws_sdk_glue::types::{PartitionInput, StorageDescriptor};
use chrono::{DateTime, Utc};
use lakewatch_aws::glue::{BATCH_LIMIT, create_batch, get_table, partition_input};
use lakewatch_lake::partitions::{DEFAULT_LOOKBACK_HOURS, MAX_LOOKBACK_HOURS, TablePlan, Window};
use lakewatch_lake::schema::{self, Table};
use lakewatch_lambda::settings::{Env, FromEnv, SettingsError};
use lakewatch_metrics::{Figures, PARTITION_ERRORS, PARTITIONS_CREATED};
use serde::Deserialize;
use serde_json::{Value, json};

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

impl FromEnv for GeneratorSettings {
    fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, SettingsError> {
        Ok(GeneratorSettings {
            bucket: env.required("LAKEWATCH_LAKE_BUCKET", "lake bucket's name")?,
            database: env.required("LAKEWATCH_GLUE_DATABASE", "Glue database of the lake")?,
            lookback_hours: env.parse(
                "LAKEWATCH_LOOKBACK_HOURS",
                DEFAULT_LOOKBACK_HOURS,
                LOOKBACK_EXPECTED,
                |hours| *hours <= MAX_LOOKBACK_HOURS,
            )?,
            page_size: 1000,
        })
    }
}

/// What `LAKEWATCH_LOOKBACK_HOURS` may be.
const LOOKBACK_EXPECTED: &str = "a number of hours from 0 to 2160";
const _: () = assert!(
    MAX_LOOKBACK_HOURS == 2160,
    "LOOKBACK_EXPECTED names the maximum"
);

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

    /// The run's figures: partitions added, and errors (partitions Glue refused plus tables
    /// that could not be checked at all).
    pub fn figures(&self) -> Figures {
        let unchecked_tables = self
            .errors
            .iter()
            .filter(|e| !matches!(e, GeneratorError::PartitionsFailed { .. }))
            .count();
        let mut figures = Figures::default();
        figures.add(&PARTITIONS_CREATED, &[], self.counts.added as u64);
        figures.add(
            &PARTITION_ERRORS,
            &[],
            (self.counts.failed + unchecked_tables) as u64,
        );
        figures
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
        let names =
            lakewatch_aws::s3::list_names(s3, &settings.bucket, &prefix, settings.page_size)
                .await
                .map_err(|message| GeneratorError::List {
                    bucket: settings.bucket.clone(),
                    prefix: prefix.clone(),
                    message,
                })?;
        for key in names {
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
    let found = get_table(glue, database, table)
        .await
        .map_err(|message| GeneratorError::GetTable {
            database: database.to_owned(),
            table: table.to_owned(),
            message,
        })?
        .ok_or_else(|| GeneratorError::MissingTable {
            database: database.to_owned(),
            table: table.to_owned(),
        })?;
    found
        .storage_descriptor()
        .filter(|descriptor| descriptor.location().is_some_and(|l| !l.is_empty()))
        .cloned()
        .ok_or_else(|| GeneratorError::NoLocation {
            database: database.to_owned(),
            table: table.to_owned(),
        })
}

/// The part of an EventBridge scheduled event the generator reads; anything else is ignored.
#[derive(Debug, Deserialize)]
pub struct Trigger {
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
}

/// Settings and clients, built once per cold start.
pub struct Function {
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub settings: GeneratorSettings,
}

impl Function {
    /// Reads the settings from the environment and builds the clients.
    pub async fn from_env() -> Result<Self, SettingsError> {
        let settings = GeneratorSettings::from_env()?;
        let config = lakewatch_aws::config::load(None).await;
        Ok(Function {
            s3: lakewatch_aws::config::s3_client(&config),
            glue: aws_sdk_glue::Client::new(&config),
            settings,
        })
    }

    /// One run: ensures the partitions, logs one line of counts, and fails the invocation when
    /// a table could not be checked or a partition could not be added (so the error alarm
    /// fires; the next scheduled run tries again).
    pub async fn handle(&self, trigger: Trigger) -> Result<Value, String> {
        let now = trigger.time.unwrap_or_else(Utc::now);
        let report = ensure_partitions(&self.s3, &self.glue, &self.settings, now).await;
        report.log(&self.settings, now);
        if let Err(error) = report.figures().print_emf(Utc::now().timestamp_millis()) {
            tracing::warn!(%error, "metrics not written");
        }
        if let Some(first) = report.errors.first() {
            return Err(format!(
                "{} problem(s), the first: {first}",
                report.errors.len()
            ));
        }
        let counts = report.counts;
        Ok(json!({
            "checked": counts.checked,
            "added": counts.added,
            "already_there": counts.already_there,
            "failed": counts.failed,
            "found": counts.found,
            "malformed_keys": counts.malformed_keys,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<GeneratorSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GeneratorSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn figures_count_added_partitions_and_every_error() {
        let report = Report {
            counts: Counts {
                checked: 5,
                added: 3,
                failed: 1,
                already_there: 1,
                ..Counts::default()
            },
            errors: vec![
                GeneratorError::PartitionsFailed {
                    database: "d".into(),
                    table: "events".into(),
                    failed: 1,
                },
                GeneratorError::MissingTable {
                    database: "d".into(),
                    table: "alerts".into(),
                },
            ],
        };
        let figures = report.figures();
        assert_eq!(figures.get(&PARTITIONS_CREATED, &[]), Some(3));
        assert_eq!(figures.get(&PARTITION_ERRORS, &[]), Some(2));
        for line in figures.emf_lines(0) {
            lakewatch_metrics::parse_emf_line(&line).unwrap();
        }
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
            assert_eq!(
                error,
                SettingsError::Invalid {
                    name: "LAKEWATCH_LOOKBACK_HOURS",
                    value: bad.to_owned(),
                    expected: LOOKBACK_EXPECTED
                }
            );
            assert_eq!(
                error.to_string(),
                format!("LAKEWATCH_LOOKBACK_HOURS={bad:?} is not a number of hours from 0 to 2160")
            );
        }
    }
}
