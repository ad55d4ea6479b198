//! Detection end to end on the local engine: events through the built-in pipeline into a lake,
//! rules from rules/, scheduled runs with watermarks, catch-up, lateness and de-duplication.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

use lakewatch::cli::detect::{bundled_geoip, bundled_rules_dir, detect};
use lakewatch::local::detect::LocalAlerts;
use lakewatch::local::ingest::Ingest;
use lakewatch_detect::{Mode, Query, Rule, RuleReport};
use lakewatch_lake::local::LocalLake;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn rule(id: &str) -> Rule {
    Rule::from_file(&bundled_rules_dir().join(format!("{id}.toml"))).unwrap()
}

/// Runs NDJSON records through the built-in pipeline (with the test GeoIP databases) into the lake.
fn ingest(lake: &Path, name: &str, records: &[String]) {
    let pipeline = lakewatch_plugins::builtin_pipeline(&bundled_geoip()).unwrap();
    let lake = LocalLake::open(lake).unwrap();
    let mut failures = Vec::new();
    let mut ingest = Ingest::new(&pipeline, lake.writer(Utc::now()), |m: &str| {
        failures.push(m.to_string())
    });
    let text = records.join("\n");
    ingest.ingest(name, name, text.as_bytes()).unwrap();
    ingest.finish().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

fn gsuite_login(time: &str, user: &str, ip: &str, outcome: &str) -> String {
    serde_json::json!({
        "kind": "admin#reports#activity",
        "id": {"time": time, "applicationName": "login", "uniqueQualifier": format!("{time}{user}{ip}")},
        "actor": {"email": user},
        "ipAddress": ip,
        "events": [{"type": "login", "name": outcome}],
    })
    .to_string()
}

fn run(lake: &Path, rule: &Rule, now: DateTime<Utc>, mode: Mode) -> RuleReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut reports = runtime
        .block_on(detect(lake, std::slice::from_ref(rule), now, mode))
        .unwrap();
    let report = reports.remove(0);
    assert_eq!(report.error, None);
    report
}

fn scheduled(max_windows: usize) -> Mode {
    Mode::Scheduled { max_windows }
}

/// Alert ids published to the local topic, in order.
fn published(lake: &Path) -> Vec<String> {
    match std::fs::read_to_string(LocalAlerts::topic_path(lake)) {
        Ok(text) => text
            .lines()
            .map(|line| {
                let alert: serde_json::Value = serde_json::from_str(line).unwrap();
                alert["alertid"].as_str().unwrap().to_string()
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Great-circle distance as Trino defines it (haversine, Earth radius 6371.01 km).
fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.01 * h.sqrt().asin()
}

#[test]
fn impossible_travel_speeds_are_right_to_one_percent() {
    let lake = tempfile::tempdir().unwrap();
    // New York, London, Tokyo, Sydney (the test GeoIP database's networks) within 20 minutes.
    let trip = [
        (
            "2026-11-20T09:00:00.000Z",
            "192.0.2.10",
            (40.7128, -74.0060),
        ),
        ("2026-11-20T09:06:00.000Z", "192.0.2.70", (51.5074, -0.1278)),
        (
            "2026-11-20T09:13:00.000Z",
            "198.51.100.140",
            (35.6762, 139.6503),
        ),
        (
            "2026-11-20T09:20:00.000Z",
            "198.51.100.20",
            (-33.8688, 151.2093),
        ),
    ];
    let records: Vec<String> = trip
        .iter()
        .map(|(time, ip, _)| gsuite_login(time, "alice@example.com", ip, "login_success"))
        .collect();
    ingest(lake.path(), "trip", &records);
    let report = run(
        lake.path(),
        &rule("impossible-travel"),
        t("2026-11-20T10:00:00Z"),
        Mode::Replay {
            from: t("2026-11-20T09:00:00Z"),
            to: t("2026-11-20T09:30:00Z"),
            advance_watermark: false,
        },
    );
    assert_eq!(report.alerts.len(), 3, "one alert per consecutive pair");
    for pair in trip.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        let alert = report
            .alerts
            .iter()
            .find(|a| a.details["from_ip"] == from.1 && a.details["to_ip"] == to.1)
            .unwrap_or_else(|| panic!("no alert for {} -> {}", from.1, to.1));
        let hours = (t(to.0) - t(from.0)).num_seconds() as f64 / 3600.0;
        let expected_km = haversine_km(from.2, to.2);
        let speed: f64 = alert.details["speed_kmh"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let distance: f64 = alert.details["distance_km"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (distance - expected_km).abs() / expected_km < 0.01,
            "{distance} km vs {expected_km}"
        );
        let expected_speed = expected_km / hours;
        assert!(
            (speed - expected_speed).abs() / expected_speed < 0.01,
            "{speed} km/h vs {expected_speed}"
        );
        assert_eq!(alert.eventids.len(), 2);
    }
}

#[test]
fn a_six_hour_outage_is_caught_up_in_one_run_without_gaps_or_duplicates() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("brute-force-user");
    let start = t("2026-11-20T06:00:00Z");
    // Every hour of the outage, a different user suffers a burst of six failures.
    let mut records = Vec::new();
    for hour in 0..6 {
        for attempt in 0..6 {
            let time = start + TimeDelta::hours(hour) + TimeDelta::minutes(20 + attempt);
            records.push(gsuite_login(
                &time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                &format!("victim{hour}@example.com"),
                "203.0.113.99",
                "login_failure",
            ));
        }
    }
    ingest(lake.path(), "outage", &records);

    // The detector ran at 06:05, then was down until 12:05.
    let before = run(
        lake.path(),
        &rule,
        t("2026-11-20T06:05:00Z"),
        scheduled(100),
    );
    assert_eq!(before.windows.len(), 1);
    assert!(before.alerts.is_empty());
    let after = run(
        lake.path(),
        &rule,
        t("2026-11-20T12:05:00Z"),
        scheduled(100),
    );

    // The first run (06:05 minus 5 minutes of lateness) left the watermark at 06:00; the catch-up
    // evaluates every 5-minute window ending from 06:05 to 12:00, once.
    let ends: Vec<_> = after.windows.iter().map(|w| w.end).collect();
    assert_eq!(ends.len(), 72);
    assert_eq!(ends.first(), Some(&t("2026-11-20T06:05:00Z")));
    assert_eq!(ends.last(), Some(&t("2026-11-20T12:00:00Z")));
    assert_eq!(ends.iter().collect::<BTreeSet<_>>().len(), ends.len());

    // One alert per burst, each published once.
    let users: BTreeSet<_> = after
        .alerts
        .iter()
        .map(|a| a.details["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users.len(), 6, "{users:?}");
    let ids = published(lake.path());
    assert_eq!(ids.len(), 6);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        6,
        "duplicate alertid"
    );

    // The next run has nothing new to evaluate or publish.
    let again = run(
        lake.path(),
        &rule,
        t("2026-11-20T12:06:00Z"),
        scheduled(100),
    );
    assert!(again.windows.is_empty());
    assert_eq!(published(lake.path()).len(), 6);

    // A catch-up limited to a few windows per run finishes over several runs with the same result.
    let limited_lake = tempfile::tempdir().unwrap();
    ingest(limited_lake.path(), "outage", &records);
    run(
        limited_lake.path(),
        &rule,
        t("2026-11-20T06:05:00Z"),
        scheduled(100),
    );
    let mut runs = 0;
    loop {
        let report = run(
            limited_lake.path(),
            &rule,
            t("2026-11-20T12:05:00Z"),
            scheduled(10),
        );
        runs += 1;
        if report.windows.is_empty() {
            break;
        }
    }
    assert_eq!(runs, 9, "72 windows at 10 per run, then an empty run");
    let mut limited = published(limited_lake.path());
    let mut all = ids.clone();
    limited.sort();
    all.sort();
    assert_eq!(limited, all, "the same alerts, whatever the catch-up pace");
}

#[test]
fn an_event_forty_minutes_late_alerts_exactly_once_with_an_hour_of_lateness() {
    let mut rule = rule("brute-force-user");
    rule.lateness = TimeDelta::hours(1);
    let lake = tempfile::tempdir().unwrap();
    let failure = |minute: i64| {
        let time = t("2026-11-20T10:00:00Z") + TimeDelta::minutes(minute);
        gsuite_login(
            &time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "late@example.com",
            "203.0.113.98",
            "login_failure",
        )
    };
    // Four failures arrive on time; the fifth happened at 10:04 but arrives at 10:44.
    ingest(
        lake.path(),
        "on-time",
        &(0..4).map(failure).collect::<Vec<_>>(),
    );
    let mut now = t("2026-11-20T10:00:00Z");
    let mut alerts = Vec::new();
    while now <= t("2026-11-20T12:30:00Z") {
        if now == t("2026-11-20T10:45:00Z") {
            ingest(lake.path(), "late", &[failure(4)]);
        }
        alerts.extend(run(lake.path(), &rule, now, scheduled(100)).alerts);
        now += TimeDelta::minutes(5);
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].details["event_count"], "5");
    assert_eq!(published(lake.path()), [alerts[0].alertid.clone()]);

    // Without lateness the window was evaluated before the event arrived, and the burst is missed.
    rule.lateness = TimeDelta::zero();
    let eager = tempfile::tempdir().unwrap();
    ingest(
        eager.path(),
        "on-time",
        &(0..4).map(failure).collect::<Vec<_>>(),
    );
    let mut missed = Vec::new();
    let mut now = t("2026-11-20T10:00:00Z");
    while now <= t("2026-11-20T12:30:00Z") {
        if now == t("2026-11-20T10:45:00Z") {
            ingest(eager.path(), "late", &[failure(4)]);
        }
        missed.extend(run(eager.path(), &rule, now, scheduled(100)).alerts);
        now += TimeDelta::minutes(5);
    }
    assert!(missed.is_empty());
}

#[test]
fn replays_write_alerts_without_publishing_or_moving_the_watermark() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("brute-force-user");
    let records: Vec<String> = (0..6)
        .map(|i| {
            gsuite_login(
                &format!("2026-11-20T09:0{i}:30.000Z"),
                "replay@example.com",
                "203.0.113.97",
                "login_failure",
            )
        })
        .collect();
    ingest(lake.path(), "replay", &records);
    let replay = Mode::Replay {
        from: t("2026-11-20T09:00:00Z"),
        to: t("2026-11-20T10:00:00Z"),
        advance_watermark: false,
    };
    let first = run(lake.path(), &rule, t("2026-11-21T00:00:00Z"), replay);
    let second = run(lake.path(), &rule, t("2026-11-21T00:00:00Z"), replay);
    assert_eq!(first.alerts.len(), 1);
    assert_eq!(first.alerts, second.alerts, "replays are deterministic");
    assert!(published(lake.path()).is_empty());
    let alert_files = lakewatch_lake::local::files_under(&lake.path().join("alerts")).unwrap();
    assert_eq!(
        alert_files.len(),
        1,
        "the replayed window's file is replaced, not duplicated"
    );
    // No watermark was saved: the next scheduled run starts from now, as for a new rule.
    let scheduled_run = run(
        lake.path(),
        &rule,
        t("2026-11-21T00:00:00Z"),
        scheduled(100),
    );
    assert_eq!(scheduled_run.windows.len(), 1);
}

#[test]
fn alerts_of_earlier_windows_are_published_when_a_later_window_fails() {
    let lake = tempfile::tempdir().unwrap();
    let mut rule = rule("brute-force-user");
    // The query divides by zero on rows from 10:00 on: windows that read such a row fail. (A
    // condition on the partition columns would fail every window: pruning evaluates it.)
    let Query::Threshold { filter, .. } = &mut rule.query else {
        panic!("brute-force-user is a threshold rule")
    };
    filter.push_str(
        " AND 1 / (CASE WHEN utctimestamp >= '2026-11-20T10:00:00' THEN 0 ELSE 1 END) = 1",
    );
    let failure =
        |time: &str| gsuite_login(time, "early@example.com", "203.0.113.96", "login_failure");
    let mut records: Vec<String> = (0..5)
        .map(|i| failure(&format!("2026-11-20T09:0{i}:10.000Z")))
        .collect();
    records.push(failure("2026-11-20T10:02:00.000Z"));
    ingest(lake.path(), "failing", &records);

    run(
        lake.path(),
        &rule,
        t("2026-11-20T09:00:00Z"),
        scheduled(100),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reports = runtime
        .block_on(detect(
            lake.path(),
            std::slice::from_ref(&rule),
            t("2026-11-20T10:10:00Z"),
            scheduled(100),
        ))
        .unwrap();
    let error = reports[0]
        .error
        .as_deref()
        .expect("the hour-10 window fails");
    assert!(error.contains("query failed"), "{error}");
    assert_eq!(reports[0].alerts.len(), 1, "the 09:05 window alerted");
    assert_eq!(
        published(lake.path()),
        [reports[0].alerts[0].alertid.clone()]
    );
}
