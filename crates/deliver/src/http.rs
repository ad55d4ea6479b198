//! Sending one delivery: an HTTPS POST for webhooks, Slack and PagerDuty (hyper with rustls,
//! the HTTP stack the AWS SDK links anyway), and a topic publisher for SNS destinations (SNS on
//! AWS, the topic file locally), which the caller supplies.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body;
use crate::config::{Destination, Target};
use crate::outbox::Delivery;

/// How long one request may take before it counts as failed (and is retried later).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an error response's body is kept in the delivery's error.
const ERROR_BODY_MAX: usize = 200;

/// Why a send failed, and how long the destination asked to wait (`Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Never contains a secret: no URL, no key.
    pub reason: String,
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(reason: impl Into<String>) -> SendError {
        SendError {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Sends one delivery to its destination; `Ok` only when the destination acknowledged it.
pub trait Transport {
    fn send(
        &self,
        destination: &Destination,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), SendError>>;
}

/// Publishes to a topic: SNS on AWS, the topic file locally.
pub trait TopicPublisher {
    fn publish(&self, topic_arn: &str, message: &str) -> impl Future<Output = Result<(), String>>;
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// HTTP(S) for webhooks, Slack and PagerDuty; `topics` for SNS destinations.
pub struct HttpTransport<P> {
    /// Built at the first HTTP send: a detector that only publishes to a topic never needs
    /// the system's root certificates, and a machine without them fails only its HTTP
    /// deliveries (retried, then given up), with the reason.
    client: OnceLock<Result<HttpsClient, String>>,
    topics: P,
    timeout: Duration,
}

impl<P: TopicPublisher> HttpTransport<P> {
    pub fn new(topics: P) -> Self {
        HttpTransport {
            client: OnceLock::new(),
            topics,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// A client trusting the system's root certificates.
    fn client(&self) -> Result<&HttpsClient, SendError> {
        self.client
            .get_or_init(|| {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(https))
            })
            .as_ref()
            .map_err(|e| SendError::new(e.clone()))
    }

    /// POSTs `body` to `url`; 2xx is success, anything else an error with the status, the
    /// start of the answer and its `Retry-After`.
    async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), SendError> {
        let mut request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            // The URL is not shown: a webhook URL often is the secret.
            .map_err(|_| SendError::new("the destination's url is not a valid URL"))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::new(format!("header name {name:?} is not valid")))?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                SendError::new(format!("header {name} has a value HTTP cannot carry"))
            })?;
            request.headers_mut().insert(name, value);
        }
        let response = tokio::time::timeout(self.timeout, self.client()?.request(request))
            .await
            .map_err(|_| SendError::new(format!("no answer within {} s", self.timeout.as_secs())))?
            .map_err(|e| SendError::new(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned())
            .unwrap_or_default();
        let answer: String = answer.chars().take(ERROR_BODY_MAX).collect();
        Err(SendError {
            reason: format!("HTTP {status}: {}", answer.trim()),
            retry_after,
        })
    }
}

impl<P: TopicPublisher> Transport for HttpTransport<P> {
    async fn send(&self, destination: &Destination, delivery: &Delivery) -> Result<(), SendError> {
        let idempotency = (body::IDEMPOTENCY_HEADER.to_string(), delivery.id.clone());
        let json = |value: serde_json::Value| serde_json::to_vec(&value).expect("JSON serializes");
        match &destination.target {
            Target::Webhook {
                url,
                signing_secret,
                headers,
            } => {
                let body = body::webhook(delivery).map_err(SendError::new)?;
                let mut all = headers.clone();
                all.push(idempotency);
                if let Some(secret) = signing_secret {
                    all.push((
                        body::SIGNATURE_HEADER.to_string(),
                        body::signature(secret, &body),
                    ));
                }
                self.post(url.expose(), all, body).await
            }
            Target::Slack { url, link } => {
                let message = body::slack(delivery, link.as_deref()).map_err(SendError::new)?;
                self.post(url.expose(), vec![idempotency], json(message))
                    .await
            }
            Target::PagerDuty {
                url,
                routing_key,
                link,
            } => {
                // PagerDuty de-duplicates by the body's dedup_key (the alert id).
                let event = body::pagerduty(delivery, routing_key, link.as_deref())
                    .map_err(SendError::new)?;
                self.post(url, Vec::new(), json(event)).await
            }
            Target::Sns { topic_arn } => self
                .topics
                .publish(topic_arn, &delivery.alert)
                .await
                .map_err(SendError::new),
        }
    }
}

/// An error and its causes, `a: b: c` (hyper's own message alone says only "client error").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
