//! The devserver's edge against template.yaml's distribution, in both delivery modes: the
//! CloudFront Functions' JavaScript (run in Node and in njs, the engine family of
//! CloudFront's runtime) decides as the edge's Rust twins do, the path guard's format
//! negotiation included (real browsers' Accept headers x paths x each FormatNegotiation);
//! the image behaviours carry `Vary: Accept` exactly while negotiation is on; a corpus of
//! paths picks the
//! same behaviour (pattern, origin, signature, function) in the edge as in an independent
//! reading of the template; a behaviour the devserver cannot emulate stops it; and the
//! cache policy keeps S3's redirect out of the cache.

use std::process::Stdio;

use devserver::cloudformation::TEMPLATE;
use devserver::edge::distribution::{CustomHeader, Distribution};
use devserver::edge::functions::{path_guard, Negotiation, Parameters, NEGOTIATION_PARAMETER};
use devserver::edge::normalise;
use e2e::{DeliveryMode, Stack, MODES};
use keyspace::PrivatePaths;
use reqwest::Method;
use serde_json::{json, Value};

use crate::template::{read, resource};

/// The inline code of a CloudFront Function of the template, as the stack deploys it with
/// the template's defaults (parameters filled in), and the parameters filled in.
fn function_code(name: &str) -> String {
    function_with(name, &[]).0
}

/// The code of function `name` as a stack with `overrides` deploys it, and the parameters
/// the devserver's edge hands its twin.
fn function_with(name: &str, overrides: &[(&str, &str)]) -> (String, Parameters) {
    let template = read(DeliveryMode::Redirect, overrides);
    let distribution = Distribution::read(&template, "Distribution").unwrap();
    let function = &distribution.functions[name];
    (function.code.clone(), function.parameters.clone())
}

/// Runs `code` plus `harness` (which prints one JSON value per line: njs cuts long lines)
/// under `engine` (`node` or `njs`), the cases written into the script.
fn run_js(engine: &str, code: &str, cases: &Value, harness: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("function.js");
    std::fs::write(&script, format!("{code}\nvar cases = {cases};\n{harness}\n")).unwrap();
    let out = std::process::Command::new(engine)
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{engine} runs (scripts/setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{engine}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{engine}: {line}: {e}")))
        .collect();
    Value::Array(answers)
}

/// Paths and queries for the path guard: every prefix a request can have (sizes, the
/// resizer's route, the API), keys private, public and tricky, spelt plainly, encoded,
/// and with dot or empty segments.
fn guard_cases() -> Vec<(String, String)> {
    let prefixes = [
        "",
        "300x300/",
        "x200/",
        "640x/",
        "photos/",
        "a/b/",
        "x/",
        "resize/300x300/",
        "resize/",
        // Sizes that name a format are sizes (`/300x300.avif/private/...` is no nested
        // grant prefix); shapes that only look like one are not.
        "300x300.avif/",
        "640x.webp/",
        "resize/x200.png/",
        "300x300.av-if/",
        "300x300.avif.webp/",
        "x.avif/",
    ];
    let keys = [
        "private/galleries/demo/a.jpg",
        "private/x.jpg",
        "photos/private/a.jpg",
        "photos/cat.jpg",
        "privatex/a.jpg",
        "private",
        "uploads/alice/a.jpg",
        "photos/uploads/a.jpg",
        "private/galleries/demo/private/galleries/other/a.jpg",
        "private/galleries/demo/uploads/bob/a.jpg",
        "private/uploads/x.jpg",
        "a private/x.jpg",
        "xprivate/galleries/a/private/b.jpg",
        "uuploads/a/private/b.jpg",
        "private/galleries/demo/../other/a.jpg",
        "private/galleries/demo/./a.jpg",
        "private/galleries//a.jpg",
        "uploads/alice/%2E%2E/bob/a.jpg",
        "private/%zz.jpg",
    ];
    let spellings: [fn(&str) -> String; 4] = [
        |k| k.to_owned(),
        |k| k.replacen("private", "%70rivate", 1),
        |k| k.replacen("private/", "private%2F", 1),
        |k| k.replace('r', "%72").replace(' ', "%20"),
    ];
    let queries = [
        "",
        "Expires=1&Signature=x&Key-Pair-Id=K",
        "x=private/galleries/mine/",
        "Policy=p",
        "Hash-Algorithm=/private/galleries/mine/",
        "Signature=a%2Fb",
        "Policy=eyJ-_~&Signature=aB9_&Key-Pair-Id=K2JC",
    ];
    let mut out = Vec::new();
    for prefix in prefixes {
        for key in keys {
            for spell in spellings {
                for query in queries {
                    out.push((format!("/{}", spell(&format!("{prefix}{key}"))), query.to_owned()));
                }
            }
        }
    }
    out
}

/// Builds CloudFront's viewer-request event for each case, calls `handler`, and prints
/// `null` (the request goes on) or the refusal's `x-refusal`.
const GUARD_HARNESS: &str = r#"
var answers = cases.map(function (c) {
  var querystring = {};
  c[1].split('&').filter(function (p) { return p.length > 0; }).forEach(function (pair) {
    var eq = pair.indexOf('=');
    var name = eq < 0 ? pair : pair.substring(0, eq);
    querystring[name] = { value: eq < 0 ? '' : pair.substring(eq + 1) };
  });
  var result = handler({ version: '1.0', context: {}, viewer: { ip: '203.0.113.7' },
    request: { method: 'GET', uri: c[0], querystring: querystring, headers: {}, cookies: {} } });
  if (result.uri === c[0]) { return null; }
  if (result.statusCode !== 403) { throw new Error('unexpected answer for ' + c[0]); }
  return result.headers['x-refusal'].value;
});
answers.forEach(function (a) { console.log(JSON.stringify(a)); });
"#;

#[test]
fn the_path_guard_decides_in_node_and_njs_as_the_edges_twin() {
    let code = function_code("PathGuardFunction");
    let cases = guard_cases();
    let expected: Vec<Option<&str>> = cases
        .iter()
        .map(|(uri, query)| {
            let pairs: Vec<(&str, &str)> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect();
            path_guard(uri, &pairs)
        })
        .collect();
    for engine in ["node", "njs"] {
        let answers = run_js(engine, &code, &json!(cases), GUARD_HARNESS);
        let answers: Vec<Option<String>> = serde_json::from_value(answers).unwrap();
        assert_eq!(answers.len(), cases.len());
        for (((uri, query), answer), want) in cases.iter().zip(&answers).zip(&expected) {
            assert_eq!(answer.as_deref(), *want, "{engine}: {uri}?{query}");
        }
    }
    // Every kind of answer occurs, so the agreement is not vacuous.
    for reason in [
        None,
        Some("private-query"),
        Some("encoded-private-path"),
        Some("dot-segment"),
        Some("nested-grant-prefix"),
        Some("malformed-path"),
    ] {
        assert!(expected.contains(&reason), "no case gives {reason:?}");
    }
}

/// Real browsers' `Accept` for images (MDN's list of default Accept values, and what the
/// browsers send today), then weights, wildcards, spacing and case. Each entry is the
/// headers sent: none, one, or the header twice.
const ACCEPTS: [&[&str]; 25] = [
    // Chrome and Edge; the headless Chromium the page tests drive (JPEG XL first).
    &["image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"],
    &["image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"],
    // Firefox 92 and later; Firefox 65 to 91.
    &["image/avif,image/webp,*/*"],
    &["image/webp,*/*"],
    // Safari 16 and later; Safari on Big Sur; older Safari.
    &["image/webp,image/avif,image/jxl,image/heic,image/x-adobe-dng,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"],
    &["image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"],
    &["image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"],
    // curl, reqwest; no Accept at all; an empty one.
    &["*/*"],
    &[],
    &[""],
    &["image/jpeg"],
    &["image/*"],
    // Refusals and weights.
    &["image/avif;q=0,image/webp"],
    &["image/avif;q=0"],
    &["image/webp;q=0,image/avif;q=0.5"],
    &["image/avif;q=0.000,image/webp;q=0.001"],
    &["image/avif;q=1.5,image/webp;q=0.5"],
    &["image/avif,image/avif;q=0"],
    &["image/avif;q=0.0001"],
    // Spacing and case.
    &["IMAGE/AVIF ; Q=0.5"],
    &[" image/webp\t;q=1.0 , image/png"],
    &["image/avif+xml,image/avifs,image/webpx"],
    &["text/html;level=1;q=0.5, image/webp;level=2;q=0.7"],
    // Twice: one list.
    &["image/png", "image/avif"],
    &["image/jpeg", "image/webp;q=0"],
];

/// Paths for the negotiation: every prefix (sizes plain and suffixed, the resizer's route,
/// originals, a size that is not canonical) x keys of every extension, public, private and
/// encoded x queries (none, a signed URL's, another).
fn negotiation_cases() -> Vec<(String, String, Vec<String>)> {
    let prefixes = [
        "",
        "300x300/",
        "640x/",
        "x200/",
        // Over and at AVIF_MAX_SIDE (1024): WebP rather than AVIF above it.
        "1024x1024/",
        "1025x/",
        "x2048/",
        "200x4096/",
        "99999999999999999999x/",
        "300x300.avif/",
        "300x300.png/",
        "640x.webp/",
        "resize/300x300/",
        "resize/640x.avif/",
        "0300x300/",
        "photos/",
    ];
    let keys = [
        "a.jpg",
        "p/a.JPG",
        "a.jpeg",
        "a.Png",
        "a.gif",
        "a.webp",
        "a.tiff",
        "a.avif",
        "a",
        "a.jpg/b",
        "private/galleries/demo/a.jpg",
        "uploads/alice/a.png",
        "caf%C3%A9.jpg",
        "a%2Ejpg",
        "a.%6Apg",
        "private/galleries/demo/../x/a.jpg",
        "%70rivate/galleries/demo/a.jpg",
    ];
    let queries = ["", "Expires=1&Signature=x&Key-Pair-Id=K", "v=1"];
    let mut out = Vec::new();
    for prefix in prefixes {
        for key in keys {
            for query in queries {
                for accept in ACCEPTS {
                    let accept = accept.iter().map(|a| (*a).to_owned()).collect();
                    out.push((format!("/{prefix}{key}"), query.to_owned(), accept));
                }
            }
        }
    }
    out
}

/// CloudFront's event with the Accept header (`multiValue` when sent twice); prints the
/// URI the request goes on with, or `403 {x-refusal}`.
const NEGOTIATION_HARNESS: &str = r#"
var answers = cases.map(function (c) {
  var querystring = {};
  c[1].split('&').filter(function (p) { return p.length > 0; }).forEach(function (pair) {
    var eq = pair.indexOf('=');
    querystring[eq < 0 ? pair : pair.substring(0, eq)] = { value: eq < 0 ? '' : pair.substring(eq + 1) };
  });
  var headers = {};
  if (c[2].length === 1) { headers.accept = { value: c[2][0] }; }
  if (c[2].length > 1) {
    headers.accept = { value: c[2][0], multiValue: c[2].map(function (v) { return { value: v }; }) };
  }
  var result = handler({ version: '1.0', context: {}, viewer: { ip: '203.0.113.7' },
    request: { method: 'GET', uri: c[0], querystring: querystring, headers: headers, cookies: {} } });
  if (result.statusCode === 403) { return '403 ' + result.headers['x-refusal'].value; }
  return result.uri;
});
answers.forEach(function (a) { console.log(JSON.stringify(a)); });
"#;

#[test]
fn format_negotiation_decides_in_node_and_njs_as_the_edges_twin_for_every_setting() {
    let cases = negotiation_cases();
    let twin = devserver::edge::functions::twin("PathGuardFunction").unwrap();
    let mut rewritten = std::collections::BTreeSet::new();
    for negotiation in Negotiation::ALL {
        let setting = negotiation.to_string();
        let (code, parameters) =
            function_with("PathGuardFunction", &[(NEGOTIATION_PARAMETER, setting.as_str())]);
        assert_eq!(parameters[NEGOTIATION_PARAMETER], setting);
        let expected: Vec<String> = cases
            .iter()
            .map(|(uri, query, accept)| {
                let mut req = devserver::edge::functions::ViewerRequest {
                    uri: uri.clone(),
                    querystring: query
                        .split('&')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (n, v) = p.split_once('=').unwrap_or((p, ""));
                            (n.to_owned(), v.to_owned())
                        })
                        .collect(),
                    headers: accept.iter().map(|a| ("accept".to_owned(), a.clone())).collect(),
                    added_headers: vec![],
                    viewer_ip: "203.0.113.7".parse().unwrap(),
                };
                match twin(&mut req, &parameters) {
                    Some(refusal) => format!("403 {}", refusal.headers[2].1),
                    None => req.uri,
                }
            })
            .collect();
        let json_cases: Vec<Value> = cases.iter().map(|(u, q, a)| json!([u, q, a])).collect();
        for engine in ["node", "njs"] {
            let answers = run_js(engine, &code, &json!(json_cases), NEGOTIATION_HARNESS);
            let answers: Vec<String> = serde_json::from_value(answers).unwrap();
            assert_eq!(answers.len(), cases.len());
            for (((uri, query, accept), answer), want) in cases.iter().zip(&answers).zip(&expected)
            {
                assert_eq!(answer, want, "{engine} {setting}: {uri}?{query} Accept {accept:?}");
            }
        }
        for ((uri, _, _), answer) in cases.iter().zip(&expected) {
            if answer != uri && !answer.starts_with("403") {
                rewritten.insert((setting.clone(), answer.split('/').nth(1).unwrap().to_owned()));
            }
        }
        if negotiation == Negotiation::Off {
            assert!(
                cases.iter().zip(&expected).all(|((uri, ..), a)| a == uri || a.starts_with("403")),
                "off rewrites nothing"
            );
        }
    }
    // Every rewrite occurs, so the agreement is not vacuous: AVIF only with avif-webp, WebP
    // with both; never a format the negotiation does not write.
    let formats = |setting: &str| -> Vec<String> {
        let f: std::collections::BTreeSet<String> = rewritten
            .iter()
            .filter(|(s, _)| s == setting)
            .map(|(_, seg)| seg.split_once('.').unwrap().1.to_owned())
            .collect();
        f.into_iter().collect()
    };
    assert_eq!(formats("avif-webp"), ["avif", "webp"]);
    assert_eq!(formats("webp"), ["webp"]);
    assert!(formats("off").is_empty());
}

#[test]
fn every_functions_code_fits_cloudfronts_ten_kilobytes_in_every_setting() {
    for negotiation in Negotiation::ALL {
        let setting = negotiation.to_string();
        for name in ["PathGuardFunction", "ViewerAddressFunction"] {
            let (code, _) = function_with(name, &[(NEGOTIATION_PARAMETER, setting.as_str())]);
            assert!(code.len() <= 10_240, "{name} ({setting}): {} bytes", code.len());
            assert!(!code.contains("${"), "{name}: an unfilled ${{...}}");
        }
    }
}

#[test]
fn a_suffixed_size_of_a_private_key_passes_the_guard_in_node_njs_and_the_twin() {
    // Without the format in the guard's idea of a size, the key would start at
    // `300x300.avif/` and hold a grant prefix inside it.
    let code = function_code("PathGuardFunction");
    let uri = "/300x300.avif/private/galleries/g/a.jpg";
    assert_eq!(path_guard(uri, &[]), None);
    assert_eq!(
        path_guard("/300x300.av-if/private/galleries/g/a.jpg", &[]),
        Some("nested-grant-prefix")
    );
    for engine in ["node", "njs"] {
        let answers = run_js(engine, &code, &json!([[uri, ""]]), GUARD_HARNESS);
        assert_eq!(answers, json!([null]), "{engine}");
    }
    assert!(keyspace::is_size_segment("300x300.avif"));
    assert_eq!(keyspace::check_private_shape(&uri[1..], None), Ok(()));
}

#[test]
fn the_image_behaviours_vary_on_accept_exactly_while_negotiation_is_on() {
    let vary = vec![CustomHeader { name: "Vary".into(), value: "Accept".into(), replace: true }];
    for mode in MODES {
        for negotiation in Negotiation::ALL {
            let setting = negotiation.to_string();
            let template = read(mode, &[(NEGOTIATION_PARAMETER, setting.as_str())]);
            let distribution = Distribution::read(&template, "Distribution").unwrap();
            for b in &distribution.behaviours {
                let images = b.target != "api";
                let want =
                    if images && negotiation != Negotiation::Off { vary.clone() } else { vec![] };
                assert_eq!(b.response_headers, want, "{mode} {setting}: {}", b.pattern);
            }
            assert_eq!(
                template.resource("VaryOnAcceptPolicy").unwrap().is_some(),
                negotiation != Negotiation::Off
            );
        }
    }
    // The devserver's default is the template's.
    let raw = devserver::cloudformation::yaml_to_json(TEMPLATE).unwrap();
    let parameter = &raw["Parameters"][NEGOTIATION_PARAMETER];
    assert_eq!(parameter["Default"], Negotiation::default().to_string());
    let allowed: Vec<String> = serde_json::from_value(parameter["AllowedValues"].clone()).unwrap();
    let ours: Vec<String> = Negotiation::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(allowed, ours);
    assert_eq!(devserver::Options::new(String::new()).format_negotiation, Negotiation::default());
}

#[test]
fn the_viewer_address_function_replaces_whatever_address_the_viewer_sent() {
    let code = function_code("ViewerAddressFunction");
    let cases = json!([["203.0.113.7", "198.51.100.1"], ["2001:db8::1", ""]]);
    let harness = r#"
var answers = cases.map(function (c) {
  var headers = c[1] ? { 'x-viewer-address': { value: c[1] } } : {};
  var result = handler({ version: '1.0', context: {}, viewer: { ip: c[0] },
    request: { method: 'POST', uri: '/api/sign-url', querystring: {}, headers: headers, cookies: {} } });
  return result.headers['x-viewer-address'].value;
});
answers.forEach(function (a) { console.log(JSON.stringify(a)); });
"#;
    for engine in ["node", "njs"] {
        let answers = run_js(engine, &code, &cases, harness);
        assert_eq!(answers, json!(["203.0.113.7", "2001:db8::1"]), "{engine}");
    }
    let twin = devserver::edge::functions::twin("ViewerAddressFunction").unwrap();
    let mut req = devserver::edge::functions::ViewerRequest {
        uri: "/api/sign-url".into(),
        querystring: vec![],
        headers: vec![],
        added_headers: vec![],
        viewer_ip: "203.0.113.7".parse().unwrap(),
    };
    assert!(twin(&mut req, &Parameters::new()).is_none());
    assert_eq!(req.added_headers, vec![("x-viewer-address".to_owned(), "203.0.113.7".to_owned())]);
}

/// What a behaviour means for a request: its pattern, target, whether it is signed and its
/// viewer-request function.
type Decision = (String, String, bool, Option<String>);

/// The behaviour CloudFront picks, read straight from the template's JSON for `mode`: the
/// patterns turned into anchored regular expressions, tried in order, the default last.
fn template_decision(mode: DeliveryMode, normalised: &str) -> Decision {
    let template = read(mode, &[]);
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    let decide = |b: &Value, pattern: String| -> Decision {
        let function = b["FunctionAssociations"][0]["FunctionARN"]["!GetAtt"]
            .as_str()
            .map(|s| s.split('.').next().unwrap().to_owned());
        (
            pattern,
            b["TargetOriginId"].as_str().unwrap().to_owned(),
            b.get("TrustedKeyGroups").is_some(),
            function,
        )
    };
    let path = normalised.trim_start_matches('/');
    for b in config["CacheBehaviors"].as_array().unwrap() {
        let pattern = b["PathPattern"].as_str().unwrap().trim_start_matches('/').to_owned();
        let mut re = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        if regex::Regex::new(&re).unwrap().is_match(path) {
            return decide(b, pattern);
        }
    }
    decide(&config["DefaultCacheBehavior"], "*".to_owned())
}

#[test]
fn the_edge_picks_the_behaviour_the_template_describes_for_every_path() {
    let paths = [
        "/",
        "/index.html",
        "/pages/gallery.html",
        "/samples/seeding.jpg",
        "/300x300/samples/seeding.jpg",
        "/300x300/private/galleries/demo/a.jpg",
        "/private/galleries/demo/a.jpg",
        "/photos/private/a.jpg",
        "/uploads/alice/a.jpg",
        "/640x/uploads/alice/a.jpg",
        "/resize/300x300/samples/a.jpg",
        "/resize/300x300/private/galleries/demo/a.jpg",
        "/resize/640x/uploads/alice/a.jpg",
        "/resize/private/a.jpg",
        "/resized/photo.jpg",
        "/resize",
        "/resizer.jpg",
        "/api/sign-cookies",
        "/api/x/private/y",
        "/apis/a.jpg",
        "/photos/../private/a.jpg",
        "/%70rivate/a.jpg",
        "/private%2Fa.jpg",
        "//private/a.jpg",
        "/resize/300x300/./private/a.jpg",
        "/a/b/c/uploads/d.jpg",
        "/x/private",
        "/privateer/a.jpg",
    ];
    for mode in MODES {
        let template = read(mode, &[]);
        let distribution = Distribution::read(&template, "Distribution").unwrap();
        let listed = resource(&template, "Distribution")["Properties"]["DistributionConfig"]
            ["CacheBehaviors"]
            .as_array()
            .unwrap()
            .len();
        // Every behaviour of the template is in the edge, and no other.
        assert_eq!(distribution.behaviours.len(), listed + 1, "{mode}");
        for path in paths {
            let normalised = normalise(path);
            let b = distribution.behaviour_for(&normalised);
            let ours: Decision =
                (b.pattern.clone(), b.target.clone(), b.signed, b.viewer_request.clone());
            assert_eq!(ours, template_decision(mode, &normalised), "{mode}: {path}");
        }
    }
}

#[test]
fn signed_behaviours_are_the_private_paths_and_every_image_and_resize_behaviour_is_guarded() {
    for mode in MODES {
        let template = read(mode, &[]);
        let distribution = Distribution::read(&template, "Distribution").unwrap();
        let private = PrivatePaths::default_patterns();
        let mut signed: Vec<String> = Vec::new();
        for b in &distribution.behaviours {
            let function = b.viewer_request.as_deref();
            if b.target == "api" && b.pattern == "api/*" {
                assert_eq!(function, Some("ViewerAddressFunction"));
                assert!(!b.signed);
                continue;
            }
            assert_eq!(function, Some("PathGuardFunction"), "{mode}: {}", b.pattern);
            if b.signed {
                signed.push(b.pattern.clone());
            }
        }
        let mut expected: Vec<String> = Vec::new();
        if mode == DeliveryMode::Redirect {
            expected.extend(["resize/*/private/*".into(), "resize/*/uploads/*".into()]);
        }
        expected.extend(private.patterns().iter().cloned());
        assert_eq!(signed, expected, "{mode}");
        // The resizer reads the same patterns.
        assert_eq!(
            private.patterns(),
            resizer::Config::from_lookup(|k| (k == "BUCKET").then(|| "b".into()))
                .unwrap()
                .private_paths
                .patterns()
        );
    }
}

#[tokio::test]
async fn a_behaviour_the_devserver_cannot_emulate_stops_it_at_start() {
    // A behaviour with a function the edge has no twin of.
    let unknown_function = TEMPLATE.replace(
        "FunctionARN: !GetAtt ViewerAddressFunction.FunctionMetadata.FunctionARN",
        "FunctionARN: !GetAtt NewFunction.FunctionMetadata.FunctionARN",
    );
    let unknown_function = unknown_function.replace(
        "  Distribution:\n    Type: AWS::CloudFront::Distribution",
        "  NewFunction:\n    Type: AWS::CloudFront::Function\n    Properties:\n      FunctionCode: \"function handler(e) { return e.request; }\"\n\n  Distribution:\n    Type: AWS::CloudFront::Distribution",
    );
    // A Lambda@Edge association.
    let lambda_edge = TEMPLATE.replacen(
        "          FunctionAssociations:\n            - EventType: viewer-request\n              FunctionARN: !GetAtt PathGuardFunction.FunctionMetadata.FunctionARN\n        CacheBehaviors:",
        "          LambdaFunctionAssociations:\n            - EventType: origin-response\n              LambdaFunctionARN: arn:aws:lambda:us-east-1:000000000000:function:x:1\n        CacheBehaviors:",
        1,
    );
    assert_ne!(lambda_edge, TEMPLATE);
    // A setting the edge does not follow (a managed response headers policy, say).
    let headers_policy = TEMPLATE.replacen(
        "ResponseHeadersPolicyId: !If [Negotiates, !Ref VaryOnAcceptPolicy, !Ref AWS::NoValue]",
        "ResponseHeadersPolicyId: 67f7725c-6f97-4210-82d7-5512b31e9d03",
        1,
    );
    assert_ne!(headers_policy, TEMPLATE);
    for (template, fragment) in [
        (unknown_function, "NewFunction"),
        (lambda_edge, "LambdaFunctionAssociations"),
        (headers_policy, "ResponseHeadersPolicyId"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut opts = devserver::Options::new(e2e::rules());
        e2e::ephemeral(&mut opts);
        opts.data_dir = data.path().to_owned();
        opts.template = template;
        let err = match devserver::DevServer::start(opts).await {
            Ok(_) => panic!("the devserver started with a behaviour it cannot emulate"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(fragment), "{err}");
    }
}

#[tokio::test]
async fn the_websites_redirect_is_never_cached_so_a_made_size_is_a_plain_hit() {
    // With the template's cache policy (DefaultTTL 0) the second request is a hit on the
    // derivative itself.
    let stack = Stack::start(&[]).await;
    let path = "/300x300/samples/seeding.jpg";
    assert_eq!(stack.follow(Method::GET, path).await.statuses(), [307, 307, 200]);
    let again = stack.follow(Method::GET, path).await;
    assert_eq!(again.statuses(), [200]);

    // With a DefaultTTL of a day (what a policy copied from a sample often has), CloudFront
    // caches S3's 307, which carries no Cache-Control: once the derivative exists, the
    // viewer is sent back to the resizer, and from it back to the cached 307, for a day.
    let day = TEMPLATE.replacen("        DefaultTTL: 0\n", "        DefaultTTL: 86400\n", 1);
    assert_ne!(day, TEMPLATE);
    let stack = Stack::start_with(&[], |o| o.template = day).await;
    let (first, _) = stack.request(Method::GET, &stack.url(path)).await;
    assert_eq!(
        (first.status, &first.headers["x-cache"]),
        (307, &"Miss from cloudfront".parse().unwrap())
    );
    let (made, _) =
        stack.request(Method::GET, &stack.url("/resize/300x300/samples/seeding.jpg")).await;
    assert_eq!(made.status, 307);
    assert!(stack.get("300x300/samples/seeding.jpg").await.is_some(), "the size exists");
    let (hop, _) = stack.request(Method::GET, &stack.url(path)).await;
    assert_eq!(hop.status, 307, "the miss's redirect was cached: {hop:#?}");
    assert_eq!(hop.headers["x-cache"], "Hit from cloudfront");
}
