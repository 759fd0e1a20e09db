//! The load generator of `scripts/load` and `scripts/memory`: loopback only, bounded in count.
//!
//! - `load run --edge URL --s3 URL --bucket B --pid PID --mode M --concurrency C --misses N
//!   --hit-passes P`: uploads the originals (the sample photograph under many keys, and
//!   smaller copies of it as JPEG and PNG), then asks N distinct derivative keys once each
//!   (misses), then the same keys P times more (hits), C requests at a time, as a browser
//!   does (following the 307s). Prints one table row per phase: requests, p50/p99, throughput,
//!   errors, the server's peak RSS. Exits 1 if any request failed: not a 200 in the end, or
//!   not an image of the right format and size, or a hit whose bytes differ from the miss's.
//! - `load upload --s3 URL --bucket B --original FILE --copies N`: the original under
//!   `burst/{i}` for `burst`, uploaded before the server that takes the burst starts, so the
//!   uploads count nothing in its peak RSS.
//! - `load burst --edge URL --pid PID --original FILE --copies N --size S`: N misses at once,
//!   one per copy; prints the latencies, the answers' statuses and the server's peak RSS.
//!   `--cap-mb M` kills the server (SIGKILL, by its pid) if its RSS passes M MB.
//! - `load serve --data-dir DIR [--delivery M]`: the devserver's stack in this process, as
//!   `devserver` starts it, but passing every variable of the resizer through from the
//!   environment (the `devserver` binary does not pass MAX_CONCURRENT_RESIZES,
//!   RESIZE_BUDGET_MS nor ERROR_CACHE_SECONDS). Prints `serving EDGE S3 BUCKET` when up.
//!
//! The server's RSS is read from /proc/PID/status: VmRSS sampled every 10 ms during a phase
//! (the phase's own peak) and VmHWM after it (the process's peak so far).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use image::ImageDecoder;
use resizer::key::{parse_size, Size};
use resizer::pipeline::Limits;

/// The sizes asked in `run`: each original at each size is one distinct derivative key.
const SIZES: [&str; 10] =
    ["160x", "320x", "480x", "640x", "800x", "1024x", "x240", "100x100", "200x200", "300x300"];

/// How many keys each original of `run` is uploaded under.
const PHOTO_COPIES: usize = 24;
const SMALL_COPIES: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let opts = Opts::parse(args)?;
    match command.as_str() {
        "run" => run(&opts).await,
        "upload" => upload(&opts).await,
        "burst" => burst(&opts).await,
        "serve" => serve(&opts).await,
        "header" => {
            println!("{HEADER}");
            Ok(())
        }
        other => bail!("unknown command {other:?}: run, upload, burst, serve or header"),
    }
}

/// `--name value` pairs.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        while let Some(name) = args.next() {
            let Some(name) = name.strip_prefix("--") else { bail!("expected --name, got {name}") };
            let value = args.next().with_context(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value);
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.0.get(name).map(String::as_str).with_context(|| format!("--{name} is required"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| anyhow::anyhow!("--{name} {v}: {e}")),
        }
    }
}

fn s3(opts: &Opts) -> anyhow::Result<(aws_sdk_s3::Client, String)> {
    let client = devserver::s3_client(
        opts.get("s3")?,
        devserver::DEFAULT_ACCESS_KEY,
        devserver::DEFAULT_SECRET_KEY,
        None,
    );
    Ok((client, opts.get("bucket").unwrap_or("images").to_owned()))
}

async fn put(s3: &(aws_sdk_s3::Client, String), key: &str, body: &[u8]) -> anyhow::Result<()> {
    let content_type = match image::guess_format(body)? {
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::Gif => "image/gif",
        _ => "image/jpeg",
    };
    s3.0.put_object()
        .bucket(&s3.1)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .with_context(|| format!("uploading {key}"))?;
    Ok(())
}

/// An original: its bytes' format and its size as displayed (EXIF orientation applied).
#[derive(Clone, Copy)]
struct Shape {
    format: image::ImageFormat,
    width: u32,
    height: u32,
}

fn shape(bytes: &[u8]) -> anyhow::Result<Shape> {
    let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let format = reader.format().context("an image format")?;
    let mut decoder = reader.into_decoder()?;
    let (w, h) = decoder.dimensions();
    let swaps = matches!(
        decoder.orientation()?,
        image::metadata::Orientation::Rotate90
            | image::metadata::Orientation::Rotate270
            | image::metadata::Orientation::Rotate90FlipH
            | image::metadata::Orientation::Rotate270FlipH
    );
    let (width, height) = if swaps { (h, w) } else { (w, h) };
    Ok(Shape { format, width, height })
}

/// What a derivative of `original` at `size` must be.
fn expected(original: Shape, size: Size) -> Shape {
    let (width, height) = resizer::geometry::output_size(original.width, original.height, size);
    Shape { width, height, ..original }
}

/// One request as a browser makes it: the 307s followed (at most 5), the image checked.
struct Outcome {
    ms: f64,
    result: Result<u64, String>,
    edge_hit: bool,
    status: u16,
}

async fn fetch(http: &reqwest::Client, url: String, want: Shape) -> Outcome {
    let start = Instant::now();
    let mut url = match reqwest::Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return failed(start, 0, format!("{url}: {e}")),
    };
    for _ in 0..=5 {
        let resp = match http.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => return failed(start, 0, format!("{url}: {e}")),
        };
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let next = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            match next {
                Some(next) => url = next,
                None => return failed(start, status, format!("{url}: {status} without Location")),
            }
            continue;
        }
        let edge_hit =
            resp.headers().get("x-cache").is_some_and(|v| v.as_bytes().starts_with(b"Hit"));
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return failed(start, status, format!("{url}: body: {e}")),
        };
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Outcome {
                ms,
                result: Err(format!("{url}: {status} {text}")),
                edge_hit,
                status,
            };
        }
        let result = match shape(&body) {
            Ok(got)
                if (got.format, got.width, got.height)
                    == (want.format, want.width, want.height) =>
            {
                let mut h = DefaultHasher::new();
                body.hash(&mut h);
                Ok(h.finish())
            }
            Ok(got) => Err(format!(
                "{url}: a {:?} {}x{}, expected a {:?} {}x{}",
                got.format, got.width, got.height, want.format, want.width, want.height
            )),
            Err(e) => Err(format!("{url}: not an image: {e}")),
        };
        return Outcome { ms, result, edge_hit, status };
    }
    failed(start, 307, format!("{url}: more than 5 redirects"))
}

fn failed(start: Instant, status: u16, message: String) -> Outcome {
    Outcome {
        ms: start.elapsed().as_secs_f64() * 1e3,
        result: Err(message),
        edge_hit: false,
        status,
    }
}

/// A value of /proc/PID/status, in kB (0 once the process is gone).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the server's VmRSS every 10 ms until dropped; `cap_kb` > 0: kills it past that.
struct Sampler {
    peak_kb: Arc<AtomicU64>,
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start(pid: u32, cap_kb: u64) -> Self {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let (killed, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (peak, kill, halt) = (peak_kb.clone(), killed.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let rss = proc_kb(pid, "VmRSS");
                peak.fetch_max(rss, Ordering::Relaxed);
                if cap_kb > 0 && rss > cap_kb && !kill.swap(true, Ordering::Relaxed) {
                    eprintln!("load: the server's RSS passed {} MB: killing {pid}", cap_kb / 1024);
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { peak_kb, killed, stop }
    }

    fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A client that follows no redirect itself; each request given up after `timeout`.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()?)
}

const HEADER: &str = "| mode | concurrency | phase | requests | p50 ms | p99 ms | req/s | errors | edge hits | phase peak RSS MB | VmHWM MB |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The originals of `run`: (key, bytes, shape).
fn originals() -> anyhow::Result<Vec<(String, Vec<u8>, Shape)>> {
    let photo = std::fs::read("samples/seeding.jpg")
        .context("samples/seeding.jpg (run from the repository)")?;
    let limits =
        Limits { max_source_bytes: 50_000_000, max_source_pixels: 50_000_000, ..Limits::default() };
    let smaller = |size| -> anyhow::Result<Vec<u8>> {
        Ok(resizer::pipeline::resize(&photo, parse_size(size, 4096)?, &limits)?.bytes)
    };
    let medium = smaller("2048x")?;
    let small = smaller("640x")?;
    let mut png = Vec::new();
    image::load_from_memory(&smaller("1024x")?)?
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
    let mut all = Vec::new();
    for i in 0..PHOTO_COPIES {
        all.push((format!("load/photo-{i}.jpg"), photo.clone()));
    }
    for i in 0..SMALL_COPIES {
        all.push((format!("load/medium-{i}.jpg"), medium.clone()));
        all.push((format!("load/small-{i}.jpg"), small.clone()));
        all.push((format!("load/png-{i}.png"), png.clone()));
    }
    all.into_iter()
        .map(|(key, bytes)| {
            let s = shape(&bytes)?;
            Ok((key, bytes, s))
        })
        .collect()
}

async fn run(opts: &Opts) -> anyhow::Result<()> {
    let edge = opts.get("edge")?.trim_end_matches('/').to_owned();
    let pid: u32 = opts.num("pid", 0)?;
    let mode = opts.get("mode").unwrap_or("redirect").to_owned();
    let concurrency: usize = opts.num("concurrency", 1)?;
    let originals = originals()?;
    let most = originals.len() * SIZES.len();
    let misses: usize = opts.num("misses", most)?;
    if misses > most {
        bail!("--misses {misses}: at most {most} distinct keys");
    }
    let hit_passes: usize = opts.num("hit-passes", 2)?;
    let store = s3(opts)?;
    for (key, bytes, _) in &originals {
        put(&store, key, bytes).await?;
    }
    // Request i: original i mod O at size i div O: every key distinct.
    let keys: Vec<(String, Shape)> = (0..misses)
        .map(|i| {
            let (original, _, shape) = &originals[i % originals.len()];
            let size = parse_size(SIZES[i / originals.len()], 4096).expect("a size");
            (format!("{edge}/{size}/{original}"), expected(*shape, size))
        })
        .collect();
    let http = http_client(Duration::from_secs(120))?;
    let mut first: HashMap<String, u64> = HashMap::new();
    let mut errors_total = 0;
    for (phase, passes) in [("misses", 1), ("hits", hit_passes)] {
        let jobs: Vec<(String, Shape)> = (0..passes).flat_map(|_| keys.iter().cloned()).collect();
        let sampler = Sampler::start(pid, 0);
        let started = Instant::now();
        let outcomes: Vec<(String, Outcome)> = futures::stream::iter(jobs)
            .map(|(url, want)| {
                let http = http.clone();
                async move {
                    let outcome = fetch(&http, url.clone(), want).await;
                    (url, outcome)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let wall = started.elapsed().as_secs_f64();
        let phase_peak = sampler.peak_mb();
        drop(sampler);
        let mut ms: Vec<f64> = outcomes.iter().map(|(_, o)| o.ms).collect();
        ms.sort_by(f64::total_cmp);
        let mut errors = Vec::new();
        for (url, outcome) in &outcomes {
            match (&outcome.result, phase) {
                (Err(e), _) => errors.push(e.clone()),
                (Ok(hash), "misses") => {
                    first.insert(url.clone(), *hash);
                }
                (Ok(hash), _) => {
                    if first.get(url) != Some(hash) {
                        errors.push(format!("{url}: the hit's bytes differ from the miss's"));
                    }
                }
            }
        }
        let edge_hits = outcomes.iter().filter(|(_, o)| o.edge_hit).count();
        println!(
            "| {mode} | {concurrency} | {phase} | {} | {:.2} | {:.2} | {:.0} | {} | {edge_hits} | {phase_peak:.0} | {:.0} |",
            outcomes.len(),
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            outcomes.len() as f64 / wall,
            errors.len(),
            proc_kb(pid, "VmHWM") as f64 / 1024.0,
        );
        for e in errors.iter().take(5) {
            eprintln!("load: {phase}: {e}");
        }
        errors_total += errors.len();
    }
    if errors_total > 0 {
        bail!("{errors_total} requests failed");
    }
    Ok(())
}

async fn upload(opts: &Opts) -> anyhow::Result<()> {
    let original = std::fs::read(opts.get("original")?)?;
    let copies: usize = opts.num("copies", 64)?;
    let store = s3(opts)?;
    let ext = extension(&original)?;
    for i in 0..copies {
        put(&store, &format!("burst/{i}.{ext}"), &original).await?;
    }
    Ok(())
}

fn extension(bytes: &[u8]) -> anyhow::Result<&'static str> {
    Ok(match image::guess_format(bytes)? {
        image::ImageFormat::Png => "png",
        image::ImageFormat::Gif => "gif",
        _ => "jpg",
    })
}

async fn burst(opts: &Opts) -> anyhow::Result<()> {
    let edge = opts.get("edge")?.trim_end_matches('/').to_owned();
    let pid: u32 = opts.num("pid", 0)?;
    let original = std::fs::read(opts.get("original")?)?;
    let copies: usize = opts.num("copies", 64)?;
    let size = parse_size(opts.get("size")?, 4096)?;
    let cap_mb: u64 = opts.num("cap-mb", 0)?;
    let label = opts.get("label").unwrap_or("");
    let want = expected(shape(&original)?, size);
    let ext = extension(&original)?;
    // The last of 64 50 MP misses waits for the 63 before it: minutes on 2 shared cores.
    let http = http_client(Duration::from_secs(600))?;
    let before = proc_kb(pid, "VmHWM") as f64 / 1024.0;
    let sampler = Sampler::start(pid, cap_mb * 1024);
    let started = Instant::now();
    let outcomes: Vec<Outcome> = futures::future::join_all(
        (0..copies).map(|i| fetch(&http, format!("{edge}/{size}/burst/{i}.{ext}"), want)),
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let after = proc_kb(pid, "VmHWM") as f64 / 1024.0;
    let (peak, killed) = (sampler.peak_mb(), sampler.killed.load(Ordering::Relaxed));
    drop(sampler);
    let mut s: Vec<f64> = outcomes.iter().map(|o| o.ms / 1e3).collect();
    s.sort_by(f64::total_cmp);
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for o in &outcomes {
        let key = match &o.result {
            Ok(_) => "200 ok".to_owned(),
            Err(_) if o.status == 0 => "no answer".to_owned(),
            Err(e) => format!("{} {}", o.status, error_code(e)),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let mut statuses: Vec<_> = statuses.into_iter().map(|(k, n)| format!("{n}x {k}")).collect();
    statuses.sort();
    println!(
        "| {label} | {copies} | {} | {:.1} | {:.1} | {:.1} | {wall:.1} | {before:.0} | {peak:.0} | {} |",
        statuses.join(", "),
        s.first().copied().unwrap_or(f64::NAN),
        percentile(&s, 50.0),
        s.last().copied().unwrap_or(f64::NAN),
        if killed { format!("killed past {cap_mb}") } else { format!("{after:.0}") },
    );
    for o in outcomes.iter().filter_map(|o| o.result.as_ref().err()).take(3) {
        eprintln!("load: burst: {o}");
    }
    let failures = outcomes.iter().filter(|o| o.result.is_err()).count();
    if failures > 0 || killed {
        // Exit status 2: the burst ran, and some answers were not the image.
        std::process::exit(2);
    }
    Ok(())
}

/// The `code` of a JSON error answer, if the message carries one.
fn error_code(message: &str) -> String {
    message
        .split("\"code\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_owned()
}

/// No tracing subscriber (the `devserver` binary logs each request at info): both settings
/// of a burst run on this host, so they compare like with like.
async fn serve(opts: &Opts) -> anyhow::Result<()> {
    let rules = std::fs::read_to_string(devserver::RULES_PATH).context("website-rules.json")?;
    let mut o = devserver::Options::new(rules);
    e2e::ephemeral(&mut o);
    o.delivery = opts.get("delivery").unwrap_or("redirect").parse().map_err(anyhow::Error::msg)?;
    o.data_dir = opts.get("data-dir")?.into();
    o.upload_samples = false;
    o.resizer_env = devserver::RESIZER_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    let server = devserver::DevServer::start(o).await?;
    println!("serving {} {} {}", server.website_url, server.s3_endpoint, server.bucket);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
