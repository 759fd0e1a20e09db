//! CloudFront signing checked against independent implementations: botocore's
//! CloudFrontSigner, the AWS CLI's `aws cloudfront sign`, Python's `cryptography`, and
//! `openssl dgst -verify`. Keys and clocks are fixed, so every expected value is exact.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use signer::cloudfront::{CloudFrontSigner, Refusal, SignedRequest, TrustedKeys};
use signer::keys::{HashAlgorithm, SigningKey, VerifyingKey};
use signer::policy::{cf_base64_decode, Ipv4Cidr, Policy};

const KEY_ID: &str = "K2JCJMDEHXQW5F";
const BASE: &str = "https://d111111abcdef8.cloudfront.net";
const EXPIRES: u64 = 2_000_000_000;
const NOW: u64 = 1_900_000_000;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn signing_key(name: &str) -> SigningKey {
    SigningKey::from_pem(&std::fs::read(data(name)).unwrap()).unwrap()
}

fn verifying_key(name: &str) -> VerifyingKey {
    VerifyingKey::from_pem(&std::fs::read(data(name)).unwrap()).unwrap()
}

fn run(cmd: &mut Command, stdin: &[u8]) -> String {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn python(args: &[&str]) -> String {
    python_stdin(args, b"")
}

fn python_stdin(args: &[&str], stdin: &[u8]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crosscheck.py");
    run(Command::new("python3").arg(script).args(args).current_dir(data("")), stdin)
}

fn param<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

fn trusted(pairs: &[(&str, &str)]) -> TrustedKeys {
    let mut keys = TrustedKeys::new();
    for (id, file) in pairs {
        keys.insert(*id, verifying_key(file));
    }
    keys
}

fn rsa_signer(hash: HashAlgorithm) -> CloudFrontSigner {
    CloudFrontSigner::new(KEY_ID, signing_key("rsa2048-pkcs1.pem"), hash)
}

#[test]
fn canned_signed_url_equals_botocore_byte_for_byte() {
    let url = format!("{BASE}/300x300/private/galleries/g1/cat.jpg?v=2");
    let ours =
        rsa_signer(HashAlgorithm::Sha1).sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
    let theirs = python(&["canned-url", "rsa2048-pkcs1.pem", KEY_ID, &url, &EXPIRES.to_string()]);
    assert_eq!(ours, theirs);
    assert!(ours.starts_with(&format!("{url}&Expires={EXPIRES}&Signature=")));
}

#[test]
fn custom_policy_url_equals_botocore_byte_for_byte() {
    let url = format!("{BASE}/private/galleries/g1/cat.jpg");
    let resource = format!("{BASE}/*private/galleries/g1/*");
    for (start, cidr) in [
        (None, None),
        (Some(NOW), None),
        (None, Some("192.0.2.0/24")),
        (Some(NOW), Some("198.51.100.7/32")),
    ] {
        let policy = Policy {
            resource: Some(resource.clone()),
            date_less_than: EXPIRES,
            date_greater_than: start,
            ip_address: cidr.map(|c| Ipv4Cidr::parse(c).unwrap()),
        };
        let ours = rsa_signer(HashAlgorithm::Sha1).sign_url(&url, &policy).unwrap();
        let start_arg = start.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let theirs = python(&[
            "custom-url",
            "rsa2048-pkcs1.pem",
            KEY_ID,
            &url,
            &resource,
            &EXPIRES.to_string(),
            &start_arg,
            cidr.unwrap_or("-"),
        ]);
        assert_eq!(ours, theirs, "start {start:?} cidr {cidr:?}");
    }
}

#[test]
fn aws_cli_cloudfront_sign_gives_the_same_urls() {
    let url = format!("{BASE}/300x300/private/galleries/g1/cat.jpg");
    let key_arg = format!("file://{}", data("rsa2048-pkcs1.pem").display());
    // 2033-05-18T03:33:20Z is EXPIRES; 2030-03-17T17:46:40Z is NOW.
    let cli = |extra: &[&str]| {
        run(
            Command::new("aws")
                .args([
                    "cloudfront",
                    "sign",
                    "--url",
                    &url,
                    "--key-pair-id",
                    KEY_ID,
                    "--private-key",
                    &key_arg,
                ])
                .args(["--date-less-than", "2033-05-18T03:33:20Z"])
                .args(extra)
                .env("AWS_ACCESS_KEY_ID", "x")
                .env("AWS_SECRET_ACCESS_KEY", "x")
                .env("AWS_DEFAULT_REGION", "us-east-1"),
            b"",
        )
    };
    let canned =
        rsa_signer(HashAlgorithm::Sha1).sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
    assert_eq!(cli(&[]), canned);
    let custom = Policy {
        resource: Some(url.clone()),
        date_less_than: EXPIRES,
        date_greater_than: Some(NOW),
        ip_address: Some(Ipv4Cidr::parse("192.0.2.0/24").unwrap()),
    };
    let ours = rsa_signer(HashAlgorithm::Sha1).sign_url(&url, &custom).unwrap();
    assert_eq!(
        cli(&["--date-greater-than", "2030-03-17T17:46:40Z", "--ip-address", "192.0.2.0/24"]),
        ours
    );
}

#[test]
fn sha256_rsa_signatures_equal_cryptography_and_are_announced() {
    let url = format!("{BASE}/private/galleries/g1/cat.jpg");
    let signed =
        rsa_signer(HashAlgorithm::Sha256).sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
    assert!(signed.ends_with(&format!("&Key-Pair-Id={KEY_ID}&Hash-Algorithm=SHA256")), "{signed}");
    let policy = Policy::canned_json(&url, EXPIRES);
    let theirs = python_stdin(&["sign", "rsa2048-pkcs1.pem", "SHA256"], policy.as_bytes());
    assert_eq!(param(&signed, "Signature"), theirs);
    let cookies = rsa_signer(HashAlgorithm::Sha256)
        .sign_cookies(&Policy {
            resource: Some(format!("{BASE}/*")),
            ..Policy::canned(&url, EXPIRES)
        })
        .unwrap();
    assert!(cookies.pairs.contains(&("CloudFront-Hash-Algorithm", "SHA256".to_owned())));
}

fn openssl_verifies(public: &str, hash: HashAlgorithm, message: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("msg"), message).unwrap();
    std::fs::write(dir.path().join("sig"), signature).unwrap();
    let digest = match hash {
        HashAlgorithm::Sha1 => "-sha1",
        HashAlgorithm::Sha256 => "-sha256",
    };
    Command::new("openssl")
        .args(["dgst", digest, "-verify"])
        .arg(data(public))
        .arg("-signature")
        .arg(dir.path().join("sig"))
        .arg(dir.path().join("msg"))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn openssl_dgst_verify_accepts_our_rsa_and_ecdsa_signatures_and_rejects_altered_ones() {
    let url = format!("{BASE}/private/galleries/g1/cat.jpg");
    for (private, public) in [
        ("rsa2048-pkcs1.pem", "rsa2048-public.pem"),
        ("rsa2048-pkcs8.pem", "rsa2048-public.pem"),
        ("ec-p256-sec1.pem", "ec-p256-public.pem"),
        ("ec-p256-pkcs8.pem", "ec-p256-public.pem"),
    ] {
        for hash in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
            let signer = CloudFrontSigner::new(KEY_ID, signing_key(private), hash);
            let signed = signer.sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
            let signature = cf_base64_decode(param(&signed, "Signature")).unwrap();
            let policy = Policy::canned_json(&url, EXPIRES);
            assert!(
                openssl_verifies(public, hash, policy.as_bytes(), &signature),
                "{private} {hash:?}"
            );
            let altered = Policy::canned_json(&url, EXPIRES + 1);
            assert!(
                !openssl_verifies(public, hash, altered.as_bytes(), &signature),
                "{private} {hash:?}"
            );
        }
    }
}

#[test]
fn our_verifier_accepts_ecdsa_signatures_made_by_cryptography() {
    let url = format!("{BASE}/private/galleries/g1/cat.jpg");
    let keys = trusted(&[(KEY_ID, "ec-p256-public.pem")]);
    for (hash, suffix) in [("SHA1", ""), ("SHA256", "&Hash-Algorithm=SHA256")] {
        let policy = Policy::canned_json(&url, EXPIRES);
        let signature = python_stdin(&["sign", "ec-p256-pkcs8.pem", hash], policy.as_bytes());
        let signed =
            format!("{url}?Expires={EXPIRES}&Signature={signature}&Key-Pair-Id={KEY_ID}{suffix}");
        let request = SignedRequest {
            url: &signed,
            cookie_header: None,
            client_ip: [127, 0, 0, 1].into(),
            now: NOW,
        };
        assert_eq!(keys.verify(&request).map(|v| v.expires), Ok(EXPIRES), "{hash}");
    }
}

#[test]
fn key_forms_cloudfront_accepts_parse_and_others_are_refused() {
    for ok in ["rsa2048-pkcs1.pem", "rsa2048-pkcs8.pem", "ec-p256-sec1.pem", "ec-p256-pkcs8.pem"] {
        SigningKey::from_pem(&std::fs::read(data(ok)).unwrap())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["rsa1024.pem", "ec-p384.pem", "rsa2048-public.pem", "README.md"] {
        let err = SigningKey::from_pem(&std::fs::read(data(bad)).unwrap()).unwrap_err();
        assert!(!err.to_string().is_empty(), "{bad}");
    }
    // The same key in PKCS#1 and PKCS#8 form signs identically (RSA PKCS#1 v1.5 is
    // deterministic).
    let a = signing_key("rsa2048-pkcs1.pem").sign(b"policy", HashAlgorithm::Sha1).unwrap();
    let b = signing_key("rsa2048-pkcs8.pem").sign(b"policy", HashAlgorithm::Sha1).unwrap();
    assert_eq!(a, b);
    let debug = format!("{:?}", signing_key("rsa2048-pkcs1.pem"));
    assert!(!debug.contains("BEGIN"), "{debug}");
}

fn verify_url(keys: &TrustedKeys, url: &str, ip: [u8; 4], now: u64) -> Result<u64, Refusal> {
    keys.verify(&SignedRequest { url, cookie_header: None, client_ip: ip.into(), now })
        .map(|v| v.expires)
}

#[test]
fn verification_refuses_like_cloudfront() {
    let keys = trusted(&[(KEY_ID, "rsa2048-public.pem"), ("KEC", "ec-p256-public.pem")]);
    let url = format!("{BASE}/300x300/private/galleries/g1/cat.jpg");
    let signer = rsa_signer(HashAlgorithm::Sha1);
    let good = signer.sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
    let localhost = [127, 0, 0, 1];
    assert_eq!(verify_url(&keys, &good, localhost, NOW), Ok(EXPIRES));
    assert_eq!(verify_url(&keys, &good, localhost, EXPIRES), Err(Refusal::Expired));
    assert_eq!(verify_url(&keys, &url, localhost, NOW), Err(Refusal::MissingSignature));

    // The canned policy is rebuilt from the URL: another path, or a changed expiry, fails.
    let moved = good.replace("/cat.jpg", "/dog.jpg");
    assert_eq!(verify_url(&keys, &moved, localhost, NOW), Err(Refusal::BadSignature));
    let extended = good.replace(&format!("Expires={EXPIRES}"), &format!("Expires={}", EXPIRES + 1));
    assert_eq!(verify_url(&keys, &extended, localhost, NOW), Err(Refusal::BadSignature));
    let sig = param(&good, "Signature");
    let flipped = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    assert_eq!(
        verify_url(&keys, &good.replace(sig, &flipped), localhost, NOW),
        Err(Refusal::BadSignature)
    );

    // Another key, or an unknown id.
    let other =
        CloudFrontSigner::new(KEY_ID, signing_key("rsa2048-other.pem"), HashAlgorithm::Sha1)
            .sign_url(&url, &Policy::canned(&url, EXPIRES))
            .unwrap();
    assert_eq!(verify_url(&keys, &other, localhost, NOW), Err(Refusal::BadSignature));
    let unknown = good.replace(KEY_ID, "KUNKNOWN");
    assert_eq!(verify_url(&keys, &unknown, localhost, NOW), Err(Refusal::UnknownKey));

    // Custom policy: wildcard resource, start time, address.
    let policy = Policy {
        resource: Some(format!("{BASE}/*private/galleries/g1/*")),
        date_less_than: EXPIRES,
        date_greater_than: Some(NOW),
        ip_address: Some(Ipv4Cidr::parse("192.0.2.0/24").unwrap()),
    };
    let custom = signer.sign_url(&url, &policy).unwrap();
    assert_eq!(verify_url(&keys, &custom, [192, 0, 2, 9], NOW), Ok(EXPIRES));
    assert_eq!(verify_url(&keys, &custom, [192, 0, 3, 9], NOW), Err(Refusal::WrongIp));
    assert_eq!(verify_url(&keys, &custom, [192, 0, 2, 9], NOW - 1), Err(Refusal::NotYetValid));
    let other_gallery = custom.replace("/g1/cat.jpg", "/g2/cat.jpg");
    assert_eq!(verify_url(&keys, &other_gallery, [192, 0, 2, 9], NOW), Err(Refusal::WrongResource));
    let sha256 = custom.clone() + "&Hash-Algorithm=SHA256";
    assert_eq!(verify_url(&keys, &sha256, [192, 0, 2, 9], NOW), Err(Refusal::BadSignature));
    let md5 = custom + "&Hash-Algorithm=MD5";
    assert!(matches!(verify_url(&keys, &md5, [192, 0, 2, 9], NOW), Err(Refusal::Malformed(_))));
}

#[test]
fn signed_cookies_open_every_size_of_a_gallery_and_nothing_else() {
    let keys = trusted(&[(KEY_ID, "rsa2048-public.pem")]);
    let policy = Policy {
        resource: Some(format!("{BASE}/*private/galleries/g1/*")),
        ..Policy::canned("", EXPIRES)
    };
    let cookies = rsa_signer(HashAlgorithm::Sha1).sign_cookies(&policy).unwrap();
    let names: Vec<&str> = cookies.pairs.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id"]);
    let header: String = cookies.pairs.iter().map(|(n, v)| format!("{n}={v}; ")).collect();
    let check = |path: &str, header: &str| {
        let url = format!("{BASE}{path}");
        keys.verify(&SignedRequest {
            url: &url,
            cookie_header: Some(header),
            client_ip: [10, 0, 0, 1].into(),
            now: NOW,
        })
        .map(|v| v.expires)
    };
    for path in [
        "/private/galleries/g1/a.jpg",
        "/300x300/private/galleries/g1/a.jpg",
        "/1024x/private/galleries/g1/b/c.png",
    ] {
        assert_eq!(check(path, &header), Ok(EXPIRES), "{path}");
    }
    assert_eq!(check("/private/galleries/g2/a.jpg", &header), Err(Refusal::WrongResource));
    assert_eq!(check("/private/galleries/g1/a.jpg", "other=1"), Err(Refusal::MissingSignature));
    let tampered = header.replace("CloudFront-Policy=", "CloudFront-Policy=e");
    assert!(check("/private/galleries/g1/a.jpg", &tampered).is_err());
}

#[test]
fn cli_signs_what_the_library_signs_and_verifies_it() {
    let url = format!("{BASE}/300x300/private/galleries/g1/cat.jpg");
    let key = data("rsa2048-pkcs1.pem");
    let cli = env!("CARGO_BIN_EXE_cf-sign");
    let signed = run(
        Command::new(cli)
            .args(["url", &url, "--key-pair-id", KEY_ID, "--private-key"])
            .arg(&key)
            .args(["--date-less-than", &EXPIRES.to_string()]),
        b"",
    );
    let library =
        rsa_signer(HashAlgorithm::Sha1).sign_url(&url, &Policy::canned(&url, EXPIRES)).unwrap();
    assert_eq!(signed, library);
    let verify = |now: u64| {
        Command::new(cli)
            .args(["verify", &signed, "--key-pair-id", KEY_ID, "--public-key"])
            .arg(data("rsa2048-public.pem"))
            .args(["--now", &now.to_string()])
            .output()
            .unwrap()
    };
    assert!(verify(NOW).status.success());
    let expired = verify(EXPIRES);
    assert!(!expired.status.success());
    assert!(String::from_utf8_lossy(&expired.stderr).contains("signature-expired"));
    let cookies = run(
        Command::new(cli)
            .args(["cookies", &format!("{BASE}/*private/galleries/g1/*"), "--key-pair-id", KEY_ID])
            .arg("--private-key")
            .arg(&key)
            .args(["--expires-in", "60", "--now", &NOW.to_string()]),
        b"",
    );
    assert!(cookies.starts_with("CloudFront-Policy="), "{cookies}");
    assert_eq!(cookies.lines().count(), 3);
    let bad = Command::new(cli)
        .args(["url", &url, "--key-pair-id", KEY_ID, "--private-key"])
        .arg(data("rsa1024.pem"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("RSA-1024"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
