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
#[cfg(feature = "s3")]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(all(test, feature = "s3"))]
mod tests {
    use super::*;
    use lakewatch_testkit::moto::MotoServer;

    #[tokio::test]
    async fn an_explicit_endpoint_overrides_the_environment() {
        let config = load(Some("http://127.0.0.1:9")).await;
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:9"));
    }

    #[tokio::test]
    async fn s3_client_on_a_custom_endpoint_uses_path_style_addressing() {
        // By host name: for an IP address the SDK picks path style by itself. Virtual-hosted
        // style would send requests to `lake.localhost`, which does not resolve.
        let server = MotoServer::start();
        let endpoint = server.endpoint().replace("127.0.0.1", "localhost");
        let config = server
            .sdk_config()
            .await
            .to_builder()
            .endpoint_url(endpoint)
            .build();
        let s3 = s3_client(&config);
        s3.create_bucket().bucket("lake").send().await.unwrap();
        s3.put_object()
            .bucket("lake")
            .key("events/a key.json.gz")
            .body(b"{}".to_vec().into())
            .send()
            .await
            .unwrap();
        let listed = s3.list_objects_v2().bucket("lake").send().await.unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["events/a key.json.gz"]);
    }
}
