//! The embedded store speaks S3 as S3 does where the resizer depends on it.

use e2e::Stack;
use resizer::store::{PutOutcome, Store, StoreError};

#[tokio::test]
async fn create_only_writes_never_overwrite_even_when_racing() {
    let stack = Stack::start(&[]).await;
    let store = Store::new(stack.server.client().clone(), stack.server.bucket.clone());
    let writes = (0..16u8).map(|i| {
        let store = store.clone();
        async move {
            let outcome = store
                .put_if_absent(
                    "race/one.bin",
                    vec![i; 64 * 1024],
                    "application/octet-stream",
                    "no-cache",
                )
                .await
                .expect("write answered");
            (i, outcome)
        }
    });
    let results = futures::future::join_all(writes).await;
    let winners: Vec<u8> =
        results.iter().filter(|(_, o)| *o == PutOutcome::Created).map(|(i, _)| *i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let (body, _, _) = stack.get("race/one.bin").await.unwrap();
    assert_eq!(
        &body[..],
        &vec![winners[0]; 64 * 1024][..],
        "the winner's bytes are what is stored"
    );

    // A later create-only write of an existing key changes nothing.
    let again = store
        .put_if_absent("race/one.bin", b"new".to_vec(), "text/plain", "no-cache")
        .await
        .unwrap();
    assert_eq!(again, PutOutcome::AlreadyExisted);
    assert_eq!(&stack.get("race/one.bin").await.unwrap().0[..], &vec![winners[0]; 64 * 1024][..]);
}

#[tokio::test]
async fn missing_objects_and_size_limits_are_normalised_at_the_boundary() {
    let stack = Stack::start(&[]).await;
    let store = Store::new(stack.server.client().clone(), stack.server.bucket.clone());
    assert_eq!(store.get("nope", 10).await, Err(StoreError::NotFound));
    assert!(!store.exists("nope").await.unwrap());
    assert!(store.exists("samples/seeding.jpg").await.unwrap());
    let size = devserver::SAMPLE_PHOTO.len() as u64;
    assert_eq!(
        store.get("samples/seeding.jpg", size - 1).await,
        Err(StoreError::TooLarge { size, limit: size - 1 })
    );
    assert_eq!(store.get("samples/seeding.jpg", size).await.unwrap().len() as u64, size);
}

#[tokio::test]
async fn the_store_rejects_unsigned_and_badly_signed_requests() {
    let stack = Stack::start(&[]).await;
    let url = format!("{}/{}/samples/seeding.jpg", stack.server.s3_endpoint, stack.server.bucket);
    let (hop, _) = stack.request(reqwest::Method::GET, &url).await;
    assert_eq!(hop.status, 403, "anonymous GET must be refused by SigV4 auth");
    let wrong = devserver::s3_client(
        &stack.server.s3_endpoint,
        devserver::DEFAULT_ACCESS_KEY,
        "wrong",
        None,
    );
    let err = wrong
        .get_object()
        .bucket(&stack.server.bucket)
        .key("samples/seeding.jpg")
        .send()
        .await
        .expect_err("wrong secret refused");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}
