//! Time windows: which windows are due, and the SQL predicate that limits a query to a time
//! range so that it reads only the partitions of that range.

use chrono::{DateTime, TimeDelta, Timelike, Utc};

use lakewatch_lake::partitions::{Hour, Slice};

use lakewatch_plugins::shell::format_timestamp;

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}, {})",
            format_timestamp(self.start),
            format_timestamp(self.end)
        )
    }
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Window { start, end }
    }

    /// The SQL predicate selecting events in this range: hour partitions (so engines prune
    /// directories) and the exact `utctimestamp` range. `alias` qualifies the columns.
    pub fn predicate(&self, alias: Option<&str>) -> String {
        let column = |name: &str| match alias {
            Some(alias) => format!("{alias}.{name}"),
            None => name.to_string(),
        };
        if self.end <= self.start {
            return "1 = 0".to_string();
        }
        format!(
            "({}) AND {} >= '{}' AND {} < '{}'",
            partition_predicate(self.start, self.end, &column),
            column("utctimestamp"),
            format_timestamp(self.start),
            column("utctimestamp"),
            format_timestamp(self.end),
        )
    }
}

/// Ends of the windows due for a rule: aligned to multiples of `interval` since the epoch,
/// after `watermark` (exclusive), and no later than `now - lateness`. Without a watermark only
/// the latest due window is returned: a new rule starts now rather than replaying history
/// (use a replay for that). At most `max_windows`, earliest first, so a detector that was down
/// catches up over the following runs without a gap.
pub fn due_window_ends(
    watermark: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: TimeDelta,
    lateness: TimeDelta,
    max_windows: usize,
) -> Vec<DateTime<Utc>> {
    let latest = align_down(now - lateness, interval);
    let Some(watermark) = watermark else {
        return vec![latest];
    };
    let mut ends = Vec::new();
    let mut end = align_down(watermark, interval) + interval;
    while end <= latest && ends.len() < max_windows {
        ends.push(end);
        end += interval;
    }
    ends
}

/// Window ends in a replay range: every aligned end in `(from, to]`.
pub fn replay_window_ends(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let mut ends = Vec::new();
    let mut end = align_down(from, interval) + interval;
    while end <= to {
        ends.push(end);
        end += interval;
    }
    ends
}

/// The latest multiple of `interval` since the epoch that is not after `time`.
pub fn align_down(time: DateTime<Utc>, interval: TimeDelta) -> DateTime<Utc> {
    let step = interval.num_milliseconds().max(1);
    let millis = time.timestamp_millis();
    let aligned = millis - millis.rem_euclid(step);
    DateTime::from_timestamp_millis(aligned).expect("an aligned time is in range")
}

/// Partitions of the detection extract covering `[start, end)` (hours, and the quarter-hour
/// `minute` partitions of a partial first or last hour), grouped by day: a whole day is one
/// clause, a partial day one clause with an hour range, a partial hour one clause with its
/// quarters, so a 90-day history is about 90 clauses and a 15-minute window reads one or two
/// quarters.
fn partition_predicate(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    column: &dyn Fn(&str) -> String,
) -> String {
    let first = Slice::containing(start);
    let last = Slice::containing(end - TimeDelta::nanoseconds(1));
    let day_clause = |hour: Hour| {
        let [year, month, day, _] = hour.values();
        format!(
            "{} = '{year}' AND {} = '{month}' AND {} = '{day}'",
            column("year"),
            column("month"),
            column("day")
        )
    };
    let quarters = |from: Slice, to: Slice| {
        let [.., hour] = from.hour().values();
        let mut clause = format!(
            "{} AND {} = '{hour}'",
            day_clause(from.hour()),
            column("hour")
        );
        if from == to {
            clause.push_str(&format!(" AND {} = '{}'", column("minute"), from.minute()));
        } else {
            if !from.starts_hour() {
                clause.push_str(&format!(" AND {} >= '{}'", column("minute"), from.minute()));
            }
            if !to.ends_hour() {
                clause.push_str(&format!(" AND {} <= '{}'", column("minute"), to.minute()));
            }
        }
        format!("({clause})")
    };
    if first.hour() == last.hour() && !(first.starts_hour() && last.ends_hour()) {
        return quarters(first, last);
    }
    let mut clauses = Vec::new();
    // Whole hours from `hours_start` to `hours_end` (exclusive), partial ones on either side.
    let mut hours_start = first.hour();
    if !first.starts_hour() {
        clauses.push(quarters(first, Slice::last_of(first.hour())));
        hours_start = first.hour().plus_hours(1);
    }
    let mut hours_end = last.hour().plus_hours(1);
    let tail = if last.ends_hour() {
        None
    } else {
        hours_end = last.hour();
        Some(quarters(Slice::first_of(last.hour()), last))
    };
    if hours_start < hours_end {
        let last_hour = hours_end.plus_hours(-1).start();
        let mut day = hours_start.start().date_naive();
        while day <= last_hour.date_naive() {
            let first_hour = if day == hours_start.start().date_naive() {
                hours_start.start().hour()
            } else {
                0
            };
            let last_hour_of_day = if day == last_hour.date_naive() {
                last_hour.hour()
            } else {
                23
            };
            let hour = Hour::from_date_hour(day, first_hour).expect("an hour 0-23");
            let mut clause = day_clause(hour);
            if (first_hour, last_hour_of_day) != (0, 23) {
                clause.push_str(&format!(
                    " AND {} >= '{first_hour:02}' AND {} <= '{last_hour_of_day:02}'",
                    column("hour"),
                    column("hour")
                ));
            }
            clauses.push(format!("({clause})"));
            day = day.succ_opt().expect("dates stay in range");
        }
    }
    clauses.extend(tail);
    clauses.join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_new_rule_evaluates_only_the_latest_due_window() {
        let ends = due_window_ends(
            None,
            t("2026-11-23T10:07:00Z"),
            TimeDelta::minutes(5),
            TimeDelta::zero(),
            10,
        );
        assert_eq!(ends, [t("2026-11-23T10:05:00Z")]);
    }

    #[test]
    fn catches_up_every_window_after_the_watermark_up_to_the_limit() {
        let watermark = Some(t("2026-11-23T04:00:00Z"));
        let now = t("2026-11-23T10:02:00Z");
        let all = due_window_ends(watermark, now, TimeDelta::hours(1), TimeDelta::zero(), 100);
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], t("2026-11-23T05:00:00Z"));
        assert_eq!(all[5], t("2026-11-23T10:00:00Z"));
        let limited = due_window_ends(watermark, now, TimeDelta::hours(1), TimeDelta::zero(), 4);
        assert_eq!(limited, all[..4]);
    }

    #[test]
    fn lateness_holds_windows_back() {
        let ends = due_window_ends(
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T10:30:00Z"),
            TimeDelta::hours(1),
            TimeDelta::hours(1),
            10,
        );
        assert_eq!(ends, [t("2026-11-23T09:00:00Z")]);
    }

    #[test]
    fn nothing_is_due_twice() {
        let ends = due_window_ends(
            Some(t("2026-11-23T10:05:00Z")),
            t("2026-11-23T10:09:59Z"),
            TimeDelta::minutes(5),
            TimeDelta::zero(),
            10,
        );
        assert!(ends.is_empty());
    }

    #[test]
    fn replay_covers_the_range() {
        let ends = replay_window_ends(
            t("2026-11-01T00:00:00Z"),
            t("2026-11-01T01:00:00Z"),
            TimeDelta::minutes(15),
        );
        assert_eq!(ends.len(), 4);
        assert_eq!(ends[3], t("2026-11-01T01:00:00Z"));
    }

    #[test]
    fn predicate_of_a_window_inside_one_quarter_hour() {
        let window = Window::new(t("2026-11-23T10:00:00Z"), t("2026-11-23T10:15:00Z"));
        assert_eq!(
            window.predicate(None),
            "((year = '2026' AND month = '11' AND day = '23' AND hour = '10' AND minute = '00')) \
             AND utctimestamp >= '2026-11-23T10:00:00.000000Z' AND utctimestamp < '2026-11-23T10:15:00.000000Z'"
        );
    }

    #[test]
    fn a_fifteen_minute_window_every_five_minutes_reads_two_quarters_not_the_hour() {
        let window = Window::new(t("2026-11-23T10:50:00Z"), t("2026-11-23T11:05:00Z"));
        assert!(window.predicate(None).starts_with(
            "((year = '2026' AND month = '11' AND day = '23' AND hour = '10' AND minute = '45') \
             OR (year = '2026' AND month = '11' AND day = '23' AND hour = '11' AND minute = '00'))"
        ));
        let inside = Window::new(t("2026-11-23T10:20:00Z"), t("2026-11-23T10:35:00Z"));
        assert!(inside.predicate(None).starts_with(
            "((year = '2026' AND month = '11' AND day = '23' AND hour = '10' AND minute >= '15' \
             AND minute <= '30'))"
        ));
    }

    #[test]
    fn whole_hours_need_no_quarters_and_partial_ends_get_theirs() {
        let hour = Window::new(t("2026-11-23T10:00:00Z"), t("2026-11-23T11:00:00Z"));
        assert!(hour.predicate(None).starts_with(
            "((year = '2026' AND month = '11' AND day = '23' AND hour >= '10' AND hour <= '10')) AND"
        ));
        let both = Window::new(t("2026-11-23T09:50:00Z"), t("2026-11-23T11:20:00Z"));
        assert!(both.predicate(None).starts_with(
            "((year = '2026' AND month = '11' AND day = '23' AND hour = '09' AND minute = '45') \
             OR (year = '2026' AND month = '11' AND day = '23' AND hour >= '10' AND hour <= '10') \
             OR (year = '2026' AND month = '11' AND day = '23' AND hour = '11' AND minute <= '15'))"
        ));
    }

    #[test]
    fn predicate_spanning_days_uses_whole_day_clauses_and_aliases() {
        let window = Window::new(t("2026-02-27T22:30:00Z"), t("2026-03-02T01:00:00Z"));
        let predicate = window.predicate(Some("e"));
        assert!(predicate.starts_with(
            "((e.year = '2026' AND e.month = '02' AND e.day = '27' AND e.hour = '22' AND e.minute >= '30') \
             OR (e.year = '2026' AND e.month = '02' AND e.day = '27' AND e.hour >= '23' AND e.hour <= '23') \
             OR (e.year = '2026' AND e.month = '02' AND e.day = '28') \
             OR (e.year = '2026' AND e.month = '03' AND e.day = '01') \
             OR (e.year = '2026' AND e.month = '03' AND e.day = '02' AND e.hour >= '00' AND e.hour <= '00'))"
        ), "{predicate}");
        assert!(predicate.contains("e.utctimestamp >= '2026-02-27T22:30:00.000000Z'"));
    }

    #[test]
    fn an_empty_range_selects_nothing() {
        let at = t("2026-11-23T10:00:00Z");
        assert_eq!(Window::new(at, at).predicate(None), "1 = 0");
    }
}
