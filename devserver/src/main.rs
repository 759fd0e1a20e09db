//! `cargo run --release -p devserver`: the whole stack on loopback, printing the URLs to try.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use devserver::{DevServer, Options};
use keyspace::{DeliveryMode, LocationEncoding};

/// The resize-on-miss stack on one machine, laid out as template.yaml deploys it: CloudFront
/// (the edge), the bucket (S3 REST and website endpoints), the HTTP API with the signer and
/// the resizer, the resizer's function URL, and a development identity provider.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// How misses reach the resizer: `redirect` (the S3 website's 307) or `failover`
    /// (CloudFront's origin group, the image in the answer).
    #[arg(long, default_value = "redirect", value_parser = parse_delivery)]
    delivery: DeliveryMode,
    /// How the emulated S3 website writes a key into its redirect (AWS does not document
    /// it): `once`, `twice`, `form` or `raw`.
    #[arg(long, default_value = "once", value_parser = parse_encoding)]
    location_encoding: LocationEncoding,
    /// The template's FormatNegotiation: what the edge makes of a sized path without a
    /// format, by the viewer's Accept: `avif-webp`, `webp` or `off`.
    #[arg(long, default_value = "avif-webp")]
    format_negotiation: devserver::edge::functions::Negotiation,
    /// Address of the edge: the distribution's URL, where viewers go.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the embedded S3 server (the bucket's REST endpoint).
    #[arg(long, default_value = "127.0.0.1:9000")]
    s3_listen: SocketAddr,
    /// Address of the bucket's website endpoint (redirect mode).
    #[arg(long, default_value = "127.0.0.1:8081")]
    website_listen: SocketAddr,
    /// Address of the HTTP API's own URL (execute-api).
    #[arg(long, default_value = "127.0.0.1:8082")]
    api_listen: SocketAddr,
    /// Address of the resizer's function URL (failover mode).
    #[arg(long, default_value = "127.0.0.1:8083")]
    function_url_listen: SocketAddr,
    /// Address of the development identity provider.
    #[arg(long, default_value = "127.0.0.1:8084")]
    idp_listen: SocketAddr,
    /// Trust this JWT issuer instead of the development identity provider (for example a
    /// Cognito user pool's URL), as API Gateway's JWT authorizer would.
    #[arg(long)]
    jwt_issuer: Option<String>,
    /// The audiences accepted with --jwt-issuer (comma-separated; for Cognito ID tokens, the
    /// app client id).
    #[arg(long, value_delimiter = ',')]
    jwt_audience: Vec<String>,
    /// The SAM template whose distribution, routes and bucket policy the devserver follows.
    #[arg(long)]
    template: Option<PathBuf>,
    /// Where the embedded store keeps its objects.
    #[arg(long, default_value = ".devserver-data")]
    data_dir: PathBuf,
    /// Use this S3-compatible endpoint instead of the embedded store (the bucket must exist).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The bucket.
    #[arg(long, default_value = "images")]
    bucket: String,
    /// Access key for the store.
    #[arg(long, env = "DEVSERVER_ACCESS_KEY", default_value = devserver::DEFAULT_ACCESS_KEY)]
    access_key: String,
    /// Secret key for the store.
    #[arg(long, env = "DEVSERVER_SECRET_KEY", default_value = devserver::DEFAULT_SECRET_KEY, hide_default_value = false)]
    secret_key: String,
    /// The website configuration (routing rules) to apply.
    #[arg(long, default_value = devserver::RULES_PATH)]
    rules: PathBuf,
    /// Do not upload the sample photographs and the pages.
    #[arg(long)]
    no_samples: bool,
}

fn parse_delivery(s: &str) -> Result<DeliveryMode, String> {
    s.parse()
}

fn parse_encoding(s: &str) -> Result<LocationEncoding, String> {
    s.parse()
}

/// The signer's own variables, passed through from the environment (the private key, the
/// bucket, PUBLIC_BASE_URL and S3_FORCE_PATH_STYLE are the devserver's).
const SIGNER_VARS: &[&str] = &[
    "CLOUDFRONT_KEY_PAIR_ID",
    "CLOUDFRONT_HASH_ALGORITHM",
    "SIGNED_URL_TTL",
    "SIGNED_URL_MAX_TTL",
    "UPLOAD_URL_TTL",
    "MAX_UPLOAD_BYTES",
    "MULTIPART_PART_BYTES",
    "COOKIE_DOMAIN",
    "COOKIE_SECURE",
    "GALLERY_CLAIM",
    "REDIRECT_KEY_ENCODING",
    "UPLOAD_CACHE_CONTROL",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,s3s=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let rules = std::fs::read_to_string(&cli.rules)
        .with_context(|| format!("reading {}", cli.rules.display()))?;
    let mut opts = Options::new(rules);
    opts.delivery = cli.delivery;
    opts.location_encoding = cli.location_encoding;
    opts.format_negotiation = cli.format_negotiation;
    opts.listen = cli.listen;
    opts.s3_listen = cli.s3_listen;
    opts.website_listen = cli.website_listen;
    opts.api_listen = cli.api_listen;
    opts.function_url_listen = cli.function_url_listen;
    opts.idp_listen = cli.idp_listen;
    if let Some(path) = &cli.template {
        opts.template =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    if let Some(issuer) = cli.jwt_issuer {
        if cli.jwt_audience.is_empty() {
            anyhow::bail!("--jwt-issuer needs --jwt-audience");
        }
        opts.jwt_issuer = Some(issuer);
        opts.jwt_audiences = cli.jwt_audience;
    }
    opts.data_dir = cli.data_dir;
    opts.s3_endpoint = cli.s3_endpoint;
    opts.bucket = cli.bucket;
    opts.access_key = cli.access_key;
    opts.secret_key = cli.secret_key;
    opts.upload_samples = !cli.no_samples;
    opts.cloudfront_private_key = std::env::var("CLOUDFRONT_PRIVATE_KEY").ok();
    if let Ok(paths) = std::env::var("PRIVATE_PATHS") {
        opts.private_paths = paths;
    }
    opts.signer_env = SIGNER_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    opts.resizer_env = devserver::RESIZER_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    let (access_key, secret_key) = (opts.access_key.clone(), opts.secret_key.clone());
    let server = DevServer::start(opts).await?;
    let w = &server.website_url;
    let miss = match server.delivery {
        DeliveryMode::Redirect => format!(
            "the S3 website's 307 to /resize/..., the resizer's 307 back\
             \n  website endpoint     {} (answers only the edge)",
            server.website_endpoint.as_deref().unwrap_or("")
        ),
        DeliveryMode::Failover => format!(
            "origin failover to the resizer's function URL, the image in the answer\
             \n  function URL         {} (answers only the edge)",
            server.function_url.as_deref().unwrap_or("")
        ),
    };
    println!(
        "\ndevserver is up ({delivery} mode: {miss})\n\
         \n  demo page            {w}/\
         \n  public gallery       {w}/pages/gallery.html\
         \n  private gallery      {w}/pages/private.html   (sign in on the page)\
         \n  upload               {w}/pages/upload.html\
         \n  a 300x300 thumbnail  {w}/300x300/samples/seeding.jpg\
         \n  640 wide             {w}/640x/samples/seeding.jpg\
         \n  200 high             {w}/x200/samples/seeding.jpg\
         \n  the original         {w}/samples/seeding.jpg\
         \n\n  private (403 unless signed) {w}/300x300/{private}\
         \n  sign in (dev only)   TOKEN=$(curl -s -X POST {idp}/sign-in -d '{{\"user\":\"alice\",\"galleries\":[\"demo\"]}}' | jq -r .token)\
         \n  gallery cookies      curl -si -X POST {w}/api/sign-cookies -H \"Authorization: Bearer $TOKEN\" -d '{{\"gallery\":\"demo\"}}'\
         \n  signer API           docs/SIGNER.md\
         \n  HTTP API (direct)    {api} (refuses requests that did not come through the edge)\
         \n  invalidations        {idp}{invalidations} (what the events function purged)\
         \n\n  S3 endpoint          {s3}  bucket {b}\
         \n  aws cli              AWS_ACCESS_KEY_ID={access_key} AWS_SECRET_ACCESS_KEY={secret_key} AWS_REGION={region} \\\
         \n                         aws --endpoint-url {s3} s3 ls s3://{b}/ --recursive\
         \n\nCtrl-C stops it.\n",
        s3 = server.s3_endpoint,
        delivery = server.delivery,
        idp = server.idp_url,
        api = server.api_url,
        b = server.bucket,
        region = devserver::REGION,
        private = devserver::PRIVATE_SAMPLE_KEY,
        invalidations = devserver::notifications::INVALIDATIONS_ROUTE,
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
