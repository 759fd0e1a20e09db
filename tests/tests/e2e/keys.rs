//! Keys with the characters that matter (space, `+`, `%`, `&`, `#`, `?`, Vietnamese and
//! Korean letters) through the whole chain: under each reading of how the S3 website writes
//! a key into its redirect (encoded once, encoded twice, appended raw: AWS does not document
//! it, and the devserver emulates each), and in failover mode, which never puts a key in a
//! Location. A key `keyspace::routing::carried` approves arrives whole and is made under its
//! own name; one it refuses fails with a 4xx and leaves nothing behind, never another
//! image. The signer refuses, at upload time, the names the redirect cannot carry.

use e2e::{cookie_header, inspect, DeliveryMode, LocationEncoding, Stack};
use keyspace::encode_key_path;
use keyspace::routing::{carried, KeyDecoding};
use reqwest::Method;
use serde_json::json;

/// Originals under `keys/`, as a user would name photos. No two differ only in a way one
/// reading of S3 could turn into the other (`c d` and `c+d`, say): with the reading unknown
/// such siblings are ambiguous, and the resizer takes the first that exists (see
/// `siblings_are_told_apart_once_the_reading_is_set`).
const NAMES: [&str; 11] = [
    "a b.jpg",
    "c+d.jpg",
    "100% sure.jpg",
    "100%25.jpg",
    "a&b=c.jpg",
    "a#b.jpg",
    "why?not.jpg",
    "ảnh đẹp.jpg",
    "고양이 사진.jpg",
    "tab'quote\"(1).jpg",
    "plain-name_1.jpg",
];

fn small_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

/// Runs every name through `stack`, whose S3 website writes keys as `encoding` (or which is
/// in failover mode), and checks each arrives exactly when `carried` says it does.
async fn every_name_arrives_when_carried(stack: &Stack, encoding: LocationEncoding) {
    let mode = stack.delivery();
    for name in NAMES {
        let key = format!("keys/{name}");
        stack.put(&key, small_jpeg(), "image/jpeg").await;
    }
    let mut arrived = 0;
    for name in NAMES {
        let key = format!("keys/{name}");
        let derivative = format!("32x/{key}");
        let expected = carried(&derivative, mode, KeyDecoding::Exactly(encoding), false).is_ok();
        // The page writes the URL properly encoded, as any HTML must.
        let path = format!("/{}", encode_key_path(&derivative));
        let before = stack.keys().await;
        let chain = stack.follow(Method::GET, &path).await;
        let label = format!("{mode} {encoding}: {key:?}");
        if expected {
            assert_eq!(chain.statuses(), stack.miss(), "{label}: {chain:#?}");
            assert_eq!(inspect(&chain.body).1, 32, "{label}");
            assert!(stack.get(&derivative).await.is_some(), "{label}: stored under its own name");
            arrived += 1;
        } else {
            let status = chain.last().status;
            assert!((400..500).contains(&status), "{label}: {chain:#?}");
            assert_eq!(stack.keys().await, before, "{label}: nothing written");
        }
    }
    assert!(arrived >= 7, "{mode} {encoding}: only {arrived} names arrived");
}

#[tokio::test]
async fn keys_arrive_when_s3_encodes_them_once() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Once).await;
    every_name_arrives_when_carried(&stack, LocationEncoding::Once).await;
}

#[tokio::test]
async fn keys_arrive_when_s3_encodes_them_twice() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Twice).await;
    every_name_arrives_when_carried(&stack, LocationEncoding::Twice).await;
}

#[tokio::test]
async fn keys_arrive_when_s3_form_encodes_them() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Form).await;
    every_name_arrives_when_carried(&stack, LocationEncoding::Form).await;
}

#[tokio::test]
async fn keys_arrive_when_s3_appends_them_raw_except_those_the_redirect_cannot_carry() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Raw).await;
    every_name_arrives_when_carried(&stack, LocationEncoding::Raw).await;
    // Named: a raw `#` cuts the key, a raw `%25` reads as `%`.
    for refused in ["keys/a#b.jpg", "keys/100%25.jpg"] {
        assert!(stack.get(&format!("32x/{refused}")).await.is_none(), "{refused}");
    }
}

#[tokio::test]
async fn every_key_arrives_in_failover_mode() {
    let stack = Stack::start_in(DeliveryMode::Failover, &[]).await;
    // No Location carries the key: every name of the grammar is made.
    every_name_arrives_when_carried(&stack, LocationEncoding::Raw).await;
    for name in NAMES {
        assert!(stack.get(&format!("32x/keys/{name}")).await.is_some(), "{name}");
    }
}

#[tokio::test]
async fn one_setting_reads_each_key_once_and_the_auto_setting_learns_the_reading() {
    // Told how S3 writes keys, the resizer reads each original once whatever its name.
    let stack = Stack::start_with(&[("REDIRECT_KEY_ENCODING", "twice")], |o| {
        o.location_encoding = LocationEncoding::Twice
    })
    .await;
    let key = "keys/a b+c.jpg";
    stack.put(key, small_jpeg(), "image/jpeg").await;
    let path = format!("/32x/{}", encode_key_path(key));
    assert_eq!(stack.follow(Method::GET, &path).await.statuses(), [307, 307, 200]);
    assert_eq!(stack.server.object_reads(key), 1);

    // Auto: the first key whose readings differ costs a miss on the first reading, which
    // the process then remembers.
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Twice).await;
    for (i, key) in ["keys/one two.jpg", "keys/three four.jpg"].iter().enumerate() {
        stack.put(key, small_jpeg(), "image/jpeg").await;
        let path = format!("/32x/{}", encode_key_path(key));
        assert_eq!(stack.follow(Method::GET, &path).await.statuses(), [307, 307, 200], "{key}");
        let wasted = stack.server.object_reads(&key.replace(' ', "%20"));
        assert_eq!(wasted, usize::from(i == 0), "{key}: reads of the once-decoded candidate");
    }
}

#[tokio::test]
async fn siblings_are_told_apart_once_the_reading_is_set() {
    // `a b.jpg` and `a+b.jpg` both exist. Form-encoded, the first arrives as `a+b.jpg`,
    // which the once reading (tried first under auto) reads as the second; told the
    // reading, the resizer reads each as itself.
    for (setting, both_right) in [("auto", false), ("form", true)] {
        let stack = Stack::start_with(&[("REDIRECT_KEY_ENCODING", setting)], |o| {
            o.location_encoding = LocationEncoding::Form
        })
        .await;
        for name in ["a b.jpg", "a+b.jpg"] {
            stack.put(&format!("keys/{name}"), small_jpeg(), "image/jpeg").await;
        }
        let path = format!("/32x/{}", encode_key_path("keys/a b.jpg"));
        let chain = stack.follow(Method::GET, &path).await;
        let made_own = stack.get("32x/keys/a b.jpg").await.is_some();
        assert_eq!(made_own, both_right, "{setting}: {chain:#?}");
        if !both_right {
            // Documented ambiguity: the sibling was made, and the viewer sent to it.
            assert!(stack.get("32x/keys/a+b.jpg").await.is_some(), "{setting}");
        }
    }
}

#[tokio::test]
async fn private_keys_with_spaces_and_letters_arrive_through_the_signed_route_under_every_reading()
{
    for encoding in LocationEncoding::ALL {
        let stack = Stack::start_with(&[], |o| o.location_encoding = encoding).await;
        let key = "private/galleries/demo/ảnh a+b c.jpg";
        stack.put(key, small_jpeg(), "image/jpeg").await;
        let token = stack.sign_in("alice", &["demo"]).await;
        let (status, headers, _) =
            stack.api("/api/sign-cookies", Some(&token), json!({ "gallery": "demo" })).await;
        assert_eq!(status, 200);
        let cookie = cookie_header(&headers);
        let path = format!("/32x/{}", encode_key_path(key));
        let chain = stack.follow_with(Method::GET, &path, Some(&cookie)).await;
        assert_eq!(chain.statuses(), [307, 307, 200], "{encoding}: {chain:#?}");
        assert!(chain.hops[1].url.contains("/resize/32x/private/"), "{encoding}");
    }
}

#[tokio::test]
async fn the_signer_refuses_upload_names_the_redirect_cannot_carry_and_takes_them_in_failover() {
    for mode in e2e::MODES {
        let stack = Stack::start_in(mode, &[]).await;
        let token = stack.sign_in("alice", &[]).await;
        for name in NAMES {
            let (status, _, body) = stack
                .api(
                    "/api/upload-url",
                    Some(&token),
                    json!({ "content_type": "image/jpeg", "size": 1000, "name": name }),
                )
                .await;
            // Uploads are private: the raw reading also loses a `?` (a private path takes
            // no query).
            let key = format!("uploads/alice/{name}");
            let ok = carried(&key, mode, KeyDecoding::Auto, true).is_ok();
            if ok {
                assert_eq!(status, 200, "{mode} {name}: {body}");
                assert_eq!(body["key"], key);
            } else {
                assert_eq!(
                    (status, body["code"].as_str()),
                    (400, Some("key-not-deliverable")),
                    "{mode} {name}: {body}"
                );
                assert!(body["message"].as_str().unwrap().contains("failover"), "{body}");
            }
        }
    }
}
