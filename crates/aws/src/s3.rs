//! Plain S3 calls shared by the functions: listing the names directly under a prefix, and
//! getting and putting a small object.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// Every common prefix and key directly under `prefix` (delimiter `/`), page by page with
/// `page_size` keys per page (S3 returns at most 1000).
pub async fn list_names(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    page_size: i32,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .max_keys(page_size)
            .set_continuation_token(continuation.take())
            .send()
            .await
            .map_err(|error| DisplayErrorContext(&error).to_string())?;
        names.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|common| common.prefix().map(str::to_owned)),
        );
        names.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(token) if page.is_truncated() == Some(true) => {
                continuation = Some(token.to_owned())
            }
            _ => return Ok(names),
        }
    }
}

/// Puts `body` at `s3://bucket/key`, replacing what is there; the error names the object.
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| format!("s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

/// The bytes of the small object `s3://bucket/key`; `None` when there is no such object.
pub async fn get_if_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    crate::s3_state::read(s3, bucket, key)
        .await
        .map(|read| read.map(|read| read.bytes))
        .map_err(|e| format!("s3://{bucket}/{key}: {e}"))
}
