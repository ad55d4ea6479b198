//! Detection end to end on the local engine: events through the built-in pipeline into a lake,
//! rules from rules/, scheduled runs with watermarks, catch-up, lateness and de-duplication.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

mod common;

use common::{bundled_geoip, bundled_rules_dir, run};
use lakewatch::cli::detect::detect;
use lakewatch::local::detect::LocalAlerts;
use lakewatch::local::ingest::Ingest;
use lakewatch_detect::{Mode, Query, Rule};
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

    // Without lateness the window was evaluated before the event arrived: the run that first
    // sees the event evaluates the windows holding it again, once, and flags the alert late.
    rule.lateness = TimeDelta::zero();
    let eager = tempfile::tempdir().unwrap();
    ingest(
        eager.path(),
        "on-time",
        &(0..4).map(failure).collect::<Vec<_>>(),
    );
    let mut late = Vec::new();
    let mut now = t("2026-11-20T10:00:00Z");
    while now <= t("2026-11-20T12:30:00Z") {
        if now == t("2026-11-20T10:45:00Z") {
            ingest(eager.path(), "late", &[failure(4)]);
        }
        let report = run(eager.path(), &rule, now, scheduled(100));
        if now == t("2026-11-20T10:45:00Z") {
            let windows: Vec<_> = report.late_windows.iter().map(|w| w.end).collect();
            assert_eq!(
                windows,
                [
                    t("2026-11-20T10:05:00Z"),
                    t("2026-11-20T10:10:00Z"),
                    t("2026-11-20T10:15:00Z")
                ]
            );
        } else {
            assert!(report.late_windows.is_empty(), "each late window once");
        }
        late.extend(report.alerts);
        now += TimeDelta::minutes(5);
    }
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].details["event_count"], "5");
    assert_eq!(late[0].details["late"], "true");
    assert_eq!(published(eager.path()), [late[0].alertid.clone()]);
}

/// The case: one Firehose record whose first line is stamped 07:58, followed by the
/// failed logins of brute-force-user's positive test (09:00–09:05). The transform files the
/// whole record under hour 07 (Firehose allows one partition per record); detection still
/// evaluates each event for its own time.
fn firehose_record_spanning_hours(lake: &Path, received: DateTime<Utc>) {
    use firehose_transform::{Batch, InputRecord, RESPONSE_LIMIT_BYTES, transform};
    let mut lines = vec![gsuite_login(
        "2026-11-20T07:58:00.000Z",
        "early@example.com",
        "203.0.113.7",
        "login_success",
    )];
    lines.extend(test_events("brute-force-user-positive.ndjson"));
    let batch = Batch {
        invocation_id: None,
        records: vec![InputRecord::new("r1", lines.join("\n").into_bytes())],
    };
    let pipeline = lakewatch_plugins::builtin_pipeline(&bundled_geoip()).unwrap();
    let out = transform(&pipeline, &batch, received, RESPONSE_LIMIT_BYTES);
    let record = &out.response.records[0];
    assert_eq!(record.result.as_deref(), Some("Ok"));
    let keys = &record.metadata.partition_keys;
    assert_eq!(keys["hour"], "07");
    // Where Firehose's dynamic partitioning puts the record's lines.
    let dir = lake.join(format!(
        "events/year={}/month={}/day={}/hour={}",
        keys["year"], keys["month"], keys["day"], keys["hour"]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = String::from_utf8(record.data.to_vec()).unwrap();
    std::fs::write(
        dir.join(format!("firehose-{}.json.gz", received.timestamp())),
        lakewatch_lake::layout::gzip_lines(text.lines()),
    )
    .unwrap();
}

#[test]
fn events_filed_under_another_hours_partition_are_evaluated_for_their_own_time() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("brute-force-user");
    firehose_record_spanning_hours(lake.path(), t("2026-11-20T09:10:00Z"));
    let report = run(
        lake.path(),
        &rule,
        t("2026-11-20T09:30:00Z"),
        Mode::Replay {
            from: t("2026-11-20T09:00:00Z"),
            to: t("2026-11-20T09:30:00Z"),
            advance_watermark: false,
        },
    );
    assert_eq!(report.alerts.len(), 1, "{:?}", report.alerts);
    assert_eq!(report.alerts[0].details["user"], "erin@example.com");
    assert_eq!(report.alerts[0].details["event_count"], "5");
}

#[test]
fn a_record_arriving_after_its_windows_were_evaluated_alerts_once_flagged_late() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("brute-force-user");
    // Scheduled runs every 5 minutes see nothing until the record arrives at 09:40.
    let mut alerts = Vec::new();
    let mut now = t("2026-11-20T09:00:00Z");
    while now <= t("2026-11-20T10:30:00Z") {
        if now == t("2026-11-20T09:40:00Z") {
            firehose_record_spanning_hours(lake.path(), now);
        }
        alerts.extend(run(lake.path(), &rule, now, scheduled(100)).alerts);
        now += TimeDelta::minutes(5);
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].details["user"], "erin@example.com");
    assert_eq!(alerts[0].details["late"], "true");
    assert_eq!(published(lake.path()), [alerts[0].alertid.clone()]);
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
        .unwrap()
        .reports;
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

/// Every alert line in the lake's alerts table.
fn alerts_table(lake: &Path) -> Vec<serde_json::Value> {
    use std::io::Read;
    let mut alerts = Vec::new();
    for path in lakewatch_lake::local::files_under(&lake.join("alerts")).unwrap() {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        alerts.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    alerts
}

fn test_events(name: &str) -> Vec<String> {
    let path = bundled_rules_dir().join("tests").join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_record_ingested_twice_is_counted_once() {
    let lake = tempfile::tempdir().unwrap();
    // Four failures for frank: below the threshold of five, however often they are delivered.
    let records = test_events("brute-force-user-negative.ndjson");
    // The same object read again (a retried delivery) gives each record its id again.
    ingest(lake.path(), "negative.ndjson", &records);
    ingest(lake.path(), "negative.ndjson", &records);
    let report = run(
        lake.path(),
        &rule("brute-force-user"),
        t("2026-11-20T11:00:00Z"),
        Mode::Replay {
            from: t("2026-11-20T00:00:00Z"),
            to: t("2026-11-20T10:00:00Z"),
            advance_watermark: false,
        },
    );
    assert!(report.alerts.is_empty(), "{:?}", report.alerts);
}

#[test]
fn a_replay_keeps_the_alerts_published_before() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("brute-force-user");
    let failures = |user: &str, minutes: std::ops::Range<u32>| -> Vec<String> {
        minutes
            .map(|m| {
                let time = format!("2026-11-20T09:{m:02}:10.000Z");
                gsuite_login(&time, user, "203.0.113.95", "login_failure")
            })
            .collect()
    };
    ingest(lake.path(), "erin", &failures("erin@example.com", 0..5));
    // The scheduled run at 09:16 evaluates [08:55, 09:10): erin's alert is published.
    let scheduled_run = run(lake.path(), &rule, t("2026-11-20T09:16:00Z"), scheduled(10));
    assert_eq!(scheduled_run.alerts.len(), 1);
    assert_eq!(published(lake.path()).len(), 1);
    // Late events for frank arrive; a replay of the window raises frank (erin is suppressed).
    ingest(lake.path(), "frank", &failures("frank@example.com", 2..7));
    let replay = run(
        lake.path(),
        &rule,
        t("2026-11-20T09:16:00Z"),
        Mode::Replay {
            from: t("2026-11-20T09:05:00Z"),
            to: t("2026-11-20T09:10:00Z"),
            advance_watermark: false,
        },
    );
    assert_eq!(replay.alerts.len(), 1);
    let users: BTreeSet<String> = alerts_table(lake.path())
        .iter()
        .map(|a| a["details"]["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        users,
        BTreeSet::from([
            "erin@example.com".to_string(),
            "frank@example.com".to_string()
        ])
    );
}

#[test]
fn a_window_failing_run_after_run_is_set_aside_and_evaluated_again_on_demand() {
    let lake = tempfile::tempdir().unwrap();
    let rule = rule("impossible-travel");
    // New York, London, Tokyo, Sydney: three impossible hops, the second window has one.
    let trip = [
        ("2026-11-20T09:00:00.000Z", "192.0.2.10"),
        ("2026-11-20T09:06:00.000Z", "192.0.2.70"),
        ("2026-11-20T09:13:00.000Z", "198.51.100.140"),
        ("2026-11-20T09:20:00.000Z", "198.51.100.20"),
    ];
    let records: Vec<String> = trip
        .iter()
        .map(|(time, ip)| gsuite_login(time, "leap@example.com", ip, "login_success"))
        .collect();
    ingest(lake.path(), "trip", &records);
    // A lake written before leap seconds were normalised at ingest: London's time is 09:06:60,
    // which the rule's time functions refuse.
    let rewrite = |from: &str, to: &str| {
        for path in lakewatch_lake::local::files_under(&lake.path().join("events")).unwrap() {
            use std::io::{Read, Write};
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            let mut gzip = flate2::write::GzEncoder::new(
                std::fs::File::create(&path).unwrap(),
                flate2::Compression::default(),
            );
            gzip.write_all(text.replace(from, to).as_bytes()).unwrap();
            gzip.finish().unwrap();
        }
    };
    rewrite("2026-11-20T09:06:00.000000Z", "2026-11-20T09:06:60.000000Z");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let detect_at = |now: &str, mode: Mode| {
        runtime
            .block_on(detect(
                lake.path(),
                std::slice::from_ref(&rule),
                t(now),
                mode,
            ))
            .unwrap()
            .reports
            .remove(0)
    };
    // The rule starts at 09:10 (its latest window then ends at 09:00).
    assert_eq!(detect_at("2026-11-20T09:10:00Z", scheduled(10)).error, None);
    for attempt in 1..=2 {
        let report = detect_at("2026-11-20T09:40:00Z", scheduled(10));
        let error = report.error.unwrap();
        assert!(
            error.contains(&format!("failed {attempt} of 3 runs")),
            "{error}"
        );
        assert!(report.windows.is_empty(), "the watermark waits");
    }
    let third = detect_at("2026-11-20T09:40:00Z", scheduled(10));
    // The third failure sets the window aside: the watermark passes it, and an alert names the
    // error. (The next window fails too, as its history holds the same row: it counts its own
    // runs, and would be set aside in turn.)
    assert_eq!(third.set_aside.len(), 1);
    assert!(
        third.set_aside[0].error.contains("09:06:60"),
        "{:?}",
        third.set_aside
    );
    assert_eq!(third.windows, [third.set_aside[0].window()]);
    assert_eq!(third.alerts.len(), 1);
    assert!(
        third.alerts[0].summary.contains("set it aside"),
        "{}",
        third.alerts[0].summary
    );
    assert!(third.alerts[0].summary.contains("from_iso8601_timestamp"));
    assert_eq!(published(lake.path()).len(), 1);
    let error = third.error.unwrap();
    assert!(
        error.contains("09:15:00.000000Z, 2026-11-20T09:30:00"),
        "{error}"
    );

    // Once the data is fixed, the next window goes on from the watermark (Tokyo to Sydney)...
    rewrite("2026-11-20T09:06:60.000000Z", "2026-11-20T09:07:00.000000Z");
    let fixed = detect_at("2026-11-20T09:41:00Z", scheduled(10));
    assert_eq!(fixed.error, None);
    assert_eq!(fixed.alerts.len(), 1);
    assert!(
        fixed.alerts[0].summary.contains("Tokyo") && fixed.alerts[0].summary.contains("Sydney")
    );
    assert_eq!(published(lake.path()).len(), 2);

    // ...and the set-aside window is evaluated again on demand, its alerts published.
    let again = detect_at("2026-11-20T09:45:00Z", Mode::SetAside);
    assert_eq!(again.error, None);
    assert_eq!(again.alerts.len(), 2, "New York to London, London to Tokyo");
    assert_eq!(published(lake.path()).len(), 4);
    assert!(
        detect_at("2026-11-20T09:46:00Z", Mode::SetAside)
            .windows
            .is_empty()
    );
}

/// The compressed bytes of every file of the lake's detection extract.
fn extract_bytes(lake: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path())
                } else {
                    entry.metadata().unwrap().len()
                }
            })
            .sum()
    }
    walk(&lakewatch_lake::local::extract_dir(lake).join("events"))
}

#[test]
fn rules_due_in_one_run_read_each_extract_file_once_and_alert_as_window_by_window() {
    let rules: Vec<Rule> = ["brute-force-user", "brute-force-ip", "brute-force-success"]
        .into_iter()
        .map(rule)
        .collect();
    let start = t("2026-11-20T06:00:00Z");
    // Every hour, a burst of failures against one user from one address, then a success.
    let mut records = Vec::new();
    for hour in 0..6 {
        let user = format!("victim{hour}@example.com");
        let address = format!("203.0.113.{}", 10 + hour);
        for attempt in 0..9 {
            let time = start + TimeDelta::hours(hour) + TimeDelta::minutes(20 + attempt);
            let outcome = if attempt == 8 {
                "login_success"
            } else {
                "login_failure"
            };
            let stamp = time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            records.push(gsuite_login(&stamp, &user, &address, outcome));
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let detect_at = |lake: &Path, now: &str, max_windows: usize| {
        runtime
            .block_on(detect(lake, &rules, t(now), scheduled(max_windows)))
            .unwrap()
    };

    // All at once: the detector ran at 06:05, then catches six hours up in one run.
    let batched = tempfile::tempdir().unwrap();
    ingest(batched.path(), "bursts", &records);
    detect_at(batched.path(), "2026-11-20T06:05:00Z", 100);
    let run = detect_at(batched.path(), "2026-11-20T12:05:00Z", 100);
    let queries: usize = run.reports.iter().map(|r| r.queries).sum();
    // Batched windows: each rule's 72 windows in one query (#14), not one query per window,
    // and the three rules' queries grouped into one, counted in the first rule's report.
    assert_eq!(queries, 1, "one grouped query for the three rules");
    assert_eq!(run.reports[0].bytes_read, Some(0), "read from memory");
    for report in &run.reports {
        assert_eq!(report.error, None);
        assert!(
            report.bytes_read.is_none_or(|read| read == 0),
            "{}: read from memory",
            report.rule
        );
    }
    // Each extract file was read once, for all the rules' queries.
    assert_eq!(run.shared.scans, 1);
    assert_eq!(run.shared.bytes_read, extract_bytes(batched.path()));
    let alerted: BTreeSet<_> = run
        .reports
        .iter()
        .flat_map(|r| r.alerts.iter().map(|a| a.alertid.clone()))
        .collect();
    assert_eq!(alerted.len(), 3 * 6, "each rule alerts once per burst");

    // Window by window (one window per rule per run): the same alerts.
    let windowed = tempfile::tempdir().unwrap();
    ingest(windowed.path(), "bursts", &records);
    detect_at(windowed.path(), "2026-11-20T06:05:00Z", 100);
    let mut one_by_one = BTreeSet::new();
    loop {
        let run = detect_at(windowed.path(), "2026-11-20T12:05:00Z", 1);
        if run.reports.iter().all(|r| r.windows.is_empty()) {
            break;
        }
        for report in &run.reports {
            assert_eq!(report.error, None);
            one_by_one.extend(report.alerts.iter().map(|a| a.alertid.clone()));
        }
    }
    assert_eq!(one_by_one, alerted);
    let mut published_batched = published(batched.path());
    let mut published_windowed = published(windowed.path());
    published_batched.sort();
    published_windowed.sort();
    assert_eq!(published_batched, published_windowed);
}

#[test]
fn a_rule_run_every_five_minutes_reads_the_quarter_hours_of_its_window_not_the_hour() {
    let rules = vec![rule("brute-force-user")];
    // An hour of logins, one a minute, all in the lake before the runs.
    let start = t("2026-11-20T06:00:00Z");
    let records: Vec<String> = (0..60)
        .map(|minute| {
            let time = start + TimeDelta::minutes(minute) + TimeDelta::seconds(30);
            let stamp = time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            gsuite_login(
                &stamp,
                "someone@example.com",
                "203.0.113.9",
                "login_success",
            )
        })
        .collect();
    let lake = tempfile::tempdir().unwrap();
    ingest(lake.path(), "hour", &records);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run_at = |now: DateTime<Utc>| {
        let run = runtime
            .block_on(detect(lake.path(), &rules, now, scheduled(1)))
            .unwrap();
        assert_eq!(run.reports[0].error, None);
        run.shared.bytes_read + run.reports[0].bytes_read.unwrap_or(0)
    };
    run_at(t("2026-11-20T06:05:00Z"));
    let hour = extract_bytes(lake.path());
    // Runs at 06:20 … 07:15 evaluate the windows ending 06:15 … 07:10 (lateness 5 minutes).
    let mut total = 0;
    for run in 0..12 {
        let now = t("2026-11-20T06:20:00Z") + TimeDelta::minutes(5 * run);
        let read = run_at(now);
        assert!(
            read * 2 <= hour + hour / 10,
            "the run at {now} read {read} bytes of the hour's {hour}: more than its two quarters"
        );
        total += read;
    }
    // Four windows of one quarter and eight of two: 20 quarters, 5 hours' worth (12 before).
    assert!(
        total <= 6 * hour,
        "12 runs read {total} bytes, {:.1} times the hour's {hour}",
        total as f64 / hour as f64
    );
}
