//! What reached the lake, in the order it arrived: the bookkeeping that lets detection read the
//! lake by *arrival* and still evaluate every event for its *event time*.
//!
//! Events are not always stored under their own hour: the Firehose transform files a whole
//! record under its first event's hour, and late events sit under their arrival hour. So the
//! detection extract ([`crate::extract`]) reads each lake object once, when
//! it is new, and files its events by event time; every such pass is one [`Arrival`] here, with
//! the minutes its events happened in. A rule whose watermark is already past some of those
//! minutes evaluates the windows holding them again, once, and flags their alerts late
//! ([`late_window_ends`]); each rule remembers the last arrival it has looked at
//! ([`crate::RuleState::arrivals_seen`]), so no arrival is missed or looked at twice whichever
//! rules a run selects.
//!
//! The document lives beside the rules' state ([`ARRIVALS_DOCUMENT`] in the same
//! [`crate::StateStore`]) and is written with compare-and-swap like them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::window::align_down;
use lakewatch_lake::layout::ExtractFormat;

/// The arrivals document's name in the state store; rule ids cannot start with `_`.
pub const ARRIVALS_DOCUMENT: &str = "_arrivals.json";

/// How long an arrival is remembered: a rule that does not run for longer than this misses
/// the re-evaluation of windows that received late events before (it still sees the events in
/// any window it evaluates later, and a replay sees everything).
pub const ARRIVALS_KEPT: TimeDelta = TimeDelta::days(30);

/// The extract's layout that [`Arrivals::objects`] were filed in: 1, hour partitions; 2, quarter
/// hours ([`lakewatch_lake::partitions::Slice`]) in gzip; 3, quarter hours in zstd
/// ([`lakewatch_lake::layout::ExtractFormat`]). A document of layout 1 has its objects filed
/// again; one of layout 2 keeps its objects' gzip parts ([`Arrivals::upgrade`]).
pub const EXTRACT_LAYOUT: u32 = 3;

/// The lake objects already extracted and what each extract pass brought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrivals {
    /// The extract layout of `objects` ([`EXTRACT_LAYOUT`]; documents from before layouts were
    /// numbered read as 1).
    #[serde(default = "first_layout")]
    pub layout: u32,
    /// Lake object key → its version when it was extracted (locally its size and modification
    /// time): an object rewritten in place is extracted again, and since the extract's files are
    /// named after their source, that replaces them.
    #[serde(default)]
    pub objects: BTreeMap<String, String>,
    /// Objects extracted in an older layout and not yet filed again in this one: extracted
    /// again, but not arrivals (their events were evaluated when they arrived, so they reopen
    /// no window).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refile: BTreeMap<String, String>,
    /// Objects of [`Arrivals::objects`] whose extract parts are gzip (extracted in layout 2):
    /// extracted again, they are written in gzip again, under the same names, so that their
    /// new parts replace the old ones rather than adding zstd copies beside them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub gzip: BTreeSet<String>,
    /// Extract passes that brought events, oldest first.
    #[serde(default)]
    pub passes: Vec<Arrival>,
}

fn first_layout() -> u32 {
    1
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            layout: EXTRACT_LAYOUT,
            objects: BTreeMap::new(),
            refile: BTreeMap::new(),
            gzip: BTreeSet::new(),
            passes: Vec::new(),
        }
    }
}

/// One extract pass: when it ran, and the minutes (event time) its new objects' events fall in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    /// Increases by one per pass, never reused.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub minutes: BTreeSet<DateTime<Utc>>,
}

impl Arrivals {
    /// Brings a document of an older extract layout to this one; true when it changed. Objects
    /// filed by hour (layout 1) move to [`Arrivals::refile`], so that the next passes file them
    /// again; objects filed by quarter hour in gzip (layout 2) stay where they are, readable
    /// as they are, and are remembered in [`Arrivals::gzip`].
    pub fn upgrade(&mut self) -> bool {
        if self.layout == EXTRACT_LAYOUT {
            return false;
        }
        if self.layout == 2 {
            self.gzip.extend(self.objects.keys().cloned());
        } else {
            self.refile.append(&mut self.objects);
        }
        self.layout = EXTRACT_LAYOUT;
        true
    }

    /// How the extract parts of the lake object `key` are written: as they were when it was
    /// first extracted.
    pub fn format_of(&self, key: &str) -> ExtractFormat {
        if self.gzip.contains(key) {
            ExtractFormat::Gzip
        } else {
            ExtractFormat::Zstd
        }
    }

    /// The sequence number of the latest pass (0: none yet).
    pub fn latest(&self) -> u64 {
        self.passes.last().map_or(0, |pass| pass.seq)
    }

    /// Records a pass at `at` with the event times it extracted (kept to the minute), and
    /// forgets passes older than [`ARRIVALS_KEPT`].
    pub fn record(&mut self, at: DateTime<Utc>, times: &BTreeSet<DateTime<Utc>>) {
        let minutes = times
            .iter()
            .map(|t| align_down(*t, TimeDelta::minutes(1)))
            .collect();
        let seq = self.latest() + 1;
        self.passes.retain(|pass| pass.at >= at - ARRIVALS_KEPT);
        self.passes.push(Arrival { seq, at, minutes });
    }

    /// Minutes of events that arrived in passes after `seen`.
    pub fn minutes_after(&self, seen: u64) -> BTreeSet<DateTime<Utc>> {
        self.passes
            .iter()
            .filter(|pass| pass.seq > seen)
            .flat_map(|pass| pass.minutes.iter().copied())
            .collect()
    }
}

/// Ends of the windows (of `length`, ending on multiples of `interval`) that an earlier run
/// already evaluated (ending no later than `watermark`) and that hold one of the `minutes`
/// (each the minute `[m, m + 1 min)` an event happened in): they are evaluated again, once.
pub fn late_window_ends(
    minutes: &BTreeSet<DateTime<Utc>>,
    watermark: Option<DateTime<Utc>>,
    interval: TimeDelta,
    length: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let Some(watermark) = watermark else {
        return Vec::new();
    };
    let mut ends = BTreeSet::new();
    for &minute in minutes.iter().filter(|m| **m < watermark) {
        // Windows [end - length, end) meeting [minute, minute + 1 min).
        let mut end = align_down(minute, interval) + interval;
        while end - length < minute + TimeDelta::minutes(1) && end <= watermark {
            ends.insert(end);
            end += interval;
        }
    }
    ends.into_iter().collect()
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
    fn an_event_behind_the_watermark_reopens_every_window_holding_it() {
        let minutes = BTreeSet::from([t("2026-11-20T10:04:00Z")]);
        let ends = late_window_ends(
            &minutes,
            Some(t("2026-11-20T10:45:00Z")),
            TimeDelta::minutes(5),
            TimeDelta::minutes(15),
        );
        assert_eq!(
            ends,
            [
                t("2026-11-20T10:05:00Z"),
                t("2026-11-20T10:10:00Z"),
                t("2026-11-20T10:15:00Z")
            ]
        );
    }

    #[test]
    fn events_not_behind_the_watermark_wait_for_their_due_windows() {
        let minutes = BTreeSet::from([t("2026-11-20T10:04:00Z")]);
        let watermark = Some(t("2026-11-20T10:05:00Z"));
        let ends = late_window_ends(
            &minutes,
            watermark,
            TimeDelta::minutes(5),
            TimeDelta::minutes(15),
        );
        // Only the window ending at the watermark was evaluated; later ones are still due.
        assert_eq!(ends, [t("2026-11-20T10:05:00Z")]);
        assert!(
            late_window_ends(&minutes, None, TimeDelta::hours(1), TimeDelta::hours(1)).is_empty()
        );
    }

    #[test]
    fn passes_are_numbered_and_old_ones_forgotten() {
        let mut arrivals = Arrivals::default();
        let times = BTreeSet::from([t("2026-10-01T09:06:30Z")]);
        arrivals.record(t("2026-10-01T09:10:00Z"), &times);
        arrivals.record(t("2026-11-20T09:10:00Z"), &BTreeSet::new());
        assert_eq!(arrivals.latest(), 2);
        assert_eq!(arrivals.passes.len(), 1, "the October pass is forgotten");
        arrivals.record(t("2026-11-20T09:15:00Z"), &times);
        assert_eq!(
            arrivals.minutes_after(2),
            BTreeSet::from([t("2026-10-01T09:06:00Z")])
        );
        assert!(arrivals.minutes_after(3).is_empty());
    }
}
