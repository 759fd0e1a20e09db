//! The upload routes: `upload-url` (presigned PUT), `upload-form` (presigned POST) and
//! `multipart/{begin,complete,abort}`. Each checks the caller's name, type and size before
//! anything is signed: the key must be a valid original under the caller's own prefix and
//! one the delivery mode can carry to the resizer on a miss, so nothing is uploaded that
//! could never be served. The route match in `handler` calls these after it has the
//! caller's identity.

use std::time::SystemTime;

use keyspace::is_size_segment;
use keyspace::routing::carried;
use lambda_http::{Body, Response};
use serde::Deserialize;
use serde_json::json;

use crate::handler::{epoch, json_response, ApiError, App};
use crate::identity::Identity;
use crate::presign::PostRules;

/// The content types users may upload, and the extension their key gets.
pub const UPLOAD_TYPES: [(&str, &str); 4] =
    [("image/jpeg", "jpg"), ("image/png", "png"), ("image/webp", "webp"), ("image/gif", "gif")];

/// S3's longest key, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;
/// S3's largest part count.
const MAX_PARTS: u64 = 10_000;
/// S3's largest single PUT or POST upload (5 GiB); larger needs multipart.
const MAX_SINGLE_UPLOAD: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadUrl {
    content_type: String,
    size: u64,
    /// The key under the user's prefix; a fresh `{uuid}.{ext}` when absent.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadForm {
    content_type: String,
    max_bytes: Option<u64>,
    /// The key under the user's prefix; a fresh `{uuid}.{ext}` when absent.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MultipartRef {
    key: String,
    upload_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    part_number: i32,
    etag: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MultipartComplete {
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

fn upload_extension(content_type: &str) -> Result<&'static str, ApiError> {
    UPLOAD_TYPES
        .iter()
        .find(|(t, _)| *t == content_type)
        .map(|(_, ext)| *ext)
        .ok_or_else(|| ApiError::UnsupportedContentType(content_type.to_owned()))
}

/// Why `name` cannot follow `uploads/{user}/`: the resizer's rules for an original key
/// (checked here, before anything is signed, rather than at the first resize), plus the
/// path guard's. `key` is the whole key the name makes.
fn check_upload_name(name: &str, key: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.split('/').any(str::is_empty) {
        return Err(format!(
            "name {name:?} has an empty segment (a leading, trailing or double '/')"
        ));
    }
    if name.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("name {name:?} has a '.' or '..' segment"));
    }
    if name.contains('\\') {
        return Err(format!("name {name:?} contains a backslash"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("name {name:?} contains a control character"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key would be {} bytes; S3's limit is {MAX_KEY_BYTES}", key.len()));
    }
    // The resizer refuses an original that starts with a size (no chains); a name is held
    // to the same rule, so it is a valid original key wherever it is put.
    if name.split('/').next().is_some_and(is_size_segment) {
        return Err(format!("name {name:?} starts with a size segment"));
    }
    // The path guard refuses a grant prefix inside a private key (`.../uploads/bob/...`):
    // such an upload could never be served.
    keyspace::check_private_shape(key, None).map_err(|e| format!("name {name:?}: {e}"))
}

/// The key an upload goes to: `uploads/{user}/{name}` when the caller names it, else a
/// fresh `uploads/{user}/{uuid}.{ext}`. Refused when the name is not a valid original, or
/// when the delivery mode could not carry the key to the resizer on a miss (uploads are
/// private, so `?` counts as a query private paths may not have).
fn upload_key(app: &App, id: &Identity, name: Option<&str>, ext: &str) -> Result<String, ApiError> {
    let key = match name {
        None => format!("{}{}.{ext}", id.upload_prefix(), uuid::Uuid::new_v4()),
        Some(name) => {
            let key = format!("{}{name}", id.upload_prefix());
            check_upload_name(name, &key).map_err(ApiError::InvalidField)?;
            key
        }
    };
    let config = &app.config;
    carried(&key, config.delivery_mode, config.redirect_key_encoding, true)
        .map_err(ApiError::KeyNotDeliverable)?;
    Ok(key)
}

fn check_size(app: &App, size: u64) -> Result<(), ApiError> {
    if size == 0 {
        return Err(ApiError::InvalidField("size must be at least 1 byte".into()));
    }
    if size > app.config.max_upload_bytes {
        return Err(ApiError::UploadTooLarge { size, limit: app.config.max_upload_bytes });
    }
    Ok(())
}

/// Whether `key` is one the caller may have been given to upload to (multipart complete
/// and abort name it again).
fn own_upload_key(id: &Identity, key: &str) -> Result<(), ApiError> {
    match key.strip_prefix(&id.upload_prefix()) {
        Some(name) if check_upload_name(name, key).is_ok() => Ok(()),
        _ => Err(ApiError::Forbidden(format!("{key:?} is not one of your uploads"))),
    }
}

pub(crate) async fn upload_url(
    app: &App,
    id: &Identity,
    input: UploadUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    check_size(app, input.size)?;
    if input.size > MAX_SINGLE_UPLOAD {
        return Err(ApiError::UploadTooLarge { size: input.size, limit: MAX_SINGLE_UPLOAD });
    }
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    let ttl = app.config.upload_ttl;
    let cache_control = &app.config.upload_cache_control;
    // Create-only at S3: a taken name is 412 to the PUT (If-None-Match is signed).
    let presigned =
        app.presigner.put(&key, &input.content_type, input.size, cache_control, now, ttl).await?;
    Ok(json_response(json!({
        "key": key,
        "method": presigned.method,
        "url": presigned.url,
        "headers": presigned.headers,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

pub(crate) async fn upload_form(
    app: &App,
    id: &Identity,
    input: UploadForm,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    let max = match input.max_bytes {
        None => app.config.max_upload_bytes,
        Some(m) => {
            check_size(app, m)?;
            m
        }
    }
    .min(MAX_SINGLE_UPLOAD);
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    // S3 has no create-only POST: a form for a taken name would replace it. A fresh uuid is
    // never taken; a chosen name is looked up (a race with another upload of the same name
    // remains, as does posting the same form twice).
    if input.name.is_some() && app.presigner.exists(&key).await? {
        return Err(ApiError::AlreadyExists);
    }
    let prefix = id.upload_prefix();
    let ttl = app.config.upload_ttl;
    let rules = PostRules {
        key: &key,
        key_prefix: &prefix,
        content_type: &input.content_type,
        cache_control: &app.config.upload_cache_control,
        length_range: (1, max),
        expires_in: ttl,
    };
    let post = app.presigner.post(&rules, now).await?;
    Ok(json_response(json!({
        "key": key,
        "url": post.url,
        "fields": post.fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "max_bytes": max,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

pub(crate) async fn multipart_begin(
    app: &App,
    id: &Identity,
    input: UploadUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    check_size(app, input.size)?;
    let part_bytes = app.config.part_bytes;
    let count = input.size.div_ceil(part_bytes);
    if count > MAX_PARTS {
        return Err(ApiError::UploadTooLarge { size: input.size, limit: part_bytes * MAX_PARTS });
    }
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    // Create-only at S3: a taken name is 409 already-exists at completion.
    let upload_id = app
        .presigner
        .begin_multipart(&key, &input.content_type, &app.config.upload_cache_control)
        .await?;
    let ttl = app.config.upload_ttl;
    let mut parts = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let length = if n == count { input.size - part_bytes * (count - 1) } else { part_bytes };
        let part_number = i32::try_from(n).map_err(|e| ApiError::Internal(e.to_string()))?;
        let presigned = app.presigner.part(&key, &upload_id, part_number, length, now, ttl).await?;
        parts.push(json!({
            "part_number": part_number,
            "size": length,
            "url": presigned.url,
            "headers": presigned.headers,
        }));
    }
    Ok(json_response(json!({
        "key": key,
        "upload_id": upload_id,
        "part_size": part_bytes,
        "parts": parts,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

pub(crate) async fn multipart_complete(
    app: &App,
    id: &Identity,
    input: MultipartComplete,
) -> Result<Response<Body>, ApiError> {
    own_upload_key(id, &input.key)?;
    let parts: Vec<(i32, String)> =
        input.parts.into_iter().map(|p| (p.part_number, p.etag)).collect();
    if parts.is_empty() {
        return Err(ApiError::InvalidParts("no parts".into()));
    }
    let etag = app.presigner.complete_multipart(&input.key, &input.upload_id, &parts).await?;
    Ok(json_response(json!({ "key": input.key, "etag": etag })))
}

pub(crate) async fn multipart_abort(
    app: &App,
    id: &Identity,
    input: MultipartRef,
) -> Result<Response<Body>, ApiError> {
    own_upload_key(id, &input.key)?;
    app.presigner.abort_multipart(&input.key, &input.upload_id).await?;
    Ok(json_response(json!({ "key": input.key, "aborted": true })))
}
