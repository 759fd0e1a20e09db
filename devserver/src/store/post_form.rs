//! S3's rules for browser uploads (POST Object), applied to the fields of the form before
//! s3s reads it. S3 refuses, with 403 AccessDenied and nothing stored:
//! - a field that no condition of the signed policy covers, except `x-amz-signature`,
//!   `file`, `policy` and `x-ignore-*` (and, for SigV2 forms, `AWSAccessKeyId` and
//!   `signature`): "Invalid according to Policy: Extra input fields: NAME";
//! - a form that fails an `eq` or `starts-with` condition, a field the form lacks included:
//!   "Invalid according to Policy: Policy Condition failed: [...]".
//!
//! s3s 0.14 makes both checks with answers of its own: it lets through every
//! `x-amz-server-side-encryption*` field (a MinIO convenience) and a `submit` field, answers
//! a failed condition with 400 InvalidPolicyDocument, and takes a missing field as empty, so
//! `["starts-with", "$x", ""]` holds without `x`. Its PostObject handler receives the form
//! without the policy, so the store cannot make up for it there. The checks are therefore
//! made here, on the form itself: the fields that precede the file are read (S3 ignores any
//! after it) and the request goes on with its body intact, in pieces s3s can take
//! (`PIECE`). Anything that is not a well-formed form with a readable policy is left to
//! s3s to answer, and so are the size range, the signature and the expiry.

use bytes::{Bytes, BytesMut};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;

/// How much of a form is read looking for the file. S3 refuses more than 20 KB of fields
/// before the file; past this much the form is left to s3s.
const FIELDS_LIMIT: usize = 1024 * 1024;

/// The largest piece of body s3s is handed at once.
///
/// s3s 0.14's reader of the file part (`FileStream`) keeps the end of a piece that could be
/// the start of the closing `\r\n--BOUNDARY` (a lone `\r` is enough), appends the next piece
/// to it in a buffer limited to 64 KiB, and fails the whole form when the sum is larger:
/// 400 InvalidRequest "failed to read file stream", even when the form should have been
/// refused as too large, or stored. hyper hands over what one socket read brought, up to
/// about 400 KB, so a form was refused whenever a `\r` of the file happened to end a read
/// that a large one followed; S3 has no such limit. What is kept is shorter than the
/// delimiter (at most 74 bytes, RFC 2046 boundaries being 70 characters at most), so pieces
/// of 32 KiB always fit.
const PIECE: usize = 32 * 1024;

/// What [`check`] decided.
pub enum Checked {
    /// Pass the request on: its body is the one received, byte for byte.
    Forward(s3s::HttpRequest),
    /// S3's answer to a form its policy does not allow.
    Refused(s3s::HttpResponse),
}

/// Reads the fields of a POST form upload and refuses the form as S3 would when its policy
/// does not allow it; any other request goes on untouched.
pub async fn check<B>(req: Request<B>) -> Checked
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Send + Sync,
    s3s::StdError: From<B::Error>,
{
    let Some(boundary) = form_boundary(&req) else {
        return Checked::Forward(req.map(s3s::Body::http_body));
    };
    let bucket = url_bucket(req.uri());
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
                tracing::debug!("reading a POST form: {}", s3s::StdError::from(e));
                break None;
            }
        }
    };
    if let Some(message) = fields.as_deref().and_then(|f| refusal(f, bucket.as_deref())) {
        return Checked::Refused(access_denied(&message));
    }
    // What was read goes first, then the rest as it arrives.
    let head = futures::stream::iter([Ok::<_, B::Error>(Frame::data(read.freeze()))]);
    let whole = futures::StreamExt::chain(head, BodyStream::new(body));
    let pieces = futures::StreamExt::flat_map(whole, in_pieces);
    let body = s3s::Body::http_body(StreamBody::new(pieces));
    Checked::Forward(Request::from_parts(parts, body))
}

/// A frame of the body as frames of at most [`PIECE`] bytes (slices of it, not copies).
fn in_pieces<E>(
    frame: Result<Frame<Bytes>, E>,
) -> futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, E>>> {
    let pieces = match frame.map(Frame::into_data) {
        Ok(Ok(mut data)) => {
            let mut pieces = Vec::with_capacity(data.len().div_ceil(PIECE));
            while !data.is_empty() {
                pieces.push(Ok(Frame::data(data.split_to(data.len().min(PIECE)))));
            }
            pieces
        }
        Ok(Err(trailers)) => vec![Ok(trailers)],
        Err(e) => vec![Err(e)],
    };
    futures::stream::iter(pieces)
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

/// The bucket a form is posted to, which a `bucket` condition is held to. The store is
/// addressed path-style (s3s has no virtual-host parser configured): `/BUCKET`.
fn url_bucket(uri: &http::Uri) -> Option<String> {
    let segment = uri.path().trim_start_matches('/').split('/').next()?;
    let bucket = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
    (!bucket.is_empty()).then(|| bucket.into_owned())
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

/// A field condition of a POST policy.
#[derive(Debug, PartialEq)]
struct Condition {
    /// `eq` (`{"field": "value"}` is one too) or `starts-with`.
    op: Op,
    /// The field as the policy names it, without the `$`.
    field: String,
    value: String,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Op {
    Eq,
    StartsWith,
}

/// What S3 says after "Invalid according to Policy: " when the form's policy does not allow
/// its fields, if it can be read. A field no condition covers is named first: which of the
/// two S3 reports when a form has both faults is not documented.
fn refusal(fields: &[(String, String)], bucket: Option<&str>) -> Option<String> {
    let policy = fields.iter().find(|(name, _)| name == "policy").map(|(_, value)| value)?;
    let conditions = policy_conditions(policy)?;
    if let Some(field) = uncovered_field(fields, &conditions) {
        return Some(format!("Extra input fields: {field}"));
    }
    let failed = conditions.iter().find(|c| !holds(c, fields, bucket))?;
    Some(condition_failed(failed))
}

/// The first field no condition covers.
fn uncovered_field(fields: &[(String, String)], conditions: &[Condition]) -> Option<String> {
    fields
        .iter()
        .map(|(name, _)| name)
        .find(|name| {
            !exempt(name) && !conditions.iter().any(|c| c.field.eq_ignore_ascii_case(name))
        })
        .cloned()
}

fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "file" | "policy" | "awsaccesskeyid" | "signature")
        || name.starts_with("x-ignore-")
}

/// Whether the form meets a condition. `bucket` is the request's bucket, not a field; when
/// the request names none, s3s refuses it anyway. Any other field must be in the form: S3
/// refuses `["starts-with", "$Content-Type", ""]` for a form without Content-Type. A field
/// sent twice must meet the condition each time, whichever of the two s3s then stores.
fn holds(condition: &Condition, fields: &[(String, String)], bucket: Option<&str>) -> bool {
    let meets = |value: &str| match condition.op {
        Op::Eq => value == condition.value,
        Op::StartsWith => value.starts_with(&condition.value),
    };
    if condition.field.eq_ignore_ascii_case("bucket") {
        return bucket.is_none_or(meets);
    }
    let mut values = fields
        .iter()
        .filter(|(name, _)| condition.field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .peekable();
    values.peek().is_some() && values.all(meets)
}

/// S3's words for a failed condition: the condition as an array, a `{"field": "value"}` one
/// as `eq`, the field spelled as in the policy, field and value written as JSON strings.
/// Seen on S3:
/// `Policy Condition failed: ["eq", "$acl", "public-read"]` for `{"acl": "public-read"}`
/// (awsdocs/aws-doc-sdk-examples#5490), `["eq", "$key", "/2025/0267$$Copy.csv"]` for
/// boto3's `{"key": ...}` (boto/boto3#4514), `["starts-with", "$Content-Length", ""]`
/// (tj/node-s3-policy#8), `["starts-with", "$content-type", ""]`
/// (waynehoover/s3_direct_upload#107).
fn condition_failed(condition: &Condition) -> String {
    let op = match condition.op {
        Op::Eq => "eq",
        Op::StartsWith => "starts-with",
    };
    let field = serde_json::Value::String(format!("${}", condition.field));
    let value = serde_json::Value::String(condition.value.clone());
    format!("Policy Condition failed: [\"{op}\", {field}, {value}]")
}

/// The field conditions of a policy, in its order; `None` when s3s could not read the
/// policy either (it then refuses the form itself). `content-length-range` is left to s3s.
fn policy_conditions(policy_b64: &str) -> Option<Vec<Condition>> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD.decode(policy_b64.trim()).ok()?;
    let policy: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let mut conditions = Vec::new();
    for condition in policy.get("conditions")?.as_array()? {
        match condition {
            serde_json::Value::Object(map) => {
                for (field, value) in map {
                    let value = value.as_str()?.to_owned();
                    conditions.push(Condition { op: Op::Eq, field: field.clone(), value });
                }
            }
            serde_json::Value::Array(items) => {
                let [op, field, value] = items.as_slice() else { return None };
                let op = match op.as_str()?.to_ascii_lowercase().as_str() {
                    "eq" => Op::Eq,
                    "starts-with" => Op::StartsWith,
                    "content-length-range" => continue,
                    _ => return None,
                };
                let field = field.as_str()?;
                let field = field.strip_prefix('$').unwrap_or(field).to_owned();
                let value = value.as_str()?.to_owned();
                conditions.push(Condition { op, field, value });
            }
            _ => return None,
        }
    }
    Some(conditions)
}

/// S3's refusal of a form its policy does not allow: 403 AccessDenied, "Invalid according
/// to Policy: " and what is wrong. The message is element text, so only `&`, `<` and `>`
/// are escaped: S3 writes the quotes of a failed condition as they are.
fn access_denied(message: &str) -> s3s::HttpResponse {
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>Invalid according to Policy: {escaped}</Message></Error>"
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

    /// The policy and fields of a form like the signer's, before the file.
    const CONDITIONS: &str = r#"{"bucket":"images"},["starts-with","$key","uploads/"],
        {"key":"uploads/a.jpg"},{"Content-Type":"image/jpeg"},
        ["eq","$Content-Disposition","inline"],["content-length-range",1,100],
        ["eq","$x-amz-algorithm","AWS4-HMAC-SHA256"],["eq","$X-Amz-Credential","c"],
        ["eq","$x-amz-date","d"]"#;
    const SIGNED: [(&str, &str); 6] = [
        ("key", "uploads/a.jpg"),
        ("Content-Type", "image/jpeg"),
        ("Content-Disposition", "inline"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", "c"),
        ("x-amz-date", "d"),
    ];

    /// What the store says of the signed form with `changes` made (a field set to a value,
    /// added if the form lacks it, or removed), posted to the bucket `images`.
    fn refusal_of(changes: &[(&str, Option<&str>)]) -> Option<String> {
        let policy = policy(CONDITIONS);
        let mut fields: Vec<(&str, &str)> = SIGNED.to_vec();
        for (name, value) in changes {
            let at = fields.iter().position(|(n, _)| n.eq_ignore_ascii_case(name));
            match (at, value) {
                (Some(at), Some(value)) => fields[at].1 = value,
                (Some(at), None) => drop(fields.remove(at)),
                (None, Some(value)) => fields.push((name, value)),
                (None, None) => {}
            }
        }
        fields.push(("policy", policy.as_str()));
        fields.push(("x-amz-signature", "sig"));
        refusal(&owned(&fields), Some("images"))
    }

    #[track_caller]
    fn case(changes: &[(&str, Option<&str>)], expected: Option<&str>) {
        assert_eq!(refusal_of(changes).as_deref(), expected, "{changes:?}");
    }

    #[test]
    fn a_field_without_a_condition_is_the_one_refused() {
        case(&[], None);
        case(&[("x-ignore-note", Some("n")), ("AWSAccessKeyId", Some("a"))], None);
        for extra in
            ["Cache-Control", "x-amz-meta-foo", "x-amz-server-side-encryption", "submit", "acl"]
        {
            let expected = format!("Extra input fields: {}", extra.to_ascii_lowercase());
            case(&[(extra, Some("v"))], Some(&expected));
        }
        // An extra field is named even when a condition fails too.
        case(
            &[("Content-Type", Some("image/png")), ("acl", Some("public-read"))],
            Some("Extra input fields: acl"),
        );
    }

    #[test]
    fn a_failed_condition_is_quoted_as_s3_quotes_it() {
        let failed = |condition: &str| Some(format!("Policy Condition failed: {condition}"));
        case(
            &[("Content-Disposition", Some("attachment"))],
            failed(r#"["eq", "$Content-Disposition", "inline"]"#).as_deref(),
        );
        // `{"field": "value"}` reads as `eq`; conditions are tried in the policy's order.
        case(
            &[("content-type", Some("image/png"))],
            failed(r#"["eq", "$Content-Type", "image/jpeg"]"#).as_deref(),
        );
        case(
            &[("key", Some("photos/a.jpg"))],
            failed(r#"["starts-with", "$key", "uploads/"]"#).as_deref(),
        );
        case(
            &[("key", Some("uploads/b.jpg"))],
            failed(r#"["eq", "$key", "uploads/a.jpg"]"#).as_deref(),
        );
        case(&[("x-amz-date", Some("e"))], failed(r#"["eq", "$x-amz-date", "d"]"#).as_deref());
        // A condition on a field the form lacks fails, even a `starts-with ""`.
        case(
            &[("Content-Disposition", None)],
            failed(r#"["eq", "$Content-Disposition", "inline"]"#).as_deref(),
        );
        let policy = policy(r#"["starts-with","$Content-Type",""]"#);
        let without = owned(&[("policy", &policy)]);
        assert_eq!(
            refusal(&without, Some("images")),
            failed(r#"["starts-with", "$Content-Type", ""]"#)
        );
        // A field sent twice must meet the condition both times.
        let mut twice = SIGNED.to_vec();
        twice.push(("Content-Disposition", "attachment"));
        let policy = self::policy(CONDITIONS);
        twice.push(("policy", &policy));
        assert_eq!(
            refusal(&owned(&twice), Some("images")),
            failed(r#"["eq", "$Content-Disposition", "inline"]"#)
        );
    }

    #[test]
    fn the_bucket_condition_holds_the_url_bucket() {
        let policy = policy(CONDITIONS);
        let mut fields = SIGNED.to_vec();
        fields.push(("policy", &policy));
        let fields = owned(&fields);
        assert_eq!(refusal(&fields, Some("images")), None);
        assert_eq!(
            refusal(&fields, Some("other")).as_deref(),
            Some(r#"Policy Condition failed: ["eq", "$bucket", "images"]"#)
        );
        // No bucket in the URL: s3s refuses the request itself.
        assert_eq!(refusal(&fields, None), None);
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(url_bucket(&uri("/images")).as_deref(), Some("images"));
        assert_eq!(
            url_bucket(&uri("http://127.0.0.1:9000/my%2Dbucket/")).as_deref(),
            Some("my-bucket")
        );
        assert_eq!(url_bucket(&uri("/")), None);
    }

    #[test]
    fn an_unreadable_policy_is_left_to_s3s() {
        assert_eq!(refusal(&owned(&[("key", "k"), ("acl", "public-read")]), None), None);
        assert_eq!(refusal(&owned(&[("policy", "%%%"), ("acl", "public-read")]), None), None);
        for conditions in
            [r#"["ends-with","$key","x"]"#, r#"["eq","$key"]"#, r#"{"key":1}"#, r#""key""#]
        {
            let policy = policy(conditions);
            let fields = owned(&[("policy", &policy), ("acl", "public-read")]);
            assert_eq!(refusal(&fields, None), None, "{conditions}");
        }
    }

    #[test]
    fn the_refusal_is_s3s_access_denied_with_the_message() {
        let resp = access_denied(r#"Extra input fields: x-amz-meta-<a&b>, ["eq", "$k", "v"]"#);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = resp.into_body().bytes().unwrap_or_default();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
        assert!(
            text.contains(
                r#"<Message>Invalid according to Policy: Extra input fields: x-amz-meta-&lt;a&amp;b&gt;, ["eq", "$k", "v"]</Message>"#
            ),
            "{text}"
        );
    }

    #[test]
    fn frames_are_cut_into_pieces_s3s_can_take() {
        let data = Bytes::from((0..=255u8).cycle().take(3 * PIECE + 5).collect::<Vec<_>>());
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 5] {
            let frame = Ok::<_, std::convert::Infallible>(Frame::data(data.slice(..len)));
            let pieces: Vec<Bytes> = futures::executor::block_on_stream(in_pieces(frame))
                .map(|piece| piece.unwrap().into_data().unwrap())
                .collect();
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= PIECE), "{len}");
            assert_eq!(pieces.concat(), data[..len], "{len}");
        }
        let trailers = Frame::<Bytes>::trailers(http::HeaderMap::new());
        let mut passed = futures::executor::block_on_stream(in_pieces(Ok::<_, ()>(trailers)));
        assert!(passed.next().unwrap().unwrap().is_trailers());
        assert!(passed.next().is_none());
    }

    /// A signed form for `uploads/a.jpg` in the bucket `images` with `file`, sent to the
    /// store in two frames cut `cut` bytes into the file, as hyper may hand them over.
    async fn post_in_two_frames(file: &[u8], cut: usize, max_bytes: u64) -> (u16, String, usize) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("images")).unwrap();
        let store = super::super::Store::new(dir.path(), super::super::Counters::default());
        let service = super::super::service(store.unwrap(), "AKIDTEST", "secret");
        let rules = signer::presign::PostRules {
            key: "uploads/a.jpg",
            key_prefix: "uploads/",
            content_type: "image/jpeg",
            cache_control: "max-age=60",
            length_range: (1, max_bytes),
            expires_in: std::time::Duration::from_secs(300),
        };
        let signing = signer::presign::PostSigning {
            access_key: "AKIDTEST",
            secret_key: "secret",
            session_token: None,
            region: "us-east-1",
        };
        let now = std::time::SystemTime::now();
        let form =
            signer::presign::sign_post("http://127.0.0.1/images", "images", &rules, &signing, now);
        let mut body = Vec::new();
        for (name, value) in &form.fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
                 Content-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        let file_at = body.len();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let body = Bytes::from(body);
        let frames = [body.slice(..file_at + cut), body.slice(file_at + cut..)]
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
        let req = Request::post("/images")
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .header(header::CONTENT_LENGTH, body.len())
            .body(StreamBody::new(futures::stream::iter(frames)))
            .unwrap();
        let resp = match check(req).await {
            Checked::Forward(req) => service.s3.call(req).await.unwrap(),
            Checked::Refused(resp) => resp,
        };
        let status = resp.status().as_u16();
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let stored = dir.path().join("images/uploads/a.jpg");
        let stored = std::fs::read(&stored).map(|b| b.len()).unwrap_or(0);
        (status, String::from_utf8_lossy(&text).into_owned(), stored)
    }

    /// s3s failed a form when a frame ended in what could start the closing delimiter and
    /// a frame of more than 64 KiB followed ([`PIECE`]).
    #[tokio::test]
    async fn a_frame_ending_like_the_delimiter_does_not_fail_the_form() {
        for tail in ["\r", "\r\n", "\r\n-", "\r\n--", "\r\n----form"] {
            let mut file = vec![b'a'; 200 * 1024];
            let cut = 1000;
            file[cut - tail.len()..cut].copy_from_slice(tail.as_bytes());
            let len = file.len() as u64;
            let (status, text, stored) = post_in_two_frames(&file, cut, len - 1).await;
            assert_eq!(status, 400, "{tail:?}: {text}");
            assert!(text.contains("<Code>EntityTooLarge</Code>"), "{tail:?}: {text}");
            assert_eq!(stored, 0, "{tail:?}");
            let (status, text, stored) = post_in_two_frames(&file, cut, len).await;
            assert_eq!(status, 204, "{tail:?}: {text}");
            assert_eq!(stored, file.len(), "{tail:?}");
        }
    }
}
