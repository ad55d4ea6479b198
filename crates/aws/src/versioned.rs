//! Small JSON state objects in S3 with compare-and-swap: read with their ETag, written with
//! `If-Match` on that ETag (or `If-None-Match: *` when there was none), so that of two
//! overlapping runs only one can write. The pull cursor and the detector's rule state use it.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// An object's bytes and the ETag they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

/// Why a conditional write did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The object changed (or appeared) since it was read: 412 PreconditionFailed, or 409
    /// ConditionalRequestConflict when another conditional write to it is in flight.
    Conflict,
    /// Anything else, as text.
    Failed(String),
}

/// Reads `s3://bucket/key`; `None` when there is no such object.
pub async fn read(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Read>, String> {
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
    let etag = output.e_tag().map(str::to_string);
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .into_bytes()
        .to_vec();
    Ok(Some(Read { bytes, etag }))
}

/// Writes JSON to `s3://bucket/key` if the object is still at `expected` (`None`: if there is
/// no object); returns the new ETag.
pub async fn write(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    expected: Option<&str>,
) -> Result<Option<String>, WriteError> {
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
        Ok(output) => Ok(output.e_tag().map(str::to_string)),
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
