//! template.yaml against the code it deploys, in both delivery modes (each read with the
//! devserver's CloudFormation evaluator for that mode's DeliveryMode): the bucket's routing
//! rules are website-rules.json's, the bucket is private in failover mode, the roles grant no
//! more than listed (the resizer writes only new objects under the allowed size prefixes),
//! the routes, origins, origin group, permissions and outputs are those of the mode.

use std::collections::{BTreeSet, HashMap};

use devserver::cloudformation::{Template, TEMPLATE};
use keyspace::{wildcard_match, DeliveryMode};
use serde_json::{json, Value};

/// The template read for `mode`, with `overrides` for other parameters.
pub fn read(mode: DeliveryMode, overrides: &[(&str, &str)]) -> Template {
    let mut params: HashMap<String, String> =
        overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    params.insert("DeliveryMode".into(), mode.to_string());
    Template::parse(TEMPLATE, &params).expect("template.yaml reads")
}

pub fn resource(template: &Template, name: &str) -> Value {
    template.resource(name).unwrap().unwrap_or_else(|| panic!("no resource {name}"))
}

fn absent(template: &Template, name: &str) -> bool {
    template.resource(name).unwrap().is_none()
}

/// The bucket's WebsiteConfiguration in website-rules.json's shape (S3's
/// PutBucketWebsite JSON), with the stack-filled values put back as the placeholders the
/// devserver fills.
fn template_rules_as_website_json(bucket: &Value) -> Value {
    let website = &bucket["Properties"]["WebsiteConfiguration"];
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
            // The evaluator decides HasCustomDomain (false by default): the distribution.
            if redirect["HostName"] == json!({"!GetAtt": "Distribution.DomainName"})
                || redirect["HostName"] == public_host
            {
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
    let bucket = resource(&read(DeliveryMode::Redirect, &[]), "ImagesBucket");
    assert_eq!(template_rules_as_website_json(&bucket), ours);
    // The comparison can fail: the same bucket with one field changed.
    let mut changed = bucket.clone();
    changed["Properties"]["WebsiteConfiguration"]["RoutingRules"][0]["RedirectRule"]
        ["ReplaceKeyPrefixWith"] = json!("resize?key=");
    assert_ne!(template_rules_as_website_json(&changed), ours);
}

/// The statements of the bucket policy.
fn bucket_statements(template: &Template) -> Vec<Value> {
    resource(template, "ImagesBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn redirect_mode_serves_the_website_endpoint_to_the_secret_referer_with_list_so_misses_are_404() {
    let template = read(DeliveryMode::Redirect, &[]);
    let bucket = resource(&template, "ImagesBucket")["Properties"].clone();
    assert!(bucket["WebsiteConfiguration"].is_object());
    let block = &bucket["PublicAccessBlockConfiguration"];
    assert_eq!(
        (&block["BlockPublicAcls"], &block["IgnorePublicAcls"]),
        (&json!(true), &json!(true))
    );
    let secret = json!({"!Ref": "WebsiteRefererSecret"});
    let grants: BTreeSet<String> = bucket_statements(&template)
        .iter()
        .map(|s| {
            assert_eq!(s["Principal"], "*");
            assert_eq!(s["Condition"]["StringEquals"]["aws:Referer"], secret);
            format!("{} {}", s["Action"].as_str().unwrap(), s["Resource"]["!Sub"].as_str().unwrap())
        })
        .collect();
    let bucket_arn = "arn:${AWS::Partition}:s3:::${BucketName}";
    assert_eq!(
        grants,
        BTreeSet::from([
            format!("s3:GetObject {bucket_arn}/*"),
            format!("s3:ListBucket {bucket_arn}"),
        ])
    );
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    let website = config["Origins"].as_array().unwrap().iter().find(|o| o["Id"] == "website");
    let header = &website.expect("a website origin")["OriginCustomHeaders"][0];
    assert_eq!((&header["HeaderName"], &header["HeaderValue"]), (&json!("Referer"), &secret));
}

#[test]
fn failover_mode_keeps_the_bucket_private_behind_origin_access_control() {
    let template = read(DeliveryMode::Failover, &[]);
    let bucket = resource(&template, "ImagesBucket")["Properties"].clone();
    assert!(bucket.get("WebsiteConfiguration").is_none(), "no website hosting");
    for setting in
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
    {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][setting], true, "{setting}");
    }
    let distribution_arn =
        "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}";
    let mut actions = BTreeSet::new();
    for s in bucket_statements(&template) {
        assert_eq!(s["Principal"], json!({"Service": "cloudfront.amazonaws.com"}));
        assert_eq!(s["Condition"]["StringEquals"]["AWS:SourceArn"]["!Sub"], distribution_arn);
        assert!(s["Condition"].get("aws:Referer").is_none());
        actions.insert(s["Action"].as_str().unwrap().to_owned());
    }
    assert_eq!(actions, BTreeSet::from(["s3:GetObject".into(), "s3:ListBucket".into()]));

    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    let origins = config["Origins"].as_array().unwrap();
    let ids: BTreeSet<&str> = origins.iter().map(|o| o["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["bucket", "resizer", "api"]));
    let bucket_origin = origins.iter().find(|o| o["Id"] == "bucket").unwrap();
    assert_eq!(
        bucket_origin["OriginAccessControlId"],
        json!({"!Ref": "BucketOriginAccessControl"})
    );
    assert!(bucket_origin.get("OriginCustomHeaders").is_none(), "no Referer secret");
    let resizer = origins.iter().find(|o| o["Id"] == "resizer").unwrap();
    assert_eq!(resizer["OriginAccessControlId"], json!({"!Ref": "ResizerOriginAccessControl"}));
    let group = &config["OriginGroups"]["Items"][0];
    assert_eq!(group["FailoverCriteria"]["StatusCodes"]["Items"], json!([403, 404]));
    assert_eq!(group["Members"]["Items"], json!([{"OriginId": "bucket"}, {"OriginId": "resizer"}]));
    for (oac, kind) in
        [("BucketOriginAccessControl", "s3"), ("ResizerOriginAccessControl", "lambda")]
    {
        let config = &resource(&template, oac)["Properties"]["OriginAccessControlConfig"];
        assert_eq!(config["OriginAccessControlOriginType"], kind);
        assert_eq!(config["SigningBehavior"], "always");
    }

    // The function URL takes IAM auth, and CloudFront's service principal both grants Lambda
    // asks of function URLs made since October 2025, scoped to this distribution.
    let url = resource(&template, "ResizerFunctionUrl")["Properties"].clone();
    assert_eq!(url["AuthType"], "AWS_IAM");
    let mut granted = BTreeSet::new();
    for name in ["ResizerUrlInvokeUrlPermission", "ResizerUrlInvokeFunctionPermission"] {
        let p = resource(&template, name)["Properties"].clone();
        assert_eq!(p["Principal"], "cloudfront.amazonaws.com");
        assert_eq!(p["SourceArn"]["!Sub"], distribution_arn);
        match p["Action"].as_str().unwrap() {
            "lambda:InvokeFunctionUrl" => assert_eq!(p["FunctionUrlAuthType"], "AWS_IAM"),
            "lambda:InvokeFunction" => assert_eq!(p["InvokedViaFunctionUrl"], true),
            other => panic!("{other}"),
        }
        granted.insert(p["Action"].as_str().unwrap().to_owned());
    }
    assert_eq!(granted.len(), 2);
    // No resize route on the API, no website origin.
    assert!(absent(&template, "ResizeGetRoute") && absent(&template, "ResizerIntegration"));
}

#[test]
fn redirect_mode_has_no_function_url_origin_group_or_origin_access_control() {
    let template = read(DeliveryMode::Redirect, &[]);
    for name in [
        "ResizerFunctionUrl",
        "ResizerUrlInvokeUrlPermission",
        "ResizerUrlInvokeFunctionPermission",
        "BucketOriginAccessControl",
        "ResizerOriginAccessControl",
    ] {
        assert!(absent(&template, name), "{name}");
    }
    let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
    assert!(config.get("OriginGroups").is_none());
}

#[test]
fn the_bucket_is_encrypted_versioned_cleaned_up_and_takes_browser_uploads() {
    for mode in e2e::MODES {
        let bucket = resource(&read(mode, &[]), "ImagesBucket")["Properties"].clone();
        assert_eq!(bucket["BucketName"], json!({"!Ref": "BucketName"}));
        let sse = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256");
        assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
        let rules = bucket["LifecycleConfiguration"]["Rules"].as_array().unwrap();
        assert!(rules
            .iter()
            .any(|r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1));
        let cors = &bucket["CorsConfiguration"]["CorsRules"][0];
        assert_eq!(cors["AllowedOrigins"], json!({"!Ref": "UploadCorsOrigins"}));
        assert_eq!(cors["ExposedHeaders"], json!(["ETag"]));
        // The headers the signer signs into presigned PUTs, which browsers must send.
        for header in [
            "content-type",
            "if-none-match",
            "cache-control",
            "content-disposition",
            "content-encoding",
        ] {
            assert!(
                cors["AllowedHeaders"].as_array().unwrap().contains(&json!(header)),
                "{header}"
            );
        }
    }
}

/// A minimal renderer for the intrinsics in the resizer's write grant: `Fn::Sub` (both
/// forms), `Fn::Select`, `Fn::Split`, with the given parameter values.
fn render(value: &Value, params: &HashMap<&str, &str>) -> Value {
    let sub = |text: &str, vars: &HashMap<String, String>| {
        let mut out = text.to_owned();
        for (k, v) in vars {
            out = out.replace(&format!("${{{k}}}"), v);
        }
        for (k, v) in params {
            out = out.replace(&format!("${{{k}}}"), v);
        }
        assert!(!out.contains("${"), "unrendered {out}");
        out
    };
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, params)).collect()),
        Value::String(s) => Value::String(s.clone()),
        Value::Object(map) if map.len() == 1 => {
            let (name, arg) = map.iter().next().unwrap();
            match name.as_str() {
                "!Sub" => match arg {
                    Value::String(text) => json!(sub(text, &HashMap::new())),
                    Value::Array(parts) => {
                        let vars: HashMap<String, String> = parts[1]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| {
                                (k.clone(), render(v, params).as_str().unwrap().to_owned())
                            })
                            .collect();
                        json!(sub(parts[0].as_str().unwrap(), &vars))
                    }
                    other => panic!("Sub {other}"),
                },
                "!Split" => {
                    let delimiter = arg[0].as_str().unwrap();
                    let text = render(&arg[1], params);
                    json!(text.as_str().unwrap().split(delimiter).collect::<Vec<_>>())
                }
                "!Select" => {
                    let index = arg[0].as_u64().unwrap() as usize;
                    render(&arg[1], params)[index].clone()
                }
                other => panic!("cannot render {other}"),
            }
        }
        other => panic!("cannot render {other}"),
    }
}

/// The S3 object keys `arns` let a role write, as IAM matches them.
fn writable(arns: &[String], key: &str) -> bool {
    arns.iter().any(|arn| wildcard_match(arn, &format!("arn:aws:s3:::images/{key}")))
}

fn statements(template: &Template, function: &str) -> Vec<Value> {
    resource(template, function)["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_resizer_reads_anything_and_creates_only_derivatives_of_the_allowed_sizes() {
    for (sizes, allowed, refused) in [
        (
            "200x200,300x300,320x,640x,1024x,1280x",
            vec!["300x300/photos/cat.jpg", "640x/a/b.png", "1280x/x.jpg"],
            vec![
                "photos/cat.jpg",
                "300x301/a.jpg",
                "300x3000/a.jpg",
                "640x640/a.jpg",
                "x640/a.jpg",
            ],
        ),
        ("x200", vec!["x200/a.jpg"], vec!["200x200/a.jpg", "a.jpg"]),
        // Empty: any size, so any key; writes stay create-only.
        ("", vec!["300x300/a.jpg", "photos/a.jpg"], vec![]),
    ] {
        let template = read(DeliveryMode::Redirect, &[("AllowedResolutions", sizes)]);
        let statements = statements(&template, "ResizerFunction");
        let mut actions = BTreeSet::new();
        for s in &statements {
            assert_eq!(s["Effect"], "Allow");
            actions.insert(s["Action"].as_str().unwrap().to_owned());
        }
        assert_eq!(actions, BTreeSet::from(["s3:GetObject".into(), "s3:PutObject".into()]));
        let read_grant = statements.iter().find(|s| s["Action"] == "s3:GetObject").unwrap();
        assert_eq!(read_grant["Resource"]["!Sub"], "arn:${AWS::Partition}:s3:::${BucketName}/*");
        let write = statements.iter().find(|s| s["Action"] == "s3:PutObject").unwrap();
        // Only with If-None-Match: * (IAM's Null condition: the key must be present).
        assert_eq!(write["Condition"], json!({"Null": {"s3:if-none-match": "false"}}));
        let params = HashMap::from([
            ("AWS::Partition", "aws"),
            ("BucketName", "images"),
            ("AllowedResolutions", sizes),
        ]);
        let rendered = render(&write["Resource"], &params);
        let arns: Vec<String> = match rendered {
            Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            Value::String(one) => vec![one],
            other => panic!("{other}"),
        };
        for key in allowed {
            assert!(writable(&arns, key), "{sizes:?}: {key} should be writable: {arns:?}");
        }
        for key in refused {
            assert!(!writable(&arns, key), "{sizes:?}: {key} should not be writable: {arns:?}");
        }
    }
}

#[test]
fn the_signer_writes_only_uploads_reads_only_what_it_hands_out_and_its_secret() {
    let template = read(DeliveryMode::Redirect, &[]);
    let mut grants = BTreeSet::new();
    for statement in statements(&template, "SignerFunction") {
        assert_eq!(statement["Effect"], "Allow");
        let list = |v: &Value| match v {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        for action in list(&statement["Action"]) {
            for resource in list(&statement["Resource"]) {
                let resource = resource.get("!Sub").or(resource.get("!Ref")).unwrap().clone();
                let condition =
                    statement.get("Condition").map(Value::to_string).unwrap_or_default();
                grants.insert(format!(
                    "{} {} {condition}",
                    action.as_str().unwrap(),
                    resource.as_str().unwrap()
                ));
            }
        }
    }
    let objects = "arn:${AWS::Partition}:s3:::${BucketName}";
    let expected: BTreeSet<String> = [
        // Not conditioned on If-None-Match: a POST form upload cannot carry it.
        format!("s3:PutObject {objects}/uploads/* "),
        format!("s3:AbortMultipartUpload {objects}/uploads/* "),
        format!("s3:GetObject {objects}/uploads/* "),
        format!("s3:GetObject {objects}/private/galleries/* "),
        "secretsmanager:GetSecretValue CloudFrontPrivateKeySecretArn ".to_owned(),
    ]
    .into();
    assert_eq!(grants, expected);
}

#[test]
fn the_api_routes_are_the_modes_and_only_the_signer_needs_a_jwt() {
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        let mut routes = BTreeSet::new();
        for (_, route) in template.resources_of("AWS::ApiGatewayV2::Route").unwrap() {
            let p = &route["Properties"];
            routes.insert(format!(
                "{} {}",
                p["RouteKey"].as_str().unwrap(),
                p["AuthorizationType"].as_str().unwrap()
            ));
        }
        let mut expected = BTreeSet::from(["ANY /api/{proxy+} JWT".to_owned()]);
        if mode == DeliveryMode::Redirect {
            expected.insert("GET /resize/{proxy+} NONE".into());
            expected.insert("HEAD /resize/{proxy+} NONE".into());
        }
        assert_eq!(routes, expected, "{mode}");
        let jwt = &resource(&template, "JwtAuthorizer")["Properties"]["JwtConfiguration"];
        assert_eq!(jwt["Issuer"], json!({"!Ref": "JwtIssuer"}));
        assert_eq!(jwt["Audience"], json!({"!Ref": "JwtAudience"}));
        // Both functions are told the mode and the secret CloudFront adds to the API origin.
        for function in ["ResizerFunction", "SignerFunction"] {
            let env = &resource(&template, function)["Properties"]["Environment"]["Variables"];
            assert_eq!(env["DELIVERY_MODE"], json!({"!Ref": "DeliveryMode"}), "{function}");
            assert_eq!(env["ORIGIN_VERIFY_SECRET"], json!({"!Ref": "OriginVerifySecret"}));
            assert_eq!(env["REDIRECT_KEY_ENCODING"], json!({"!Ref": "RedirectKeyEncoding"}));
        }
        let config = &resource(&template, "Distribution")["Properties"]["DistributionConfig"];
        let api = config["Origins"].as_array().unwrap().iter().find(|o| o["Id"] == "api").unwrap();
        let header = &api["OriginCustomHeaders"][0];
        assert_eq!(header["HeaderName"], "x-origin-verify");
        assert_eq!(header["HeaderValue"], json!({"!Ref": "OriginVerifySecret"}));
    }
}

#[test]
fn the_stack_outputs_what_each_mode_has_and_keeps_its_logs() {
    for (mode, present, missing) in [
        (DeliveryMode::Redirect, "WebsiteEndpoint", "ResizerFunctionUrl"),
        (DeliveryMode::Failover, "ResizerFunctionUrl", "WebsiteEndpoint"),
    ] {
        let outputs = crate::template::outputs(mode);
        for output in ["SiteUrl", "DeliveryMode", "DistributionDomainName", "ApiUrl", present] {
            assert!(outputs.contains(output), "{mode}: no output {output}");
        }
        assert!(!outputs.contains(missing), "{mode}: {missing}");
        let template = read(mode, &[]);
        for (function, group) in
            [("ResizerFunction", "ResizerLogGroup"), ("SignerFunction", "SignerLogGroup")]
        {
            let logging = &resource(&template, function)["Properties"]["LoggingConfig"];
            assert_eq!(logging["LogGroup"], json!({"!Ref": group}));
            let retention = &resource(&template, group)["Properties"]["RetentionInDays"];
            assert_eq!(retention, &json!({"!Ref": "LogRetentionDays"}));
        }
    }
}

/// The outputs that exist in `mode` (an output's Condition decides).
fn outputs(mode: DeliveryMode) -> BTreeSet<String> {
    let template = read(mode, &[]);
    let raw = devserver::cloudformation::yaml_to_json(TEMPLATE).unwrap();
    raw["Outputs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, o)| {
            o.get("Condition").and_then(Value::as_str).is_none_or(|c| template.is(c).unwrap())
        })
        .map(|(name, _)| name.clone())
        .collect()
}
