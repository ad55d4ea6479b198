//! What an invocation asks for: objects to ingest (from an S3 notification, delivered directly,
//! through SQS, through SNS, or by EventBridge), or a scheduled pull.
//!
//! Object keys in S3 notifications (and in EventBridge's S3 events) are URL-encoded the way
//! HTML forms are: a space is `+`, a real `+` is `%2B`. They are decoded here, once, so every
//! key past this module is the object's real key.
//!
//! Each object stands alone: a key that does not decode, or an SQS message whose body is not a
//! notification, is [`Rejected`] by itself and the other objects of the invocation still go
//! through. Objects and rejections that came in an SQS message carry its `messageId`, so the
//! handler can answer SQS with only the failed messages (`ReportBatchItemFailures`).

use lakewatch_aws::pull::PullConfig;
use lakewatch_aws::s3_objects::ObjectRef;
use serde_json::Value;

/// What to do for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Ingest these objects. `skipped` counts notifications that are not object creations
    /// (deletions, S3's test event) and were ignored on purpose.
    Objects {
        objects: Vec<Notified>,
        skipped: Vec<String>,
        rejected: Vec<Rejected>,
    },
    /// Run a scheduled pull.
    Pull(PullConfig),
}

/// One object to ingest, and the SQS message that brought it, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub object: ObjectRef,
    pub message_id: Option<String>,
}

/// A notification (or SQS message) that names no object this function can read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: String,
    pub message_id: Option<String>,
}

/// Where the notification being read came from: the SQS message, if any.
#[derive(Clone, Copy)]
struct From<'a> {
    message_id: Option<&'a str>,
}

/// What one invocation names so far.
#[derive(Default)]
struct Found {
    objects: Vec<Notified>,
    skipped: Vec<String>,
    rejected: Vec<Rejected>,
}

/// The invocation's payload is not one this function understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unrecognised invocation: {0}; expected an S3 notification (direct, through SQS or SNS), an \
     EventBridge \"Object Created\" event, or {{\"pull\": {{\"bucket\": …}}}}"
)]
pub struct TriggerError(pub String);

/// Reads an invocation's payload.
pub fn parse(event: &Value) -> Result<Invocation, TriggerError> {
    if let Some(pull) = event.get("pull") {
        let config = serde_json::from_value(pull.clone())
            .map_err(|error| TriggerError(format!("the pull configuration is invalid: {error}")))?;
        return Ok(Invocation::Pull(config));
    }
    let mut found = Found::default();
    collect(event, &mut found, From { message_id: None })?;
    Ok(Invocation::Objects {
        objects: found.objects,
        skipped: found.skipped,
        rejected: found.rejected,
    })
}

/// Adds the objects of one notification (of any supported shape) to `found`.
fn collect(event: &Value, found: &mut Found, from: From<'_>) -> Result<(), TriggerError> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for record in records {
            collect_record(record, found, from)?;
        }
        return Ok(());
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return collect_eventbridge(event, found, from);
    }
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        found.skipped.push("s3:TestEvent".to_string());
        return Ok(());
    }
    // SNS delivered to SQS without raw message delivery: the notification is in `Message`.
    if event.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = event.get("Message").and_then(Value::as_str)
    {
        return collect(&parse_embedded(message, "SNS Message")?, found, from);
    }
    Err(TriggerError(format!(
        "no Records, EventBridge source or pull section in {}",
        excerpt(event)
    )))
}

fn collect_record(record: &Value, found: &mut Found, from: From<'_>) -> Result<(), TriggerError> {
    let source = record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match source {
        "aws:s3" => {
            let name = record
                .get("eventName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bucket = record.pointer("/s3/bucket/name").and_then(Value::as_str);
            let key = record.pointer("/s3/object/key").and_then(Value::as_str);
            let version = record
                .pointer("/s3/object/versionId")
                .and_then(Value::as_str);
            if !name.starts_with("ObjectCreated:") {
                found.skipped.push(format!(
                    "{name} s3://{}/{}",
                    bucket.unwrap_or("?"),
                    key.unwrap_or("?")
                ));
                return Ok(());
            }
            object(bucket, key, version, record, found, from)
        }
        "aws:sqs" => {
            let body = record
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let message_id = record.get("messageId").and_then(Value::as_str);
            let message = From { message_id };
            // In a real SQS batch (messages have ids) a bad message fails alone.
            let notification = parse_embedded(body, "SQS message body")
                .and_then(|body| collect(&body, found, message));
            match (notification, message_id) {
                (Err(error), Some(_)) => {
                    found.rejected.push(Rejected {
                        reason: error.0,
                        message_id: message_id.map(str::to_string),
                    });
                    Ok(())
                }
                (result, _) => result,
            }
        }
        "aws:sns" => {
            let message = record
                .pointer("/Sns/Message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            collect(&parse_embedded(message, "SNS message")?, found, from)
        }
        other => Err(TriggerError(format!(
            "a record from {other:?} (expected aws:s3, aws:sqs or aws:sns)"
        ))),
    }
}

fn collect_eventbridge(
    event: &Value,
    found: &mut Found,
    from: From<'_>,
) -> Result<(), TriggerError> {
    let kind = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bucket = event.pointer("/detail/bucket/name").and_then(Value::as_str);
    let key = event.pointer("/detail/object/key").and_then(Value::as_str);
    if kind != "Object Created" {
        found.skipped.push(format!(
            "{kind} s3://{}/{}",
            bucket.unwrap_or("?"),
            key.unwrap_or("?")
        ));
        return Ok(());
    }
    let version = event
        .pointer("/detail/object/version-id")
        .and_then(Value::as_str);
    object(bucket, key, version, event, found, from)
}

/// Adds one object, or its rejection when its key does not decode: that key fails alone.
fn object(
    bucket: Option<&str>,
    key: Option<&str>,
    version: Option<&str>,
    context: &Value,
    found: &mut Found,
    from: From<'_>,
) -> Result<(), TriggerError> {
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(TriggerError(format!(
            "an object event without bucket name or object key: {}",
            excerpt(context)
        )));
    };
    let message_id = from.message_id.map(str::to_string);
    match decode_key(key) {
        Ok(key) => found.objects.push(Notified {
            object: ObjectRef {
                bucket: bucket.to_string(),
                key,
                version_id: version
                    .filter(|v| !v.is_empty() && *v != "null")
                    .map(str::to_string),
            },
            message_id,
        }),
        Err(error) => found.rejected.push(Rejected {
            reason: format!("s3://{bucket}/{key}: {}", error.0),
            message_id,
        }),
    }
    Ok(())
}

/// Decodes a key from an S3 notification: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> Result<String, TriggerError> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| TriggerError(format!("object key {key:?} does not decode to UTF-8")))
}

fn parse_embedded(text: &str, what: &str) -> Result<Value, TriggerError> {
    serde_json::from_str(text).map_err(|error| {
        TriggerError(format!(
            "the {what} is not JSON ({error}): {}",
            text.chars().take(200).collect::<String>()
        ))
    })
}

fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn objects(invocation: Invocation) -> Vec<ObjectRef> {
        match invocation {
            Invocation::Objects { objects, .. } => objects.into_iter().map(|n| n.object).collect(),
            other => panic!("expected objects, got {other:?}"),
        }
    }

    fn object(bucket: &str, key: &str, version: Option<&str>) -> ObjectRef {
        ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version.map(str::to_string),
        }
    }

    #[test]
    fn keys_are_url_decoded_with_plus_as_space() {
        let cases = [
            ("plain.json", "plain.json"),
            ("a+b.json", "a b.json"),
            ("c%2B%2B/x.json", "c++/x.json"),
            (
                "logs/dt%3D2026-01-01/f%C3%BCr+alle.gz",
                "logs/dt=2026-01-01/für alle.gz",
            ),
            ("", ""),
        ];
        for (encoded, decoded) in cases {
            assert_eq!(decode_key(encoded).unwrap(), decoded, "{encoded}");
        }
        assert!(decode_key("bad%FF").is_err());
    }

    #[test]
    fn a_plain_s3_notification_gives_its_objects() {
        let invocation = parse(&fixture("s3-object-created.json")).unwrap();
        assert_eq!(
            objects(invocation),
            [object(
                "lakewatch-input",
                "incoming/cloud trail 2026-01-01.json.gz",
                Some("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")
            )]
        );
    }

    #[test]
    fn an_sqs_batch_of_s3_notifications_gives_every_object_and_skips_test_events() {
        let Invocation::Objects {
            objects, skipped, ..
        } = parse(&fixture("s3-object-created-sqs.json")).unwrap()
        else {
            panic!("expected objects")
        };
        assert_eq!(
            objects.iter().map(|n| &n.message_id).collect::<Vec<_>>(),
            [
                &Some("2e1424d4-f796-459a-8184-9c92662be6da".to_string()),
                &Some("3f2535e5-a7a6-4b6a-9295-ad03773cf7eb".to_string())
            ]
        );
        assert_eq!(
            objects.into_iter().map(|n| n.object).collect::<Vec<_>>(),
            [
                object("lakewatch-input", "syslog/host a.log", None),
                object("lakewatch-input", "audit/2026/01/01/00.json.gz", None),
            ]
        );
        assert_eq!(skipped, ["s3:TestEvent"]);
    }

    #[test]
    fn an_eventbridge_object_created_event_gives_its_object() {
        let invocation = parse(&fixture("s3-object-created-eventbridge.json")).unwrap();
        assert_eq!(
            objects(invocation),
            [object(
                "lakewatch-input",
                "vpc flow/2026-01-01.ndjson",
                Some("Xy9kPq.1")
            )]
        );
    }

    #[test]
    fn a_scheduled_pull_gives_its_configuration() {
        let Invocation::Pull(config) = parse(&fixture("s3-pull-schedule.json")).unwrap() else {
            panic!("expected a pull")
        };
        assert_eq!(config.bucket, "audit-logs");
        assert_eq!(config.prefix, "minio/audit/");
        assert_eq!(
            config.endpoint_url.as_deref(),
            Some("https://objects.example.net")
        );
        assert_eq!(config.lookback_days, 30);
    }

    #[test]
    fn deletions_are_skipped_by_name_not_ingested() {
        let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]});
        let Invocation::Objects {
            objects, skipped, ..
        } = parse(&event).unwrap()
        else {
            panic!()
        };
        assert!(objects.is_empty());
        assert_eq!(skipped, ["ObjectRemoved:Delete s3://b/k"]);
    }

    #[test]
    fn a_key_that_does_not_decode_or_a_bad_message_is_rejected_alone() {
        let created = |key: &str| {
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
        };
        let event = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": created("good%20one").to_string()},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": created("bad%FF").to_string()},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": "not json"},
        ]});
        let Invocation::Objects {
            objects, rejected, ..
        } = parse(&event).unwrap()
        else {
            panic!("expected objects")
        };
        assert_eq!(
            objects,
            [Notified {
                object: object("b", "good one", None),
                message_id: Some("m1".into())
            }]
        );
        assert_eq!(
            rejected
                .iter()
                .map(|r| r.message_id.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["m2", "m3"]
        );
        assert_eq!(
            rejected[0].reason,
            "s3://b/bad%FF: object key \"bad%FF\" does not decode to UTF-8"
        );
        // Directly from S3 the bad key is rejected and the other object still goes through.
        let mut direct = created("bad%FF");
        direct["Records"]
            .as_array_mut()
            .unwrap()
            .push(created("ok")["Records"][0].clone());
        let Invocation::Objects {
            objects, rejected, ..
        } = parse(&direct).unwrap()
        else {
            panic!("expected objects")
        };
        assert_eq!((objects.len(), rejected.len()), (1, 1));
        assert_eq!(rejected[0].message_id, None);
    }

    #[test]
    fn unknown_payloads_fail_with_what_was_expected() {
        let cases = [
            json!({"hello": 1}),
            json!({"Records": [{"eventSource": "aws:kinesis"}]}),
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}),
            json!({"Records": [{"eventSource": "aws:sqs", "body": "not json"}]}),
            json!({"pull": {"prefix": "x"}}),
        ];
        for event in cases {
            let error = parse(&event).unwrap_err().to_string();
            assert!(error.starts_with("unrecognised invocation: "), "{error}");
            assert!(error.contains("expected an S3 notification"), "{error}");
        }
    }
}
