//! The envelope: how the S3-ingest Lambda sends one framed record, with where it came from,
//! through Firehose to the transform Lambda (which runs the pipeline).
//!
//! Firehose carries opaque bytes, so the provenance travels in front of the record:
//!
//! ```text
//! \x1elakewatch/1 {"bucket":"b","key":"k","version":"v","line":3,"offset":120,"index":2,"kind":"json"}\n
//! <the record's text, unchanged>
//! ```
//!
//! The first byte is the ASCII record separator (0x1E), which no JSON document and no sane log
//! line starts with, so a producer's own record is never mistaken for an envelope. The header
//! is one line of JSON (its strings escape any newline); everything after its newline is the
//! record, byte for byte, newlines and 0x1E included.
//!
//! The transform rebuilds the record with origin container `s3://bucket/key#version` and the
//! byte offset as position, exactly as [`FramedRecord::record`] does for the same container,
//! so an object gets the same `eventid`s whether it went through Firehose or was ingested
//! locally, and each time it is re-ingested.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::framing::FramedRecord;
use crate::pipeline::Record;
use crate::shell::{Event, Origin, RecordKind, insert_keeping_both};

/// Marks an enveloped record: the record separator byte, the format and its version.
pub const ENVELOPE_PREFIX: &[u8] = b"\x1elakewatch/1 ";
const RECORD_SEPARATOR: u8 = 0x1e;

/// Which version of which object a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub bucket: String,
    pub key: String,
    /// The object's version id, or its ETag when the bucket is not versioned: a re-written
    /// object is a different container, so its records get new ids.
    pub version: String,
}

impl Provenance {
    /// The origin container of the object's records: `s3://bucket/key#version`.
    pub fn container(&self) -> String {
        format!("s3://{}/{}#{}", self.bucket, self.key, self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Json,
    Line,
}

impl From<RecordKind> for Kind {
    fn from(kind: RecordKind) -> Self {
        match kind {
            RecordKind::Json => Kind::Json,
            RecordKind::Line => Kind::Line,
        }
    }
}

impl From<Kind> for RecordKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Json => RecordKind::Json,
            Kind::Line => RecordKind::Line,
        }
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    bucket: &'a str,
    key: &'a str,
    version: &'a str,
    line: u64,
    offset: u64,
    index: u64,
    kind: Kind,
}

#[derive(Deserialize)]
struct HeaderIn {
    bucket: String,
    key: String,
    version: String,
    line: u64,
    offset: u64,
    index: u64,
    kind: Kind,
}

/// Puts one framed record and its provenance into the bytes of one Firehose record.
pub fn wrap(provenance: &Provenance, record: &FramedRecord) -> Vec<u8> {
    let header = HeaderOut {
        bucket: &provenance.bucket,
        key: &provenance.key,
        version: &provenance.version,
        line: record.line,
        offset: record.offset,
        index: record.index,
        kind: record.kind.into(),
    };
    let mut out = Vec::with_capacity(ENVELOPE_PREFIX.len() + 160 + record.text.len());
    out.extend_from_slice(ENVELOPE_PREFIX);
    serde_json::to_writer(&mut out, &header).expect("a header of strings and numbers serializes");
    out.push(b'\n');
    out.extend_from_slice(record.text.as_bytes());
    out
}

/// One record taken out of its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enveloped<'a> {
    pub provenance: Provenance,
    pub line: u64,
    pub offset: u64,
    pub index: u64,
    pub kind: RecordKind,
    /// The record's text as the object held it.
    pub text: &'a str,
    container: String,
}

impl Enveloped<'_> {
    /// The record for the pipeline: container `s3://bucket/key#version`, position the offset.
    pub fn record(&self) -> Record<'_> {
        Record {
            text: self.text,
            kind: self.kind,
            origin: Origin {
                container: &self.container,
                position: self.offset,
            },
        }
    }

    /// Where the record came from, for the transform to keep under `details._origin`.
    pub fn provenance_json(&self) -> Value {
        origin_json(&self.provenance, self.line, self.offset)
    }
}

/// The `details` key under which an event keeps where its S3 record came from.
pub const ORIGIN_DETAIL: &str = "_origin";

/// Where a record of an S3 object came from: `{bucket, key, version, line, offset}`. The same
/// value whether the record went through Firehose (the transform) or was pulled locally.
pub fn origin_json(provenance: &Provenance, line: u64, offset: u64) -> Value {
    json!({
        "bucket": provenance.bucket,
        "key": provenance.key,
        "version": provenance.version,
        "line": line,
        "offset": offset,
    })
}

/// Puts `origin` under `details._origin`. Ours is authoritative; a producer's own `_origin` is
/// kept beside it (as `_origin_2`), never lost.
pub fn attach_origin(event: &mut Event, origin: Value) {
    if let Some(theirs) = event.details.insert(ORIGIN_DETAIL.to_string(), origin) {
        insert_keeping_both(&mut event.details, ORIGIN_DETAIL.to_string(), theirs);
    }
}

/// Why bytes that start like an envelope could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt lakewatch envelope: {reason}")]
pub struct EnvelopeError {
    pub reason: String,
}

fn corrupt(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError {
        reason: reason.into(),
    }
}

/// Takes a record out of its envelope: `None` when the data is not enveloped (a producer's
/// own record, to be framed as usual), an error when it starts like one but is damaged.
pub fn unwrap(data: &[u8]) -> Option<Result<Enveloped<'_>, EnvelopeError>> {
    if data.first() != Some(&RECORD_SEPARATOR) {
        return None;
    }
    Some(unwrap_header(data))
}

fn unwrap_header(data: &[u8]) -> Result<Enveloped<'_>, EnvelopeError> {
    let Some(rest) = data.strip_prefix(ENVELOPE_PREFIX) else {
        let shown = String::from_utf8_lossy(&data[1..data.len().min(16)]).into_owned();
        return Err(corrupt(format!(
            "expected \"lakewatch/1 \" after the record separator, found {shown:?} \
             (sent by a newer or different sender?)"
        )));
    };
    let Some(newline) = memchr::memchr(b'\n', rest) else {
        return Err(corrupt("the header line has no end (no newline)"));
    };
    let header: HeaderIn = serde_json::from_slice(&rest[..newline])
        .map_err(|error| corrupt(format!("the header is not valid: {error}")))?;
    let text = std::str::from_utf8(&rest[newline + 1..]).map_err(|error| {
        corrupt(format!(
            "the record is not valid UTF-8 (at byte {} of the record)",
            error.valid_up_to()
        ))
    })?;
    let provenance = Provenance {
        bucket: header.bucket,
        key: header.key,
        version: header.version,
    };
    Ok(Enveloped {
        container: provenance.container(),
        provenance,
        line: header.line,
        offset: header.offset,
        index: header.index,
        kind: header.kind.into(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::derive_eventid;

    fn provenance() -> Provenance {
        Provenance {
            bucket: "input".into(),
            key: "logs/2026/app log.json.gz".into(),
            version: "\"9b2cf535f27731c974343645a3985328\"".into(),
        }
    }

    fn framed(text: &str, kind: RecordKind) -> FramedRecord {
        FramedRecord {
            text: text.into(),
            kind,
            line: 7,
            offset: 4242,
            index: 3,
        }
    }

    #[test]
    fn round_trip_keeps_text_position_and_provenance() {
        let record = framed(r#"{"eventName":"ConsoleLogin"}"#, RecordKind::Json);
        let data = wrap(&provenance(), &record);
        let unwrapped = unwrap(&data).expect("enveloped").expect("valid");
        assert_eq!(unwrapped.text, record.text);
        assert_eq!(unwrapped.kind, RecordKind::Json);
        assert_eq!(
            (unwrapped.line, unwrapped.offset, unwrapped.index),
            (7, 4242, 3)
        );
        assert_eq!(unwrapped.provenance, provenance());
        assert_eq!(
            unwrapped.provenance_json(),
            json!({"bucket": "input", "key": "logs/2026/app log.json.gz",
                   "version": "\"9b2cf535f27731c974343645a3985328\"", "line": 7, "offset": 4242})
        );
    }

    #[test]
    fn unwrapped_record_has_the_same_origin_as_local_framing() {
        let record = framed("Apr 17 06:10:54 host sshd[1]: hello", RecordKind::Line);
        let container = provenance().container();
        assert_eq!(
            container,
            "s3://input/logs/2026/app log.json.gz#\"9b2cf535f27731c974343645a3985328\""
        );
        let data = wrap(&provenance(), &record);
        let unwrapped = unwrap(&data).unwrap().unwrap();
        let (via_firehose, local) = (unwrapped.record(), record.record(&container));
        assert_eq!(via_firehose.origin, local.origin);
        assert_eq!(via_firehose.kind, RecordKind::Line);
        assert_eq!(
            derive_eventid(via_firehose.text, via_firehose.origin),
            derive_eventid(local.text, local.origin)
        );
    }

    #[test]
    fn attached_origin_is_authoritative_and_keeps_the_producers_own() {
        let record = framed(r#"{"_origin":"mine","a":1}"#, RecordKind::Json);
        let data = wrap(&provenance(), &record);
        let unwrapped = unwrap(&data).unwrap().unwrap();
        let received = chrono::Utc::now();
        let crate::Outcome::Ok(mut event) =
            crate::Pipeline::new(vec![]).process(unwrapped.record(), received)
        else {
            panic!("an object becomes an event")
        };
        attach_origin(&mut event, unwrapped.provenance_json());
        assert_eq!(event.details["_origin"]["offset"], 4242);
        assert_eq!(event.details["_origin"]["key"], "logs/2026/app log.json.gz");
        assert_eq!(event.details["_origin_2"], "mine");
    }

    #[test]
    fn record_text_with_newlines_and_separators_survives_unchanged() {
        let text = "{\n  \"a\": \"x\u{1e}y\"\n}\n\u{1e}lakewatch/1 {}\n";
        let data = wrap(&provenance(), &framed(text, RecordKind::Json));
        assert_eq!(unwrap(&data).unwrap().unwrap().text, text);
    }

    #[test]
    fn a_key_with_a_newline_stays_in_the_header() {
        let mut odd = provenance();
        odd.key = "a\nb\u{1e}c".into();
        let data = wrap(&odd, &framed("x", RecordKind::Line));
        let unwrapped = unwrap(&data).unwrap().unwrap();
        assert_eq!(unwrapped.provenance.key, "a\nb\u{1e}c");
        assert_eq!(unwrapped.text, "x");
    }

    #[test]
    fn records_that_are_not_enveloped_are_none() {
        assert!(unwrap(br#"{"a":1}"#).is_none());
        assert!(unwrap(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed").is_none());
        assert!(unwrap(b"").is_none());
    }

    #[test]
    fn corrupt_envelopes_are_errors_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"\x1elakewatch/2 {}\nx", "expected \"lakewatch/1 \""),
            (b"\x1elakewatch/1 {\"bucket\":\"b\"", "no newline"),
            (b"\x1elakewatch/1 {\"bucket\":\"b\"}\nx", "missing field"),
            (b"\x1elakewatch/1 not json\nx", "header is not valid"),
            (
                b"\x1elakewatch/1 {\"bucket\":\"b\",\"key\":\"k\",\"version\":\"v\",\"line\":1,\"offset\":0,\"index\":0,\"kind\":\"json\"}\n\xff",
                "not valid UTF-8",
            ),
        ];
        for (data, expected) in cases {
            let error = unwrap(data).expect("starts with 0x1e").unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{:?}: {error}",
                String::from_utf8_lossy(data)
            );
        }
    }
}
