//! Secrets Manager: a secret's text ([`secret_string`], for the detector's destinations), and
//! credentials for an S3-compatible store outside AWS kept in a secret
//! ([`credentials_from_secret`]).
//!
//! A credentials secret's value is a JSON object:
//!
//! ```json
//! {"access_key_id": "…", "secret_access_key": "…", "session_token": "… (optional)"}
//! ```
//!
//! (`AccessKeyId`/`SecretAccessKey`/`SessionToken` and `aws_access_key_id`/… are accepted too.)
//! Nothing of the value ever reaches a log or an error message: errors name the secret and
//! the fields that are missing, never what it holds.

use aws_sdk_s3::config::Credentials;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde::Deserialize;

/// The secret could not be turned into credentials.
#[derive(Debug, thiserror::Error)]
#[error("secret {secret}: {reason}")]
pub struct SecretError {
    pub secret: String,
    pub reason: String,
}

#[derive(Deserialize)]
struct KeyPair {
    #[serde(
        alias = "AccessKeyId",
        alias = "aws_access_key_id",
        alias = "accessKeyId"
    )]
    access_key_id: Option<String>,
    #[serde(
        alias = "SecretAccessKey",
        alias = "aws_secret_access_key",
        alias = "secretAccessKey"
    )]
    secret_access_key: Option<String>,
    #[serde(
        alias = "SessionToken",
        alias = "aws_session_token",
        alias = "sessionToken"
    )]
    session_token: Option<String>,
}

/// Reads the secret and returns the credentials it holds.
pub async fn credentials_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Credentials, SecretError> {
    parse(secret_id, &secret_string(client, secret_id).await?)
}

/// The text of secret `secret_id` (an ARN or a name); a secret without text is an error. The
/// error never shows the value.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| SecretError {
            secret: secret_id.to_string(),
            reason: format!(
                "cannot read it ({}); check the ARN and that the function may call \
                 secretsmanager:GetSecretValue on it",
                DisplayErrorContext(&error)
            ),
        })?;
    output
        .secret_string()
        .map(str::to_string)
        .ok_or_else(|| SecretError {
            secret: secret_id.to_string(),
            reason: "it holds binary data, not text".to_string(),
        })
}

fn parse(secret_id: &str, value: &str) -> Result<Credentials, SecretError> {
    let fail = |reason: &str| SecretError {
        secret: secret_id.to_string(),
        reason: reason.to_string(),
    };
    // serde's messages may quote the value: they are replaced, never shown.
    let pair: KeyPair = serde_json::from_str(value).map_err(|_| {
        fail(
            "the value is not a JSON object of strings with access_key_id and secret_access_key \
             (the value itself is not shown)",
        )
    })?;
    match (pair.access_key_id, pair.secret_access_key) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Credentials::new(
            id,
            secret,
            pair.session_token.filter(|t| !t.is_empty()),
            None,
            "lakewatch-pull-secret",
        )),
        (id, _) => Err(fail(if id.as_deref().is_none_or(str::is_empty) {
            "access_key_id is missing or empty"
        } else {
            "secret_access_key is missing or empty"
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_snake_case_and_aws_style_fields() {
        let credentials = parse("s", r#"{"access_key_id":"AK","secret_access_key":"SK"}"#).unwrap();
        assert_eq!(credentials.access_key_id(), "AK");
        assert_eq!(credentials.secret_access_key(), "SK");
        assert_eq!(credentials.session_token(), None);
        let credentials = parse(
            "s",
            r#"{"AccessKeyId":"AK","SecretAccessKey":"SK","SessionToken":"T"}"#,
        )
        .unwrap();
        assert_eq!(credentials.session_token(), Some("T"));
    }

    #[test]
    fn errors_name_what_is_missing_and_never_show_the_value() {
        let cases = [
            (
                r#"{"secret_access_key":"hunter2"}"#,
                "access_key_id is missing",
            ),
            (
                r#"{"access_key_id":"AK","secret_access_key":""}"#,
                "secret_access_key is missing",
            ),
            (
                r#"{"access_key_id": 12345678, "secret_access_key":"hunter2"}"#,
                "not a JSON object",
            ),
            ("hunter2", "not a JSON object"),
        ];
        for (value, expected) in cases {
            let error = parse("arn:secret", value).unwrap_err().to_string();
            assert!(error.starts_with("secret arn:secret: "), "{error}");
            assert!(error.contains(expected), "{value}: {error}");
            assert!(
                !error.contains("hunter2") && !error.contains("12345678"),
                "{error}"
            );
        }
    }

    #[test]
    fn credentials_debug_output_does_not_show_the_secret_key() {
        let credentials = parse(
            "s",
            r#"{"access_key_id":"AK","secret_access_key":"hunter2"}"#,
        )
        .unwrap();
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
