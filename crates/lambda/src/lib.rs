//! What every lakewatch Lambda sets up the same way: its logs, and its settings ([`settings`]).
//!
//! One JSON object per line with the event's fields at the top level (`records_failed`,
//! `rule_failed`…), so CloudWatch Logs metric filters such as `{ $.records_failed > 0 }` (see
//! terraform/modules/lakewatch/alarms.tf) match them. No timestamps (CloudWatch stamps every
//! line) and no module paths (they mean nothing to an operator). `RUST_LOG` sets the level,
//! `info` by default.

pub mod settings;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The subscriber the Lambdas log through, writing to `writer` (tests capture it).
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .without_time()
        .with_target(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .finish()
}

/// Logs to standard output, where Lambda sends it to CloudWatch. Call once, first in `main`.
pub fn init_logging() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout))
        .expect("logging is set up once, at the start of main");
}

#[cfg(test)]
mod tests {
    use lakewatch_testkit::LogCapture;

    #[test]
    fn fields_are_top_level_json_without_time_or_target() {
        let captured = LogCapture::default();
        let writer = captured.clone();
        tracing::subscriber::with_default(super::subscriber(move || writer.clone()), || {
            tracing::info!(records_failed = 2u64, rule_failed = true, "summary");
        });
        let text = captured.text();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["records_failed"], 2);
        assert_eq!(line["rule_failed"], true);
        assert_eq!(line["message"], "summary");
        assert!(
            line.get("timestamp").is_none() && line.get("target").is_none(),
            "{line}"
        );
    }
}
