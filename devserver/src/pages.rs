//! The demo pages (`devserver/pages/`): plain HTML, CSS and JavaScript compiled into the
//! binary and published into the bucket at start-up, so the website endpoint serves them
//! from the same origin as the images and `/api/` (the signer's cookies and the pages'
//! `fetch` calls need that), as a deployment would put them in the bucket behind the same
//! CloudFront distribution.
//!
//! - `/index.html`: what the devserver is, links to the pages;
//! - `/pages/gallery.html`: a public responsive gallery (`srcset`/`sizes` over `320x`, `640x`,
//!   `1024x`, a `200x200` thumbnail grid) and the snippet to copy;
//! - `/pages/private.html`: sign in, signed cookies for a private gallery, images that open;
//! - `/pages/upload.html`: presigned POST or multipart upload straight to the store, with
//!   progress, then the new image at two sizes.

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;

/// One page or asset: its key in the bucket, its bytes and its Content-Type.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The object key (the URL path without its leading `/`).
    pub key: &'static str,
    /// The file's bytes, as of this build.
    pub body: &'static [u8],
    /// Content-Type stored with it.
    pub content_type: &'static str,
}

macro_rules! page {
    ($key:literal, $file:literal, $type:literal) => {
        Page { key: $key, body: include_bytes!(concat!("../pages/", $file)), content_type: $type }
    };
}

/// Every page and asset.
pub const PAGES: &[Page] = &[
    page!("index.html", "index.html", "text/html; charset=utf-8"),
    page!("pages/gallery.html", "gallery.html", "text/html; charset=utf-8"),
    page!("pages/private.html", "private.html", "text/html; charset=utf-8"),
    page!("pages/upload.html", "upload.html", "text/html; charset=utf-8"),
    page!("pages/pages.css", "pages.css", "text/css; charset=utf-8"),
    page!("pages/api.js", "api.js", "text/javascript; charset=utf-8"),
    page!("pages/gallery.js", "gallery.js", "text/javascript; charset=utf-8"),
    page!("pages/private.js", "private.js", "text/javascript; charset=utf-8"),
    page!("pages/upload.js", "upload.js", "text/javascript; charset=utf-8"),
];

/// Writes every page into the bucket, and `pages/config.js` naming the identity provider
/// the pages sign in with. Unlike the samples these are overwritten at each start: they
/// are this build's code, and a data directory kept from an older build would otherwise
/// serve stale pages.
pub async fn publish(client: &aws_sdk_s3::Client, bucket: &str, idp: &str) -> anyhow::Result<()> {
    let config = format!(
        "// Written by the devserver at start-up: where the pages sign in.\nexport const IDP = {};\n",
        serde_json::Value::String(idp.to_owned())
    );
    client
        .put_object()
        .bucket(bucket)
        .key("pages/config.js")
        .content_type("text/javascript; charset=utf-8")
        .cache_control("no-cache")
        .body(ByteStream::from(config.into_bytes()))
        .send()
        .await
        .context("publishing pages/config.js")?;
    for page in PAGES {
        client
            .put_object()
            .bucket(bucket)
            .key(page.key)
            .content_type(page.content_type)
            .cache_control("no-cache")
            .body(ByteStream::from_static(page.body))
            .send()
            .await
            .with_context(|| format!("publishing {}", page.key))?;
    }
    Ok(())
}
