//! Sending records to a Firehose stream with `PutRecordBatch`, without ever losing one silently.
//!
//! Two things make this harder than one API call:
//!
//! - A request is bounded three ways at once (500 records, 4 MiB of data, 1,000 KiB per
//!   record). [`Batcher`] is the only way to build a [`Batch`], so a batch that breaks a limit
//!   cannot be sent, and a record over the per-record limit is handed back ([`Oversize`]) for the
//!   caller to put in its error location: it is never cut.
//! - `PutRecordBatch` succeeds as a call while refusing some of its entries (`FailedPutCount`,
//!   an `ErrorCode` per entry in `RequestResponses`), and whole calls are throttled when the
//!   stream is over its limits. [`FirehoseSender::send`] retries the refused entries alone, and
//!   throttled or failed calls, with exponential backoff and full jitter, a bounded number of
//!   times ([`RetryPolicy`]); what is still not accepted comes back in [`SendError::not_sent`],
//!   by the caller's own labels, so the caller can fail and say exactly which records are missing.
//!
//! The SDK's own retries are turned off on the client built by [`client`]: the loop here retries
//! the same errors with the same backoff, and two nested retry loops would multiply attempts and
//! hide the count from the logs.

use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_firehose::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchError;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use rand::Rng;

/// Most records in one `PutRecordBatch` request.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes of record data (before base64) in one request: 4 MiB.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes in one record (before base64): 1,000 KiB.
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// A Firehose client for `config`, with the SDK's retries off (see the module docs).
pub fn client(config: &SdkConfig) -> aws_sdk_firehose::Client {
    let firehose_config = aws_sdk_firehose::config::Builder::from(config)
        .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_firehose::Client::from_conf(firehose_config)
}

/// One record to send, with the caller's label for it (named when it could not be sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<L> {
    pub label: L,
    pub data: Vec<u8>,
}

/// Records that fit in one `PutRecordBatch` request; built only by [`Batcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<L> {
    entries: Vec<Entry<L>>,
    bytes: usize,
}

impl<L> Batch<L> {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch has no record (a [`Batcher`] never hands out an empty one).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of record data.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The records, in the order they were pushed.
    pub fn entries(&self) -> &[Entry<L>] {
        &self.entries
    }
}

/// A record too large for Firehose, handed back whole to go to the error location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "record is {size} bytes, over Firehose's limit of {MAX_RECORD_BYTES} bytes per record; \
     it was not sent (split the record at its producer)"
)]
pub struct Oversize<L> {
    pub size: usize,
    pub entry: Entry<L>,
}

/// Groups records into batches that respect all three `PutRecordBatch` limits.
#[derive(Debug)]
pub struct Batcher<L> {
    current: Batch<L>,
}

impl<L> Default for Batcher<L> {
    fn default() -> Self {
        Batcher {
            current: Batch::default(),
        }
    }
}

impl<L> Batcher<L> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record. Returns a batch that is ready to send: the previous records when this
    /// one does not fit beside them, or all of them when this one fills the batch.
    pub fn push(&mut self, entry: Entry<L>) -> Result<Option<Batch<L>>, Oversize<L>> {
        let size = entry.data.len();
        if size > MAX_RECORD_BYTES {
            return Err(Oversize { size, entry });
        }
        if self.current.bytes + size > MAX_BATCH_BYTES {
            let next = Batch {
                entries: vec![entry],
                bytes: size,
            };
            return Ok(Some(std::mem::replace(&mut self.current, next)));
        }
        self.current.bytes += size;
        self.current.entries.push(entry);
        if self.current.entries.len() == MAX_BATCH_RECORDS {
            return Ok(self.finish());
        }
        Ok(None)
    }

    /// The records not yet handed out, if any.
    pub fn finish(&mut self) -> Option<Batch<L>> {
        if self.current.entries.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.current))
    }
}

impl<L> Default for Batch<L> {
    fn default() -> Self {
        Batch {
            entries: Vec::new(),
            bytes: 0,
        }
    }
}

/// How refused entries and failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per record at most, the first included.
    pub attempts: u32,
    /// Backoff ceiling before the first retry; it doubles each retry.
    pub base_delay: Duration,
    /// Backoff ceiling never exceeds this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight calls, 100 ms doubling to at most 5 s: about 11 s of waiting at worst, well inside
    /// a Lambda timeout, and long enough for a throttled stream to recover.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first): "full jitter", a random time up
    /// to the exponential ceiling, so many senders throttled together do not retry together.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Some records of a batch were not accepted by Firehose after every attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} of {batch_len} record(s) not accepted by Firehose stream {stream} after {attempts} \
     attempt(s): {reason}; not sent: {}",
    not_sent.len(),
    list_labels(not_sent)
)]
pub struct SendError<L: fmt::Display> {
    pub stream: String,
    /// The labels of the records that were not accepted, in batch order.
    pub not_sent: Vec<L>,
    pub batch_len: usize,
    pub attempts: u32,
    /// The last refusal or error.
    pub reason: String,
}

/// Up to 20 labels, then how many more: enough to find them, short enough for one log line.
fn list_labels<L: fmt::Display>(labels: &[L]) -> String {
    const SHOWN: usize = 20;
    let mut text = labels
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if labels.len() > SHOWN {
        text.push_str(&format!(" and {} more", labels.len() - SHOWN));
    }
    text
}

/// What it took to deliver a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub records: usize,
    pub bytes: usize,
    /// Calls made, the first included.
    pub calls: u32,
    /// Entries refused by Firehose and sent again.
    pub refused: u64,
    /// Calls that failed as a whole (throttling, 5xx, network) and were made again.
    pub failed_calls: u32,
}

/// Sends batches to one Firehose stream.
#[derive(Debug, Clone)]
pub struct FirehoseSender {
    client: aws_sdk_firehose::Client,
    stream: String,
    retry: RetryPolicy,
}

impl FirehoseSender {
    pub fn new(
        client: aws_sdk_firehose::Client,
        stream: impl Into<String>,
        retry: RetryPolicy,
    ) -> Self {
        FirehoseSender {
            client,
            stream: stream.into(),
            retry,
        }
    }

    /// The delivery stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Sends a batch until every record is accepted or the attempts run out.
    ///
    /// Only the entries Firehose refused are sent again; a call that failed as a whole
    /// (throttling, service unavailable, a 5xx, a network error) is made again with the same
    /// entries. An error that retrying cannot fix (no such stream, access denied) stops at once.
    /// Either way the error names every record that was not accepted.
    pub async fn send<L: Clone + fmt::Display>(
        &self,
        batch: Batch<L>,
    ) -> Result<Delivered, SendError<L>> {
        let mut delivered = Delivered {
            records: batch.len(),
            bytes: batch.bytes,
            ..Delivered::default()
        };
        let batch_len = batch.len();
        let mut pending: Vec<(L, Record)> = Vec::with_capacity(batch_len);
        for entry in batch.entries {
            let record = Record::builder()
                .data(Blob::new(entry.data))
                .build()
                .expect("data is set");
            pending.push((entry.label, record));
        }
        loop {
            delivered.calls += 1;
            let reason = match self.put(&pending).await {
                Ok(refused) => {
                    let reason = refused.first().map(|(_, reason)| reason.clone());
                    delivered.refused += refused.len() as u64;
                    let mut refused_at = refused.into_iter().map(|(i, _)| i).peekable();
                    let mut index = 0;
                    pending.retain(|_| {
                        let keep = refused_at.next_if_eq(&index).is_some();
                        index += 1;
                        keep
                    });
                    match reason {
                        None => return Ok(delivered),
                        Some(reason) => reason,
                    }
                }
                Err(CallError::Transient(reason)) => {
                    delivered.failed_calls += 1;
                    reason
                }
                Err(CallError::Fatal(reason)) => {
                    return Err(self.not_sent(pending, batch_len, delivered.calls, reason));
                }
            };
            if delivered.calls >= self.retry.attempts {
                return Err(self.not_sent(pending, batch_len, delivered.calls, reason));
            }
            tracing::debug!(
                stream = %self.stream,
                pending = pending.len(),
                call = delivered.calls,
                %reason,
                "retrying records Firehose did not accept"
            );
            tokio::time::sleep(self.retry.delay(delivered.calls)).await;
        }
    }

    /// One `PutRecordBatch` call: the positions (in `pending`) of the refused entries, each with
    /// its reason, in order.
    async fn put<L>(&self, pending: &[(L, Record)]) -> Result<Vec<(usize, String)>, CallError> {
        let records = pending.iter().map(|(_, record)| record.clone()).collect();
        let output = self
            .client
            .put_record_batch()
            .delivery_stream_name(&self.stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(classify)?;
        let responses = output.request_responses();
        if responses.len() != pending.len() {
            // We cannot tell which were accepted: sending all again may duplicate some (they
            // keep their event ids), which beats losing any.
            let reason = format!(
                "Firehose answered {} entries for {} sent",
                responses.len(),
                pending.len()
            );
            return Ok((0..pending.len()).map(|i| (i, reason.clone())).collect());
        }
        Ok(responses
            .iter()
            .enumerate()
            .filter(|(_, response)| {
                response.error_code().is_some() || response.record_id().is_none()
            })
            .map(|(i, response)| {
                let reason = format!(
                    "{}: {}",
                    response.error_code().unwrap_or("no RecordId"),
                    response.error_message().unwrap_or("refused")
                );
                (i, reason)
            })
            .collect())
    }

    fn not_sent<L: fmt::Display>(
        &self,
        pending: Vec<(L, Record)>,
        batch_len: usize,
        attempts: u32,
        reason: String,
    ) -> SendError<L> {
        SendError {
            stream: self.stream.clone(),
            not_sent: pending.into_iter().map(|(label, _)| label).collect(),
            batch_len,
            attempts,
            reason,
        }
    }
}

/// Why a whole call failed, and whether another try can help.
#[derive(Debug)]
enum CallError {
    Transient(String),
    Fatal(String),
}

/// Codes Firehose and the AWS front end use for "slow down" or "try again".
const TRANSIENT_CODES: [&str; 7] = [
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "ThrottlingException",
    "Throttling",
    "InternalFailure",
    "InternalFailureException",
    "RequestTimeout",
];

fn classify<R: fmt::Debug>(error: SdkError<PutRecordBatchError, R>) -> CallError
where
    SdkError<PutRecordBatchError, R>: std::error::Error + 'static,
{
    let transient = match &error {
        SdkError::ServiceError(service) => {
            service.err().is_service_unavailable_exception()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    let message = DisplayErrorContext(&error).to_string();
    if transient {
        CallError::Transient(message)
    } else {
        CallError::Fatal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(label: u64, size: usize) -> Entry<u64> {
        Entry {
            label,
            data: vec![b'x'; size],
        }
    }

    /// Pushes every entry, then finishes: the batches in order.
    fn batches(entries: impl IntoIterator<Item = Entry<u64>>) -> Vec<Batch<u64>> {
        let mut batcher = Batcher::new();
        let mut out = Vec::new();
        for entry in entries {
            if let Some(batch) = batcher.push(entry).expect("no oversize record here") {
                out.push(batch);
            }
        }
        out.extend(batcher.finish());
        out
    }

    fn labels(batch: &Batch<u64>) -> Vec<u64> {
        batch.entries().iter().map(|e| e.label).collect()
    }

    #[test]
    fn batches_hold_at_most_500_records() {
        let out = batches((0..1001).map(|i| entry(i, 10)));
        assert_eq!(
            out.iter().map(Batch::len).collect::<Vec<_>>(),
            [500, 500, 1]
        );
        assert_eq!(labels(&out[2]), [1000]);
    }

    #[test]
    fn batches_hold_at_most_4_mib_of_data() {
        // Five records of 1,000 KiB: four fit in 4 MiB (4,000 KiB ≤ 4,096 KiB), the fifth does not.
        let out = batches((0..5).map(|i| entry(i, MAX_RECORD_BYTES)));
        assert_eq!(out.len(), 2);
        assert_eq!(labels(&out[0]), [0, 1, 2, 3]);
        assert_eq!(out[0].bytes(), 4 * MAX_RECORD_BYTES);
        assert_eq!(labels(&out[1]), [4]);
        assert!(out.iter().all(|b| b.bytes() <= MAX_BATCH_BYTES));
    }

    #[test]
    fn a_batch_may_be_exactly_4_mib() {
        let sizes = [MAX_RECORD_BYTES; 4]
            .into_iter()
            .chain([MAX_BATCH_BYTES - 4 * MAX_RECORD_BYTES, 1]);
        let out = batches(sizes.enumerate().map(|(i, size)| entry(i as u64, size)));
        assert_eq!(out[0].bytes(), MAX_BATCH_BYTES);
        assert_eq!(labels(&out[1]), [5]);
    }

    #[test]
    fn every_record_is_in_exactly_one_batch_in_order() {
        let sizes = (0..3000u64).map(|i| (i * 7919) as usize % 40_000);
        let out = batches(sizes.enumerate().map(|(i, size)| entry(i as u64, size)));
        let all: Vec<u64> = out.iter().flat_map(labels).collect();
        assert_eq!(all, (0..3000).collect::<Vec<_>>());
        assert!(out.iter().all(|b| b.len() <= MAX_BATCH_RECORDS));
        assert!(out.iter().all(|b| b.bytes() <= MAX_BATCH_BYTES));
        assert!(out.iter().all(|b| !b.is_empty()));
    }

    #[test]
    fn a_record_over_1000_kib_is_handed_back_whole_with_its_size() {
        let mut batcher = Batcher::new();
        assert_eq!(batcher.push(entry(1, MAX_RECORD_BYTES)).unwrap(), None);
        let oversize = batcher.push(entry(2, MAX_RECORD_BYTES + 1)).unwrap_err();
        assert_eq!(oversize.size, MAX_RECORD_BYTES + 1);
        assert_eq!(oversize.entry.data.len(), MAX_RECORD_BYTES + 1);
        assert_eq!(oversize.entry.label, 2);
        assert!(oversize.to_string().contains("over Firehose's limit"));
        // The batch is unaffected by the refused record.
        assert_eq!(labels(&batcher.finish().unwrap()), [1]);
        assert_eq!(batcher.finish(), None);
    }

    #[test]
    fn empty_input_gives_no_batch() {
        assert!(batches([]).is_empty());
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_jitter_below_it() {
        let policy = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for (retry, ceiling) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let delays: Vec<Duration> = (0..200).map(|_| policy.delay(retry)).collect();
            assert!(
                delays.iter().all(|d| *d <= Duration::from_millis(ceiling)),
                "retry {retry}: {delays:?}"
            );
            // Jitter: the waits are spread, not all equal.
            assert!(delays.iter().any(|d| *d != delays[0]), "retry {retry}");
        }
    }

    #[test]
    fn send_error_names_the_records_not_sent() {
        let error = SendError {
            stream: "s".into(),
            not_sent: (0..25u64).collect(),
            batch_len: 100,
            attempts: 3,
            reason: "ServiceUnavailableException: Slow down.".into(),
        };
        let text = error.to_string();
        assert!(text.starts_with("25 of 100 record(s) not accepted by Firehose stream s after 3"));
        assert!(text.contains("not sent: 0, 1, 2,"), "{text}");
        assert!(text.ends_with("19 and 5 more"), "{text}");
    }
}

/// The sender against a Firehose that refuses entries and throttles calls, through the real SDK.
#[cfg(test)]
mod sender_tests {
    use super::*;
    use lakewatch_testkit::fake_firehose::{FakeFirehose, FakeFirehoseConfig};

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 30,
        base_delay: Duration::from_micros(200),
        max_delay: Duration::from_millis(2),
    };

    async fn sender(fake: &FakeFirehose, retry: RetryPolicy) -> FirehoseSender {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(fake.endpoint_url())
            .test_credentials()
            .load()
            .await;
        FirehoseSender::new(client(&config), "events", retry)
    }

    /// Batches of `count` records `record-<i>`, labelled `i`.
    fn batches_of(count: u64) -> Vec<Batch<u64>> {
        let mut batcher = Batcher::new();
        let mut out = Vec::new();
        for i in 0..count {
            let data = format!("record-{i}").into_bytes();
            out.extend(batcher.push(Entry { label: i, data }).unwrap());
        }
        out.extend(batcher.finish());
        out
    }

    fn sorted(mut records: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        records.sort();
        records
    }

    #[tokio::test]
    async fn refused_entries_and_throttled_calls_are_retried_until_each_record_is_accepted_once() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            refuse_share: 0.3,
            throttle_share: 0.3,
            seed: 42,
            ..Default::default()
        })
        .unwrap();
        let sender = sender(&fake, FAST).await;
        let mut refused = 0;
        let mut failed_calls = 0;
        for batch in batches_of(1200) {
            let delivered = sender.send(batch).await.expect("every record accepted");
            refused += delivered.refused;
            failed_calls += delivered.failed_calls;
        }
        let expected: Vec<Vec<u8>> = (0..1200)
            .map(|i| format!("record-{i}").into_bytes())
            .collect();
        assert_eq!(sorted(fake.accepted()), sorted(expected));
        let stats = fake.stats();
        assert!(
            stats.refused_entries > 0 && stats.throttled_requests > 0,
            "{stats:?}"
        );
        assert_eq!(refused, stats.refused_entries);
        assert_eq!(u64::from(failed_calls), stats.throttled_requests);
    }

    #[tokio::test]
    async fn retries_send_only_the_refused_entries() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            refuse_share: 0.5,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let sender = sender(&fake, FAST).await;
        let batch = batches_of(100).remove(0);
        sender.send(batch).await.unwrap();
        let stats = fake.stats();
        // Each entry is sent once, plus once per refusal: nothing accepted is sent again.
        assert_eq!(stats.accepted_entries, 100);
        assert!(stats.requests > 1);
        assert_eq!(fake.accepted().len(), 100);
    }

    #[tokio::test]
    async fn records_never_accepted_are_named_after_the_bounded_attempts() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            always_refuse: Some(b"record-7".to_vec()),
            ..Default::default()
        })
        .unwrap();
        let retry = RetryPolicy {
            attempts: 4,
            ..FAST
        };
        let sender = sender(&fake, retry).await;
        // record-7, record-70…79 are refused every time; the others are accepted once.
        let error = sender.send(batches_of(100).remove(0)).await.unwrap_err();
        let mut missing: Vec<u64> = vec![7];
        missing.extend(70..80);
        assert_eq!(error.not_sent, missing);
        assert_eq!(error.attempts, 4);
        assert_eq!(error.batch_len, 100);
        assert!(
            error.reason.contains("ServiceUnavailableException"),
            "{error}"
        );
        assert_eq!(fake.stats().requests, 4);
        assert_eq!(fake.accepted().len(), 89);
        assert!(error.to_string().contains("not sent: 7, 70, 71"), "{error}");
    }

    #[tokio::test]
    async fn a_stream_that_always_throttles_fails_with_every_record_named() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            throttle_share: 1.0,
            ..Default::default()
        })
        .unwrap();
        let retry = RetryPolicy {
            attempts: 3,
            ..FAST
        };
        let error = sender(&fake, retry)
            .await
            .send(batches_of(5).remove(0))
            .await
            .unwrap_err();
        assert_eq!(error.not_sent, [0, 1, 2, 3, 4]);
        assert_eq!(fake.stats().requests, 3);
        assert!(fake.accepted().is_empty());
    }
}
