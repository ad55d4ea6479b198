//! lakewatch's event shell, plugin trait, pipeline and built-in plugins.
//!
//! Every record, JSON or a raw text line, becomes one [`Event`] in a fixed shell; plugins
//! registered here normalize it (keys, time, source, summary) and enrich it (addresses, …).
//! The Firehose transform Lambda, the S3-ingest Lambda and the local CLI all run the same
//! [`Pipeline`], built with [`builtin_pipeline`].
//!
//! Adding a plugin is one file (a type implementing [`Plugin`], with its tests beside it) and
//! one line in [`builtin_plugins`].

pub mod authentication;
mod bytewise;
/// Also the local engine's JSON path scanner's test for the end of a string.
pub use bytewise::find_quote_or_backslash;
pub mod cloudfront;
pub mod cloudtrail;
pub mod content;
pub mod declarative;
pub mod envelope;
pub mod framing;
pub mod geoip;
pub mod gsuite;
pub mod intake;
pub mod ipaddress;
pub mod lowercase_keys;
pub mod pipeline;
pub mod plugin;
pub mod record_json;
pub mod s3_audit;
pub mod shell;
pub mod sources;
pub mod syslog;
pub mod timestamp;
pub mod unrecognised;
pub mod useragent;
pub mod vpcflow;

pub use pipeline::{Outcome, Pipeline, PluginTally, Record, SourceTally, Tally};
pub use plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
pub use shell::{Event, Origin, RecordKind};

/// Settings of the built-in plugins that depend on the deployment.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {
    /// A MaxMind-format City database (GeoLite2-City.mmdb or the like): events get
    /// `details.sourcegeo` (city, country, coordinates). Without it and without
    /// `geoip_asn_database` the `geoip` plugin is left out. See [`geoip`].
    pub geoip_city_database: Option<std::path::PathBuf>,
    /// A MaxMind-format ASN database (GeoLite2-ASN.mmdb): adds `asn` and `asorg` to
    /// `details.sourcegeo`.
    pub geoip_asn_database: Option<std::path::PathBuf>,
    /// The declarative sources (`*.toml`, see [`declarative`]): the bundled ones unless
    /// turned off, the user's directories, or the files a Lambda read from S3.
    pub sources: content::ContentSet,
}

/// Environment variable naming the City database (a path, e.g. in a Lambda layer under /opt).
pub const GEOIP_CITY_ENV: &str = "LAKEWATCH_GEOIP_CITY_DATABASE";
/// Environment variable naming the ASN database.
pub const GEOIP_ASN_ENV: &str = "LAKEWATCH_GEOIP_ASN_DATABASE";

impl PluginConfig {
    /// The settings from the environment, as the Lambdas get them (Terraform sets them when a
    /// GeoIP layer is configured). An empty value counts as unset.
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(std::path::PathBuf::from)
        };
        PluginConfig {
            geoip_city_database: path(GEOIP_CITY_ENV),
            geoip_asn_database: path(GEOIP_ASN_ENV),
            sources: content::ContentSet::default(),
        }
    }
}

/// What setting up the built-in plugins has to tell the operator once, at start (a plugin left
/// out because it is not configured, and how to enable it). Log each at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigNotes(pub Vec<String>);

/// Why the built-in plugins could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Every built-in plugin, in one list: the registry.
pub fn builtin_plugins(config: &PluginConfig) -> Result<Vec<Box<dyn Plugin>>, ConfigError> {
    builtin_plugins_with_notes(config).map(|(plugins, _)| plugins)
}

/// [`builtin_plugins`], with what the operator should be told about the configuration.
pub fn builtin_plugins_with_notes(
    config: &PluginConfig,
) -> Result<(Vec<Box<dyn Plugin>>, ConfigNotes), ConfigError> {
    let mut notes = ConfigNotes::default();
    let mut plugins: Vec<Box<dyn Plugin>> = vec![
        Box::new(lowercase_keys::LowercaseKeys),
        Box::new(timestamp::Timestamp),
        Box::new(ipaddress::IpAddress),
        Box::new(useragent::UserAgent::default()),
        Box::new(syslog::Syslog),
        Box::new(gsuite::Gsuite),
        Box::new(cloudtrail::CloudTrail),
        Box::new(vpcflow::VpcFlow),
        Box::new(cloudfront::CloudFront),
        Box::new(authentication::Authentication),
        Box::new(s3_audit::S3Audit),
    ];
    // Declarative sources: the bundled files and the user's.
    for source in declarative::load(&config.sources).map_err(|e| ConfigError(e.to_string()))? {
        plugins.push(Box::new(source));
    }
    // Plugins that depend on the deployment's configuration.
    if let Some(geoip) = geoip::GeoIp::from_config(config, &mut notes)? {
        plugins.push(Box::new(geoip));
    }
    Ok((plugins, notes))
}

/// The pipeline of every built-in plugin.
pub fn builtin_pipeline(config: &PluginConfig) -> Result<Pipeline, ConfigError> {
    Ok(Pipeline::new(builtin_plugins(config)?))
}
