//! The delivery outbox: every alert × destination is a [`Delivery`] with its state, kept in one
//! document of the detector's [`VersionedStore`] ([`OUTBOX_DOCUMENT`]) and written with
//! compare-and-swap.
//!
//! Why the effect is exactly once:
//! - An alert enters the outbox before it leaves the rule's state (the runner hands it over,
//!   then saves the state without it), so no failure in between loses it; a handover repeated
//!   after a failed save adds nothing, as a delivery's id is derived from alert id and
//!   destination.
//! - A delivery is claimed (attempt counted, next attempt moved past a backoff) before it is
//!   sent, and recorded after: a run that dies between sending and recording leaves it claimed,
//!   and a later run sends it again with the same idempotency key (`Idempotency-Key`,
//!   PagerDuty's `dedup_key`), which the destination uses to drop the copy. Two overlapping runs
//!   cannot both claim it: the second claim's write is refused as stale.
//! - A delivery that keeps failing is retried with exponential backoff (at least what a 429's
//!   `Retry-After` asks) until its give-up time, then stays visible as given up.
//!
//! The document stays small: delivered and given-up deliveries are forgotten after
//! [`RetryPolicy::keep_done`].

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lakewatch_detect::{Deliveries, DeliveryCounts};
use lakewatch_lake::layout::OUTBOX_DOCUMENT;
use lakewatch_lake::versioned::{VersionedStore, WriteError};
use serde::{Deserialize, Serialize};

use crate::config::{Destinations, RetryPolicy};
use crate::http::{SendError, Transport};

/// How often a write refused as stale is tried again on the re-read document before the pass
/// gives up (another run keeps writing the outbox).
const CAS_TRIES: usize = 5;

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not attempted yet, or sent by a run that stopped before recording the answer.
    Pending,
    /// The last attempt failed ([`Delivery::last_error`]); retried at
    /// [`Delivery::next_attempt`].
    Failed,
    /// The destination acknowledged it.
    Delivered,
    /// Still failing after the give-up time; kept (visible) until forgotten.
    GivenUp,
}

/// One alert to one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// From alert id and destination: the same for every handover and attempt, and the
    /// idempotency key destinations see.
    pub id: String,
    pub destination: String,
    pub alert_id: String,
    pub rule: String,
    /// The rule's title, for messages people read.
    pub title: String,
    /// The alert as the alerts table stores it (one JSON line).
    pub alert: String,
    /// When it was handed over; the give-up time counts from here.
    pub created: DateTime<Utc>,
    pub status: Status,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// A new pending delivery of `alert_line` (alert `alert_id` of rule `rule`) to `destination`.
    pub fn new(
        destination: &str,
        rule: &str,
        title: &str,
        alert_id: &str,
        alert_line: &str,
        now: DateTime<Utc>,
    ) -> Delivery {
        Delivery {
            id: delivery_id(alert_id, destination),
            destination: destination.to_string(),
            alert_id: alert_id.to_string(),
            rule: rule.to_string(),
            title: title.to_string(),
            alert: alert_line.to_string(),
            created: now,
            status: Status::Pending,
            attempts: 0,
            next_attempt: now,
            last_error: None,
            done_at: None,
        }
    }

    /// Whether a pass at `now` sends it.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, Status::Pending | Status::Failed) && self.next_attempt <= now
    }

    fn is_done(&self) -> bool {
        matches!(self.status, Status::Delivered | Status::GivenUp)
    }

    /// Records the answer of the attempt just made.
    fn record(&mut self, answer: &Result<(), SendError>, now: DateTime<Utc>, retry: &RetryPolicy) {
        match answer {
            Ok(()) => {
                self.status = Status::Delivered;
                self.last_error = None;
                self.done_at = Some(now);
            }
            Err(error) => {
                self.last_error = Some(error.reason.clone());
                if now - self.created >= retry.give_up_after {
                    self.status = Status::GivenUp;
                    self.done_at = Some(now);
                } else {
                    self.status = Status::Failed;
                    let asked = error
                        .retry_after
                        .and_then(|wait| chrono::TimeDelta::from_std(wait).ok())
                        .unwrap_or_default();
                    self.next_attempt = now + retry.backoff(self.attempts).max(asked);
                }
            }
        }
    }
}

/// `blake3(alert id, destination)`, 32 hex digits.
fn delivery_id(alert_id: &str, destination: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(alert_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(destination.as_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    deliveries: Vec<Delivery>,
}

impl Document {
    fn find_mut(&mut self, id: &str) -> Option<&mut Delivery> {
        self.deliveries.iter_mut().find(|d| d.id == id)
    }
}

/// The outbox in a versioned store.
#[derive(Debug, Clone)]
pub struct Outbox<V> {
    store: V,
    retry: RetryPolicy,
}

impl<V: VersionedStore> Outbox<V> {
    pub fn new(store: V, retry: RetryPolicy) -> Self {
        Outbox { store, retry }
    }

    /// Every delivery the outbox holds, pending or done (until forgotten).
    pub async fn deliveries(&self) -> Result<Vec<Delivery>, String> {
        Ok(self.read().await?.0.deliveries)
    }

    async fn read(&self) -> Result<(Document, Option<String>), String> {
        let location = || self.store.location(OUTBOX_DOCUMENT);
        match self
            .store
            .read(OUTBOX_DOCUMENT)
            .await
            .map_err(|e| format!("{}: {e}", location()))?
        {
            None => Ok((Document::default(), None)),
            Some(read) => {
                let document = serde_json::from_slice(&read.bytes).map_err(|e| {
                    format!(
                        "{}: not a delivery outbox ({e}); fix it, or move it away to start \
                         with an empty one (its deliveries are then not sent)",
                        location()
                    )
                })?;
                Ok((document, Some(read.version)))
            }
        }
    }

    async fn write(
        &self,
        document: &Document,
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        let bytes = serde_json::to_vec(document).expect("deliveries serialize");
        self.store
            .write(OUTBOX_DOCUMENT, bytes, expected)
            .await
            .map_err(|e| match e {
                WriteError::Failed(reason) => WriteError::Failed(format!(
                    "{}: {reason}",
                    self.store.location(OUTBOX_DOCUMENT)
                )),
                conflict => conflict,
            })
    }

    /// Adds the deliveries the outbox does not hold yet (by id); returns how many it added.
    /// `Ok` means they are stored.
    pub async fn add(&self, deliveries: Vec<Delivery>) -> Result<usize, String> {
        for _ in 0..CAS_TRIES {
            let (mut document, version) = self.read().await?;
            let before = document.deliveries.len();
            for delivery in &deliveries {
                if !document.deliveries.iter().any(|d| d.id == delivery.id) {
                    document.deliveries.push(delivery.clone());
                }
            }
            let added = document.deliveries.len() - before;
            if added == 0 {
                return Ok(0);
            }
            match self.write(&document, version.as_deref()).await {
                Ok(_) => return Ok(added),
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Failed(reason)) => return Err(reason),
            }
        }
        Err(stale_error())
    }

    /// Applies `change` to delivery `id` and writes the outbox; on a stale write, re-reads it
    /// and applies `change` again. `Ok(false)`: the delivery is gone, or `change` declined.
    async fn update(
        &self,
        document: &mut Document,
        version: &mut Option<String>,
        id: &str,
        mut change: impl FnMut(&mut Delivery) -> bool,
    ) -> Result<bool, String> {
        for _ in 0..CAS_TRIES {
            let Some(delivery) = document.find_mut(id) else {
                return Ok(false);
            };
            if !change(delivery) {
                return Ok(false);
            }
            match self.write(document, version.as_deref()).await {
                Ok(written) => {
                    *version = Some(written);
                    return Ok(true);
                }
                Err(WriteError::Conflict) => (*document, *version) = self.read().await?,
                Err(WriteError::Failed(reason)) => return Err(reason),
            }
        }
        Err(stale_error())
    }

    /// One delivery pass at `now`: sends every due delivery (claimed before, recorded after),
    /// until done or `deadline`; forgets deliveries done longer ago than
    /// [`RetryPolicy::keep_done`]. Never fails: a store error ends the pass early and is in
    /// [`Deliveries::error`] (the next pass goes on from what was recorded).
    pub async fn run<T: Transport>(
        &self,
        destinations: &Destinations,
        transport: &T,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Deliveries {
        let mut counts: BTreeMap<String, DeliveryCounts> = destinations
            .destinations
            .iter()
            .map(|d| (d.name.clone(), DeliveryCounts::default()))
            .collect();
        let mut error = None;
        match self.read().await {
            Err(e) => error = Some(e),
            Ok((mut document, mut version)) => {
                let keep = self.retry.keep_done;
                let before = document.deliveries.len();
                document
                    .deliveries
                    .retain(|d| !(d.is_done() && d.done_at.is_some_and(|at| now - at > keep)));
                if document.deliveries.len() < before {
                    // Forgetting can wait for another pass if another run wrote meanwhile.
                    match self.write(&document, version.as_deref()).await {
                        Ok(written) => version = Some(written),
                        Err(WriteError::Conflict) => {}
                        Err(WriteError::Failed(reason)) => error = Some(reason),
                    }
                }
                let due: Vec<String> = document
                    .deliveries
                    .iter()
                    .filter(|d| d.is_due(now))
                    .map(|d| d.id.clone())
                    .collect();
                for id in due {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        break;
                    }
                    match self
                        .attempt(
                            &mut document,
                            &mut version,
                            &id,
                            destinations,
                            transport,
                            now,
                        )
                        .await
                    {
                        Ok(Some(delivery)) => {
                            let entry = counts.entry(delivery.destination.clone()).or_default();
                            match delivery.status {
                                Status::Delivered => entry.delivered += 1,
                                Status::GivenUp => {
                                    entry.given_up += 1;
                                    tracing::error!(
                                        destination = %delivery.destination,
                                        alert = %delivery.alert_id,
                                        attempts = delivery.attempts,
                                        error = delivery.last_error.as_deref().unwrap_or_default(),
                                        "delivery given up"
                                    );
                                }
                                _ => entry.retried += 1,
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                for delivery in document.deliveries.iter().filter(|d| !d.is_done()) {
                    counts
                        .entry(delivery.destination.clone())
                        .or_default()
                        .pending += 1;
                }
            }
        }
        Deliveries {
            destinations: counts,
            error,
        }
    }

    /// Claims, sends and records one delivery; `None` when another run claimed it first.
    async fn attempt<T: Transport>(
        &self,
        document: &mut Document,
        version: &mut Option<String>,
        id: &str,
        destinations: &Destinations,
        transport: &T,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, String> {
        let retry = self.retry;
        let claimed = self
            .update(document, version, id, |d| {
                if !d.is_due(now) {
                    return false;
                }
                d.attempts += 1;
                d.next_attempt = now + retry.backoff(d.attempts);
                true
            })
            .await?;
        if !claimed {
            return Ok(None);
        }
        let delivery = document
            .find_mut(id)
            .expect("a claimed delivery is in the document")
            .clone();
        let answer = match destinations.get(&delivery.destination) {
            Some(destination) => transport.send(destination, &delivery).await,
            None => Err(SendError::new(format!(
                "destination {:?} is no longer in the destinations file",
                delivery.destination
            ))),
        };
        if let Err(error) = &answer {
            tracing::warn!(destination = %delivery.destination, alert = %delivery.alert_id, error = %error.reason, "delivery failed");
        }
        self.update(document, version, id, |d| {
            d.record(&answer, now, &retry);
            true
        })
        .await?;
        Ok(document.find_mut(id).map(|d| d.clone()))
    }
}

fn stale_error() -> String {
    format!(
        "the delivery outbox ({OUTBOX_DOCUMENT}) changed {CAS_TRIES} times while this run wrote \
         it: another detector run is active; this run leaves delivery to it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Destinations;
    use crate::http::Transport;
    use lakewatch_lake::versioned::FileStore;
    use lakewatch_testkit::block_on;
    use std::sync::Mutex;
    use std::time::Duration;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::TimeDelta::minutes(minute)
    }

    /// Answers from a script, one per send (then success), recording the ids it saw.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<(), SendError>>>,
        seen: Mutex<Vec<String>>,
    }

    impl Transport for Scripted {
        async fn send(
            &self,
            _: &crate::config::Destination,
            delivery: &Delivery,
        ) -> Result<(), SendError> {
            self.seen.lock().unwrap().push(delivery.id.clone());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        }
    }

    fn delivery(alert: &str) -> Delivery {
        Delivery::new("alerts-topic", "r", "R", alert, "{}", at(0))
    }

    #[test]
    fn handing_the_same_alert_over_again_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(FileStore::new(dir.path()), RetryPolicy::default());
        assert_eq!(
            block_on(outbox.add(vec![delivery("a"), delivery("b")])),
            Ok(2)
        );
        assert_eq!(
            block_on(outbox.add(vec![delivery("b"), delivery("c")])),
            Ok(1)
        );
        assert_eq!(block_on(outbox.deliveries()).unwrap().len(), 3);
    }

    #[test]
    fn failures_back_off_honour_retry_after_and_give_up_after_the_give_up_time() {
        let dir = tempfile::tempdir().unwrap();
        let retry = RetryPolicy {
            give_up_after: chrono::TimeDelta::minutes(30),
            ..RetryPolicy::default()
        };
        let outbox = Outbox::new(FileStore::new(dir.path()), retry);
        let destinations = Destinations {
            retry,
            ..Destinations::topic("t")
        };
        block_on(outbox.add(vec![delivery("a")])).unwrap();
        let transport = Scripted::default();
        *transport.answers.lock().unwrap() = vec![
            Err(SendError::new("HTTP 500")),
            Err(SendError {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(600)),
            }),
            Err(SendError::new("connection refused")),
        ];
        let pass = |minute| block_on(outbox.run(&destinations, &transport, at(minute), None));
        let first = pass(0);
        assert_eq!(first.destinations["alerts-topic"].retried, 1);
        let stored = &block_on(outbox.deliveries()).unwrap()[0];
        assert_eq!((stored.status, stored.attempts), (Status::Failed, 1));
        assert_eq!(stored.next_attempt, at(0) + chrono::TimeDelta::seconds(30));
        assert_eq!(stored.last_error.as_deref(), Some("HTTP 500"));
        // Not due before its backoff.
        assert_eq!(pass(0).destinations["alerts-topic"].pending, 1);
        assert_eq!(transport.seen.lock().unwrap().len(), 1);
        // The 429 asks for 10 minutes, more than the backoff of one.
        pass(1);
        let stored = &block_on(outbox.deliveries()).unwrap()[0];
        assert_eq!(stored.next_attempt, at(11));
        assert_eq!(pass(10).destinations["alerts-topic"].retried, 0);
        // Past the give-up time, the next failure is the last.
        let last = pass(31);
        assert_eq!(last.destinations["alerts-topic"].given_up, 1);
        let stored = &block_on(outbox.deliveries()).unwrap()[0];
        assert_eq!((stored.status, stored.attempts), (Status::GivenUp, 3));
        // Given up, it stays visible, and is never sent again; forgotten after keep_done.
        assert_eq!(
            pass(60).destinations["alerts-topic"],
            DeliveryCounts::default()
        );
        assert_eq!(block_on(outbox.deliveries()).unwrap().len(), 1);
        assert_eq!(transport.seen.lock().unwrap().len(), 3);
        assert!(pass(60 * 24 * 8).error.is_none());
        assert!(block_on(outbox.deliveries()).unwrap().is_empty());
    }

    #[test]
    fn a_delivery_to_a_destination_no_longer_configured_fails_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(FileStore::new(dir.path()), RetryPolicy::default());
        let mut gone = delivery("a");
        gone.destination = "old-hook".into();
        block_on(outbox.add(vec![gone])).unwrap();
        let pass =
            block_on(outbox.run(&Destinations::topic("t"), &Scripted::default(), at(0), None));
        assert_eq!(pass.destinations["old-hook"].retried, 1);
        let stored = &block_on(outbox.deliveries()).unwrap()[0];
        assert_eq!(
            stored.last_error.as_deref(),
            Some("destination \"old-hook\" is no longer in the destinations file")
        );
    }
}
