//! MAX_CONCURRENT_RESIZES: a resize holds its slot from before it reads the original until its
//! encoder returns, so with every slot taken another miss does not even read its original.
//! Seen through our fault proxy: the first miss's original arrives slowly; the proxy tells
//! whether the second miss's GET came meanwhile.

use std::time::Duration;

use e2e::fault_proxy::{Fault, FaultProxy, Rule};
use e2e::{DeliveryMode, Stack};
use reqwest::Method;

/// How long the first original's body takes to arrive.
const SLOW: Duration = Duration::from_secs(3);

fn jpeg(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

/// Starts a miss for `slots/a.jpg` whose original's body the proxy trickles over [`SLOW`],
/// then, once the proxy has seen that read, a miss for `slots/b.jpg`. Both must end in their
/// images. Returns how long after a's read began the proxy saw b's: with a's slot held
/// until a's body has arrived and been resized, at least [`SLOW`]; with a slot free for b,
/// whatever b's own request took to arrive. An order of events the proxy saw, not a speed.
async fn b_read_after_a_read(slots: &str) -> Duration {
    let store = Stack::start_with(&[], |o| o.upload_samples = false).await;
    for (key, seed) in [("slots/a.jpg", 1), ("slots/b.jpg", 2)] {
        store.put(key, jpeg(seed), "image/jpeg").await;
    }
    let proxy = FaultProxy::start(&store.server.s3_endpoint).await;
    let env = [("MAX_CONCURRENT_RESIZES", slots), ("S3_OPERATION_TIMEOUT_MS", "20000")];
    let stack = Stack::start_with(&env, |o| {
        o.delivery = DeliveryMode::Failover;
        o.s3_endpoint = Some(proxy.url.clone());
        o.upload_samples = false;
    })
    .await;
    proxy.add(Rule::once(Method::GET, "slots/a.jpg", Fault::SlowBody(SLOW)));
    let first = stack.follow(Method::GET, "/300x300/slots/a.jpg");
    let second = async {
        while proxy.requests(&Method::GET, "slots/a.jpg") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stack.follow(Method::GET, "/300x300/slots/b.jpg").await
    };
    let (a, b) = tokio::join!(first, second);
    for (name, chain) in [("a", &a), ("b", &b)] {
        assert_eq!(chain.statuses(), [200], "{name}: {:?}", String::from_utf8_lossy(&chain.body));
        assert_eq!(e2e::inspect(&chain.body), (image::ImageFormat::Jpeg, 300, 300), "{name}");
    }
    let read_of = |key: &str| {
        let seen = proxy.seen();
        let reads: Vec<Duration> =
            seen.iter().filter(|s| s.method == Method::GET && s.key == key).map(|s| s.at).collect();
        assert_eq!(reads.len(), 1, "{key} read once: {seen:?}");
        reads[0]
    };
    read_of("slots/b.jpg").saturating_sub(read_of("slots/a.jpg"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_resize_slot_a_second_miss_waits_before_reading_its_original() {
    let after = b_read_after_a_read("1").await;
    assert!(
        after > SLOW / 2,
        "b read its original {after:?} after a's, while a held the only slot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_slots_the_second_miss_reads_while_the_first_still_reads() {
    let after = b_read_after_a_read("2").await;
    assert!(after < SLOW / 2, "b read its original {after:?} after a's: it waited for a slot");
}
