//! template.yaml against the code it deploys, in both delivery modes (each read with the
//! devserver's CloudFormation evaluator for that mode's DeliveryMode): the bucket's routing
//! rules are website-rules.json's, the bucket is private in failover mode, the roles grant no
//! more than listed (the resizer writes only new objects under the allowed size prefixes),
//! the routes, origins, origin group, permissions and outputs are those of the mode; the
//! bucket's events reach the events function through a queue with a dead-letter queue, and
//! its role deletes only allowed sizes and uploads; the dashboard is JSON naming every metric
//! the functions emit, and the alarms tell the alarm topic; the limits on the bill: the
//! resizer's reserved concurrency, a throttle for every route under its exact route key, the
//! optional web ACL (per IP address, us-east-1 only).

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
            vec![
                "300x300/photos/cat.jpg",
                "640x/a/b.png",
                "1280x/x.jpg",
                // A size with its format (the edge's negotiation, explicit formats).
                "300x300.avif/photos/cat.jpg",
                "640x.webp/a/b.png",
            ],
            vec![
                "photos/cat.jpg",
                "300x301/a.jpg",
                "300x3000/a.jpg",
                "640x640/a.jpg",
                "x640/a.jpg",
                "300x301.avif/a.jpg",
                "300x300avif/a.jpg",
                "300x3000.webp/a.jpg",
                "300x300.avif",
            ],
        ),
        // One size: the other fifteen slots name it again, not a filler folder such as 0x0/,
        // which an original may live in.
        (
            "x200",
            vec!["x200/a.jpg", "x200.webp/a.jpg"],
            vec!["200x200/a.jpg", "a.jpg", "0x0/a.jpg", "x2000.webp/a.jpg"],
        ),
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
        for output in [
            "SiteUrl",
            "DeliveryMode",
            "DistributionDomainName",
            "ApiUrl",
            "EventsQueueUrl",
            "DeadLetterQueueUrl",
            "AlarmTopicArn",
            "DashboardName",
            "DashboardUrl",
            present,
        ] {
            assert!(outputs.contains(output), "{mode}: no output {output}");
        }
        assert!(!outputs.contains(missing), "{mode}: {missing}");
        let template = read(mode, &[]);
        for (function, group) in [
            ("ResizerFunction", "ResizerLogGroup"),
            ("SignerFunction", "SignerLogGroup"),
            ("EventsFunction", "EventsLogGroup"),
        ] {
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

// --- Events, purge and pregeneration; metrics, dashboard and alarms (issue 14) ---------

/// The ARNs a statement's `Resource` (one ARN, or a list) renders to with `sizes` as
/// AllowedResolutions.
fn rendered_arns(resource: &Value, sizes: &str) -> Vec<String> {
    let params = HashMap::from([
        ("AWS::Partition", "aws"),
        ("AWS::AccountId", "111122223333"),
        ("BucketName", "images"),
        ("Distribution", "E2DIST"),
        ("AllowedResolutions", sizes),
    ]);
    match render(resource, &params) {
        Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        Value::String(one) => vec![one],
        other => panic!("{other}"),
    }
}

/// The statements among `statements` that allow `action`.
fn granting(statements: &[Value], action: &str) -> Vec<Value> {
    statements.iter().filter(|s| s["Action"] == action).cloned().collect()
}

/// The template as written (conditions unevaluated), for what the evaluator does not keep.
fn raw() -> Value {
    devserver::cloudformation::yaml_to_json(TEMPLATE).unwrap()
}

#[test]
fn the_bucket_tells_the_events_queue_of_every_create_and_remove_once_the_queue_lets_it() {
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        let bucket = resource(&template, "ImagesBucket");
        // S3 checks it may send to the queue when the configuration is set: the queue's
        // policy must exist first.
        let depends: Vec<Value> = match &bucket["DependsOn"] {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        assert!(depends.contains(&json!("EventsQueuePolicy")), "{mode}: DependsOn {depends:?}");
        let queue_arn = json!({"!GetAtt": "EventsQueue.Arn"});
        let mut events = BTreeSet::new();
        for rule in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
            .as_array()
            .expect("QueueConfigurations")
        {
            assert_eq!(rule["Queue"], queue_arn, "{mode}");
            assert!(rule.get("Filter").is_none(), "{mode}: every key, derivatives included");
            events.insert(rule["Event"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            events,
            BTreeSet::from(["s3:ObjectCreated:*".to_owned(), "s3:ObjectRemoved:*".to_owned()]),
            "{mode}"
        );

        // Only this account's bucket may send, and only send; the bucket's ARN is built from
        // its name (the bucket depends on this policy).
        let policy = resource(&template, "EventsQueuePolicy")["Properties"].clone();
        assert_eq!(policy["Queues"], json!([{"!Ref": "EventsQueue"}]));
        let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Principal"], json!({"Service": "s3.amazonaws.com"}));
        assert_eq!(s["Action"], "sqs:SendMessage");
        assert_eq!(s["Resource"], queue_arn);
        let source = s["Condition"]["ArnEquals"]["aws:SourceArn"]
            .get("!Sub")
            .or(s["Condition"]["ArnLike"]["aws:SourceArn"].get("!Sub"))
            .expect("aws:SourceArn")
            .clone();
        assert_eq!(source, "arn:${AWS::Partition}:s3:::${BucketName}");
        assert_eq!(
            s["Condition"]["StringEquals"]["aws:SourceAccount"],
            json!({"!Ref": "AWS::AccountId"})
        );
    }
}

#[test]
fn an_event_that_fails_five_times_waits_fourteen_days_in_the_dead_letter_queue() {
    let template = read(DeliveryMode::Redirect, &[]);
    let queue = resource(&template, "EventsQueue")["Properties"].clone();
    let dlq = resource(&template, "EventsDeadLetterQueue")["Properties"].clone();
    assert_eq!(
        queue["RedrivePolicy"],
        json!({"deadLetterTargetArn": {"!GetAtt": "EventsDeadLetterQueue.Arn"}, "maxReceiveCount": 5})
    );
    assert_eq!(dlq["MessageRetentionPeriod"], 14 * 24 * 3600);
    assert!(dlq.get("RedrivePolicy").is_none());
    let queue_retention = queue["MessageRetentionPeriod"].as_u64().unwrap_or(4 * 24 * 3600);
    assert!(queue_retention < 14 * 24 * 3600, "a message must not outlive its queue's DLQ");
    for q in [&queue, &dlq] {
        assert_eq!(q["SqsManagedSseEnabled"], true);
    }
    // Lambda asks an SQS source's visibility timeout to be at least six times the function's
    // timeout, or a message still being handled is handed out again.
    let function = resource(&template, "EventsFunction")["Properties"].clone();
    let timeout = function["Timeout"].as_u64().expect("a literal Timeout");
    assert!(
        queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout,
        "visibility {} < 6 x {timeout}",
        queue["VisibilityTimeout"]
    );
    let sources: Vec<&Value> = function["Events"]
        .as_object()
        .expect("Events")
        .values()
        .filter(|e| e["Type"] == "SQS")
        .collect();
    assert_eq!(sources.len(), 1);
    let source = &sources[0]["Properties"];
    assert_eq!(source["Queue"], json!({"!GetAtt": "EventsQueue.Arn"}));
    // One message an invocation: each may read an original and make every PREGENERATE
    // size, so a batch of ten could outlast the function's timeout and send back the
    // messages that had been done.
    assert_eq!(source["BatchSize"], 1);
    assert_eq!(source["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]));
}

#[test]
fn the_events_function_runs_the_events_binary_with_the_resizers_limits_and_its_own_lists() {
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        let events = resource(&template, "EventsFunction");
        let resizer = resource(&template, "ResizerFunction");
        assert_eq!(events["Metadata"]["BuildMethod"], "rust-cargolambda");
        assert_eq!(events["Metadata"]["BuildProperties"]["Binary"], "events");
        assert_eq!(events["Properties"]["MemorySize"], resizer["Properties"]["MemorySize"]);
        let env = &events["Properties"]["Environment"]["Variables"];
        let resizer_env = &resizer["Properties"]["Environment"]["Variables"];
        for shared in [
            "BUCKET",
            "ALLOWED_RESOLUTIONS",
            "MAX_DIMENSION",
            "MAX_SOURCE_BYTES",
            "MAX_SOURCE_PIXELS",
            "MAX_SOURCE_FRAMES",
            "MAX_SOURCE_ANIMATION_PIXELS",
            "ALLOWED_FORMATS",
            "DERIVATIVE_CACHE_CONTROL",
            "RUST_LOG",
        ] {
            assert!(!env[shared].is_null(), "{mode}: {shared}");
            assert_eq!(env[shared], resizer_env[shared], "{mode}: {shared}");
        }
        assert_eq!(env["PREGENERATE"], json!({"!Ref": "Pregenerate"}));
        assert_eq!(env["DISTRIBUTION_ID"], json!({"!Ref": "Distribution"}));
        // It answers no viewer: no secret of CloudFront's to hold.
        assert!(env.get("ORIGIN_VERIFY_SECRET").is_none());
    }
    // Pregenerate takes the sizes AllowedResolutions takes, and none by default.
    let raw = raw();
    let (pregenerate, allowed) =
        (&raw["Parameters"]["Pregenerate"], &raw["Parameters"]["AllowedResolutions"]);
    assert_eq!(pregenerate["Default"], "");
    assert_eq!(pregenerate["AllowedPattern"], allowed["AllowedPattern"]);
    let pattern = regex::Regex::new(pregenerate["AllowedPattern"].as_str().unwrap()).unwrap();
    for ok in ["", "200x200", "200x200,640x,x100"] {
        assert!(pattern.is_match(ok), "{ok:?}");
    }
    for bad in ["200x200, 640x", "0x100", "x", "abc"] {
        assert!(!pattern.is_match(bad), "{bad:?}");
    }
}

#[test]
fn the_events_function_deletes_only_allowed_sizes_and_uploads_and_creates_only_allowed_sizes() {
    for (sizes, sized, refused) in [
        (
            "200x200,300x300,320x,640x,1024x,1280x",
            vec![
                "300x300/photos/cat.jpg",
                "640x/a/b.png",
                "1280x/uploads/u/x.jpg",
                "300x300.avif/photos/cat.jpg",
                "1280x.webp/uploads/u/x.jpg",
            ],
            vec!["300x301/a.jpg", "640x640/a.jpg", "x640/a.jpg", "300x301.avif/a.jpg"],
        ),
        ("x200", vec!["x200/a.jpg", "x200.png/a.jpg"], vec!["200x200/a.jpg", "200x200.png/a.jpg"]),
        // Sixteen, the most: every slot holds a size.
        (
            "1x,2x,3x,4x,5x,6x,7x,8x,9x,10x,11x,12x,13x,14x,15x,16x",
            vec!["1x/a.jpg", "9x/a.jpg", "15x/a.jpg", "16x/a.jpg"],
            vec!["17x/a.jpg", "0x0/a.jpg"],
        ),
        // Empty: any size is allowed, so an original's sizes cannot be named from the lists
        // and nothing is purged: no delete of sizes at all.
        ("", vec![], vec!["300x300/a.jpg", "x200/a.jpg"]),
    ] {
        let template = read(DeliveryMode::Redirect, &[("AllowedResolutions", sizes)]);
        let grants = statements(&template, "EventsFunction");
        let mut actions = BTreeSet::new();
        for s in &grants {
            assert_eq!(s["Effect"], "Allow");
            actions.insert(s["Action"].as_str().expect("one action a statement").to_owned());
        }
        assert_eq!(
            actions,
            BTreeSet::from([
                "s3:GetObject".to_owned(),
                "s3:ListBucket".into(),
                "s3:PutObject".into(),
                "s3:DeleteObject".into(),
                "cloudfront:CreateInvalidation".into(),
            ]),
            "{sizes:?}"
        );
        let one = |action: &str| {
            let found = granting(&grants, action);
            assert_eq!(found.len(), 1, "{sizes:?}: {action}");
            found[0].clone()
        };
        let bucket = "arn:${AWS::Partition}:s3:::${BucketName}";
        assert_eq!(one("s3:GetObject")["Resource"]["!Sub"], format!("{bucket}/*"));
        assert_eq!(one("s3:ListBucket")["Resource"]["!Sub"], bucket);
        assert_eq!(
            one("cloudfront:CreateInvalidation")["Resource"]["!Sub"],
            "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"
        );

        // Writes: the resizer's grant exactly (the same 16 slots), create-only.
        let write = one("s3:PutObject");
        let resizer_statements = statements(&template, "ResizerFunction");
        let resizer_write = &granting(&resizer_statements, "s3:PutObject")[0];
        assert_eq!(write["Condition"], json!({"Null": {"s3:if-none-match": "false"}}));
        assert_eq!(write["Condition"], resizer_write["Condition"]);
        let writable_arns = rendered_arns(&write["Resource"], sizes);
        assert_eq!(writable_arns, rendered_arns(&resizer_write["Resource"], sizes), "{sizes:?}");
        if !sizes.is_empty() {
            // Each of the 16 slots as written and with a format.
            assert_eq!(writable_arns.len(), 32, "{sizes:?}");
            for key in &sized {
                assert!(writable(&writable_arns, key), "{sizes:?}: {key} should be writable");
            }
            for key in refused.iter().chain(&["photos/cat.jpg", "uploads/u/a.jpg", "0x0/a.jpg"]) {
                assert!(!writable(&writable_arns, key), "{sizes:?}: {key} writable");
            }
        }

        // Deletes: the allowed sizes, and uploads/ (rejected uploads); never another
        // original.
        let mut deletable_arns = Vec::new();
        for s in granting(&grants, "s3:DeleteObject") {
            assert!(s.get("Condition").is_none());
            deletable_arns.extend(rendered_arns(&s["Resource"], sizes));
        }
        for key in sized.iter().chain(&["uploads/u/a.jpg", "uploads/x.png"]) {
            assert!(writable(&deletable_arns, key), "{sizes:?}: {key} should be deletable");
        }
        // 0x0/ is an original's folder like any other (not a size the grammar takes): a
        // filler slot naming it would let the role delete originals there.
        for key in refused.iter().chain(&[
            "photos/cat.jpg",
            "a.jpg",
            "private/galleries/g/a.jpg",
            "resize/300x300/a.jpg",
            "0x0/a.jpg",
        ]) {
            assert!(
                !writable(&deletable_arns, key),
                "{sizes:?}: {key} deletable: {deletable_arns:?}"
            );
        }
        // Nothing but the size slots (unused ones repeat an allowed size) and the one
        // uploads/ grant.
        let uploads = "arn:aws:s3:::images/uploads/*".to_owned();
        assert_eq!(deletable_arns.iter().filter(|a| **a == uploads).count(), 1);
        let expected_slots = if sizes.is_empty() { 0 } else { 32 };
        assert_eq!(deletable_arns.len(), expected_slots + 1, "{sizes:?}: {deletable_arns:?}");
        if !sizes.is_empty() {
            // The size slots are the write grant's.
            let slots: Vec<&String> = deletable_arns.iter().filter(|a| **a != uploads).collect();
            assert_eq!(slots, writable_arns.iter().collect::<Vec<_>>());
        }
    }
}

/// The contract the functions' embedded-metric-format lines follow (namespace
/// `ResizeOnMiss`): the resizer's per-miss metrics, then the events function's.
const EMF_METRICS: [&str; 16] = [
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
    "BytesOut",
    "Purges",
    "PurgedObjects",
    "Pregenerated",
    "RejectedUploads",
    "Invalidations",
];

/// One metric row of a dashboard widget.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    region: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    stat: String,
}

/// The dashboard's body with every `${...}` replaced by its name (`${Distribution}` becomes
/// `Distribution`), each checked to name a parameter, a pseudo parameter, a resource or a
/// resource's attribute; then parsed as JSON.
fn dashboard_body() -> Value {
    let raw = raw();
    let body = raw["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
        .as_str()
        .expect("DashboardBody: !Sub with a JSON string")
        .to_owned();
    let placeholder = regex::Regex::new(r"\$\{([^}]*)\}").unwrap();
    for found in placeholder.captures_iter(&body) {
        let name = &found[1];
        let known = name.starts_with("AWS::")
            || raw["Parameters"].get(name).is_some()
            || raw["Resources"].get(name.split('.').next().unwrap()).is_some();
        assert!(known, "${{{name}}} names nothing in the template");
    }
    let substituted = placeholder.replace_all(&body, "$1");
    serde_json::from_str(&substituted)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{substituted}"))
}

/// Every metric row and every expression of the dashboard's metric widgets.
fn dashboard_rows(body: &Value) -> (BTreeSet<Row>, Vec<String>) {
    let mut rows = BTreeSet::new();
    let mut expressions = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        if widget["type"] != "metric" {
            continue;
        }
        let p = &widget["properties"];
        let region = p["region"].as_str().expect("each metric widget names its region");
        for row in p["metrics"].as_array().expect("metrics") {
            let items = row.as_array().unwrap();
            let (names, options): (Vec<&Value>, Vec<&Value>) =
                items.iter().partition(|v| v.is_string());
            let options = options.first().copied().cloned().unwrap_or(json!({}));
            if let Some(expression) = options["expression"].as_str() {
                assert!(names.is_empty());
                expressions.push(expression.to_owned());
                continue;
            }
            let names: Vec<&str> = names.iter().map(|v| v.as_str().unwrap()).collect();
            assert!(names.len() >= 2 && names.len().is_multiple_of(2), "{row}");
            assert!(!names.contains(&".") && !names.contains(&"..."), "spelled out: {row}");
            let stat = options["stat"].as_str().or(p["stat"].as_str()).expect("a stat");
            rows.insert(Row {
                region: region.to_owned(),
                namespace: names[0].to_owned(),
                metric: names[1].to_owned(),
                dimensions: names[2..]
                    .chunks(2)
                    .map(|d| (d[0].to_owned(), d[1].to_owned()))
                    .collect(),
                stat: stat.to_owned(),
            });
        }
    }
    (rows, expressions)
}

#[test]
fn the_dashboard_is_json_and_shows_every_metric_the_functions_emit() {
    let body = dashboard_body();
    let (rows, expressions) = dashboard_rows(&body);
    let here = "AWS::Region";
    let has = |namespace: &str, metric: &str, dimensions: &[(&str, &str)], stat: &str| {
        rows.iter().any(|r| {
            r.namespace == namespace
                && r.metric == metric
                && r.stat == stat
                && r.dimensions
                    == dimensions
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<Vec<_>>()
        })
    };
    // Every metric of the contract, with no dimension, in the stack's region.
    for metric in EMF_METRICS {
        assert!(
            rows.iter().any(|r| r.namespace == "ResizeOnMiss"
                && r.metric == metric
                && r.dimensions.is_empty()
                && r.region == here),
            "the dashboard does not show ResizeOnMiss {metric}"
        );
    }
    for (metric, stat) in [("Misses", "Sum"), ("Errors", "Sum"), ("ServerErrors", "Sum")] {
        assert!(has("ResizeOnMiss", metric, &[], stat), "{metric} {stat}");
    }
    for metric in ["Latency", "DecodeTime", "EncodeTime"] {
        for stat in ["p50", "p99"] {
            assert!(has("ResizeOnMiss", metric, &[], stat), "{metric} {stat}");
        }
    }
    for metric in ["Purges", "PurgedObjects", "Pregenerated", "RejectedUploads", "Invalidations"] {
        assert!(has("ResizeOnMiss", metric, &[], "Sum"), "{metric}");
    }
    // Errors by outcome: a search over the Outcome dimension.
    assert!(
        expressions.iter().any(|e| e.starts_with("SEARCH(")
            && e.contains("{ResizeOnMiss,Outcome}")
            && e.contains(r#"MetricName="Errors""#)),
        "{expressions:?}"
    );
    // The three functions' duration, errors and throttles.
    for function in ["ResizerFunction", "SignerFunction", "EventsFunction"] {
        let f = [("FunctionName", function)];
        for stat in ["p50", "p99"] {
            assert!(has("AWS/Lambda", "Duration", &f, stat), "{function} Duration {stat}");
        }
        for metric in ["Errors", "Throttles"] {
            assert!(has("AWS/Lambda", metric, &f, "Sum"), "{function} {metric}");
        }
    }
    // CloudFront's, read where they are (us-east-1) whatever the stack's region.
    let distribution = [("Region", "Global"), ("DistributionId", "Distribution")];
    assert!(has("AWS/CloudFront", "Requests", &distribution, "Sum"));
    for metric in ["4xxErrorRate", "5xxErrorRate", "CacheHitRate"] {
        assert!(has("AWS/CloudFront", metric, &distribution, "Average"), "{metric}");
    }
    for r in rows.iter().filter(|r| r.namespace == "AWS/CloudFront") {
        assert_eq!(r.region, "us-east-1", "{r:?}");
    }
    for r in rows.iter().filter(|r| r.namespace != "AWS/CloudFront") {
        assert_eq!(r.region, here, "{r:?}");
    }
    // The queue and its dead letters.
    for queue in ["EventsQueue.QueueName", "EventsDeadLetterQueue.QueueName"] {
        assert!(
            has(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", queue)],
                "Maximum"
            ),
            "{queue}"
        );
    }
}

/// The alarms that exist for these parameters (in the evaluator's region, us-east-1).
fn alarms(template: &Template) -> HashMap<String, Value> {
    template
        .resources_of("AWS::CloudWatch::Alarm")
        .unwrap()
        .into_iter()
        .map(|(name, alarm)| (name, alarm["Properties"].clone()))
        .collect()
}

#[test]
fn every_alarm_tells_the_topic_which_mails_the_alarm_email_when_one_is_given() {
    let template = read(DeliveryMode::Redirect, &[]);
    let alarms = alarms(&template);
    let names: BTreeSet<&str> = alarms.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "ResizerErrorRateAlarm",
            "CloudFront5xxRateAlarm",
            "ResizerThrottlesAlarm",
            "SignerThrottlesAlarm",
            "EventsThrottlesAlarm",
            "EventsDeadLetterAlarm",
        ])
    );
    let topic = json!([{"!Ref": "AlarmTopic"}]);
    for (name, alarm) in &alarms {
        assert_eq!(alarm["AlarmActions"], topic, "{name}");
        assert_eq!(alarm["OKActions"], topic, "{name}");
        // A quiet service is not an alarming one.
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "{name}");
    }
    assert_eq!(resource(&template, "AlarmTopic")["Type"], "AWS::SNS::Topic");
    assert!(absent(&template, "AlarmEmailSubscription"), "no e-mail, no subscription");
    let with_email = read(DeliveryMode::Redirect, &[("AlarmEmail", "ops@example.com")]);
    let subscription = resource(&with_email, "AlarmEmailSubscription")["Properties"].clone();
    assert_eq!(subscription["Protocol"], "email");
    assert_eq!(subscription["Endpoint"], json!({"!Ref": "AlarmEmail"}));
    assert_eq!(subscription["TopicArn"], json!({"!Ref": "AlarmTopic"}));
}

#[test]
fn the_alarms_watch_5xx_per_miss_cloudfront_5xx_throttles_and_dead_letters() {
    let template = read(DeliveryMode::Failover, &[]);
    let alarms = alarms(&template);
    let over = |name: &str, threshold: u64| {
        let a = &alarms[name];
        assert_eq!(a["ComparisonOperator"], "GreaterThanThreshold", "{name}");
        assert_eq!(a["Threshold"], threshold, "{name}");
        a.clone()
    };

    // 5xx answers per miss, over 5 minutes, above 5%: ServerErrors, since anyone can raise
    // Errors (asking for originals that do not exist).
    let rate = over("ResizerErrorRateAlarm", 5);
    assert_eq!(rate["EvaluationPeriods"], 1);
    let metrics = rate["Metrics"].as_array().expect("metric math");
    let stat = |id: &str| {
        let m = metrics.iter().find(|m| m["Id"] == id).unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(m["ReturnData"], false);
        m["MetricStat"].clone()
    };
    for (id, metric) in [("server_errors", "ServerErrors"), ("misses", "Misses")] {
        let s = stat(id);
        assert_eq!(s["Metric"], json!({"Namespace": "ResizeOnMiss", "MetricName": metric}));
        assert_eq!((&s["Stat"], &s["Period"]), (&json!("Sum"), &json!(300)), "{id}");
    }
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    let expression = returned[0]["Expression"].as_str().unwrap().replace(' ', "");
    assert!(expression.contains("100*server_errors/misses"), "{expression}");

    // CloudFront's 5xx rate, where CloudFront's metrics are (the alarm exists only in a
    // stack in us-east-1: the evaluator's region).
    let cloudfront = over("CloudFront5xxRateAlarm", 5);
    assert_eq!(
        (&cloudfront["Namespace"], &cloudfront["MetricName"]),
        (&json!("AWS/CloudFront"), &json!("5xxErrorRate"))
    );
    assert_eq!(
        cloudfront["Dimensions"],
        json!([
            {"Name": "DistributionId", "Value": {"!Ref": "Distribution"}},
            {"Name": "Region", "Value": "Global"}
        ])
    );
    assert_eq!(cloudfront["Statistic"], "Average");
    let raw = raw();
    let condition = raw["Resources"]["CloudFront5xxRateAlarm"]["Condition"].as_str().unwrap();
    assert_eq!(
        raw["Conditions"][condition],
        json!({"!Equals": [{"!Ref": "AWS::Region"}, "us-east-1"]})
    );

    // Any throttle of any of the three functions.
    for (alarm, function) in [
        ("ResizerThrottlesAlarm", "ResizerFunction"),
        ("SignerThrottlesAlarm", "SignerFunction"),
        ("EventsThrottlesAlarm", "EventsFunction"),
    ] {
        let a = over(alarm, 0);
        assert_eq!(
            (&a["Namespace"], &a["MetricName"]),
            (&json!("AWS/Lambda"), &json!("Throttles"))
        );
        assert_eq!(a["Dimensions"], json!([{"Name": "FunctionName", "Value": {"!Ref": function}}]));
        assert_eq!(a["Statistic"], "Sum");
    }

    // Any message in the dead-letter queue (not the events queue).
    let dlq = over("EventsDeadLetterAlarm", 0);
    assert_eq!(
        (&dlq["Namespace"], &dlq["MetricName"]),
        (&json!("AWS/SQS"), &json!("ApproximateNumberOfMessagesVisible"))
    );
    assert_eq!(
        dlq["Dimensions"],
        json!([{"Name": "QueueName", "Value": {"!GetAtt": "EventsDeadLetterQueue.QueueName"}}])
    );
    assert_eq!(dlq["Statistic"], "Maximum");
}

#[test]
fn cloudfront_additional_metrics_cost_money_so_they_are_on_only_when_asked_for() {
    let default = read(DeliveryMode::Redirect, &[]);
    assert!(default.resources_of("AWS::CloudFront::MonitoringSubscription").unwrap().is_empty());
    let on = read(DeliveryMode::Redirect, &[("CloudFrontAdditionalMetrics", "true")]);
    let subscriptions = on.resources_of("AWS::CloudFront::MonitoringSubscription").unwrap();
    assert_eq!(subscriptions.len(), 1);
    let p = &subscriptions[0].1["Properties"];
    assert_eq!(p["DistributionId"], json!({"!Ref": "Distribution"}));
    assert_eq!(
        p["MonitoringSubscription"]["RealtimeMetricsSubscriptionConfig"]
            ["RealtimeMetricsSubscriptionStatus"],
        "Enabled"
    );
}

#[test]
fn every_parameter_is_in_one_console_group() {
    let raw = raw();
    let mut grouped = Vec::new();
    for group in
        raw["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"].as_array().unwrap()
    {
        for p in group["Parameters"].as_array().unwrap() {
            grouped.push(p.as_str().unwrap().to_owned());
        }
    }
    let declared: BTreeSet<String> =
        raw["Parameters"].as_object().unwrap().keys().cloned().collect();
    let unique: BTreeSet<String> = grouped.iter().cloned().collect();
    assert_eq!(unique.len(), grouped.len(), "a parameter in two groups: {grouped:?}");
    assert_eq!(unique, declared);
}

// --- The bill: reserved concurrency, per-route throttles, the optional WAF (issue 13) ------

/// A parameter's declaration, as written.
fn parameter(name: &str) -> Value {
    raw()["Parameters"].get(name).unwrap_or_else(|| panic!("no parameter {name}")).clone()
}

fn reserved_concurrency(template: &Template, function: &str) -> Option<Value> {
    resource(template, function)["Properties"].get("ReservedConcurrentExecutions").cloned()
}

#[test]
fn the_resizer_reserves_fifty_misses_at_once_minus_one_reserves_none_and_zero_is_a_brake() {
    let p = parameter("ResizerReservedConcurrency");
    assert_eq!(
        (&p["Type"], &p["Default"], &p["MinValue"]),
        (&json!("Number"), &json!(50), &json!(-1))
    );
    let reservation = json!({"!Ref": "ResizerReservedConcurrency"});
    for mode in e2e::MODES {
        let default = read(mode, &[]);
        assert_eq!(reserved_concurrency(&default, "ResizerFunction"), Some(reservation.clone()));
        let unreserved = read(mode, &[("ResizerReservedConcurrency", "-1")]);
        assert_eq!(reserved_concurrency(&unreserved, "ResizerFunction"), None, "{mode}: -1");
        // 0 is a reservation of nothing (Lambda throttles every miss), not "no reservation".
        let brake = read(mode, &[("ResizerReservedConcurrency", "0")]);
        assert_eq!(reserved_concurrency(&brake, "ResizerFunction"), Some(reservation.clone()));
        // Only the resizer reserves: the others keep the account's shared pool, which the
        // reservation protects from a flood of misses.
        for function in ["SignerFunction", "EventsFunction"] {
            assert_eq!(reserved_concurrency(&default, function), None, "{mode}: {function}");
        }
    }
}

#[test]
fn the_events_function_takes_at_most_events_maximum_concurrency_from_its_queue() {
    let p = parameter("EventsMaximumConcurrency");
    assert_eq!(
        (&p["Default"], &p["MinValue"], &p["MaxValue"]),
        (&json!(10), &json!(2), &json!(1000)),
        "Lambda's bounds for an SQS event source's maximum concurrency"
    );
    for mode in e2e::MODES {
        let events = &resource(&read(mode, &[]), "EventsFunction")["Properties"]["Events"];
        let sqs = &events["BucketEvents"];
        assert_eq!(sqs["Type"], "SQS");
        assert_eq!(
            sqs["Properties"]["ScalingConfig"]["MaximumConcurrency"],
            json!({"!Ref": "EventsMaximumConcurrency"}),
            "{mode}"
        );
    }
}

/// The route keys of the HTTP API's routes that exist in `template`.
fn route_keys(template: &Template) -> BTreeSet<String> {
    template
        .resources_of("AWS::ApiGatewayV2::Route")
        .unwrap()
        .iter()
        .map(|(_, r)| r["Properties"]["RouteKey"].as_str().unwrap().to_owned())
        .collect()
}

/// What is wrong with `stage`'s RouteSettings for `routes`: a key that is no route's key as
/// the route spells it (API Gateway refuses the stage: "Unable to find Route by key"), a
/// route without a throttle of its own, a setting without both limits.
fn route_settings_faults(stage: &Value, routes: &BTreeSet<String>) -> Vec<String> {
    let mut faults = Vec::new();
    let Some(settings) = stage["Properties"]["RouteSettings"].as_object() else {
        return vec!["no RouteSettings".to_owned()];
    };
    for (key, setting) in settings {
        if !routes.contains(key) {
            faults.push(format!("{key:?} is no route's key ({routes:?})"));
        }
        for limit in ["ThrottlingBurstLimit", "ThrottlingRateLimit"] {
            if setting.get(limit).is_none() {
                faults.push(format!("{key:?} has no {limit}"));
            }
        }
    }
    for route in routes {
        if !settings.contains_key(route) {
            faults.push(format!("{route:?} has no throttle of its own"));
        }
    }
    faults
}

#[test]
fn every_route_has_a_throttle_of_its_own_under_its_exact_route_key() {
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        let routes = route_keys(&template);
        let stage = resource(&template, "HttpApiStage");
        assert_eq!(route_settings_faults(&stage, &routes), Vec::<String>::new(), "{mode}");
        // The check can fail: each key misspelt once, as a path parameter without its '+'.
        for key in &routes {
            let mut misspelt = stage.clone();
            let settings = misspelt["Properties"]["RouteSettings"].as_object_mut().unwrap();
            let setting = settings.remove(key).unwrap();
            let wrong = key.replace("{proxy+}", "{proxy}");
            settings.insert(wrong.clone(), setting);
            let faults = route_settings_faults(&misspelt, &routes);
            assert!(faults.iter().any(|f| f.contains(&wrong)), "{mode} {wrong}: {faults:?}");
            assert!(faults.iter().any(|f| f.contains("no throttle of its own")), "{faults:?}");
        }
        // /api keeps the stage's figures, in a bucket no /resize request draws from.
        let settings = &stage["Properties"]["RouteSettings"];
        assert_eq!(
            settings["ANY /api/{proxy+}"],
            json!({"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100})
        );
        if mode == DeliveryMode::Redirect {
            // The misses: the parameters (rate 50/s, burst 100). HEAD makes a miss too, but
            // no browser sends one: a small throttle of its own.
            assert_eq!(
                settings["GET /resize/{proxy+}"],
                json!({
                    "ThrottlingBurstLimit": {"!Ref": "ResizeRouteBurstLimit"},
                    "ThrottlingRateLimit": {"!Ref": "ResizeRouteRateLimit"}
                })
            );
            assert_eq!(parameter("ResizeRouteRateLimit")["Default"], 50);
            assert_eq!(parameter("ResizeRouteBurstLimit")["Default"], 100);
            let head = &settings["HEAD /resize/{proxy+}"];
            assert!(head["ThrottlingRateLimit"].as_f64().unwrap() <= 5.0, "{head}");
            assert!(head["ThrottlingBurstLimit"].as_u64().unwrap() <= 10, "{head}");
        }
    }
}

/// Every resource name a `Ref` inside `value` names.
fn refs_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("!Ref") {
                out.insert(name.clone());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

#[test]
fn the_stage_is_made_after_every_route_its_settings_name() {
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        let stage = resource(&template, "HttpApiStage");
        let mut before = BTreeSet::new();
        refs_in(&stage["Metadata"], &mut before);
        match &stage["DependsOn"] {
            Value::String(one) => {
                before.insert(one.clone());
            }
            Value::Array(items) => {
                before.extend(items.iter().map(|v| v.as_str().unwrap().to_owned()))
            }
            _ => {}
        }
        for (name, _) in template.resources_of("AWS::ApiGatewayV2::Route").unwrap() {
            assert!(before.contains(&name), "{mode}: the stage may be made before {name}");
        }
    }
}

#[test]
fn the_web_acl_is_off_by_default_and_when_on_limits_each_ip_address() {
    let p = parameter("WafRateLimit");
    assert_eq!((&p["Default"], &p["MinValue"]), (&json!(0), &json!(0)));
    let web_acl_id = |template: &Template| {
        resource(template, "Distribution")["Properties"]["DistributionConfig"]
            .get("WebACLId")
            .cloned()
    };
    for mode in e2e::MODES {
        let off = read(mode, &[]);
        assert!(off.resources_of("AWS::WAFv2::WebACL").unwrap().is_empty(), "{mode}");
        assert_eq!(web_acl_id(&off), None, "{mode}");

        let on = read(mode, &[("WafRateLimit", "2000")]);
        let acls = on.resources_of("AWS::WAFv2::WebACL").unwrap();
        assert_eq!(acls.len(), 1, "{mode}");
        let (name, acl) = &acls[0];
        let acl = &acl["Properties"];
        assert_eq!(acl["Scope"], "CLOUDFRONT");
        assert_eq!(acl["DefaultAction"], json!({"Allow": {}}));
        let rules = acl["Rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "one rule: {rules:?}");
        let rate = &rules[0]["Statement"]["RateBasedStatement"];
        assert_eq!(rate["AggregateKeyType"], "IP");
        assert_eq!(rate["Limit"], json!({"!Ref": "WafRateLimit"}));
        assert_eq!(rate["EvaluationWindowSec"], 300, "the parameter says per 5 minutes");
        assert!(rate.get("ScopeDownStatement").is_none(), "every request counts");
        assert_eq!(rules[0]["Action"]["Block"]["CustomResponse"]["ResponseCode"], 429);
        assert_eq!(web_acl_id(&on), Some(json!({"!GetAtt": format!("{name}.Arn")})), "{mode}");

        // A CLOUDFRONT web ACL is made in us-east-1 only: elsewhere none, none attached...
        let elsewhere = read(mode, &[("WafRateLimit", "2000"), ("AWS::Region", "eu-west-1")]);
        assert!(elsewhere.resources_of("AWS::WAFv2::WebACL").unwrap().is_empty(), "{mode}");
        assert_eq!(web_acl_id(&elsewhere), None, "{mode}");
        // ... unless one made there is named.
        let arn = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/images/0123-abcd";
        let attached = read(mode, &[("AWS::Region", "eu-west-1"), ("WafWebAclArn", arn)]);
        assert_eq!(web_acl_id(&attached), Some(json!({"!Ref": "WafWebAclArn"})), "{mode}");
    }
    let raw = raw();
    assert_eq!(raw["Outputs"]["WebAclArn"]["Condition"], "HasWaf");
    let here = raw["Conditions"]["CloudFrontWebAclHere"].clone();
    assert_eq!(here, json!({"!Equals": [{"!Ref": "AWS::Region"}, "us-east-1"]}));
}

#[test]
fn the_devserver_does_not_emulate_a_web_acl_so_it_refuses_a_distribution_with_one() {
    use devserver::edge::distribution::Distribution;
    let off = read(DeliveryMode::Redirect, &[]);
    assert!(Distribution::read(&off, "Distribution").is_ok());
    let on = read(DeliveryMode::Redirect, &[("WafRateLimit", "2000")]);
    let refused = Distribution::read(&on, "Distribution").expect_err("a web ACL is not emulated");
    assert!(refused.to_string().contains("WebACLId"), "{refused}");
}

#[test]
fn every_resizer_and_events_variable_reaches_the_devserver_and_the_functions() {
    // What the devserver sets itself, or what only a deployed function has.
    let own = ["BUCKET", "DELIVERY_MODE", "ORIGIN_VERIFY_SECRET", "RUST_LOG", "DISTRIBUTION_ID"];
    for mode in e2e::MODES {
        let template = read(mode, &[]);
        for function in ["ResizerFunction", "EventsFunction"] {
            let env = &resource(&template, function)["Properties"]["Environment"]["Variables"];
            for name in env.as_object().unwrap().keys() {
                if !own.contains(&name.as_str()) {
                    assert!(
                        devserver::RESIZER_VARS.contains(&name.as_str()),
                        "{function}'s {name} is not in devserver::RESIZER_VARS"
                    );
                }
            }
        }
    }
}

#[test]
fn the_image_limits_and_formats_reach_both_functions_from_their_parameters() {
    let raw = raw();
    for (var, param, default) in [
        ("MAX_SOURCE_FRAMES", "MaxSourceFrames", json!(500)),
        ("MAX_SOURCE_ANIMATION_PIXELS", "MaxSourceAnimationPixels", json!(100_000_000)),
    ] {
        assert_eq!(raw["Parameters"][param]["Default"], default, "{param}");
        for function in ["ResizerFunction", "EventsFunction"] {
            let env = &raw["Resources"][function]["Properties"]["Environment"]["Variables"];
            assert_eq!(env[var], json!({"!Ref": param}), "{function} {var}");
        }
    }
    // AllowedFormats: a list of the grammar's spellings (empty: all), joined as the
    // resizer reads ALLOWED_FORMATS.
    let formats = &raw["Parameters"]["AllowedFormats"];
    assert_eq!(formats["Type"], "CommaDelimitedList");
    assert_eq!(formats["Default"], "");
    assert_eq!(formats["AllowedValues"], json!(["", "avif", "webp", "jpeg", "png", "gif"]));
    for function in ["ResizerFunction", "EventsFunction"] {
        let env = &raw["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(env["ALLOWED_FORMATS"], json!({"!Join": [",", {"!Ref": "AllowedFormats"}]}));
    }
    for value in ["", "avif,webp", "jpeg,png,gif,webp,avif"] {
        assert!(resizer::config::parse_formats(value).is_ok(), "{value:?}");
    }
    // The formats negotiation writes must be allowed: a rule says so before a deploy.
    let rule = &raw["Rules"]["NegotiatedFormatsAreAllowed"]["Assertions"];
    let text = rule.to_string();
    for needle in [
        r#"{"!Contains":[{"!Ref":"AllowedFormats"},"webp"]}"#,
        r#"{"!Contains":[{"!Ref":"AllowedFormats"},"avif"]}"#,
        r#"{"!Contains":[{"!Ref":"AllowedFormats"},""]}"#,
        r#"{"!Equals":[{"!Ref":"FormatNegotiation"},"off"]}"#,
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}
