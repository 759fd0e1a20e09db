//! The events Lambda: S3 event notifications, delivered through SQS, purge the sizes of a
//! changed or deleted original, reject uploads that are not images, and make the
//! PREGENERATE sizes (resizer::events). Configuration once, one S3 client, one CloudFront
//! client; failed messages are reported back to SQS one by one.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use resizer::events::{CloudFrontInvalidator, Events, EventsConfig, Invalidator};
use resizer::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    let events_config = EventsConfig::from_lookup(
        |name| std::env::var(name).ok(),
        &config.allowed,
        &config.formats,
        config.max_dimension,
    )
    .map_err(|e| format!("configuration: {e}"))?;
    let client = resizer::handler::s3_client_from_env(&config).await;
    let invalidator = match &events_config.distribution_id {
        Some(id) => {
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let cloudfront = aws_sdk_cloudfront::Client::new(&shared);
            Some(Arc::new(CloudFrontInvalidator::new(cloudfront, id.clone()))
                as Arc<dyn Invalidator>)
        }
        None => None,
    };
    let events = Events::new(App::new(config, client), events_config, invalidator);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let events = events.clone();
        async move { Ok::<_, Error>(events.handle_sqs(event.payload).await) }
    }))
    .await
}
