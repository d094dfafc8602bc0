//! `provision --genesys-base-url URL [--prefix NAME]`: creates on the AWS endpoint the
//! environment points at (moto, through `AWS_ENDPOINT_URL`) the resources the functions use —
//! the table (the production key design), the queues with their dead-letter queues, and the
//! secrets — and prints their names as JSON. Used by `make demo` and the smoke test.

use anyhow::Context;
use serde_json::json;

async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> anyhow::Result<(String, String)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await?
        .queue_url
        .context("dlq url")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("dlq arn")?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()})
            .to_string();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    Ok((url, dlq_url))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut genesys_base_url = None;
    let mut prefix = "presence-autopilot".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--genesys-base-url" => genesys_base_url = args.next(),
            "--prefix" => prefix = args.next().context("--prefix needs a value")?,
            other => anyhow::bail!(
                "unknown argument {other}; usage: provision --genesys-base-url URL [--prefix NAME]"
            ),
        }
    }
    let genesys_base_url = genesys_base_url.context("--genesys-base-url is required")?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);

    let table = format!("{prefix}-state");
    presence_autopilot::aws::dynamo::DynamoStore::create_table(&dynamodb, &table)
        .await
        .context("create table")?;
    let (events_queue, events_dlq) = queue_with_dlq(&sqs, &format!("{prefix}-events"), 3).await?;
    let (notifications_queue, notifications_dlq) =
        queue_with_dlq(&sqs, &format!("{prefix}-notifications"), 4).await?;
    let genesys_secret = format!("{prefix}/genesys");
    secrets
        .create_secret()
        .name(&genesys_secret)
        .secret_string(
            json!({"clientId": "demo-client", "clientSecret": "demo-secret", "region": "mypurecloud.com", "apiBaseUrl": genesys_base_url})
                .to_string(),
        )
        .send()
        .await
        .context("create Genesys secret")?;
    println!(
        "{}",
        json!({
            "TABLE_NAME": table,
            "EVENTS_QUEUE_URL": events_queue,
            "EVENTS_DLQ_URL": events_dlq,
            "NOTIFICATIONS_QUEUE_URL": notifications_queue,
            "NOTIFICATIONS_DLQ_URL": notifications_dlq,
            "GENESYS_SECRET_ID": genesys_secret,
        })
    );
    Ok(())
}
