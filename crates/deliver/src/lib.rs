//! Alert delivery: where alerts go ([`config`], the destinations file), what each destination
//! receives ([`body`]), how it is sent ([`http`]), and the [`outbox`] that keeps every alert ×
//! destination as a delivery until it is acknowledged or given up, so that a run that fails
//! or stops anywhere loses no alert and sends none twice in effect.
//!
//! The detector's alert sinks (the Lambda's and local mode's) hand alerts over with
//! [`Dispatch::hand_over`] and send with [`Dispatch::deliver`].

pub mod body;
pub mod config;
pub mod dispatch;
pub mod http;
pub mod outbox;

pub use config::{Destinations, DestinationsFile, EnvSecrets, Secret, SecretRef, SecretSource};
pub use dispatch::Dispatch;
pub use http::{HttpTransport, SendError, TopicPublisher, Transport};
pub use outbox::{Delivery, Outbox, Status};
