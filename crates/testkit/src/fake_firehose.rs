//! A Firehose stand-in that misbehaves on purpose, for the failure paths moto cannot produce.
//!
//! It speaks `PutRecordBatch` the way the AWS SDK for Rust does (awsJson1_1 over HTTP/1.1,
//! `X-Amz-Target: Firehose_20150804.PutRecordBatch`), so the real SDK client is what the tests
//! exercise. Two kinds of trouble are configurable, both driven by a seeded random generator so
//! a failing run can be reproduced:
//!
//! - refused entries: a share of the entries in a request come back in `RequestResponses` with
//!   `ErrorCode: ServiceUnavailableException` (and `FailedPutCount` says how many), while the
//!   others in the same request are accepted;
//! - throttled requests: a share of whole requests is answered with HTTP 503 and
//!   `__type: ServiceUnavailableException`, accepting nothing.
//!
//! Entries whose data contains [`FakeFirehoseConfig::always_refuse`] are refused every time,
//! which is how a test makes a record that can never be delivered.
//!
//! Every accepted entry's decoded data is recorded, in order of acceptance ([`FakeFirehose::accepted`]).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The `X-Amz-Target` of the one operation served.
const PUT_RECORD_BATCH: &str = "Firehose_20150804.PutRecordBatch";

/// How the server misbehaves.
#[derive(Debug, Clone, Default)]
pub struct FakeFirehoseConfig {
    /// Share (0.0–1.0) of entries refused in `RequestResponses`.
    pub refuse_share: f64,
    /// Share (0.0–1.0) of whole requests answered with a 503 `ServiceUnavailableException`.
    pub throttle_share: f64,
    /// Entries whose data contains these bytes are refused every time.
    pub always_refuse: Option<Vec<u8>>,
    /// Seed of the generator that picks what to refuse and throttle.
    pub seed: u64,
    /// Count accepted entries without keeping their data (for benchmarks of large objects).
    pub discard_accepted: bool,
}

/// What the server has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeFirehoseStats {
    /// `PutRecordBatch` requests received, throttled ones included.
    pub requests: u64,
    /// Requests answered with a whole-request 503.
    pub throttled_requests: u64,
    /// Entries refused in `RequestResponses`.
    pub refused_entries: u64,
    /// Entries accepted.
    pub accepted_entries: u64,
}

struct State {
    config: FakeFirehoseConfig,
    rng: StdRng,
    stats: FakeFirehoseStats,
    accepted: Vec<Vec<u8>>,
    next_record_id: u64,
}

/// A running fake Firehose endpoint; stopped when dropped.
pub struct FakeFirehose {
    endpoint: String,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeFirehose {
    /// Starts the server on a free port of 127.0.0.1; it is ready when this returns.
    pub fn start(config: FakeFirehoseConfig) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            stats: FakeFirehoseStats::default(),
            accepted: Vec::new(),
            next_record_id: 0,
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("fake-firehose".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let state = Arc::clone(&state);
                        std::thread::spawn(move || serve_connection(stream, &state));
                    }
                })?
        };
        Ok(FakeFirehose {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            stopping,
            port,
            acceptor: Some(acceptor),
        })
    }

    /// The URL to give the SDK as its endpoint.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The decoded data of every accepted entry, in the order they were accepted.
    pub fn accepted(&self) -> Vec<Vec<u8>> {
        self.lock().accepted.clone()
    }

    /// Counts of requests and entries so far.
    pub fn stats(&self) -> FakeFirehoseStats {
        self.lock().stats
    }

    /// Changes the misbehaviour from now on (e.g. a later run against a healthy stream).
    pub fn reconfigure(&self, config: FakeFirehoseConfig) {
        let mut state = self.lock();
        state.rng = StdRng::seed_from_u64(config.seed);
        state.config = config;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeFirehose {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves requests on one kept-alive connection until the client closes it.
fn serve_connection(stream: TcpStream, state: &Mutex<State>) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    while let Ok(Some(request)) = read_request(&mut reader) {
        let (status, body) = answer(&request, state);
        let body = body.to_string();
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             content-length: {}\r\nx-amzn-requestid: fake-firehose\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

struct Request {
    target: Option<String>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request with a `content-length` body; `None` when the peer closed.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut target = None;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "x-amz-target" => target = Some(value.to_string()),
                "content-length" => {
                    length = value
                        .parse()
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?
                }
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { target, body }))
}

/// The status line and JSON body answering one request.
fn answer(request: &Request, state: &Mutex<State>) -> (&'static str, Value) {
    if request.target.as_deref() != Some(PUT_RECORD_BATCH) {
        return (
            "400 Bad Request",
            json!({"__type": "UnknownOperationException",
                   "message": format!("the fake serves only {PUT_RECORD_BATCH}")}),
        );
    }
    let Some(entries) = decode_entries(&request.body) else {
        return (
            "400 Bad Request",
            json!({"__type": "InvalidArgumentException", "message": "malformed PutRecordBatch"}),
        );
    };
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = &mut *state;
    state.stats.requests += 1;
    let throttle_share = state.config.throttle_share;
    if throttle_share > 0.0 && state.rng.random_bool(throttle_share.min(1.0)) {
        state.stats.throttled_requests += 1;
        return (
            "503 Service Unavailable",
            json!({"__type": "ServiceUnavailableException", "message": "Slow down."}),
        );
    }
    let mut failed = 0u64;
    let mut responses = Vec::with_capacity(entries.len());
    for data in entries {
        let marked = state
            .config
            .always_refuse
            .as_deref()
            .is_some_and(|marker| contains(&data, marker));
        let refuse_share = state.config.refuse_share;
        let unlucky = refuse_share > 0.0 && state.rng.random_bool(refuse_share.min(1.0));
        if marked || unlucky {
            failed += 1;
            state.stats.refused_entries += 1;
            responses.push(json!({
                "ErrorCode": "ServiceUnavailableException",
                "ErrorMessage": "Slow down."
            }));
        } else {
            state.next_record_id += 1;
            state.stats.accepted_entries += 1;
            if !state.config.discard_accepted {
                state.accepted.push(data);
            }
            responses.push(json!({"RecordId": format!("fake-{:016}", state.next_record_id)}));
        }
    }
    (
        "200 OK",
        json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": responses}),
    )
}

/// The decoded `Data` of each entry of a `PutRecordBatch` body.
fn decode_entries(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body.get("Records")?
        .as_array()?
        .iter()
        .map(|record| BASE64.decode(record.get("Data")?.as_str()?).ok())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Sends one raw HTTP request on a fresh connection and returns (status, body).
    fn post(fake: &FakeFirehose, target: &str, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", fake.port)).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: {target}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (
            status.split_whitespace().nth(1).unwrap().parse().unwrap(),
            serde_json::from_slice(&body).unwrap(),
        )
    }

    fn batch(items: &[&str]) -> String {
        let records: Vec<Value> = items
            .iter()
            .map(|d| json!({"Data": BASE64.encode(d)}))
            .collect();
        json!({"DeliveryStreamName": "s", "Records": records}).to_string()
    }

    #[test]
    fn a_healthy_fake_accepts_every_entry_and_records_its_data() {
        let fake = FakeFirehose::start(FakeFirehoseConfig::default()).unwrap();
        let (status, body) = post(&fake, PUT_RECORD_BATCH, &batch(&["a", "b"]));
        assert_eq!(status, 200);
        assert_eq!(body["FailedPutCount"], 0);
        assert_eq!(body["RequestResponses"].as_array().unwrap().len(), 2);
        assert_eq!(fake.accepted(), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn refused_entries_are_reported_per_entry_and_not_recorded() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            always_refuse: Some(b"poison".to_vec()),
            ..Default::default()
        })
        .unwrap();
        let (status, body) = post(&fake, PUT_RECORD_BATCH, &batch(&["ok", "poison!", "ok2"]));
        assert_eq!(status, 200);
        assert_eq!(body["FailedPutCount"], 1);
        let responses = body["RequestResponses"].as_array().unwrap();
        assert!(responses[0]["RecordId"].is_string());
        assert_eq!(responses[1]["ErrorCode"], "ServiceUnavailableException");
        assert!(responses[2]["RecordId"].is_string());
        assert_eq!(fake.accepted(), [b"ok".to_vec(), b"ok2".to_vec()]);
        assert_eq!(fake.stats().refused_entries, 1);
    }

    #[test]
    fn a_throttled_request_accepts_nothing() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            throttle_share: 1.0,
            ..Default::default()
        })
        .unwrap();
        let (status, body) = post(&fake, PUT_RECORD_BATCH, &batch(&["a"]));
        assert_eq!(status, 503);
        assert_eq!(body["__type"], "ServiceUnavailableException");
        assert!(fake.accepted().is_empty());
        assert_eq!(fake.stats().throttled_requests, 1);
    }

    #[test]
    fn a_share_of_entries_is_refused() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            refuse_share: 0.5,
            seed: 7,
            ..Default::default()
        })
        .unwrap();
        let items: Vec<String> = (0..400).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let (_, body) = post(&fake, PUT_RECORD_BATCH, &batch(&refs));
        let failed = body["FailedPutCount"].as_u64().unwrap();
        assert!((100..300).contains(&failed), "{failed} of 400 refused");
        assert_eq!(fake.accepted().len() as u64, 400 - failed);
    }

    #[test]
    fn a_discarding_fake_counts_without_keeping_data() {
        let fake = FakeFirehose::start(FakeFirehoseConfig {
            discard_accepted: true,
            ..Default::default()
        })
        .unwrap();
        post(&fake, PUT_RECORD_BATCH, &batch(&["a", "b", "c"]));
        assert_eq!(fake.stats().accepted_entries, 3);
        assert!(fake.accepted().is_empty());
    }

    #[test]
    fn other_operations_are_rejected_by_name() {
        let fake = FakeFirehose::start(FakeFirehoseConfig::default()).unwrap();
        let (status, body) = post(&fake, "Firehose_20150804.PutRecord", "{}");
        assert_eq!(status, 400);
        assert_eq!(body["__type"], "UnknownOperationException");
    }
}
