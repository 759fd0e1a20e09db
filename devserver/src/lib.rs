//! The local stack: what the AWS deployment does, on one machine, with no account, laid out
//! as AWS lays it out, each service on its own loopback port:
//!
//! - the **edge** ([`edge`]): CloudFront as template.yaml's distribution describes it for the
//!   chosen delivery mode (behaviours, their functions, trusted key groups, cache, origin
//!   groups), read from the template itself ([`cloudformation`]);
//! - the **origins** ([`origins`]): the bucket's S3 website endpoint with website-rules.json
//!   (redirect mode), the bucket's REST endpoint behind origin access control (failover
//!   mode: the embedded store itself), the HTTP API with the template's routes and its JWT
//!   authorizer ([`authorizer`]), and the resizer's function URL (failover mode);
//! - the **bucket**: an embedded S3-compatible server ([`store`]: s3s + s3s-fs, SigV4
//!   checked, with the bucket's CORS configuration, [`cors`]), or any external one;
//! - a development **identity provider** ([`idp`]) issuing RS256 tokens with a JWKS, as
//!   Cognito would; and the demo pages ([`pages`]), published into the bucket.
//!
//! The resizer and the signer run in-process, fed the payload format 2.0 events API Gateway
//! and function URLs send. Used by `main.rs` and by the end-to-end tests, which start it on
//! ephemeral ports.

pub mod authorizer;
pub mod cloudformation;
pub mod cors;
pub mod edge;
pub mod idp;
pub mod notifications;
pub mod origins;
pub mod pages;
pub mod store;
pub mod website;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyspace::{DeliveryMode, LocationEncoding};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cloudformation::{referenced_parameter, Template};
use crate::origins::{api_gateway, function_url, oac, s3_website};

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
/// The audience of the development identity provider's tokens.
pub const DEV_AUDIENCE: &str = idp::DEFAULT_AUDIENCE;

/// The client address of a connection, put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// A request read whole: its head, its body (at most `limit` bytes, else `None`) and the
/// address of the client that sent it.
pub(crate) async fn read_request(
    req: http::Request<hyper::body::Incoming>,
    limit: usize,
) -> (http::request::Parts, Option<bytes::Bytes>, SocketAddr) {
    use http_body_util::BodyExt as _;
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, limit).collect().await.ok().map(|b| b.to_bytes());
    (parts, body, peer)
}

/// The resizer's and the events function's own variables, which the devserver binary (and
/// the load tool's server) pass through from the environment.
pub const RESIZER_VARS: &[&str] = &[
    "REDIRECT_KEY_ENCODING",
    "MAX_RESPONSE_BYTES",
    "ALLOWED_RESOLUTIONS",
    "MAX_DIMENSION",
    "MAX_SOURCE_BYTES",
    "MAX_SOURCE_PIXELS",
    "MAX_SOURCE_FRAMES",
    "MAX_SOURCE_ANIMATION_PIXELS",
    "ALLOWED_FORMATS",
    "DERIVATIVE_CACHE_CONTROL",
    "S3_OPERATION_TIMEOUT_MS",
    "ERROR_CACHE_SECONDS",
    "RESIZE_BUDGET_MS",
    "MAX_CONCURRENT_RESIZES",
    // The events function's: sizes made on upload.
    "PREGENERATE",
];

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// The edge (the distribution's URL). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Embedded S3 server (the bucket's REST endpoint). Ignored with `s3_endpoint`.
    pub s3_listen: SocketAddr,
    /// The bucket's S3 website endpoint (redirect mode).
    pub website_listen: SocketAddr,
    /// The HTTP API's own URL (execute-api).
    pub api_listen: SocketAddr,
    /// The resizer's function URL (failover mode).
    pub function_url_listen: SocketAddr,
    /// The development identity provider.
    pub idp_listen: SocketAddr,
    /// Where the embedded store keeps objects.
    pub data_dir: PathBuf,
    /// Use this S3-compatible endpoint instead of the embedded store.
    pub s3_endpoint: Option<String>,
    /// The bucket (created if missing).
    pub bucket: String,
    /// Credentials for the store (checked by the embedded one; also the identity origin
    /// access control signs with).
    pub access_key: String,
    /// See `access_key`.
    pub secret_key: String,
    /// The template (template.yaml's text).
    pub template: String,
    /// The delivery mode (the template's DeliveryMode).
    pub delivery: DeliveryMode,
    /// What the edge negotiates for a sized path without a format (the template's
    /// FormatNegotiation, filled into its path-guard function as AWS fills it).
    pub format_negotiation: edge::functions::Negotiation,
    /// How the S3 website writes a key into its redirect (undocumented on AWS: each reading
    /// is emulated).
    pub location_encoding: LocationEncoding,
    /// The website configuration template (website-rules.json's text).
    pub rules_template: String,
    /// Resizer settings (ALLOWED_RESOLUTIONS, MAX_DIMENSION, REDIRECT_KEY_ENCODING, ...).
    /// BUCKET, DELIVERY_MODE, ORIGIN_VERIFY_SECRET and S3_FORCE_PATH_STYLE are the
    /// devserver's.
    pub resizer_env: HashMap<String, String>,
    /// Upload the sample photograph and an index page when they are missing.
    pub upload_samples: bool,
    /// The CloudFront private key (PEM). `None` generates an RSA-2048 key at start-up.
    pub cloudfront_private_key: Option<String>,
    /// Signer settings (CLOUDFRONT_KEY_PAIR_ID, CLOUDFRONT_HASH_ALGORITHM, SIGNED_URL_TTL,
    /// MAX_UPLOAD_BYTES, ...). BUCKET, PUBLIC_BASE_URL, the private key, DELIVERY_MODE,
    /// ORIGIN_VERIFY_SECRET and S3_FORCE_PATH_STYLE are set by the devserver.
    pub signer_env: HashMap<String, String>,
    /// PRIVATE_PATHS the resizer refuses unsigned (the template's signed behaviours decide
    /// what the edge signs).
    pub private_paths: String,
    /// The embedded store's CORS configuration. `None`: one rule letting the pages upload
    /// ([`cors::CorsRule::for_pages`]).
    pub cors: Option<cors::CorsConfiguration>,
    /// The JWT issuer the HTTP API trusts. `None`: the development identity provider.
    pub jwt_issuer: Option<String>,
    /// The audiences the HTTP API accepts (with `jwt_issuer`).
    pub jwt_audiences: Vec<String>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Options {
    /// Defaults for everything: loopback ports, `.devserver-data`, the project's rules and
    /// template, redirect mode.
    pub fn new(rules_template: String) -> Self {
        Self {
            listen: loopback(8080),
            s3_listen: loopback(9000),
            website_listen: loopback(8081),
            api_listen: loopback(8082),
            function_url_listen: loopback(8083),
            idp_listen: loopback(8084),
            data_dir: PathBuf::from(".devserver-data"),
            s3_endpoint: None,
            bucket: "images".into(),
            access_key: DEFAULT_ACCESS_KEY.into(),
            secret_key: DEFAULT_SECRET_KEY.into(),
            template: cloudformation::TEMPLATE.to_owned(),
            delivery: DeliveryMode::Redirect,
            format_negotiation: edge::functions::Negotiation::default(),
            location_encoding: LocationEncoding::Once,
            rules_template,
            resizer_env: HashMap::new(),
            upload_samples: true,
            cloudfront_private_key: None,
            signer_env: HashMap::new(),
            private_paths: keyspace::PrivatePaths::DEFAULT.into(),
            cors: None,
            jwt_issuer: None,
            jwt_audiences: vec![DEV_AUDIENCE.to_owned()],
        }
    }
}

/// A running stack. Dropping it stops the servers.
pub struct DevServer {
    /// `http://127.0.0.1:PORT`: the distribution, where viewers go.
    pub website_url: String,
    /// The S3 endpoint in use (the bucket's REST endpoint).
    pub s3_endpoint: String,
    /// The bucket's website endpoint (redirect mode): the origin behind the edge.
    pub website_endpoint: Option<String>,
    /// The HTTP API's own URL (execute-api).
    pub api_url: String,
    /// The resizer's function URL (failover mode).
    pub function_url: Option<String>,
    /// The development identity provider (the issuer of its tokens).
    pub idp_url: String,
    /// The bucket.
    pub bucket: String,
    /// The delivery mode.
    pub delivery: DeliveryMode,
    /// The secret CloudFront sends the functions (`x-origin-verify`).
    pub origin_secret: String,
    /// The secret CloudFront sends the S3 website endpoint as its `Referer` (redirect
    /// mode; another secret, since it travels in clear).
    pub referer_secret: String,
    client: aws_sdk_s3::Client,
    counters: store::Counters,
    tasks: Vec<JoinHandle<()>>,
    cloudfront: signer::cloudfront::CloudFrontSigner,
    cloudfront_public_key: String,
    edge: Arc<edge::Edge>,
    idp: Arc<idp::DevIdp>,
    /// The embedded store's event notifications (none with an external store).
    notifier: Option<notifications::Notifier>,
    invalidator: notifications::DevInvalidator,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the template's bucket policy grants: the website readers' Referer and ListBucket,
/// and whether CloudFront's origin access control may list.
#[derive(Debug, Clone)]
struct BucketGrants {
    website: s3_website::ReaderPolicy,
    cloudfront_list_bucket: bool,
}

fn bucket_grants(template: &Template) -> anyhow::Result<BucketGrants> {
    let policy = template
        .resource("ImagesBucketPolicy")?
        .context("template.yaml has no ImagesBucketPolicy")?;
    let mut grants = BucketGrants {
        website: s3_website::ReaderPolicy { referer: None, list_bucket: false },
        cloudfront_list_bucket: false,
    };
    // The website's readers: who may GetObject (anyone, or anyone with a Referer); they may
    // list when a ListBucket statement names the same readers.
    let mut readers = None;
    let mut listers = Vec::new();
    for statement in
        policy["Properties"]["PolicyDocument"]["Statement"].as_array().into_iter().flatten()
    {
        let actions: Vec<&str> = match &statement["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let lists = actions.contains(&"s3:ListBucket");
        if statement["Principal"] == "*" {
            let referer = &statement["Condition"]["StringEquals"]["aws:Referer"];
            let referer = referenced_parameter(template, referer).map(str::to_owned);
            if actions.contains(&"s3:GetObject") {
                readers = Some(referer.clone());
            }
            if lists {
                listers.push(referer);
            }
        } else if statement["Principal"]["Service"] == "cloudfront.amazonaws.com" {
            grants.cloudfront_list_bucket |= lists;
        }
    }
    match readers {
        Some(referer) => {
            grants.website.list_bucket = listers.contains(&referer);
            grants.website.referer = referer;
        }
        // Nobody may read through the website endpoint.
        None => grants.website.referer = Some(String::new()),
    }
    Ok(grants)
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<(TcpListener, String)> {
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("binding {what} to {addr}"))?;
    let host = listener.local_addr()?.to_string();
    Ok((listener, host))
}

/// A fresh random value for the secret CloudFront presents to origins.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(hex_encode(&bytes))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    /// The public key (PEM) the trusted key group holds.
    pub fn cloudfront_public_key(&self) -> &str {
        &self.cloudfront_public_key
    }

    /// The edge (its refusal log, its distribution, invalidations).
    pub fn edge(&self) -> &edge::Edge {
        &self.edge
    }

    /// Why the edge last refused `path`, from its log.
    pub fn refusal(&self, path: &str) -> Option<String> {
        self.edge.refusals().into_iter().rev().find(|r| r.path == path).map(|r| r.reason)
    }

    /// The development identity provider (tests issue tokens with chosen claims).
    pub fn idp(&self) -> &idp::DevIdp {
        &self.idp
    }

    /// Waits until the events function has handled every change the store made so far
    /// (and the changes that handling made). At once with an external store, which sends
    /// no notifications.
    pub async fn events_settled(&self) {
        if let Some(notifier) = &self.notifier {
            // Bounded, so a delivery task that died cannot hang a caller for ever.
            if tokio::time::timeout(std::time::Duration::from_secs(60), notifier.settled())
                .await
                .is_err()
            {
                tracing::error!("events not settled after 60 s");
            }
        }
    }

    /// Every CloudFront invalidation the events function made, oldest first (also served
    /// as JSON at the identity provider's `/_devserver/invalidations`).
    pub fn invalidations(&self) -> Vec<notifications::Invalidation> {
        self.invalidator.invalidations()
    }

    /// Starts the store (unless external), creates the bucket, uploads samples, and serves
    /// every origin and the edge.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        // The development sign-in mints any identity: never reachable from the network.
        for (addr, what) in [
            (opts.listen, "--listen"),
            (opts.website_listen, "--website-listen"),
            (opts.api_listen, "--api-listen"),
            (opts.function_url_listen, "--function-url-listen"),
            (opts.idp_listen, "--idp-listen"),
        ] {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "{what} {addr}: the devserver's development sign-in issues tokens for \
                     anyone, so it listens on loopback addresses only"
                );
            }
        }
        let mut tasks = Vec::new();
        let counters = store::Counters::default();
        let failover = opts.delivery == DeliveryMode::Failover;
        // The edge is bound first: its origin is the one the store's CORS configuration
        // allows and the routing rule redirects to.
        let (edge_listener, edge_host) = bind(opts.listen, "the edge").await?;
        let site = format!("http://{edge_host}");
        let (api_listener, api_host) = bind(opts.api_listen, "the HTTP API").await?;
        let (idp_listener, idp_host) = bind(opts.idp_listen, "the identity provider").await?;
        let website = if failover {
            None
        } else {
            Some(bind(opts.website_listen, "the S3 website endpoint").await?)
        };
        let function = if failover {
            Some(bind(opts.function_url_listen, "the function URL").await?)
        } else {
            None
        };
        let mut notifications = None;
        let s3_endpoint = match &opts.s3_endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => {
                let (notifier, queue) = notifications::channel();
                let store = store::Store::new(&opts.data_dir, counters.clone())?
                    .with_notifications(notifier.clone());
                notifications = Some((notifier, queue));
                let cors = opts.cors.clone().unwrap_or_else(|| cors::CorsConfiguration {
                    rules: vec![cors::CorsRule::for_pages(&site)],
                });
                let service = cors::Cors {
                    inner: store::service(store, &opts.access_key, &opts.secret_key),
                    config: Arc::new(cors),
                };
                let (s3_listener, s3_host) = bind(opts.s3_listen, "the S3 server").await?;
                tasks.push(tokio::spawn(serve_http(s3_listener, service)));
                format!("http://{s3_host}")
            }
        };

        let origin_secret = random_secret()?;
        let referer_secret = random_secret()?;
        let idp_url = format!("http://{idp_host}");
        let issuer = opts.jwt_issuer.clone().unwrap_or_else(|| idp_url.clone());
        let overrides = HashMap::from([
            ("DeliveryMode".to_owned(), opts.delivery.to_string()),
            (
                edge::functions::NEGOTIATION_PARAMETER.to_owned(),
                opts.format_negotiation.to_string(),
            ),
            ("OriginVerifySecret".to_owned(), origin_secret.clone()),
            ("WebsiteRefererSecret".to_owned(), referer_secret.clone()),
            ("JwtIssuer".to_owned(), issuer.clone()),
            ("JwtAudience".to_owned(), opts.jwt_audiences.join(",")),
        ]);
        let template = Template::parse(&opts.template, &overrides).context("template.yaml")?;
        let grants = bucket_grants(&template)?;

        let mut resizer_env = opts.resizer_env.clone();
        resizer_env.insert("BUCKET".into(), opts.bucket.clone());
        resizer_env.insert("DELIVERY_MODE".into(), opts.delivery.to_string());
        resizer_env.insert("ORIGIN_VERIFY_SECRET".into(), origin_secret.clone());
        resizer_env.insert("S3_FORCE_PATH_STYLE".into(), "true".into());
        resizer_env.entry("PRIVATE_PATHS".into()).or_insert_with(|| opts.private_paths.clone());
        let config = resizer::Config::from_lookup(|k| resizer_env.get(k).cloned())
            .context("resizer configuration")?;
        let client = s3_client(
            &s3_endpoint,
            &opts.access_key,
            &opts.secret_key,
            Some(resizer::handler::timeouts(&config)),
        );
        let events_config = resizer::events::EventsConfig::from_lookup(
            |k| resizer_env.get(k).cloned(),
            &config.allowed,
            &config.formats,
            config.max_dimension,
        )
        .context("events function configuration")?;
        // The events function is its own Lambda: its own state over the same bucket.
        let events_app = resizer::App::new(config.clone(), client.clone());
        let resizer_app = resizer::App::new(config, client.clone());

        let pem = match &opts.cloudfront_private_key {
            Some(pem) => pem.clone(),
            None => generate_rsa_key()?,
        };
        let mut signer_env = opts.signer_env.clone();
        signer_env.entry("CLOUDFRONT_KEY_PAIR_ID".into()).or_insert_with(|| DEV_KEY_PAIR_ID.into());
        signer_env.insert("CLOUDFRONT_PRIVATE_KEY".into(), pem);
        signer_env.insert("BUCKET".into(), opts.bucket.clone());
        signer_env.insert("PUBLIC_BASE_URL".into(), site.clone());
        signer_env.insert("S3_FORCE_PATH_STYLE".into(), "true".into());
        signer_env.insert("DELIVERY_MODE".into(), opts.delivery.to_string());
        signer_env.insert("ORIGIN_VERIFY_SECRET".into(), origin_secret.clone());
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

        let idp = Arc::new(
            idp::DevIdp::new(idp_url.clone())
                .context("the identity provider")?
                .with_allowed_origins([site.clone()]),
        );
        let authorizer = authorizer::JwtAuthorizer::new(issuer, opts.jwt_audiences.clone())
            .context("the JWT authorizer")?;
        let routes = api_gateway::routes(&template)?;
        let api = Arc::new(api_gateway::HttpApi {
            resizer: routes
                .iter()
                .any(|r| r.function == api_gateway::Function::Resizer)
                .then(|| resizer_app.clone()),
            routes,
            signer: signer_app,
            authorizer: Arc::new(authorizer),
            domain: api_host.clone(),
        });
        let oac_signer = oac::Signer {
            credentials: aws_credential_types::Credentials::new(
                &opts.access_key,
                &opts.secret_key,
                None,
                None,
                "cloudfront",
            ),
            region: REGION.to_owned(),
        };

        let edge = Arc::new(edge::Edge::new(
            edge::distribution::Distribution::read(&template, "Distribution")?,
            keys,
            site.clone(),
            edge::Endpoints {
                website: website.as_ref().map(|(_, h)| h.clone()),
                api: api_host.clone(),
                function_url: function.as_ref().map(|(_, h)| h.clone()),
                store: s3_endpoint.trim_start_matches("http://").to_owned(),
                bucket: opts.bucket.clone(),
                rest_list_bucket: grants.cloudfront_list_bucket,
            },
            oac_signer.clone(),
        )?);
        let invalidator = notifications::DevInvalidator::new(Arc::clone(&edge));
        let notifier = match notifications {
            Some((notifier, queue)) => {
                let events = resizer::events::Events::new(
                    events_app,
                    events_config,
                    Some(Arc::new(invalidator.clone())),
                );
                tasks.push(tokio::spawn(queue.deliver(events)));
                Some(notifier)
            }
            None => None,
        };
        let mut devserver = Self {
            website_url: site.clone(),
            s3_endpoint: s3_endpoint.clone(),
            website_endpoint: website.as_ref().map(|(_, h)| format!("http://{h}")),
            api_url: format!("http://{api_host}"),
            function_url: function.as_ref().map(|(_, h)| format!("http://{h}")),
            idp_url,
            bucket: opts.bucket.clone(),
            delivery: opts.delivery,
            origin_secret: origin_secret.clone(),
            referer_secret,
            client: client.clone(),
            counters,
            tasks,
            cloudfront,
            cloudfront_public_key,
            edge,
            idp: Arc::clone(&idp),
            notifier,
            invalidator: invalidator.clone(),
        };
        if opts.s3_endpoint.is_none() {
            devserver.ensure_bucket().await?;
        }
        if opts.upload_samples {
            devserver.upload_samples().await?;
        }

        if let Some((listener, host)) = website {
            let config = website::WebsiteConfiguration::from_template(
                &opts.rules_template,
                "http",
                &edge_host,
            )
            .context("website-rules.json")?;
            let site = Arc::new(s3_website::Website {
                config,
                client: client.clone(),
                bucket: opts.bucket.clone(),
                host,
                policy: grants.website.clone(),
                encoding: opts.location_encoding,
            });
            let service =
                hyper::service::service_fn(move |req| s3_website::serve(Arc::clone(&site), req));
            devserver.tasks.push(tokio::spawn(serve_http(listener, service)));
        }
        if let Some((listener, host)) = function {
            let url = Arc::new(function_url::FunctionUrl {
                resizer: resizer_app.clone(),
                signer: oac_signer,
                domain: host,
            });
            let service =
                hyper::service::service_fn(move |req| function_url::serve(Arc::clone(&url), req));
            devserver.tasks.push(tokio::spawn(serve_http(listener, service)));
        }
        let service =
            hyper::service::service_fn(move |req| api_gateway::serve(Arc::clone(&api), req));
        devserver.tasks.push(tokio::spawn(serve_http(api_listener, service)));
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let idp = Arc::clone(&idp);
                let invalidator = invalidator.clone();
                async move {
                    // The development services' own port: no AWS service has this route.
                    if req.uri().path() == notifications::INVALIDATIONS_ROUTE {
                        return Ok::<_, std::convert::Infallible>(
                            notifications::invalidations_response(&invalidator),
                        );
                    }
                    Ok(idp.serve(req).await)
                }
            });
        devserver.tasks.push(tokio::spawn(serve_http(idp_listener, service)));
        let edge = Arc::clone(&devserver.edge);
        let service = hyper::service::service_fn(move |req| edge::serve(Arc::clone(&edge), req));
        devserver.tasks.push(tokio::spawn(serve_http(edge_listener, service)));
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
        pages::publish(&self.client, &self.bucket, &self.idp_url).await
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
