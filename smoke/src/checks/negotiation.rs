//! Format negotiation at the edge: a sized path without a format, asked by a browser whose
//! `Accept` takes AVIF, answers AVIF with `Vary: Accept`, stored under the negotiated key
//! (`{size}.avif/...`), and a second request for it is served without the resizer.

use bytes::Bytes;
use http::Method;

use super::{derivative, names, path, CheckError, Findings, Smoke};
use crate::report::Outcome;
use crate::web::{resolve, Reply};

/// What Chrome sends for an `<img>`.
pub const AVIF_ACCEPT: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

/// The redirect chain of `url` as a browser follows it for an image: the same `Accept` on
/// every hop.
async fn follow_accepting(smoke: &Smoke<'_>, url: &str) -> Result<Vec<Reply>, CheckError> {
    let mut current = url.to_owned();
    let mut hops = Vec::new();
    for _ in 0..5 {
        let reply =
            smoke.web.send(Method::GET, &current, &[("accept", AVIF_ACCEPT)], Bytes::new()).await?;
        let location = reply.headers.get(http::header::LOCATION).cloned();
        let redirect = (300..400).contains(&reply.status);
        hops.push(reply);
        match location.filter(|_| redirect) {
            Some(location) => current = resolve(&current, location.as_bytes())?,
            None => break,
        }
    }
    Ok(hops)
}

/// `GET /{size}/smoke/{run}/negotiated.jpg` with Chrome's Accept, followed: `image/avif`
/// with `Vary: Accept`, `{size}.avif/...` in the bucket, then the same request a 200 at
/// once. A JPEG without Vary stored under `{size}/...` is FormatNegotiation=off (INFO).
pub async fn avif_for_an_avif_browser(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let original = smoke.public_key("negotiated.jpg");
        smoke.bucket.put(&original, smoke.photo.clone(), "image/jpeg").await?;
        let size = smoke.options.size;
        let asked = derivative(size, &original);
        let negotiated = format!("{size}.avif/{original}");
        let hops = follow_accepting(smoke, &smoke.url(&path(&asked))).await?;
        let last = hops.last().expect("one hop at least");
        let content_type = last.header("content-type").unwrap_or_default();
        let vary = last.header("vary");
        let statuses: Vec<String> = hops.iter().map(|h| h.status.to_string()).collect();
        let mut findings = Findings::default();
        findings.saw(format!(
            "{}: {content_type}, Vary {}",
            statuses.join(" -> "),
            vary.as_deref().unwrap_or("none")
        ));
        if last.status == 200
            && content_type == "image/jpeg"
            && vary.is_none()
            && smoke.bucket.exists(&asked).await?
        {
            findings.saw("not negotiated: FormatNegotiation is off");
            return Ok((Outcome::Info, findings.verdict().1));
        }
        let expected = smoke.miss_statuses();
        let got: Vec<u16> = hops.iter().map(|h| h.status).collect();
        findings.expect(got == expected, format!("the miss's statuses {expected:?}"));
        findings.expect(content_type == "image/avif", "Content-Type image/avif");
        findings.expect(
            image::guess_format(&last.body).ok() == Some(image::ImageFormat::Avif),
            "an AVIF body",
        );
        findings.expect(vary.as_deref() == Some("Accept"), "Vary: Accept");
        let stored = smoke.bucket.exists(&negotiated).await?;
        findings.expect(stored, format!("{negotiated} in the bucket"));
        if stored {
            findings.saw(format!("stored as {negotiated}"));
        }
        let again = follow_accepting(smoke, &smoke.url(&path(&asked))).await?;
        let statuses: Vec<u16> = again.iter().map(|h| h.status).collect();
        findings.saw(format!("again: {statuses:?} ({})", again[0].x_cache()));
        findings.expect(statuses == [200], "the second request a 200 at once");
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::NEGOTIATION, verdict);
}
