//! Uploads through the signer, as a browser makes them (docs/SIGNER.md): a presigned PUT,
//! a presigned POST form and a multipart upload with presigned parts. Each must be stored
//! with the headers the signer fixed and then open at a sized path with the uploader's
//! cookies (a miss: the resizer makes it). The devserver's store checks signatures but
//! evaluates no IAM; against AWS this settles the signer role's grants in template.yaml:
//! presigned requests run with the role's permissions, and the multipart steps are the
//! role's own S3 calls.
//!
//! What was seen is gathered into an [`Observation`] and judged apart ([`judge`]), so a
//! recorded observation can be judged offline.

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use super::signer_api::{cookie_header, cookies_of, post_json};
use super::{derivative, names, path, CheckError, Findings, Smoke};
use crate::bucket::Stored;
use crate::fixture::{self, PHOTO_SIZE};
use crate::options::Size;
use crate::report::Outcome;
use crate::web::Reply;

/// The three ways the signer lets a browser upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /api/upload-url`, then a PUT with the headers it returns.
    Put,
    /// `POST /api/upload-form`, then a `multipart/form-data` POST of its fields and the file.
    Form,
    /// `POST /api/multipart/begin`, the parts' PUTs, `POST /api/multipart/complete`.
    Multipart,
}

impl Kind {
    /// How the row names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Form => "POST form",
            Self::Multipart => "multipart",
        }
    }
}

/// A step of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The signer's answer to `/api/upload-url`, `/api/upload-form` or `/api/multipart/begin`.
    Sign,
    /// S3's answer to a presigned request (the PUT, the form's POST, a part's PUT).
    Send,
    /// The signer's `/api/multipart/complete`.
    Complete,
    /// The signer's `/api/sign-cookies {"uploads": true}`.
    Cookies,
}

/// A step that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which step.
    pub step: Step,
    /// The request, as the row names it (`POST /api/upload-url`, `the PUT to S3`).
    pub request: String,
    /// Its status, if there was an answer.
    pub status: Option<u16>,
    /// The answer's summary (`403 AccessDenied`), or why there was none.
    pub answer: String,
}

impl Failure {
    fn answered(step: Step, request: impl Into<String>, reply: &Reply) -> Self {
        Self { step, request: request.into(), status: Some(reply.status), answer: reply.summary() }
    }

    fn unanswered(step: Step, request: impl Into<String>, error: impl ToString) -> Self {
        Self { step, request: request.into(), status: None, answer: error.to_string() }
    }
}

/// An upload's sized path, asked with the uploads cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedPath {
    /// The statuses of the chain, first to last.
    pub statuses: Vec<u16>,
    /// The last answer's summary.
    pub last: String,
    /// The last answer's Content-Type and dimensions, when it is an image.
    pub image: Option<(String, u32, u32)>,
    /// Whether the derivative is in the bucket afterwards.
    pub stored: bool,
}

/// What one upload came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Which kind.
    pub kind: Kind,
    /// The key the signer chose, once it answered.
    pub key: Option<String>,
    /// The step that failed; nothing after it was tried.
    pub failure: Option<Failure>,
    /// The Cache-Control the signer signed in (the PUT's headers, the form's fields; a
    /// multipart upload's is set by the signer's own CreateMultipartUpload and not shown).
    pub signed_cache_control: Option<String>,
    /// HeadObject once uploaded (`None`: not stored).
    pub stored: Option<Stored>,
    /// The sized path, once stored and with the cookies.
    pub sized: Option<SizedPath>,
}

impl Attempt {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            key: None,
            failure: None,
            signed_cache_control: None,
            stored: None,
            sized: None,
        }
    }

    fn failed(mut self, failure: Failure) -> Self {
        self.failure = Some(failure);
        self
    }
}

/// Everything the row saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The three uploads.
    pub attempts: Vec<Attempt>,
    /// Why the uploads cookies could not be had, if they could not.
    pub cookies: Option<Failure>,
}

/// What the row expects of a sound stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The size asked for.
    pub size: Size,
    /// The statuses of a successful miss in the stack's mode.
    pub statuses: Vec<u16>,
    /// The uploaded file's length.
    pub length: u64,
}

/// What a failed step suggests, for the row's text.
fn hint(failure: &Failure) -> &'static str {
    match (failure.step, failure.status) {
        (_, None) => "",
        (Step::Sign | Step::Cookies, Some(401)) => {
            " (the API's JWT authorizer refused --token: expired? another issuer or audience?)"
        }
        (Step::Send, Some(403)) => {
            " (S3 refused what the signer presigned: presigned requests run with the signer \
             role's permissions, which need s3:PutObject on uploads/*)"
        }
        (Step::Sign | Step::Complete, Some(500..)) => {
            " (the signer's own S3 call failed: its role needs s3:PutObject on uploads/*, \
             which covers CreateMultipartUpload and CompleteMultipartUpload)"
        }
        _ => "",
    }
}

/// What a sized path's failure suggests.
fn sized_hint(sized: &SizedPath) -> &'static str {
    if sized.last.starts_with("403") {
        " (the uploads cookies did not open the sized path)"
    } else if sized.last.contains("original-not-found") {
        " (the resizer could not read the upload: its role's s3:GetObject)"
    } else {
        ""
    }
}

/// The row's verdict on what was seen: PASS when every upload was stored as image/jpeg
/// with the signed Cache-Control and the file's length, and its sized path was made and
/// served; FAIL naming each step that was not, with what it suggests.
pub fn judge(observation: &Observation, expected: &Expected) -> (Outcome, String) {
    let mut findings = Findings::default();
    let signed = observation.attempts.iter().find_map(|a| a.signed_cache_control.as_deref());
    let size = expected.size;
    for attempt in &observation.attempts {
        let label = attempt.kind.label();
        if let Some(failure) = &attempt.failure {
            findings.expect(
                false,
                format!(
                    "{label}: {} answered {}{}",
                    failure.request,
                    failure.answer,
                    hint(failure)
                ),
            );
            continue;
        }
        let key = attempt.key.as_deref().unwrap_or("(no key)");
        findings.expect(
            key.starts_with("uploads/"),
            format!("{label}: a key under uploads/, got {key}"),
        );
        let mut seen = format!("{label} {key}:");
        match &attempt.stored {
            None => {
                seen.push_str(" not stored");
                findings
                    .expect(false, format!("{label}: {key} not in the bucket after the upload"));
            }
            Some(stored) => {
                let content_type = stored.content_type.as_deref().unwrap_or("no Content-Type");
                let cache_control = stored.cache_control.as_deref().unwrap_or("none");
                seen.push_str(&format!(" stored {content_type}, Cache-Control {cache_control}"));
                findings.expect(
                    stored.content_type.as_deref() == Some("image/jpeg"),
                    format!("{label}: stored as {content_type}, not image/jpeg"),
                );
                match attempt.signed_cache_control.as_deref().or(signed) {
                    Some(want) => findings.expect(
                        stored.cache_control.as_deref() == Some(want),
                        format!(
                            "{label}: stored with Cache-Control {cache_control}, signed {want}"
                        ),
                    ),
                    None => findings.expect(
                        stored.cache_control.is_some(),
                        format!("{label}: stored without a Cache-Control"),
                    ),
                }
                findings.expect(
                    stored.content_length == Some(expected.length),
                    format!(
                        "{label}: stored {:?} bytes, sent {}",
                        stored.content_length, expected.length
                    ),
                );
            }
        }
        match &attempt.sized {
            // Not asked: not stored (a problem above) or no cookies (one problem below).
            None => {}
            Some(sized) => {
                let chain = sized.statuses.iter().map(u16::to_string).collect::<Vec<_>>();
                seen.push_str(&format!(
                    "; {size}: {}, {}",
                    chain.join(" -> "),
                    if sized.stored { "made" } else { "not made" }
                ));
                let want = expected.statuses.iter().map(u16::to_string).collect::<Vec<_>>();
                findings.expect(
                    sized.statuses == expected.statuses,
                    format!(
                        "{label}: {size} with the uploads cookies: expected {}, got {}{}",
                        want.join(" -> "),
                        sized.last,
                        sized_hint(sized)
                    ),
                );
                if let Some((content_type, w, h)) = &sized.image {
                    findings.expect(
                        content_type == "image/jpeg" && size.fits(PHOTO_SIZE, (*w, *h)),
                        format!("{label}: a JPEG of size {size}, got {content_type} {w}x{h}"),
                    );
                } else if sized.statuses == expected.statuses {
                    findings.expect(false, format!("{label}: {size} answered no image"));
                }
                findings.expect(sized.stored, format!("{label}: the {size} derivative stored"));
            }
        }
        findings.saw(seen);
    }
    if let Some(failure) = &observation.cookies {
        findings.expect(
            false,
            format!("{} answered {}{}", failure.request, failure.answer, hint(failure)),
        );
    }
    findings.verdict()
}

/// With `--token`: the three uploads, their sized paths with the uploads cookies, judged.
/// The keys the signer returned are kept for the cleanup (they live under
/// `uploads/{user}/`, outside the run's prefixes).
pub async fn through_signer(smoke: &mut Smoke<'_>) {
    let Some(token) = smoke.options.token.clone() else {
        let seen =
            "give --token (a JWT the API accepts): uploads under the token's uploads/{user}/";
        smoke.report.push(names::UPLOADS, Outcome::Skip, seen);
        return;
    };
    let mut keys = Vec::new();
    let observation = observe(smoke, &token, &mut keys).await;
    smoke.uploads.extend(keys);
    let expected = Expected {
        size: smoke.options.size,
        statuses: smoke.miss_statuses(),
        length: smoke.photo.len() as u64,
    };
    let verdict = observation.map(|o| judge(&o, &expected));
    smoke.record(names::UPLOADS, verdict);
}

/// Makes the three uploads and asks for their sized paths; every key the signer returns is
/// pushed to `keys` as soon as it is known.
async fn observe(
    smoke: &Smoke<'_>,
    token: &str,
    keys: &mut Vec<String>,
) -> Result<Observation, CheckError> {
    let mut attempts = Vec::new();
    for kind in [Kind::Put, Kind::Form, Kind::Multipart] {
        let mut attempt = match kind {
            Kind::Put => by_put(smoke, token, keys).await,
            Kind::Form => by_form(smoke, token, keys).await,
            Kind::Multipart => by_multipart(smoke, token, keys).await,
        };
        if let (None, Some(key)) = (&attempt.failure, &attempt.key) {
            attempt.stored = smoke.bucket.head(key).await?;
        }
        attempts.push(attempt);
    }
    let url = smoke.url("/api/sign-cookies");
    let request = "POST /api/sign-cookies {\"uploads\": true}";
    let cookie = match post_json(&smoke.web, &url, token, &json!({ "uploads": true })).await {
        Ok((reply, value)) if reply.status == 200 && !cookies_of(&value).is_empty() => {
            Ok(cookie_header(&cookies_of(&value)))
        }
        Ok((reply, _)) => Err(Failure::answered(Step::Cookies, request, &reply)),
        Err(e) => Err(Failure::unanswered(Step::Cookies, request, e)),
    };
    let cookie = match cookie {
        Ok(cookie) => cookie,
        Err(failure) => return Ok(Observation { attempts, cookies: Some(failure) }),
    };
    let size = smoke.options.size;
    for attempt in &mut attempts {
        let (Some(key), Some(_)) = (&attempt.key, &attempt.stored) else { continue };
        let sized = derivative(size, key);
        let chain = smoke.web.follow(&smoke.url(&path(&sized)), Some(&cookie)).await?;
        let last = chain.last();
        let image = (last.status == 200)
            .then(|| fixture::inspect(&last.body))
            .flatten()
            .map(|(_, w, h)| (last.header("content-type").unwrap_or_default(), w, h));
        attempt.sized = Some(SizedPath {
            statuses: chain.statuses(),
            last: last.summary(),
            image,
            stored: smoke.bucket.exists(&sized).await?,
        });
    }
    Ok(Observation { attempts, cookies: None })
}

/// `POST {SITE}{route}` with the token: the JSON of a 200, else the step's failure.
async fn signer(
    smoke: &Smoke<'_>,
    token: &str,
    step: Step,
    route: &str,
    body: &Value,
) -> Result<Value, Failure> {
    let request = format!("POST {route}");
    match post_json(&smoke.web, &smoke.url(route), token, body).await {
        Ok((reply, value)) if reply.status == 200 => Ok(value),
        Ok((reply, _)) => Err(Failure::answered(step, request, &reply)),
        Err(e) => Err(Failure::unanswered(step, request, e)),
    }
}

/// Sends a presigned request to S3: its answer when 2xx, else the failure.
async fn send(
    smoke: &Smoke<'_>,
    request: &str,
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Reply, Failure> {
    let headers: Vec<(&str, &str)> =
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    match smoke.web.send(method, url, &headers, body).await {
        Ok(reply) if (200..300).contains(&reply.status) => Ok(reply),
        Ok(reply) => Err(Failure::answered(Step::Send, request, &reply)),
        Err(e) => Err(Failure::unanswered(Step::Send, request, e)),
    }
}

/// The `(name, value)` pairs of a JSON object of strings.
fn string_map(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|all| {
            all.iter().filter_map(|(n, v)| v.as_str().map(|v| (n.clone(), v.to_owned()))).collect()
        })
        .unwrap_or_default()
}

/// The signer's key from an answer, pushed to `keys`.
fn take_key(value: &Value, keys: &mut Vec<String>) -> Option<String> {
    let key = value["key"].as_str().filter(|k| !k.is_empty())?.to_owned();
    keys.push(key.clone());
    Some(key)
}

/// A failure for an answer that lacks what the docs promise.
fn malformed(step: Step, request: &str, value: &Value) -> Failure {
    let text = value.to_string();
    let text: String = text.chars().take(200).collect();
    Failure::unanswered(step, request, format!("200 without the fields expected: {text}"))
}

async fn by_put(smoke: &Smoke<'_>, token: &str, keys: &mut Vec<String>) -> Attempt {
    let attempt = Attempt::new(Kind::Put);
    let body = json!({ "content_type": "image/jpeg", "size": smoke.photo.len() });
    let route = "/api/upload-url";
    let value = match signer(smoke, token, Step::Sign, route, &body).await {
        Ok(value) => value,
        Err(failure) => return attempt.failed(failure),
    };
    let key = take_key(&value, keys);
    let (Some(key), Some(url)) = (key, value["url"].as_str()) else {
        return attempt.failed(malformed(Step::Sign, route, &value));
    };
    let headers = string_map(&value["headers"]);
    let attempt = Attempt {
        key: Some(key),
        signed_cache_control: headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
            .map(|(_, v)| v.clone()),
        ..attempt
    };
    let photo = Bytes::from(smoke.photo.clone());
    match send(smoke, "the PUT to S3", Method::PUT, url, &headers, photo).await {
        Ok(_) => attempt,
        Err(failure) => attempt.failed(failure),
    }
}

async fn by_form(smoke: &Smoke<'_>, token: &str, keys: &mut Vec<String>) -> Attempt {
    let attempt = Attempt::new(Kind::Form);
    let route = "/api/upload-form";
    let value =
        match signer(smoke, token, Step::Sign, route, &json!({ "content_type": "image/jpeg" }))
            .await
        {
            Ok(value) => value,
            Err(failure) => return attempt.failed(failure),
        };
    let key = take_key(&value, keys);
    let fields: Option<Vec<(String, String)>> = value["fields"].as_array().map(|all| {
        all.iter()
            .filter_map(|f| Some((f[0].as_str()?.to_owned(), f[1].as_str()?.to_owned())))
            .collect()
    });
    let (Some(key), Some(url), Some(fields)) = (key, value["url"].as_str(), fields) else {
        return attempt.failed(malformed(Step::Sign, route, &value));
    };
    let attempt = Attempt {
        key: Some(key),
        signed_cache_control: fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
            .map(|(_, v)| v.clone()),
        ..attempt
    };
    let boundary = format!("smoke-{}", uuid::Uuid::new_v4().simple());
    let body = form_body(&fields, &smoke.photo, "image/jpeg", &boundary);
    let headers =
        [("content-type".to_owned(), format!("multipart/form-data; boundary={boundary}"))];
    match send(smoke, "the form's POST to S3", Method::POST, url, &headers, Bytes::from(body)).await
    {
        Ok(_) => attempt,
        Err(failure) => attempt.failed(failure),
    }
}

async fn by_multipart(smoke: &Smoke<'_>, token: &str, keys: &mut Vec<String>) -> Attempt {
    let attempt = Attempt::new(Kind::Multipart);
    let body = json!({ "content_type": "image/jpeg", "size": smoke.photo.len() });
    let route = "/api/multipart/begin";
    let value = match signer(smoke, token, Step::Sign, route, &body).await {
        Ok(value) => value,
        Err(failure) => return attempt.failed(failure),
    };
    let key = take_key(&value, keys);
    let (Some(key), Some(upload_id), Some(parts)) =
        (key, value["upload_id"].as_str(), value["parts"].as_array())
    else {
        return attempt.failed(malformed(Step::Sign, route, &value));
    };
    let attempt = Attempt { key: Some(key.clone()), ..attempt };
    let mut completed = Vec::new();
    let mut offset = 0usize;
    let mut failure = None;
    for part in parts {
        let number = part["part_number"].as_u64().unwrap_or(0);
        let request = format!("the PUT of part {number} to S3");
        let size = part["size"].as_u64().and_then(|s| usize::try_from(s).ok()).unwrap_or(0);
        let (Some(url), Some(chunk)) =
            (part["url"].as_str(), smoke.photo.get(offset..offset + size))
        else {
            failure = Some(malformed(Step::Sign, route, &value));
            break;
        };
        offset += size;
        let headers = string_map(&part["headers"]);
        let chunk = Bytes::copy_from_slice(chunk);
        match send(smoke, &request, Method::PUT, url, &headers, chunk).await {
            Ok(reply) => {
                let etag = reply.header("etag").unwrap_or_default();
                completed.push(json!({ "part_number": number, "etag": etag }));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() && offset != smoke.photo.len() {
        failure = Some(malformed(Step::Sign, route, &value));
    }
    if let Some(failure) = failure {
        // Leave no incomplete upload behind (the bucket's lifecycle rule would, later).
        let abort = json!({ "key": key, "upload_id": upload_id });
        let _ = signer(smoke, token, Step::Complete, "/api/multipart/abort", &abort).await;
        return attempt.failed(failure);
    }
    let complete = json!({ "key": key, "upload_id": upload_id, "parts": completed });
    match signer(smoke, token, Step::Complete, "/api/multipart/complete", &complete).await {
        Ok(_) => attempt,
        Err(failure) => attempt.failed(failure),
    }
}

/// A `multipart/form-data` body: `fields` in order, then the file as `file`, as a browser
/// posts a form (S3 reads the fields before the file and ignores any after it).
pub fn form_body(
    fields: &[(String, String)],
    file: &[u8],
    file_type: &str,
    boundary: &str,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(file.len() + 2048);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"photo.jpg\"\r\nContent-Type: {file_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            size: Size { width: Some(320), height: None },
            statuses: vec![307, 307, 200],
            length: 1000,
        }
    }

    fn sound(kind: Kind, key: &str) -> Attempt {
        Attempt {
            kind,
            key: Some(key.to_owned()),
            failure: None,
            signed_cache_control: (kind != Kind::Multipart).then(|| "max-age=86400".to_owned()),
            stored: Some(Stored {
                content_type: Some("image/jpeg".into()),
                cache_control: Some("max-age=86400".into()),
                content_length: Some(1000),
            }),
            sized: Some(SizedPath {
                statuses: vec![307, 307, 200],
                last: "200".into(),
                image: Some(("image/jpeg".into(), 320, 240)),
                stored: true,
            }),
        }
    }

    fn sound_observation() -> Observation {
        Observation {
            attempts: vec![
                sound(Kind::Put, "uploads/u/1.jpg"),
                sound(Kind::Form, "uploads/u/2.jpg"),
                sound(Kind::Multipart, "uploads/u/3.jpg"),
            ],
            cookies: None,
        }
    }

    #[test]
    fn three_stored_and_made_uploads_pass() {
        let (outcome, seen) = judge(&sound_observation(), &expected());
        assert_eq!(outcome, Outcome::Pass, "{seen}");
        assert!(
            seen.starts_with(
                "PUT uploads/u/1.jpg: stored image/jpeg, Cache-Control max-age=86400; \
                 320x: 307 -> 307 -> 200, made"
            ),
            "{seen}"
        );
        assert!(seen.contains("multipart uploads/u/3.jpg"), "{seen}");
    }

    /// A stack whose signer role lacks s3:PutObject on uploads/*, as S3 and the signer
    /// answer it (written from their documented answers, not captured from AWS): S3's
    /// 403 AccessDenied to the presigned PUT and to the form, the signer's 502
    /// storage-error for its own CreateMultipartUpload.
    #[test]
    fn a_signer_role_without_put_object_fails_the_row() {
        let mut observation = sound_observation();
        let access_denied = |request: &str| Failure {
            step: Step::Send,
            request: request.into(),
            status: Some(403),
            answer: "403 AccessDenied".into(),
        };
        for (attempt, failure) in observation.attempts.iter_mut().zip([
            access_denied("the PUT to S3"),
            access_denied("the form's POST to S3"),
            Failure {
                step: Step::Sign,
                request: "POST /api/multipart/begin".into(),
                status: Some(502),
                answer: "502 storage-error".into(),
            },
        ]) {
            attempt.failure = Some(failure);
            attempt.stored = None;
            attempt.sized = None;
        }
        let (outcome, seen) = judge(&observation, &expected());
        assert_eq!(outcome, Outcome::Fail, "{seen}");
        assert!(
            seen.contains(
                "PUT: the PUT to S3 answered 403 AccessDenied (S3 refused what the signer presigned"
            ),
            "{seen}"
        );
        assert!(seen.contains("s3:PutObject on uploads/*"), "{seen}");
        assert!(seen.contains("multipart: POST /api/multipart/begin answered 502 storage-error (the signer's own S3 call failed"), "{seen}");
    }

    #[test]
    fn a_stored_upload_that_does_not_open_or_lost_its_headers_fails() {
        let mut observation = sound_observation();
        observation.attempts[0].sized = Some(SizedPath {
            statuses: vec![403],
            last: "403 AccessDenied".into(),
            image: None,
            stored: false,
        });
        if let Some(stored) = &mut observation.attempts[1].stored {
            stored.cache_control = None;
        }
        observation.attempts[2].sized = Some(SizedPath {
            statuses: vec![307, 404],
            last: "404 original-not-found".into(),
            image: None,
            stored: false,
        });
        let (outcome, seen) = judge(&observation, &expected());
        assert_eq!(outcome, Outcome::Fail, "{seen}");
        assert!(seen.contains("PUT: 320x with the uploads cookies: expected 307 -> 307 -> 200, got 403 AccessDenied (the uploads cookies did not open"), "{seen}");
        assert!(
            seen.contains("POST form: stored with Cache-Control none, signed max-age=86400"),
            "{seen}"
        );
        assert!(seen.contains("its role's s3:GetObject"), "{seen}");
        // No cookies: one problem, the sized paths not asked.
        let mut observation = sound_observation();
        for attempt in &mut observation.attempts {
            attempt.sized = None;
        }
        observation.cookies = Some(Failure {
            step: Step::Cookies,
            request: "POST /api/sign-cookies {\"uploads\": true}".into(),
            status: Some(401),
            answer: "401".into(),
        });
        let (outcome, seen) = judge(&observation, &expected());
        assert_eq!(outcome, Outcome::Fail, "{seen}");
        assert!(seen.contains("JWT authorizer refused --token"), "{seen}");
    }

    #[test]
    fn the_form_body_puts_the_file_last() {
        let fields = vec![("key".to_owned(), "uploads/u/1.jpg".to_owned())];
        let body = form_body(&fields, b"JPEG", "image/jpeg", "b0");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--b0\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/u/1.jpg\r\n\
             --b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\nJPEG\r\n--b0--\r\n"
        );
    }
}
