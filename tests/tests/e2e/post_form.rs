//! A presigned POST form is good for exactly the fields its policy covers. S3 refuses a form
//! with any other field (except `x-amz-signature`, `file`, `policy` and `x-ignore-*`):
//! 403 AccessDenied, "Invalid according to Policy: Extra input fields: NAME", and stores
//! nothing. Without that, a client given a form for a JPEG could add its own
//! Content-Disposition, Cache-Control, metadata or encryption to what the bucket serves.

use devserver::SAMPLE_PHOTO;
use e2e::Stack;
use serde_json::{json, Value};

/// POSTs a form from `/api/upload-form` with `extra` fields added before the file (S3
/// ignores fields after it); returns status and body.
async fn post_with(stack: &Stack, form: &Value, extra: &[(&str, &str)]) -> (u16, String) {
    let mut multipart = reqwest::multipart::Form::new();
    for field in form["fields"].as_array().unwrap() {
        let (name, value) = (field[0].as_str().unwrap(), field[1].as_str().unwrap());
        multipart = multipart.text(name.to_owned(), value.to_owned());
    }
    for (name, value) in extra {
        multipart = multipart.text((*name).to_owned(), (*value).to_owned());
    }
    let file = reqwest::multipart::Part::bytes(SAMPLE_PHOTO.to_vec())
        .file_name("photo.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    multipart = multipart.part("file", file);
    let resp =
        stack.http.post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A fresh upload form for alice (a JPEG, under her prefix).
async fn upload_form(stack: &Stack, token: &str) -> Value {
    let (status, _, form) =
        stack.api("/api/upload-form", Some(token), json!({ "content_type": "image/jpeg" })).await;
    assert_eq!(status, 200, "{form}");
    form
}

#[tokio::test]
async fn presigned_post_refuses_fields_its_policy_does_not_cover() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let form = upload_form(&stack, &token).await;
    let key = form["key"].as_str().unwrap().to_owned();

    for (name, value) in [
        ("Content-Disposition", "attachment; filename=\"invoice.pdf\""),
        ("Cache-Control", "public, max-age=31536000"),
        ("x-amz-meta-foo", "bar"),
        ("Content-Encoding", "gzip"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("success_action_status", "201"),
        // s3s lets the encryption fields through (a MinIO convenience); S3 does not.
        ("x-amz-server-side-encryption", "AES256"),
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
    ] {
        let (status, text) = post_with(&stack, &form, &[(name, value)]).await;
        assert_eq!(status, 403, "{name}: {text}");
        assert!(text.contains("<Code>AccessDenied</Code>"), "{name}: {text}");
        let message =
            format!("Invalid according to Policy: Extra input fields: {}", name.to_lowercase());
        assert!(text.contains(&message), "{name}: {text}");
        assert!(stack.get(&key).await.is_none(), "{name}: nothing stored");
        assert_eq!(stack.server.object_writes(&key), 0, "{name}");
    }

    // The form as signed still works, and so does one with an `x-ignore-` field.
    let (status, text) = post_with(&stack, &form, &[]).await;
    assert_eq!(status, 204, "{text}");
    let (stored, content_type, cache_control) = stack.get(&key).await.unwrap();
    assert_eq!((&stored[..], content_type.as_deref()), (SAMPLE_PHOTO, Some("image/jpeg")));
    assert_eq!(cache_control, None);

    let other = upload_form(&stack, &token).await;
    let (status, text) = post_with(&stack, &other, &[("x-ignore-note", "from the test")]).await;
    assert_eq!(status, 204, "{text}");
    assert!(stack.get(other["key"].as_str().unwrap()).await.is_some());
}
