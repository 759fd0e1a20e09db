//! `cf-sign`: CloudFront signed URLs and cookies from the command line, from the same
//! library the signer Lambda uses (in the spirit of `aws cloudfront sign`), and `verify`
//! to check a URL or cookies the way CloudFront would.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use signer::cloudfront::{CloudFrontSigner, SignedRequest, TrustedKeys};
use signer::keys::{HashAlgorithm, SigningKey, VerifyingKey};
use signer::policy::{Ipv4Cidr, Policy};

#[derive(Parser)]
#[command(about = "Sign or verify CloudFront URLs and cookies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Signing {
    /// The CloudFront public key id.
    #[arg(long)]
    key_pair_id: String,
    /// PEM private key file (RSA-2048 or ECDSA P-256; PKCS#1, PKCS#8 or SEC1).
    #[arg(long)]
    private_key: PathBuf,
    /// Expiry, seconds since the epoch.
    #[arg(long, conflicts_with = "expires_in")]
    date_less_than: Option<u64>,
    /// Expiry, seconds from now (default 3600).
    #[arg(long)]
    expires_in: Option<u64>,
    /// Start, seconds since the epoch (makes a custom policy).
    #[arg(long)]
    date_greater_than: Option<u64>,
    /// Client network, a.b.c.d or a.b.c.d/n (makes a custom policy).
    #[arg(long)]
    ip_address: Option<String>,
    /// SHA1 (default) or SHA256.
    #[arg(long, default_value = "SHA1")]
    hash: String,
    /// Pretend the time is this (seconds since the epoch), for reproducible output.
    #[arg(long)]
    now: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a signed URL.
    Url {
        /// The URL to sign.
        url: String,
        /// A wildcard Resource for a custom policy (default: the URL itself, canned when
        /// no other condition is given).
        #[arg(long)]
        resource: Option<String>,
        #[command(flatten)]
        signing: Signing,
    },
    /// Print signed cookies (`Name=Value` per line) for a Resource pattern.
    Cookies {
        /// The Resource, e.g. `https://cdn.example.com/*private/galleries/g1/*`.
        resource: String,
        #[command(flatten)]
        signing: Signing,
    },
    /// Check a URL (and optional Cookie header) as CloudFront would. Exit 0 if allowed.
    Verify {
        /// The requested URL.
        url: String,
        /// The key pair id the public key is registered under.
        #[arg(long)]
        key_pair_id: String,
        /// PEM public key file.
        #[arg(long)]
        public_key: PathBuf,
        /// The request's Cookie header.
        #[arg(long)]
        cookie: Option<String>,
        /// The client address.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: std::net::IpAddr,
        /// Pretend the time is this (seconds since the epoch).
        #[arg(long)]
        now: Option<u64>,
    },
}

fn now_or(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    })
}

fn signer_and_policy(s: &Signing, resource: String) -> Result<(CloudFrontSigner, Policy), String> {
    let pem =
        std::fs::read(&s.private_key).map_err(|e| format!("{}: {e}", s.private_key.display()))?;
    let key =
        SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", s.private_key.display()))?;
    let hash = HashAlgorithm::parse(&s.hash)
        .ok_or_else(|| format!("--hash {:?}: use SHA1 or SHA256", s.hash))?;
    let expires = s.date_less_than.unwrap_or_else(|| now_or(s.now) + s.expires_in.unwrap_or(3600));
    let ip_address =
        s.ip_address.as_deref().map(Ipv4Cidr::parse).transpose().map_err(|e| e.to_string())?;
    let policy = Policy {
        resource: Some(resource),
        date_less_than: expires,
        date_greater_than: s.date_greater_than,
        ip_address,
    };
    Ok((CloudFrontSigner::new(s.key_pair_id.clone(), key, hash), policy))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Url { url, resource, signing } => {
            let (signer, policy) =
                signer_and_policy(&signing, resource.unwrap_or_else(|| url.clone()))?;
            println!("{}", signer.sign_url(&url, &policy).map_err(|e| e.to_string())?);
        }
        Command::Cookies { resource, signing } => {
            let (signer, policy) = signer_and_policy(&signing, resource)?;
            for (name, value) in signer.sign_cookies(&policy).map_err(|e| e.to_string())?.pairs {
                println!("{name}={value}");
            }
        }
        Command::Verify { url, key_pair_id, public_key, cookie, client_ip, now } => {
            let pem =
                std::fs::read(&public_key).map_err(|e| format!("{}: {e}", public_key.display()))?;
            let key = VerifyingKey::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", public_key.display()))?;
            let mut keys = TrustedKeys::new();
            keys.insert(key_pair_id, key);
            let request = SignedRequest {
                url: &url,
                cookie_header: cookie.as_deref(),
                client_ip,
                now: now_or(now),
            };
            let verified =
                keys.verify(&request).map_err(|r| format!("refused: {} ({r})", r.code()))?;
            println!("allowed: key {} until {}", verified.key_pair_id, verified.expires);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cf-sign: {message}");
            ExitCode::FAILURE
        }
    }
}
