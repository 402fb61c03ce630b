//! A queue subscribed to SNS topics with raw delivery: how the local runner
//! (and the tests) watch the order events and alerts a subscriber would get.

use aws_sdk_sqs::types::QueueAttributeName;
use foxrelay_shared::aws::AwsClients;

/// Why the subscription could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} for queue {queue}: {source}")]
pub struct SubscriptionError {
    pub what: &'static str,
    pub queue: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Creates (or reuses) the queue `name`, subscribes it to every topic in
/// `topic_arns` with raw message delivery, and returns its URL.
pub async fn subscribe_queue(
    clients: &AwsClients,
    topic_arns: &[&str],
    name: &str,
) -> Result<String, SubscriptionError> {
    let fail = |what: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| SubscriptionError {
            what,
            queue: name.to_owned(),
            source: e,
        }
    };
    let url = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| fail("create the queue")(e.into()))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = queue_arn(&clients.sqs, &url)
        .await
        .map_err(|e| fail("read the queue's ARN")(e.into()))?
        .unwrap_or_default();
    for topic in topic_arns {
        clients
            .sns
            .subscribe()
            .topic_arn(*topic)
            .protocol("sqs")
            .endpoint(&arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(|e| fail("subscribe")(e.into()))?;
    }
    Ok(url)
}

/// A queue's ARN (`None` if the service reports none).
pub async fn queue_arn(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<
    Option<String>,
    aws_sdk_sqs::error::SdkError<
        aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError,
    >,
> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(output
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned()))
}
