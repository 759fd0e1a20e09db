//! The `smoke` binary as `scripts/smoke` runs it, against the devserver: S3 credentials and
//! endpoint from the SDK's default chain (environment variables only, so the machine's own
//! AWS configuration cannot leak in), the token from SMOKE_TOKEN, the key from a file; the
//! table on stdout and the exit status. Lives in the smoke package because cargo builds a
//! package's binary for its own integration tests (`CARGO_BIN_EXE_smoke`) and for no other
//! package's; tests/e2e/smoke.rs covers the checks themselves through the library.

use std::process::Output;

use e2e::{template_without_list_bucket, DeliveryMode, Stack};
use smoke::checks::names;

/// An RSA-2048 CloudFront key as a PKCS#8 PEM.
fn cloudfront_key() -> String {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

/// Runs the binary against `stack` (whose CloudFront key is `pem`) with `token`.
async fn run_binary(stack: &Stack, pem: &str, token: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cloudfront.pem");
    std::fs::write(&key_file, pem).unwrap();
    let server = &stack.server;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_smoke"));
    command
        .arg(&server.website_url)
        .args(["--bucket", &server.bucket, "--mode", &stack.delivery().to_string()])
        .args(["--api-url", &server.api_url, "--gallery", "smoke-ip"])
        .args(["--key-pair-id", devserver::DEV_KEY_PAIR_ID])
        .arg("--private-key")
        .arg(&key_file)
        .args(["--sizes", "64x,48x", "--purge-wait", "30"]);
    if let Some(url) = &server.function_url {
        command.args(["--function-url", url]);
    }
    let missing = dir.path().join("none");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SMOKE_TOKEN", token)
        .env("AWS_ENDPOINT_URL_S3", &server.s3_endpoint)
        .env("AWS_ACCESS_KEY_ID", devserver::DEFAULT_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", devserver::DEFAULT_SECRET_KEY)
        .env("AWS_REGION", devserver::REGION)
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // Async: the devserver answers from this test's own runtime while the binary runs.
    command.output().await.unwrap()
}

/// The table's line for `check`.
fn table_row<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(check) && l.contains(" | "))
        .unwrap_or_else(|| panic!("no row {check:?} in:\n{stdout}"))
}

#[tokio::test]
async fn the_binary_passes_on_a_sound_stack_and_exits_zero() {
    let pem = cloudfront_key();
    let pem_for_stack = pem.clone();
    let stack = Stack::start_with(&[("ALLOWED_RESOLUTIONS", "64x,48x")], move |o| {
        o.delivery = DeliveryMode::Failover;
        o.cloudfront_private_key = Some(pem_for_stack);
    })
    .await;
    let token = stack.sign_in("smoke-runner", &["smoke-ip"]).await;
    let output = run_binary(&stack, &pem, &token).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        table_row(&stdout, names::MISS).contains("| PASS   | 200; image/jpeg 64x48"),
        "{stdout}"
    );
    assert!(table_row(&stdout, names::IP_BOUND).contains("| PASS"), "{stdout}");
    // The token from SMOKE_TOKEN reaches the signer: the three uploads go through.
    assert!(table_row(&stdout, names::UPLOADS).contains("| PASS"), "{stdout}");
    assert!(stdout.contains(" 0 failed, 2 skipped"), "{stdout}");
    let left: Vec<String> =
        stack.keys().await.into_iter().filter(|k| k.contains("smoke")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn the_binary_exits_non_zero_when_the_bucket_policy_lacks_list_bucket() {
    let pem = cloudfront_key();
    let pem_for_stack = pem.clone();
    let stack = Stack::start_with(&[], move |o| {
        o.cloudfront_private_key = Some(pem_for_stack);
        o.template = template_without_list_bucket();
    })
    .await;
    let token = stack.sign_in("smoke-runner", &["smoke-ip"]).await;
    let output = run_binary(&stack, &pem, &token).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let row = table_row(&stdout, names::MISSING_KEY);
    assert!(row.contains("| FAIL   | S3 answered 403") && row.contains("s3:ListBucket"), "{row}");
}
