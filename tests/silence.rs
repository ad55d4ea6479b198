//! Silence rules on a generated 3-day local lake written through the real ingest and writer:
//! several sources at a day/night volume; one source stops, one drops by 60%, one host of a
//! source stops, the others keep sending (quieter at night). The rules read the lake's event
//! counters only: they give the same alerts with the event files deleted.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Timelike, Utc};

use lakewatch::local::detect::detect;
use lakewatch::local::ingest::Ingest;
use lakewatch_detect::{Alert, Mode, Rule, RuleReport};
use lakewatch_lake::local::LocalLake;
use lakewatch_plugins::PluginConfig;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// When the generated lake starts, and when each change happens on its fourth day.
const START: &str = "2026-11-17T00:00:00Z";
const END: &str = "2026-11-20T12:00:00Z";
const PROXY_STOPS: &str = "2026-11-20T09:20:00Z";
const APP_DROPS: &str = "2026-11-20T08:00:00Z";
const FW3_STOPS: &str = "2026-11-20T06:30:00Z";

/// Events per hour of one host: busy in the day, a quarter of that at night, with a
/// deterministic jitter of ±10%.
fn volume(hour: DateTime<Utc>, host: &str) -> u64 {
    let base = if (8..20).contains(&hour.hour()) {
        20
    } else {
        5
    };
    let seed = hour.timestamp() as u64 ^ host.bytes().fold(7, |h, b| h * 31 + b as u64);
    let jitter = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as i64 - 8; // -8..7
    (base + base * jitter / 80).max(1) as u64
}

/// The generated records: `{utctimestamp, source, hostname, summary}` per event, as a JSON
/// producer would send them.
fn generated_records() -> String {
    let hosts = [
        ("firewall", "fw-1"),
        ("firewall", "fw-2"),
        ("firewall", "fw-3"),
        ("proxy", "px-1"),
        ("app", "app-1"),
        ("app", "app-2"),
    ];
    let mut lines = Vec::new();
    let mut hour = t(START);
    while hour < t(END) {
        for (source, host) in hosts {
            let mut count = volume(hour, host);
            if source == "app" && hour >= t(APP_DROPS) {
                count = count * 4 / 10;
            }
            for n in 0..count {
                let at = hour + TimeDelta::seconds((3600 * n / count) as i64);
                let stopped = (host == "px-1" && at >= t(PROXY_STOPS))
                    || (host == "fw-3" && at >= t(FW3_STOPS));
                if stopped {
                    continue;
                }
                lines.push(
                    serde_json::json!({
                        "utctimestamp": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        "source": source,
                        "hostname": host,
                        "summary": format!("{source} event {n}"),
                    })
                    .to_string(),
                );
            }
        }
        hour += TimeDelta::hours(1);
    }
    lines.join("\n")
}

fn generated_lake(lake: &Path) {
    let pipeline = lakewatch_plugins::builtin_pipeline(&PluginConfig::default()).unwrap();
    let local = LocalLake::open(lake).unwrap();
    let mut failures = Vec::new();
    let mut ingest = Ingest::new(&pipeline, local.writer(Utc::now()), |m: &str| {
        failures.push(m.to_string())
    });
    let records = generated_records();
    ingest
        .ingest("generated.ndjson", "generated.ndjson", records.as_bytes())
        .unwrap();
    ingest.finish().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

fn rule(query: &str) -> Rule {
    let text = format!(
        "id = \"silent\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"high\"\n\
         interval = \"1h\"\nwindow = \"1h\"\nhistory = \"3d\"\nsuppress = \"1d\"\n\
         summary = \"{{source}} {{hostname}}: {{reason}}\"\n[query]\nkind = \"silence\"\n{query}"
    );
    Rule::from_toml(Path::new("silent.toml"), &text).unwrap()
}

fn replay(lake: &Path, rule: &Rule) -> RuleReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mode = Mode::Replay {
        from: t("2026-11-20T00:00:00Z"),
        to: t(END),
        advance_watermark: false,
    };
    let mut detection = runtime
        .block_on(detect(lake, std::slice::from_ref(rule), t(END), mode))
        .unwrap();
    let report = detection.reports.remove(0);
    assert_eq!(report.error, None);
    report
}

/// `(window end, source, host, condition)` of each alert.
fn described(alerts: &[Alert]) -> Vec<(String, String, String, String)> {
    let column = |alert: &Alert, name: &str| {
        alert
            .details
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    alerts
        .iter()
        .map(|a| {
            (
                a.windowend[11..16].to_string(),
                column(a, "source"),
                column(a, "hostname"),
                column(a, "condition"),
            )
        })
        .collect()
}

fn tuple(end: &str, source: &str, host: &str, condition: &str) -> (String, String, String, String) {
    (end.into(), source.into(), host.into(), condition.into())
}

#[test]
fn a_stopped_source_alerts_once_within_two_periods_and_the_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    generated_lake(dir.path());
    let rule = rule("sources = [\"firewall\", \"proxy\", \"app\", \"never-seen\"]");
    let report = replay(dir.path(), &rule);
    // The proxy stopped at 09:20: the window 10:00-11:00 is the first without events (the
    // next ones are suppressed); the app's drop and the firewall's lost host are still events,
    // and the night-time windows are just quieter.
    assert_eq!(
        described(&report.alerts),
        [tuple("11:00", "proxy", "", "silent")]
    );
    let alert = &report.alerts[0];
    assert_eq!(alert.summary, "proxy ?: no events");
    assert_eq!(
        alert.details["last_events_hour"],
        "2026-11-20T09:00:00.000000Z"
    );
    assert!(
        report.suppressed >= 1,
        "later silent windows are duplicates"
    );
    assert_eq!((report.queries, report.bytes_read), (0, Some(0)));
}

#[test]
fn a_sixty_percent_drop_is_flagged_and_a_night_time_dip_is_not() {
    let dir = tempfile::tempdir().unwrap();
    generated_lake(dir.path());
    let rule = rule("sources = [\"firewall\", \"proxy\", \"app\"]\ndrop_percent = 50");
    let report = replay(dir.path(), &rule);
    // The app sends 40% of its usual volume from 08:00; the proxy's last window with events
    // (09:00-10:00, 20 minutes of them) is already a drop; the firewall lost one host of
    // three (a third), under the threshold; night windows (00:00-08:00) compare with the same
    // quiet hours of the days before.
    assert_eq!(
        described(&report.alerts),
        [
            tuple("09:00", "app", "", "volume drop"),
            tuple("10:00", "proxy", "", "volume drop"),
        ]
    );
    let app = &report.alerts[0];
    let dropped: f64 = app.details["reason"]
        .as_str()
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55.0..=65.0).contains(&dropped), "{app:?}");
}

#[test]
fn per_host_a_stopped_host_alerts_alone() {
    let dir = tempfile::tempdir().unwrap();
    generated_lake(dir.path());
    let rule = rule("sources = [\"firewall\"]\nper_host = true");
    let report = replay(dir.path(), &rule);
    // fw-3 stopped at 06:30: its 06:00-07:00 window holds half an hour (a 50% drop, not more),
    // the next one nothing.
    assert_eq!(
        described(&report.alerts),
        [tuple("08:00", "firewall", "fw-3", "silent")]
    );
}

#[test]
fn silence_reads_the_counters_only_and_scheduled_runs_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    generated_lake(lake);
    // The event files are gone: the counters alone give the same answers.
    std::fs::remove_dir_all(lake.join("events")).unwrap();
    let rule = rule("sources = [\"firewall\", \"proxy\", \"app\"]");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut alerts = Vec::new();
    let mut now = t("2026-11-20T06:05:00Z");
    while now <= t(END) {
        let mut detection = runtime
            .block_on(detect(
                lake,
                std::slice::from_ref(&rule),
                now,
                Mode::Scheduled { max_windows: 12 },
            ))
            .unwrap();
        assert_eq!(detection.extract.bytes_read, 0);
        let report = detection.reports.remove(0);
        assert_eq!(report.error, None);
        assert_eq!((report.queries, report.bytes_read), (0, Some(0)));
        alerts.extend(report.alerts);
        now += TimeDelta::hours(1);
    }
    assert_eq!(described(&alerts), [tuple("11:00", "proxy", "", "silent")]);
    // Written to the alerts table and published once, like any alert.
    let topic = std::fs::read_to_string(lakewatch_lake::local::alerts_topic_path(lake)).unwrap();
    assert_eq!(topic.lines().count(), 1, "{topic}");
    assert!(topic.contains("\"source\":\"proxy\""), "{topic}");
}
