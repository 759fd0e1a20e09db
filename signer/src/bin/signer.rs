//! The signer Lambda: CloudFront signed URLs and cookies, S3 presigned uploads and
//! downloads, behind API Gateway's JWT authorizer.

use lambda_http::{service_fn, Error};
use signer::config::Config;
use signer::handler::{handle, App};

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
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let app = App::build(config, &sdk).await.map_err(|e| format!("start-up: {e}"))?;
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&app, req).await) }
    }))
    .await
}
