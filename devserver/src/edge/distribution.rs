//! template.yaml's CloudFront distribution, read for one delivery mode: its origins and
//! origin groups, its cache behaviours in order, the functions and trusted key groups each
//! behaviour uses, and its cache, origin request and response headers policies. The edge follows this
//! description and nothing else; a construct the devserver cannot emulate stops it at
//! start-up.

use std::collections::HashMap;

use serde_json::Value;

use crate::cloudformation::{referenced_resource, Template, TemplateError};

/// The managed cache policy CachingDisabled.
pub const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
/// The managed origin request policy AllViewerExceptHostHeader.
pub const ALL_VIEWER_EXCEPT_HOST: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

/// What an origin is, as the devserver emulates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind {
    /// The bucket's S3 website endpoint (a custom origin).
    S3Website,
    /// The bucket's REST endpoint behind origin access control.
    S3Rest,
    /// The HTTP API's execute-api host.
    HttpApi,
    /// The resizer's function URL behind origin access control.
    FunctionUrl,
}

/// One origin.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Its `Id`.
    pub id: String,
    /// What it is.
    pub kind: OriginKind,
    /// `OriginCustomHeaders`, values resolved (parameters filled in).
    pub custom_headers: Vec<(String, String)>,
}

/// An origin group: the primary, and the secondary tried on the failover codes.
#[derive(Debug, Clone)]
pub struct OriginGroup {
    /// Its `Id`.
    pub id: String,
    /// The first member.
    pub primary: String,
    /// The second member.
    pub secondary: String,
    /// `FailoverCriteria.StatusCodes`.
    pub failover_on: Vec<u16>,
}

/// The TTL settings of a cache policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// MinTTL, seconds.
    pub min_ttl: u64,
    /// DefaultTTL, seconds: for responses without Cache-Control.
    pub default_ttl: u64,
    /// MaxTTL, seconds.
    pub max_ttl: u64,
}

impl CachePolicy {
    /// Whether anything is ever cached under this policy.
    pub fn caches(&self) -> bool {
        self.max_ttl > 0
    }
}

/// What reaches the origin besides the path (an origin request policy, or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// No origin request policy and a cache key of the path alone: no viewer headers,
    /// cookies or query string reach the origin.
    PathOnly,
    /// AllViewerExceptHostHeader: every viewer header but Host, cookies and the query.
    AllViewerExceptHost,
}

/// A header a response headers policy adds (`CustomHeadersConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHeader {
    /// `Header`.
    pub name: String,
    /// `Value`.
    pub value: String,
    /// `Override`: replace a header of that name from the origin; else add it only when the
    /// origin sent none.
    pub replace: bool,
}

/// A CloudFront Function the behaviours use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its code, with the template's parameters filled in (`Fn::Sub`).
    pub code: String,
    /// The parameters filled into the code, by name: the settings its twin follows.
    pub parameters: HashMap<String, String>,
}

/// One cache behaviour.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `PathPattern` without a leading `/`; `*` for the default behaviour.
    pub pattern: String,
    /// `TargetOriginId`: an origin or an origin group.
    pub target: String,
    /// `AllowedMethods`.
    pub allowed_methods: Vec<String>,
    /// Whether `TrustedKeyGroups` is set: a signature is required.
    pub signed: bool,
    /// The viewer-request function, by the logical name of its `AWS::CloudFront::Function`.
    pub viewer_request: Option<String>,
    /// The cache policy's TTLs.
    pub cache: CachePolicy,
    /// The origin request policy.
    pub forwarding: Forwarding,
    /// The response headers policy's custom headers (none without a policy).
    pub response_headers: Vec<CustomHeader>,
}

/// The distribution, for one delivery mode.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Origins by id.
    pub origins: HashMap<String, Origin>,
    /// Origin groups by id.
    pub groups: HashMap<String, OriginGroup>,
    /// `CacheBehaviors` in order, then the default behaviour.
    pub behaviours: Vec<Behaviour>,
    /// `ErrorCachingMinTTL` per status from `CustomErrorResponses`; CloudFront's default
    /// (10 s) for cacheable errors not listed.
    pub error_caching_min_ttl: HashMap<u16, u64>,
    /// The CloudFront Functions the behaviours use, by logical name.
    pub functions: HashMap<String, Function>,
}

fn unsupported(what: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported(what.into())
}

/// Refuses `value` if it has a property outside `known`: a setting the devserver does not
/// emulate would make it differ from AWS without anyone noticing.
fn only_known(value: &Value, known: &[&str], what: &str) -> Result<(), TemplateError> {
    let unknown: Vec<&String> = value
        .as_object()
        .map(|m| m.keys().filter(|k| !known.contains(&k.as_str())).collect())
        .unwrap_or_default();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unsupported(format!("{what}: {unknown:?} not emulated by the devserver")))
    }
}

/// The distribution settings the devserver follows, or knows it may leave to AWS (the
/// domain, TLS, price class, logging-free defaults).
const DISTRIBUTION_KEYS: [&str; 12] = [
    "Enabled",
    "Comment",
    "HttpVersion",
    "IPV6Enabled",
    "PriceClass",
    "Aliases",
    "ViewerCertificate",
    "CustomErrorResponses",
    "Origins",
    "OriginGroups",
    "DefaultCacheBehavior",
    "CacheBehaviors",
];
/// An origin's settings the devserver follows.
const ORIGIN_KEYS: [&str; 6] = [
    "Id",
    "DomainName",
    "CustomOriginConfig",
    "S3OriginConfig",
    "OriginCustomHeaders",
    "OriginAccessControlId",
];
/// A behaviour's settings the devserver follows (the viewer protocol and compression are
/// AWS's alone: the devserver speaks plain HTTP and does not compress).
const BEHAVIOUR_KEYS: [&str; 11] = [
    "PathPattern",
    "TargetOriginId",
    "ViewerProtocolPolicy",
    "AllowedMethods",
    "CachedMethods",
    "Compress",
    "CachePolicyId",
    "OriginRequestPolicyId",
    "ResponseHeadersPolicyId",
    "TrustedKeyGroups",
    "FunctionAssociations",
];

fn text(v: &Value, field: &str) -> Result<String, TemplateError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| unsupported(format!("{field} is not a plain string in {v}")))
}

impl Distribution {
    /// Reads the distribution resource `name` of `template`.
    pub fn read(template: &Template, name: &str) -> Result<Self, TemplateError> {
        let resource =
            template.resource(name)?.ok_or_else(|| unsupported(format!("no resource {name}")))?;
        let config = &resource["Properties"]["DistributionConfig"];
        only_known(config, &DISTRIBUTION_KEYS, "the distribution")?;

        let mut origins = HashMap::new();
        for origin in config["Origins"].as_array().into_iter().flatten() {
            let origin = read_origin(template, origin)?;
            origins.insert(origin.id.clone(), origin);
        }

        let mut groups = HashMap::new();
        for group in config["OriginGroups"]["Items"].as_array().into_iter().flatten() {
            let id = text(group, "Id")?;
            let members: Vec<String> = group["Members"]["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| text(m, "OriginId"))
                .collect::<Result<_, _>>()?;
            let [primary, secondary] = <[String; 2]>::try_from(members)
                .map_err(|_| unsupported(format!("origin group {id} needs two members")))?;
            let failover_on = group["FailoverCriteria"]["StatusCodes"]["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_u64().and_then(|c| u16::try_from(c).ok()))
                .collect::<Option<Vec<u16>>>()
                .ok_or_else(|| unsupported(format!("origin group {id}: status codes")))?;
            groups.insert(id.clone(), OriginGroup { id, primary, secondary, failover_on });
        }

        let mut functions = HashMap::new();
        let mut behaviours = Vec::new();
        let default = config["DefaultCacheBehavior"].clone();
        let listed = config["CacheBehaviors"].as_array().cloned().unwrap_or_default();
        for (raw, is_default) in
            listed.iter().map(|b| (b, false)).chain(std::iter::once((&default, true)))
        {
            let behaviour = read_behaviour(template, raw, is_default, &mut functions)?;
            if !origins.contains_key(&behaviour.target) && !groups.contains_key(&behaviour.target) {
                return Err(unsupported(format!(
                    "behaviour {} targets {}, which is no origin or group",
                    behaviour.pattern, behaviour.target
                )));
            }
            behaviours.push(behaviour);
        }

        let mut error_caching_min_ttl = HashMap::new();
        for e in config["CustomErrorResponses"].as_array().into_iter().flatten() {
            let code = e["ErrorCode"].as_u64().and_then(|c| u16::try_from(c).ok());
            let ttl = e["ErrorCachingMinTTL"].as_u64();
            if e.get("ResponsePagePath").is_some() || e.get("ResponseCode").is_some() {
                return Err(unsupported("custom error pages are not emulated"));
            }
            match (code, ttl) {
                (Some(code), Some(ttl)) => error_caching_min_ttl.insert(code, ttl),
                _ => return Err(unsupported(format!("custom error response {e}"))),
            };
        }
        Ok(Self { origins, groups, behaviours, error_caching_min_ttl, functions })
    }

    /// The behaviour CloudFront picks for `path` (the normalised path, without query): the
    /// first listed pattern that matches, else the default.
    pub fn behaviour_for(&self, path: &str) -> &Behaviour {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.behaviours
            .iter()
            .find(|b| keyspace::wildcard_match(&b.pattern, path))
            .unwrap_or_else(|| self.behaviours.last().expect("a default behaviour"))
    }
}

fn read_origin(template: &Template, origin: &Value) -> Result<Origin, TemplateError> {
    let id = text(origin, "Id")?;
    only_known(origin, &ORIGIN_KEYS, &format!("origin {id}"))?;
    let domain = origin["DomainName"].to_string();
    let kind = if origin.get("S3OriginConfig").is_some() {
        OriginKind::S3Rest
    } else if domain.contains("s3-website") {
        OriginKind::S3Website
    } else if domain.contains("execute-api") {
        OriginKind::HttpApi
    } else if domain.contains("FunctionUrl") {
        OriginKind::FunctionUrl
    } else {
        return Err(unsupported(format!("origin {id}: cannot tell what {domain} is")));
    };
    let mut custom_headers = Vec::new();
    for h in origin["OriginCustomHeaders"].as_array().into_iter().flatten() {
        let name = text(h, "HeaderName")?;
        let value = match &h["HeaderValue"] {
            Value::String(s) => s.clone(),
            other => crate::cloudformation::referenced_parameter(template, other)
                .map(str::to_owned)
                .ok_or_else(|| unsupported(format!("origin {id}: header value {other}")))?,
        };
        custom_headers.push((name, value));
    }
    Ok(Origin { id, kind, custom_headers })
}

fn read_behaviour(
    template: &Template,
    b: &Value,
    is_default: bool,
    functions: &mut HashMap<String, Function>,
) -> Result<Behaviour, TemplateError> {
    let pattern = if is_default {
        "*".to_owned()
    } else {
        let p = text(b, "PathPattern")?;
        p.strip_prefix('/').map(str::to_owned).unwrap_or(p)
    };
    only_known(b, &BEHAVIOUR_KEYS, &format!("behaviour {pattern}"))?;
    let target = text(b, "TargetOriginId")?;
    let allowed_methods = b["AllowedMethods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let signed = b.get("TrustedKeyGroups").is_some();
    let mut viewer_request = None;
    for f in b["FunctionAssociations"].as_array().into_iter().flatten() {
        let event = text(f, "EventType")?;
        let name = referenced_resource(&f["FunctionARN"])
            .ok_or_else(|| unsupported(format!("behaviour {pattern}: function {f}")))?;
        if event != "viewer-request" {
            return Err(unsupported(format!("behaviour {pattern}: {event} functions")));
        }
        let resource =
            template.resource(&name)?.ok_or_else(|| unsupported(format!("no function {name}")))?;
        let (code, used) = template
            .substitute(&resource["Properties"]["FunctionCode"])
            .map_err(|e| unsupported(format!("function {name} has no inline code: {e}")))?;
        let parameters = used
            .into_iter()
            .filter_map(|p| template.parameter(&p).map(|v| (p, v.to_owned())))
            .collect();
        functions.insert(name.clone(), Function { code, parameters });
        viewer_request = Some(name);
    }
    let cache = match &b["CachePolicyId"] {
        Value::String(id) if id == CACHING_DISABLED => {
            CachePolicy { min_ttl: 0, default_ttl: 0, max_ttl: 0 }
        }
        other => {
            let name = referenced_resource(other)
                .ok_or_else(|| unsupported(format!("behaviour {pattern}: cache policy {other}")))?;
            let policy = template
                .resource(&name)?
                .ok_or_else(|| unsupported(format!("no cache policy {name}")))?;
            let c = &policy["Properties"]["CachePolicyConfig"];
            let keyed = &c["ParametersInCacheKeyAndForwardedToOrigin"];
            if keyed["QueryStringsConfig"]["QueryStringBehavior"] != "none"
                || keyed["HeadersConfig"]["HeaderBehavior"] != "none"
                || keyed["CookiesConfig"]["CookieBehavior"] != "none"
            {
                return Err(unsupported(format!(
                    "cache policy {name}: only a path key is emulated"
                )));
            }
            let ttl = |f: &str| {
                c[f].as_u64().ok_or_else(|| unsupported(format!("cache policy {name}: {f}")))
            };
            CachePolicy {
                min_ttl: ttl("MinTTL")?,
                default_ttl: ttl("DefaultTTL")?,
                max_ttl: ttl("MaxTTL")?,
            }
        }
    };
    let forwarding = match b.get("OriginRequestPolicyId") {
        None => Forwarding::PathOnly,
        Some(Value::String(id)) if id == ALL_VIEWER_EXCEPT_HOST => Forwarding::AllViewerExceptHost,
        Some(other) => {
            return Err(unsupported(format!("behaviour {pattern}: origin request policy {other}")))
        }
    };
    let response_headers = match b.get("ResponseHeadersPolicyId") {
        None => Vec::new(),
        Some(id) => read_response_headers(template, &pattern, id)?,
    };
    Ok(Behaviour {
        pattern,
        target,
        allowed_methods,
        signed,
        viewer_request,
        cache,
        forwarding,
        response_headers,
    })
}

/// A response headers policy of the template's own with custom headers only: CORS,
/// security headers, header removal and Server-Timing are not emulated, nor are managed
/// policies (by id).
fn read_response_headers(
    template: &Template,
    pattern: &str,
    id: &Value,
) -> Result<Vec<CustomHeader>, TemplateError> {
    let refused = || {
        unsupported(format!(
            "behaviour {pattern}: ResponseHeadersPolicyId {id}: only the template's own policies of custom headers are emulated"
        ))
    };
    let name = referenced_resource(id).ok_or_else(refused)?;
    let policy = template.resource(&name)?.ok_or_else(refused)?;
    if policy["Type"] != "AWS::CloudFront::ResponseHeadersPolicy" {
        return Err(refused());
    }
    let config = &policy["Properties"]["ResponseHeadersPolicyConfig"];
    only_known(config, &["Name", "Comment", "CustomHeadersConfig"], &format!("policy {name}"))?;
    let mut headers = Vec::new();
    for h in config["CustomHeadersConfig"]["Items"].as_array().into_iter().flatten() {
        only_known(h, &["Header", "Value", "Override"], &format!("policy {name}"))?;
        let replace = h["Override"]
            .as_bool()
            .ok_or_else(|| unsupported(format!("policy {name}: Override of {h}")))?;
        headers.push(CustomHeader { name: text(h, "Header")?, value: text(h, "Value")?, replace });
    }
    Ok(headers)
}
