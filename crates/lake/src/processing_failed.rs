//! Firehose's `processing-failed` objects: the records the transform Lambda answered
//! `ProcessingFailed`, as Firehose writes them to the delivery stream's error prefix
//! (`…/processing-failed/…`): one JSON object per line, the record's original data in
//! `rawData` (standard base64), beside `errorCode`, `errorMessage`, `attemptsMade`….
//!
//! [`RawDataReader`] reads such an object as the records' data back to back, each decoded (and
//! gunzipped when it is gzip) and ended by a newline, so the usual framing cuts it into events
//! again: a record that failed because it was too large for the response comes back as its
//! separate lines, each small enough to be sent on its own. A record that failed in s3-ingest's
//! envelope (sent from an object, or by an earlier replay) comes back as the record it wraps. Positions are counted in that
//! decoded stream, so replaying the same object gives the same positions (and event ids).

use std::io::{self, BufRead, BufReader, Cursor, Read};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lakewatch_plugins::envelope;

/// The path segment Firehose puts in the keys of the records a processor failed
/// (`!{firehose:error-output-type}` in the error prefix).
pub const PROCESSING_FAILED_SEGMENT: &str = "processing-failed";

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether an object key is one of Firehose's `processing-failed` objects.
pub fn is_processing_failed_key(key: &str) -> bool {
    key.split('/').any(|part| part == PROCESSING_FAILED_SEGMENT)
}

/// Reads a `processing-failed` object as the decoded data of its records, one after the other, each ending with a newline. Holds one line of the object
/// at a time (a Firehose record is at most 1,000 KiB, so about 1.4 MB of base64); gzip data is
/// inflated as it is read, never whole.
///
/// A line that is not Firehose's format (not JSON, no string `rawData`, invalid base64) ends
/// the stream with an error naming its line: the framing reports it, with that reason, after
/// every record before it.
pub struct RawDataReader {
    lines: Box<dyn BufRead + Send>,
    line_number: u64,
    current: Option<Box<dyn Read + Send>>,
    /// Whether the current record's data ended with a newline (else one is added).
    ended_with_newline: bool,
    line: Vec<u8>,
}

impl RawDataReader {
    /// Reads the object's bytes, plain or gzip (Firehose compresses error objects as it
    /// compresses the destination's; detected by the magic bytes).
    pub fn new(object: impl Read + Send + 'static) -> io::Result<Self> {
        let mut object = BufReader::new(object);
        let lines: Box<dyn BufRead + Send> = if object.fill_buf()?.starts_with(&GZIP_MAGIC) {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(object)))
        } else {
            Box::new(object)
        };
        Ok(RawDataReader {
            lines,
            line_number: 0,
            current: None,
            ended_with_newline: true,
            line: Vec::new(),
        })
    }

    /// Loads the next record's data; `false` at the end of the object.
    fn next_record(&mut self) -> io::Result<bool> {
        loop {
            self.line.clear();
            if self.lines.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(false);
            }
            self.line_number += 1;
            if self.line.trim_ascii().is_empty() {
                continue;
            }
            let mut data = raw_data(&self.line).map_err(|reason| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {} of the processing-failed object: {reason}",
                        self.line_number
                    ),
                )
            })?;
            // A record sent by s3-ingest (a replay too) failed in its envelope: replay the
            // record itself; a damaged envelope is replayed as it is, and fails with its reason.
            if let Some(Ok(enveloped)) = envelope::unwrap(&data) {
                data = enveloped.text.as_bytes().to_vec();
            }
            self.current = Some(if data.starts_with(&GZIP_MAGIC) {
                Box::new(flate2::read::MultiGzDecoder::new(Cursor::new(data)))
            } else {
                Box::new(Cursor::new(data))
            });
            self.ended_with_newline = true;
            return Ok(true);
        }
    }
}

/// The decoded `rawData` of one line of a `processing-failed` object.
fn raw_data(line: &[u8]) -> Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object ({e})"))?;
    let encoded = value
        .get("rawData")
        .and_then(serde_json::Value::as_str)
        .ok_or("no string `rawData`")?;
    BASE64
        .decode(encoded)
        .map_err(|e| format!("`rawData` is not valid base64 ({e})"))
}

impl Read for RawDataReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(current) = self.current.as_mut() else {
                if !self.next_record()? {
                    return Ok(0);
                }
                continue;
            };
            let n = current.read(buf)?;
            if n > 0 {
                self.ended_with_newline = buf[n - 1] == b'\n';
                return Ok(n);
            }
            self.current = None;
            if !self.ended_with_newline {
                // Records are separate: the next one must not continue this one's last line.
                self.ended_with_newline = true;
                buf[0] = b'\n';
                return Ok(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn failed_line(data: &[u8]) -> String {
        serde_json::json!({
            "attemptsMade": 4, "arrivalTimestamp": 1776406254000_u64,
            "errorCode": "Lambda.ProcessingFailed", "errorMessage": "response would exceed…",
            "rawData": BASE64.encode(data), "lambdaArn": "arn:aws:lambda:…:live"
        })
        .to_string()
            + "\n"
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(data).unwrap();
        gzip.finish().unwrap()
    }

    fn read_all(object: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        RawDataReader::new(Cursor::new(object.to_vec()))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn keys_under_the_processing_failed_segment_are_recognised() {
        assert!(is_processing_failed_key(
            "errors/firehose/processing-failed/year=2026/month=04/day=17/hour=06/x-1"
        ));
        assert!(!is_processing_failed_key(
            "errors/firehose/processing-failed-x/a"
        ));
        assert!(!is_processing_failed_key("logs/auth.log"));
    }

    #[test]
    fn records_come_back_decoded_gunzipped_and_newline_separated() {
        let object = failed_line(b"line one\nline two")
            + "\n"
            + &failed_line(&gzip(b"{\"a\":1}\n{\"a\":2}"))
            + &failed_line(b"last\n");
        let decoded = b"line one\nline two\n{\"a\":1}\n{\"a\":2}\nlast\n";
        assert_eq!(read_all(object.as_bytes()).unwrap(), decoded);
        // The object itself gzip, as Firehose writes it for a GZIP destination.
        assert_eq!(read_all(&gzip(object.as_bytes())).unwrap(), decoded);
    }

    #[test]
    fn an_enveloped_record_comes_back_as_the_record_it_wraps() {
        let provenance = envelope::Provenance {
            bucket: "input".into(),
            key: "a.log".into(),
            version: "v1".into(),
        };
        let record = lakewatch_plugins::framing::frame_bytes(b"sshd: hello\n")
            .next()
            .unwrap()
            .unwrap();
        let object = failed_line(&envelope::wrap(&provenance, &record));
        assert_eq!(read_all(object.as_bytes()).unwrap(), b"sshd: hello\n");
    }

    #[test]
    fn a_line_not_in_firehose_format_is_an_error_naming_it() {
        let object = failed_line(b"fine\n") + "{\"rawData\": \"***\"}\n";
        let mut reader = RawDataReader::new(Cursor::new(object.into_bytes())).unwrap();
        let mut out = Vec::new();
        let error = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"fine\n");
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(error.to_string().contains("base64"), "{error}");
        let error = read_all(b"not json\n").unwrap_err();
        assert!(error.to_string().contains("not a JSON object"), "{error}");
    }
}
