//! lakewatch's AWS SDK adapters: everything that calls an AWS API goes through here, with a
//! configurable endpoint so tests run the same code against a local server. One module per
//! service, each behind the cargo feature of that service, so a Lambda links only the SDKs it
//! calls; what each Lambda does with them (settings, run loop) is in `functions/<name>`.

#[cfg(feature = "athena")]
pub mod athena;
#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
pub mod config;
#[cfg(feature = "s3")]
pub mod content;
#[cfg(feature = "firehose")]
pub mod firehose;
#[cfg(feature = "glue")]
pub mod glue;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "extract")]
pub mod s3_lake;
#[cfg(feature = "s3")]
pub mod s3_state;
#[cfg(feature = "secretsmanager")]
pub mod secrets;
#[cfg(feature = "sns")]
pub mod sns;
// Reading objects and sending their records on (S3 and Firehose), and pulls from a bucket.
#[cfg(all(feature = "s3", feature = "firehose"))]
pub mod cursor;
#[cfg(all(feature = "s3", feature = "firehose"))]
pub mod pull;
#[cfg(all(feature = "s3", feature = "firehose"))]
pub mod s3_objects;
