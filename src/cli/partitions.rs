//! `lakewatch partitions`: the partitions Lambda's plan, run over a local lake's directories.
//!
//! Locally there is no catalog: the query engine finds partition directories by itself. This
//! reports what the same planning code ([`lakewatch_lake::partitions`]) finds in the lake and
//! which partitions the Lambda would make sure of in Glue, with the same counts, so a look-back
//! setting or a stray directory can be checked before deploying.

use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use lakewatch_lake::partitions::{DEFAULT_LOOKBACK_HOURS, MAX_LOOKBACK_HOURS, TablePlan, Window};
use lakewatch_lake::schema::TABLES;

/// Show which hour partitions the partitions Lambda would ensure for a local lake.
///
/// Looks at DIR/events/ and DIR/alerts/ for hour directories
/// (year=YYYY/month=MM/day=DD/hour=HH/) from --lookback-hours before the current hour through
/// the next hour, and prints the counts the Lambda logs: partitions checked (the current and
/// next hour of each table, plus every hour that has data), hours with data, and malformed
/// directory names (each also printed as a warning). Nothing is changed: the local query engine
/// reads partition directories directly, so no catalog needs them.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  lakewatch partitions --lake ./lake
  lakewatch partitions --lake ./lake --lookback-hours 168 --list")]
pub struct PartitionsArgs {
    /// The lake directory (as written by `lakewatch ingest`).
    #[arg(long, value_name = "DIR", env = "LAKEWATCH_LAKE")]
    pub lake: PathBuf,

    /// How many hours before the current one to look for data (late and back-filled events
    /// land in old hours). The Lambda's LAKEWATCH_LOOKBACK_HOURS.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_LOOKBACK_HOURS,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_LOOKBACK_HOURS))
    )]
    pub lookback_hours: u32,

    /// Plan as if it were this time (RFC 3339, e.g. 2026-11-23T10:20:00Z; default: now).
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,

    /// Also print every partition, with whether it has data.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: PartitionsArgs) -> anyhow::Result<ExitCode> {
    if !args.lake.is_dir() {
        bail!(
            "{}: no such lake directory (create one with `lakewatch ingest FILE --lake {0}`)",
            args.lake.display()
        );
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let plans = plan_local(&args.lake, now, args.lookback_hours)?;
    for plan in &plans {
        for malformed in &plan.malformed {
            eprintln!("warning: skipped {malformed}");
        }
    }
    print!("{}", render(&plans, args.lookback_hours, args.list));
    Ok(ExitCode::SUCCESS)
}

/// Plans every table of the lake in `root` for a run at `now`, listing one directory per day
/// of the window as the Lambda lists one S3 prefix per day.
pub fn plan_local(
    root: &Path,
    now: DateTime<Utc>,
    lookback_hours: u32,
) -> anyhow::Result<Vec<TablePlan>> {
    let window = Window::new(now, lookback_hours);
    TABLES
        .iter()
        .map(|table| {
            let mut plan = TablePlan::new(*table, window);
            for prefix in plan.day_prefixes() {
                for key in list_dir(root, &prefix)? {
                    plan.add_listed(&key);
                }
            }
            Ok(plan)
        })
        .collect()
}

/// The entries of `root/prefix` spelled as S3 would list them under delimiter `/`: a directory
/// as a common prefix (`prefix` + name + `/`), a file as a key. Missing directory: no entries.
/// Hidden entries (`.name`, left by editors and tools) are skipped, as the lake's readers do.
fn list_dir(root: &Path, prefix: &str) -> anyhow::Result<Vec<String>> {
    let dir = root.join(prefix);
    let entries = match fs::read_dir(&dir) {
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        read => read.with_context(|| format!("reading {}", dir.display()))?,
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Follows symbolic links, as a reader of the lake would.
        let is_dir = entry.path().is_dir();
        keys.push(format!("{prefix}{name}{}", if is_dir { "/" } else { "" }));
    }
    Ok(keys)
}

/// The report: the window, one line per table, the totals and, with `list`, every partition.
pub fn render(plans: &[TablePlan], lookback_hours: u32, list: bool) -> String {
    let mut out = String::new();
    let Some(window) = plans.first().map(|plan| plan.window) else {
        return out;
    };
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "window: {} to {} ({lookback_hours} hours back, through the next hour)",
        time(window.first.start()),
        time(window.next().start()),
    );
    for plan in plans {
        let _ = writeln!(
            out,
            "{}: {} partitions (current and next hour, {} with data), {} malformed",
            plan.table.name,
            plan.ensure.len(),
            plan.found.len(),
            plan.malformed.len()
        );
        if list {
            for hour in &plan.ensure {
                let data = if plan.found.contains(hour) {
                    "data"
                } else {
                    "no data yet"
                };
                let _ = writeln!(out, "  {}/{hour}  {data}", plan.table.prefix);
            }
        }
    }
    let sum = |count: fn(&TablePlan) -> usize| plans.iter().map(count).sum::<usize>();
    let checked = sum(|plan| plan.ensure.len());
    let _ = writeln!(
        out,
        "checked {checked}, with data {}, malformed keys {}",
        sum(|plan| plan.found.len()),
        sum(|plan| plan.malformed.len())
    );
    let _ = writeln!(
        out,
        "On AWS the partitions Lambda makes sure these {checked} exist in Glue. Locally nothing \
         needs adding: the query engine reads the partition directories directly."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:20:00Z".parse().unwrap()
    }

    fn touch(root: &Path, path: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    #[test]
    fn finds_hour_directories_in_the_window_and_counts_malformed_names() {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        touch(root, "events/year=2026/month=11/day=22/hour=03/a.json.gz");
        touch(root, "events/year=2026/month=11/day=23/hour=09/a.json.gz");
        touch(root, "events/year=2026/month=11/day=23/hour=9/a.json.gz");
        touch(root, "events/year=2026/month=11/day=23/notes.txt");
        touch(root, "events/year=2026/month=11/day=23/.hidden/a.json.gz");
        touch(root, "events/year=2026/month=11/day=20/hour=09/a.json.gz"); // too old
        touch(root, "alerts/year=2026/month=11/day=23/hour=11/a.json.gz"); // the next hour

        let plans = plan_local(root, now(), 48).unwrap();

        let [events, alerts] = &plans[..] else {
            panic!("one plan per table")
        };
        let hours = |plan: &TablePlan| -> Vec<String> {
            plan.ensure.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            hours(events),
            [
                "year=2026/month=11/day=22/hour=03",
                "year=2026/month=11/day=23/hour=09",
                "year=2026/month=11/day=23/hour=10",
                "year=2026/month=11/day=23/hour=11",
            ]
        );
        assert_eq!(events.found.len(), 2);
        let mut malformed: Vec<&str> = events.malformed.iter().map(|m| m.key.as_str()).collect();
        malformed.sort();
        assert_eq!(
            malformed,
            [
                "events/year=2026/month=11/day=23/hour=9/",
                "events/year=2026/month=11/day=23/notes.txt",
            ]
        );
        assert_eq!((alerts.ensure.len(), alerts.found.len()), (2, 1));
    }

    #[test]
    fn report_prints_the_lambdas_counts_and_lists_partitions_on_request() {
        let lake = tempfile::tempdir().unwrap();
        touch(
            lake.path(),
            "events/year=2026/month=11/day=23/hour=08/a.json.gz",
        );
        let plans = plan_local(lake.path(), now(), 5).unwrap();

        let short = render(&plans, 5, false);
        assert_eq!(
            short.lines().take(4).collect::<Vec<_>>(),
            [
                "window: 2026-11-23T05:00:00Z to 2026-11-23T11:00:00Z (5 hours back, through the next hour)",
                "events: 3 partitions (current and next hour, 1 with data), 0 malformed",
                "alerts: 2 partitions (current and next hour, 0 with data), 0 malformed",
                "checked 5, with data 1, malformed keys 0",
            ]
        );
        let long = render(&plans, 5, true);
        assert!(long.contains("  events/year=2026/month=11/day=23/hour=08  data\n"));
        assert!(long.contains("  alerts/year=2026/month=11/day=23/hour=11  no data yet\n"));
    }

    #[test]
    fn a_missing_lake_directory_says_how_to_create_one() {
        let error = run(PartitionsArgs {
            lake: PathBuf::from("/nonexistent/lake"),
            lookback_hours: 48,
            now: None,
            list: false,
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("lakewatch ingest FILE --lake /nonexistent/lake"),
            "{error}"
        );
    }
}
