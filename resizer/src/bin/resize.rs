//! `resize`: the Lambda's pipeline on local files, with the same limits and error codes.
//!
//! - `resize SRC SIZE -o DST` writes one derivative (SIZE as in a derivative key: `300x300`,
//!   `640x`, `x480`, or with a format, `640x.avif`).
//! - `resize batch DIR --sizes 300x300,640x --out OUT` pre-generates sizes for every file
//!   under DIR as `OUT/{size}/{relative path}`, the bucket's own layout (sync it with
//!   `aws s3 sync OUT s3://bucket/`). Existing outputs are kept, as the Lambda never
//!   overwrites a derivative.
//!
//! MAX_DIMENSION, ALLOWED_RESOLUTIONS, ALLOWED_FORMATS and the MAX_SOURCE_* limits are read
//! from the environment as the Lambda reads them. Failures print `resize: {code}: {message}` and
//! exit with status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use resizer::config::ImageSettings;
use resizer::handler::{admit, ApiError};
use resizer::key::{parse_size_segment, SizeSegment};
use resizer::pipeline;

#[derive(Parser)]
#[command(
    about = "Resize images with the resizer Lambda's pipeline",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The original.
    src: Option<PathBuf>,
    /// The size, as in a derivative key: 300x300, 640x, x480, 640x.avif.
    size: Option<String>,
    /// Where to write the derivative.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-generate sizes for every file under a directory.
    Batch {
        /// The directory of originals (searched recursively).
        dir: PathBuf,
        /// Comma-separated sizes.
        #[arg(long, value_delimiter = ',', required = true)]
        sizes: Vec<String>,
        /// The output directory: OUT/{size}/{relative path}.
        #[arg(long)]
        out: PathBuf,
        /// Parallel workers (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// One failure, with the Lambda's code for it.
struct Failure {
    code: &'static str,
    message: String,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self { code: e.code(), message: e.to_string() }
    }
}

fn parse_checked_size(token: &str, settings: &ImageSettings) -> Result<SizeSegment, Failure> {
    let segment = parse_size_segment(token, settings.max_dimension)
        .map_err(|e| ApiError::InvalidKey(e.into()))?;
    admit(segment, &settings.allowed, &settings.formats, &settings.limits)?;
    Ok(segment)
}

/// Resizes `src` to `size` and writes `dst` (through a temporary file, so a failure never
/// leaves a partial image behind).
fn resize_file(
    src: &Path,
    size: SizeSegment,
    dst: &Path,
    settings: &ImageSettings,
) -> Result<(u32, u32), Failure> {
    let meta = std::fs::metadata(src).map_err(|e| Failure {
        code: "original-not-found",
        message: format!("{}: {e}", src.display()),
    })?;
    if meta.len() > settings.limits.max_source_bytes {
        return Err(ApiError::SourceTooLarge(format!(
            "{} is {} bytes, limit (MAX_SOURCE_BYTES) {}",
            src.display(),
            meta.len(),
            settings.limits.max_source_bytes
        ))
        .into());
    }
    let bytes = std::fs::read(src).map_err(|e| Failure {
        code: "original-not-found",
        message: format!("{}: {e}", src.display()),
    })?;
    let derivative = pipeline::resize_to(&bytes, size.size, size.format, &settings.limits)
        .map_err(ApiError::from)?;
    let write_failed = |e: std::io::Error| Failure {
        code: "output-write-failed",
        message: format!("{}: {e}", dst.display()),
    };
    if let Some(parent) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_failed)?;
    }
    let tmp = dst.with_extension("resize-tmp");
    std::fs::write(&tmp, &derivative.bytes).map_err(write_failed)?;
    std::fs::rename(&tmp, dst).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_failed(e)
    })?;
    Ok((derivative.width, derivative.height))
}

fn single(src: &Path, size: &str, dst: &Path, settings: &ImageSettings) -> Result<(), Failure> {
    let size = parse_checked_size(size, settings)?;
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(Failure {
                code: "invalid-output",
                message: "the output would overwrite the original".into(),
            });
        }
    }
    resize_file(src, size, dst, settings)?;
    Ok(())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn batch(
    dir: &Path,
    sizes: &[String],
    out: &Path,
    jobs: Option<usize>,
    settings: &ImageSettings,
) -> ExitCode {
    let mut parsed = Vec::new();
    for token in sizes {
        match parse_checked_size(token.trim(), settings) {
            Ok(size) => parsed.push(size),
            Err(f) => return fail(&f),
        }
    }
    let mut files = Vec::new();
    if let Err(e) = files_under(dir, &mut files) {
        return fail(&Failure {
            code: "original-not-found",
            message: format!("{}: {e}", dir.display()),
        });
    }
    files.sort();
    let work: Vec<(PathBuf, SizeSegment, PathBuf)> = files
        .iter()
        .flat_map(|file| {
            let relative = file.strip_prefix(dir).unwrap_or(file).to_owned();
            parsed
                .iter()
                .map(move |size| (file.clone(), *size, out.join(size.to_string()).join(&relative)))
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let (made, kept) =
        (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0));
    let workers = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((src, size, dst)) = work.get(i) else { break };
                if dst.exists() {
                    kept.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                match resize_file(src, *size, dst, settings) {
                    Ok(_) => {
                        made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(f) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        eprintln!("resize: {} {size}: {}: {}", src.display(), f.code, f.message);
                    }
                }
            });
        }
    });
    let failed = failures.into_inner();
    println!("{} written, {} already there, {failed} failed", made.into_inner(), kept.into_inner());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(f: &Failure) -> ExitCode {
    eprintln!("resize: {}: {}", f.code, f.message);
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match ImageSettings::from_lookup(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => return fail(&Failure { code: "invalid-configuration", message: e.to_string() }),
    };
    match cli.command {
        Some(Command::Batch { dir, sizes, out, jobs }) => {
            batch(&dir, &sizes, &out, jobs, &settings)
        }
        None => {
            let (Some(src), Some(size), Some(dst)) = (cli.src, cli.size, cli.output) else {
                eprintln!("usage: resize SRC SIZE -o DST | resize batch DIR --sizes 300x300,640x --out OUT");
                return ExitCode::from(2);
            };
            match single(&src, &size, &dst, &settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => fail(&f),
            }
        }
    }
}
