//! Ingesting one S3 object: stream it, frame it, wrap each record with its provenance, send the
//! records to Firehose, and put what cannot be sent in the error location.
//!
//! Memory stays flat whatever the object's size (a 1 GB object in a 128 MB function): the body
//! is pulled from the network in chunks through a small bounded channel into a blocking reader,
//! framed on a blocking thread (gzip detected by magic bytes, see
//! [`lakewatch_plugins::framing`]), and the records go through another channel, bounded by
//! count and by bytes, to at most [`ObjectIngester::in_flight`] `PutRecordBatch` calls at a
//! time. At any moment the function holds a few read chunks, one record being framed, 4 MiB of
//! records waiting, and the batches in flight, whatever the records' sizes: a record over
//! Firehose's limit is not wrapped but goes straight to the error location, one at a time, and
//! one over [`MAX_KEPT_RECORD_BYTES`] is not even held (its position and excerpt are kept).
//!
//! Every record read ends up in exactly one place, and the counts say where:
//! `read = sent + failed_to_frame + oversize` ([`ObjectSummary`]). A record that cannot be
//! framed (truncated JSON, invalid UTF-8, a truncated gzip) or is over Firehose's record limit
//! goes to the error location (an NDJSON line with the reason and its position); a record that
//! Firehose does not accept after the retries makes the whole object fail
//! ([`IngestError::NotDelivered`], naming the records) so the caller fails too and the object
//! is ingested again: records already sent are then sent again with the same `eventid`s.
//!
//! A Firehose `processing-failed` object (the transform's failed records, in the stream's
//! error prefix) is read as its records' decoded data
//! ([`lakewatch_lake::processing_failed::RawDataReader`]) and framed like any object, so those
//! records are replayed line by line; [`ObjectSummary`]'s `bytes` then counts decoded bytes.
//!
//! Error objects are named after the object and its version
//! (`<prefix><bucket>/<key>/<version>/part-00000.ndjson`), so ingesting an object again
//! rewrites the same error objects instead of adding copies.

use std::fmt;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};
use lakewatch_lake::processing_failed::{RawDataReader, is_processing_failed_key};
use lakewatch_plugins::envelope::{self, Provenance};
use lakewatch_plugins::framing::{self, FramedRecord, FramingError};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::firehose::{
    Batch, Batcher, Delivered, Entry, FirehoseSender, MAX_RECORD_BYTES, Oversize, SendError,
};

/// The default key prefix of the error location.
pub const DEFAULT_ERROR_PREFIX: &str = "errors/s3-ingest/";
/// An error object is written once its lines reach this size, so errors never pile up in memory.
const ERROR_PART_BYTES: usize = 1024 * 1024;
/// Read chunks waiting between the network and the framer.
const BODY_CHUNKS_BUFFERED: usize = 8;
/// Framed records waiting between the framer and the batcher, at most…
const RECORDS_BUFFERED: usize = 1024;
/// …and at most this many bytes of them: a count alone let 1,024 records of 1 MB each (a
/// 367 KB gzip object) fill 1 GB. A record larger than this takes the whole budget, so at most
/// one such record waits at a time.
const RECORD_BYTES_BUFFERED: usize = 4 * 1024 * 1024;
/// Records longer than this are not held at all: the framer skips them and the error location
/// gets their position and first characters only. Records between Firehose's limit and this
/// are kept whole in the error location, one at a time, for a replay after splitting them.
pub const MAX_KEPT_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// One object to ingest. The key is the real key (already URL-decoded if it came from an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    /// A specific version (from a notification on a versioned bucket); `None` for the latest.
    pub version_id: Option<String>,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Where records that cannot be sent are written: a bucket and a key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLocation {
    pub bucket: String,
    /// Ends with `/` (added when missing).
    pub prefix: String,
}

impl ErrorLocation {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        ErrorLocation {
            bucket: bucket.into(),
            prefix,
        }
    }

    /// Whether an object is one of our own error objects. Ingesting those would loop when the
    /// error location is in a bucket that triggers this function.
    pub fn contains(&self, object: &ObjectRef) -> bool {
        object.bucket == self.bucket && object.key.starts_with(&self.prefix)
    }

    /// The key of error part `part` of an object.
    fn part_key(&self, provenance: &Provenance, part: usize) -> String {
        format!(
            "{}{}/{}/{}/part-{part:05}.ndjson",
            self.prefix, provenance.bucket, provenance.key, provenance.version
        )
    }
}

/// Where a record was in its object, as logs and errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// 0-based item number in the object (records and framing errors alike).
    pub index: u64,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset of the record in the (decompressed) object.
    pub offset: u64,
}

impl fmt::Display for RecordPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} (line {}, byte {})",
            self.index, self.line, self.offset
        )
    }
}

/// What became of one object's records: `read = sent + failed_to_frame + oversize + not_sent`
/// (`not_sent` is 0 unless the object failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSummary {
    pub bucket: String,
    pub key: String,
    /// The version id, or the ETag when the bucket is not versioned.
    pub version: String,
    /// Bytes read from S3 (compressed size for gzip objects).
    pub bytes: u64,
    pub gzip: bool,
    pub read: u64,
    pub sent: u64,
    pub failed_to_frame: u64,
    pub oversize: u64,
    /// `PutRecordBatch` calls made, retries included.
    pub calls: u64,
    /// Entries Firehose refused at first and accepted on a retry.
    pub retried: u64,
    /// Records Firehose did not accept after every retry, or not sent because sending stopped:
    /// when not 0 the object failed and must be ingested again.
    pub not_sent: u64,
    /// Error objects written (bucket-relative keys).
    pub error_objects: Vec<String>,
}

impl ObjectSummary {
    /// Logs the one summary line of an object (`complete` false when some records were not
    /// sent; the error naming them follows).
    pub fn log(&self) {
        tracing::info!(
            complete = self.not_sent == 0,
            bucket = %self.bucket,
            key = %self.key,
            version = %self.version,
            bytes = self.bytes,
            gzip = self.gzip,
            read = self.read,
            sent = self.sent,
            failed_to_frame = self.failed_to_frame,
            oversize = self.oversize,
            calls = self.calls,
            retried = self.retried,
            not_sent = self.not_sent,
            error_objects = self.error_objects.len(),
            "object summary"
        );
    }
}

/// Why an object was not completely ingested. The caller must fail (and retry later).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "cannot read {object}: {reason}; check that it exists and that the function may read it"
    )]
    Read { object: ObjectRef, reason: String },
    /// The object (or the notified version) no longer exists: deleted after the notification.
    /// Retrying cannot help, so callers report it and go on.
    #[error("{object} no longer exists (deleted after it was notified); nothing to ingest")]
    Gone { object: ObjectRef },
    #[error(
        "{object}: {error}; ingestion stopped after {read} record(s) read; the object must be \
         ingested again (records already sent keep their eventids)"
    )]
    NotDelivered {
        object: ObjectRef,
        error: SendError<RecordPosition>,
        read: u64,
    },
    #[error(
        "{object}: cannot write failed records to s3://{bucket}/{key}: {reason}; check that the \
         error bucket exists and that the function may write to it"
    )]
    ErrorLocation {
        object: ObjectRef,
        bucket: String,
        key: String,
        reason: String,
    },
}

/// Ingests objects into one Firehose stream. Build it once and reuse it.
#[derive(Debug, Clone)]
pub struct ObjectIngester {
    pub s3: aws_sdk_s3::Client,
    pub firehose: FirehoseSender,
    /// Client for the error location (the lake's account; may differ from `s3` in a pull).
    pub errors_s3: aws_sdk_s3::Client,
    pub errors: ErrorLocation,
    /// `PutRecordBatch` calls in flight at once per object.
    pub in_flight: usize,
}

/// What the framing thread hands to the sender.
enum Item {
    Record(Entry<RecordPosition>),
    /// A record over Firehose's limit even before its envelope: not wrapped (it cannot be sent
    /// anyway), it goes straight to the error location.
    TooLarge(FramedRecord),
    Failed(FramingError),
}

impl Item {
    /// The bytes this item holds, counted against [`RECORD_BYTES_BUFFERED`].
    fn bytes(&self) -> usize {
        match self {
            Item::Record(entry) => entry.data.len(),
            Item::TooLarge(record) => record.text.len(),
            Item::Failed(failure) => failure.raw.len(),
        }
    }
}

/// An item and its share of the channel's byte budget, given back when the item is dropped.
type Queued = (Item, OwnedSemaphorePermit);

impl ObjectIngester {
    /// Ingests one object; see the module docs. Logs the object's summary line either way.
    pub async fn ingest(&self, object: &ObjectRef) -> Result<ObjectSummary, IngestError> {
        let OpenedObject {
            provenance,
            reader,
            download,
        } = open(&self.s3, object).await?;
        // Firehose's own failed records (its error prefix): replay their decoded data.
        let reader: Box<dyn Read + Send> = if is_processing_failed_key(&object.key) {
            let opened = tokio::task::spawn_blocking(move || RawDataReader::new(reader))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
            Box::new(opened.map_err(|e| IngestError::Read {
                object: object.clone(),
                reason: format!("cannot read the processing-failed object: {e}"),
            })?)
        } else {
            Box::new(reader)
        };
        let mut summary = ObjectSummary {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version: provenance.version.clone(),
            ..ObjectSummary::default()
        };
        let (items_tx, mut items_rx) = mpsc::channel::<Queued>(RECORDS_BUFFERED);
        let budget = Arc::new(Semaphore::new(RECORD_BYTES_BUFFERED));
        let framing = {
            let provenance = provenance.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                frame_object(reader, &provenance, items_tx, &budget, &runtime)
            })
        };

        let mut errors = ErrorWriter::new(self, object, &provenance);
        let mut batcher = Batcher::new();
        let mut sends: JoinSet<Result<Delivered, SendError<RecordPosition>>> = JoinSet::new();
        let mut not_delivered: Option<SendError<RecordPosition>> = None;
        while let Some((item, _permit)) = items_rx.recv().await {
            summary.read += 1;
            let ready = match item {
                Item::Failed(failure) => {
                    summary.failed_to_frame += 1;
                    errors.framing(&failure).await?;
                    None
                }
                Item::TooLarge(record) => {
                    summary.oversize += 1;
                    errors
                        .oversize(position(&record), record.text.len(), &record.text)
                        .await?;
                    None
                }
                Item::Record(entry) => match batcher.push(entry) {
                    Ok(ready) => ready,
                    Err(oversize) => {
                        summary.oversize += 1;
                        // The entry is our own envelope: keep the record as the producer wrote it.
                        let text = match envelope::unwrap(&oversize.entry.data) {
                            Some(Ok(enveloped)) => enveloped.text.to_string(),
                            _ => String::from_utf8_lossy(&oversize.entry.data).into_owned(),
                        };
                        errors
                            .oversize(oversize.entry.label, oversize.size, &text)
                            .await?;
                        None
                    }
                },
            };
            if let Some(batch) = ready {
                self.start_send(&mut sends, batch, &mut summary, &mut not_delivered)
                    .await;
                if not_delivered.is_some() {
                    break;
                }
            }
        }
        if let Some(batch) = batcher.finish() {
            match &mut not_delivered {
                // Stopped early: these records were read but are not sent.
                Some(error) => {
                    error.batch_len += batch.len();
                    error
                        .not_sent
                        .extend(batch.entries().iter().map(|entry| entry.label));
                }
                None => {
                    self.start_send(&mut sends, batch, &mut summary, &mut not_delivered)
                        .await
                }
            }
        }
        while let Some(result) = sends.join_next().await {
            collect(result, &mut summary, &mut not_delivered);
        }
        // Closing the channel stops the framer early when sending failed.
        drop(items_rx);
        // A panic while framing must not pass for the end of the object.
        let (bytes, gzip) = framing
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        summary.bytes = bytes;
        summary.gzip = gzip;
        summary.error_objects = errors.finish().await?;

        summary.not_sent = not_delivered
            .as_ref()
            .map_or(0, |e| e.not_sent.len() as u64);
        summary.log();
        if let Some(error) = not_delivered {
            return Err(IngestError::NotDelivered {
                object: object.clone(),
                read: summary.read,
                error,
            });
        }
        if let Some(reason) = download.failure() {
            // A network failure is not the object's fault: fail so it is read again, rather
            // than filing the rest of the object as a framing error.
            return Err(IngestError::Read {
                object: object.clone(),
                reason: format!("the download broke off: {reason}"),
            });
        }
        Ok(summary)
    }

    /// Sends a batch in the background, first waiting for a free slot.
    async fn start_send(
        &self,
        sends: &mut JoinSet<Result<Delivered, SendError<RecordPosition>>>,
        batch: Batch<RecordPosition>,
        summary: &mut ObjectSummary,
        not_delivered: &mut Option<SendError<RecordPosition>>,
    ) {
        while sends.len() >= self.in_flight.max(1) {
            let Some(result) = sends.join_next().await else {
                break;
            };
            collect(result, summary, not_delivered);
        }
        let firehose = self.firehose.clone();
        sends.spawn(async move { firehose.send(batch).await });
    }
}

/// An object opened for reading: where it came from, and its body as a blocking reader that
/// a task fills from the network a few chunks ahead (read it on a blocking thread).
pub struct OpenedObject {
    pub provenance: Provenance,
    pub reader: ObjectReader,
    pub download: Download,
}

/// Starts reading an object (the given version, or the latest). Its provenance carries the
/// version id, or the ETag when the bucket is not versioned.
pub async fn open(
    s3: &aws_sdk_s3::Client,
    object: &ObjectRef,
) -> Result<OpenedObject, IngestError> {
    let output = s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .set_version_id(object.version_id.clone())
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("NoSuchKey" | "NoSuchVersion") => IngestError::Gone {
                object: object.clone(),
            },
            _ => IngestError::Read {
                object: object.clone(),
                reason: DisplayErrorContext(&e).to_string(),
            },
        })?;
    let version = match output.version_id() {
        Some(id) if !id.is_empty() && id != "null" => id.to_string(),
        _ => output
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
    };
    let (reader, download) = ObjectReader::spawn(output.body);
    Ok(OpenedObject {
        provenance: Provenance {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version,
        },
        reader,
        download,
    })
}

/// Adds one finished send to the summary; keeps every record that was not accepted.
fn collect(
    result: Result<Result<Delivered, SendError<RecordPosition>>, tokio::task::JoinError>,
    summary: &mut ObjectSummary,
    not_delivered: &mut Option<SendError<RecordPosition>>,
) {
    match result {
        Ok(Ok(delivered)) => {
            summary.sent += delivered.records as u64;
            summary.calls += u64::from(delivered.calls);
            summary.retried += delivered.refused;
        }
        Ok(Err(error)) => {
            summary.sent += (error.batch_len - error.not_sent.len()) as u64;
            summary.calls += u64::from(error.attempts);
            match not_delivered {
                Some(first) => {
                    first.not_sent.extend(error.not_sent);
                    first.batch_len += error.batch_len;
                }
                None => *not_delivered = Some(error),
            }
        }
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

fn position(record: &FramedRecord) -> RecordPosition {
    RecordPosition {
        index: record.index,
        line: record.line,
        offset: record.offset,
    }
}

/// Frames the object on a blocking thread and wraps each record; stops when the receiver is
/// gone. Each item first takes its bytes from `budget` (all of it when larger), so what waits
/// in the channel stays under [`RECORD_BYTES_BUFFERED`] plus one record. Returns the bytes
/// read from S3 and whether the object was gzip.
fn frame_object(
    reader: Box<dyn Read + Send>,
    provenance: &Provenance,
    items: mpsc::Sender<Queued>,
    budget: &Arc<Semaphore>,
    runtime: &tokio::runtime::Handle,
) -> (u64, bool) {
    let mut framer = framing::frame_reader(reader).max_record_bytes(MAX_KEPT_RECORD_BYTES);
    for framed in framer.by_ref() {
        let item = match framed {
            // The envelope only adds to a record's length.
            Ok(record) if record.text.len() > MAX_RECORD_BYTES => Item::TooLarge(record),
            Ok(record) => Item::Record(Entry {
                label: position(&record),
                data: envelope::wrap(provenance, &record),
            }),
            Err(failure) => Item::Failed(failure),
        };
        let share = item.bytes().min(RECORD_BYTES_BUFFERED);
        let share = u32::try_from(share).expect("the byte budget fits in u32");
        // Waiting goes through the runtime only when the budget is spent: most records fit.
        let permit = match Arc::clone(budget).try_acquire_many_owned(share) {
            Ok(permit) => permit,
            Err(_) => match runtime.block_on(Arc::clone(budget).acquire_many_owned(share)) {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if items.blocking_send((item, permit)).is_err() {
            break;
        }
    }
    (framer.bytes_read(), framer.is_gzip())
}

/// A blocking [`Read`] over an S3 body that a task pulls from the network, a few chunks ahead.
pub struct ObjectReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

/// What became of the download behind an [`ObjectReader`].
pub struct Download {
    failure: Arc<Mutex<Option<String>>>,
}

impl Download {
    /// Why the download broke off, if it did. A reader whose download failed reports a read
    /// error; this tells it apart from a damaged object (e.g. a truncated gzip), which is not
    /// worth retrying.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl ObjectReader {
    fn spawn(mut body: ByteStream) -> (ObjectReader, Download) {
        let (tx, rx) = mpsc::channel(BODY_CHUNKS_BUFFERED);
        let failure = Arc::new(Mutex::new(None));
        let download = Download {
            failure: Arc::clone(&failure),
        };
        tokio::spawn(async move {
            loop {
                let next = match body.try_next().await {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => break,
                    Err(error) => {
                        let reason = DisplayErrorContext(&error).to_string();
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
                        Err(io::Error::other(reason))
                    }
                };
                let stop = next.is_err();
                if tx.send(next).await.is_err() || stop {
                    break;
                }
            }
        });
        let reader = ObjectReader {
            chunks: rx,
            current: Bytes::new(),
        };
        (reader, download)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Collects an object's failed records as NDJSON lines and writes them in parts.
struct ErrorWriter<'a> {
    ingester: &'a ObjectIngester,
    object: &'a ObjectRef,
    provenance: &'a Provenance,
    lines: Vec<u8>,
    written: Vec<String>,
}

impl<'a> ErrorWriter<'a> {
    fn new(
        ingester: &'a ObjectIngester,
        object: &'a ObjectRef,
        provenance: &'a Provenance,
    ) -> Self {
        ErrorWriter {
            ingester,
            object,
            provenance,
            lines: Vec::new(),
            written: Vec::new(),
        }
    }

    async fn framing(&mut self, failure: &FramingError) -> Result<(), IngestError> {
        let mut line = self.line("framing", &failure.reason, failure.line, failure.offset);
        line["index"] = json!(failure.index);
        line["length"] = json!(failure.len);
        line["excerpt"] = json!(failure.excerpt);
        keep_record(&mut line, &failure.raw);
        self.push(line).await
    }

    /// A record over Firehose's limit (`size` bytes with its envelope, when it has one).
    async fn oversize(
        &mut self,
        position: RecordPosition,
        size: usize,
        text: &str,
    ) -> Result<(), IngestError> {
        // Only the size goes into the reason; the record is kept once, below.
        let reason = Oversize {
            size,
            entry: Entry {
                label: position,
                data: Vec::new(),
            },
        };
        let mut line = self.line(
            "oversize",
            &reason.to_string(),
            position.line,
            position.offset,
        );
        line["index"] = json!(position.index);
        line["length"] = json!(text.len());
        line["excerpt"] = json!(
            text.chars()
                .take(framing::EXCERPT_CHARS)
                .collect::<String>()
        );
        keep_record(&mut line, text.as_bytes());
        self.push(line).await
    }

    fn line(&self, kind: &str, reason: &str, line: u64, offset: u64) -> serde_json::Value {
        json!({
            "error": kind,
            "reason": reason,
            "bucket": self.provenance.bucket,
            "key": self.provenance.key,
            "version": self.provenance.version,
            "line": line,
            "offset": offset,
        })
    }

    async fn push(&mut self, line: serde_json::Value) -> Result<(), IngestError> {
        serde_json::to_writer(&mut self.lines, &line).expect("a JSON value serializes");
        self.lines.push(b'\n');
        if self.lines.len() >= ERROR_PART_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), IngestError> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let location = &self.ingester.errors;
        let key = location.part_key(self.provenance, self.written.len());
        let body = std::mem::take(&mut self.lines);
        self.ingester
            .errors_s3
            .put_object()
            .bucket(&location.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| IngestError::ErrorLocation {
                object: self.object.clone(),
                bucket: location.bucket.clone(),
                key: key.clone(),
                reason: DisplayErrorContext(&e).to_string(),
            })?;
        self.written.push(key);
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<String>, IngestError> {
        self.flush().await?;
        Ok(self.written)
    }
}

/// Keeps a failed record's bytes for a replay, in the lake's one failed-record format
/// ([`failed_record_field`](lakewatch_lake::layout::failed_record_field)).
fn keep_record(line: &mut serde_json::Value, raw: &[u8]) {
    if let Some((field, value)) = lakewatch_lake::layout::failed_record_field(raw) {
        line[field] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_location_recognises_its_own_objects_to_avoid_loops() {
        let location = ErrorLocation::new("lake", "errors/s3-ingest");
        assert_eq!(location.prefix, "errors/s3-ingest/");
        let object = |bucket: &str, key: &str| ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
        };
        assert!(location.contains(&object(
            "lake",
            "errors/s3-ingest/in/a.json/v/part-00000.ndjson"
        )));
        assert!(!location.contains(&object("lake", "input/a.json")));
        assert!(!location.contains(&object("other", "errors/s3-ingest/x")));
    }

    #[test]
    fn error_parts_are_named_after_the_object_and_its_version() {
        let location = ErrorLocation::new("lake", DEFAULT_ERROR_PREFIX);
        let provenance = Provenance {
            bucket: "in".into(),
            key: "logs/a b.json".into(),
            version: "abc".into(),
        };
        assert_eq!(
            location.part_key(&provenance, 3),
            "errors/s3-ingest/in/logs/a b.json/abc/part-00003.ndjson"
        );
    }

    #[test]
    fn record_positions_read_as_index_line_and_byte() {
        let position = RecordPosition {
            index: 4,
            line: 9,
            offset: 120,
        };
        assert_eq!(position.to_string(), "#4 (line 9, byte 120)");
    }

    #[test]
    fn failed_records_are_kept_as_text_or_base64() {
        let mut line = json!({});
        keep_record(&mut line, b"{\"a\":");
        assert_eq!(line["record"], "{\"a\":");
        let mut line = json!({});
        keep_record(&mut line, &[0xff, 0xfe]);
        assert_eq!(line["record_base64"], "//4=");
        let mut line = json!({});
        keep_record(&mut line, b"");
        assert_eq!(line, json!({}));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn channel_reader_yields_the_body_across_chunk_boundaries() {
        let body = ByteStream::from(b"hello world".repeat(10_000));
        let (mut reader, download) = ObjectReader::spawn(body);
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break out;
                }
                out.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap();
        assert_eq!(read, b"hello world".repeat(10_000));
        assert_eq!(download.failure(), None);
    }
}
