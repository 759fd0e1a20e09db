//! The resizer Lambda: configuration once, one S3 client, the handler under lambda_http.

use lambda_http::{service_fn, Error};
use resizer::{handle, App, Config};

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
    let client = resizer::handler::s3_client_from_env(&config).await;
    let app = App::new(config, client);
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&app, req).await) }
    }))
    .await
}
