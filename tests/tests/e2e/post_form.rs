//! A presigned POST form is good for exactly what its policy allows. S3 refuses, with 403
//! AccessDenied and nothing stored, a form with a field no condition covers (except
//! `x-amz-signature`, `file`, `policy` and `x-ignore-*`): "Invalid according to Policy: Extra
//! input fields: NAME"; and a form whose field breaks a condition, or lacks the field:
//! "Invalid according to Policy: Policy Condition failed: [...]". Without that, a client
//! given a form for a JPEG could add its own Content-Disposition, Cache-Control, metadata or
//! encryption to what the bucket serves.

use devserver::SAMPLE_PHOTO;
use e2e::Stack;
use serde_json::{json, Value};

/// POSTs a form from `/api/upload-form` with `changes` made before the file (S3 ignores
/// fields after it): a field of the form takes the new value or, for `None`, is left out;
/// any other is added. Returns status and body.
async fn post_changed(
    stack: &Stack,
    form: &Value,
    changes: &[(&str, Option<&str>)],
) -> (u16, String) {
    let fields = form["fields"].as_array().unwrap();
    let field_name = |f: &Value| f[0].as_str().unwrap().to_owned();
    let mut multipart = reqwest::multipart::Form::new();
    for field in fields {
        let (name, value) = (field_name(field), field[1].as_str().unwrap().to_owned());
        match changes.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            None => multipart = multipart.text(name, value),
            Some((_, Some(changed))) => multipart = multipart.text(name, changed.to_string()),
            Some((_, None)) => {}
        }
    }
    for (name, value) in changes {
        let in_form = fields.iter().any(|f| field_name(f).eq_ignore_ascii_case(name));
        if let (false, Some(value)) = (in_form, value) {
            multipart = multipart.text(name.to_string(), value.to_string());
        }
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
    let form = stack
        .granted("/api/upload-form", Some(token), json!({ "content_type": "image/jpeg" }))
        .await;
    form
}

/// The value the form was signed with for `name`.
fn signed_value(form: &Value, name: &str) -> String {
    let fields = form["fields"].as_array().unwrap();
    let field = fields.iter().find(|f| f[0] == name).unwrap_or_else(|| panic!("{name}: {form}"));
    field[1].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn presigned_post_refuses_fields_its_policy_does_not_cover() {
    let stack = Stack::start(&[]).await;
    let token = stack.sign_in("alice", &[]).await;
    let form = upload_form(&stack, &token).await;
    let key = form["key"].as_str().unwrap().to_owned();
    let cache_control = signed_value(&form, "Cache-Control");

    let extra = |name: &str| format!("Extra input fields: {}", name.to_lowercase());
    let failed = |field: &str, value: &str| {
        format!("Policy Condition failed: [\"eq\", \"${field}\", \"{value}\"]")
    };
    let refusals = [
        // Fields no condition covers.
        ("x-amz-meta-foo", Some("bar"), extra("x-amz-meta-foo")),
        ("Content-Encoding", Some("gzip"), extra("Content-Encoding")),
        ("x-amz-storage-class", Some("REDUCED_REDUNDANCY"), extra("x-amz-storage-class")),
        ("success_action_status", Some("201"), extra("success_action_status")),
        // s3s lets the encryption fields through (a MinIO convenience); S3 does not.
        ("x-amz-server-side-encryption", Some("AES256"), extra("x-amz-server-side-encryption")),
        (
            "x-amz-server-side-encryption-customer-algorithm",
            Some("AES256"),
            extra("x-amz-server-side-encryption-customer-algorithm"),
        ),
        // Covered fields with another value, or left out.
        (
            "Content-Disposition",
            Some("attachment; filename=\"invoice.pdf\""),
            failed("Content-Disposition", "inline"),
        ),
        ("Content-Disposition", Some("attachment"), failed("Content-Disposition", "inline")),
        ("Cache-Control", Some("no-store"), failed("Cache-Control", &cache_control)),
        ("Cache-Control", None, failed("Cache-Control", &cache_control)),
        ("Content-Type", Some("image/png"), failed("Content-Type", "image/jpeg")),
    ];
    for (name, value, message) in refusals {
        let (status, text) = post_changed(&stack, &form, &[(name, value)]).await;
        assert_eq!(status, 403, "{name}: {text}");
        assert!(text.contains("<Code>AccessDenied</Code>"), "{name}: {text}");
        let message = format!("<Message>Invalid according to Policy: {message}</Message>");
        assert!(text.contains(&message), "{name} {value:?}: {message} in {text}");
        assert!(stack.get(&key).await.is_none(), "{name}: nothing stored");
        assert_eq!(stack.server.object_writes(&key), 0, "{name}");
    }

    // The form as signed still works, and so does one with an `x-ignore-` field.
    let (status, text) = post_changed(&stack, &form, &[]).await;
    assert_eq!(status, 204, "{text}");
    let (stored, content_type, stored_cache_control) = stack.get(&key).await.unwrap();
    assert_eq!((&stored[..], content_type.as_deref()), (SAMPLE_PHOTO, Some("image/jpeg")));
    assert_eq!(stored_cache_control, Some(cache_control));

    let other = upload_form(&stack, &token).await;
    let (status, text) =
        post_changed(&stack, &other, &[("x-ignore-note", Some("from the test"))]).await;
    assert_eq!(status, 204, "{text}");
    assert!(stack.get(other["key"].as_str().unwrap()).await.is_some());
}
