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

/// Starts a miss for `slots/a.jpg` whose original trickles in over [`SLOW`], then, once the
/// proxy has seen that read, a miss for `slots/b.jpg`; returns how many GETs of b's original
/// the proxy had seen one second later, while a's read was still under way. Both misses
/// must then end in their images.
async fn reads_of_b_while_a_reads(slots: &str) -> usize {
    let store = Stack::start_with(&[], |o| o.upload_samples = false).await;
    for (key, seed) in [("slots/a.jpg", 1), ("slots/b.jpg", 2)] {
        store.put(key, jpeg(seed), "image/jpeg").await;
    }
    let proxy = FaultProxy::start(&store.server.s3_endpoint).await;
    let env = [("MAX_CONCURRENT_RESIZES", slots), ("S3_OPERATION_TIMEOUT_MS", "10000")];
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
        let later = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            proxy.requests(&Method::GET, "slots/b.jpg")
        };
        tokio::join!(stack.follow(Method::GET, "/300x300/slots/b.jpg"), later)
    };
    let (a, (b, reads_of_b)) = tokio::join!(first, second);
    for (name, chain) in [("a", &a), ("b", &b)] {
        assert_eq!(chain.statuses(), [200], "{name}: {:?}", String::from_utf8_lossy(&chain.body));
        assert_eq!(e2e::inspect(&chain.body), (image::ImageFormat::Jpeg, 300, 300), "{name}");
    }
    reads_of_b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_resize_slot_a_second_miss_waits_before_reading_its_original() {
    assert_eq!(reads_of_b_while_a_reads("1").await, 0, "b read its original with no slot free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_slots_the_second_miss_reads_at_once() {
    assert_eq!(reads_of_b_while_a_reads("2").await, 1);
}
