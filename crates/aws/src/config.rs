//! Where the AWS clients connect, and with which identity.
//!
//! Everything comes from the standard places the AWS CLI and SDKs read (region, the credentials
//! chain, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`), so a Lambda picks up its role and
//! region with no configuration, and tests point the very same code at a local moto server by
//! setting one endpoint. An explicit endpoint (e.g. a `--endpoint-url` flag) overrides the
//! environment.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the standard environment, with `endpoint` (when given)
/// overriding `AWS_ENDPOINT_URL` for every service.
pub async fn load(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client for `config`.
///
/// With a custom endpoint (from the config or `AWS_ENDPOINT_URL_S3`) it uses path-style
/// addressing (`http://host/bucket/key`): S3-compatible servers such as moto or MinIO do not
/// resolve `bucket.host` names. Against AWS itself the default virtual-hosted style stays.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
