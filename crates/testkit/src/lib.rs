//! Helpers for tests that run real components: servers started on free ports, waited for,
//! and always stopped.

pub mod fake_firehose;
mod http;
pub mod moto;
pub mod receiver;
pub mod runtime_api;

/// The peak resident memory of process `pid` so far, in KiB (`VmHWM` from `/proc/<pid>/status`,
/// what `/usr/bin/time -v` calls "Maximum resident set size"). Linux only.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Runs a future that never waits on anything (a file store, an in-memory fake) to its end,
/// without a runtime: polls it once with a no-op waker. Panics if it suspends.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("block_on: the future suspended; use a runtime"),
    }
}

/// An in-memory log destination: clones share one buffer, so a clone can be handed to a
/// `tracing` writer factory and the text read back with [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
