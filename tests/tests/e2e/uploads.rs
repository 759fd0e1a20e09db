//! Browser uploads through each presigned form, against the embedded S3 server with SigV4
//! checks on: the upload lands and can be resized; a wrong Content-Type, an oversize body,
//! an expired or tampered signature are refused and leave nothing behind.

use std::time::{Duration, SystemTime};

use devserver::SAMPLE_PHOTO;
use e2e::{cookie_header, inspect, Stack};
use image::ImageFormat;
use reqwest::Method;
use serde_json::{json, Value};

fn headers_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
        .unwrap_or_default()
}

/// PUTs `body` to a presigned URL with the given headers; returns status and body text.
async fn put(
    stack: &Stack,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = stack.http.put(url).body(body);
    for (name, value) in headers {
        // reqwest sets Content-Length from the body, as a browser does.
        if name != "content-length" {
            req = req.header(name, value);
        }
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn post_form(
    stack: &Stack,
    form: &Value,
    file: Vec<u8>,
    content_type: &str,
    edit: impl Fn(&str, &str) -> String,
) -> (u16, String) {
    post_form_adding(stack, form, &[], file, content_type, edit).await
}

/// Like [`post_form`], with `extra` fields after the form's own (before the file).
async fn post_form_adding(
    stack: &Stack,
    form: &Value,
    extra: &[(&str, &str)],
    file: Vec<u8>,
    content_type: &str,
    edit: impl Fn(&str, &str) -> String,
) -> (u16, String) {
    let mut multipart = reqwest::multipart::Form::new();
    for field in form["fields"].as_array().unwrap() {
        let (name, value) = (field[0].as_str().unwrap(), field[1].as_str().unwrap());
        multipart = multipart.text(name.to_owned(), edit(name, value));
    }
    for (name, value) in extra {
        multipart = multipart.text((*name).to_owned(), (*value).to_owned());
    }
    let part =
        reqwest::multipart::Part::bytes(file).file_name("photo").mime_str(content_type).unwrap();
    multipart = multipart.part("file", part);
    let resp =
        stack.http.post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Requests the 300x300 of the upload `key` with the uploader's cookies (uploads are
/// private: PRIVATE_PATHS covers `uploads/*` and every size of it) and checks it is made.
async fn assert_resizes(stack: &Stack, token: &str, key: &str) {
    let (status, headers, _) =
        stack.api("/api/sign-cookies", Some(token), json!({ "uploads": true })).await;
    assert_eq!(status, 200);
    let path = format!("/300x300/{}", keyspace::encode_key_path(key));
    let chain = stack.follow_with(Method::GET, &path, Some(&cookie_header(&headers))).await;
    assert_eq!(chain.statuses(), [307, 307, 200], "{chain:#?}");
    assert_eq!(inspect(&chain.body).1, 300);
}

#[tokio::test]
async fn presigned_put_uploads_once_with_the_signed_type_and_size() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let size = SAMPLE_PHOTO.len();
    let form = stack
        .granted(
            "/api/upload-url",
            Some(&token),
            json!({ "content_type": "image/jpeg", "size": size }),
        )
        .await;
    let key = form["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("uploads/alice/") && key.ends_with(".jpg"), "{key}");
    assert_eq!(form["method"], "PUT");
    let url = form["url"].as_str().unwrap();
    let headers = headers_of(&form["headers"]);
    assert!(headers.contains(&("content-type".into(), "image/jpeg".into())), "{headers:?}");
    assert!(headers.contains(&("if-none-match".into(), "*".into())), "{headers:?}");

    // Another Content-Type, or a body of another size, breaks the signature.
    let png_type = with_header(&headers, "content-type", "image/png");
    let (status, text) = put(&stack, url, &png_type, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 403, "{text}");
    let (status, _) = put(&stack, url, &headers, SAMPLE_PHOTO[..size - 1].to_vec()).await;
    assert!(status >= 400, "a shorter body must be refused, got {status}");
    // A tampered URL (another key) is refused.
    let tampered = url.replace(&key, &key.replace("alice", "mallory"));
    let (status, _) = put(&stack, &tampered, &headers, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 403);
    assert!(stack.get(&key).await.is_none(), "nothing stored by refused uploads");
    assert!(!stack.keys().await.iter().any(|k| k.starts_with("uploads/mallory")));

    let (status, text) = put(&stack, url, &headers, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 200, "{text}");
    let (stored, content_type, _) = stack.get(&key).await.unwrap();
    assert_eq!((&stored[..], content_type.as_deref()), (SAMPLE_PHOTO, Some("image/jpeg")));

    // The same URL cannot overwrite the original.
    let (status, _) = put(&stack, url, &headers, vec![0u8; size]).await;
    assert_eq!(status, 412);
    assert_eq!(&stack.get(&key).await.unwrap().0[..], SAMPLE_PHOTO);

    assert_resizes(&stack, &token, &key).await;
}

/// The object headers S3 stored with `key`, or None if there is no such object.
async fn stored_headers(stack: &Stack, key: &str) -> Option<StoredHeaders> {
    let out = stack
        .server
        .client()
        .head_object()
        .bucket(&stack.server.bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(StoredHeaders {
        content_type: out.content_type().map(str::to_owned),
        cache_control: out.cache_control().map(str::to_owned),
        content_disposition: out.content_disposition().map(str::to_owned),
        content_encoding: out.content_encoding().map(str::to_owned),
    })
}

/// The standard headers an object is served with, as HeadObject reports them.
#[derive(Debug, PartialEq, Eq)]
struct StoredHeaders {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
}

/// `headers` with `name` set to `value` (replaced if present, added if not).
fn with_header(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        headers.iter().filter(|(k, _)| k != name).cloned().collect();
    out.push((name.to_owned(), value.to_owned()));
    out
}

/// Found in review: S3 refuses unsigned `x-amz-*` headers on a presigned PUT but stores
/// unsigned standard ones, so an uploader could have the original served as an HTML
/// attachment, gzip-encoded, or cached for a year. Signed, any other value breaks the
/// signature.
#[tokio::test]
async fn presigned_put_refuses_object_headers_it_did_not_sign() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let form = stack
        .granted(
            "/api/upload-url",
            Some(&token),
            json!({ "content_type": "image/jpeg", "size": SAMPLE_PHOTO.len() }),
        )
        .await;
    let key = form["key"].as_str().unwrap().to_owned();
    let url = form["url"].as_str().unwrap();
    let headers = headers_of(&form["headers"]);
    for (name, value) in [
        ("content-disposition", "attachment; filename=x.html"),
        ("cache-control", "public, max-age=31536000, immutable"),
        ("content-encoding", "gzip"),
    ] {
        let (status, text) =
            put(&stack, url, &with_header(&headers, name, value), SAMPLE_PHOTO.to_vec()).await;
        assert_eq!(status, 403, "{name}: {value} was stored: {text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{name}: {text}");
        assert!(stack.get(&key).await.is_none(), "{name}: nothing stored");
    }

    for (name, value) in [
        ("cache-control", "max-age=86400"),
        ("content-disposition", "inline"),
        ("content-encoding", "identity"),
    ] {
        assert!(headers.contains(&(name.into(), value.into())), "{name}: {headers:?}");
    }
    let (status, text) = put(&stack, url, &headers, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        stored_headers(&stack, &key).await,
        Some(StoredHeaders {
            content_type: Some("image/jpeg".into()),
            cache_control: Some("max-age=86400".into()),
            content_disposition: Some("inline".into()),
            content_encoding: Some("identity".into()),
        })
    );
    assert_eq!(&stack.get(&key).await.unwrap().0[..], SAMPLE_PHOTO);
}

#[tokio::test]
async fn expired_presigned_put_and_post_are_refused() {
    let stack = Stack::start(&[]).await;
    let creds = aws_credential_types::Credentials::new(
        devserver::DEFAULT_ACCESS_KEY,
        devserver::DEFAULT_SECRET_KEY,
        None,
        None,
        "test",
    );
    let presigner = signer::presign::Presigner::new(
        stack.server.client().clone(),
        stack.server.bucket.clone(),
        aws_credential_types::provider::SharedCredentialsProvider::new(creds),
    );
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let key = "uploads/alice/expired.jpg";
    let req = presigner
        .put(
            key,
            "image/jpeg",
            SAMPLE_PHOTO.len() as u64,
            "max-age=86400",
            an_hour_ago,
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let headers: Vec<(String, String)> = req.headers.into_iter().collect();
    let (status, text) = put(&stack, &req.url, &headers, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 403, "{text}");
    assert!(stack.get(key).await.is_none());
    // A POST form signed an hour ago with a 15-minute policy is refused too.
    let rules = signer::presign::PostRules {
        key,
        key_prefix: "uploads/alice/",
        content_type: "image/jpeg",
        cache_control: "max-age=86400",
        length_range: (1, 10_000_000),
        expires_in: Duration::from_secs(900),
    };
    let old_form = presigner.post(&rules, an_hour_ago).await.unwrap();
    let form = json!({ "url": old_form.url, "fields": old_form.fields });
    let (status, text) =
        post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", |_, v| v.to_owned()).await;
    assert!(matches!(status, 400 | 403), "{status} {text}");
    assert!(stack.get(key).await.is_none());
    // The same request signed now goes through: the refusal was the expiry.
    let req = presigner
        .put(
            key,
            "image/jpeg",
            SAMPLE_PHOTO.len() as u64,
            "max-age=86400",
            SystemTime::now(),
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let headers: Vec<(String, String)> = req.headers.into_iter().collect();
    assert_eq!(put(&stack, &req.url, &headers, SAMPLE_PHOTO.to_vec()).await.0, 200);
}

#[tokio::test]
async fn presigned_post_enforces_size_type_and_key_before_storing() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let limit = SAMPLE_PHOTO.len() - 1;
    let small = stack
        .granted(
            "/api/upload-form",
            Some(&token),
            json!({ "content_type": "image/jpeg", "max_bytes": limit }),
        )
        .await;
    let small_key = small["key"].as_str().unwrap().to_owned();
    let same = |_: &str, v: &str| v.to_owned();

    let (status, text) = post_form(&stack, &small, SAMPLE_PHOTO.to_vec(), "image/jpeg", same).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("EntityTooLarge"), "{text}");

    let form = stack
        .granted("/api/upload-form", Some(&token), json!({ "content_type": "image/jpeg" }))
        .await;
    let key = form["key"].as_str().unwrap().to_owned();
    // Declaring another type, or another key (even inside the user's prefix), breaks the policy.
    let (status, text) = post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/png", |n, v| {
        if n == "Content-Type" {
            "image/png".into()
        } else {
            v.into()
        }
    })
    .await;
    // S3 answers 403 AccessDenied, s3s 400 InvalidPolicyDocument: both refuse before storing.
    assert!(matches!(status, 400 | 403) && text.contains("olicy"), "{status} {text}");
    for other_key in ["uploads/alice/chosen.jpg", "uploads/bob/x.jpg"] {
        let (status, text) =
            post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", |n, v| {
                if n == "key" {
                    other_key.into()
                } else {
                    v.into()
                }
            })
            .await;
        assert!(
            matches!(status, 400 | 403) && text.contains("olicy"),
            "{other_key}: {status} {text}"
        );
    }
    let (status, text) = post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", |n, v| {
        if n == "policy" {
            format!("{v}x")
        } else {
            v.into()
        }
    })
    .await;
    assert!(status >= 400, "tampered policy: {status} {text}");
    // The stored headers are fixed by the policy: changed or added, they are refused.
    for (field, value) in
        [("Cache-Control", "public, max-age=31536000"), ("Content-Disposition", "attachment")]
    {
        let (status, text) =
            post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", |n, v| {
                if n == field {
                    value.into()
                } else {
                    v.into()
                }
            })
            .await;
        assert!(matches!(status, 400 | 403) && text.contains("olicy"), "{field}: {status} {text}");
    }
    let (status, text) = post_form_adding(
        &stack,
        &form,
        &[("Content-Encoding", "gzip")],
        SAMPLE_PHOTO.to_vec(),
        "image/jpeg",
        same,
    )
    .await;
    assert!(matches!(status, 400 | 403), "an extra field: {status} {text}");
    let keys = stack.keys().await;
    assert!(!keys.iter().any(|k| k.starts_with("uploads/")), "nothing partial: {keys:?}");
    assert!(stack.get(&small_key).await.is_none());

    let (status, text) = post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", same).await;
    assert!((200..300).contains(&status), "{status} {text}");
    assert_eq!(&stack.get(&key).await.unwrap().0[..], SAMPLE_PHOTO);
    assert_eq!(
        stored_headers(&stack, &key).await,
        Some(StoredHeaders {
            content_type: Some("image/jpeg".into()),
            cache_control: Some("max-age=86400".into()),
            content_disposition: Some("inline".into()),
            content_encoding: None,
        })
    );
    assert_resizes(&stack, &token, &key).await;
}

#[tokio::test]
async fn multipart_upload_with_presigned_parts_completes_and_abort_leaves_nothing() {
    let part_bytes = 5 * 1024 * 1024;
    let stack = Stack::start_with(&[], |o| {
        o.signer_env.insert("MULTIPART_PART_BYTES".into(), part_bytes.to_string());
    })
    .await;
    let token = stack.sign_in("alice", &[]).await;
    let png = crate::noise_png();
    assert!(png.len() > part_bytes, "{}", png.len());
    let begun = stack
        .granted(
            "/api/multipart/begin",
            Some(&token),
            json!({ "content_type": "image/png", "size": png.len() }),
        )
        .await;
    let key = begun["key"].as_str().unwrap().to_owned();
    let parts = begun["parts"].as_array().unwrap();
    assert_eq!(parts.len(), png.len().div_ceil(part_bytes));
    let mut completed = Vec::new();
    let mut offset = 0;
    for part in parts {
        let size = part["size"].as_u64().unwrap() as usize;
        let chunk = png[offset..offset + size].to_vec();
        offset += size;
        let resp = stack.http.put(part["url"].as_str().unwrap()).body(chunk).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        completed.push(json!({ "part_number": part["part_number"], "etag": etag }));
    }
    assert!(stack.get(&key).await.is_none(), "nothing visible before completion");

    // Only the owner may complete it.
    let mallory = stack.sign_in("mallory", &[]).await;
    let body = json!({ "key": key, "upload_id": begun["upload_id"], "parts": completed });
    let (status, _, refused) =
        stack.api("/api/multipart/complete", Some(&mallory), body.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    stack.granted("/api/multipart/complete", Some(&token), body).await;
    assert_eq!(&stack.get(&key).await.unwrap().0[..], &png[..]);
    assert_eq!(
        stored_headers(&stack, &key).await,
        Some(StoredHeaders {
            content_type: Some("image/png".into()),
            cache_control: Some("max-age=86400".into()),
            content_disposition: Some("inline".into()),
            content_encoding: None,
        })
    );
    assert_resizes(&stack, &token, &key).await;
    let (format, _, _) = inspect(&stack.get(&format!("300x300/{key}")).await.unwrap().0);
    assert_eq!(format, ImageFormat::Png);

    // Begin, send one part, abort: the upload is gone and no object appears.
    let (_, _, second) = stack
        .api(
            "/api/multipart/begin",
            Some(&token),
            json!({ "content_type": "image/png", "size": png.len() }),
        )
        .await;
    let second_key = second["key"].as_str().unwrap().to_owned();
    let first = &second["parts"][0];
    let resp = stack
        .http
        .put(first["url"].as_str().unwrap())
        .body(png[..part_bytes].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let _ = stack
        .granted(
            "/api/multipart/abort",
            Some(&token),
            json!({ "key": second_key, "upload_id": second["upload_id"] }),
        )
        .await;
    let body = json!({ "key": second_key, "upload_id": second["upload_id"], "parts": [{ "part_number": 1, "etag": etag }] });
    let (status, _, gone) = stack.api("/api/multipart/complete", Some(&token), body).await;
    assert_eq!((status, gone["code"].as_str()), (404, Some("upload-not-found")), "{gone}");
    assert!(stack.get(&second_key).await.is_none());

    // A part URL signed for one length refuses another.
    let (_, _, third) = stack
        .api(
            "/api/multipart/begin",
            Some(&token),
            json!({ "content_type": "image/png", "size": png.len() }),
        )
        .await;
    let resp = stack
        .http
        .put(third["parts"][0]["url"].as_str().unwrap())
        .body(png[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

/// Sends a whole file as a one-part multipart upload; returns complete's status and answer.
async fn multipart_in_one_part(
    stack: &Stack,
    token: &str,
    name: &str,
    file: &[u8],
) -> (u16, Value) {
    let begun = stack
        .granted(
            "/api/multipart/begin",
            Some(token),
            json!({ "content_type": "image/jpeg", "size": file.len(), "name": name }),
        )
        .await;
    let part = &begun["parts"][0];
    let resp =
        stack.http.put(part["url"].as_str().unwrap()).body(file.to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let body = json!({
        "key": begun["key"],
        "upload_id": begun["upload_id"],
        "parts": [{ "part_number": 1, "etag": etag }],
    });
    let (status, _, done) = stack.api("/api/multipart/complete", Some(token), body).await;
    (status, done)
}

#[tokio::test]
async fn uploads_under_a_chosen_name_land_there_resize_and_never_replace() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let name = "trips/Hà Nội + 서울/cat+dog 1.jpg";
    let key = format!("uploads/alice/{name}");
    let (status, _, form) = stack
        .api(
            "/api/upload-url",
            Some(&token),
            json!({ "content_type": "image/jpeg", "size": SAMPLE_PHOTO.len(), "name": name }),
        )
        .await;
    assert_eq!((status, form["key"].as_str()), (200, Some(key.as_str())), "{form}");
    let headers = headers_of(&form["headers"]);
    let (status, text) =
        put(&stack, form["url"].as_str().unwrap(), &headers, SAMPLE_PHOTO.to_vec()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(&stack.get(&key).await.unwrap().0[..], SAMPLE_PHOTO);
    assert_resizes(&stack, &token, &key).await;

    // The name is taken: a new PUT URL is signed, and S3 refuses it (If-None-Match).
    let other = crate::png_with_alpha(64, 64);
    let again = stack
        .granted(
            "/api/upload-url",
            Some(&token),
            json!({ "content_type": "image/png", "size": other.len(), "name": name }),
        )
        .await;
    let (status, _) =
        put(&stack, again["url"].as_str().unwrap(), &headers_of(&again["headers"]), other).await;
    assert_eq!(status, 412);
    // A POST could not be refused by S3, so the signer refuses the form.
    let (status, _, refused) = stack
        .api(
            "/api/upload-form",
            Some(&token),
            json!({ "content_type": "image/jpeg", "name": name }),
        )
        .await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("already-exists")), "{refused}");
    // Multipart completion is create-only.
    let (status, done) = multipart_in_one_part(&stack, &token, name, SAMPLE_PHOTO).await;
    assert_eq!((status, done["code"].as_str()), (409, Some("already-exists")), "{done}");
    assert_eq!(&stack.get(&key).await.unwrap().0[..], SAMPLE_PHOTO, "never replaced");

    // Fresh names by POST and by multipart land where they say.
    let form = stack
        .granted(
            "/api/upload-form",
            Some(&token),
            json!({ "content_type": "image/jpeg", "name": "form/ảnh 1.jpg" }),
        )
        .await;
    let (status, text) =
        post_form(&stack, &form, SAMPLE_PHOTO.to_vec(), "image/jpeg", |_, v| v.to_owned()).await;
    assert!((200..300).contains(&status), "{status} {text}");
    assert!(stack.get("uploads/alice/form/ảnh 1.jpg").await.is_some());
    let (status, done) =
        multipart_in_one_part(&stack, &token, "parts/고양이.jpg", SAMPLE_PHOTO).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        stored_headers(&stack, "uploads/alice/parts/고양이.jpg")
            .await
            .and_then(|h| h.cache_control),
        Some("max-age=86400".into())
    );

    // A name the redirect cannot carry is refused before anything is signed.
    let (status, _, refused) = stack
        .api(
            "/api/upload-url",
            Some(&token),
            json!({ "content_type": "image/jpeg", "size": 10, "name": "a#b.jpg" }),
        )
        .await;
    assert_eq!((status, refused["code"].as_str()), (400, Some("key-not-deliverable")));
}

#[tokio::test]
async fn download_url_opens_the_users_own_upload_only() {
    let stack = Stack::start(&[]).await;
    stack.put("uploads/alice/photo.jpg", SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
    let alice = stack.sign_in("alice", &[]).await;
    let value = stack
        .granted("/api/download-url", Some(&alice), json!({ "key": "uploads/alice/photo.jpg" }))
        .await;
    let resp = stack.http.get(value["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], SAMPLE_PHOTO);
    let bob = stack.sign_in("bob", &[]).await;
    let (status, _, value) = stack
        .api("/api/download-url", Some(&bob), json!({ "key": "uploads/alice/photo.jpg" }))
        .await;
    assert_eq!((status, value["code"].as_str()), (403, Some("forbidden")));
}
