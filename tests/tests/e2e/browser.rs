//! A real browser (headless Chromium) opens a page of sized `<img>` tags whose derivatives
//! do not exist yet, follows the redirect chains and decodes the thumbnails.

use e2e::Stack;

/// Loads `url` headless and returns the DOM after the load event.
async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(crate::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}); install Debian's chromium package", crate::chromium())
        });
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_thumbnails_that_did_not_exist_a_moment_before() {
    let stack = Stack::start(&[]).await;
    let page =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/browser-check.html")).unwrap();
    stack.put("browser-check.html", page, "text/html; charset=utf-8").await;
    for key in
        ["300x300/samples/seeding.jpg", "x120/samples/seeding.jpg", "320x/samples/seeding.jpg"]
    {
        assert!(stack.get(key).await.is_none(), "{key} must not exist before the browser asks");
    }

    let dom = dump_dom(&stack.url("/browser-check.html")).await;
    let result = dom
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the DOM:\n{dom}"));
    let lines: Vec<&str> = result.lines().collect();
    assert_eq!(
        lines,
        [
            "box=/300x300/samples/seeding.jpg=300x300",
            "height only=/x120/samples/seeding.jpg=213x120",
            "srcset=/320x/samples/seeding.jpg=320x180",
            // The chain ends in the resizer's 404 JSON: the browser shows a broken image.
            "missing original=/200x200/samples/missing.jpg=0x0",
        ],
        "{dom}"
    );
    for key in
        ["300x300/samples/seeding.jpg", "x120/samples/seeding.jpg", "320x/samples/seeding.jpg"]
    {
        assert!(stack.get(key).await.is_some(), "{key} was not stored");
    }
}
