//! Publishing to an SNS topic.

use aws_sdk_sns::error::DisplayErrorContext;

/// Publishes `message` on `topic_arn`; the error names the topic.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    message: &str,
) -> Result<(), String> {
    sns.publish()
        .topic_arn(topic_arn)
        .message(message)
        .send()
        .await
        .map_err(|e| format!("SNS topic {topic_arn}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}
