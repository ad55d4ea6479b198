//! Delivery end to end: the detector's scheduled run (the runner, its state with
//! compare-and-swap) hands alerts to the outbox, and the outbox sends them over HTTP to local
//! receivers standing in for a webhook, Slack and PagerDuty, through outages and injected
//! faults at every step. What must hold: each alert reaches each destination exactly once
//! (counted at the receiver by alert id), none is lost, and a send whose answer was not
//! recorded is repeated at most once, with the same idempotency key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use lakewatch_deliver::body::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};
use lakewatch_deliver::{
    Destinations, DestinationsFile, Dispatch, EnvSecrets, HttpTransport, Secret, Status,
    TopicPublisher,
};
use lakewatch_detect::{
    Alert, AlertSink, Deliveries, Mode, QueryEngine, Row, Rule, Window, run_scheduled_and_deliver,
};
use lakewatch_lake::layout::OUTBOX_DOCUMENT;
use lakewatch_lake::versioned::{FileStore, Versioned, VersionedStore, WriteError};
use lakewatch_testkit::receiver::{Answer, Receiver};

const RULE: &str = r#"
id = "r"
title = "Something odd"
description = "d"
severity = "HIGH"
interval = "5m"
window = "5m"
lateness = "0m"
summary = "{user} did something odd"
[query]
kind = "sql"
sql = "SELECT 1 FROM events WHERE {{window}}"
"#;

fn rule() -> Rule {
    Rule::from_toml(std::path::Path::new("r.toml"), RULE).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + TimeDelta::minutes(minutes)
}

/// One new user per query, so every window raises one alert of its own.
#[derive(Default)]
struct OneAlertPerWindow(AtomicUsize);

impl QueryEngine for OneAlertPerWindow {
    async fn query(&self, _: &str) -> Result<Vec<Row>, String> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(vec![Row::from([(
            "user".to_string(),
            Some(format!("u{n}")),
        )])])
    }
}

/// No SNS destination in these tests.
struct NoTopics;

impl TopicPublisher for NoTopics {
    async fn publish(&self, _: &str, _: &str) -> Result<(), String> {
        Err("no topics here".into())
    }
}

/// A write fault: the next `times` writes of document `name` that make the change `when`
/// fail, as an S3 5xx would.
#[derive(Clone)]
struct Fault {
    name: &'static str,
    when: When,
    times: usize,
}

/// Which writes a [`Fault`] fails.
#[derive(Clone, Copy)]
enum When {
    /// Those that add an occurrence of this text (a status, an emptied list).
    Adds(&'static str),
    /// A rule state save that puts unpublished alerts back without moving the watermark: the
    /// save after a failed publish in the issue's fault sequence.
    PutsBack,
}

impl When {
    fn matches(self, current: &str, new: &str) -> bool {
        match self {
            When::Adds(text) => new.matches(text).count() > current.matches(text).count(),
            When::PutsBack => {
                let parse = |text: &str| {
                    serde_json::from_str::<serde_json::Value>(text).unwrap_or_default()
                };
                let (current, new) = (parse(current), parse(new));
                let pending =
                    |state: &serde_json::Value| state["unpublished"].as_array().map_or(0, Vec::len);
                pending(&current) == 0
                    && pending(&new) > 0
                    && current["watermark"] == new["watermark"]
            }
        }
    }
}

/// The file store with injected write faults.
#[derive(Clone)]
struct Faulty {
    inner: FileStore,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl Faulty {
    fn inject(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }
}

impl VersionedStore for Faulty {
    fn location(&self, name: &str) -> String {
        self.inner.location(name)
    }

    async fn read(&self, name: &str) -> Result<Option<Versioned>, String> {
        self.inner.read(name).await
    }

    async fn write(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let current = match self.inner.read(name).await {
            Ok(Some(read)) => String::from_utf8_lossy(&read.bytes).into_owned(),
            _ => String::new(),
        };
        let injected = {
            let mut faults = self.faults.lock().unwrap();
            let hit = faults
                .iter_mut()
                .find(|f| f.times > 0 && f.name == name && f.when.matches(&current, &text));
            hit.map(|fault| fault.times -= 1).is_some()
        };
        if injected {
            return Err(WriteError::Failed("injected fault: 503 Slow Down".into()));
        }
        self.inner.write(name, bytes, expected).await
    }
}

/// The detector's sink as the Lambda and local mode build it: alerts written nowhere (the
/// alerts table is not under test), handed over and delivered through a [`Dispatch`].
struct Sink {
    dispatch: Dispatch<Faulty, HttpTransport<NoTopics>>,
    written: Mutex<Vec<Alert>>,
}

impl AlertSink for Sink {
    type Delivery = Dispatch<Faulty, HttpTransport<NoTopics>>;

    fn delivery(&self) -> &Self::Delivery {
        &self.dispatch
    }

    async fn write(&self, _: &Rule, _: Window, alerts: &[Alert]) -> Result<(), String> {
        self.written.lock().unwrap().extend_from_slice(alerts);
        Ok(())
    }
}

/// A detector with three HTTP destinations, each its own receiver.
struct Detector {
    _dir: tempfile::TempDir,
    store: Faulty,
    sink: Sink,
    engine: OneAlertPerWindow,
    webhook: Receiver,
    slack: Receiver,
    pagerduty: Receiver,
}

const SIGNING_SECRET: &str = "s1gn1ng";

impl Detector {
    async fn start() -> Detector {
        let (webhook, slack, pagerduty) = (
            Receiver::start().await.unwrap(),
            Receiver::start().await.unwrap(),
            Receiver::start().await.unwrap(),
        );
        let file = format!(
            r#"
[[destination]]
name = "hook"
kind = "webhook"
url = "{}"
secret = "env:SIGNING"
headers = {{ "X-Team" = "soc" }}

[[destination]]
name = "slack"
kind = "slack"
url = "env:SLACK_URL"
link = "https://console.aws.amazon.com/athena/home#/query-editor?alert={{alertid}}"

[[destination]]
name = "pd"
kind = "pagerduty"
url = "{}"
routing_key = "env:PD_KEY"
"#,
            webhook.url("/hook"),
            pagerduty.url("/v2/enqueue"),
        );
        let slack_url = slack.url("/services/T/B/x");
        let env = move |name: &str| match name {
            "SIGNING" => Some(SIGNING_SECRET.to_string()),
            "SLACK_URL" => Some(slack_url.clone()),
            "PD_KEY" => Some("R0UTINGKEY".to_string()),
            _ => None,
        };
        let destinations: Destinations = DestinationsFile::parse("destinations.toml", &file)
            .unwrap()
            .resolve(&EnvSecrets(env))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Faulty {
            inner: FileStore::new(dir.path()),
            faults: Arc::default(),
        };
        let transport = HttpTransport::new(NoTopics);
        Detector {
            sink: Sink {
                dispatch: Dispatch::new(store.clone(), destinations, transport),
                written: Mutex::default(),
            },
            _dir: dir,
            store,
            engine: OneAlertPerWindow::default(),
            webhook,
            slack,
            pagerduty,
        }
    }

    /// One scheduled run at `now`: the rule's due windows, then a delivery pass; the rule's
    /// error (an injected fault) and the pass.
    async fn run(&self, now: DateTime<Utc>) -> (Option<String>, Deliveries) {
        let (mut outcomes, deliveries) = run_scheduled_and_deliver(
            &[rule()],
            &self.engine,
            &self.store,
            &self.sink,
            now,
            Mode::Scheduled { max_windows: 12 },
        )
        .await;
        assert_eq!(outcomes.len(), 1);
        (outcomes.remove(0).report.error, deliveries)
    }

    async fn answer(&self, answer: Answer) {
        for receiver in [&self.webhook, &self.slack, &self.pagerduty] {
            receiver.answer(answer).await;
        }
    }

    /// The alert ids the table has.
    fn alert_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sink
            .written
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.alertid.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Alert id → how many times each receiver accepted it (200), by destination.
    fn accepted(&self) -> BTreeMap<&'static str, BTreeMap<String, usize>> {
        let mut all = BTreeMap::new();
        for (name, receiver, pointer) in [
            ("hook", &self.webhook, "/alert/alertid"),
            ("slack", &self.slack, "/blocks/3/elements/0/text"),
            ("pd", &self.pagerduty, "/dedup_key"),
        ] {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for received in receiver.received().iter().filter(|r| r.status == 200) {
                let value = received.json();
                let id = value.pointer(pointer).and_then(|v| v.as_str()).unwrap();
                // Slack's context line: "alert <id> | <link>".
                let id = id.trim_start_matches("alert ").split(' ').next().unwrap();
                *counts.entry(id.to_string()).or_default() += 1;
            }
            all.insert(name, counts);
        }
        all
    }

    /// Each alert of the table accepted exactly once by each destination.
    fn assert_exactly_once(&self) {
        let ids = self.alert_ids();
        assert!(!ids.is_empty());
        let once: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
        for (destination, counts) in self.accepted() {
            assert_eq!(counts, once, "{destination}");
        }
    }

    async fn statuses(&self) -> Vec<Status> {
        self.sink
            .dispatch
            .outbox()
            .deliveries()
            .await
            .unwrap()
            .iter()
            .map(|d| d.status)
            .collect()
    }
}

#[tokio::test]
async fn an_outage_of_every_destination_delays_alerts_but_delivers_each_exactly_once() {
    let detector = Detector::start().await;
    // A run every 5 minutes; the destinations refuse connections, then answer 500, then 429
    // with Retry-After, then come back.
    let script = [
        (0, Answer::Down),
        (3, Answer::Status(500)),
        (6, Answer::TooMany { retry_after: 120 }),
        (8, Answer::Accept),
    ];
    let mut minute = 0;
    let mut retried = 0;
    for run in 0..40 {
        if let Some((_, answer)) = script.iter().find(|(at_run, _)| *at_run == run) {
            detector.answer(*answer).await;
        }
        let (error, deliveries) = detector.run(at(minute)).await;
        assert_eq!((error, &deliveries.error), (None, &None));
        retried += deliveries
            .destinations
            .values()
            .map(|c| c.retried)
            .sum::<usize>();
        minute += 5;
        if run >= 12 && deliveries.destinations.values().all(|c| c.pending == 0) {
            break;
        }
    }
    assert!(retried > 0, "the outage made deliveries fail");
    assert!(detector.alert_ids().len() >= 12, "a new alert every run");
    detector.assert_exactly_once();
    assert!(
        detector
            .statuses()
            .await
            .iter()
            .all(|s| *s == Status::Delivered)
    );
    // Every kind of failure was seen by the receivers before they accepted.
    let statuses: Vec<u16> = detector
        .webhook
        .received()
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.contains(&500) && statuses.contains(&429),
        "{statuses:?}"
    );

    // What the webhook got: the idempotency key is the delivery id (the same on every attempt),
    // the signature verifies, the custom header is there.
    let outbox = detector.sink.dispatch.outbox().deliveries().await.unwrap();
    for received in detector.webhook.received() {
        let request = &received.request;
        let key = request.header(IDEMPOTENCY_HEADER).unwrap();
        let delivery = outbox.iter().find(|d| d.id == key).expect("a delivery id");
        assert_eq!(delivery.destination, "hook");
        assert_eq!(
            request.header(SIGNATURE_HEADER).unwrap(),
            signature(&Secret::new(SIGNING_SECRET), &request.body)
        );
        assert_eq!(request.header("X-Team"), Some("soc"));
    }
    for received in detector.slack.received() {
        assert!(received.request.header(IDEMPOTENCY_HEADER).is_some());
        assert_eq!(received.request.path, "/services/T/B/x");
    }
    for received in detector.pagerduty.received() {
        assert_eq!(received.json()["routing_key"], "R0UTINGKEY");
    }
}

#[tokio::test]
async fn a_run_stopped_between_sending_and_recording_sends_again_once_with_the_same_key() {
    let detector = Detector::start().await;
    detector.run(at(0)).await;
    // The next run raises an alert; recording its delivery to the webhook fails (the run
    // "dies" there, after the webhook acknowledged it).
    detector.store.inject(Fault {
        name: OUTBOX_DOCUMENT,
        when: When::Adds("\"status\":\"delivered\""),
        times: 1,
    });
    let (_, stopped) = detector.run(at(5)).await;
    assert!(
        stopped.error.as_deref().unwrap().contains("injected fault"),
        "{stopped:?}"
    );
    // Later runs send it again, with the same key, and record it.
    detector.run(at(10)).await;
    detector.run(at(15)).await;
    let outbox = detector.sink.dispatch.outbox().deliveries().await.unwrap();
    assert!(
        outbox.iter().all(|d| d.status == Status::Delivered),
        "{outbox:?}"
    );
    let mut sightings: BTreeMap<String, usize> = BTreeMap::new();
    for received in [&detector.webhook, &detector.slack] {
        for request in received.received() {
            let key = request
                .request
                .header(IDEMPOTENCY_HEADER)
                .unwrap()
                .to_string();
            *sightings.entry(key).or_default() += 1;
        }
    }
    assert!(sightings.values().all(|&n| n <= 2), "{sightings:?}");
    assert_eq!(
        sightings.values().filter(|&&n| n == 2).count(),
        1,
        "exactly the delivery whose record failed was sent twice: {sightings:?}"
    );
    // PagerDuty received every alert once (its delivery was not the one that failed).
    assert_eq!(detector.accepted()["pd"].len(), detector.alert_ids().len());
}

/// The issue's fault sequence and its neighbours, one injected fault at a time: whatever step
/// fails, the alert is delivered by a later run, exactly once.
#[tokio::test]
async fn a_fault_at_any_step_of_publishing_loses_no_alert_and_duplicates_none() {
    // Each case: the faults of the run that raises the alert, and what the destinations do.
    let cases: [(&str, Vec<Fault>, Answer); 5] = [
        (
            // The rule's state cannot be saved after the handover (an S3 5xx): the alert is
            // still in the saved state, and handed over again next run, which adds nothing.
            "the save that clears the handed-over alerts fails",
            vec![Fault {
                name: "r.json",
                when: When::Adds("\"unpublished\": []"),
                times: 1,
            }],
            Answer::Accept,
        ),
        (
            // The issue's sequence: publishing fails, and the save that would put the alert
            // back fails too. The alert was saved with the watermark that passed it and stays
            // there until a handover succeeds: no save puts it back, because none took it out.
            "the handover fails, and so would the save putting the alert back",
            vec![
                Fault {
                    name: OUTBOX_DOCUMENT,
                    when: When::Adds("\"status\":\"pending\""),
                    times: 1,
                },
                Fault {
                    name: "r.json",
                    when: When::PutsBack,
                    times: 1,
                },
            ],
            Answer::Accept,
        ),
        ("the send fails", vec![], Answer::Status(503)),
        (
            "recording the claim fails",
            vec![Fault {
                name: OUTBOX_DOCUMENT,
                when: When::Adds("\"attempts\":1"),
                times: 1,
            }],
            Answer::Accept,
        ),
        (
            "recording the answer fails",
            vec![Fault {
                name: OUTBOX_DOCUMENT,
                when: When::Adds("\"status\":\"delivered\""),
                times: 1,
            }],
            Answer::Accept,
        ),
    ];
    for (case, faults, answer) in cases {
        let detector = Detector::start().await;
        detector.run(at(0)).await;
        for fault in faults {
            detector.store.inject(fault);
        }
        detector.answer(answer).await;
        detector.run(at(5)).await;
        detector.answer(Answer::Accept).await;
        // Later runs at the same time raise no new alert; they retry what is due.
        for minute in [10, 15, 20] {
            // A fault still armed may fail the rule's save in these runs, never the pass.
            let (_, deliveries) = detector.run(at(minute)).await;
            assert_eq!(deliveries.error, None, "{case}");
        }
        let ids = detector.alert_ids();
        assert!(!ids.is_empty(), "{case}");
        let accepted = detector.accepted();
        for (destination, counts) in &accepted {
            // The webhook and Slack may see a resend whose first answer was not recorded;
            // they drop it by its Idempotency-Key. PagerDuty drops it by dedup_key.
            for id in &ids {
                let n = counts.get(id).copied().unwrap_or(0);
                assert!(
                    (1..=2).contains(&n),
                    "{case}: {destination} accepted alert {id} {n} times"
                );
            }
        }
        // Distinct deliveries, each recorded delivered: exactly once in effect.
        let outbox = detector.sink.dispatch.outbox().deliveries().await.unwrap();
        assert_eq!(outbox.len(), ids.len() * 3, "{case}: {outbox:?}");
        assert!(
            outbox.iter().all(|d| d.status == Status::Delivered),
            "{case}: {outbox:?}"
        );
        if !case.starts_with("recording the answer") {
            detector.assert_exactly_once();
        }
    }
}
