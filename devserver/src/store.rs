//! The embedded S3-compatible store: s3s (SigV4 auth on) over s3s-fs (objects as files under
//! the data directory), with corrections so it answers as S3 does:
//! - create-only writes (`If-None-Match: *`) are made atomic. s3s-fs checks the condition
//!   and then writes without a lock, so two racing creators could both pass the check and
//!   the later one would overwrite the earlier;
//! - an unknown multipart upload id is 404 NoSuchUpload (s3s-fs says 403 AccessDenied);
//! - list responses honour `EncodingType=url` as S3 does ([`encode_listed_key`]): s3s-fs
//!   echoes the encoding type but leaves every key raw, so botocore (the AWS CLI, boto3),
//!   which asks for it on every listing and form-decodes the answer, turned `a+b.jpg` into
//!   `a b.jpg`. ListObjectsV2 continuation tokens are opaque, as S3's are;
//! - a presigned POST form that its policy does not allow (a field no condition covers, or
//!   a condition it fails) is refused with S3's answer, 403 AccessDenied ([`post_form`]):
//!   s3s lets some fields through and answers a failed condition with 400
//!   InvalidPolicyDocument. The form's body reaches s3s in pieces its multipart reader can
//!   take: it failed a form whenever a frame that ended in a `\r` of the file was followed
//!   by one of more than 64 KiB (`post_form::PIECE`).

pub mod post_form;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;

/// The event a delete sends: template.yaml's bucket is versioned, so S3 writes a delete
/// marker and names the event for it.
const DELETE_EVENT: &str = "ObjectRemoved:DeleteMarkerCreated";

/// s3s-fs with conditional writes serialised.
pub struct Store {
    inner: FileSystem,
    /// Held around every conditional write: the existence check and the write happen as one
    /// step. A single lock is enough for a development store.
    conditional_writes: Arc<tokio::sync::Mutex<()>>,
    counters: Counters,
    root: std::path::PathBuf,
    /// Where S3 event notifications go ([`crate::notifications`]); none without it.
    notifier: Option<crate::notifications::Notifier>,
}

/// Counts per key: lets tests see how often the resizer fetched an original and how often
/// an object was (re)written.
#[derive(Debug, Clone, Default)]
pub struct OpCounter(Arc<Mutex<HashMap<String, usize>>>);

impl OpCounter {
    /// Operations counted for `key` so far.
    pub fn get(&self, key: &str) -> usize {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).copied().unwrap_or(0)
    }

    fn record(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key.to_owned()).or_default() += 1;
    }
}

/// GetObject requests and successful PutObject writes, per key.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// GetObject requests.
    pub reads: OpCounter,
    /// PutObject requests that stored an object.
    pub writes: OpCounter,
}

impl Store {
    /// Stores objects under `root` (created if missing).
    pub fn new(root: &std::path::Path, counters: Counters) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        let inner = FileSystem::new(root)
            .map_err(|e| anyhow::anyhow!("data dir {}: {e:?}", root.display()))?;
        Ok(Self {
            inner,
            conditional_writes: Arc::default(),
            counters,
            root: root.to_owned(),
            notifier: None,
        })
    }

    /// Sends an event notification for every object created or removed, as a bucket with
    /// a notification configuration does.
    pub fn with_notifications(mut self, notifier: crate::notifications::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    fn notify(
        &self,
        name: &'static str,
        bucket: &str,
        key: &str,
        size: Option<i64>,
        etag: Option<&ETag>,
    ) {
        if let Some(notifier) = &self.notifier {
            notifier.notify(name, bucket, key, size, etag.map(ETag::value));
        }
    }

    /// A PUT (or a POST form) through s3s-fs: create-only ones serialised, counted, notified
    /// as `event`.
    async fn put(
        &self,
        req: S3Request<PutObjectInput>,
        event: &'static str,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let result = if req.input.if_none_match.is_some() || req.input.if_match.is_some() {
            let _guard = self.conditional_writes.lock().await;
            self.inner.put_object(req).await
        } else {
            self.inner.put_object(req).await
        };
        if let Ok(resp) = &result {
            self.counters.writes.record(&key);
            let size = self.stored_size(&bucket, &key);
            self.notify(event, &bucket, &key, size, resp.output.e_tag.as_ref());
        }
        result
    }

    /// The size of a stored object, for a notification.
    fn stored_size(&self, bucket: &str, key: &str) -> Option<i64> {
        std::fs::metadata(self.root.join(bucket).join(key)).ok().map(|m| m.len() as i64)
    }

    /// S3 answers 404 NoSuchUpload for an upload id that was completed, aborted or never
    /// begun; s3s-fs answers 403. Its record of live uploads is `.upload-{id}.json`.
    fn check_upload(&self, upload_id: &str) -> S3Result<()> {
        let well_formed =
            !upload_id.is_empty() && upload_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if well_formed && self.root.join(format!(".upload-{upload_id}.json")).exists() {
            Ok(())
        } else {
            Err(s3s::s3_error!(NoSuchUpload, "The specified upload does not exist."))
        }
    }
}

/// Builds the store's HTTP service: s3s with SigV4 checked against one access key, behind
/// the POST form check ([`post_form`]).
pub fn service(store: Store, access_key: &str, secret_key: &str) -> StoreService {
    let mut builder = s3s::service::S3ServiceBuilder::new(store);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key.to_owned()));
    StoreService { s3: builder.build() }
}

/// The store's HTTP service ([`service`]).
#[derive(Debug, Clone)]
pub struct StoreService {
    s3: s3s::service::S3Service,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for StoreService {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let s3 = self.s3.clone();
        Box::pin(async move {
            match post_form::check(req).await {
                post_form::Checked::Forward(req) => s3.call(req).await,
                post_form::Checked::Refused(resp) => Ok(resp),
            }
        })
    }
}

/// Encodes a key (or a prefix, delimiter or marker) as S3 writes it in a list response
/// asked for with `EncodingType=url`: form encoding of the UTF-8 bytes, a space as `+`,
/// `/` kept, and every byte other than `A-Z a-z 0-9 - _ . * /` as `%XX` (upper case), `~`
/// included. Observed on S3: `a b.txt` -> `a+b.txt`, `a+b.txt` -> `a%2Bb.txt`,
/// `100%.csv` -> `100%25.csv`, `한글/x.txt` -> `%ED%95%9C%EA%B8%80/x.txt`,
/// `date=2026-03-01/` -> `date%3D2026-03-01/`, `<![CDATA[...]]>` ->
/// `%3C%21%5BCDATA%5B...%5D%5D%3E`. The unreserved set is Java's `URLEncoder` one plus `/`;
/// `*` kept and `~` encoded are taken from MinIO's `s3URLEncode`, written to match S3, not
/// measured here. Clients decode with `unquote_plus`, so any of these forms round-trips.
pub fn encode_listed_key(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
    }
    out
}

/// Whether a list request asked for `EncodingType=url`. S3 refuses any other value, the
/// empty one included, with 400 InvalidArgument.
fn wants_url_encoding(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => {
            Err(s3s::s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request"))
        }
    }
}

/// Encodes every key and common prefix of a listing ([`encode_listed_key`]).
fn encode_listed_entries(
    contents: Option<&mut ObjectList>,
    common_prefixes: Option<&mut CommonPrefixList>,
) {
    for key in contents.into_iter().flatten().filter_map(|o| o.key.as_mut()) {
        *key = encode_listed_key(key);
    }
    for prefix in common_prefixes.into_iter().flatten().filter_map(|p| p.prefix.as_mut()) {
        *prefix = encode_listed_key(prefix);
    }
}

/// Encodes the top-level elements named by `fields` when they are present.
fn encode_listed_fields<const N: usize>(fields: [&mut Option<String>; N]) {
    for value in fields.into_iter().flatten() {
        *value = encode_listed_key(value);
    }
}

/// s3s-fs's continuation token is the last key listed, raw. S3's tokens are opaque, and a
/// raw key is not always safe: one holding a character XML 1.0 cannot carry (a control
/// character) would break the very response `EncodingType=url` is asked for to keep
/// parseable, and S3 never encodes the token. So the token is the key in unpadded URL-safe
/// base64, whose alphabet survives any query-string handling.
fn encode_continuation_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// The key a token of [`encode_continuation_token`] stands for; S3's answer otherwise.
fn decode_continuation_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            s3s::s3_error!(InvalidArgument, "The continuation token provided is incorrect")
        })
}

/// The trait's methods are generated by async-trait, so the delegating ones are written out
/// by this macro inside the attributed impl rather than produced by a macro within it.
macro_rules! impl_s3_delegating {
    ($($name:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl S3 for Store {
            $(
                async fn $name(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$name(req).await
                }
            )*

            async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
                self.counters.reads.record(&req.input.key);
                let whole = req.input.range.is_none();
                let path = self.root.join(&req.input.bucket).join(&req.input.key);
                let plain_key = req.input.key.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
                let mut resp = self.inner.get_object(req).await?;
                // s3s-fs streams a file as 4 KiB tokio reads, each a trip to the blocking
                // pool: a 340 KB original took 3-4 ms on loopback. A whole object of up to
                // 16 MiB (s3s-fs has just validated and opened the same path) is read in one go.
                let small = resp.output.content_length.is_some_and(|n| n <= 16 * 1024 * 1024);
                if whole && small && plain_key {
                    if let Ok(bytes) = tokio::fs::read(&path).await {
                        if Some(bytes.len() as i64) == resp.output.content_length {
                            resp.output.body =
                                Some(s3s::dto::StreamingBlob::from(s3s::Body::from(bytes)));
                        }
                    }
                }
                Ok(resp)
            }

            async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
                // s3s hands a browser's POST form here too; S3 names that event Post.
                let event = if req.method == http::Method::POST {
                    "ObjectCreated:Post"
                } else {
                    "ObjectCreated:Put"
                };
                self.put(req, event).await
            }

            async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let resp = self.inner.copy_object(req).await?;
                let etag = resp.output.copy_object_result.as_ref().and_then(|r| r.e_tag.as_ref());
                self.notify("ObjectCreated:Copy", &bucket, &key, self.stored_size(&bucket, &key), etag);
                Ok(resp)
            }

            async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let resp = self.inner.delete_object(req).await?;
                self.notify(DELETE_EVENT, &bucket, &key, None, None);
                Ok(resp)
            }

            async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
                let bucket = req.input.bucket.clone();
                let resp = self.inner.delete_objects(req).await?;
                for deleted in resp.output.deleted.iter().flatten() {
                    if let Some(key) = &deleted.key {
                        self.notify(DELETE_EVENT, &bucket, key, None, None);
                    }
                }
                Ok(resp)
            }

            async fn list_objects_v2(
                &self,
                mut req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                let encode = wants_url_encoding(req.input.encoding_type.as_ref())?;
                let token = req.input.continuation_token.clone();
                if let Some(token) = &token {
                    req.input.continuation_token = Some(decode_continuation_token(token)?);
                }
                let mut resp = self.inner.list_objects_v2(req).await?;
                let out = &mut resp.output;
                out.continuation_token = token;
                out.next_continuation_token =
                    out.next_continuation_token.as_deref().map(encode_continuation_token);
                // S3 always answers a Prefix element, empty when none was asked for.
                out.prefix.get_or_insert_default();
                if encode {
                    encode_listed_fields([&mut out.prefix, &mut out.delimiter, &mut out.start_after]);
                    encode_listed_entries(out.contents.as_mut(), out.common_prefixes.as_mut());
                }
                Ok(resp)
            }

            async fn list_objects(
                &self,
                req: S3Request<ListObjectsInput>,
            ) -> S3Result<S3Response<ListObjectsOutput>> {
                let encode = wants_url_encoding(req.input.encoding_type.as_ref())?;
                let marker = req.input.marker.clone().unwrap_or_default();
                let delimited = req.input.delimiter.is_some();
                let mut resp = self.inner.list_objects(req).await?;
                let out = &mut resp.output;
                // S3 echoes Marker and Prefix (empty when not given), and sends NextMarker
                // only with a delimiter: without one, clients go on from the last key listed.
                out.marker = Some(marker);
                out.prefix.get_or_insert_default();
                if !delimited {
                    out.next_marker = None;
                }
                if encode {
                    encode_listed_fields([
                        &mut out.prefix,
                        &mut out.delimiter,
                        &mut out.marker,
                        &mut out.next_marker,
                    ]);
                    encode_listed_entries(out.contents.as_mut(), out.common_prefixes.as_mut());
                }
                Ok(resp)
            }

            async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
                self.check_upload(&req.input.upload_id)?;
                self.inner.upload_part(req).await
            }

            async fn abort_multipart_upload(
                &self,
                req: S3Request<AbortMultipartUploadInput>,
            ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
                self.check_upload(&req.input.upload_id)?;
                self.inner.abort_multipart_upload(req).await
            }

            async fn complete_multipart_upload(
                &self,
                req: S3Request<CompleteMultipartUploadInput>,
            ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
                self.check_upload(&req.input.upload_id)?;
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let resp = if req.input.if_none_match.is_some() || req.input.if_match.is_some() {
                    let _guard = self.conditional_writes.lock().await;
                    self.inner.complete_multipart_upload(req).await?
                } else {
                    self.inner.complete_multipart_upload(req).await?
                };
                let size = self.stored_size(&bucket, &key);
                self.notify("ObjectCreated:CompleteMultipartUpload", &bucket, &key, size, resp.output.e_tag.as_ref());
                Ok(resp)
            }
        }
    };
}

impl_s3_delegating! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    #[track_caller]
    fn case(key: &str, expected: &str) {
        assert_eq!(encode_listed_key(key), expected, "{key:?}");
    }

    #[test]
    fn listed_keys_are_encoded_as_s3_encodes_them() {
        // The rows observed on S3.
        case("a b.txt", "a+b.txt");
        case("a+b.txt", "a%2Bb.txt");
        case("100%.csv", "100%25.csv");
        case("한글/x.txt", "%ED%95%9C%EA%B8%80/x.txt");
        case("run books/", "run+books/");
        case("date=2026-03-01/", "date%3D2026-03-01/");
        case("<![CDATA[...]]>", "%3C%21%5BCDATA%5B...%5D%5D%3E");
        case("&lt", "%26lt");
        // The unreserved set: letters, digits, `-_.*` and `/`; `~` is encoded.
        case("AZaz09-_.*/", "AZaz09-_.*/");
        case("a~b", "a%7Eb");
        case("", "");
        case("photos/a+b c.jpg", "photos/a%2Bb+c.jpg");
        case("photos/100%25.jpg", "photos/100%2525.jpg");
        case("photos/q?x#y.jpg", "photos/q%3Fx%23y.jpg");
        case("photos/tab'quote\".jpg", "photos/tab%27quote%22.jpg");
        case("a\tb\r\n\u{1}", "a%09b%0D%0A%01");
        case("photos/ảnh đẹp.jpg", "photos/%E1%BA%A3nh+%C4%91%E1%BA%B9p.jpg");
        case(
            "!$&'(),;=@[]{}|^`\\:<>",
            "%21%24%26%27%28%29%2C%3B%3D%40%5B%5D%7B%7D%7C%5E%60%5C%3A%3C%3E",
        );
    }

    /// botocore decodes with `unquote_plus`: `+` to a space, then `%XX` as UTF-8.
    fn unquote_plus(encoded: &str) -> String {
        let spaced = encoded.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).decode_utf8().unwrap().into_owned()
    }

    #[test]
    fn every_byte_round_trips_through_form_decoding() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for key in [every_ascii.as_str(), "고양이 사진.png", "a%2Bb+c %25", "🐈/ /+/%"] {
            let encoded = encode_listed_key(key);
            assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded}");
            assert_eq!(unquote_plus(&encoded), key);
        }
    }

    #[test]
    fn only_url_encoding_is_accepted() {
        assert!(!wants_url_encoding(None).unwrap());
        assert!(wants_url_encoding(Some(&EncodingType::from_static(EncodingType::URL))).unwrap());
        for other in ["", "URL", "gzip"] {
            let err = wants_url_encoding(Some(&EncodingType::from(other.to_owned()))).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::InvalidArgument, "{other:?}");
        }
    }

    #[test]
    fn continuation_tokens_are_opaque_and_round_trip() {
        for key in ["photos/a+b c.jpg", "a\u{1}b", "고양이/사진 1.png", ""] {
            let token = encode_continuation_token(key);
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode_continuation_token(&token).unwrap(), key);
        }
        // Not base64; not the alphabet; base64 of 0xFF, which is not UTF-8.
        for bad in ["not a token", "%%", "_w"] {
            let err = decode_continuation_token(bad).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::InvalidArgument, "{bad:?}");
        }
    }
}
