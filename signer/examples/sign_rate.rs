//! Signing rate of `CloudFrontSigner::sign_url` (canned policy), single-threaded, for
//! `scripts/bench-sign`. Prints one JSON line: {"signs_per_sec": N, "us_per_sign": N}.
//!
//! Usage: sign_rate KEY.pem SECONDS

use std::time::{Duration, Instant};

use signer::cloudfront::CloudFrontSigner;
use signer::keys::{HashAlgorithm, SigningKey};
use signer::policy::Policy;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pem = std::fs::read(&args[1]).expect("key file");
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    // The key is parsed once, as the Lambda does at start-up.
    let signer = CloudFrontSigner::new(
        "K2JCJMDEHXQW5F",
        SigningKey::from_pem(&pem).expect("key"),
        HashAlgorithm::Sha1,
    );
    let url = "https://d111111abcdef8.cloudfront.net/300x300/private/galleries/g1/cat.jpg";
    let policy = Policy::canned(url, 1_900_000_000);
    let mut bytes = 0usize;
    for _ in 0..200 {
        bytes += signer.sign_url(url, &policy).expect("sign").len();
    }
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        for _ in 0..50 {
            bytes += signer.sign_url(url, &policy).expect("sign").len();
        }
        count += 50;
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    println!(
        "{{\"signs_per_sec\": {:.0}, \"us_per_sign\": {:.1}}}",
        count as f64 / elapsed,
        elapsed / count as f64 * 1e6
    );
}
