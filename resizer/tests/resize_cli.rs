//! The `resize` CLI runs the Lambda's pipeline on files, with its limits and error codes.

use std::path::Path;
use std::process::{Command, Output};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/seeding.jpg");

fn resize(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resize"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("the resize binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dimensions(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
    decoder.read_info().unwrap();
    let info = decoder.info().unwrap();
    (u32::from(info.width), u32::from(info.height))
}

#[test]
fn one_file_gets_exactly_the_lambdas_derivative() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("thumb.jpg");
    let out = resize(&[SAMPLE, "300x300", "-o", dst.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dimensions(&dst), (300, 300));
    let source = std::fs::read(SAMPLE).unwrap();
    let settings = resizer::config::ImageSettings::from_lookup(|_| None).unwrap();
    let size = resizer::key::parse_size("300x300", 4096).unwrap();
    let lambda = resizer::pipeline::resize(&source, size, &settings.limits).unwrap();
    assert_eq!(
        std::fs::read(&dst).unwrap(),
        lambda.bytes,
        "byte-identical to the pipeline's output"
    );

    let wide = dir.path().join("wide.jpg");
    assert!(resize(&[SAMPLE, "640x", "-o", wide.to_str().unwrap()], &[]).status.success());
    assert_eq!(dimensions(&wide), (640, 360));
}

#[test]
fn failures_exit_1_with_the_lambdas_error_code_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out.jpg");
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "not an image").unwrap();
    let d = dst.to_str().unwrap();
    for (args, env, code) in [
        (vec![SAMPLE, "300y300", "-o", d], vec![], "invalid-key"),
        (vec![SAMPLE, "9000x", "-o", d], vec![], "invalid-key"),
        (
            vec![SAMPLE, "300x300", "-o", d],
            vec![("ALLOWED_RESOLUTIONS", "640x")],
            "resolution-not-allowed",
        ),
        (vec![SAMPLE, "300x300", "-o", d], vec![("MAX_SOURCE_BYTES", "1000")], "source-too-large"),
        (
            vec![SAMPLE, "300x300", "-o", d],
            vec![("MAX_SOURCE_PIXELS", "1000000")],
            "source-too-large",
        ),
        (
            vec![SAMPLE, "4000x4000", "-o", d],
            vec![("MAX_SOURCE_PIXELS", "1000000")],
            "output-too-large",
        ),
        (vec![text.to_str().unwrap(), "300x300", "-o", d], vec![], "unsupported-image"),
        (vec!["/no/such/file.jpg", "300x300", "-o", d], vec![], "original-not-found"),
        (vec![SAMPLE, "300x300", "-o", d], vec![("MAX_DIMENSION", "0")], "invalid-configuration"),
    ] {
        let out = resize(&args, &env);
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}");
        assert!(
            stderr(&out).starts_with(&format!("resize: {code}: ")),
            "{args:?} {env:?}: {}",
            stderr(&out)
        );
        assert!(!dst.exists(), "{args:?}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only notes.jpg: no temporary files left"
    );

    // The original is never the output.
    let copy = dir.path().join("copy.jpg");
    std::fs::copy(SAMPLE, &copy).unwrap();
    let out = resize(&[copy.to_str().unwrap(), "300x300", "-o", copy.to_str().unwrap()], &[]);
    assert!(stderr(&out).contains("invalid-output"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(SAMPLE).unwrap());
}

#[test]
fn batch_mirrors_the_bucket_layout_keeps_existing_outputs_and_reports_failures() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("photos/2026")).unwrap();
    std::fs::copy(SAMPLE, src.path().join("photos/cat.jpg")).unwrap();
    std::fs::copy(SAMPLE, src.path().join("photos/2026/dog.jpg")).unwrap();
    std::fs::write(src.path().join("photos/readme.txt"), "hello").unwrap();
    let args = [
        "batch",
        src.path().to_str().unwrap(),
        "--sizes",
        "300x300,640x",
        "--out",
        out.path().to_str().unwrap(),
    ];
    let first = resize(&args, &[]);
    assert_eq!(first.status.code(), Some(1), "the text file fails");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "4 written, 0 already there, 2 failed"
    );
    assert_eq!(stderr(&first).matches("unsupported-image").count(), 2, "{}", stderr(&first));
    assert_eq!(dimensions(&out.path().join("300x300/photos/cat.jpg")), (300, 300));
    assert_eq!(dimensions(&out.path().join("640x/photos/2026/dog.jpg")), (640, 360));

    std::fs::remove_file(src.path().join("photos/readme.txt")).unwrap();
    std::fs::write(out.path().join("640x/photos/cat.jpg"), "kept").unwrap();
    let second = resize(&args, &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "0 written, 4 already there, 0 failed"
    );
    assert_eq!(std::fs::read(out.path().join("640x/photos/cat.jpg")).unwrap(), b"kept");

    let refused = resize(&args, &[("ALLOWED_RESOLUTIONS", "300x300")]);
    assert!(
        stderr(&refused).starts_with("resize: resolution-not-allowed: 640x"),
        "{}",
        stderr(&refused)
    );
}
