//! S3's rule for browser uploads (POST Object): every field of the form must be covered by
//! a condition of its signed policy, except `x-amz-signature`, `file`, `policy` and
//! `x-ignore-*` (and, for SigV2 forms, `AWSAccessKeyId` and `signature`). Otherwise S3
//! answers 403 AccessDenied "Invalid according to Policy: Extra input fields: NAME" and
//! stores nothing.
//!
//! s3s 0.14 makes the same check, with its own message, but lets through every
//! `x-amz-server-side-encryption*` field (a MinIO convenience) and a `submit` field, and
//! its PostObject handler receives the form without the policy, so the store cannot make up
//! for it there. The check is therefore made here, on the form itself, before s3s reads it:
//! the fields that precede the file are read (S3 ignores any after it) and the request goes
//! on with its body intact. Anything that is not a well-formed form with a readable policy
//! is left to s3s to answer.

use bytes::{Bytes, BytesMut};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::{Frame, Incoming};

/// How much of a form is read looking for the file. S3 refuses more than 20 KB of fields
/// before the file; past this much the form is left to s3s.
const FIELDS_LIMIT: usize = 1024 * 1024;

/// What [`check`] decided.
pub enum Checked {
    /// Pass the request on: its body is the one received, byte for byte.
    Forward(s3s::HttpRequest),
    /// S3's answer to a form with a field its policy does not cover.
    Refused(s3s::HttpResponse),
}

/// Reads the fields of a POST form upload and refuses the form if one is not covered by its
/// policy; any other request goes on untouched.
pub async fn check(req: Request<Incoming>) -> Checked {
    let Some(boundary) = form_boundary(&req) else {
        return Checked::Forward(req.map(s3s::Body::from));
    };
    let (parts, mut body) = req.into_parts();
    let mut read = BytesMut::new();
    let fields = loop {
        match form_fields(&read, &boundary) {
            Fields::Complete(fields) => break Some(fields),
            Fields::Malformed => break None,
            Fields::Incomplete if read.len() > FIELDS_LIMIT => break None,
            Fields::Incomplete => {}
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
            }
            // The whole body is read, or the client has gone: s3s answers what arrived.
            None => break None,
            Some(Err(e)) => {
                tracing::debug!("reading a POST form: {e}");
                break None;
            }
        }
    };
    if let Some(field) = fields.as_deref().and_then(uncovered_field) {
        return Checked::Refused(extra_field_response(&field));
    }
    // What was read goes first, then the rest as it arrives.
    let head = futures::stream::iter([Ok::<_, hyper::Error>(Frame::data(read.freeze()))]);
    let rest = futures::StreamExt::chain(head, BodyStream::new(body));
    let rest = futures::StreamExt::inspect(rest, |f| match f {
        Ok(f) => {
            if let Some(d) = f.data_ref() {
                let t = &d[d.len().saturating_sub(8)..];
                eprintln!("DBG frame {} tail {:?}", d.len(), t);
            }
        }
        Err(e) => eprintln!("DBG err {e}"),
    });
    let body = s3s::Body::http_body(StreamBody::new(rest));
    Checked::Forward(Request::from_parts(parts, body))
}

/// The boundary of a `multipart/form-data` POST, the only kind of request that is a form.
fn form_boundary<B>(req: &Request<B>) -> Option<String> {
    if req.method() != http::Method::POST {
        return None;
    }
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty())
            .then(|| value.to_owned())
    })
}

/// The fields of a form read so far.
#[derive(Debug, PartialEq)]
enum Fields {
    /// Every field before the file: (name in lower case, value).
    Complete(Vec<(String, String)>),
    /// The file has not been reached yet.
    Incomplete,
    /// Not a form s3s would accept either, or one without a file.
    Malformed,
}

/// Parses the fields before the part named `file` (multipart/form-data, RFC 7578).
fn form_fields(body: &[u8], boundary: &str) -> Fields {
    let delimiter = format!("--{boundary}");
    let next_part = format!("\r\n--{boundary}");
    let Some(start) = find(body, delimiter.as_bytes(), 0) else {
        // The form starts with the delimiter, perhaps after one empty line.
        let short = body.len() < delimiter.len() + 2;
        return if short { Fields::Incomplete } else { Fields::Malformed };
    };
    let mut pos = start + delimiter.len();
    let mut fields = Vec::new();
    loop {
        // After a delimiter: CRLF and a part, or `--` and the end of the form.
        match body.get(pos..pos + 2) {
            None => return Fields::Incomplete,
            Some(b"\r\n") => pos += 2,
            Some(_) => return Fields::Malformed,
        }
        let Some(headers_end) = find(body, b"\r\n\r\n", pos) else {
            return Fields::Incomplete;
        };
        let Some(name) = part_name(&body[pos..headers_end]) else {
            return Fields::Malformed;
        };
        if name == "file" {
            return Fields::Complete(fields);
        }
        let value_start = headers_end + 4;
        let Some(value_end) = find(body, next_part.as_bytes(), value_start) else {
            return Fields::Incomplete;
        };
        let Ok(value) = std::str::from_utf8(&body[value_start..value_end]) else {
            return Fields::Malformed;
        };
        fields.push((name, value.to_owned()));
        pos = value_end + next_part.len();
    }
}

/// The `name` of a part from its `Content-Disposition: form-data; name="..."` header, in
/// lower case (S3 and s3s compare field names without regard to case).
fn part_name(headers: &[u8]) -> Option<String> {
    let headers = std::str::from_utf8(headers).ok()?;
    let disposition = headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-disposition").then_some(value)
    })?;
    disposition.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("name")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// The first field its policy does not cover, when the form has a policy that can be read.
fn uncovered_field(fields: &[(String, String)]) -> Option<String> {
    let policy = fields.iter().find(|(name, _)| name == "policy").map(|(_, value)| value)?;
    let covered = policy_fields(policy)?;
    fields
        .iter()
        .map(|(name, _)| name)
        .find(|name| !exempt(name) && !covered.contains(name))
        .cloned()
}

fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "file" | "policy" | "awsaccesskeyid" | "signature")
        || name.starts_with("x-ignore-")
}

/// The fields named by a policy's `eq` and `starts-with` conditions, in lower case
/// (`{"field": "value"}`, `["eq", "$field", "value"]`, `["starts-with", "$field", "prefix"]`).
fn policy_fields(policy_b64: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD.decode(policy_b64.trim()).ok()?;
    let policy: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let mut fields = Vec::new();
    for condition in policy.get("conditions")?.as_array()? {
        match condition {
            serde_json::Value::Object(map) => fields.extend(map.keys().map(|k| k.to_owned())),
            serde_json::Value::Array(items) => {
                if let [op, field, _] = items.as_slice() {
                    let op = op.as_str().unwrap_or_default().to_ascii_lowercase();
                    if op == "eq" || op == "starts-with" {
                        if let Some(field) = field.as_str() {
                            fields.push(field.strip_prefix('$').unwrap_or(field).to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(fields.into_iter().map(|f| f.to_ascii_lowercase()).collect())
}

/// S3's refusal: 403 AccessDenied naming the field.
fn extra_field_response(field: &str) -> s3s::HttpResponse {
    let mut escaped = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>Invalid according to Policy: Extra input fields: {escaped}</Message></Error>"
    );
    let mut resp = Response::new(s3s::Body::from(Bytes::from(xml)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/xml"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const BOUNDARY: &str = "----form7MA4YWxk";

    /// A form as a browser sends it: `fields` in order, then the file, then `after`.
    fn form(fields: &[(&str, &str)], after: &[(&str, &str)]) -> Vec<u8> {
        let mut body = String::new();
        for (name, value) in fields {
            body += &format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        body += &format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n\u{ff}\u{d8}--not a boundary\r\n"
        );
        for (name, value) in after {
            body += &format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        body += &format!("--{BOUNDARY}--\r\n");
        body.into_bytes()
    }

    fn policy(conditions: &str) -> String {
        let json =
            format!(r#"{{"expiration":"2030-01-01T00:00:00Z","conditions":[{conditions}]}}"#);
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields.iter().map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned())).collect()
    }

    #[test]
    fn fields_before_the_file_are_read_in_any_chunking() {
        let fields = [("key", "uploads/a b+c.jpg"), ("Content-Type", "image/jpeg"), ("x", "")];
        let body = form(&fields, &[("submit", "Upload")]);
        let file_at = find(&body, b"name=\"file\"", 0).unwrap();
        let headers_end = find(&body, b"\r\n\r\n", file_at).unwrap();
        for end in 0..body.len() {
            let got = form_fields(&body[..end], BOUNDARY);
            if end < headers_end + 4 {
                assert_eq!(got, Fields::Incomplete, "{end}");
            } else {
                assert_eq!(got, Fields::Complete(owned(&fields)), "{end}");
            }
        }
    }

    #[test]
    fn malformed_forms_are_left_to_s3s() {
        assert_eq!(form_fields(b"not a form at all, long enough", BOUNDARY), Fields::Malformed);
        let no_name = format!("--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n");
        assert_eq!(form_fields(no_name.as_bytes(), BOUNDARY), Fields::Malformed);
        let no_file = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{BOUNDARY}--\r\n"
        );
        assert_eq!(form_fields(no_file.as_bytes(), BOUNDARY), Fields::Malformed);
    }

    #[test]
    fn boundary_comes_from_a_form_post_only() {
        let req = |method: &str, content_type: &str| {
            Request::builder()
                .method(method)
                .header(header::CONTENT_TYPE, content_type)
                .body(())
                .unwrap()
        };
        let boundary = |r| form_boundary(&r);
        assert_eq!(boundary(req("POST", "multipart/form-data; boundary=abc")), Some("abc".into()));
        assert_eq!(
            boundary(req("POST", "Multipart/Form-Data; charset=utf-8; boundary=\"a b\"")),
            Some("a b".into())
        );
        assert_eq!(boundary(req("PUT", "multipart/form-data; boundary=abc")), None);
        assert_eq!(boundary(req("POST", "application/xml")), None);
        assert_eq!(boundary(req("POST", "multipart/form-data")), None);
    }

    #[test]
    fn a_field_without_a_condition_is_the_one_refused() {
        let conditions = r#"{"bucket":"images"},["starts-with","$key","uploads/"],
            {"Content-Type":"image/jpeg"},["content-length-range",1,100],
            ["eq","$x-amz-algorithm","AWS4-HMAC-SHA256"],["eq","$X-Amz-Credential","c"],
            ["eq","$x-amz-date","d"]"#;
        let signed = [
            ("key", "uploads/a.jpg"),
            ("Content-Type", "image/jpeg"),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("x-amz-credential", "c"),
            ("x-amz-date", "d"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let policy = policy(conditions);
            let mut fields = signed.to_vec();
            fields.extend_from_slice(extra);
            fields.push(("policy", policy.as_str()));
            fields.push(("x-amz-signature", "sig"));
            uncovered_field(&owned(&fields))
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&[("x-ignore-note", "n"), ("AWSAccessKeyId", "a")]), None);
        for extra in [
            "Cache-Control",
            "Content-Disposition",
            "x-amz-meta-foo",
            "x-amz-server-side-encryption",
            "submit",
            "acl",
        ] {
            assert_eq!(with(&[(extra, "v")]), Some(extra.to_ascii_lowercase()), "{extra}");
        }
        // No policy, or one that cannot be read: s3s answers.
        assert_eq!(uncovered_field(&owned(&[("key", "k"), ("acl", "public-read")])), None);
        assert_eq!(uncovered_field(&owned(&[("policy", "%%%"), ("acl", "public-read")])), None);
    }

    #[test]
    fn the_refusal_is_s3s_access_denied_naming_the_field() {
        let resp = extra_field_response("x-amz-meta-<a&b>");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = resp.into_body().bytes().unwrap_or_default();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
        assert!(
            text.contains(
                "Invalid according to Policy: Extra input fields: x-amz-meta-&lt;a&amp;b&gt;"
            ),
            "{text}"
        );
    }
}
