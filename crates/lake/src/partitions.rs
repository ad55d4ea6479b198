//! Hour partitions, and the plan of which ones must exist in the catalog.
//!
//! Both tables keep their rows under `<prefix>/year=YYYY/month=MM/day=DD/hour=HH/` (UTC, event
//! time). Athena only reads a partition the Glue catalog knows, so the partition generator makes
//! sure that (1) the current and the next hour exist before data lands in them, and (2) every
//! hour that received data within a look-back window exists too: late and back-filled events
//! land in old hours, which no clock-driven rule could predict.
//!
//! Everything here is pure: the time is passed in, and listings are fed in as strings, so the
//! same planning runs over S3 listings (the Lambda) and over a local lake's directories (the CLI),
//! and the tests pin every boundary (hour, day, month, year) without a clock.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};

use crate::schema::Table;

/// Default look-back of a run, in hours (the Terraform module's `partition_lookback_hours`).
pub const DEFAULT_LOOKBACK_HOURS: u32 = 48;

/// Longest look-back accepted: 90 days, one listing per day and table.
pub const MAX_LOOKBACK_HOURS: u32 = 24 * 90;

/// One UTC hour: the unit of partitioning, and the one type for it in every crate (the
/// writers, the partition planner, the transform's Firehose partition keys, the detector).
///
/// It lives here, not beside the event shell in `lakewatch-plugins`, because partitioning is
/// the lake's layout: the plugins make events with times and know nothing of where they are
/// stored, and the lake already depends on the plugins for [`lakewatch_plugins::Event`], so
/// everything that needs an hour (the transform included) depends on the lake, never the
/// other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(DateTime<Utc>);

impl Hour {
    /// The hour `time` falls in.
    pub fn containing(time: DateTime<Utc>) -> Hour {
        let start = time.date_naive().and_hms_opt(time.hour(), 0, 0);
        Hour(Utc.from_utc_datetime(&start.expect("an hour of a valid time is valid")))
    }

    /// The hour that starts at `date` `hour`:00 UTC; `None` when `hour` is not 0-23.
    pub fn from_date_hour(date: NaiveDate, hour: u32) -> Option<Hour> {
        date.and_hms_opt(hour, 0, 0)
            .map(|start| Hour(Utc.from_utc_datetime(&start)))
    }

    /// When the hour starts.
    pub fn start(self) -> DateTime<Utc> {
        self.0
    }

    /// The hour `hours` later (earlier when negative).
    pub fn plus_hours(self, hours: i64) -> Hour {
        Hour(self.0 + TimeDelta::hours(hours))
    }

    /// The partition values in [`crate::schema::PARTITION_KEYS`] order: `["2026", "01", "31", "09"]`.
    pub fn values(self) -> [String; 4] {
        let t = self.0;
        [
            format!("{:04}", t.year()),
            format!("{:02}", t.month()),
            format!("{:02}", t.day()),
            format!("{:02}", t.hour()),
        ]
    }

    /// The partition's key prefix under `table`, with a trailing slash:
    /// `events/year=2026/month=01/day=31/hour=09/`.
    pub fn prefix(self, table: &Table) -> String {
        format!("{}/{self}/", table.prefix)
    }
}

/// `year=2026/month=01/day=31/hour=09`: the Hive-style path of the partition.
impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "year={:04}/month={:02}/day={:02}/hour={:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour()
        )
    }
}

/// One Hive-style partition of a table: its path below the table's directory
/// (`year=…/hour=09`), and its values in the table's partition key order. [`Hour`] for the
/// lake's tables, [`Slice`] for the detection extract.
pub trait Partition: fmt::Display {
    fn partition_values(&self) -> Vec<String>;
}

impl Partition for Hour {
    fn partition_values(&self) -> Vec<String> {
        self.values().to_vec()
    }
}

impl Partition for Slice {
    fn partition_values(&self) -> Vec<String> {
        self.values().to_vec()
    }
}

/// Minutes in one partition of the detection extract ([`crate::schema::EXTRACT`]).
pub const SLICE_MINUTES: u32 = 15;

/// A quarter of an hour (UTC): the partition of the detection extract, one level below its
/// hour (`…/hour=09/minute=15/`), so that a 15-minute window (a rule running every 5 minutes)
/// reads its quarters, not the whole hour, twelve times an hour. The lake itself keeps hours:
/// its writers file by arrival, the extract by each event's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice(DateTime<Utc>);

impl Slice {
    /// The slice `time` falls in.
    pub fn containing(time: DateTime<Utc>) -> Slice {
        let hour = Hour::containing(time).start();
        let minute = time.minute() / SLICE_MINUTES * SLICE_MINUTES;
        Slice(hour + TimeDelta::minutes(minute.into()))
    }

    /// Every slice that `[start, end)` touches, in order (none when `end <= start`).
    pub fn covering(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Slice> {
        let mut slices = Vec::new();
        if end <= start {
            return slices;
        }
        let mut slice = Slice::containing(start);
        while slice.start() < end {
            slices.push(slice);
            slice = slice.next();
        }
        slices
    }

    /// When the slice starts.
    pub fn start(self) -> DateTime<Utc> {
        self.0
    }

    /// The slice that follows.
    pub fn next(self) -> Slice {
        Slice(self.0 + TimeDelta::minutes(SLICE_MINUTES.into()))
    }

    /// The hour the slice is in.
    pub fn hour(self) -> Hour {
        Hour::containing(self.0)
    }

    /// The first slice of `hour` (`minute=00`).
    pub fn first_of(hour: Hour) -> Slice {
        Slice(hour.start())
    }

    /// The last slice of `hour` (`minute=45`).
    pub fn last_of(hour: Hour) -> Slice {
        Slice(hour.plus_hours(1).start() - TimeDelta::minutes(SLICE_MINUTES.into()))
    }

    /// Whether the slice starts its hour.
    pub fn starts_hour(self) -> bool {
        self == Slice::first_of(self.hour())
    }

    /// Whether the slice ends its hour.
    pub fn ends_hour(self) -> bool {
        self == Slice::last_of(self.hour())
    }

    /// The slice's first minute: `"00"`, `"15"`, `"30"` or `"45"`, its `minute` partition value.
    pub fn minute(self) -> String {
        format!("{:02}", self.0.minute())
    }

    /// The partition values in [`crate::schema::EXTRACT_PARTITION_KEYS`] order:
    /// `["2026", "01", "31", "09", "15"]`.
    pub fn values(self) -> [String; 5] {
        let [year, month, day, hour] = self.hour().values();
        [year, month, day, hour, self.minute()]
    }
}

/// `year=2026/month=01/day=31/hour=09/minute=15`: the Hive-style path of the slice.
impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/minute={}", self.hour(), self.minute())
    }
}

/// The key prefix listing one UTC day's hour partitions of `table`:
/// `events/year=2026/month=01/day=31/`.
pub fn day_prefix(table: &Table, day: NaiveDate) -> String {
    format!(
        "{}/year={:04}/month={:02}/day={:02}/",
        table.prefix,
        day.year(),
        day.month(),
        day.day()
    )
}

/// A key (or common prefix, or relative directory path) under a table's prefix that does not
/// name an hour partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedKey {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for MalformedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (expected <table>/year=YYYY/month=MM/day=DD/hour=HH/…)",
            self.key, self.reason
        )
    }
}

impl std::error::Error for MalformedKey {}

/// Parses the hour partition of `key`, which must start with `<table prefix>/` followed by the
/// four partition directories, each zero-padded to its width and naming a real date and an hour
/// 00-23. Whatever follows (an object name) is ignored; a trailing slash is required, so
/// `…/hour=09` alone (a file named like a directory) is rejected.
///
/// Strict on purpose: Athena would read `month=1` and `month=01` as different partitions, and a
/// catalog entry for a directory the writers never produce would only hide real data.
pub fn parse_key(table: &Table, key: &str) -> Result<Hour, MalformedKey> {
    let malformed = |reason: String| MalformedKey {
        key: key.to_owned(),
        reason,
    };
    let rest = key
        .strip_prefix(table.prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| malformed(format!("not under {}/", table.prefix)))?;
    let mut segments = rest.splitn(5, '/');
    let mut field = |name: &str, width: usize| -> Result<u32, MalformedKey> {
        let segment = segments
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(format!("missing {name}=")))?;
        let digits = segment
            .strip_prefix(name)
            .and_then(|s| s.strip_prefix('='))
            .ok_or_else(|| malformed(format!("{segment:?} is not {name}=…")))?;
        if digits.len() != width || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!("{name}={digits} is not {width} digits")));
        }
        Ok(digits.parse().expect("checked to be ASCII digits"))
    };
    let year = field("year", 4)?;
    let month = field("month", 2)?;
    let day = field("day", 2)?;
    let hour = field("hour", 2)?;
    if segments.next().is_none() {
        return Err(malformed("no '/' after hour=HH".to_owned()));
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| malformed(format!("{year:04}-{month:02}-{day:02} is not a date")))?;
    Hour::from_date_hour(date, hour)
        .ok_or_else(|| malformed(format!("hour={hour:02} is not 00-23")))
}

/// The hours one run looks at: `lookback_hours` before the current hour, through the next hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The hour `now` falls in.
    pub current: Hour,
    /// The oldest hour looked at.
    pub first: Hour,
}

impl Window {
    /// The window of a run at `now` that looks `lookback_hours` back (0: only the current and
    /// next hours).
    pub fn new(now: DateTime<Utc>, lookback_hours: u32) -> Window {
        let current = Hour::containing(now);
        Window {
            current,
            first: current.plus_hours(-i64::from(lookback_hours)),
        }
    }

    /// The hour after the current one: created ahead so the first rows of the hour are
    /// queryable the moment they land.
    pub fn next(&self) -> Hour {
        self.current.plus_hours(1)
    }

    pub fn contains(&self, hour: Hour) -> bool {
        self.first <= hour && hour <= self.next()
    }

    /// Every UTC day the window touches, oldest first: one listing each.
    pub fn days(&self) -> Vec<NaiveDate> {
        let last = self.next().start().date_naive();
        let mut day = self.first.start().date_naive();
        let mut days = Vec::new();
        while day <= last {
            days.push(day);
            day = day + Days::new(1);
        }
        days
    }
}

/// The plan for one table: which partitions to ensure, and what the listings held.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: Table,
    pub window: Window,
    /// The partitions that must exist: the current and next hour, and every hour in the window
    /// that holds data.
    pub ensure: BTreeSet<Hour>,
    /// Distinct hours with data found in the window.
    pub found: BTreeSet<Hour>,
    /// Well-formed partitions outside the window (listing a day reaches a little past it).
    pub outside_window: usize,
    /// Keys that name no partition: counted and reported, never guessed at.
    pub malformed: Vec<MalformedKey>,
}

impl TablePlan {
    /// A plan that ensures the current and the next hour of `window`.
    pub fn new(table: Table, window: Window) -> TablePlan {
        TablePlan {
            table,
            window,
            ensure: BTreeSet::from([window.current, window.next()]),
            found: BTreeSet::new(),
            outside_window: 0,
            malformed: Vec::new(),
        }
    }

    /// The key prefixes to list (with delimiter `/`) to find this table's partitions in the
    /// window: one per UTC day.
    pub fn day_prefixes(&self) -> Vec<String> {
        self.window
            .days()
            .into_iter()
            .map(|day| day_prefix(&self.table, day))
            .collect()
    }

    /// Takes one listed key, common prefix or relative directory path (`/`-separated) under
    /// the table's prefix.
    pub fn add_listed(&mut self, key: &str) {
        match parse_key(&self.table, key) {
            Ok(hour) if self.window.contains(hour) => {
                self.found.insert(hour);
                self.ensure.insert(hour);
            }
            Ok(_) => self.outside_window += 1,
            Err(malformed) => self.malformed.push(malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ALERTS, EVENTS};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hour(text: &str) -> Hour {
        Hour::containing(at(text))
    }

    #[test]
    fn slices_are_quarter_hours_below_the_hour() {
        let slice = Slice::containing(at("2026-12-31T23:59:59.999Z"));
        assert_eq!(slice.start(), at("2026-12-31T23:45:00Z"));
        assert_eq!(
            slice.to_string(),
            "year=2026/month=12/day=31/hour=23/minute=45"
        );
        assert_eq!(slice.values(), ["2026", "12", "31", "23", "45"]);
        assert_eq!(slice.next().start(), at("2027-01-01T00:00:00Z"));
        assert_eq!(slice.next().minute(), "00");
        assert!(slice.ends_hour() && slice.next().starts_hour());
        assert_eq!(Slice::last_of(slice.hour()), slice);
        assert_eq!(Slice::first_of(slice.next().hour()), slice.next());
        assert_eq!(Slice::containing(at("2026-12-31T23:15:00Z")).minute(), "15");
        let covering = Slice::covering(at("2026-12-31T23:50:00Z"), at("2027-01-01T00:15:00Z"));
        assert_eq!(
            covering.iter().map(|s| s.start()).collect::<Vec<_>>(),
            [at("2026-12-31T23:45:00Z"), at("2027-01-01T00:00:00Z")]
        );
        assert!(Slice::covering(at("2026-12-31T23:50:00Z"), at("2026-12-31T23:50:00Z")).is_empty());
    }

    #[test]
    fn hour_truncates_and_formats_zero_padded() {
        let h = hour("2026-01-05T07:59:59.999Z");
        assert_eq!(h.start(), at("2026-01-05T07:00:00Z"));
        assert_eq!(h.to_string(), "year=2026/month=01/day=05/hour=07");
        assert_eq!(h.values(), ["2026", "01", "05", "07"]);
        assert_eq!(
            h.prefix(&EVENTS),
            "events/year=2026/month=01/day=05/hour=07/"
        );
    }

    #[test]
    fn next_hour_crosses_day_month_and_year_boundaries() {
        let cases = [
            ("2026-03-04T23:10:00Z", "year=2026/month=03/day=05/hour=00"),
            ("2026-04-30T23:00:00Z", "year=2026/month=05/day=01/hour=00"),
            ("2024-02-28T23:59:00Z", "year=2024/month=02/day=29/hour=00"),
            ("2026-12-31T23:30:00Z", "year=2027/month=01/day=01/hour=00"),
        ];
        for (now, next) in cases {
            assert_eq!(Window::new(at(now), 0).next().to_string(), next, "{now}");
        }
    }

    #[test]
    fn parses_object_keys_and_common_prefixes() {
        let expected = hour("2026-11-23T09:00:00Z");
        for key in [
            "events/year=2026/month=11/day=23/hour=09/",
            "events/year=2026/month=11/day=23/hour=09/part-0001.json.gz",
            "events/year=2026/month=11/day=23/hour=09/nested/object.gz",
        ] {
            assert_eq!(parse_key(&EVENTS, key), Ok(expected), "{key}");
        }
    }

    #[test]
    fn rejects_malformed_keys_with_a_reason_and_never_panics() {
        let cases = [
            (
                "alerts/year=2026/month=11/day=23/hour=09/",
                "not under events/",
            ),
            (
                "eventsx/year=2026/month=11/day=23/hour=09/",
                "not under events/",
            ),
            ("events/", "missing year="),
            ("events/year=2026/", "missing month="),
            ("events/year=2026/month=11/day=23/", "missing hour="),
            (
                "events/year=2026/month=11/day=23/hour=09",
                "no '/' after hour=HH",
            ),
            (
                "events/year=2026/month=1/day=23/hour=09/",
                "month=1 is not 2 digits",
            ),
            (
                "events/year=2026/month=11/day=23/hour=9/",
                "hour=9 is not 2 digits",
            ),
            (
                "events/year=26/month=11/day=23/hour=09/",
                "year=26 is not 4 digits",
            ),
            (
                "events/year=2026/month=+1/day=23/hour=09/",
                "month=+1 is not 2 digits",
            ),
            (
                "events/year=2026/month=１１/day=23/hour=09/",
                "is not 2 digits",
            ),
            (
                "events/year=2026/month=13/day=23/hour=09/",
                "2026-13-23 is not a date",
            ),
            (
                "events/year=2026/month=02/day=29/hour=09/",
                "2026-02-29 is not a date",
            ),
            (
                "events/year=2026/month=11/day=23/hour=24/",
                "hour=24 is not 00-23",
            ),
            (
                "events/month=11/year=2026/day=23/hour=09/",
                "\"month=11\" is not year=…",
            ),
            ("events/dt=2026-11-23/", "\"dt=2026-11-23\" is not year=…"),
            (
                "events//year=2026/month=11/day=23/hour=09/",
                "missing year=",
            ),
        ];
        for (key, reason) in cases {
            let error = parse_key(&EVENTS, key).expect_err(key);
            assert!(error.reason.contains(reason), "{key}: {}", error.reason);
            assert_eq!(error.key, key);
        }
        assert!(parse_key(&EVENTS, "events/year=2024/month=02/day=29/hour=23/").is_ok());
    }

    #[test]
    fn window_lists_every_day_it_touches_across_a_year_boundary() {
        let window = Window::new(at("2027-01-01T00:30:00Z"), 25);
        let plan = TablePlan::new(ALERTS, window);
        assert_eq!(
            plan.day_prefixes(),
            [
                "alerts/year=2026/month=12/day=30/",
                "alerts/year=2026/month=12/day=31/",
                "alerts/year=2027/month=01/day=01/",
            ]
        );
    }

    #[test]
    fn window_reaching_into_the_next_day_lists_it_too() {
        let window = Window::new(at("2026-11-23T23:05:00Z"), 0);
        assert_eq!(
            window.days(),
            [
                NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
            ]
        );
    }

    #[test]
    fn plan_ensures_current_next_and_found_hours_in_the_window_only() {
        let window = Window::new(at("2026-11-23T10:20:00Z"), 3);
        let mut plan = TablePlan::new(EVENTS, window);
        for key in [
            "events/year=2026/month=11/day=23/hour=07/", // first hour of the window
            "events/year=2026/month=11/day=23/hour=07/a.gz", // same hour again
            "events/year=2026/month=11/day=23/hour=06/", // one hour too old
            "events/year=2026/month=11/day=23/hour=10/", // current: already ensured
            "events/year=2026/month=11/day=23/hour=12/", // after the next hour
            "events/year=2026/month=11/day=23/hour=x/",
            "events/year=2026/month=11/day=23/_tmp/",
        ] {
            plan.add_listed(key);
        }
        let ensured: Vec<String> = plan.ensure.iter().map(Hour::to_string).collect();
        assert_eq!(
            ensured,
            [
                "year=2026/month=11/day=23/hour=07",
                "year=2026/month=11/day=23/hour=10",
                "year=2026/month=11/day=23/hour=11",
            ]
        );
        assert_eq!(plan.found.len(), 2);
        assert_eq!(plan.outside_window, 2);
        assert_eq!(plan.malformed.len(), 2);
    }
}
