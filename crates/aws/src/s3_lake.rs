//! The lake bucket as the detection extract pass sees it ([`LakeObjects`]): the `events/`
//! objects listed with their ETags, each read as a stream of chunks as S3 sends them, and
//! extract objects put whole. SDK calls only; the pass is `lakewatch_detect::extract`.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use lakewatch_detect::extract::{LakeObject, LakeObjects};
use lakewatch_lake::layout::is_data_file_name;
use lakewatch_lake::schema::EVENTS;

/// Keys per listing page (S3's largest).
const PAGE_SIZE: i32 = 1000;

/// The lake bucket's event objects, and its extract.
#[derive(Debug, Clone)]
pub struct S3Lake {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Lake {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Lake {
            client,
            bucket: bucket.into(),
        }
    }
}

impl LakeObjects for S3Lake {
    type Body = ByteStream;

    async fn list_events(&self) -> Result<Vec<LakeObject>, String> {
        let prefix = format!("{}/", EVENTS.prefix);
        let mut objects = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .max_keys(PAGE_SIZE)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "s3://{}/{prefix}: cannot list: {}",
                        self.bucket,
                        DisplayErrorContext(&e)
                    )
                })?;
            objects.extend(page.contents().iter().filter_map(|object| {
                let key = object.key()?;
                let name = key.rsplit('/').next().unwrap_or(key);
                is_data_file_name(name).then(|| LakeObject {
                    key: key.to_string(),
                    version: object.e_tag().unwrap_or_default().to_string(),
                })
            }));
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => {
                    continuation = Some(token.to_string())
                }
                _ => return Ok(objects),
            }
        }
    }

    async fn open(&self, key: &str) -> Result<ByteStream, String> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("s3://{}/{key}: {}", self.bucket, DisplayErrorContext(&e)))?;
        Ok(output.body)
    }

    async fn next_chunk(&self, body: &mut ByteStream) -> Result<Option<Vec<u8>>, String> {
        body.try_next()
            .await
            .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
            .map_err(|e| {
                format!(
                    "s3://{}: reading broke off: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                )
            })
    }

    async fn write(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        crate::s3::put(
            &self.client,
            &self.bucket,
            key,
            "application/x-ndjson",
            bytes,
        )
        .await
    }
}
