//! The full miss on the devserver, for `scripts/bench`: N distinct originals, each asked
//! once at SIZE (request -> 307 -> resizer -> 307 -> 200 from the embedded store on
//! loopback), CONCURRENCY requests at a time. Prints JSON with p50, p99 and misses/s.
//!
//! Usage: miss_load ORIGINAL SIZE N CONCURRENCY

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use devserver::{DevServer, Options};

async fn miss(http: &reqwest::Client, first: String) -> f64 {
    let start = Instant::now();
    let mut url = first;
    for _ in 0..5 {
        let resp = http.get(&url).send().await.expect("request");
        if resp.status().is_redirection() {
            url = resp.headers()["location"].to_str().expect("location").to_owned();
            continue;
        }
        assert_eq!(resp.status(), 200, "{url}");
        resp.bytes().await.expect("body");
        return start.elapsed().as_secs_f64() * 1e3;
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

    let data = tempfile::tempdir().expect("temporary directory");
    let rules = std::fs::read_to_string(devserver::RULES_PATH).expect("website-rules.json");
    let mut opts = Options::new(rules);
    opts.listen = ([127, 0, 0, 1], 0).into();
    opts.s3_listen = ([127, 0, 0, 1], 0).into();
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
    for w in workers {
        times.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"p50_ms\": {:.1}, \"p99_ms\": {:.1}, \"misses_per_sec\": {:.2}, \"n\": {}}}",
        pct(0.5),
        pct(0.99),
        times.len() as f64 / elapsed,
        times.len()
    );
}
