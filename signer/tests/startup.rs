//! The built signer binary: bad configuration or a key that does not parse stops start-up
//! with a message naming the variable, before the Lambda Runtime API is contacted. The
//! key-from-Secrets-Manager path runs against moto's server, a real Secrets Manager peer.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs the `signer` binary with exactly these variables; returns (success, stderr).
fn start(vars: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signer"))
        .env_clear()
        .envs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
        .envs(vars.iter().copied())
        .output()
        .expect("the signer binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const BASE: &[(&str, &str)] = &[
    ("CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
    ("BUCKET", "images"),
    ("PUBLIC_BASE_URL", "https://cdn.example.com"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    BASE.iter().copied().chain(extra.iter().copied()).collect()
}

/// With a good configuration the binary goes on to the Runtime API, absent here: it must
/// fail on that, not on configuration or the key.
fn reached_runtime(ok: bool, stderr: &str) -> bool {
    !ok && !stderr.contains("configuration:") && !stderr.contains("start-up:")
}

#[test]
fn a_private_key_that_does_not_parse_stops_start_up_naming_the_variable() {
    let (ok, stderr) = start(&with(&[(
        "CLOUDFRONT_PRIVATE_KEY",
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
    )]));
    assert!(!ok);
    assert!(stderr.contains("start-up: CLOUDFRONT_PRIVATE_KEY"), "{stderr}");
    let rsa1024 = data("rsa1024.pem");
    let (_, stderr) = start(&with(&[("CLOUDFRONT_PRIVATE_KEY", &rsa1024)]));
    assert!(stderr.contains("CLOUDFRONT_PRIVATE_KEY") && stderr.contains("RSA-1024"), "{stderr}");
}

#[test]
fn missing_key_pair_id_stops_start_up_naming_it() {
    let pem = data("rsa2048-pkcs8.pem");
    let (ok, stderr) = start(&[
        ("CLOUDFRONT_PRIVATE_KEY", &pem),
        ("BUCKET", "b"),
        ("PUBLIC_BASE_URL", "https://x.example"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("configuration: CLOUDFRONT_KEY_PAIR_ID"), "{stderr}");
}

#[test]
fn a_valid_pem_gets_as_far_as_the_runtime_api() {
    let pem = data("ec-p256-sec1.pem");
    let (ok, stderr) = start(&with(&[("CLOUDFRONT_PRIVATE_KEY", &pem)]));
    assert!(reached_runtime(ok, &stderr), "{stderr}");
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto's server starts (scripts/setup installs it)");
    let guard = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}

fn create_secret(endpoint: &str, name: &str, value: &str) -> String {
    let out = Command::new("aws")
        .args([
            "--endpoint-url",
            endpoint,
            "secretsmanager",
            "create-secret",
            "--name",
            name,
            "--secret-string",
            value,
        ])
        .args(["--query", "ARN", "--output", "text"])
        .envs([
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_private_key_is_read_from_secrets_manager_by_arn() {
    let (_moto, endpoint) = moto();
    let good = create_secret(&endpoint, "cloudfront-key", &data("rsa2048-pkcs1.pem"));
    let bad = create_secret(&endpoint, "not-a-key", "hello");
    let run = |arn: &str| {
        start(&with(&[
            ("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN", arn),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint),
        ]))
    };
    let (ok, stderr) = run(&good);
    assert!(reached_runtime(ok, &stderr), "{stderr}");
    let (ok, stderr) = run(&bad);
    assert!(!ok && stderr.contains("start-up: CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"), "{stderr}");
    let missing = good.replace("cloudfront-key", "no-such-secret");
    let (ok, stderr) = run(&missing);
    assert!(
        !ok && stderr.contains("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN")
            && stderr.contains("ResourceNotFound"),
        "{stderr}"
    );
}
