//! The built Lambda binary refuses to start on bad configuration, naming the variable, before
//! it ever contacts the Lambda Runtime API.

use std::process::Command;

/// Runs the `resizer` binary with exactly these variables and returns (success, stderr).
fn start(vars: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resizer"))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("the resizer binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_bucket_stops_start_up_with_its_name() {
    let (ok, stderr) = start(&[("PUBLIC_BASE_URL", "https://cdn.example.com")]);
    assert!(!ok);
    assert!(stderr.contains("BUCKET is required"), "{stderr}");
}

#[test]
fn malformed_allowed_resolution_stops_start_up_naming_the_entry() {
    let (ok, stderr) = start(&[
        ("BUCKET", "images"),
        ("PUBLIC_BASE_URL", "https://cdn.example.com"),
        ("ALLOWED_RESOLUTIONS", "300x300,64Ox"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("ALLOWED_RESOLUTIONS") && stderr.contains("64Ox"), "{stderr}");
}

#[test]
fn valid_configuration_gets_as_far_as_the_runtime_api() {
    // With good configuration the binary proceeds to the Lambda Runtime API, which is absent
    // here: it must fail on that, not on configuration.
    let (ok, stderr) = start(&[
        ("BUCKET", "images"),
        ("PUBLIC_BASE_URL", "https://cdn.example.com"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    assert!(!ok);
    assert!(!stderr.contains("configuration"), "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_"), "{stderr}");
}
