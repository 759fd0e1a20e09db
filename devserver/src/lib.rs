//! The local stack: everything the AWS deployment does, on one machine, with no account.
//!
//! - an embedded S3-compatible server ([`store`]: s3s + s3s-fs, SigV4 checked) holding the
//!   bucket under a local directory, or any external S3-compatible endpoint;
//! - the S3 website endpoint ([`site`]) applying website-rules.json ([`website`]) exactly as
//!   S3 applies routing rules;
//! - the resizer's own `handle`, mounted at `/resize`, talking to the store through
//!   aws-sdk-s3 as it does in Lambda;
//! - the signer mounted at `/api/`, a development sign-in, the CloudFront-like private-path
//!   check ([`private`]), the bucket's CORS configuration on the store ([`cors`]) and the
//!   demo pages ([`pages`]) published into the bucket.
//!
//! Used by `main.rs` and by the end-to-end tests, which start it on ephemeral ports.

pub mod api;
pub mod auth;
pub mod cors;
pub mod pages;
pub mod private;
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
/// The key pair id of the devserver's CloudFront key unless another is given.
pub const DEV_KEY_PAIR_ID: &str = "KDEVSERVER";
/// The sample photograph's copy in the private demo gallery.
pub const PRIVATE_SAMPLE_KEY: &str = "private/galleries/demo/seeding.jpg";

/// The client address of a connection, put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

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
    /// The CloudFront private key (PEM). `None` generates an RSA-2048 key at start-up.
    pub cloudfront_private_key: Option<String>,
    /// Signer settings (CLOUDFRONT_KEY_PAIR_ID, CLOUDFRONT_HASH_ALGORITHM, SIGNED_URL_TTL,
    /// MAX_UPLOAD_BYTES, ...). BUCKET, PUBLIC_BASE_URL, the private key and
    /// S3_FORCE_PATH_STYLE are set by the devserver.
    pub signer_env: HashMap<String, String>,
    /// PRIVATE_PATHS: the path patterns that need a signature.
    pub private_paths: String,
    /// The embedded store's CORS configuration. `None`: one rule letting the website
    /// endpoint's pages upload ([`cors::CorsRule::for_pages`]).
    pub cors: Option<cors::CorsConfiguration>,
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
            cloudfront_private_key: None,
            signer_env: HashMap::new(),
            private_paths: keyspace::PrivatePaths::DEFAULT.into(),
            cors: None,
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
    cloudfront: signer::cloudfront::CloudFrontSigner,
    cloudfront_public_key: String,
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

    /// A signer with the stack's CloudFront key (tests sign with it directly).
    pub fn cloudfront_signer(&self) -> &signer::cloudfront::CloudFrontSigner {
        &self.cloudfront
    }

    /// The public key (PEM) the private-path check trusts.
    pub fn cloudfront_public_key(&self) -> &str {
        &self.cloudfront_public_key
    }

    /// Starts the store (unless external), creates the bucket, uploads samples, and serves
    /// the website endpoint.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        // The development sign-in mints any identity: never reachable from the network.
        if !opts.listen.ip().is_loopback() {
            anyhow::bail!(
                "--listen {}: the devserver's development sign-in issues tokens for anyone, \
                 so it listens on loopback addresses only",
                opts.listen
            );
        }
        let mut tasks = Vec::new();
        let counters = store::Counters::default();
        // The website endpoint is bound first: its origin is the one the store's CORS
        // configuration allows.
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding the website endpoint to {}", opts.listen))?;
        let host = listener.local_addr()?.to_string();
        let website_url = format!("http://{host}");
        let s3_endpoint = match &opts.s3_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => {
                let store = store::Store::new(&opts.data_dir, counters.clone())?;
                let cors = opts.cors.clone().unwrap_or_else(|| cors::CorsConfiguration {
                    rules: vec![cors::CorsRule::for_pages(&website_url)],
                });
                let service = cors::Cors {
                    inner: store::service(store, &opts.access_key, &opts.secret_key),
                    config: Arc::new(cors),
                };
                let s3_listener = TcpListener::bind(opts.s3_listen)
                    .await
                    .with_context(|| format!("binding the S3 server to {}", opts.s3_listen))?;
                let addr = s3_listener.local_addr()?;
                tasks.push(tokio::spawn(serve_http(s3_listener, service)));
                format!("http://{addr}")
            }
        };

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

        let pem = match &opts.cloudfront_private_key {
            Some(pem) => pem.clone(),
            None => generate_rsa_key()?,
        };
        let mut signer_env = opts.signer_env.clone();
        signer_env.entry("CLOUDFRONT_KEY_PAIR_ID".into()).or_insert_with(|| DEV_KEY_PAIR_ID.into());
        signer_env.insert("CLOUDFRONT_PRIVATE_KEY".into(), pem);
        signer_env.insert("BUCKET".into(), opts.bucket.clone());
        signer_env.insert("PUBLIC_BASE_URL".into(), website_url.clone());
        signer_env.insert("S3_FORCE_PATH_STYLE".into(), "true".into());
        // The devserver speaks plain HTTP; browsers drop Secure cookies set over it.
        signer_env.entry("COOKIE_SECURE".into()).or_insert_with(|| "false".into());
        let signer_config = signer::config::Config::from_lookup(|k| signer_env.get(k).cloned())
            .context("signer configuration")?;
        let sdk = sdk_config(&s3_endpoint, &opts.access_key, &opts.secret_key);
        let signer_app =
            signer::handler::App::build(signer_config, &sdk).await.context("signer start-up")?;
        let cloudfront = signer_app.signer.clone();
        let verifying = cloudfront.key().verifying_key().context("the CloudFront public key")?;
        let cloudfront_public_key =
            cloudfront.key().public_key_pem().context("the CloudFront public key")?;
        let mut keys = signer::cloudfront::TrustedKeys::new();
        keys.insert(cloudfront.key_pair_id(), verifying);
        let paths = keyspace::PrivatePaths::parse(&opts.private_paths)
            .map_err(|e| anyhow::anyhow!("PRIVATE_PATHS: {e}"))?;

        let mut devserver = Self {
            website_url,
            s3_endpoint,
            bucket: opts.bucket.clone(),
            client: client.clone(),
            counters,
            tasks,
            cloudfront,
            cloudfront_public_key,
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
            signer: signer_app,
            auth: auth::DevAuth::new(),
            guard: private::PrivateGuard { paths, keys },
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

    /// Uploads the sample photographs if they are not there yet, with the resizer's own
    /// create-only write, so no original already in the bucket is replaced; then publishes
    /// this build's pages ([`pages::publish`]).
    async fn upload_samples(&self) -> anyhow::Result<()> {
        let store = resizer::store::Store::new(self.client.clone(), self.bucket.clone());
        for (key, cache_control) in [
            ("samples/seeding.jpg", "public, max-age=3600"),
            (PRIVATE_SAMPLE_KEY, "private, max-age=3600"),
        ] {
            let outcome = store
                .put_if_absent(key, SAMPLE_PHOTO.to_vec(), "image/jpeg", cache_control)
                .await
                .with_context(|| format!("uploading {key}"))?;
            if outcome == resizer::store::PutOutcome::Created {
                tracing::info!(key, "uploaded sample");
            }
        }
        pages::publish(&self.client, &self.bucket).await
    }
}

/// Generates an RSA-2048 CloudFront key (PKCS#8 PEM) for a development run.
fn generate_rsa_key() -> anyhow::Result<String> {
    let rsa = openssl::rsa::Rsa::generate(2048).context("generating the CloudFront key")?;
    let pkey = openssl::pkey::PKey::from_rsa(rsa)?;
    Ok(String::from_utf8(pkey.private_key_to_pem_pkcs8()?)?)
}

/// The AWS SDK configuration for the store: fixed credentials, its endpoint, one region.
pub fn sdk_config(endpoint: &str, access_key: &str, secret_key: &str) -> aws_config::SdkConfig {
    let credentials =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "devserver");
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
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
        let (socket, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("accept: {e}");
                continue;
            }
        };
        // Without it, a response's last small segment waits for the client's delayed ACK
        // (40 ms on Linux): every 300 KB GET from the store took 45 ms instead of 2.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let inner = service.clone();
        let service =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                inner.call(req)
            });
        let conn = builder.serve_connection(TokioIo::new(socket), service).into_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}
