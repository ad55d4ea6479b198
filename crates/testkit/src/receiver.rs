//! A scriptable HTTP receiver standing in for an alert destination (a webhook, Slack,
//! PagerDuty): records every request it gets with the status it answered, and can be told to
//! be down (connection refused: nothing listens on its port), to answer 500, to answer 429 with
//! `Retry-After`, or to accept (200).
//!
//! ```no_run
//! # async fn demo() {
//! use lakewatch_testkit::receiver::{Answer, Receiver};
//! let receiver = Receiver::start().await.unwrap();
//! receiver.answer(Answer::Down).await;     // connection refused
//! receiver.answer(Answer::Status(500)).await;
//! receiver.answer(Answer::Accept).await;
//! let accepted = receiver.received().iter().filter(|r| r.status == 200).count();
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use crate::http::Request;

/// What the receiver does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not listening: connections are refused.
    Down,
    /// Answers this status (e.g. 500).
    Status(u16),
    /// Answers 429 Too Many Requests with `Retry-After: <seconds>`.
    TooMany { retry_after: u64 },
    /// Answers 200.
    Accept,
}

/// A request the receiver got, and the status it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub request: Request,
    pub status: u16,
}

impl Received {
    /// The body as JSON (panics when it is not: a test helper).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.request.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    answer: Mutex<Option<Answer>>,
    received: Mutex<Vec<Received>>,
}

/// The receiver; stops listening when dropped.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1 and accepts every request.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shared = Arc::new(Shared::default());
        *shared.answer.lock().unwrap() = Some(Answer::Accept);
        let receiver = Receiver {
            address: listener.local_addr()?,
            shared: Arc::clone(&shared),
            server: Mutex::new(None),
        };
        *receiver.server.lock().unwrap() = Some(tokio::spawn(serve(listener, shared)));
        Ok(receiver)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Changes what the next requests get; [`Answer::Down`] closes the port (and open
    /// connections), any other answer listens on it again.
    pub async fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = Some(answer);
        let running = self.server.lock().unwrap().take();
        match (answer, running) {
            (Answer::Down, Some(server)) => {
                server.abort();
                let _ = server.await;
            }
            (Answer::Down, None) => {}
            (_, Some(server)) => *self.server.lock().unwrap() = Some(server),
            (_, None) => {
                let listener = TcpListener::bind(self.address)
                    .await
                    .expect("the receiver's port is free again");
                let server = tokio::spawn(serve(listener, Arc::clone(&self.shared)));
                *self.server.lock().unwrap() = Some(server);
            }
        }
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropped (and so closed) with this task when the receiver goes down.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { connections.spawn(connection(stream, Arc::clone(&shared))); }
                Err(_) => return,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers one request, then closes the connection (so no client keeps a pooled connection to
/// a receiver that goes down).
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let Ok(Some(request)) = crate::http::read_request(&mut reader).await else {
        return;
    };
    let answer = shared.answer.lock().unwrap().unwrap_or(Answer::Accept);
    let (status, extra) = match answer {
        Answer::Accept | Answer::Down => (200, String::new()),
        Answer::Status(status) => (status, String::new()),
        Answer::TooMany { retry_after } => (429, format!("retry-after: {retry_after}\r\n")),
    };
    let body = if status == 200 { "ok" } else { "try later" };
    shared
        .received
        .lock()
        .unwrap()
        .push(Received { request, status });
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n{extra}\r\n",
        if status == 200 { "OK" } else { "Status" },
        body.len()
    );
    let _ = writer.write_all(head.as_bytes()).await;
    let _ = writer.write_all(body.as_bytes()).await;
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(url_address: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(url_address).await?;
        stream
            .write_all(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}")
            .await?;
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn follows_its_script_and_records_each_request_with_its_status() {
        let receiver = Receiver::start().await.unwrap();
        let address = receiver.address.to_string();
        assert!(post(&address).await.unwrap().starts_with("HTTP/1.1 200"));
        receiver.answer(Answer::Down).await;
        assert_eq!(
            post(&address).await.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        receiver.answer(Answer::Status(500)).await;
        assert!(post(&address).await.unwrap().starts_with("HTTP/1.1 500"));
        receiver.answer(Answer::TooMany { retry_after: 7 }).await;
        assert!(post(&address).await.unwrap().contains("retry-after: 7\r\n"));
        let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 500, 429]);
        assert_eq!(receiver.received()[0].request.path, "/x");
    }
}
