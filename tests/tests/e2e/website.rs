//! The bucket's website endpoint behaves as S3's, behind the edge as behind CloudFront:
//! stored headers, index document, 304s, rules on miss, and the bucket policy's say in what
//! a miss answers.

use e2e::{template_without_list_bucket, Stack};
use reqwest::Method;

#[tokio::test]
async fn objects_are_served_with_their_stored_headers() {
    let stack = Stack::start(&[]).await;
    let (hop, body) = stack.request(Method::GET, &stack.url("/samples/seeding.jpg")).await;
    assert_eq!(hop.status, 200);
    assert_eq!(hop.headers["content-type"], "image/jpeg");
    assert_eq!(&body[..], devserver::SAMPLE_PHOTO);
    let etag = hop.headers["etag"].to_str().unwrap().to_owned();
    assert!(hop.headers.contains_key("last-modified"));

    let resp = stack
        .http
        .get(stack.url("/samples/seeding.jpg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_index_document_answers_the_root() {
    let stack = Stack::start(&[]).await;
    let (hop, body) = stack.request(Method::GET, &stack.url("/")).await;
    assert_eq!(hop.status, 200);
    assert!(hop.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("300x300/samples/seeding.jpg"));
}

#[tokio::test]
async fn a_miss_outside_the_derivative_grammar_ends_in_a_json_400() {
    // The only rule sends every 404 to the resizer (S3 cannot match on a size pattern), so a
    // missing plain key ends in the resizer's invalid-key answer, not in a loop.
    let stack = Stack::start(&[]).await;
    let chain = stack.follow(Method::GET, "/photos/missing.jpg").await;
    assert_eq!(chain.statuses(), [307, 400]);
    assert_eq!(chain.json()["code"], "invalid-key");
    let chain = stack.follow(Method::GET, "/300x300/samples/missing.jpg").await;
    assert_eq!(chain.statuses(), [307, 404]);
    assert_eq!(chain.json()["code"], "original-not-found");
}

#[tokio::test]
async fn writes_are_refused_by_the_edge_and_by_the_website_endpoint() {
    let stack = Stack::start(&[]).await;
    // The distribution's image behaviours allow GET and HEAD only.
    let (hop, _) = stack.request(Method::PUT, &stack.url("/samples/seeding.jpg")).await;
    assert_eq!(hop.status, 403);
    // The website endpoint itself, with the Referer CloudFront sends.
    let website = stack.server.website_endpoint.clone().unwrap();
    let resp = stack
        .http
        .put(format!("{website}/samples/seeding.jpg"))
        .header("referer", &stack.server.referer_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn misses_reach_the_resizer_only_because_readers_may_list_the_bucket() {
    // With GetObject alone, users of the original AWS sample saw the website endpoint answer
    // a missing key 403, on which no routing rule fires: every miss failed. The template
    // grants ListBucket to the same readers, so a missing key is 404 under every reading.
    let stack = Stack::start_with(&[], |o| o.template = template_without_list_bucket()).await;
    let chain = stack.follow(Method::GET, "/300x300/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), [403], "{chain:#?}");
    assert!(stack.get("300x300/samples/seeding.jpg").await.is_none());

    let stack = Stack::start(&[]).await;
    let chain = stack.follow(Method::GET, "/300x300/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), [307, 307, 200]);
}

#[tokio::test]
async fn rules_without_a_matching_rule_give_s3s_404_page() {
    let rules = r#"{"IndexDocument":{"Suffix":"index.html"},"RoutingRules":[
        {"Condition":{"KeyPrefixEquals":"old/"},"Redirect":{"ReplaceKeyPrefixWith":"samples/","HttpRedirectCode":"302"}}]}"#;
    let stack = Stack::start_with(&[], |o| o.rules_template = rules.into()).await;
    // A rule without HostName keeps the Host of the request it answers, which behind
    // CloudFront is the website endpoint's own: the redirect leaves the distribution, and
    // the endpoint refuses a viewer without the secret Referer (so rules name HostName).
    let chain = stack.follow(Method::GET, "/old/seeding.jpg").await;
    assert_eq!(chain.statuses(), [302, 403]);
    let website = stack.server.website_endpoint.clone().unwrap();
    assert_eq!(
        chain.hops[0].headers["location"],
        format!("{website}/samples/seeding.jpg").as_str()
    );
    let (hop, _) = stack.request(Method::GET, &stack.url("/300x300/samples/seeding.jpg")).await;
    assert_eq!(hop.status, 404);
    assert_eq!(hop.headers["x-amz-error-code"], "NoSuchKey");
}

#[tokio::test]
async fn keys_that_merely_start_like_the_resizers_route_are_the_buckets() {
    // The resizer's behaviour is `/resize/*`: `resized/...` and `resize.jpg` are objects.
    let stack = Stack::start(&[]).await;
    for key in ["resized/photo.jpg", "resize.jpg", "resizer/a.jpg"] {
        stack.put(key, devserver::SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
        let chain = stack.follow(Method::GET, &format!("/{key}")).await;
        assert_eq!(chain.statuses(), [200], "{key}");
        assert_eq!(&chain.body[..], devserver::SAMPLE_PHOTO, "{key}");
    }
}
