//! Listing keys that URL and XML handling tend to mangle, through the clients people point
//! at S3: the AWS CLI and boto3. botocore asks for `EncodingType=url` on every listing and
//! form-decodes what comes back (`+` is a space), so a store that says it encoded but did
//! not turns `a+b c.jpg` into `a b c.jpg`. Listings are paginated with small pages so
//! continuation runs across these keys, and prefixes, delimiters, start-after and markers
//! go out as the clients send them. The listed keys must equal the uploaded ones exactly.

use std::path::Path;
use std::process::Stdio;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use e2e::Stack;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Keys under `photos/`, uploaded with the AWS CLI.
const KEYS: &[&str] = &[
    // `+` and space: one string once the encoding is dropped.
    "photos/a+b c.jpg",
    "photos/100%.jpg",
    // Looks encoded: decoded once too often, it becomes the key above.
    "photos/100%25.jpg",
    "photos/a&b=c.jpg",
    "photos/q?x#y.jpg",
    "photos/ảnh đẹp.jpg",
    "photos/고양이 사진.png",
    "photos/tab'quote\".jpg",
    "photos/tab\there.jpg",
    "photos/tilde~star*.jpg",
    // A common prefix with a space in it, under the `/` delimiter.
    "photos/a b/c+d.jpg",
];

/// The common prefix `photos/a b/c+d.jpg` makes under `photos/` with the `/` delimiter.
const SUBDIR: &str = "photos/a b/";

/// Each key as S3 writes it under `EncodingType=url`, spelled out here rather than computed
/// by the store's own encoder: form encoding (a space is `+`), `/` and `*` kept, `~`
/// encoded (`devserver::store::encode_listed_key` gives the evidence).
const ENCODED: &[(&str, &str)] = &[
    ("photos/a+b c.jpg", "photos/a%2Bb+c.jpg"),
    ("photos/100%.jpg", "photos/100%25.jpg"),
    ("photos/100%25.jpg", "photos/100%2525.jpg"),
    ("photos/a&b=c.jpg", "photos/a%26b%3Dc.jpg"),
    ("photos/q?x#y.jpg", "photos/q%3Fx%23y.jpg"),
    ("photos/ảnh đẹp.jpg", "photos/%E1%BA%A3nh+%C4%91%E1%BA%B9p.jpg"),
    ("photos/고양이 사진.png", "photos/%EA%B3%A0%EC%96%91%EC%9D%B4+%EC%82%AC%EC%A7%84.png"),
    ("photos/tab'quote\".jpg", "photos/tab%27quote%22.jpg"),
    ("photos/tab\there.jpg", "photos/tab%09here.jpg"),
    ("photos/tilde~star*.jpg", "photos/tilde%7Estar*.jpg"),
    ("photos/a b/c+d.jpg", "photos/a+b/c%2Bd.jpg"),
    ("photos/a b/", "photos/a+b/"),
    ("photos/", "photos/"),
    ("/", "/"),
];

fn encoded(value: &str) -> &'static str {
    ENCODED
        .iter()
        .find(|(raw, _)| *raw == value)
        .map(|(_, enc)| *enc)
        .unwrap_or_else(|| panic!("no encoding spelled out for {value:?}"))
}

/// Every key, in the order S3 lists them (by UTF-8 bytes).
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

/// The keys directly under `photos/` (not under the sub-prefix), in listing order.
fn direct_keys() -> Vec<String> {
    all_keys().into_iter().filter(|k| !k.starts_with(SUBDIR)).collect()
}

/// The keys after `start` in listing order, `start` excluded (StartAfter, Marker).
fn keys_after(start: &str) -> Vec<String> {
    all_keys().into_iter().filter(|k| k.as_str() > start).collect()
}

/// Environment for the AWS CLI and boto3: the store's credentials and region, and nothing
/// from the developer's own configuration (a profile could change addressing or retries).
fn client_command(program: &str, scratch: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env("AWS_ACCESS_KEY_ID", devserver::DEFAULT_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", devserver::DEFAULT_SECRET_KEY)
        .env("AWS_DEFAULT_REGION", devserver::REGION)
        .env("AWS_CONFIG_FILE", scratch.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", scratch.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Keys are printed as UTF-8 whatever the locale.
        .env("PYTHONIOENCODING", "utf-8")
        .env_remove("AWS_PROFILE")
        .kill_on_drop(true);
    cmd
}

/// Runs `aws --endpoint-url {store} ARGS`; returns its standard output.
async fn aws(stack: &Stack, scratch: &Path, args: &[&str]) -> String {
    let out = client_command("aws", scratch)
        .arg("--endpoint-url")
        .arg(&stack.server.s3_endpoint)
        .args(args)
        .output()
        .await
        .expect("the AWS CLI runs (scripts/setup installs it)");
    assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `aws ... --output json`, parsed.
async fn aws_json(stack: &Stack, scratch: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let text = aws(stack, scratch, &args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("aws {args:?}: not JSON ({e}): {text}"))
}

/// `Contents[].Key` (or `CommonPrefixes[].Prefix` with `field` "CommonPrefixes") of a
/// listing's JSON, in the order given.
fn listed(value: &Value, field: &str) -> Vec<String> {
    let member = if field == "CommonPrefixes" { "Prefix" } else { "Key" };
    value[field]
        .as_array()
        .map(|items| items.iter().map(|i| i[member].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Uploads every key of [`KEYS`] as a user would: the one from the report with
/// `aws s3 cp FILE s3://bucket/key`, the rest with `aws s3 cp --recursive` from a folder
/// whose file names are the keys. Each object's body is its key.
async fn upload_with_aws_cli(stack: &Stack, scratch: &Path) {
    let bucket = &stack.server.bucket;
    let single = scratch.join("x.jpg");
    std::fs::write(&single, KEYS[0]).unwrap();
    let url = format!("s3://{bucket}/{}", KEYS[0]);
    aws(stack, scratch, &["s3", "cp", single.to_str().unwrap(), &url]).await;

    let folder = scratch.join("photos");
    for key in &KEYS[1..] {
        let path = folder.join(key.strip_prefix("photos/").unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, key).unwrap();
    }
    let target = format!("s3://{bucket}/photos/");
    aws(stack, scratch, &["s3", "cp", "--recursive", folder.to_str().unwrap(), &target]).await;

    // What the store holds, read back without any listing encoding and by exact key.
    let stored: Vec<String> =
        stack.keys().await.into_iter().filter(|k| k.starts_with("photos/")).collect();
    assert_eq!(stored, all_keys(), "the CLI uploads store the keys as given");
    for key in KEYS {
        let (body, _, _) = stack.get(key).await.unwrap_or_else(|| panic!("{key:?} stored"));
        assert_eq!(&body[..], key.as_bytes(), "{key:?}");
    }
}

/// Parses `aws s3 ls s3://bucket/prefix/`: the object names and the `PRE` prefixes, as shown.
fn parse_s3_ls(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut names, mut prefixes) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(pre) = line.trim_start().strip_prefix("PRE ") {
            prefixes.push(pre.to_owned());
            continue;
        }
        // `2026-11-26 00:16:07          3 name`: date, time, right-aligned size, name.
        let rest = line.get(20..).unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let (size, name) = rest.trim_start().split_once(' ').unwrap();
        assert!(size.parse::<u64>().is_ok(), "{line:?}");
        names.push(name.to_owned());
    }
    (names, prefixes)
}

#[tokio::test]
async fn aws_cli_lists_keys_exactly_as_uploaded() {
    let stack = Stack::start(&[]).await;
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    upload_with_aws_cli(&stack, scratch).await;
    let bucket = stack.server.bucket.clone();
    let under = |key: &String| key.strip_prefix("photos/").unwrap().to_owned();

    // The report: `aws s3 ls s3://images/photos/` (ListObjectsV2, prefix and delimiter).
    let (names, prefixes) =
        parse_s3_ls(&aws(&stack, scratch, &["s3", "ls", &format!("s3://{bucket}/photos/")]).await);
    let expected: Vec<String> = direct_keys().iter().map(under).collect();
    assert_eq!(names, expected);
    assert_eq!(prefixes, ["a b/"]);

    // Recursive, two keys a page: continuation tokens taken across every key.
    let text = aws(
        &stack,
        scratch,
        &["s3", "ls", "--recursive", "--page-size", "2", &format!("s3://{bucket}/photos/")],
    )
    .await;
    assert_eq!(parse_s3_ls(&text).0, all_keys());

    // s3api, both list operations, paginated by the CLI with and without a delimiter.
    for operation in ["list-objects-v2", "list-objects"] {
        let base = [operation, "--bucket", &bucket, "--prefix", "photos/", "--page-size", "2"];
        let all = aws_json(&stack, scratch, &[&["s3api"][..], &base[..]].concat()).await;
        assert_eq!(listed(&all, "Contents"), all_keys(), "{operation}");
        let delimited = aws_json(
            &stack,
            scratch,
            &[&["s3api"][..], &base[..], &["--delimiter", "/"][..]].concat(),
        )
        .await;
        assert_eq!(listed(&delimited, "Contents"), direct_keys(), "{operation} /");
        assert_eq!(listed(&delimited, "CommonPrefixes"), [SUBDIR], "{operation} /");
    }

    // Prefixes as query parameters: `+` is a plus and a space a space, `%25` is not `%`.
    for (prefix, expected) in [
        ("photos/a+b", vec!["photos/a+b c.jpg"]),
        ("photos/a b", vec!["photos/a b/c+d.jpg"]),
        ("photos/100%", vec!["photos/100%.jpg", "photos/100%25.jpg"]),
        ("photos/100%25", vec!["photos/100%25.jpg"]),
        ("photos/q?x#", vec!["photos/q?x#y.jpg"]),
        ("photos/고양이 ", vec!["photos/고양이 사진.png"]),
    ] {
        let out = aws_json(
            &stack,
            scratch,
            &["s3api", "list-objects-v2", "--bucket", &bucket, "--prefix", prefix],
        )
        .await;
        assert_eq!(listed(&out, "Contents"), expected, "prefix {prefix:?}");
        assert_eq!(out["Prefix"], prefix, "ListObjectsV2 echoes the prefix, decoded");
    }

    // Where to start: StartAfter (v2) and Marker (v1), echoed back as sent.
    let start = "photos/a+b c.jpg";
    let after = aws_json(
        &stack,
        scratch,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &bucket,
            "--prefix",
            "photos/",
            "--start-after",
            start,
            // One call, returned whole: the CLI's merged pages drop StartAfter and Marker.
            "--no-paginate",
        ],
    )
    .await;
    assert_eq!(listed(&after, "Contents"), keys_after(start));
    assert_eq!(after["StartAfter"], start);
    let marked = aws_json(
        &stack,
        scratch,
        &[
            "s3api",
            "list-objects",
            "--bucket",
            &bucket,
            "--prefix",
            "photos/",
            "--marker",
            start,
            "--no-paginate",
        ],
    )
    .await;
    assert_eq!(listed(&marked, "Contents"), keys_after(start));
    assert_eq!(marked["Marker"], start);
}

/// Lists with boto3: runs `calls` (a JSON array of `{op, params}`, see the script) in one
/// Python process and returns one result per call.
async fn boto3(stack: &Stack, scratch: &Path, calls: Value) -> Vec<Value> {
    let mut child = client_command("python3", scratch)
        .args(["-c", BOTO3_LISTINGS, &stack.server.s3_endpoint, &stack.server.bucket])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/setup installs boto3)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "boto3: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("boto3: not JSON ({e}): {stdout}"))
}

/// Each call's `op`: `pages` follows ListObjectsV2's NextContinuationToken by hand and
/// gathers every page; `paginate` uses boto3's own paginator for `method`; `raw` is one call
/// of `method` returned whole (with `EncodingType` given by the caller, botocore hands the
/// values back as the server wrote them instead of decoding them).
const BOTO3_LISTINGS: &str = r#"
import json, sys
import boto3
from botocore.config import Config

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint,
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

def pages(params):
    keys, prefixes, echoed = [], [], []
    while True:
        r = s3.list_objects_v2(Bucket=bucket, **params)
        keys += [o["Key"] for o in r.get("Contents", [])]
        prefixes += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        echoed.append({k: r.get(k) for k in ("Prefix", "Delimiter", "StartAfter")})
        if not r["IsTruncated"]:
            return {"keys": keys, "prefixes": prefixes, "pages": len(echoed), "echoed": echoed}
        params = dict(params, ContinuationToken=r["NextContinuationToken"])

def paginate(method, params):
    keys, prefixes = [], []
    for page in s3.get_paginator(method).paginate(Bucket=bucket, **params):
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return {"keys": keys, "prefixes": prefixes}

def raw(method, params):
    r = getattr(s3, method)(Bucket=bucket, **params)
    r.pop("ResponseMetadata", None)
    return r

results = []
for call in json.load(sys.stdin):
    op, params = call["op"], call.get("params", {})
    if op == "pages":
        results.append(pages(params))
    elif op == "paginate":
        results.append(paginate(call["method"], params))
    else:
        results.append(raw(call["method"], params))
print(json.dumps(results, default=str))
"#;

/// A result's `field` as a list of strings.
fn strings(value: &Value, field: &str) -> Vec<String> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn boto3_lists_keys_exactly_across_pages_prefixes_and_delimiters() {
    let stack = Stack::start(&[]).await;
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    upload_with_aws_cli(&stack, scratch).await;
    let everything = stack.keys().await;
    let start = "photos/a+b c.jpg";
    let calls = json!([
        { "op": "pages", "params": { "MaxKeys": 2 } },
        { "op": "pages", "params": { "Prefix": "photos/", "MaxKeys": 2 } },
        { "op": "pages", "params": { "Prefix": "photos/", "Delimiter": "/", "MaxKeys": 2 } },
        { "op": "pages", "params": { "Prefix": "photos/a+b" } },
        { "op": "pages", "params": { "Prefix": "photos/a b", "Delimiter": "/" } },
        { "op": "pages", "params": { "Prefix": "photos/", "StartAfter": start, "MaxKeys": 2 } },
        { "op": "paginate", "method": "list_objects_v2",
          "params": { "Prefix": "photos/", "PaginationConfig": { "PageSize": 3 } } },
        { "op": "paginate", "method": "list_objects",
          "params": { "Prefix": "photos/", "PaginationConfig": { "PageSize": 2 } } },
        { "op": "paginate", "method": "list_objects",
          "params": { "Prefix": "photos/", "Delimiter": "/", "PaginationConfig": { "PageSize": 2 } } },
    ]);
    let results = boto3(&stack, scratch, calls).await;

    // The whole bucket, two keys a page, equals what the Rust SDK lists without encoding.
    assert_eq!(strings(&results[0], "keys"), everything);
    assert!(results[0]["pages"].as_u64().unwrap() > 5, "{}", results[0]["pages"]);

    let photos = &results[1];
    assert_eq!(strings(photos, "keys"), all_keys());
    assert_eq!(photos["pages"], KEYS.len().div_ceil(2));
    for echoed in photos["echoed"].as_array().unwrap() {
        assert_eq!(echoed["Prefix"], "photos/");
    }

    let delimited = &results[2];
    assert_eq!(strings(delimited, "keys"), direct_keys());
    assert_eq!(strings(delimited, "prefixes"), [SUBDIR]);
    assert_eq!(delimited["echoed"][0]["Delimiter"], "/");

    // A prefix holding `+` or a space means exactly that, and comes back as it was sent.
    assert_eq!(strings(&results[3], "keys"), ["photos/a+b c.jpg"]);
    assert_eq!(results[3]["echoed"][0]["Prefix"], "photos/a+b");
    assert_eq!(strings(&results[4], "keys"), Vec::<String>::new());
    assert_eq!(strings(&results[4], "prefixes"), [SUBDIR]);
    assert_eq!(results[4]["echoed"][0]["Prefix"], "photos/a b");

    let after = &results[5];
    assert_eq!(strings(after, "keys"), keys_after(start));
    assert_eq!(after["echoed"][0]["StartAfter"], start);

    assert_eq!(strings(&results[6], "keys"), all_keys(), "ListObjectsV2 paginator");
    assert_eq!(strings(&results[7], "keys"), all_keys(), "ListObjects paginator");
    assert_eq!(strings(&results[8], "keys"), direct_keys(), "ListObjects paginator, /");
    assert_eq!(strings(&results[8], "prefixes"), [SUBDIR]);
}

#[tokio::test]
async fn listings_asked_for_url_encoding_are_encoded_as_s3_encodes_them() {
    let stack = Stack::start(&[]).await;
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    upload_with_aws_cli(&stack, scratch).await;
    let start = "photos/100%.jpg";
    let marker = "photos/a&b=c.jpg";
    let calls = json!([
        { "op": "raw", "method": "list_objects_v2", "params": {
            "EncodingType": "url", "Prefix": "photos/", "Delimiter": "/", "StartAfter": start } },
        { "op": "raw", "method": "list_objects_v2", "params": {
            "EncodingType": "url", "Prefix": "photos/a b", "Delimiter": "/" } },
        { "op": "raw", "method": "list_objects", "params": {
            "EncodingType": "url", "Prefix": "photos/", "Delimiter": "/", "Marker": marker,
            "MaxKeys": 2 } },
        { "op": "raw", "method": "list_objects", "params": { "Prefix": "photos/", "MaxKeys": 2 } },
    ]);
    let results = boto3(&stack, scratch, calls).await;
    let encode_all =
        |keys: Vec<String>| -> Vec<String> { keys.iter().map(|k| encoded(k).to_owned()).collect() };

    let v2 = &results[0];
    assert_eq!(v2["EncodingType"], "url");
    assert_eq!(v2["Prefix"], encoded("photos/"));
    assert_eq!(v2["Delimiter"], encoded("/"));
    assert_eq!(v2["StartAfter"], encoded(start));
    let direct_after: Vec<String> =
        direct_keys().into_iter().filter(|k| k.as_str() > start).collect();
    assert_eq!(listed(v2, "Contents"), encode_all(direct_after));
    assert_eq!(listed(v2, "CommonPrefixes"), [encoded(SUBDIR)]);

    let spaced = &results[1];
    assert_eq!(spaced["Prefix"], "photos/a+b");
    assert_eq!(listed(spaced, "CommonPrefixes"), [encoded(SUBDIR)]);

    let v1 = &results[2];
    assert_eq!(v1["EncodingType"], "url");
    assert_eq!(v1["Marker"], encoded(marker));
    assert_eq!(v1["Prefix"], encoded("photos/"));
    assert_eq!(v1["Delimiter"], encoded("/"));
    let page: Vec<String> =
        direct_keys().into_iter().filter(|k| k.as_str() > marker).take(2).collect();
    assert_eq!(listed(v1, "Contents"), encode_all(page.clone()));
    assert_eq!(v1["IsTruncated"], true);
    assert_eq!(v1["NextMarker"], encoded(&page[1]));

    // ListObjects without a delimiter: no NextMarker, clients go on from the last key.
    let plain = &results[3];
    assert_eq!(plain["IsTruncated"], true);
    assert!(plain.get("NextMarker").is_none(), "{plain}");
    assert_eq!(plain["Marker"], "");

    // Any encoding other than `url` is refused, as S3 refuses it.
    let err = stack
        .server
        .client()
        .list_objects_v2()
        .bucket(&stack.server.bucket)
        .encoding_type(aws_sdk_s3::types::EncodingType::from("gzip"))
        .send()
        .await
        .expect_err("EncodingType=gzip refused");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(err.code(), Some("InvalidArgument"));
}
