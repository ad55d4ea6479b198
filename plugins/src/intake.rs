//! Intake: one input through envelope, framing and the pipeline, with the origin attached and
//! every unit counted. The Firehose transform (one record's data at a time) and local ingestion
//! (files, stdin, S3 object bodies) both run their inputs through [`Intake`], so the two paths
//! frame, identify and count records the same way; each only decides what to do with a
//! [`Unit`] (answer Firehose, write the lake).
//!
//! The clock is read by the caller once per batch or input and passed in as the received time
//! stamped on every event of it, not once per record.

use std::io::Read;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use crate::envelope::{self, Provenance, attach_origin, origin_json};
use crate::framing::{Framer, frame_bytes, frame_reader};
use crate::pipeline::{Outcome, Pipeline, Record, Tally};
use crate::shell::Event;

/// What one framed unit of an input became. The caller's sink returns
/// [`ControlFlow::Break`] to stop reading the input (the transform stops at the first failure:
/// one failed event fails its Firehose record).
#[derive(Debug)]
pub enum Unit<'r> {
    /// A finished event; from an S3 object it carries `details._origin`
    /// ([`envelope::ORIGIN_DETAIL`]).
    Event(Event),
    /// A plugin dropped the event on purpose.
    Dropped {
        plugin: &'static str,
        reason: String,
    },
    /// The unit failed; nothing of it reaches the lake.
    Failed(FailedUnit<'r>),
}

/// Why a unit failed, and where.
#[derive(Debug)]
pub struct FailedUnit<'r> {
    pub cause: Cause,
    /// 1-based line and byte offset of the unit in its (decompressed) input.
    pub line: u64,
    pub offset: u64,
    pub reason: String,
    /// The unit's bytes, kept whole for a replay; empty when framing could not hold them (an
    /// oversize record), then `excerpt` has its start.
    pub raw: &'r [u8],
    pub excerpt: &'r str,
}

/// Which stage failed a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The bytes could not be cut into a record (truncated JSON, invalid UTF-8…).
    Framing,
    /// The data started like an envelope but could not be read as one.
    Envelope,
    /// A plugin failed on the record.
    Plugin,
}

/// Where a stream's records come from: this names them in event ids.
#[derive(Debug, Clone, Copy)]
pub enum Container<'a> {
    /// A file path, `stdin`, a Firehose record id.
    Named(&'a str),
    /// An S3 object: container `s3://bucket/key#version`, so the same event ids as the
    /// S3-ingest Lambda gives, and each event keeps the object under `details._origin`.
    Object(&'a Provenance),
}

/// Counts of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamed {
    pub tally: Tally,
    /// Whether the stream was gzip (detected by content).
    pub gzip: bool,
}

/// Runs inputs through the pipeline with one received time.
#[derive(Clone, Copy)]
pub struct Intake<'p> {
    pipeline: &'p Pipeline,
    received: DateTime<Utc>,
}

impl<'p> Intake<'p> {
    /// `received` is stamped on every event as its `receivedtimestamp` (and is the fallback
    /// event time): read the clock once per batch or input.
    pub fn new(pipeline: &'p Pipeline, received: DateTime<Utc>) -> Self {
        Intake { pipeline, received }
    }

    /// The data of one Firehose record: one record in an envelope from the S3-ingest Lambda
    /// (identified by its object), or records framed from the data, identified by the
    /// Firehose `record_id` and their byte offsets. A framed record longer than
    /// `max_record_bytes` fails as a framing error without being held whole (a caller whose
    /// answer has a size limit passes what is left of it). Returns the counts, which add up
    /// (`records = ok + dropped + failed`) up to where the sink stopped.
    pub fn record_data(
        &self,
        data: &[u8],
        record_id: &str,
        max_record_bytes: usize,
        mut sink: impl FnMut(Unit<'_>) -> ControlFlow<()>,
    ) -> Tally {
        let mut tally = Tally::default();
        match envelope::unwrap(data) {
            Some(Err(error)) => {
                tally.count_failed();
                let _ = sink(Unit::Failed(FailedUnit {
                    cause: Cause::Envelope,
                    line: 1,
                    offset: 0,
                    reason: error.to_string(),
                    raw: data,
                    excerpt: "",
                }));
            }
            Some(Ok(enveloped)) => {
                let unit = Located {
                    line: enveloped.line,
                    offset: enveloped.offset,
                    text: enveloped.text,
                };
                let provenance = Some(&enveloped.provenance);
                let _ = self.process(enveloped.record(), unit, provenance, &mut tally, &mut sink);
            }
            None => self.frames(
                frame_bytes(data).max_record_bytes(max_record_bytes),
                record_id,
                None,
                &mut tally,
                &mut sink,
            ),
        }
        tally
    }

    /// A stream (a file, stdin, an S3 object body), plain or gzip.
    pub fn stream(
        &self,
        reader: impl Read + Send,
        container: Container<'_>,
        mut sink: impl FnMut(Unit<'_>) -> ControlFlow<()>,
    ) -> Streamed {
        let framer = frame_reader(reader);
        let gzip = framer.is_gzip();
        let mut tally = Tally::default();
        match container {
            Container::Named(name) => self.frames(framer, name, None, &mut tally, &mut sink),
            Container::Object(provenance) => {
                let name = provenance.container();
                self.frames(framer, &name, Some(provenance), &mut tally, &mut sink);
            }
        }
        Streamed { tally, gzip }
    }

    fn frames(
        &self,
        framer: Framer<'_>,
        container: &str,
        provenance: Option<&Provenance>,
        tally: &mut Tally,
        sink: &mut impl FnMut(Unit<'_>) -> ControlFlow<()>,
    ) {
        for item in framer {
            let flow = match &item {
                Ok(framed) => {
                    let unit = Located {
                        line: framed.line,
                        offset: framed.offset,
                        text: &framed.text,
                    };
                    self.process(framed.record(container), unit, provenance, tally, sink)
                }
                Err(error) => {
                    tally.count_failed();
                    sink(Unit::Failed(FailedUnit {
                        cause: Cause::Framing,
                        line: error.line,
                        offset: error.offset,
                        reason: error.reason.clone(),
                        raw: &error.raw,
                        excerpt: &error.excerpt,
                    }))
                }
            };
            if flow.is_break() {
                return;
            }
        }
    }

    fn process(
        &self,
        record: Record<'_>,
        unit: Located<'_>,
        provenance: Option<&Provenance>,
        tally: &mut Tally,
        sink: &mut impl FnMut(Unit<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let outcome = self.pipeline.process(record, self.received);
        tally.count(&outcome);
        match outcome {
            Outcome::Ok(mut event) => {
                if let Some(provenance) = provenance {
                    attach_origin(&mut event, origin_json(provenance, unit.line, unit.offset));
                }
                sink(Unit::Event(event))
            }
            Outcome::Dropped { plugin, reason } => sink(Unit::Dropped { plugin, reason }),
            Outcome::Failed { reason, .. } => sink(Unit::Failed(FailedUnit {
                cause: Cause::Plugin,
                line: unit.line,
                offset: unit.offset,
                reason,
                raw: unit.text.as_bytes(),
                excerpt: "",
            })),
        }
    }
}

/// A record's place in its input and its text.
#[derive(Clone, Copy)]
struct Located<'a> {
    line: u64,
    offset: u64,
    text: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ORIGIN_DETAIL, wrap};
    use crate::framing::FramedRecord;
    use crate::shell::RecordKind;
    use crate::{PluginConfig, builtin_pipeline};

    fn received() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    /// Every unit of a stream, as (cause or "ok"/"dropped", line) pairs, with the counts.
    fn units(
        intake: &Intake<'_>,
        data: &[u8],
        container: Container<'_>,
    ) -> (Vec<String>, Streamed) {
        let mut seen = Vec::new();
        let streamed = intake.stream(data, container, |unit| {
            seen.push(match unit {
                Unit::Event(event) => format!("ok {}", event.details.len()),
                Unit::Dropped { plugin, .. } => format!("dropped by {plugin}"),
                Unit::Failed(failed) => {
                    format!("{:?} at {}: {}", failed.cause, failed.line, failed.reason)
                }
            });
            ControlFlow::Continue(())
        });
        (seen, streamed)
    }

    #[test]
    fn a_stream_counts_every_unit_and_stamps_the_received_time() {
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let intake = Intake::new(&pipeline, received());
        let mut times = Vec::new();
        let streamed = intake.stream(
            &b"{\"a\":1}\n{\"b\":\nplain line\n[1]\n"[..],
            Container::Named("/x"),
            |unit| {
                if let Unit::Event(event) = unit {
                    times.push(event.receivedtimestamp);
                }
                ControlFlow::Continue(())
            },
        );
        let t = streamed.tally;
        assert_eq!((t.records(), t.ok, t.failed), (4, 2, 2));
        assert!(!streamed.gzip);
        assert_eq!(
            times,
            [received(), received()],
            "one clock reading for the input"
        );
        let (seen, _) = units(&intake, b"{\"b\":\n", Container::Named("/x"));
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].starts_with("Framing at 1: truncated JSON"),
            "{seen:?}"
        );
    }

    #[test]
    fn an_object_stream_and_its_enveloped_records_give_the_same_events() {
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let intake = Intake::new(&pipeline, received());
        let provenance = Provenance {
            bucket: "audit".into(),
            key: "logs/a.json".into(),
            version: "v1".into(),
        };
        let data = b"{\"a\":1}\n{\"b\":2,\"_origin\":\"theirs\"}\n";
        let mut local = Vec::new();
        intake.stream(&data[..], Container::Object(&provenance), |unit| {
            if let Unit::Event(event) = unit {
                local.push(event);
            }
            ControlFlow::Continue(())
        });
        let mut firehose = Vec::new();
        for framed in frame_bytes(data).flatten() {
            let wrapped = wrap(&provenance, &framed);
            let tally = intake.record_data(&wrapped, "record-1", usize::MAX, |unit| {
                if let Unit::Event(event) = unit {
                    firehose.push(event);
                }
                ControlFlow::Continue(())
            });
            assert_eq!(tally.ok, 1);
        }
        assert_eq!(local, firehose);
        assert_eq!(local[1].details[ORIGIN_DETAIL]["offset"], 8);
        assert_eq!(
            local[1].details["_origin_2"], "theirs",
            "the producer's own is kept"
        );
    }

    #[test]
    fn record_data_is_framed_under_the_record_id_and_the_sink_can_stop() {
        let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
        let intake = Intake::new(&pipeline, received());
        let mut seen = 0;
        let tally = intake.record_data(b"{\"b\":\n{\"a\":1}\n", "rec", usize::MAX, |_| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert_eq!((seen, tally.records(), tally.failed), (1, 1, 1));
        let framed = FramedRecord {
            text: "{\"a\":1}".into(),
            kind: RecordKind::Json,
            line: 1,
            offset: 0,
            index: 0,
        };
        let mut ids = Vec::new();
        intake.record_data(b"{\"a\":1}", "rec", usize::MAX, |unit| {
            if let Unit::Event(event) = unit {
                ids.push(event.eventid);
            }
            ControlFlow::Continue(())
        });
        let expected = crate::shell::derive_eventid(&framed.text, framed.record("rec").origin);
        assert_eq!(ids, [expected]);
        let mut causes = Vec::new();
        let tally = intake.record_data(b"\x1elakewatch/9 {}\n{}", "rec", usize::MAX, |unit| {
            if let Unit::Failed(failed) = unit {
                causes.push(failed.cause);
            }
            ControlFlow::Continue(())
        });
        assert_eq!((causes, tally.failed), (vec![Cause::Envelope], 1));
    }
}
