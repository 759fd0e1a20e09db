//! The post-deploy smoke test (`scripts/smoke`, the `smoke` crate) against the devserver in
//! both delivery modes, so it is known to work before anyone points it at AWS: every row
//! passes on a stack built from template.yaml (the uploads through the signer included),
//! the rows that cannot apply say SKIP, the key-encoding row reads each way the devserver's
//! S3 website can write a key, a stack missing the bucket policy's ListBucket grant fails
//! the missing-key row, and a signer that cannot take the uploads fails the uploads row.
//!
//! The options go through the same command line the binary parses (a key file written by
//! the test, the token from the development identity provider); only the S3 client is
//! handed in, the devserver's store's. `smoke/tests/cli.rs` runs the binary itself (default
//! credential chain, exit status).

use e2e::{in_both_modes, template_without_list_bucket, DeliveryMode, LocationEncoding, Stack};
use smoke::checks::names;
use smoke::{Cli, Outcome, Report};

/// The gallery the token grants, for the IP-bound cookie check.
const IP_GALLERY: &str = "smoke-ip";

/// An RSA-2048 CloudFront key as a PKCS#8 PEM, which the devserver's trusted key group
/// holds and the smoke test signs with.
fn cloudfront_key() -> String {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

/// A stack in `mode` whose CloudFront key is `pem`, with `adjust` applied.
async fn stack_with_key(
    mode: DeliveryMode,
    pem: &str,
    adjust: impl FnOnce(&mut devserver::Options),
) -> Stack {
    let pem = pem.to_owned();
    // The template's default sizes (the smoke test's 320x and 640x among them): a purge
    // needs a list.
    Stack::start_with(&[("ALLOWED_RESOLUTIONS", TEMPLATE_SIZES)], move |o| {
        o.delivery = mode;
        o.cloudfront_private_key = Some(pem);
        adjust(o);
    })
    .await
}

/// template.yaml's default AllowedResolutions.
const TEMPLATE_SIZES: &str = "200x200,300x300,320x,640x,1024x,1280x";

/// Runs the smoke test against `stack` with every option it can use, as `scripts/smoke`
/// would pass them.
async fn smoke_run(stack: &Stack, pem: &str) -> Report {
    smoke_run_with(stack, pem, &[]).await
}

/// [`smoke_run`] with `extra` options.
async fn smoke_run_with(stack: &Stack, pem: &str, extra: &[&str]) -> Report {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), pem).unwrap();
    let token = stack.sign_in("smoke-runner", &[IP_GALLERY]).await;
    let server = &stack.server;
    let mut args = vec![
        "smoke".to_owned(),
        server.website_url.clone(),
        "--bucket".into(),
        server.bucket.clone(),
        "--mode".into(),
        stack.delivery().to_string(),
        "--api-url".into(),
        server.api_url.clone(),
        "--token".into(),
        token,
        "--gallery".into(),
        IP_GALLERY.into(),
        "--key-pair-id".into(),
        devserver::DEV_KEY_PAIR_ID.into(),
        "--private-key".into(),
        key_file.path().display().to_string(),
        // The devserver's events take well under a second.
        "--purge-wait".into(),
        "30".into(),
    ];
    if let Some(url) = &server.function_url {
        args.extend(["--function-url".to_owned(), url.clone()]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let options = Cli::try_from_args(&args).unwrap().into_options().unwrap();
    smoke::run(&options, server.client().clone()).await
}

/// Asserts every row passed except `expected`, which must have exactly its outcome.
#[track_caller]
fn assert_rows(report: &Report, expected: &[(&str, Outcome)]) {
    let table = report.table();
    for row in report.rows() {
        let wanted = expected.iter().find(|(n, _)| *n == row.name).map_or(Outcome::Pass, |e| e.1);
        assert_eq!(row.outcome, wanted, "{}: {}\n{table}", row.name, row.seen);
    }
    assert!(!report.failed(), "{table}");
    assert_eq!(report.exit_code(), 0);
}

/// Every key the run left in the bucket (none, after its cleanup).
async fn leftovers(stack: &Stack) -> Vec<String> {
    stack.keys().await.into_iter().filter(|k| k.contains("smoke")).collect()
}

async fn every_check_passes(mode: DeliveryMode) {
    let pem = cloudfront_key();
    let stack = stack_with_key(mode, &pem, |_| {}).await;
    let report = smoke_run(&stack, &pem).await;
    // What cannot apply in a mode says SKIP; the rest passes (setup, the key-encoding and
    // raw-plus observations and cleanup are INFO).
    let mut expected = vec![
        (names::SETUP, Outcome::Info),
        (names::RAW_PLUS, Outcome::Info),
        (names::CLEANUP, Outcome::Info),
    ];
    match mode {
        DeliveryMode::Redirect => expected
            .extend([(names::KEY_ENCODING, Outcome::Info), (names::FUNCTION_URL, Outcome::Skip)]),
        DeliveryMode::Failover => expected
            .extend([(names::KEY_ENCODING, Outcome::Skip), (names::RESIZE_PRIVATE, Outcome::Skip)]),
    }
    assert_rows(&report, &expected);
    assert_eq!(report.rows().len(), 24, "{}", report.table());
    if mode == DeliveryMode::Redirect {
        let seen = &report.row(names::KEY_ENCODING).unwrap().seen;
        assert!(seen.contains("percent-encoded once; set RedirectKeyEncoding=once"), "{seen}");
    }
    // The devserver's edge and origins answered as the template says (the refusals came
    // from the edge, the execute-api one from the signer itself).
    let seen = &report.row(names::API_SIGNER).unwrap().seen;
    assert!(seen.contains("403 origin-not-verified"), "{seen}");
    let seen = &report.row(names::IP_BOUND).unwrap().seen;
    assert!(seen.contains("bound to 127.0.0.1/32"), "{seen}");
    // The three uploads went through the devserver's signer, store and edge, and their
    // sized paths were made with the uploads cookies.
    let seen = &report.row(names::UPLOADS).unwrap().seen;
    for kind in ["PUT", "POST form", "multipart"] {
        let stored = format!("{kind} uploads/smoke-runner/");
        assert!(seen.contains(&stored), "{kind}: {seen}");
    }
    assert_eq!(seen.matches("stored image/jpeg, Cache-Control max-age=86400").count(), 3, "{seen}");
    assert_eq!(seen.matches(", made").count(), 3, "{seen}");
    // The replaced original's size left the bucket and the edge (the devserver's events
    // and invalidations).
    let seen = &report.row(names::PURGE).unwrap().seen;
    assert!(seen.contains("the old size left the bucket after"), "{seen}");
    assert!(seen.contains("the site served the new size after"), "{seen}");
    // The devserver runs the path guard before the signature check, on the raw path.
    let seen = &report.row(names::CHECK_ORDER).unwrap().seen;
    assert!(seen.contains("(encoded-private-path)"), "{seen}");
    assert!(seen.contains("the path guard answers before the signature check"), "{seen}");
    let seen = &report.row(names::QUERY_PATH).unwrap().seen;
    assert_eq!(seen.matches("403 from the path guard (private-query)").count(), 3, "{seen}");
    let seen = &report.row(names::SLASHES).unwrap().seen;
    let probes = if mode == DeliveryMode::Redirect { 2 } else { 1 };
    assert_eq!(seen.matches("403 from the path guard (dot-segment)").count(), probes, "{seen}");
    let seen = &report.row(names::RAW_PLUS).unwrap().seen;
    assert!(seen.contains("S3 reads a raw '+' literally") && seen.contains("made as"), "{seen}");
    if mode == DeliveryMode::Failover {
        assert!(seen.contains("(a cache hit)"), "{seen}");
    }
    assert_eq!(leftovers(&stack).await, Vec::<String>::new(), "the run cleans up");
}

in_both_modes!(every_check_passes_against_the_devserver, every_check_passes);

#[tokio::test]
async fn keys_the_redirect_cannot_carry_are_expected_refused_when_s3_writes_them_raw() {
    let pem = cloudfront_key();
    let stack = stack_with_key(DeliveryMode::Redirect, &pem, |o| {
        o.location_encoding = LocationEncoding::Raw
    })
    .await;
    let report = smoke_run(&stack, &pem).await;
    let encoding = &report.row(names::KEY_ENCODING).unwrap().seen;
    assert!(encoding.contains("S3 writes keys raw"), "{encoding}");
    let row = report.row(names::SPECIAL_KEYS).unwrap();
    assert_eq!(row.outcome, Outcome::Pass, "{}", report.table());
    for refused in ["\"a#b.jpg\" 404", "\"100%25.jpg\" 404"] {
        assert!(row.seen.contains(refused), "{refused}: {}", row.seen);
    }
    assert!(!report.failed(), "{}", report.table());
}

/// S3 writing keys form-encoded (`a+b.jpg` for the key `a b.jpg`): the key-encoding row
/// recognises it and recommends RedirectKeyEncoding=form. Under `auto` the resizer tries
/// the once reading first, which reads that Location as the key `a+b.jpg`: with both
/// `a b.jpg` and `a+b.jpg` uploaded, the first is answered with the second's derivative,
/// and the special-character row fails with the same advice. Set as advised, every row
/// passes.
#[tokio::test]
async fn keys_written_form_encoded_are_recognised_and_form_is_recommended() {
    let pem = cloudfront_key();
    let stack = stack_with_key(DeliveryMode::Redirect, &pem, |o| {
        o.location_encoding = LocationEncoding::Form
    })
    .await;
    let report = smoke_run(&stack, &pem).await;
    let table = report.table();
    let encoding = &report.row(names::KEY_ENCODING).unwrap().seen;
    assert!(encoding.contains("/a+b.jpg\""), "{encoding}");
    assert!(encoding.contains("S3 writes keys form-encoded"), "{encoding}");
    assert!(encoding.contains("set RedirectKeyEncoding=form"), "{encoding}");
    let row = report.row(names::SPECIAL_KEYS).unwrap();
    assert_eq!(row.outcome, Outcome::Fail, "{table}");
    assert!(row.seen.starts_with("\"a b.jpg\": not stored under its own name"), "{}", row.seen);
    assert!(row.seen.contains("set RedirectKeyEncoding=form"), "{}", row.seen);
    let failed: Vec<&str> =
        report.rows().iter().filter(|r| r.outcome == Outcome::Fail).map(|r| r.name).collect();
    assert_eq!(failed, [names::SPECIAL_KEYS], "{table}");
    assert_eq!(leftovers(&stack).await, Vec::<String>::new(), "the run cleans up");

    // Deployed as advised (the resizer and the signer read keys form-encoded), every row
    // passes.
    let stack = stack_with_key(DeliveryMode::Redirect, &pem, |o| {
        o.location_encoding = LocationEncoding::Form;
        o.resizer_env.insert("REDIRECT_KEY_ENCODING".into(), "form".into());
        o.signer_env.insert("REDIRECT_KEY_ENCODING".into(), "form".into());
    })
    .await;
    let report = smoke_run_with(&stack, &pem, &["--key-encoding", "form"]).await;
    let encoding = &report.row(names::KEY_ENCODING).unwrap().seen;
    assert!(encoding.contains("RedirectKeyEncoding=form already matches"), "{encoding}");
    assert_rows(
        &report,
        &[
            (names::SETUP, Outcome::Info),
            (names::KEY_ENCODING, Outcome::Info),
            (names::RAW_PLUS, Outcome::Info),
            (names::FUNCTION_URL, Outcome::Skip),
            (names::CLEANUP, Outcome::Info),
        ],
    );
}

/// The uploads row fails when the uploads do not go through. Here the signer takes 1 KB
/// at most (MAX_UPLOAD_BYTES): it refuses the PUT and the multipart upload itself (413),
/// and S3 refuses the form's file (EntityTooLarge); every other row still passes. (A role
/// without s3:PutObject, which the devserver does not evaluate, is judged on an
/// observation written from S3's and the signer's answers, in the smoke crate's unit tests.)
#[tokio::test]
async fn uploads_that_do_not_go_through_fail_the_uploads_row() {
    let pem = cloudfront_key();
    let stack = stack_with_key(DeliveryMode::Failover, &pem, |o| {
        o.signer_env.insert("MAX_UPLOAD_BYTES".into(), "1000".into());
    })
    .await;
    let report = smoke_run(&stack, &pem).await;
    let row = report.row(names::UPLOADS).unwrap();
    assert_eq!(row.outcome, Outcome::Fail, "{}", report.table());
    for refusal in [
        "PUT: POST /api/upload-url answered 413 upload-too-large",
        "POST form: the form's POST to S3 answered 400 EntityTooLarge",
        "multipart: POST /api/multipart/begin answered 413 upload-too-large",
    ] {
        assert!(row.seen.contains(refusal), "{refusal}: {}", row.seen);
    }
    let failed: Vec<&str> =
        report.rows().iter().filter(|r| r.outcome == Outcome::Fail).map(|r| r.name).collect();
    assert_eq!(failed, [names::UPLOADS], "{}", report.table());
    assert_eq!(report.exit_code(), 1);
    assert_eq!(leftovers(&stack).await, Vec::<String>::new(), "cleaned up after a failure too");
}

#[tokio::test]
async fn a_bucket_policy_without_list_bucket_fails_the_missing_key_row() {
    let pem = cloudfront_key();
    let stack = stack_with_key(DeliveryMode::Redirect, &pem, |o| {
        o.template = template_without_list_bucket()
    })
    .await;
    let report = smoke_run(&stack, &pem).await;
    let row = report.row(names::MISSING_KEY).unwrap();
    assert_eq!(row.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        row.seen.contains("S3 answered 403") && row.seen.contains("s3:ListBucket"),
        "{}",
        row.seen
    );
    // Every miss dies at the website's 403, so the miss row fails too.
    assert_eq!(report.row(names::MISS).unwrap().outcome, Outcome::Fail);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(leftovers(&stack).await, Vec::<String>::new(), "cleaned up after a failure too");
}
