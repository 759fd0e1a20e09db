//! The resizer's one CloudWatch EMF line per answer and its Server-Timing header, through
//! `resizer::handle` against the stack's real store, with the metrics read from a capturing
//! sink instead of standard output.

use std::sync::{Arc, Mutex};

use e2e::Stack;
use lambda_http::{Body, Request, Response};
use serde_json::Value;

/// A resizer App on the stack's store in `delivery` mode, configured with `env`, and the
/// records it emits.
fn app(stack: &Stack, delivery: &str, env: &[(&str, &str)]) -> (resizer::App, Records) {
    app_with(stack, stack.server.client().clone(), delivery, env)
}

/// [`app`] reaching the store through `client`.
fn app_with(
    stack: &Stack,
    client: aws_sdk_s3::Client,
    delivery: &str,
    env: &[(&str, &str)],
) -> (resizer::App, Records) {
    let bucket = stack.server.bucket.clone();
    let delivery = delivery.to_owned();
    let env: Vec<(String, String)> =
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let config = resizer::Config::from_lookup(|k| match k {
        "BUCKET" => Some(bucket.clone()),
        "DELIVERY_MODE" => Some(delivery.clone()),
        _ => env.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone()),
    })
    .unwrap();
    let records = Records::default();
    let sink = {
        let records = records.clone();
        Arc::new(move |doc: &Value| records.0.lock().unwrap().push(doc.clone()))
    };
    let app = resizer::App::new(config, client).with_metrics_sink(sink);
    (app, records)
}

/// What a capturing sink received.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<Value>>>);

impl Records {
    /// The records emitted since the last call.
    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The one record emitted since the last call, checked against the EMF specification.
    #[track_caller]
    fn one(&self) -> Value {
        let mut records = self.take();
        assert_eq!(records.len(), 1, "one record per answer: {records:#?}");
        let record = records.remove(0);
        assert_eq!(resizer::metrics::violations(&record), Vec::<String>::new(), "{record:#}");
        record
    }
}

async fn get(app: &resizer::App, path: &str) -> Response<Body> {
    let req: Request = http::Request::builder().uri(path).body(Body::Empty).unwrap();
    resizer::handle(app, req).await
}

/// The metric names a record publishes, in order.
fn metric_names(record: &Value) -> Vec<&str> {
    let directives = record["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1, "{record}");
    assert_eq!(directives[0]["Namespace"], "ResizeOnMiss");
    assert_eq!(directives[0]["Dimensions"], serde_json::json!([[], ["Outcome"]]));
    directives[0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect()
}

fn number(record: &Value, name: &str) -> f64 {
    record[name].as_f64().unwrap_or_else(|| panic!("{name} is not a number in {record:#}"))
}

const PHASES: [&str; 5] = ["FetchTime", "DecodeTime", "ResizeTime", "EncodeTime", "StoreTime"];

/// The Server-Timing entries of `resp` as (name, milliseconds), in order.
#[track_caller]
fn server_timing(resp: &Response<Body>) -> Vec<(String, f64)> {
    let value = resp.headers()["server-timing"].to_str().unwrap();
    let entry = regex::Regex::new(r"^([a-z]+);dur=([0-9]+\.[0-9])$").unwrap();
    value
        .split(", ")
        .map(|e| {
            let c = entry.captures(e).unwrap_or_else(|| panic!("{e:?} in {value:?}"));
            (c[1].to_owned(), c[2].parse().unwrap())
        })
        .collect()
}

fn names(timing: &[(String, f64)]) -> Vec<&str> {
    timing.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn a_miss_logs_one_line_with_every_phase_and_the_sizes() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "redirect", &[]);
    let resp = get(&app, "/resize/300x300/samples/seeding.jpg").await;
    assert_eq!(resp.status(), 307);
    let record = records.one();
    let (stored, _, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();

    assert_eq!(
        metric_names(&record),
        [
            "Misses",
            "Errors",
            "ServerErrors",
            "Latency",
            "FetchTime",
            "DecodeTime",
            "ResizeTime",
            "EncodeTime",
            "StoreTime",
            "BytesIn",
            "BytesOut"
        ]
    );
    assert_eq!((number(&record, "Misses"), number(&record, "Errors")), (1.0, 0.0));
    assert_eq!(number(&record, "ServerErrors"), 0.0);
    assert_eq!(number(&record, "BytesIn"), devserver::SAMPLE_PHOTO.len() as f64);
    assert_eq!(number(&record, "BytesOut"), stored.len() as f64);
    let phases: f64 = PHASES.iter().map(|p| number(&record, p)).sum();
    assert!(PHASES.iter().all(|p| number(&record, p) > 0.0), "{record:#}");
    assert!(phases <= number(&record, "Latency"), "{record:#}");
    assert_eq!(record["Outcome"], "made");
    assert_eq!(record["Status"], 307);
    assert_eq!(record["Key"], "300x300/samples/seeding.jpg");
    assert_eq!(
        (record["SourceFormat"].as_str(), record["OutputFormat"].as_str()),
        (Some("jpeg"), Some("jpeg"))
    );
    assert!(record.get("Joined").is_none(), "{record:#}");
    assert_schema_valid(&[record]);
}

#[tokio::test]
async fn the_redirect_carries_server_timing_with_the_phases() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "redirect", &[]);
    let resp = get(&app, "/resize/200x200/samples/seeding.jpg").await;
    assert_eq!(resp.status(), 307);
    let timing = server_timing(&resp);
    assert_eq!(names(&timing), ["fetch", "decode", "resize", "encode", "store", "total"]);
    let record = records.one();
    // The header rounds to a tenth of a millisecond what the record holds.
    for ((name, header), metric) in timing.iter().zip(PHASES) {
        let logged = number(&record, metric);
        assert!((header - logged).abs() <= 0.05 + 1e-9, "{name}: {header} vs {logged}");
    }
    let (_, total) = timing.last().unwrap();
    assert!(*total >= number(&record, "Latency") - 0.05, "{timing:?} {record:#}");
}

#[tokio::test]
async fn a_derivative_already_there_logs_existed_and_no_phases() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "redirect", &[]);
    assert_eq!(get(&app, "/resize/x200/samples/seeding.jpg").await.status(), 307);
    assert_eq!(records.one()["Outcome"], "made");

    // Once more from this process (found by a HEAD), then from a fresh one (found by the
    // HEAD beside the read of the original): neither makes it again.
    let (fresh, fresh_records) = self::app(&stack, "redirect", &[]);
    for (app, records) in [(&app, &records), (&fresh, &fresh_records)] {
        let resp = get(app, "/resize/x200/samples/seeding.jpg").await;
        assert_eq!(resp.status(), 307);
        let record = records.one();
        assert_eq!(
            metric_names(&record),
            ["Misses", "Errors", "ServerErrors", "Latency"],
            "{record:#}"
        );
        assert_eq!((record["Outcome"].as_str(), number(&record, "Errors")), (Some("existed"), 0.0));
        assert_eq!(record["Key"], "x200/samples/seeding.jpg");
        assert_eq!(names(&server_timing(&resp)), ["total"]);
    }
}

#[tokio::test]
async fn refusals_log_their_code_as_the_outcome_and_count_an_error() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "redirect", &[("ALLOWED_RESOLUTIONS", "300x300,640x")]);
    let mut seen = Vec::new();
    let cases = [
        // Refused before any S3 call: no phase ran.
        ("/resize/301x300/samples/seeding.jpg", 403, "resolution-not-allowed", &[][..], &[][..]),
        ("/resize/photos/cat.jpg", 400, "invalid-key", &[], &[]),
        // The original's read ran, and failed.
        (
            "/resize/300x300/samples/missing.jpg",
            404,
            "original-not-found",
            &["FetchTime"],
            &["fetch"],
        ),
    ];
    for (path, status, code, metrics, phases) in cases {
        let resp = get(&app, path).await;
        assert_eq!(resp.status(), status, "{path}");
        let record = records.one();
        let expected: Vec<&str> = ["Misses", "Errors", "ServerErrors", "Latency"]
            .into_iter()
            .chain(metrics.iter().copied())
            .collect();
        assert_eq!(metric_names(&record), expected, "{path}: {record:#}");
        assert_eq!(record["Outcome"], code, "{path}");
        assert_eq!((number(&record, "Misses"), number(&record, "Errors")), (1.0, 1.0), "{path}");
        assert_eq!(number(&record, "ServerErrors"), 0.0, "{path}: a refusal is not our fault");
        assert_eq!(record["Status"], status, "{path}");
        let expected: Vec<&str> = phases.iter().copied().chain(["total"]).collect();
        assert_eq!(names(&server_timing(&resp)), expected, "{path}");
        assert!(record.get("SourceFormat").is_none() && record.get("BytesIn").is_none());
        seen.push(record);
    }
    assert_eq!(seen[1].get("Key"), None, "an invalid key is not logged as one");
    assert_eq!(seen[2]["Key"], "300x300/samples/missing.jpg");
    assert_schema_valid(&seen);
}

#[tokio::test]
async fn a_storage_failure_counts_as_a_server_error() {
    let stack = Stack::start(&[]).await;
    // The embedded store checks SigV4: a resizer holding the wrong secret is refused (403).
    let wrong = aws_credential_types::Credentials::new(
        devserver::DEFAULT_ACCESS_KEY,
        "not-the-secret",
        None,
        None,
        "test",
    );
    let conf = stack.server.client().config().to_builder().credentials_provider(wrong).build();
    let (app, records) = app_with(&stack, aws_sdk_s3::Client::from_conf(conf), "redirect", &[]);
    let resp = get(&app, "/resize/300x300/samples/seeding.jpg").await;
    assert_eq!(resp.status(), 502);
    let record = records.one();
    assert_eq!(record["Outcome"], "storage-error");
    assert_eq!((number(&record, "Errors"), number(&record, "ServerErrors")), (1.0, 1.0));
    assert!(record.get("FetchTime").is_some(), "{record:#}");
    assert_eq!(names(&server_timing(&resp)), ["fetch", "total"]);
    assert_schema_valid(&[record]);
}

#[tokio::test]
async fn failover_answers_carry_server_timing_and_log_the_bytes_sent() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "failover", &[]);
    let resp = get(&app, "/320x/samples/seeding.jpg").await;
    assert_eq!(resp.status(), 200);
    let Body::Binary(made) = resp.body() else { panic!("an image") };
    let timing = server_timing(&resp);
    assert_eq!(names(&timing), ["fetch", "decode", "resize", "encode", "store", "total"]);
    let record = records.one();
    assert_eq!((record["Outcome"].as_str(), record["Status"].as_u64()), (Some("made"), Some(200)));
    assert_eq!(number(&record, "BytesOut"), made.len() as f64);

    // Already there: read back and sent, so its size is known though nothing was made.
    let (fresh, fresh_records) = self::app(&stack, "failover", &[]);
    let resp = get(&fresh, "/320x/samples/seeding.jpg").await;
    let Body::Binary(sent) = resp.body() else { panic!("an image") };
    let record = fresh_records.one();
    assert_eq!(record["Outcome"], "existed");
    assert_eq!(number(&record, "BytesOut"), sent.len() as f64);
    assert_eq!(metric_names(&record), ["Misses", "Errors", "ServerErrors", "Latency", "BytesOut"]);

    let resp = get(&fresh, "/300x300/samples/missing.jpg").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(names(&server_timing(&resp)), ["fetch", "total"]);
    assert_eq!(fresh_records.one()["Outcome"], "original-not-found");
}

#[tokio::test]
async fn concurrent_misses_share_one_resize_and_each_logs_its_own_line() {
    let stack = Stack::start(&[]).await;
    let (app, records) = app(&stack, "redirect", &[]);
    let path = "/resize/640x/samples/seeding.jpg";
    let (first, second) = tokio::join!(get(&app, path), get(&app, path));
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (307, 307));
    let lines = records.take();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let joined: Vec<bool> =
        lines.iter().map(|r| r.get("Joined") == Some(&Value::Bool(true))).collect();
    assert_eq!(joined.iter().filter(|j| **j).count(), 1, "one waited on the other: {lines:#?}");
    for metric in PHASES {
        assert_eq!(lines[0][metric], lines[1][metric], "{metric}: the shared resize's time");
    }
    assert_eq!(names(&server_timing(&first)), names(&server_timing(&second)));
    assert_schema_valid(&lines);
}

/// Validates `records` with the reference implementation of JSON Schema (Python's
/// `jsonschema`, tests/requirements.txt) against the fixture transcribing CloudWatch's
/// published EMF schema; a broken document is checked to be refused, so the check is live.
#[track_caller]
fn assert_schema_valid(records: &[Value]) {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../resizer/tests/fixtures/emf-schema.json");
    let mut broken = records[0].clone();
    broken["_aws"]["Timestamp"] = Value::from("yesterday");
    let input: String = records.iter().chain([&broken]).map(|r| format!("{r}\n")).collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", VALIDATE, schema])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/setup installs jsonschema)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let errors: Vec<Vec<String>> = serde_json::from_str(&stdout).unwrap();
    let (broken, valid) = errors.split_last().unwrap();
    assert!(valid.iter().all(Vec::is_empty), "{errors:#?}");
    assert!(!broken.is_empty(), "the validator let a text Timestamp through");
}

/// One JSON document per input line; prints, per document, the schema's error messages.
const VALIDATE: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
print(json.dumps([[e.message for e in validator.iter_errors(json.loads(line))] for line in sys.stdin]))
"#;
