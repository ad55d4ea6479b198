//! Small JSON state documents as S3 objects with compare-and-swap: read with their ETag,
//! written with `If-Match` on that ETag (or `If-None-Match: *` when there was none), so that of
//! two overlapping runs only one can write. This is the AWS [`VersionedStore`]; the pull cursor
//! and the detector's rule state are kept in it.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use lakewatch_lake::versioned::{Versioned, VersionedStore, WriteError};

/// Documents under `s3://bucket/prefix`, versioned by their ETags.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// `prefix` is used as given: end it with `/` for a "directory".
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// The key of the document `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl VersionedStore for S3Store {
    fn location(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name))
    }

    async fn read(&self, name: &str) -> Result<Option<Versioned>, String> {
        read(&self.client, &self.bucket, &self.key(name)).await
    }

    async fn write(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<String, WriteError> {
        write(&self.client, &self.bucket, &self.key(name), bytes, expected).await
    }
}

/// Reads `s3://bucket/key` with its ETag; `None` when there is no such object.
pub(crate) async fn read(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Versioned>, String> {
    let output = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => output,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Ok(None);
        }
        Err(error) => {
            let denied = error
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 403);
            let hint = if denied {
                " (S3 answers 403 also for a missing object when the role may not \
                 s3:ListBucket the bucket: allow it for the state prefix)"
            } else {
                ""
            };
            return Err(format!("{}{hint}", DisplayErrorContext(&error)));
        }
    };
    let Some(version) = output.e_tag().map(str::to_string) else {
        return Err("S3 returned no ETag".to_string());
    };
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .into_bytes()
        .to_vec();
    Ok(Some(Versioned { bytes, version }))
}

/// Writes JSON to `s3://bucket/key` if the object is still at `expected` (`None`: if there is
/// no object); returns the new ETag. 412 PreconditionFailed, or 409 ConditionalRequestConflict
/// when another conditional write to it is in flight, is a [`WriteError::Conflict`].
async fn write(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    expected: Option<&str>,
) -> Result<String, WriteError> {
    let put = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body));
    let put = match expected {
        Some(etag) => put.if_match(etag),
        None => put.if_none_match("*"),
    };
    match put.send().await {
        Ok(output) => output.e_tag().map(str::to_string).ok_or_else(|| {
            WriteError::Failed("S3 returned no ETag for the written object".to_string())
        }),
        Err(error)
            if error
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
        {
            Err(WriteError::Conflict)
        }
        Err(error) => Err(WriteError::Failed(DisplayErrorContext(&error).to_string())),
    }
}
