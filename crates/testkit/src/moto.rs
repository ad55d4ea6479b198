//! A moto server (a local AWS: S3, Glue, Firehose, Athena…) for tests that run the real AWS SDK.
//!
//! Every [`MotoServer`] is its own `moto_server` process on a free port of 127.0.0.1, so tests in
//! different test binaries (which cargo runs in parallel) and tests within one binary never see
//! each other's buckets or tables. The process is killed when the value is dropped, also when the
//! test panics.
//!
//! The binary is `$LAKEWATCH_MOTO_SERVER`, else `moto_server` on `PATH`. A missing binary fails
//! the test with the command that installs it: a test never silently skips.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How to get moto, in the panic message when it is missing.
const INSTALL_HINT: &str = "install it: python3 -m venv .venv && .venv/bin/pip install -r \
     .ci/requirements.txt, or run bash .ci/test (then export \
     LAKEWATCH_MOTO_SERVER=$PWD/.venv/bin/moto_server)";

/// Importing moto takes a few seconds on a loaded machine; this is generous on purpose.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Another process may take the free port between our probe and moto's bind: retry with a new one.
const START_ATTEMPTS: usize = 3;

/// The region every test config uses; moto keeps resources per region.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts a server on a free port and waits until it answers HTTP.
    ///
    /// # Panics
    /// When the binary is missing (with the command that installs it), or when the server does
    /// not answer within a minute (with its log).
    pub fn start() -> MotoServer {
        let program =
            std::env::var_os("LAKEWATCH_MOTO_SERVER").unwrap_or_else(|| "moto_server".into());
        Self::start_program(Path::new(&program))
    }

    fn start_program(program: &Path) -> MotoServer {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut log = tempfile::tempfile().expect("create a temporary file for moto's log");
            let child = Command::new(program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone moto's log file")))
                .stderr(Stdio::from(log.try_clone().expect("clone moto's log file")))
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    panic!(
                        "moto_server not found ({}); {INSTALL_HINT}",
                        program.display()
                    )
                }
                Err(error) => panic!(
                    "cannot start {}: {error}; {INSTALL_HINT}",
                    program.display()
                ),
            };
            let mut server = MotoServer {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            if server.wait_until_ready(port) {
                return server;
            }
            last_log = read_all(&mut log);
            // `server` is dropped here, which kills a process that is still starting.
        }
        panic!(
            "moto_server ({}) did not answer within {START_TIMEOUT:?} after {START_ATTEMPTS} attempts; \
             its log:\n{last_log}",
            program.display()
        );
    }

    /// The server's URL, e.g. `http://127.0.0.1:41234`: what `AWS_ENDPOINT_URL` would be.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK config for this server: dummy credentials, region us-east-1, endpoint set.
    ///
    /// Nothing is read from the process environment that could change where requests go, so
    /// tests stay independent of each other and of the developer's AWS setup.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .test_credentials()
            .load()
            .await
    }

    /// Polls until the server answers an HTTP request; false when the process exited or the
    /// time ran out.
    fn wait_until_ready(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if answers_http(address) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the OS picks it; we release it for moto to bind).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

/// True when something at `address` answers a GET with an HTTP status line.
fn answers_http(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/")
}

fn read_all(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_gets_its_own_port_and_stops_answering_when_dropped() {
        let first = MotoServer::start();
        let second = MotoServer::start();
        assert_ne!(first.endpoint(), second.endpoint());
        let address: SocketAddr = first
            .endpoint()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        assert!(answers_http(address));
        drop(first);
        assert!(!answers_http(address), "moto still answers after drop");
    }

    #[test]
    #[should_panic(expected = "install it: python3 -m venv .venv")]
    fn missing_binary_panics_with_the_install_command() {
        MotoServer::start_program(Path::new("/nonexistent/moto_server"));
    }

    #[tokio::test]
    async fn sdk_config_points_at_the_server_with_dummy_credentials() {
        let server = MotoServer::start();
        let config = server.sdk_config().await;
        assert_eq!(config.endpoint_url(), Some(server.endpoint()));
        assert_eq!(config.region().map(|r| r.as_ref()), Some(REGION));
        assert!(config.credentials_provider().is_some());
    }
}
