//! The full miss on the devserver, for `scripts/bench` and `scripts/bench-delivery`: N
//! distinct originals, each asked once at SIZE through the edge, CONCURRENCY requests at a
//! time, in MODE (redirect: request -> 307 -> resizer -> 307 -> 200; failover: request ->
//! the bucket's 404 -> the resizer's 200). Prints JSON with p50, p99, misses/s and the
//! viewer's round trips per miss.
//!
//! Usage: miss_load ORIGINAL SIZE N CONCURRENCY [redirect|failover]

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use devserver::{DevServer, Options};

/// One miss: its time in ms and the viewer's round trips.
async fn miss(http: &reqwest::Client, first: String) -> (f64, usize) {
    let start = Instant::now();
    let mut url = reqwest::Url::parse(&first).expect("URL");
    for trip in 1..=5 {
        let resp = http.get(url.clone()).send().await.expect("request");
        if resp.status().is_redirection() {
            let location = resp.headers()["location"].to_str().expect("location").to_owned();
            url = url.join(&location).expect("a Location");
            continue;
        }
        assert_eq!(resp.status(), 200, "{url}");
        resp.bytes().await.expect("body");
        return (start.elapsed().as_secs_f64() * 1e3, trip);
    }
    panic!("too many redirects for {url}");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let original = std::fs::read(&args[1]).expect("original");
    let size = args[2].clone();
    let n: usize = args[3].parse().expect("N");
    let concurrency: usize = args[4].parse().expect("CONCURRENCY");
    let mode: keyspace::DeliveryMode =
        args.get(5).map_or(Ok(Default::default()), |m| m.parse()).expect("MODE");

    let data = tempfile::tempdir().expect("temporary directory");
    let rules = std::fs::read_to_string(devserver::RULES_PATH).expect("website-rules.json");
    let mut opts = Options::new(rules);
    opts.delivery = mode;
    for addr in [
        &mut opts.listen,
        &mut opts.s3_listen,
        &mut opts.website_listen,
        &mut opts.api_listen,
        &mut opts.function_url_listen,
        &mut opts.idp_listen,
    ] {
        *addr = ([127, 0, 0, 1], 0).into();
    }
    opts.data_dir = data.path().to_owned();
    opts.upload_samples = false;
    let server = DevServer::start(opts).await.expect("devserver");
    let warmup = 2;
    for i in 0..n + warmup {
        server
            .client()
            .put_object()
            .bucket(&server.bucket)
            .key(format!("bench/{i}.jpg"))
            .content_type("image/jpeg")
            .body(ByteStream::from(original.clone()))
            .send()
            .await
            .expect("upload");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = Arc::new(format!("{}/{size}/bench", server.website_url));
    let url = {
        let base = base.clone();
        move |i: usize| format!("{base}/{i}.jpg")
    };
    for i in n..n + warmup {
        miss(&http, url(i)).await;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, next, url) = (http.clone(), next.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return times;
                }
                times.push(miss(&http, url(i)).await);
            }
        }));
    }
    let mut times = Vec::new();
    let mut trips = 0;
    for w in workers {
        for (ms, t) in w.await.expect("worker") {
            times.push(ms);
            trips = t;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"mode\": \"{mode}\", \"p50_ms\": {:.1}, \"p99_ms\": {:.1}, \"misses_per_sec\": {:.2}, \"n\": {}, \"round_trips\": {trips}}}",
        pct(0.5),
        pct(0.99),
        times.len() as f64 / elapsed,
        times.len()
    );
}
