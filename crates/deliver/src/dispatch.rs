//! What an alert sink needs for delivery, in one value: the destinations, the outbox beside the
//! detector's state, and a transport. The Lambda's sink and local mode's each hold one as their
//! [`AlertDelivery`].

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lakewatch_detect::{Alert, AlertDelivery, Deliveries, Rule, UnpublishedAlert};
use lakewatch_lake::versioned::VersionedStore;

use crate::config::Destinations;
use crate::http::Transport;
use crate::outbox::{Delivery, Outbox};

pub struct Dispatch<V, T> {
    outbox: Outbox<V>,
    destinations: Destinations,
    transport: T,
    deadline: Mutex<Option<Instant>>,
}

impl<V: VersionedStore, T: Transport> Dispatch<V, T> {
    /// Deliveries to `destinations` through `transport`, their outbox in `store` (the
    /// detector's state store).
    pub fn new(store: V, destinations: Destinations, transport: T) -> Self {
        Dispatch {
            outbox: Outbox::new(store, destinations.retry),
            destinations,
            transport,
            deadline: Mutex::new(None),
        }
    }

    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    pub fn outbox(&self) -> &Outbox<V> {
        &self.outbox
    }

    /// The delivery pass starts no send after `deadline` (the Lambda's, less a margin).
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        *self.deadline.lock().expect("not poisoned") = deadline;
    }
}

impl<V: VersionedStore, T: Transport> AlertDelivery for Dispatch<V, T> {
    /// Whether any destination is configured.
    fn publishes(&self) -> bool {
        !self.destinations.destinations.is_empty()
    }

    /// Puts a delivery of each alert to each of its routed destinations into the outbox
    /// (those already there are left as they are).
    async fn hand_over(
        &self,
        rule: &Rule,
        alerts: &[UnpublishedAlert],
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let mut deliveries = Vec::new();
        for unpublished in alerts {
            let alert: Alert = serde_json::from_str(&unpublished.line).map_err(|e| {
                format!(
                    "rule {}: an unpublished alert is not an alert ({e})",
                    rule.id
                )
            })?;
            for destination in self
                .destinations
                .route(&rule.id, &alert.severity, &rule.tags)
            {
                deliveries.push(Delivery::new(
                    &destination.name,
                    &rule.id,
                    &rule.title,
                    &alert.alertid,
                    &unpublished.line,
                    now,
                ));
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        self.outbox.add(deliveries).await.map(|_| ())
    }

    /// One delivery pass ([`Outbox::run`]).
    async fn deliver(&self, now: DateTime<Utc>) -> Deliveries {
        let deadline = *self.deadline.lock().expect("not poisoned");
        self.outbox
            .run(&self.destinations, &self.transport, now, deadline)
            .await
    }
}
