//! The Firehose transform: turns one Firehose batch into the per-record answers Firehose
//! expects, by running every event of every record through the lakewatch pipeline.
//!
//! This is plain library code, tested without the Lambda runtime; `main.rs` only adapts it.
//!
//! # Records, events and results
//! A Firehose record's data may hold one JSON object, several NDJSON objects, a JSON array of
//! objects (or CloudTrail's `{"Records": […]}`), raw text lines, gzip of any of those, or one
//! record in a lakewatch envelope from the S3-ingest Lambda ([`lakewatch_plugins::envelope`]).
//! Framing ([`lakewatch_plugins::framing`]) cuts it into events; each event that the plugins
//! keep is written as one newline-terminated JSON line into the record's output data.
//!
//! Each record gets exactly one result:
//! - `Ok`: at least one event was kept; the data is the events' lines and the metadata carries
//!   the partition keys `year`, `month`, `day`, `hour` of the **first** event's time. Firehose
//!   cannot split one record across partitions, so a record whose events fall in different
//!   hours is stored under the first event's hour (the events keep their own `utctimestamp`;
//!   queries filter on it, partitions only prune).
//! - `Dropped`: no event was kept: the plugins dropped every event, or the record held none
//!   (empty, only blank lines). Nothing is lost: there was nothing to keep.
//! - `ProcessingFailed`: the data is not valid UTF-8, cannot be framed (truncated JSON…), a
//!   plugin failed on one of its events, or the response had no room left for it. **One
//!   failed event fails its whole record**: Firehose then writes the record's original data,
//!   intact, to the bucket's error prefix, so it can be fixed and replayed without losing or
//!   duplicating the events that did succeed. The reason is logged (with the record id and a
//!   short excerpt, never the record).
//!
//! A record whose own fields cannot be read fails alone, before any processing: `data` that
//! is missing or not valid base64, a missing (or non-string) `recordId`, or a `recordId` that
//! appears more than once in the batch (every copy fails: Firehose matches answers to records
//! by id, so two answers under one id cannot be told apart). The batch is read leniently
//! ([`Batch::from_json`]) so that such a record cannot fail the whole invocation, which
//! Firehose would retry, with the same record, forever. The answer to a record without an id
//! has no id either; every other record keeps its own. Since records whose ids are missing or
//! repeated produce no events, every event id of a batch derives from a `recordId` unique in it.
//!
//! Dropped and failed records are answered with empty data: Firehose keeps the original data
//! of a failed record itself, and the bytes are better spent on the response budget.
//!
//! # The 6 MB response limit
//! Lambda refuses a response larger than 6 MB (6,291,456 bytes), which would fail the whole
//! batch and make Firehose retry it forever. The response size is counted exactly as it will
//! be serialized (JSON with base64 data), room is reserved up front for every record's
//! smallest answer, and records are admitted in order; a record whose events do not fit any
//! more comes back `ProcessingFailed` ("response would exceed…") and goes to the error prefix.
//!
//! # Event ids
//! An event without an `eventid` of its own gets one derived from its origin: for a plain
//! record, the Firehose `recordId` (the same on every Firehose retry of the record) and the
//! event's byte offset inside the record's data; for an enveloped record, the S3 object
//! (`s3://bucket/key#version`) and the record's byte offset in it, the same ids local
//! ingestion of that object gives. Enveloped events keep their provenance under
//! `details._origin`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use lakewatch_aws::content::ContentLocation;
use lakewatch_lake::partitions::Hour;
use lakewatch_lake::schema::PARTITION_KEYS;
use lakewatch_metrics::{Figures, Records};
use lakewatch_plugins::content::Kind;
use lakewatch_plugins::intake::{Cause, Intake, Unit};
use lakewatch_plugins::{Pipeline, PluginConfig, Tally};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::firehose::{
    KinesisFirehoseResponse, KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "firehose-transform";
/// Lambda's limit on a synchronous response payload: 6 MB.
pub const RESPONSE_LIMIT_BYTES: usize = 6 * 1024 * 1024;
/// The Firehose processing buffer (`BufferSizeInMBs` of the Lambda processor) this function is
/// sized for, and the Terraform module's default (`transform_buffering_size_mb`, 0.4 MB): a
/// batch this large of any bundled source, grown into event shells and base64, answers well
/// under [`RESPONSE_LIMIT_BYTES`], so no record fails for size. Raw syslog lines grow the most
/// (about 10x, one line per record, since the whole line is also kept in `details.raw`), so the 1 MB buffer Firehose defaults to failed some of
/// them. `tests/growth.rs` measures every bundled source's growth through the real pipeline and
/// fails if worst growth times this buffer passes 80% of the limit; `lakewatch-terraform-checks`
/// fails if the module's default is larger than this.
pub const PROCESSING_BUFFER_BYTES: usize = 1024 * 1024 * 2 / 5;
/// Characters of a record's data shown in a log line about it.
pub const LOG_EXCERPT_CHARS: usize = 60;

/// Firehose's name for each per-record result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    Ok,
    Dropped,
    ProcessingFailed,
}

impl RecordResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Ok => "Ok",
            RecordResult::Dropped => "Dropped",
            RecordResult::ProcessingFailed => "ProcessingFailed",
        }
    }
}

/// What one invocation did, in counts that add up:
/// `records_in = records_ok + records_dropped + records_failed`, and
/// `events.records() = events.ok + events.dropped + events.failed`.
///
/// Events are the units framing found. Every event of a failed record counts as failed (none
/// of them reaches the lake), including a span that could not be framed, which counts as one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records_in: u64,
    pub records_ok: u64,
    pub records_dropped: u64,
    pub records_failed: u64,
    /// Of the failed records, those failed only because the response was full.
    pub records_over_limit: u64,
    /// Per-event outcomes, per source.
    pub events: Tally,
    /// Events stored under another hour's partition than their own (see the module docs).
    pub events_outside_partition: u64,
    /// Size of the serialized response, in bytes.
    pub response_bytes: usize,
}

impl Summary {
    /// The invocation's figures: Firehose records by result (`Function` =
    /// [`FUNCTION`]), events per source and what each plugin dropped or failed.
    pub fn figures(&self) -> Figures {
        let mut figures = Figures::default();
        figures.add_records(
            FUNCTION,
            Records {
                ok: self.records_ok,
                dropped: self.records_dropped,
                failed: self.records_failed,
            },
        );
        figures.add_pipeline(&self.events);
        figures
    }
}

/// The answer to Firehose and what it took.
#[derive(Debug, Clone)]
pub struct Transformed {
    pub response: KinesisFirehoseResponse,
    pub summary: Summary,
    /// Why each `ProcessingFailed` record failed (also logged): Firehose's answer has no
    /// field for a reason.
    pub failures: Vec<Failure>,
}

/// One failed record and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub record_id: Option<String>,
    pub reason: String,
}

/// A Firehose batch, read record by record so that one malformed record cannot make the
/// whole batch unreadable (deserializing Firehose's event type fails on the first bad field).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub invocation_id: Option<String>,
    pub records: Vec<InputRecord>,
}

/// One record of a batch as far as it could be read.
#[derive(Debug, Clone)]
pub struct InputRecord {
    /// The record's `recordId`, or why it has none.
    pub record_id: Result<String, String>,
    /// The record's decoded `data`, or why it cannot be decoded.
    pub data: Result<Vec<u8>, String>,
}

impl Batch {
    /// Reads a Firehose transformation event. Only an event without a `records` array is an
    /// error (it is not a Firehose batch at all); any fault of one record stays with it.
    pub fn from_json(event: &Value) -> Result<Batch, String> {
        let records = event.get("records").and_then(Value::as_array).ok_or(
            "the event has no `records` array: this function takes Firehose data \
             transformation batches only",
        )?;
        Ok(Batch {
            invocation_id: event
                .get("invocationId")
                .and_then(Value::as_str)
                .map(str::to_string),
            records: records.iter().map(InputRecord::from_json).collect(),
        })
    }
}

impl InputRecord {
    /// A well-formed record (what Firehose sends).
    pub fn new(record_id: &str, data: Vec<u8>) -> Self {
        InputRecord {
            record_id: Ok(record_id.to_string()),
            data: Ok(data),
        }
    }

    fn from_json(record: &Value) -> Self {
        let field = |name: &str| match record.get(name) {
            Some(Value::String(text)) => Ok(text.as_str()),
            Some(other) => Err(format!(
                "its `{name}` is not a string but `{}`",
                excerpt(other.to_string().as_bytes())
            )),
            None => Err(format!("it has no `{name}`")),
        };
        InputRecord {
            record_id: field("recordId").map(str::to_string),
            data: field("data").and_then(|text| {
                BASE64
                    .decode(text)
                    .map_err(|e| format!("its `data` is not valid base64 ({e})"))
            }),
        }
    }
}

/// Why a record cannot be processed at all, or its id and data.
fn readable<'r>(
    record: &'r InputRecord,
    copies: &HashMap<&str, usize>,
) -> Result<(&'r str, &'r [u8]), String> {
    let id = record
        .record_id
        .as_deref()
        .map_err(|reason| format!("{reason}, so Firehose cannot match an answer to it"))?;
    let data = record.data.as_deref().map_err(String::clone)?;
    match copies[id] {
        1 => Ok((id, data)),
        n => Err(format!(
            "its recordId appears {n} times in the batch; every copy fails, since Firehose \
             cannot tell their answers apart"
        )),
    }
}

/// The plugins' settings, as the Lambda gets them: GeoIP databases from the environment
/// ([`PluginConfig::from_env`]), and the declarative sources from the content bundle in S3
/// when `LAKEWATCH_CONTENT_BUCKET` is set (Terraform sets it; the bundle holds the bundled
/// sources and the deployment's own), else the sources embedded in this binary.
pub async fn plugin_config(
    content: Option<(&aws_sdk_s3::Client, &ContentLocation)>,
) -> Result<PluginConfig, String> {
    let mut config = PluginConfig::from_env();
    if let Some((s3, location)) = content {
        config.sources = lakewatch_aws::content::load(s3, location, Kind::Sources).await?;
    }
    Ok(config)
}

/// Transforms one Firehose batch. Never fails and never panics: every input record gets
/// exactly one result, in input order, carrying its `recordId` (none for a record without
/// one).
///
/// `received` is the processing time stamped on every event; `limit` the largest response
/// allowed ([`RESPONSE_LIMIT_BYTES`] in the Lambda).
pub fn transform(
    pipeline: &Pipeline,
    event: &Batch,
    received: DateTime<Utc>,
    limit: usize,
) -> Transformed {
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for id in event
        .records
        .iter()
        .filter_map(|r| r.record_id.as_deref().ok())
    {
        *copies.entry(id).or_default() += 1;
    }
    let mut summary = Summary {
        records_in: event.records.len() as u64,
        ..Summary::default()
    };
    // Room every record's smallest answer needs, reserved before any record is admitted.
    let mut reserved: usize = event
        .records
        .iter()
        .map(|record| minimal_entry_size(record.record_id.as_deref().ok()))
        .sum();
    let mut used = response_overhead(event.records.len());
    if used + reserved > limit {
        tracing::error!(
            records = event.records.len(),
            needed = used + reserved,
            limit,
            "even empty answers to this batch exceed the response limit; lower the Firehose \
             processing buffer size"
        );
    }
    let mut records = Vec::with_capacity(event.records.len());
    let mut failures = Vec::new();
    let intake = Intake::new(pipeline, received);
    for record in &event.records {
        let record_id = record.record_id.as_deref().ok();
        reserved -= minimal_entry_size(record_id);
        let room = limit.saturating_sub(used + reserved + minimal_entry_size(record_id));
        let data = record.data.as_deref().unwrap_or_default();
        let processed = match readable(record, &copies) {
            Ok((id, data)) => transform_record(&intake, id, data, (limit, room)),
            Err(reason) => Processed::Failed {
                events: Tally::default(),
                reason: format!("the record cannot be read: {reason}"),
                over_limit: false,
            },
        };
        let fits = |size: usize| {
            if used + size + reserved <= limit {
                return Ok(());
            }
            Err(format!(
                "response would exceed Lambda's {limit}-byte limit: this record's {size} bytes \
                 would follow {used} bytes already answered (lower the Firehose processing \
                 buffer size)"
            ))
        };
        let mut entry = answer(
            record_id,
            processed,
            data,
            (&mut summary, &mut failures),
            fits,
        );
        used += entry_size(&mut entry);
        records.push(entry);
    }
    summary.response_bytes = used;
    let mut response = KinesisFirehoseResponse::default();
    response.records = records;
    log_summary(event.invocation_id.as_deref(), &summary);
    Transformed {
        response,
        summary,
        failures,
    }
}

/// What became of one record before the response budget is applied.
#[derive(Debug)]
enum Processed {
    /// Event lines, the first event's partition, and the event counts.
    Ok {
        data: Vec<u8>,
        partition: Hour,
        events: Tally,
        outside_partition: u64,
    },
    Dropped {
        events: Tally,
        reason: String,
    },
    Failed {
        /// Units framed before (and including) the failure: all count as failed events (the
        /// plugins that dropped or failed some of them are still counted against the plugin).
        events: Tally,
        reason: String,
        /// Failed because its events outgrew the room left in the response.
        over_limit: bool,
    },
}

/// The events of one record as they are processed.
struct RecordOutput {
    data: Vec<u8>,
    first_hour: Option<Hour>,
    outside_partition: u64,
    last_drop: Option<String>,
    /// Why the record fails, at its first failed unit.
    failure: Option<String>,
    /// The response's limit, and what it has left for this record's answer.
    limit: usize,
    room: usize,
    /// The record failed because its events outgrew `room`.
    over_limit: bool,
}

impl RecordOutput {
    fn new(capacity: usize, limit: usize, room: usize) -> Self {
        RecordOutput {
            data: Vec::with_capacity(capacity.min(room)),
            first_hour: None,
            outside_partition: 0,
            last_drop: None,
            failure: None,
            limit,
            room,
            over_limit: false,
        }
    }

    /// Takes one unit; the first failed one fails the whole record and stops it.
    fn take(&mut self, unit: Unit<'_>) -> ControlFlow<()> {
        match unit {
            Unit::Event(event) => {
                let hour = Hour::containing(event.event_time());
                match self.first_hour {
                    None => self.first_hour = Some(hour),
                    Some(first) if first != hour => self.outside_partition += 1,
                    Some(_) => {}
                }
                event.write_json_line(&mut self.data);
                if base64_len(self.data.len()) > self.room {
                    let (limit, room) = (self.limit, self.room);
                    self.failure = Some(format!(
                        "response would exceed Lambda's {limit}-byte limit: this record's events \
                         passed {} bytes ({} in base64) with {room} bytes of the response left, \
                         so processing stopped (a record that expands this much, e.g. a gzip \
                         bomb, cannot be answered; split it, or lower the Firehose processing \
                         buffer size)",
                        self.data.len(),
                        base64_len(self.data.len()),
                    ));
                    self.over_limit = true;
                    return ControlFlow::Break(());
                }
            }
            Unit::Dropped { plugin, reason } => {
                self.last_drop = Some(format!("plugin {plugin} dropped it: {reason}"));
            }
            Unit::Failed(failed) => {
                self.failure = Some(match failed.cause {
                    Cause::Framing => format!(
                        "cannot frame the data at line {} (byte {}): {}",
                        failed.line, failed.offset, failed.reason
                    ),
                    Cause::Envelope | Cause::Plugin => failed.reason,
                });
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn finish(self, events: Tally) -> Processed {
        if let Some(reason) = self.failure {
            // Every unit framed before (and including) the failure counts as a failed event.
            return Processed::Failed {
                events,
                reason,
                over_limit: self.over_limit,
            };
        }
        match self.first_hour {
            Some(partition) => Processed::Ok {
                data: self.data,
                partition,
                events,
                outside_partition: self.outside_partition,
            },
            None => Processed::Dropped {
                reason: self.last_drop.unwrap_or_else(|| {
                    "the record holds no events (empty or only blank lines)".into()
                }),
                events,
            },
        }
    }
}

/// Runs one record's data through envelope, framing and the pipeline.
///
/// `room` is what the response (of at most `limit` bytes) has left for this record's answer:
/// once the events' base64 outgrow it the record cannot be answered `Ok`, so decompression and
/// framing stop there and the record fails. A gzip bomb (5 KB expanding to millions of lines)
/// thus costs at most the response budget in memory and time, never its full expansion.
fn transform_record(
    intake: &Intake<'_>,
    record_id: &str,
    data: &[u8],
    (limit, room): (usize, usize),
) -> Processed {
    // The output is usually a bit larger than the input (the shell adds fields).
    let mut output = RecordOutput::new(data.len() + data.len() / 2 + 512, limit, room);
    // No single record longer than the room can fit either: never hold more.
    let events = intake.record_data(data, record_id, room, |unit| output.take(unit));
    output.finish(events)
}

/// Turns a processed record into its response entry and counts it in the summary. `admit`
/// says whether an `Ok` entry of that many bytes still fits the response, or why not.
fn answer(
    record_id: Option<&str>,
    processed: Processed,
    data: &[u8],
    (summary, failures): (&mut Summary, &mut Vec<Failure>),
    admit: impl FnOnce(usize) -> Result<(), String>,
) -> KinesisFirehoseResponseRecord {
    let (events, reason) = match processed {
        Processed::Ok {
            data,
            partition,
            events,
            outside_partition,
        } => {
            let mut entry = empty_entry(record_id, RecordResult::Ok);
            entry.metadata.partition_keys = PARTITION_KEYS
                .iter()
                .map(|key| key.to_string())
                .zip(partition.values())
                .collect();
            entry.data.0 = data;
            match admit(entry_size(&mut entry)) {
                Ok(()) => {
                    summary.records_ok += 1;
                    summary.events.merge(&events);
                    summary.events_outside_partition += outside_partition;
                    return entry;
                }
                Err(reason) => {
                    summary.records_over_limit += 1;
                    (events, reason)
                }
            }
        }
        Processed::Dropped { events, reason } => {
            summary.records_dropped += 1;
            summary.events.merge(&events);
            tracing::debug!(record_id, reason, "record dropped");
            return empty_entry(record_id, RecordResult::Dropped);
        }
        Processed::Failed {
            events,
            reason,
            over_limit,
        } => {
            summary.records_over_limit += u64::from(over_limit);
            (events, reason)
        }
    };
    summary.records_failed += 1;
    for _ in 0..events.records() {
        summary.events.count_failed();
    }
    summary.events.merge_plugins(&events);
    tracing::warn!(
        record_id,
        reason,
        excerpt = %excerpt(data),
        "record failed; Firehose writes its original data to the error prefix"
    );
    failures.push(Failure {
        record_id: record_id.map(str::to_string),
        reason,
    });
    empty_entry(record_id, RecordResult::ProcessingFailed)
}

/// The first [`LOG_EXCERPT_CHARS`] characters of a record's data, for a log line.
pub fn excerpt(data: &[u8]) -> String {
    let head = &data[..data.len().min(LOG_EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut shown: String = text.chars().take(LOG_EXCERPT_CHARS).collect();
    if shown.len() < data.len() {
        shown.push('…');
    }
    shown
}

fn empty_entry(record_id: Option<&str>, result: RecordResult) -> KinesisFirehoseResponseRecord {
    let mut entry = KinesisFirehoseResponseRecord::default();
    entry.record_id = record_id.map(str::to_string);
    entry.result = Some(result.as_str().to_string());
    entry.data = Base64Data::default();
    entry.metadata = KinesisFirehoseResponseRecordMetadata::default();
    entry
}

/// Bytes of `{"records":[` … `]}` and the commas between `records` entries.
fn response_overhead(records: usize) -> usize {
    r#"{"records":[]}"#.len() + records.saturating_sub(1)
}

/// Bytes the entry takes in the serialized response: its JSON with the data as base64.
fn entry_size(entry: &mut KinesisFirehoseResponseRecord) -> usize {
    // Serialize without the data: base64 needs no escaping, so its size is exact by formula.
    let data = std::mem::take(&mut entry.data.0);
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, &*entry).expect("a response entry serializes");
    let size = counter.0 + base64_len(data.len());
    entry.data.0 = data;
    size
}

/// Bytes of the smallest answer a record can get (`ProcessingFailed`, no data).
fn minimal_entry_size(record_id: Option<&str>) -> usize {
    entry_size(&mut empty_entry(record_id, RecordResult::ProcessingFailed))
}

/// Length of standard padded base64 for `n` bytes.
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_summary(invocation_id: Option<&str>, summary: &Summary) {
    let sources: Vec<String> = summary
        .events
        .by_source
        .iter()
        .map(|(source, t)| format!("{source}={}/{}/{}", t.ok, t.dropped, t.failed))
        .collect();
    tracing::info!(
        invocation_id,
        records_in = summary.records_in,
        records_ok = summary.records_ok,
        records_dropped = summary.records_dropped,
        records_failed = summary.records_failed,
        records_over_limit = summary.records_over_limit,
        events_ok = summary.events.ok,
        events_dropped = summary.events.dropped,
        events_failed = summary.events.failed,
        events_outside_partition = summary.events_outside_partition,
        response_bytes = summary.response_bytes,
        sources_ok_dropped_failed = %sources.join(" "),
        "batch transformed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakewatch_plugins::envelope::{Provenance, wrap};
    use lakewatch_plugins::framing::FramedRecord;
    use lakewatch_plugins::shell::derive_eventid;
    use lakewatch_plugins::{
        Event, Origin, Plugin, PluginError, RecordKind, Registration, Stage, Trigger, Verdict,
    };
    use serde_json::Value;

    /// A test plugin with behaviour keyed on fields, so these tests do not depend on what the
    /// built-in plugins do: `t` (RFC 3339) sets the event time, `drop` drops, `fail` fails.
    struct Steer;

    impl Plugin for Steer {
        fn name(&self) -> &'static str {
            "steer"
        }
        fn registration(&self) -> Registration {
            Registration::new(Stage::Normalize, 0, vec![Trigger::Always])
        }
        fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
            if event.has_field("fail") {
                return Err("told to fail".into());
            }
            if event.has_field("drop") {
                return Ok(Verdict::Drop("told to drop".into()));
            }
            if let Some(time) = event.detail_str("t") {
                event.utctimestamp = Some(DateTime::parse_from_rfc3339(time).unwrap().into());
                return Ok(Verdict::Changed);
            }
            Ok(Verdict::Unchanged)
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(vec![Box::new(Steer)])
    }

    fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-17T06:10:54Z")
            .unwrap()
            .into()
    }

    fn batch(records: &[(&str, &[u8])]) -> Batch {
        Batch {
            invocation_id: Some("invocation-1".into()),
            records: records
                .iter()
                .map(|(id, data)| InputRecord::new(id, data.to_vec()))
                .collect(),
        }
    }

    fn run(records: &[(&str, &[u8])]) -> Transformed {
        transform(
            &pipeline(),
            &batch(records),
            received(),
            RESPONSE_LIMIT_BYTES,
        )
    }

    fn lines(entry: &KinesisFirehoseResponseRecord) -> Vec<Value> {
        std::str::from_utf8(&entry.data)
            .unwrap()
            .split_terminator('\n')
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn result(entry: &KinesisFirehoseResponseRecord) -> &str {
        entry.result.as_deref().unwrap()
    }

    fn assert_adds_up(summary: &Summary) {
        assert_eq!(
            summary.records_in,
            summary.records_ok + summary.records_dropped + summary.records_failed
        );
        let by_source: u64 = summary
            .events
            .by_source
            .values()
            .map(|t| t.ok + t.dropped + t.failed)
            .sum();
        assert_eq!(summary.events.records(), by_source);
    }

    #[test]
    fn figures_count_records_events_per_source_and_the_failing_plugin() {
        let out = run(&[
            ("ok", br#"{"source":"app"}"#),
            ("dropped", br#"{"drop":1}"#),
            ("failed", b"{\"source\":\"app\"}\n{\"fail\":1}\n"),
        ]);
        let figures = out.summary.figures();
        let get = |metric, values: &[&str]| figures.get(metric, values).unwrap();
        use lakewatch_metrics as m;
        let function = &[FUNCTION][..];
        assert_eq!(get(&m::RECORDS_IN, function), 3);
        assert_eq!(
            (
                get(&m::RECORDS_OK, function),
                get(&m::RECORDS_DROPPED, function),
                get(&m::RECORDS_FAILED, function)
            ),
            (1, 1, 1)
        );
        assert_eq!(
            get(&m::EVENTS, &["app"]),
            1,
            "the failed record's app event is not in the lake"
        );
        assert_eq!(get(&m::EVENTS_FAILED, &["unknown"]), 2);
        assert_eq!(get(&m::PLUGIN_FAILED, &["steer"]), 1);
        assert_eq!(get(&m::PLUGIN_DROPPED, &["steer"]), 1);
        for line in figures.emf_lines(0) {
            lakewatch_metrics::parse_emf_line(&line).unwrap();
        }
    }

    #[test]
    fn object_ndjson_array_and_raw_lines_each_become_newline_terminated_events() {
        let out = run(&[
            ("object", br#"{"a":1}"#),
            ("ndjson", b"{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\n"),
            ("array", br#"[{"a":1},{"a":2}]"#),
            (
                "raw",
                b"Apr 17 06:10:54 host sshd[1]: Accepted\nsecond line",
            ),
        ]);
        let records = &out.response.records;
        let counts: Vec<usize> = records.iter().map(|r| lines(r).len()).collect();
        assert_eq!(counts, [1, 3, 2, 2]);
        for record in records {
            assert_eq!(result(record), "Ok");
            assert!(record.data.ends_with(b"\n"));
        }
        assert_eq!(lines(&records[1])[2]["details"]["a"], 3);
        assert_eq!(lines(&records[3])[1]["details"]["message"], "second line");
        assert_eq!(out.summary.records_ok, 4);
        assert_eq!(out.summary.events.ok, 8);
        assert_adds_up(&out.summary);
    }

    #[test]
    fn big_integers_stay_exact_and_duplicate_keys_keep_both_values() {
        let out = run(&[(
            "hostile",
            br#"{"bytes":18446744073709551617,"user":"alice","user":"bob"}"#,
        )]);
        let record = &out.response.records[0];
        assert_eq!(result(record), "Ok");
        let details = &lines(record)[0]["details"];
        assert_eq!(details["bytes"], "18446744073709551617");
        assert_eq!(
            (&details["user"], &details["user_2"]),
            (&"alice".into(), &"bob".into())
        );
        assert_adds_up(&out.summary);
    }

    #[test]
    fn ok_records_carry_the_hour_partition_of_their_first_event() {
        let out = run(&[
            ("timed", br#"{"t":"2024-02-29T23:59:59Z"}"#),
            ("untimed", br#"{"a":1}"#),
        ]);
        let keys = |i: usize| {
            let mut keys: Vec<(String, String)> = out.response.records[i]
                .metadata
                .partition_keys
                .clone()
                .into_iter()
                .collect();
            keys.sort();
            keys
        };
        let expected = |y: &str, m: &str, d: &str, h: &str| {
            vec![
                ("day".to_string(), d.to_string()),
                ("hour".to_string(), h.to_string()),
                ("month".to_string(), m.to_string()),
                ("year".to_string(), y.to_string()),
            ]
        };
        assert_eq!(keys(0), expected("2024", "02", "29", "23"));
        // No event time: the received time stands in (and is tagged by the pipeline).
        assert_eq!(keys(1), expected("2026", "04", "17", "06"));
    }

    #[test]
    fn events_of_one_record_in_different_hours_go_under_the_first_events_hour() {
        let out = run(&[(
            "mixed",
            b"{\"t\":\"2026-01-01T10:00:00Z\"}\n{\"t\":\"2026-01-01T11:30:00Z\"}\n{\"t\":\"2026-01-01T10:59:59Z\"}",
        )]);
        let record = &out.response.records[0];
        assert_eq!(record.metadata.partition_keys["hour"], "10");
        let events = lines(record);
        assert_eq!(events[1]["utctimestamp"], "2026-01-01T11:30:00.000000Z");
        assert_eq!(out.summary.events_outside_partition, 1);
    }

    #[test]
    fn invalid_utf8_and_truncated_json_fail_only_their_own_record() {
        let out = run(&[
            ("good", br#"{"a":1}"#),
            ("latin1", b"caf\xe9 au lait"),
            ("truncated", br#"{"a": {"b": 1"#),
            ("good2", br#"{"a":2}"#),
        ]);
        let results: Vec<&str> = out.response.records.iter().map(result).collect();
        assert_eq!(
            results,
            ["Ok", "ProcessingFailed", "ProcessingFailed", "Ok"]
        );
        for failed in &out.response.records[1..3] {
            assert!(failed.data.is_empty(), "failed records carry no data");
            assert!(failed.metadata.partition_keys.is_empty());
        }
        assert_eq!(
            (out.summary.records_failed, out.summary.events.failed),
            (2, 2)
        );
        assert_adds_up(&out.summary);
    }

    #[test]
    fn one_failing_event_fails_the_whole_record_and_counts_its_events_as_failed() {
        let out = run(&[("multi", b"{\"a\":1}\n{\"fail\":true}\n{\"a\":3}\n")]);
        assert_eq!(result(&out.response.records[0]), "ProcessingFailed");
        assert!(out.response.records[0].data.is_empty());
        assert_eq!(out.failures[0].reason, "plugin steer failed: told to fail");
        // Processing stops at the failure: the two events seen are failed, none is ok.
        assert_eq!((out.summary.events.ok, out.summary.events.failed), (0, 2));
        assert_adds_up(&out.summary);
    }

    #[test]
    fn empty_records_and_records_whose_events_are_all_dropped_are_dropped() {
        let out = run(&[
            ("empty", b""),
            ("blank", b"\n  \n"),
            ("dropped", b"{\"drop\":1}\n{\"drop\":2}"),
            ("partly", b"{\"drop\":1}\n{\"a\":2}"),
        ]);
        let results: Vec<&str> = out.response.records.iter().map(result).collect();
        assert_eq!(results, ["Dropped", "Dropped", "Dropped", "Ok"]);
        assert_eq!(lines(&out.response.records[3]).len(), 1);
        assert_eq!((out.summary.events.ok, out.summary.events.dropped), (1, 3));
        assert_adds_up(&out.summary);
    }

    #[test]
    fn records_with_unreadable_fields_fail_alone_and_the_others_keep_their_ids() {
        let good = BASE64.encode(br#"{"a":1}"#);
        let event = serde_json::json!({
            "invocationId": "invocation-1",
            "records": [
                {"recordId": "first", "data": good},
                {"recordId": "bad-base64", "data": "not base64!"},
                {"data": good},
                {"recordId": 7, "data": good},
                {"recordId": "twice", "data": good},
                {"recordId": "no-data"},
                {"recordId": "twice", "data": good},
                "not an object",
                {"recordId": "last", "data": good},
            ],
        });
        let batch = Batch::from_json(&event).unwrap();
        let out = transform(&pipeline(), &batch, received(), RESPONSE_LIMIT_BYTES);
        let answers: Vec<(Option<&str>, &str)> = out
            .response
            .records
            .iter()
            .map(|r| (r.record_id.as_deref(), result(r)))
            .collect();
        let failed = "ProcessingFailed";
        assert_eq!(
            answers,
            [
                (Some("first"), "Ok"),
                (Some("bad-base64"), failed),
                (None, failed),
                (None, failed),
                (Some("twice"), failed),
                (Some("no-data"), failed),
                (Some("twice"), failed),
                (None, failed),
                (Some("last"), "Ok"),
            ]
        );
        let reasons: Vec<&str> = out.failures.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            reasons[0].contains("`data` is not valid base64"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("it has no `recordId`"), "{reasons:?}");
        assert!(
            reasons[2].contains("`recordId` is not a string but `7`"),
            "{reasons:?}"
        );
        assert!(reasons[3].contains("appears 2 times"), "{reasons:?}");
        assert!(reasons[5].contains("appears 2 times"), "{reasons:?}");
        assert!(reasons[4].contains("it has no `data`"), "{reasons:?}");
        assert!(reasons[6].contains("no `recordId`"), "{reasons:?}");
        // The two good records hold the same text: their ids still differ.
        let ids: Vec<Value> = [0, 8]
            .iter()
            .map(|&i| lines(&out.response.records[i])[0]["eventid"].clone())
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_eq!((out.summary.records_ok, out.summary.records_failed), (2, 7));
        assert_adds_up(&out.summary);
        let serialized = serde_json::to_vec(&out.response).unwrap();
        assert_eq!(serialized.len(), out.summary.response_bytes);
        assert!(Batch::from_json(&serde_json::json!({"Records": []})).is_err());
    }

    #[test]
    fn every_record_gets_one_result_with_its_record_id_in_input_order() {
        let out = run(&[("b", b"x"), ("a", b""), ("c", b"\xff")]);
        let ids: Vec<&str> = out
            .response
            .records
            .iter()
            .map(|r| r.record_id.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["b", "a", "c"]);
    }

    #[test]
    fn eventids_are_stable_across_retries_and_differ_between_records() {
        let first = run(&[("rec-1", b"same\nsame"), ("rec-2", b"same")]);
        let retry = run(&[("rec-1", b"same\nsame"), ("rec-2", b"same")]);
        let ids = |out: &Transformed| -> Vec<String> {
            out.response
                .records
                .iter()
                .flat_map(lines)
                .map(|e| e["eventid"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&first), ids(&retry));
        let all = ids(&first);
        assert_eq!(all.len(), 3);
        assert_ne!(all[0], all[1], "same text, different position");
        assert_ne!(all[0], all[2], "same text, different record id");
        assert_eq!(
            all[0],
            derive_eventid(
                "same",
                Origin {
                    container: "rec-1",
                    position: 0
                }
            )
        );
    }

    #[test]
    fn enveloped_records_keep_their_s3_origin_and_local_eventid() {
        let provenance = Provenance {
            bucket: "input".into(),
            key: "app/log.json".into(),
            version: "v1".into(),
        };
        let framed = FramedRecord {
            text: r#"{"a":1,"_origin":"mine"}"#.into(),
            kind: RecordKind::Json,
            line: 3,
            offset: 120,
            index: 2,
        };
        let data = wrap(&provenance, &framed);
        let out = run(&[("firehose-id", &data)]);
        let event = &lines(&out.response.records[0])[0];
        assert_eq!(event["details"]["_origin"]["key"], "app/log.json");
        assert_eq!(event["details"]["_origin"]["offset"], 120);
        assert_eq!(event["details"]["_origin_2"], "mine");
        assert_eq!(
            event["eventid"],
            derive_eventid(&framed.text, framed.record(&provenance.container()).origin)
        );
        let mut corrupt = data.clone();
        // Recognisable as an envelope, cut before the end of its header line.
        corrupt.truncate(20);
        let out = run(&[("broken", &corrupt)]);
        assert_eq!(result(&out.response.records[0]), "ProcessingFailed");
        assert_adds_up(&out.summary);
    }

    #[test]
    fn counted_response_size_is_the_serialized_size() {
        let out = run(&[
            ("a", br#"{"a":"\u00e9\"quoted\""}"#),
            ("b", b"\xff"),
            ("c", b""),
            ("quote\"id", b"line"),
        ]);
        let serialized = serde_json::to_vec(&out.response).unwrap();
        assert_eq!(out.summary.response_bytes, serialized.len());
        let empty = transform(&pipeline(), &batch(&[]), received(), 1000);
        assert_eq!(
            empty.summary.response_bytes,
            serde_json::to_vec(&empty.response).unwrap().len()
        );
    }

    #[test]
    fn records_past_the_limit_fail_with_the_reason_and_the_response_fits() {
        let record = br#"{"payload":"0123456789012345678901234567890123456789"}"#;
        let records: Vec<(String, &[u8])> =
            (0..20).map(|i| (format!("r{i}"), &record[..])).collect();
        let records: Vec<(&str, &[u8])> = records.iter().map(|(i, d)| (i.as_str(), *d)).collect();
        let limit = 3000;
        let out = transform(&pipeline(), &batch(&records), received(), limit);
        let results: Vec<&str> = out.response.records.iter().map(result).collect();
        let ok = results.iter().take_while(|r| **r == "Ok").count();
        assert!(ok > 0 && ok < 20, "{results:?}");
        assert!(results[ok..].iter().all(|r| *r == "ProcessingFailed"));
        assert_eq!(out.summary.records_over_limit, 20 - ok as u64);
        assert_eq!(out.failures.len(), 20 - ok);
        assert_eq!(
            out.failures[0].record_id.as_deref(),
            Some(format!("r{ok}").as_str())
        );
        assert!(
            out.failures[0]
                .reason
                .starts_with("response would exceed Lambda's 3000-byte limit"),
            "{}",
            out.failures[0].reason
        );
        let serialized = serde_json::to_vec(&out.response).unwrap();
        assert!(serialized.len() <= limit, "{} > {limit}", serialized.len());
        assert_eq!(serialized.len(), out.summary.response_bytes);
        assert_adds_up(&out.summary);
        assert_eq!(out.summary.events.failed, 20 - ok as u64);
    }

    #[test]
    fn a_batch_whose_output_exceeds_6_mb_answers_under_6_mb() {
        // Eight records of about 900 KB of NDJSON each (Firehose allows up to 1,000 KiB per
        // record): their events alone, base64-encoded, are far above 6 MB.
        let line = format!(r#"{{"message":"{}"}}"#, "x".repeat(880));
        let data = std::iter::repeat_n(line.as_str(), 1000)
            .collect::<Vec<_>>()
            .join("\n");
        let ids: Vec<String> = (0..8).map(|i| format!("big-{i}")).collect();
        let records: Vec<(&str, &[u8])> = ids
            .iter()
            .map(|id| (id.as_str(), data.as_bytes()))
            .collect();
        let out = transform(
            &pipeline(),
            &batch(&records),
            received(),
            RESPONSE_LIMIT_BYTES,
        );
        let results: Vec<&str> = out.response.records.iter().map(result).collect();
        assert_eq!(results.len(), 8);
        let ok = results.iter().filter(|r| **r == "Ok").count();
        assert!((1..8).contains(&ok), "{results:?}");
        assert_eq!(out.summary.records_over_limit, (8 - ok) as u64);
        let serialized = serde_json::to_vec(&out.response).unwrap();
        assert!(serialized.len() <= RESPONSE_LIMIT_BYTES);
        assert_eq!(serialized.len(), out.summary.response_bytes);
        assert_adds_up(&out.summary);
    }

    #[test]
    fn a_record_that_alone_exceeds_the_limit_fails_and_later_small_ones_still_fit() {
        let big = format!(r#"{{"message":"{}"}}"#, "y".repeat(5000));
        let out = transform(
            &pipeline(),
            &batch(&[("big", big.as_bytes()), ("small", b"{}")]),
            received(),
            2000,
        );
        let results: Vec<&str> = out.response.records.iter().map(result).collect();
        assert_eq!(results, ["ProcessingFailed", "Ok"]);
    }

    #[test]
    fn excerpt_is_short_and_marks_a_cut() {
        assert_eq!(excerpt(b"short"), "short");
        let long = "z".repeat(500);
        let shown = excerpt(long.as_bytes());
        assert_eq!(shown.chars().count(), LOG_EXCERPT_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(excerpt(b"\xff\xfe"), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn base64_length_matches_padded_encoding() {
        for (n, len) in [(0, 0), (1, 4), (2, 4), (3, 4), (4, 8), (6, 8), (7, 12)] {
            assert_eq!(base64_len(n), len, "{n}");
        }
    }
}

/// Properties over arbitrary input, through the built-in pipeline as the Lambda runs it.
#[cfg(test)]
mod properties {
    use super::*;
    use lakewatch_plugins::{PluginConfig, builtin_pipeline};
    use proptest::prelude::*;
    use serde_json::Value;
    use std::sync::LazyLock;

    static PIPELINE: LazyLock<Pipeline> =
        LazyLock::new(|| builtin_pipeline(&PluginConfig::default()).unwrap());

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            // Values the plugins look at: times, addresses, syslog-ish text.
            prop_oneof![
                Just("2026-04-17T06:10:54Z"),
                Just("Apr 17 06:10:54"),
                Just("1713334254000"),
                Just("10.0.0.1:443"),
                Just("123.456.253.226"),
                Just("<34>1 2026-04-17T06:10:54Z h a - - - m"),
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                ".{0,8}",
                prop_oneof![
                    Just("timestamp"),
                    Just("eventid"),
                    Just("details"),
                    Just("source"),
                    Just("Tags"),
                    Just("kind"),
                    Just("Records"),
                    Just("sourceIPAddress"),
                    Just("id"),
                    Just("severity"),
                ]
                .prop_map(String::from),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    /// Record data: raw bytes, bytes built from JSON's own punctuation, or JSON values
    /// written compact, pretty, as NDJSON or as an array.
    fn record_data() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop::collection::vec(
            prop_oneof![
                Just(&b"{"[..]),
                Just(&b"}"[..]),
                Just(&b"["[..]),
                Just(&b"]"[..]),
                Just(&b"\""[..]),
                Just(&b"\\"[..]),
                Just(&b","[..]),
                Just(&b":"[..]),
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"\x1elakewatch/1 "[..]),
                Just(&b"\x1f\x8b"[..]),
                Just(&b"\xef\xbb\xbf"[..]),
                Just(&b"\xff"[..]),
                Just(&b"a b"[..]),
                Just(&b"42"[..]),
            ],
            0..40,
        )
        .prop_map(|pieces| pieces.concat());
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            pieces,
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            json_value().prop_map(|v| serde_json::to_vec_pretty(&v).unwrap()),
            prop::collection::vec(json_value(), 0..4).prop_map(|values| {
                let lines: Vec<String> = values.iter().map(Value::to_string).collect();
                lines.join("\n").into_bytes()
            }),
            prop::collection::vec(json_value(), 0..4)
                .prop_map(|values| serde_json::to_vec(&values).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_batch_gets_one_answer_per_record_and_counts_add_up(
            datas in prop::collection::vec(record_data(), 0..8),
            limit in prop_oneof![Just(RESPONSE_LIMIT_BYTES), 600usize..4000],
        ) {
            let event = Batch {
                invocation_id: None,
                records: datas
                    .iter()
                    .enumerate()
                    .map(|(i, data)| InputRecord::new(&format!("record-{i}"), data.clone()))
                    .collect(),
            };
            let received = DateTime::parse_from_rfc3339("2026-04-17T06:10:54Z").unwrap().into();
            let out = transform(&PIPELINE, &event, received, limit);
            let summary = &out.summary;

            let ids: Vec<Option<String>> =
                out.response.records.iter().map(|r| r.record_id.clone()).collect();
            let input_ids: Vec<Option<String>> =
                event.records.iter().map(|r| r.record_id.clone().ok()).collect();
            prop_assert_eq!(ids, input_ids);
            prop_assert_eq!(
                summary.records_in,
                summary.records_ok + summary.records_dropped + summary.records_failed
            );
            prop_assert_eq!(out.failures.len() as u64, summary.records_failed);
            let by_source: u64 =
                summary.events.by_source.values().map(|t| t.ok + t.dropped + t.failed).sum();
            prop_assert_eq!(summary.events.records(), by_source);

            let mut ok_records = 0;
            let mut ok_events = 0;
            for record in &out.response.records {
                match record.result.as_deref() {
                    Some("Ok") => {
                        ok_records += 1;
                        let text = std::str::from_utf8(&record.data).unwrap();
                        prop_assert!(text.ends_with('\n'));
                        for line in text.split_terminator('\n') {
                            let event: Value = serde_json::from_str(line).unwrap();
                            prop_assert!(event["eventid"].as_str().is_some_and(|s| !s.is_empty()));
                            prop_assert!(event["details"].is_object());
                            ok_events += 1;
                        }
                        let mut keys: Vec<&str> =
                            record.metadata.partition_keys.keys().map(String::as_str).collect();
                        keys.sort();
                        prop_assert_eq!(keys, ["day", "hour", "month", "year"]);
                    }
                    Some("Dropped") | Some("ProcessingFailed") => {
                        prop_assert!(record.data.is_empty());
                    }
                    other => prop_assert!(false, "unexpected result {:?}", other),
                }
            }
            prop_assert_eq!(ok_records, summary.records_ok);
            prop_assert_eq!(ok_events, summary.events.ok);

            let serialized = serde_json::to_vec(&out.response).unwrap();
            prop_assert_eq!(serialized.len(), summary.response_bytes);
            let floor = response_overhead(datas.len())
                + event.records.iter().map(|r| minimal_entry_size(r.record_id.as_deref().ok())).sum::<usize>();
            prop_assert!(serialized.len() <= limit.max(floor));
        }
    }
}
