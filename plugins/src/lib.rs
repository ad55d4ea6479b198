//! lakewatch's event shell, plugin trait, pipeline and built-in plugins.
//!
//! Every record, JSON or a raw text line, becomes one [`Event`] in a fixed shell; plugins
//! registered here normalize it (keys, time, source, summary) and enrich it (addresses, …).
//! The Firehose transform Lambda, the S3-ingest Lambda and the local CLI all run the same
//! [`Pipeline`], built with [`builtin_pipeline`].
//!
//! Adding a plugin is one file (a type implementing [`Plugin`], with its tests beside it) and
//! one line in [`builtin_plugins`].

pub mod cloudfront;
pub mod cloudtrail;
pub mod envelope;
pub mod framing;
pub mod gsuite;
pub mod ipaddress;
pub mod lowercase_keys;
pub mod pipeline;
pub mod plugin;
pub mod s3_audit;
pub mod shell;
pub mod timestamp;
pub mod sources;
pub mod syslog;
pub mod vpcflow;

pub use pipeline::{Outcome, Pipeline, Record, Tally};
pub use plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
pub use shell::{Event, HourPartition, Origin, RecordKind};

/// Settings of the built-in plugins that depend on the deployment.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {}

/// Why the built-in plugins could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Every built-in plugin, in one list: the registry.
pub fn builtin_plugins(_config: &PluginConfig) -> Result<Vec<Box<dyn Plugin>>, ConfigError> {
    Ok(vec![
        Box::new(lowercase_keys::LowercaseKeys),
        Box::new(timestamp::Timestamp),
        Box::new(ipaddress::IpAddress),
        Box::new(syslog::Syslog),
        Box::new(gsuite::Gsuite),
        Box::new(cloudtrail::CloudTrail),
        Box::new(vpcflow::VpcFlow),
        Box::new(cloudfront::CloudFront),
        Box::new(s3_audit::S3Audit),
    ])
}

/// The pipeline of every built-in plugin.
pub fn builtin_pipeline(config: &PluginConfig) -> Result<Pipeline, ConfigError> {
    Ok(Pipeline::new(builtin_plugins(config)?))
}
