//! The local stack: everything the AWS deployment does, on one machine, with no account.
//!
//! - an embedded S3-compatible server ([`store`]: s3s + s3s-fs, SigV4 checked) holding the
//!   bucket under a local directory, or any external S3-compatible endpoint;
//! - the S3 website endpoint ([`site`]) applying website-rules.json ([`website`]) exactly as
//!   S3 applies routing rules;
//! - the resizer's own `handle`, mounted at `/resize`, talking to the store through
//!   aws-sdk-s3 as it does in Lambda.
//!
//! Used by `main.rs` and by the end-to-end tests, which start it on ephemeral ports.

pub mod site;
pub mod store;
pub mod website;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Access key of the embedded store unless another is given.
pub const DEFAULT_ACCESS_KEY: &str = "devserver";
/// Secret key of the embedded store unless another is given.
pub const DEFAULT_SECRET_KEY: &str = "devserver-secret-key";
/// The region the SDK signs for.
pub const REGION: &str = "us-east-1";
/// The committed sample photograph (CC0), uploaded as `samples/seeding.jpg`.
pub const SAMPLE_PHOTO: &[u8] = include_bytes!("../../samples/seeding.jpg");
/// The project's website-rules.json as of this build; `--rules` reads another file.
pub const RULES_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../website-rules.json");

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Website endpoint (and `/resize`). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Embedded S3 server. Ignored with `s3_endpoint`.
    pub s3_listen: SocketAddr,
    /// Where the embedded store keeps objects.
    pub data_dir: PathBuf,
    /// Use this S3-compatible endpoint instead of the embedded store.
    pub s3_endpoint: Option<String>,
    /// The bucket (created if missing).
    pub bucket: String,
    /// Credentials for the store (checked by the embedded one).
    pub access_key: String,
    /// See `access_key`.
    pub secret_key: String,
    /// The website configuration template (website-rules.json's text).
    pub rules_template: String,
    /// Resizer settings (ALLOWED_RESOLUTIONS, MAX_DIMENSION, ...). BUCKET, PUBLIC_BASE_URL and
    /// S3_FORCE_PATH_STYLE are set by the devserver.
    pub resizer_env: HashMap<String, String>,
    /// Upload the sample photograph and an index page when they are missing.
    pub upload_samples: bool,
}

impl Options {
    /// Defaults for everything: loopback ports, `.devserver-data`, the project's rules.
    pub fn new(rules_template: String) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            s3_listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            data_dir: PathBuf::from(".devserver-data"),
            s3_endpoint: None,
            bucket: "images".into(),
            access_key: DEFAULT_ACCESS_KEY.into(),
            secret_key: DEFAULT_SECRET_KEY.into(),
            rules_template,
            resizer_env: HashMap::new(),
            upload_samples: true,
        }
    }
}

/// A running stack. Dropping it stops the servers.
pub struct DevServer {
    /// `http://127.0.0.1:PORT`, the website endpoint (also PUBLIC_BASE_URL).
    pub website_url: String,
    /// The S3 endpoint in use.
    pub s3_endpoint: String,
    /// The bucket.
    pub bucket: String,
    client: aws_sdk_s3::Client,
    counters: store::Counters,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DevServer {
    /// An S3 client for the store, signed with the configured credentials.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// GetObject requests the embedded store has served for `key` (0 with an external store).
    pub fn object_reads(&self, key: &str) -> usize {
        self.counters.reads.get(key)
    }

    /// Successful PutObject writes of `key` in the embedded store (0 with an external store).
    pub fn object_writes(&self, key: &str) -> usize {
        self.counters.writes.get(key)
    }

    /// Starts the store (unless external), creates the bucket, uploads samples, and serves
    /// the website endpoint.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let counters = store::Counters::default();
        let s3_endpoint = match &opts.s3_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => {
                let store = store::Store::new(&opts.data_dir, counters.clone())?;
                let service = store::service(store, &opts.access_key, &opts.secret_key);
                let listener = TcpListener::bind(opts.s3_listen)
                    .await
                    .with_context(|| format!("binding the S3 server to {}", opts.s3_listen))?;
                let addr = listener.local_addr()?;
                tasks.push(tokio::spawn(serve_http(listener, service)));
                format!("http://{addr}")
            }
        };

        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding the website endpoint to {}", opts.listen))?;
        let host = listener.local_addr()?.to_string();
        let website_url = format!("http://{host}");

        let website =
            website::WebsiteConfiguration::from_template(&opts.rules_template, "http", &host)
                .context("website-rules.json")?;

        let mut resizer_env = opts.resizer_env.clone();
        resizer_env.insert("BUCKET".into(), opts.bucket.clone());
        resizer_env.insert("PUBLIC_BASE_URL".into(), website_url.clone());
        resizer_env.insert("S3_FORCE_PATH_STYLE".into(), "true".into());
        let config = resizer::Config::from_lookup(|k| resizer_env.get(k).cloned())
            .context("resizer configuration")?;
        let client = s3_client(
            &s3_endpoint,
            &opts.access_key,
            &opts.secret_key,
            Some(resizer::handler::timeouts(&config)),
        );

        let mut devserver = Self {
            website_url,
            s3_endpoint,
            bucket: opts.bucket.clone(),
            client: client.clone(),
            counters,
            tasks,
        };
        if opts.s3_endpoint.is_none() {
            devserver.ensure_bucket().await?;
        }
        if opts.upload_samples {
            devserver.upload_samples().await?;
        }

        let site = Arc::new(site::Site {
            website,
            client: client.clone(),
            bucket: opts.bucket.clone(),
            resizer: resizer::App::new(config, client),
            host,
        });
        let service = hyper::service::service_fn(move |req| site::serve(Arc::clone(&site), req));
        devserver.tasks.push(tokio::spawn(serve_http(listener, service)));
        Ok(devserver)
    }

    async fn ensure_bucket(&self) -> anyhow::Result<()> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .with_context(|| format!("creating bucket {}", self.bucket))?;
        Ok(())
    }

    /// Uploads the sample photograph and the index page if they are not there yet, with the
    /// resizer's own create-only write, so nothing already in the bucket is replaced.
    async fn upload_samples(&self) -> anyhow::Result<()> {
        let store = resizer::store::Store::new(self.client.clone(), self.bucket.clone());
        let index = include_str!("index.html");
        for (key, body, content_type, cache_control) in [
            ("samples/seeding.jpg", SAMPLE_PHOTO, "image/jpeg", "public, max-age=3600"),
            ("index.html", index.as_bytes(), "text/html; charset=utf-8", "no-cache"),
        ] {
            let outcome = store
                .put_if_absent(key, body.to_vec(), content_type, cache_control)
                .await
                .with_context(|| format!("uploading {key}"))?;
            if outcome == resizer::store::PutOutcome::Created {
                tracing::info!(key, "uploaded sample");
            }
        }
        Ok(())
    }
}

/// An S3 client for an S3-compatible endpoint on loopback: path-style, fixed credentials.
pub fn s3_client(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    timeouts: Option<aws_sdk_s3::config::timeout::TimeoutConfig>,
) -> aws_sdk_s3::Client {
    let credentials =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "devserver");
    let mut builder = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials);
    if let Some(t) = timeouts {
        builder = builder.timeout_config(t);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Accepts connections until the task is aborted, HTTP/1.1 and HTTP/2.
async fn serve_http<S, B>(listener: TcpListener, service: S)
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("accept: {e}");
                continue;
            }
        };
        let conn = builder.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}
