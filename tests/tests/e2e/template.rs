//! template.yaml against the code it deploys: the bucket's routing rules are
//! website-rules.json's, the CloudFront Function's path guard decides exactly as
//! `signer::pattern` does (run in Node, as a CloudFront Function is JavaScript), the
//! private behaviours are the private paths, and the roles grant no more than listed.

use std::collections::BTreeSet;
use std::process::Stdio;

use keyspace::{check_private_shape, PrivatePaths, ShapeError};
use serde_json::{json, Value};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml is readable");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    // Tags (!Ref, !If, ...) become one-key maps: {"!If": [...]}.
    serde_json::to_value(yaml).expect("template.yaml converts to JSON")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let r = &template["Resources"][name];
    assert!(r.is_object(), "template.yaml has no resource {name}");
    r
}

/// The bucket's WebsiteConfiguration in website-rules.json's shape (S3's
/// PutBucketWebsite JSON), with the stack-filled values put back as the placeholders the
/// devserver fills.
fn template_rules_as_website_json(template: &Value) -> Value {
    let website = &resource(template, "ImagesBucket")["Properties"]["WebsiteConfiguration"];
    let public_host = json!({"!If": [
        "HasCustomDomain", {"!Ref": "CustomDomainName"}, {"!GetAtt": "Distribution.DomainName"}
    ]});
    let rules: Vec<Value> = website["RoutingRules"]
        .as_array()
        .expect("RoutingRules")
        .iter()
        .map(|rule| {
            let mut redirect = rule["RedirectRule"].clone();
            if redirect["Protocol"] == "https" {
                redirect["Protocol"] = json!("${RESIZER_PROTOCOL}");
            }
            if redirect["HostName"] == public_host {
                redirect["HostName"] = json!("${RESIZER_HOST}");
            }
            json!({ "Condition": rule["RoutingRuleCondition"], "Redirect": redirect })
        })
        .collect();
    json!({ "IndexDocument": { "Suffix": website["IndexDocument"] }, "RoutingRules": rules })
}

#[test]
fn the_buckets_routing_rules_are_website_rules_json() {
    let ours: Value = serde_json::from_str(&e2e::rules()).expect("website-rules.json is JSON");
    assert_eq!(template_rules_as_website_json(&template()), ours);
}

#[test]
fn a_changed_routing_rule_is_told_apart() {
    // The comparison above must be able to fail: the same template with one field changed.
    let mut changed = template();
    changed["Resources"]["ImagesBucket"]["Properties"]["WebsiteConfiguration"]["RoutingRules"][0]
        ["RedirectRule"]["ReplaceKeyPrefixWith"] = json!("resize/?key=");
    let ours: Value = serde_json::from_str(&e2e::rules()).unwrap();
    assert_ne!(template_rules_as_website_json(&changed), ours);
}

fn guard_association() -> Value {
    json!([{
        "EventType": "viewer-request",
        "FunctionARN": {"!GetAtt": "PathGuardFunction.FunctionMetadata.FunctionARN"}
    }])
}

#[test]
fn the_signed_behaviours_are_the_private_paths_and_every_bucket_behaviour_is_guarded() {
    let template = template();
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    assert_eq!(config["DefaultCacheBehavior"]["FunctionAssociations"], guard_association());
    let behaviours = config["CacheBehaviors"].as_array().unwrap();
    let signed: Vec<&str> = behaviours
        .iter()
        .filter(|b| b.get("TrustedKeyGroups").is_some())
        .map(|b| b["PathPattern"].as_str().unwrap())
        .collect();
    let private = PrivatePaths::parse(PrivatePaths::DEFAULT).unwrap();
    assert_eq!(signed, private.patterns());
    for b in behaviours {
        if b["TargetOriginId"] == "website" {
            assert_eq!(b["FunctionAssociations"], guard_association(), "{}", b["PathPattern"]);
        }
    }
    // The signer's API and the resizer come first, or `*/private/*` would swallow
    // `/api/.../private/...` and `/resize?key=x/private/...` stays with the API.
    let first_signed = behaviours.iter().position(|b| b.get("TrustedKeyGroups").is_some());
    let api = behaviours.iter().rposition(|b| b["TargetOriginId"] == "api");
    assert!(api < first_signed);
}

#[test]
fn the_resizer_may_only_get_and_put_objects() {
    let template = template();
    let policies = &resource(&template, "ResizerFunction")["Properties"]["Policies"];
    let mut actions = BTreeSet::new();
    for policy in policies.as_array().unwrap() {
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            assert_eq!(
                statement["Resource"],
                json!({"!Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"})
            );
            for action in statement["Action"].as_array().unwrap() {
                actions.insert(action.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(actions, BTreeSet::from(["s3:GetObject".to_owned(), "s3:PutObject".to_owned()]));
}

/// What the path guard must answer (None: let it through; Some(reason): 403), from the
/// Rust rules: a path is private when its raw or decoded form matches PRIVATE_PATHS; the
/// signed behaviours only see the raw form, so a private path reachable only decoded is
/// refused; a private path must have the one shape `check_private_shape` allows.
fn expected(uri: &str, query: &str) -> Option<&'static str> {
    let raw = uri.strip_prefix('/').unwrap();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().unwrap();
    let private = PrivatePaths::parse(PrivatePaths::DEFAULT).unwrap();
    let (raw_private, decoded_private) = (private.is_private(raw), private.is_private(&decoded));
    if !raw_private && !decoded_private {
        return None;
    }
    if !raw_private {
        return Some("encoded-private-path");
    }
    match check_private_shape(&decoded, (!query.is_empty()).then_some(query)) {
        Ok(()) => None,
        Err(ShapeError::Query) => Some("private-query"),
        Err(ShapeError::NestedPrefix) => Some("nested-grant-prefix"),
        Err(ShapeError::DotSegment) => Some("dot-segment"),
    }
}

fn cases() -> Vec<(String, String)> {
    let sizes = ["", "300x300/", "x200/", "640x/", "photos/", "a/b/", "x/"];
    let keys = [
        "private/galleries/demo/a.jpg",
        "private/x.jpg",
        "photos/private/a.jpg",
        "photos/cat.jpg",
        "privatex/a.jpg",
        "private",
        "uploads/alice/a.jpg",
        "private/galleries/demo/private/galleries/other/a.jpg",
        "private/galleries/demo/uploads/bob/a.jpg",
        "private/uploads/x.jpg",
        "a private/x.jpg",
        "xprivate/galleries/a/private/b.jpg",
        "uuploads/a/private/b.jpg",
    ];
    let spellings: [fn(&str) -> String; 4] = [
        |k| k.to_owned(),
        |k| k.replacen("private", "%70rivate", 1),
        |k| k.replacen("private/", "private%2F", 1),
        |k| k.replace('r', "%72").replace(' ', "%20"),
    ];
    let queries =
        ["", "Expires=1&Signature=x&Key-Pair-Id=K", "x=private/galleries/mine/", "Policy=p"];
    let mut out = Vec::new();
    for size in sizes {
        for key in keys {
            for spell in spellings {
                for query in queries {
                    out.push((format!("/{}", spell(&format!("{size}{key}"))), query.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn the_cloudfront_path_guard_decides_as_the_rust_rules() {
    let template = template();
    let code = resource(&template, "PathGuardFunction")["Properties"]["FunctionCode"]
        .as_str()
        .expect("inline FunctionCode")
        .to_owned();
    // The event shape CloudFront Functions pass (querystring: name -> {value}); the
    // answer: null when the request goes on, else the refusal's x-refusal header.
    let harness = r#"
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const answers = cases.map(([uri, query]) => {
  const querystring = {};
  for (const pair of query.split('&').filter(Boolean)) {
    const [name, value = ''] = pair.split('=');
    querystring[name] = { value };
  }
  const result = handler({ version: '1.0', context: {}, viewer: { ip: '203.0.113.7' },
    request: { method: 'GET', uri, querystring, headers: {}, cookies: {} } });
  if (result.uri === uri) return null;
  if (result.statusCode !== 403) throw new Error('unexpected answer for ' + uri);
  return result.headers['x-refusal'].value;
});
process.stdout.write(JSON.stringify(answers));
"#;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("path-guard.js");
    std::fs::write(&script, format!("{code}\n{harness}")).unwrap();
    let cases = cases();
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (the machine's Node.js)");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        serde_json::to_string(&cases).unwrap().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Option<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers.len(), cases.len());
    let mut refused = 0;
    for ((uri, query), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer.as_deref(), expected(uri, query), "{uri}?{query}");
        refused += usize::from(answer.is_some());
    }
    // Both kinds of answer occur, so agreement is not vacuous.
    assert!(refused > 0 && refused < cases.len(), "{refused} of {}", cases.len());
}

#[test]
fn the_bucket_is_encrypted_versioned_cleaned_up_and_open_only_to_the_secret_referer() {
    let template = template();
    let bucket = &resource(&template, "ImagesBucket")["Properties"];
    assert_eq!(bucket["BucketName"], json!({"!Ref": "BucketName"}));
    let sse = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256");
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let rules = bucket["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1));
    let cors = &bucket["CorsConfiguration"]["CorsRules"][0];
    assert_eq!(cors["AllowedOrigins"], json!({"!Ref": "UploadCorsOrigins"}));
    assert_eq!(cors["ExposedHeaders"], json!(["ETag"]));
    let block = &bucket["PublicAccessBlockConfiguration"];
    assert_eq!(
        (&block["BlockPublicAcls"], &block["IgnorePublicAcls"]),
        (&json!(true), &json!(true))
    );

    // The one public grant: GetObject for requests with the Referer CloudFront adds.
    let policy = &resource(&template, "ImagesBucketPolicy")["Properties"]["PolicyDocument"];
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "s3:GetObject");
    let secret = json!({"!Ref": "OriginVerifySecret"});
    assert_eq!(statements[0]["Condition"]["StringEquals"]["aws:Referer"], secret);
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    let website = config["Origins"].as_array().unwrap().iter().find(|o| o["Id"] == "website");
    let header = &website.expect("a website origin")["OriginCustomHeaders"][0];
    assert_eq!((&header["HeaderName"], &header["HeaderValue"]), (&json!("Referer"), &secret));
}

#[test]
fn resize_and_api_go_uncached_to_the_http_api_and_only_the_signer_needs_a_jwt() {
    const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
    const ALL_VIEWER_EXCEPT_HOST: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";
    let template = template();
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    for pattern in ["/resize*", "/api/*"] {
        let behaviour = config["CacheBehaviors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["PathPattern"] == pattern)
            .unwrap_or_else(|| panic!("no {pattern} behaviour"));
        assert_eq!(behaviour["TargetOriginId"], "api", "{pattern}");
        assert_eq!(behaviour["CachePolicyId"], CACHING_DISABLED, "{pattern}");
        assert_eq!(behaviour["OriginRequestPolicyId"], ALL_VIEWER_EXCEPT_HOST, "{pattern}");
    }
    // The bucket's cache policy leaves TTLs to the origin's Cache-Control.
    let images = &resource(&template, "ImagesCachePolicy")["Properties"]["CachePolicyConfig"];
    assert_eq!(images["MinTTL"], 0);

    let routes: Vec<&Value> = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .map(|r| &r["Properties"])
        .collect();
    let auth = |key: &str| {
        let route = routes.iter().find(|r| r["RouteKey"] == key).expect("route");
        route["AuthorizationType"].as_str().unwrap().to_owned()
    };
    assert_eq!(auth("GET /resize"), "NONE");
    assert_eq!(auth("HEAD /resize"), "NONE");
    assert_eq!(auth("ANY /api/{proxy+}"), "JWT");
    let jwt = &resource(&template, "JwtAuthorizer")["Properties"]["JwtConfiguration"];
    assert_eq!(jwt["Issuer"], json!({"!Ref": "JwtIssuer"}));
    assert_eq!(jwt["Audience"], json!({"!Ref": "JwtAudience"}));
}

#[test]
fn the_signer_may_write_only_uploads_read_only_what_it_hands_out_and_its_secret() {
    let template = template();
    let policies = &resource(&template, "SignerFunction")["Properties"]["Policies"];
    let mut grants = BTreeSet::new();
    for statement in policies[0]["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        let list = |v: &Value| match v {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        for action in list(&statement["Action"]) {
            for resource in list(&statement["Resource"]) {
                let resource = resource.get("!Sub").or(resource.get("!Ref")).unwrap().clone();
                grants.insert(format!(
                    "{} {}",
                    action.as_str().unwrap(),
                    resource.as_str().unwrap()
                ));
            }
        }
    }
    let objects = "arn:${AWS::Partition}:s3:::${BucketName}";
    let expected: BTreeSet<String> = [
        format!("s3:PutObject {objects}/uploads/*"),
        format!("s3:AbortMultipartUpload {objects}/uploads/*"),
        format!("s3:GetObject {objects}/uploads/*"),
        format!("s3:GetObject {objects}/private/galleries/*"),
        "secretsmanager:GetSecretValue CloudFrontPrivateKeySecretArn".to_owned(),
    ]
    .into();
    assert_eq!(grants, expected);
}

#[test]
fn the_stack_outputs_the_site_the_distribution_and_the_api() {
    let template = template();
    for output in ["SiteUrl", "WebsiteEndpoint", "DistributionDomainName", "ApiUrl"] {
        assert!(template["Outputs"][output]["Value"].is_object(), "no output {output}");
    }
    for (function, group) in
        [("ResizerFunction", "ResizerLogGroup"), ("SignerFunction", "SignerLogGroup")]
    {
        let logging = &resource(&template, function)["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogGroup"], json!({"!Ref": group}));
        let retention = &resource(&template, group)["Properties"]["RetentionInDays"];
        assert_eq!(retention, &json!({"!Ref": "LogRetentionDays"}));
    }
}
