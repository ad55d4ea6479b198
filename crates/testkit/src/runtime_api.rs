//! A Lambda Runtime API server for tests, and a guard that runs a built Lambda binary against it.
//!
//! A Lambda built with `lambda_runtime` talks HTTP to the address in `AWS_LAMBDA_RUNTIME_API`:
//! it long-polls `GET /2018-06-01/runtime/invocation/next` for an event and posts the answer to
//! `…/invocation/{id}/response` (or `…/error`). [`RuntimeApi`] implements that protocol on
//! `127.0.0.1` with a free port, so a test drives the real binary exactly as Lambda would, with
//! no AWS and no cargo-lambda. [`LambdaProcess`] starts the binary with the environment
//! `lambda_runtime` insists on, captures its logs, and always kills it when dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lakewatch_testkit::runtime_api::RuntimeApiError> {
//! use lakewatch_testkit::runtime_api::LambdaProcess;
//! let lambda = LambdaProcess::start("target/debug/my-function", &[]).await?;
//! let answer = lambda.invoke(br#"{"records":[]}"#.to_vec()).await?.into_response()?;
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::http::{Request, read_request};

/// The API version prefix of every Runtime API path.
const PREFIX: &str = "/2018-06-01/runtime";
/// How long [`RuntimeApi::invoke`] waits for an answer unless told otherwise.
pub const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The function ARN the server hands out with every event.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:lakewatch-test";

/// What went wrong while driving a function; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("could not start the runtime API server: {0}")]
    Bind(std::io::Error),
    #[error(
        "could not start the Lambda binary {path}: {source} (build it first; in an integration \
         test use env!(\"CARGO_BIN_EXE_<name>\"))"
    )]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the function reported an init error ({error_type}): {body}\nits logs:\n{logs}")]
    InitError {
        error_type: String,
        body: String,
        logs: String,
    },
    #[error("the function exited ({status}) before answering\nits logs:\n{logs}")]
    Exited { status: String, logs: String },
    #[error(
        "no answer to invocation {request_id} within {timeout:?}\nthe function's logs:\n{logs}"
    )]
    Timeout {
        request_id: String,
        timeout: Duration,
        logs: String,
    },
    #[error("invocation {request_id} failed ({error_type}): {body}")]
    Invocation {
        request_id: String,
        error_type: String,
        body: String,
    },
}

/// How the function answered one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `POST …/invocation/{id}/response`: the handler's serialized return value.
    Response { request_id: String, body: Vec<u8> },
    /// `POST …/invocation/{id}/error`: the handler returned an error (or panicked).
    Error {
        request_id: String,
        /// The `Lambda-Runtime-Function-Error-Type` header, when sent.
        error_type: String,
        /// The JSON body, usually `{"errorType": …, "errorMessage": …}`.
        body: String,
    },
}

impl Invocation {
    /// The response body, or the reported error as an `Err`.
    pub fn into_response(self) -> Result<Vec<u8>, RuntimeApiError> {
        match self {
            Invocation::Response { body, .. } => Ok(body),
            Invocation::Error {
                request_id,
                error_type,
                body,
            } => Err(RuntimeApiError::Invocation {
                request_id,
                error_type,
                body,
            }),
        }
    }
}

/// Events waiting to be fetched and invocations waiting for their answers.
#[derive(Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>)>,
    waiting: HashMap<String, oneshot::Sender<Invocation>>,
    init_error: Option<(String, String)>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes `GET …/next` requests when an event is queued.
    queued: Notify,
    /// Wakes invokers when the function reports an init error.
    init_failed: Notify,
}

/// The Runtime API on `127.0.0.1:<free port>`. Stopped (with every open connection) on drop.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Binds a free port and starts serving on the current tokio runtime.
    pub async fn start() -> Result<Self, RuntimeApiError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(RuntimeApiError::Bind)?;
        let address = listener.local_addr().map_err(RuntimeApiError::Bind)?;
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The init error the function reported, if any: `(error type, body)`.
    pub fn init_error(&self) -> Option<(String, String)> {
        self.shared.state.lock().unwrap().init_error.clone()
    }

    /// Queues an event and returns its request id and a receiver for the answer.
    fn enqueue(&self, event: Vec<u8>) -> (String, oneshot::Receiver<Invocation>) {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.shared.state.lock().unwrap();
        state.next_id += 1;
        let request_id = format!("lakewatch-test-{:04}", state.next_id);
        state.waiting.insert(request_id.clone(), sender);
        state.queue.push_back((request_id.clone(), event));
        drop(state);
        self.shared.queued.notify_one();
        (request_id, receiver)
    }

    /// Queues one event and waits for the function's answer (at most `timeout`).
    ///
    /// `check` is polled while waiting, so a caller that owns the process can stop early when
    /// it exits instead of waiting for the timeout.
    async fn invoke_checking(
        &self,
        event: Vec<u8>,
        timeout: Duration,
        check: impl Fn() -> Result<(), RuntimeApiError>,
        logs: impl Fn() -> String,
    ) -> Result<Invocation, RuntimeApiError> {
        let (request_id, mut answer) = self.enqueue(event);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            if let Some((error_type, body)) = self.init_error() {
                return Err(RuntimeApiError::InitError {
                    error_type,
                    body,
                    logs: logs(),
                });
            }
            tokio::select! {
                result = &mut answer => {
                    return result.map_err(|_| RuntimeApiError::Exited {
                        status: "server stopped".into(),
                        logs: logs(),
                    });
                }
                _ = self.shared.init_failed.notified() => {}
                _ = poll.tick() => check()?,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(RuntimeApiError::Timeout { request_id, timeout, logs: logs() });
                }
            }
        }
    }

    /// Queues one event and waits for the answer of whatever function polls this server.
    pub async fn invoke(
        &self,
        event: Vec<u8>,
        timeout: Duration,
    ) -> Result<Invocation, RuntimeApiError> {
        self.invoke_checking(event, timeout, || Ok(()), String::new)
            .await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(connection(stream, Arc::clone(&shared)));
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves requests on one keep-alive connection until the client closes it.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    while let Ok(Some(request)) = read_request(&mut reader).await {
        let (status, headers, body) = route(&request, &shared).await;
        let mut head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).await.is_err()
            || writer.write_all(&body).await.is_err()
        {
            return;
        }
    }
}

type Reply = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

fn accepted() -> Reply {
    ("202 Accepted", vec![], br#"{"status":"OK"}"#.to_vec())
}

async fn route(request: &Request, shared: &Shared) -> Reply {
    let path = request.path.strip_prefix(PREFIX).unwrap_or("");
    match (request.method.as_str(), path) {
        ("GET", "/invocation/next") => next_event(shared).await,
        ("POST", "/init/error") => {
            let error_type = request
                .header("lambda-runtime-function-error-type")
                .unwrap_or("")
                .to_string();
            let body = String::from_utf8_lossy(&request.body).into_owned();
            shared.state.lock().unwrap().init_error = Some((error_type, body));
            shared.init_failed.notify_waiters();
            accepted()
        }
        ("POST", rest) => {
            let answer = rest
                .strip_prefix("/invocation/")
                .and_then(|rest| rest.rsplit_once('/'));
            let Some((request_id, kind)) = answer else {
                return not_found(&request.path);
            };
            let invocation = match kind {
                "response" => Invocation::Response {
                    request_id: request_id.to_string(),
                    body: request.body.clone(),
                },
                "error" => Invocation::Error {
                    request_id: request_id.to_string(),
                    error_type: request
                        .header("lambda-runtime-function-error-type")
                        .unwrap_or("")
                        .to_string(),
                    body: String::from_utf8_lossy(&request.body).into_owned(),
                },
                _ => return not_found(&request.path),
            };
            let waiting = shared.state.lock().unwrap().waiting.remove(request_id);
            match waiting {
                Some(sender) => {
                    let _ = sender.send(invocation);
                    accepted()
                }
                None => (
                    "400 Bad Request",
                    vec![],
                    format!(r#"{{"errorMessage":"unknown or already answered request id {request_id}"}}"#)
                        .into_bytes(),
                ),
            }
        }
        _ => not_found(&request.path),
    }
}

fn not_found(path: &str) -> Reply {
    (
        "404 Not Found",
        vec![],
        format!(r#"{{"errorMessage":"no such Runtime API path {path:?}"}}"#).into_bytes(),
    )
}

/// `GET …/invocation/next`: waits until an event is queued, then hands it out.
async fn next_event(shared: &Shared) -> Reply {
    loop {
        // Register interest before looking, so an event queued in between is not missed.
        let notified = shared.queued.notified();
        if let Some((request_id, event)) = shared.state.lock().unwrap().queue.pop_front() {
            let deadline = SystemTime::now() + Duration::from_secs(900);
            let deadline_ms = deadline
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let headers = vec![
                ("lambda-runtime-aws-request-id", request_id),
                ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
                ("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into()),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                ),
            ];
            return ("200 OK", headers, event);
        }
        notified.await;
    }
}

/// A Lambda binary running against its own [`RuntimeApi`]. Killed when dropped.
pub struct LambdaProcess {
    api: RuntimeApi,
    child: Mutex<Child>,
    logs: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl LambdaProcess {
    /// Starts a Runtime API server and the binary at `binary` pointed at it.
    ///
    /// Sets the variables `lambda_runtime` requires (`AWS_LAMBDA_RUNTIME_API`,
    /// `AWS_LAMBDA_FUNCTION_NAME`, `…_MEMORY_SIZE`, `…_VERSION`) plus `env` (endpoints, bucket
    /// names…). Its stdout and stderr are captured: see [`LambdaProcess::logs`].
    pub async fn start(
        binary: impl AsRef<Path>,
        env: &[(&str, &str)],
    ) -> Result<Self, RuntimeApiError> {
        let api = RuntimeApi::start().await?;
        let binary = binary.as_ref();
        let mut command = Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "lakewatch-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/lakewatch-test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| RuntimeApiError::Spawn {
            path: binary.to_path_buf(),
            source,
        })?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| collect_lines(stream, Arc::clone(&logs)))
        .collect();
        Ok(LambdaProcess {
            api,
            child: Mutex::new(child),
            logs,
            readers,
        })
    }

    /// Sends one event and waits for the answer ([`DEFAULT_INVOKE_TIMEOUT`]).
    pub async fn invoke(&self, event: Vec<u8>) -> Result<Invocation, RuntimeApiError> {
        self.invoke_with_timeout(event, DEFAULT_INVOKE_TIMEOUT)
            .await
    }

    /// Sends one event and waits at most `timeout`; fails early when the process exits.
    pub async fn invoke_with_timeout(
        &self,
        event: Vec<u8>,
        timeout: Duration,
    ) -> Result<Invocation, RuntimeApiError> {
        let exited = || match self.child.lock().unwrap().try_wait() {
            Ok(Some(status)) => Err(RuntimeApiError::Exited {
                status: status.to_string(),
                logs: self.logs(),
            }),
            _ => Ok(()),
        };
        self.api
            .invoke_checking(event, timeout, exited, || self.logs())
            .await
    }

    /// Everything the process wrote to stdout and stderr so far (its JSON log lines).
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    /// The process id, e.g. to read its peak memory from `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// The server the process talks to.
    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    /// Kills the process and returns its complete logs.
    pub fn stop(mut self) -> String {
        self.kill();
        self.logs()
    }

    fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        // The pipes close with the process: the readers finish with everything it wrote.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a child's output into `logs` on a thread, so the pipe never fills up and blocks it.
fn collect_lines(
    mut stream: Box<dyn Read + Send>,
    logs: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            logs.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// Sends raw HTTP and returns the raw reply: the server is tested as a client sees it.
    async fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    /// `GET …/invocation/next` as the runtime client sends it: the raw reply and the request id.
    async fn next_invocation(stream: &mut TcpStream) -> (String, String) {
        let next = exchange(
            stream,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await;
        let id = next
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
            .expect("a request id header")
            .to_string();
        (next, id)
    }

    #[tokio::test]
    async fn serves_a_queued_event_and_returns_the_posted_response() {
        let api = RuntimeApi::start().await.unwrap();
        let address = api.address();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(&address).await.unwrap();
            let (next, id) = next_invocation(&mut stream).await;
            assert!(next.starts_with("HTTP/1.1 200 OK"), "{next}");
            assert!(next.contains("lambda-runtime-deadline-ms: "), "{next}");
            assert!(next.contains(&format!(
                "lambda-runtime-invoked-function-arn: {FUNCTION_ARN}"
            )));
            assert!(next.ends_with(r#"{"ping":1}"#), "{next}");
            // Same keep-alive connection, chunked body as streaming clients send it.
            let posted = exchange(
                &mut stream,
                &format!(
                    "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n\
                     transfer-encoding: chunked\r\n\r\n5\r\n{{\"pon\r\n5\r\ng\":2}}\r\n0\r\n\r\n"
                ),
            )
            .await;
            assert!(posted.starts_with("HTTP/1.1 202"), "{posted}");
        });
        let answer = api
            .invoke(br#"{"ping":1}"#.to_vec(), Duration::from_secs(10))
            .await
            .unwrap();
        client.await.unwrap();
        assert_eq!(answer.into_response().unwrap(), br#"{"pong":2}"#);
    }

    #[tokio::test]
    async fn a_posted_error_comes_back_as_an_error_with_its_type() {
        let api = RuntimeApi::start().await.unwrap();
        let address = api.address();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(&address).await.unwrap();
            let (_, id) = next_invocation(&mut stream).await;
            let body = r#"{"errorType":"Boom","errorMessage":"no"}"#;
            exchange(
                &mut stream,
                &format!(
                    "POST /2018-06-01/runtime/invocation/{id}/error HTTP/1.1\r\n\
                     lambda-runtime-function-error-type: Boom\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await;
        });
        let answer = api
            .invoke(b"{}".to_vec(), Duration::from_secs(10))
            .await
            .unwrap();
        client.await.unwrap();
        let Err(RuntimeApiError::Invocation {
            error_type, body, ..
        }) = answer.into_response()
        else {
            panic!("expected the posted error")
        };
        assert_eq!(error_type, "Boom");
        assert!(body.contains("no"));
    }

    #[tokio::test]
    async fn an_init_error_ends_the_wait_at_once() {
        let api = RuntimeApi::start().await.unwrap();
        let address = api.address();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(&address).await.unwrap();
            exchange(
                &mut stream,
                "POST /2018-06-01/runtime/init/error HTTP/1.1\r\n\
                 lambda-runtime-function-error-type: Runtime.InitError\r\ncontent-length: 2\r\n\r\n{}",
            )
            .await;
        });
        let started = std::time::Instant::now();
        let error = api
            .invoke(b"{}".to_vec(), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(error, RuntimeApiError::InitError { ref error_type, .. } if error_type == "Runtime.InitError"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn unknown_paths_and_request_ids_are_rejected() {
        let api = RuntimeApi::start().await.unwrap();
        let mut stream = TcpStream::connect(api.address()).await.unwrap();
        let reply = exchange(&mut stream, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        let reply = exchange(
            &mut stream,
            "POST /2018-06-01/runtime/invocation/unknown/response HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    }

    #[tokio::test]
    async fn a_process_that_exits_fails_the_invocation_with_its_logs() {
        let lambda = LambdaProcess::start("/bin/sh", &[]).await;
        // `sh` with stdin closed exits at once; the invocation must not wait for the timeout.
        let lambda = lambda.unwrap();
        let error = lambda
            .invoke_with_timeout(b"{}".to_vec(), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(error, RuntimeApiError::Exited { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error_naming_it() {
        let Err(error) = LambdaProcess::start("/nonexistent/lambda", &[]).await else {
            panic!("expected a spawn error")
        };
        assert!(error.to_string().contains("/nonexistent/lambda"), "{error}");
    }
}
