//! Content (rules, sources, saved queries) from the lake bucket, as the Lambdas read it at
//! cold start: `terraform apply` validates the bundled and the user's content and uploads one
//! bundle per kind below a content prefix ([`lakewatch_lake::layout::content_bundle_key`]);
//! a changed rule file then needs an apply, not a new Lambda package.

use lakewatch_lake::layout::content_bundle_key;
use lakewatch_plugins::content::{Bundle, ContentSet, Kind};

/// Environment variable naming the bucket that holds the content.
pub const BUCKET_ENV: &str = "LAKEWATCH_CONTENT_BUCKET";
/// Environment variable naming the content prefix (`content/`).
pub const PREFIX_ENV: &str = "LAKEWATCH_CONTENT_PREFIX";

/// Where the content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLocation {
    pub bucket: String,
    pub prefix: String,
}

impl ContentLocation {
    /// From [`BUCKET_ENV`] and [`PREFIX_ENV`]; `None` when the bucket is unset or empty (the
    /// content embedded in the binary is used then). A prefix without a trailing `/` gets one.
    pub fn from_env() -> Option<ContentLocation> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<ContentLocation> {
        let bucket = var(BUCKET_ENV).filter(|b| !b.is_empty())?;
        let prefix =
            var(PREFIX_ENV).unwrap_or_else(|| lakewatch_lake::layout::CONTENT_PREFIX.into());
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix
        } else {
            format!("{prefix}/")
        };
        Some(ContentLocation { bucket, prefix })
    }
}

/// One kind of content, read from its bundle: exactly those files (the upload holds the
/// bundled ones too, unless the deployment turned them off). A missing or malformed bundle
/// is an error: a Lambda must not run with other content than was deployed.
pub async fn load(
    s3: &aws_sdk_s3::Client,
    location: &ContentLocation,
    kind: Kind,
) -> Result<ContentSet, String> {
    let key = content_bundle_key(&location.prefix, kind);
    let url = format!("s3://{}/{key}", location.bucket);
    let bytes = crate::s3::get_if_exists(s3, &location.bucket, &key)
        .await?
        .ok_or_else(|| {
            format!(
                "{url}: no such object: `terraform apply` uploads the {} there",
                kind.name()
            )
        })?;
    let bundle = Bundle::from_json(&url, &bytes).map_err(|e| e.to_string())?;
    Ok(ContentSet::only_files(bundle.files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_comes_from_the_environment_with_a_slash_ended_prefix() {
        let vars = |bucket: Option<&str>, prefix: Option<&str>| {
            ContentLocation::from_vars(move |name| match name {
                BUCKET_ENV => bucket.map(str::to_string),
                PREFIX_ENV => prefix.map(str::to_string),
                _ => None,
            })
        };
        assert_eq!(vars(None, Some("content/")), None);
        assert_eq!(vars(Some(""), None), None);
        let location = vars(Some("lake"), Some("my/content")).unwrap();
        assert_eq!(location.prefix, "my/content/");
        assert_eq!(vars(Some("lake"), None).unwrap().prefix, "content/");
    }
}
